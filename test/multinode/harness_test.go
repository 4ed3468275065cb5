//go:build linux && multinode

// Package multinode runs several simulated nodes against a real
// kube-apiserver: each node is a network namespace on a shared underlay
// bridge with its own podns-node process, podns bridge and pod CIDR.
package multinode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/podns/podns/pkg/node/routes"
	"github.com/podns/podns/pkg/testutil"
)

const (
	underlayV4  = "10.213.0.%d"
	underlayV6  = "fd00:213::%d"
	outsideV4   = "10.213.0.200"
	outsideV6   = "fd00:213::c8"
	clusterV4   = "10.214.0.0/16"
	clusterV6   = "fd00:214::/48"
	refPlugins  = "/usr/local/lib/cni-v1.10.0"
	agentListen = "127.0.0.1:9099"
)

var kubeDir string // state dir of hack/kube-apiserver.sh

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "multinode tests need root")
		return 1
	}
	script := filepath.Join(testutil.RepoRoot(), "hack", "kube-apiserver.sh")
	if d := os.Getenv("PODNS_KUBE_DIR"); d != "" {
		kubeDir = d // started by hack/multinode.sh
	} else {
		tmp, err := os.MkdirTemp("", "podns-kube-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		kubeDir = filepath.Join(tmp, "kube")
		cmd := exec.Command(script, "start", kubeDir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "start kube-apiserver:", err)
			_ = exec.Command(script, "stop", kubeDir).Run()
			return 1
		}
		defer func() { _ = exec.Command(script, "stop", kubeDir).Run() }()
	}
	return m.Run()
}

// kubeEnv reads DIR/env written by hack/kube-apiserver.sh.
func kubeEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

// cluster is the whole simulation.
type cluster struct {
	t        *testing.T
	env      map[string]string
	client   kubernetes.Interface
	bin      string
	pluginT  string // main CNI plugin type used in the conflists
	ipamT    string
	underlay string // netns holding the underlay bridge
	outside  string // netns of a host outside the cluster
	tmp      string
	nextIdx  int
}

type node struct {
	c        *cluster
	idx      int
	name     string // Node object and netns name
	ns       string
	ip4, ip6 netip.Addr
	cidr4    netip.Prefix
	cidr6    netip.Prefix
	dir      string
	agent    *exec.Cmd
	agentErr chan error
	proxy    net.Listener
}

type pod struct {
	n        *node
	ns       string
	ip4, ip6 netip.Addr
}

func newCluster(t *testing.T) *cluster {
	testutil.RequireRoot(t)
	c := &cluster{t: t, env: kubeEnv(t), bin: testutil.BinDir(t), tmp: t.TempDir()}
	c.pluginT, c.ipamT = "podns", "podns-ipam"
	if os.Getenv("PODNS_MULTINODE_CNI") == "reference" {
		c.pluginT, c.ipamT = "bridge", "host-local"
	}
	for _, b := range []string{filepath.Join(c.bin, "podns-node"), filepath.Join(c.bin, "podns"), filepath.Join(c.bin, "podns-ipam"),
		filepath.Join(refPlugins, "portmap"), filepath.Join(refPlugins, "bridge"), filepath.Join(refPlugins, "host-local")} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("missing binary: %v", err)
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.env["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	c.client = kubernetes.NewForConfigOrDie(rc)
	c.applyRBAC()
	c.underlay = c.netns("ul")
	c.run("ip", "-n", c.underlay, "link", "add", "br0", "type", "bridge")
	c.run("ip", "-n", c.underlay, "link", "set", "br0", "up")
	c.outside = c.netns("out")
	c.attach(c.outside, outsideV4, outsideV6)
	return c
}

// applyRBAC creates the ClusterRole and binding of conf/kind/podns-node.yaml:
// the agents authenticate as that ServiceAccount, so a missing verb fails here.
func (c *cluster) applyRBAC() {
	t := c.t
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "conf", "kind", "podns-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("conf/kind/podns-node.yaml: %v", err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
				t.Fatal(err)
			}
			_ = c.client.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
			if _, err := c.client.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.client.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{}) })
		case "ServiceAccount":
			var o corev1.ServiceAccount
			if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
				t.Fatal(err)
			}
			if _, err := c.client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, &o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.client.CoreV1().ServiceAccounts(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
			})
		case "DaemonSet":
			// Server-side dry run: the real API server validates the manifest
			// (no kubelet here to run it).
			var o appsv1.DaemonSet
			if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
				t.Fatal(err)
			}
			if _, err := c.client.AppsV1().DaemonSets(o.Namespace).Create(ctx, &o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("conf/kind/podns-node.yaml DaemonSet rejected by kube-apiserver: %v", err)
			}
			check(t, "conf/kind/podns-node.yaml: DaemonSet accepted by kube-apiserver (dry run); ServiceAccount, ClusterRole, binding created")
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
				t.Fatal(err)
			}
			_ = c.client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
			if _, err := c.client.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
			})
		}
	}
}

func (c *cluster) run(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) netns(prefix string) string {
	name := testutil.UniqueName(prefix)
	c.run("ip", "netns", "add", name)
	c.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	c.run("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// attach plugs netns nsName into the underlay bridge as eth0 with the given
// addresses.
func (c *cluster) attach(nsName, ip4, ip6 string) {
	port := testutil.UniqueName("ulp")
	c.run("ip", "-n", nsName, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", c.underlay)
	c.run("ip", "-n", c.underlay, "link", "set", port, "master", "br0", "up")
	c.run("ip", "-n", nsName, "addr", "add", ip4+"/24", "dev", "eth0")
	c.run("ip", "-n", nsName, "addr", "add", ip6+"/64", "dev", "eth0", "nodad")
	c.run("ip", "-n", nsName, "link", "set", "eth0", "up")
}

// addNode creates the node's netns, its Node object and starts its agent.
func (c *cluster) addNode() *node {
	t := c.t
	c.nextIdx++
	i := c.nextIdx
	n := &node{c: c, idx: i, ns: c.netns(fmt.Sprintf("n%d", i))}
	n.name = n.ns // unique in the API server too
	n.ip4 = netip.MustParseAddr(fmt.Sprintf(underlayV4, 10+i))
	n.ip6 = netip.MustParseAddr(fmt.Sprintf(underlayV6, 10+i))
	n.cidr4 = netip.MustParsePrefix(fmt.Sprintf("10.214.%d.0/24", i))
	n.cidr6 = netip.MustParsePrefix(fmt.Sprintf("fd00:214:%d::/64", i))
	n.dir = filepath.Join(c.tmp, n.name)
	for _, d := range []string{"net.d", "ipam", "cache"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.attach(n.ns, n.ip4.String(), n.ip6.String())
	c.createNode(n.name, []netip.Prefix{n.cidr4, n.cidr6}, []netip.Addr{n.ip4, n.ip6})
	n.startProxy()
	n.startAgent()
	return n
}

// createNode creates a Node with pod CIDRs and InternalIPs (spec.podCIDRs is
// immutable, so tests always create new Nodes).
func (c *cluster) createNode(name string, cidrs []netip.Prefix, ips []netip.Addr) {
	t := c.t
	ctx := context.Background()
	o := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, p := range cidrs {
		o.Spec.PodCIDRs = append(o.Spec.PodCIDRs, p.String())
	}
	o.Spec.PodCIDR = o.Spec.PodCIDRs[0]
	for _, a := range ips {
		o.Status.Addresses = append(o.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	got, err := c.client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	if len(got.Status.Addresses) == 0 {
		got.Status.Addresses = o.Status.Addresses
		if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("set addresses of node %s: %v", name, err)
		}
	}
}

func (c *cluster) deleteNode(name string) {
	if err := c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatalf("delete node %s: %v", name, err)
	}
}

// startProxy forwards 127.0.0.1:<apiserver port> inside the node's netns to
// the API server on the host's loopback, so the agent runs wholly inside the
// node's netns with the same kubeconfig.
func (n *node) startProxy() {
	t := n.c.t
	addr := "127.0.0.1:" + n.c.env["APISERVER_PORT"]
	err := inNS(n.ns, func() error {
		var err error
		n.proxy, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("proxy listen in %s: %v", n.ns, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { n.proxy.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := n.proxy.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := net.DialTimeout("tcp", addr, 2*time.Second) // host netns
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
				<-done
			}()
		}
	}()
}

func (n *node) startAgent() {
	t := n.c.t
	logf, err := os.OpenFile(filepath.Join(n.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.ns, filepath.Join(n.c.bin, "podns-node"),
		"--kubeconfig", n.c.env["AGENT_KUBECONFIG"],
		"--cni-conf-dir", filepath.Join(n.dir, "net.d"),
		"--ipam-data-dir", filepath.Join(n.dir, "ipam"),
		"--cni-type", n.c.pluginT, "--ipam-type", n.c.ipamT,
		"--cluster-cidrs", clusterV4+","+clusterV6,
		"--resync", "2s", "--listen", agentListen)
	cmd.Env = append(os.Environ(), "NODE_NAME="+n.name, "KUBECONFIG=")
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies without its cleanups, the agent goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start agent on %s: %v", n.name, err)
	}
	logf.Close()
	n.agent = cmd
	n.agentErr = make(chan error, 1)
	go func() { n.agentErr <- cmd.Wait() }()
	t.Cleanup(func() {
		if n.agent == cmd {
			_ = n.stopAgent()
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(n.dir, "agent.log"))
			t.Logf("agent log of %s:\n%s", n.name, tail(string(b), 40))
		}
	})
}

// stopAgent sends SIGTERM and waits for a clean exit.
func (n *node) stopAgent() error {
	if n.agent == nil {
		return nil
	}
	_ = n.agent.Process.Signal(syscall.SIGTERM)
	defer func() { n.agent = nil }()
	select {
	case err := <-n.agentErr:
		return err
	case <-time.After(10 * time.Second):
		_ = n.agent.Process.Kill()
		<-n.agentErr
		return errors.New("agent did not exit within 10s of SIGTERM")
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// inNS runs f on a thread inside the named netns; sockets made there stay
// in that netns.
func inNS(name string, f func() error) error {
	nsh, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		return err
	}
	defer nsh.Close()
	return nsh.Do(func(ns.NetNS) error { return f() })
}

// httpGet fetches http://<agentListen><path> inside the node's netns.
func (n *node) httpGet(path string) (int, string, error) {
	var conn net.Conn
	if err := inNS(n.ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", agentListen, 2*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return conn, nil },
		DisableKeepAlives: true,
	}}
	resp, err := cl.Get("http://" + agentListen + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// routes returns the node's main-table routes by destination, with protocol.
type kroute struct {
	Gw    string
	Proto int
}

func (n *node) routes() map[string]kroute {
	t := n.c.t
	out := map[string]kroute{}
	// Errorf, not Fatal: this also runs on the route-watch goroutine.
	nsh, err := netns.GetFromName(n.ns)
	if err != nil {
		t.Errorf("netns %s: %v", n.ns, err)
		return out
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Errorf("netlink in %s: %v", n.ns, err)
		return out
	}
	defer h.Close()
	rs, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Errorf("routes in %s: %v", n.ns, err)
		return out
	}
	for _, r := range rs {
		if r.Dst == nil || r.Gw == nil {
			continue
		}
		out[r.Dst.String()] = kroute{Gw: r.Gw.String(), Proto: int(r.Protocol)}
	}
	return out
}

// agentRoutes are the routes carrying podns-node's protocol.
func (n *node) agentRoutes() map[string]string {
	out := map[string]string{}
	for dst, r := range n.routes() {
		if r.Proto == routes.DefaultProtocol {
			out[dst] = r.Gw
		}
	}
	return out
}

// addPod makes a pod netns on node n through the conflist the agent wrote.
func (n *node) addPod() *pod {
	t := n.c.t
	p := &pod{n: n, ns: n.c.netns("p")}
	list, err := libcni.ConfListFromFile(filepath.Join(n.dir, "net.d", "10-podns.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{n.c.bin, refPlugins}, filepath.Join(n.dir, "cache"), nil)
	rt := &libcni.RuntimeConf{ContainerID: p.ns, NetNS: "/var/run/netns/" + p.ns, IfName: "eth0"}
	var res *current.Result
	// The plugins run in the node's netns: that is where the bridge and the
	// host ends of the veths live.
	err = inNS(n.ns, func() error {
		r, err := cni.AddNetworkList(context.Background(), list, rt)
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		t.Fatalf("CNI ADD on %s: %v", n.name, err)
	}
	t.Cleanup(func() {
		_ = inNS(n.ns, func() error { return cni.DelNetworkList(context.Background(), list, rt) })
	})
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		a = a.Unmap()
		if a.Is4() {
			p.ip4 = a
		} else {
			p.ip6 = a
		}
	}
	if !n.cidr4.Contains(p.ip4) || !n.cidr6.Contains(p.ip6) {
		t.Fatalf("pod on %s got %v / %v, outside the node's CIDRs %v %v", n.name, p.ip4, p.ip6, n.cidr4, n.cidr6)
	}
	return p
}

// ping checks p reaches ip (retrying while neighbours and DAD settle).
func (p *pod) ping(ip netip.Addr) error {
	var out []byte
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		out, err = exec.Command("ip", "netns", "exec", p.ns, "ping", "-c1", "-W1", ip.String()).CombinedOutput()
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("ping %s from pod %s: %v\n%s", ip, p.ns, err, out)
}

// udpSource sends one datagram from netns `from` to addr (a listener in
// netns `to`) and returns the source address the receiver saw.
func udpSource(from, to string, addr netip.AddrPort) (netip.Addr, error) {
	var pc net.PacketConn
	if err := inNS(to, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr.String())
		return err
	}); err != nil {
		return netip.Addr{}, fmt.Errorf("listen in %s: %w", to, err)
	}
	defer pc.Close()
	var conn net.Conn
	if err := inNS(from, func() error {
		var err error
		conn, err = net.Dial("udp", addr.String())
		return err
	}); err != nil {
		return netip.Addr{}, fmt.Errorf("dial from %s: %w", from, err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for i := 0; i < 20; i++ {
		if _, err := conn.Write([]byte("podns")); err != nil {
			return netip.Addr{}, err
		}
		_ = pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, src, err := pc.ReadFrom(buf)
		if err == nil {
			return src.(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("no datagram arrived")
}

// eventually retries f until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
}

func check(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("CHECK ok: "+format, args...)
}
