//go:build linux

// Package agent is podns-node: it watches the Kubernetes Nodes and keeps this
// node's CNI conflist, its routes to the other nodes' pod CIDRs and its
// masquerade table in line with them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/node/conflist"
	"github.com/podns/podns/pkg/node/masq"
	"github.com/podns/podns/pkg/node/routes"
)

// Config is everything podns-node is told on its command line.
type Config struct {
	NodeName      string
	Kubeconfig    string // empty: in-cluster config
	CNIConfDir    string
	ConfFile      string // file name inside CNIConfDir
	NetworkName   string
	CNIVersion    string
	PluginType    string
	IPAMType      string
	Bridge        string
	PortMap       bool
	IPAMDataDir   string
	Uplink        string // empty: the link holding the node's InternalIP
	MTU           int    // >0 overrides the uplink's MTU
	ClusterCIDRs  []netip.Prefix
	RouteProtocol int
	Masquerade    bool
	Forwarding    bool // enable IPv4/IPv6 forwarding for the pod CIDR families
	Resync        time.Duration
	ListenAddr    string // /healthz and /metrics; empty disables
}

// Agent holds the running state.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	client kubernetes.Interface
	routes *routes.Manager

	mu         sync.Mutex
	lastMasq   *masq.Rules
	lastErr    error
	reconciled bool
	synced     func() bool
}

// New checks cfg and builds the Kubernetes client.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("node name is empty: set NODE_NAME or --node-name")
	}
	if cfg.RouteProtocol <= 4 || cfg.RouteProtocol > 255 {
		// 0-4 are the kernel's own (unspec, redirect, kernel, boot, static).
		return nil, fmt.Errorf("route protocol %d: must be in 5..255", cfg.RouteProtocol)
	}
	if cfg.Resync <= 0 {
		return nil, fmt.Errorf("resync period %s: must be positive", cfg.Resync)
	}
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	rc.UserAgent = "podns-node/" + cfg.NodeName
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	klog.SetLogger(logr.FromSlogHandler(log.Handler()))
	return &Agent{
		cfg: cfg, log: log, m: newMetrics(), client: cs,
		routes: &routes.Manager{Protocol: netlink.RouteProtocol(cfg.RouteProtocol)},
	}, nil
}

// Run watches Nodes and reconciles until ctx ends. Routes, conflist and
// masquerade table stay in place on exit, so a restart disturbs no traffic.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory := informers.NewSharedInformerFactory(a.client, 0)
	inf := factory.Core().V1().Nodes()
	informer := inf.Informer()
	// The reflector re-lists by itself after any list/watch error (an API
	// server restart, an expired resource version); we count and log them.
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		a.m.watchErrors.Inc()
		a.log.Warn("node watch failed, will re-list", "err", err)
	}); err != nil {
		return fmt.Errorf("set watch error handler: %w", err)
	}
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { trigger() },
		// Nodes update their status every few seconds; only a change of
		// what the agent reads (name, pod CIDRs, InternalIPs) needs work.
		UpdateFunc: func(old, cur any) {
			o, okO := old.(*corev1.Node)
			c, okC := cur.(*corev1.Node)
			if okO && okC {
				on, _ := fromNode(o)
				cn, _ := fromNode(c)
				if reflect.DeepEqual(on, cn) {
					return
				}
			}
			trigger()
		},
		DeleteFunc: func(any) { trigger() },
	}); err != nil {
		return fmt.Errorf("add node event handler: %w", err)
	}
	a.synced = informer.HasSynced

	var srv *http.Server
	if a.cfg.ListenAddr != "" {
		ln, err := net.Listen("tcp", a.cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.ListenAddr, err)
		}
		srv = &http.Server{Handler: a.mux(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http server failed", "err", err)
				cancel()
			}
		}()
		a.log.Info("serving /healthz and /metrics", "addr", ln.Addr().String())
	}

	factory.Start(ctx.Done())
	a.log.Info("waiting for the node cache", "node", a.cfg.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		factory.Shutdown()
		a.shutdownHTTP(srv)
		return nil // ctx ended before the first list
	}
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	lister := inf.Lister()
	a.reconcile(lister)
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping")
			factory.Shutdown()
			a.shutdownHTTP(srv)
			return nil
		case <-kick:
		case <-tick.C: // repairs drift (a route deleted by hand) between events
		}
		a.reconcile(lister)
	}
}

func (a *Agent) shutdownHTTP(srv *http.Server) {
	if srv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

func (a *Agent) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		ok, err, synced := a.reconciled, a.lastErr, a.synced
		a.mu.Unlock()
		switch {
		case synced == nil || !synced():
			http.Error(w, "node cache not synced", http.StatusServiceUnavailable)
		case !ok:
			http.Error(w, "not reconciled yet", http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, "last reconcile failed: "+err.Error(), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	return mux
}

// reconcile brings conflist, routes and masquerade in line with the cache.
func (a *Agent) reconcile(lister listersv1.NodeLister) {
	start := time.Now()
	err := a.reconcileOnce(lister)
	a.m.reconcileTime.Observe(time.Since(start).Seconds())
	a.mu.Lock()
	a.reconciled, a.lastErr = true, err
	a.mu.Unlock()
	if err != nil {
		a.m.reconciles.WithLabelValues("error").Inc()
		a.log.Error("reconcile failed", "err", err)
		return
	}
	a.m.reconciles.WithLabelValues("ok").Inc()
}

func (a *Agent) reconcileOnce(lister listersv1.NodeLister) error {
	objs, err := lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes from cache: %w", err)
	}
	a.m.nodes.Set(float64(len(objs)))
	var nodes []routes.Node
	var self *routes.Node
	for _, o := range objs {
		n, warns := fromNode(o)
		for _, w := range warns {
			a.log.Warn(w)
		}
		nodes = append(nodes, n)
		if n.Name == a.cfg.NodeName {
			s := n
			self = &s
		}
	}
	var errs []error
	if self == nil {
		errs = append(errs, fmt.Errorf("own node %q not found", a.cfg.NodeName))
	} else if len(self.PodCIDRs) == 0 {
		errs = append(errs, fmt.Errorf("own node %q has no spec.podCIDRs yet", self.Name))
	} else {
		if err := a.syncConflist(*self); err != nil {
			errs = append(errs, err)
		}
		if a.cfg.Forwarding {
			if err := enableForwarding(self.PodCIDRs); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := a.syncRoutes(nodes); err != nil {
		errs = append(errs, err)
	}
	if !a.cfg.Masquerade {
		// A table an earlier run with --masquerade made must not keep
		// masquerading after it was switched off.
		if err := a.dropMasq(); err != nil {
			errs = append(errs, err)
		}
	} else if self != nil && len(self.PodCIDRs) > 0 {
		cluster := append([]netip.Prefix(nil), a.cfg.ClusterCIDRs...)
		for _, n := range nodes {
			cluster = append(cluster, n.PodCIDRs...)
		}
		if err := a.syncMasq(masq.Rules{PodCIDRs: self.PodCIDRs, ClusterCIDRs: cluster}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) syncConflist(self routes.Node) error {
	mtu := a.cfg.MTU
	if mtu <= 0 {
		var err error
		if mtu, err = uplinkMTU(a.cfg.Uplink, self.InternalIPs); err != nil {
			return err
		}
	}
	data, err := conflist.Render(conflist.Params{
		Name: a.cfg.NetworkName, CNIVersion: a.cfg.CNIVersion, PluginType: a.cfg.PluginType,
		IPAMType: a.cfg.IPAMType, Bridge: a.cfg.Bridge, MTU: mtu, PodCIDRs: self.PodCIDRs,
		PortMap: a.cfg.PortMap, DataDir: a.cfg.IPAMDataDir,
	})
	if err != nil {
		return err
	}
	path := filepath.Join(a.cfg.CNIConfDir, a.cfg.ConfFile)
	changed, err := conflist.WriteIfChanged(path, data)
	if err != nil {
		return fmt.Errorf("write conflist: %w", err)
	}
	if changed {
		a.m.conflistWrites.Inc()
		a.log.Info("wrote conflist", "path", path, "podCIDRs", fmt.Sprint(self.PodCIDRs), "mtu", mtu)
	}
	return nil
}

func (a *Agent) syncRoutes(nodes []routes.Node) error {
	want, warns := routes.Desired(a.cfg.NodeName, nodes)
	for _, w := range warns {
		a.log.Warn(w)
	}
	res, err := a.routes.Sync(want)
	if err != nil {
		return err
	}
	for _, r := range res.Plan.Add {
		a.log.Info("route added", "route", r.String())
	}
	for _, r := range res.Plan.Replace {
		a.log.Info("route replaced", "route", r.String())
	}
	for _, r := range res.Plan.Delete {
		a.log.Info("route deleted", "route", r.String())
	}
	for _, r := range res.Plan.Conflicts {
		a.log.Warn("route wanted but a route the agent did not make holds its destination; left alone", "route", r.String())
	}
	a.m.routeChanges.WithLabelValues("add").Add(float64(len(res.Plan.Add)))
	a.m.routeChanges.WithLabelValues("replace").Add(float64(len(res.Plan.Replace)))
	a.m.routeChanges.WithLabelValues("delete").Add(float64(len(res.Plan.Delete)))
	a.m.routeConflicts.Set(float64(len(res.Plan.Conflicts)))
	a.m.routes.Set(float64(res.Owned))
	return errors.Join(res.Errors...)
}

func (a *Agent) dropMasq() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	return masq.Delete(c)
}

func (a *Agent) syncMasq(r masq.Rules) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	a.mu.Lock()
	last := a.lastMasq
	a.mu.Unlock()
	if last != nil && last.Equal(r) {
		present, err := masq.Present(c)
		if err != nil {
			return err
		}
		if present {
			return nil
		}
	}
	if err := masq.Apply(c, r); err != nil {
		return err
	}
	n := r.Normalize()
	a.mu.Lock()
	a.lastMasq = &n
	a.mu.Unlock()
	a.m.masqWrites.Inc()
	a.log.Info("wrote masquerade table", "table", "inet "+masq.TableName,
		"podCIDRs", fmt.Sprint(n.PodCIDRs), "clusterCIDRs", fmt.Sprint(n.ClusterCIDRs))
	return nil
}

// uplinkMTU returns the MTU of the named link, or of the link holding one of
// the node's InternalIPs, or of the default route's link.
func uplinkMTU(name string, ips []netip.Addr) (int, error) {
	if name != "" {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return 0, fmt.Errorf("uplink %s: %w", name, err)
		}
		return l.Attrs().MTU, nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		a, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		for _, ip := range ips {
			if a.Unmap() == ip {
				l, err := netlink.LinkByIndex(ad.LinkIndex)
				if err != nil {
					return 0, fmt.Errorf("link of %s: %w", ip, err)
				}
				return l.Attrs().MTU, nil
			}
		}
	}
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: nil}, 0)
	if err == nil {
		for _, r := range rs {
			if r.Dst == nil && r.LinkIndex > 0 {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
					return l.Attrs().MTU, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no uplink found: none of %v is on a link and there is no default route; use --uplink", ips)
}

// enableForwarding turns on forwarding for the families the node's pods use:
// routing between nodes is what the agent is for.
func enableForwarding(cidrs []netip.Prefix) error {
	for _, c := range cidrs {
		if err := link.EnableForwarding(c.Addr().Is6()); err != nil {
			return err
		}
	}
	return nil
}
