//go:build linux

// Package cniplugin is the podns CNI main plugin: one function per verb,
// called by plugins/podns through skel.
package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/cnilog"
	"github.com/podns/podns/pkg/cniresult"
	"github.com/podns/podns/pkg/ipamcall"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/netconf"
)

// openPod opens CNI_NETNS, refuses the plugin's own netns (skel only
// checks that after ADD has already run) and opens a route netlink socket
// bound to it.
func openPod(path string) (netns.NsHandle, *netlink.Handle, error) {
	none := netns.None()
	if path == "" {
		return none, nil, codeErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty")
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return none, nil, codeErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %s: %v", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		h.Close()
		return none, nil, codeErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %s is not a network namespace", path)
	}
	var pod unix.Stat_t
	if err := unix.Fstat(int(h), &pod); err != nil {
		h.Close()
		return none, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if own, err := ownNetNS(&pod); err != nil || own {
		h.Close()
		if err != nil {
			return none, nil, err
		}
		return none, nil, codeErr(types.ErrInvalidNetNS, "CNI_NETNS %s is the plugin's own (host) netns", path)
	}
	// (NewHandleAtFrom would reuse self but opens a socket per netlink
	// family, each with its own setns round trip.)
	podH, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return none, nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return h, podH, nil
}

// ownNetNS reports whether st, a netns's nsfs inode, is the plugin's own
// netns. Any thread an unlocked goroutine runs on is in it (only a locked
// thread visits another, and comes back), so this thread's stands for
// the plugin's; two stats, where opening both and comparing took two
// opens and two closes more.
func ownNetNS(st *unix.Stat_t) (bool, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return false, fmt.Errorf("stat own netns: %w", err)
	}
	return st.Dev == self.Dev && st.Ino == self.Ino, nil
}

// undo collects rollback steps; run executes them newest first.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

// run undoes newest first and keeps going; failures are logged only, the
// ADD's own error is what the runtime must see.
func (u undo) run(log *cnilog.Logger) {
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			log.Warn("rollback step failed", "err", err)
		}
	}
}

// Add is CNI ADD: veth into the pod, addresses from IPAM, routes, the host
// side (bridge port or host routes), masquerade. All or nothing.
func Add(args *skel.CmdArgs) error {
	err := add(args, os.Stdout)
	if err == nil {
		// add refused the plugin's own netns (openPod) before it made
		// anything; skel would check it again after ADD. Set only now, so
		// an exec'd IPAM plugin never saw an override the runtime did not
		// give.
		args.NetnsOverride = "1"
	}
	return toCNI(err)
}

// add runs ADD and writes the result to out.
func add(args *skel.CmdArgs, out io.Writer) (err error) {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	k8s, err := netconf.ParseArgs(args.Args)
	if err != nil {
		return err
	}
	log, closeLog := logger(conf)
	defer closeLog()
	log = log.With("containerID", args.ContainerID, "ifname", args.IfName)
	if pod := k8s.Pod(); pod != "" {
		log = log.With("pod", pod)
	}
	defer func() {
		if err != nil {
			log.Error("ADD failed", "err", err)
		}
	}()

	if err := netconf.ValidIfName(args.IfName); err != nil {
		return codeErr(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME %q: %v", args.IfName, err)
	}
	podNS, podH, err := openPod(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	defer podH.Close()
	// One socket for the host's requests (a zero Handle opens, binds and
	// closes one per request).
	hostH, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer hostH.Close()

	var rollback undo
	defer func() {
		if err != nil {
			rollback.run(log)
		}
	}()

	// podns-ipam runs in this process, alongside the bridge and veth work
	// (an exec'd IPAM runs after it, as before). Its rollback is pushed
	// first, so it runs last: the lease goes after the links. A repeated
	// ADD that fails because the attachment is still wired must not
	// release what the first ADD holds: only a fresh allocation, or one
	// whose interface this ADD replaced, is released.
	ctx := context.Background()
	parallelIPAM := ipamcall.InProcess(conf.IPAM.Type)
	vethMade := false
	var ipamOut *ipamOutcome
	var ipamDone chan ipamOutcome
	waitIPAM := func() ipamOutcome {
		if ipamOut == nil {
			o := <-ipamDone
			ipamOut = &o
		}
		return *ipamOut
	}
	if parallelIPAM {
		ipamDone = make(chan ipamOutcome, 1)
		go func() {
			var o ipamOutcome
			o.res, o.fresh, o.err = ipamcall.AddFresh(ctx, conf.IPAM.Type, args)
			ipamDone <- o
		}()
		rollback.push(func() error {
			if o := waitIPAM(); !o.fresh && !vethMade {
				return nil
			}
			return ipamcall.Del(ctx, conf.IPAM.Type, args)
		})
	}

	var br *netlink.Bridge
	masterIdx := 0
	if conf.Mode == netconf.ModeBridge {
		var created bool
		br, created, err = link.EnsureBridge(hostH, conf.Bridge, conf.MTU)
		if err != nil {
			if errors.Is(err, link.ErrNotBridge) {
				return codeErr(types.ErrInvalidNetworkConfig, "%v", err)
			}
			return err
		}
		if created {
			rollback.push(func() error { return link.DeleteBridgeIfUnused(hostH, br) })
		}
		masterIdx = br.Attrs().Index
	}

	hostName := link.HostVethName(conf.Name, args.ContainerID, args.IfName)
	veth, err := link.CreateVeth(hostH, link.VethSpec{
		HostName: hostName, PodName: args.IfName, PodNSFd: int(podNS),
		MTU: conf.MTU, PodMAC: conf.MAC, MasterIndex: masterIdx,
	})
	if err != nil {
		if errors.Is(err, link.ErrPodIfExists) {
			return codeErr(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME: %v", err)
		}
		return err
	}
	defer veth.Close()
	vethMade = true
	hostLink, podLink := veth.Host, veth.Pod
	rollback.push(func() error { return link.DeleteByName(hostH, hostName) })
	// The alias names the attachment (and pod) for GC and for people.
	alias := link.Alias(conf.Name, args.ContainerID, args.IfName, k8s.Pod())
	if br != nil {
		// A bridge port needs no IPv6 of its own.
		if err = veth.UpHost(alias, true); err != nil {
			return err
		}
	}
	if br != nil && conf.HairpinMode {
		if err = hostH.LinkSetHairpin(hostLink, true); err != nil {
			return fmt.Errorf("hairpin on %s: %w", hostName, err)
		}
	}

	var res *current.Result
	if parallelIPAM {
		o := waitIPAM()
		res, err = o.res, o.err
	} else {
		// The spec wants a delegate DEL'd even when its ADD failed: it may
		// have kept part of an allocation. The links go before the lease,
		// as in DEL: an address is never handed out again while this pod's
		// interface and host route still hold it.
		rollback.push(func() error {
			if err := link.DeleteByName(hostH, hostName); err != nil {
				return err
			}
			return ipamcall.Del(ctx, conf.IPAM.Type, args)
		})
		res, err = ipamcall.Add(ctx, conf.IPAM.Type, args)
	}
	if err != nil {
		return err
	}
	var m *asyncMasq
	if len(res.IPs) == 0 {
		return codeErr(types.ErrInvalidNetworkConfig, "ipam %s returned no addresses", conf.IPAM.Type)
	}
	for _, r := range res.Routes {
		if r == nil || r.Dst.IP == nil || r.Dst.Mask == nil {
			return codeErr(types.ErrInvalidNetworkConfig, "ipam %s returned a route without a destination", conf.IPAM.Type)
		}
	}
	for _, ipc := range res.IPs {
		if ipc == nil || ipc.Address.IP == nil || ipc.Address.Mask == nil {
			return codeErr(types.ErrInvalidNetworkConfig, "ipam %s returned an address entry without an address", conf.IPAM.Type)
		}
	}
	if conf.IPMasq {
		// Committed now, in parallel with the netlink work below; its
		// socket's close (the kernel's grace period) overlaps it too.
		var ipns []*net.IPNet
		for _, ipc := range res.IPs {
			a := ipc.Address
			ipns = append(ipns, &a)
		}
		m = startMasq(conf.Name, args.ContainerID, args.IfName, k8s.Pod(), ipns)
		defer m.join()
		rollback.push(m.undo)
	}

	if br == nil {
		// Routed: the host end is the pod's gateway, for IPv6 only when
		// the pod has an IPv6 address.
		if err = veth.UpHost(alias, !hasV6(res.IPs)); err != nil {
			return err
		}
	}

	// Interfaces in the result: the bridge (bridge mode), host veth, pod.
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: res.DNS}
	if result.DNS.IsEmpty() {
		result.DNS = conf.DNS
	}
	if br != nil {
		result.Interfaces = append(result.Interfaces, &current.Interface{Name: br.Attrs().Name, Mac: br.Attrs().HardwareAddr.String()})
	}
	result.Interfaces = append(result.Interfaces,
		&current.Interface{Name: hostName, Mac: hostLink.Attrs().HardwareAddr.String(), Mtu: conf.MTU},
		&current.Interface{Name: args.IfName, Mac: podLink.Attrs().HardwareAddr.String(), Mtu: conf.MTU, Sandbox: args.Netns})
	podIdx := len(result.Interfaces) - 1

	routed := conf.Mode == netconf.ModeRouted
	gws := map[bool]net.IP{} // by "is IPv6"
	var podIPs []*net.IPNet
	for _, ipc := range res.IPs {
		v6 := ipc.Address.IP.To4() == nil
		addr := ipc.Address
		gw := ipc.Gateway
		if gw == nil && (conf.Gateway || routed) {
			gw = firstIP(&addr)
		}
		if gw != nil && gw.Equal(addr.IP) {
			return codeErr(types.ErrInvalidNetworkConfig, "ipam gave the gateway %s as pod address", gw)
		}
		if routed {
			bits := 32
			if v6 {
				bits = 128
			}
			addr = net.IPNet{IP: addr.IP, Mask: net.CIDRMask(bits, bits)}
		}
		if err = link.AddAddr(podH, podLink, &addr); err != nil {
			return err
		}
		if gw != nil && gws[v6] == nil {
			gws[v6] = gw
		}
		podIPs = append(podIPs, &net.IPNet{IP: addr.IP, Mask: addr.Mask})
		result.IPs = append(result.IPs, &current.IPConfig{Address: addr, Gateway: gw, Interface: current.Int(podIdx)})

		switch {
		case routed:
			if err = link.AddAddr(hostH, hostLink, hostNet(gw)); err != nil {
				return err
			}
			if err = addRoute(hostH, &netlink.Route{LinkIndex: hostLink.Attrs().Index, Dst: hostNet(addr.IP), Scope: netlink.SCOPE_LINK}); err != nil {
				return fmt.Errorf("host route to %s: %w", addr.IP, err)
			}
		case conf.Gateway:
			// The gateway address lives on the shared bridge; it stays after DEL.
			if err = link.AddAddr(hostH, br, &net.IPNet{IP: gw, Mask: ipc.Address.Mask}); err != nil {
				return err
			}
		}
	}
	// Read (and, on a fresh node, write) once per family, not per address.
	if routed || conf.Gateway || conf.IPMasq {
		done := map[bool]bool{}
		for _, ipc := range res.IPs {
			v6 := ipc.Address.IP.To4() == nil
			if done[v6] {
				continue
			}
			if err = link.EnableForwarding(v6); err != nil {
				return err
			}
			done[v6] = true
		}
	}

	// A pod with no IPv6 address makes no IPv6 link-local address (IPv6
	// stays on). Otherwise every pod coming up sends DAD, MLD and router
	// solicitations to multicast, which a bridge floods to every port
	// (300 pods made at once cost the node ~2.7 s of CPU in the next 12 s,
	// 1000 pods ten times that), and in routed mode its host end and it
	// add IPv6 routes that every later link change walks; and the pod has
	// no IPv6 address or route to use it with.
	if !hasV6(res.IPs) {
		if err = podH.LinkSetIP6AddrGenMode(podLink, addrGenModeNone); err != nil {
			return fmt.Errorf("IPv6 address generation off on %s: %w", args.IfName, err)
		}
	}
	if err = podH.LinkSetUp(podLink); err != nil {
		return fmt.Errorf("set %s up: %w", args.IfName, err)
	}

	// Routes in the pod: a link route to the gateway when it is not on a
	// connected subnet (routed), a default route via the gateway, then IPAM's.
	haveDefault := map[bool]bool{}
	for _, r := range res.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			haveDefault[r.Dst.IP.To4() == nil] = true
		}
	}
	for v6, gw := range gws {
		if routed {
			if err = addRoute(podH, &netlink.Route{LinkIndex: podLink.Attrs().Index, Dst: hostNet(gw), Scope: netlink.SCOPE_LINK}); err != nil {
				return fmt.Errorf("pod route to gateway %s: %w", gw, err)
			}
		}
		if (conf.Gateway || routed) && !haveDefault[v6] {
			dst := defaultNet(v6)
			if err = addRoute(podH, &netlink.Route{LinkIndex: podLink.Attrs().Index, Dst: dst, Gw: gw}); err != nil {
				return fmt.Errorf("pod default route via %s: %w", gw, err)
			}
			result.Routes = append(result.Routes, &types.Route{Dst: *dst, GW: gw})
		}
	}
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			gw = gws[r.Dst.IP.To4() == nil]
		}
		dst := r.Dst
		rt := &netlink.Route{LinkIndex: podLink.Attrs().Index, Dst: &dst, Gw: gw, Priority: r.Priority, MTU: r.MTU, AdvMSS: r.AdvMSS}
		if gw == nil {
			rt.Scope = netlink.SCOPE_LINK
		}
		if err = addRoute(podH, rt); err != nil {
			return fmt.Errorf("pod route %s: %w", dst.String(), err)
		}
		rc := *r
		rc.GW = gw
		result.Routes = append(result.Routes, &rc)
	}

	if m != nil {
		// Wait here for the commit, not for the socket's close.
		if err = m.wait(); err != nil {
			return err
		}
	}

	log.Info("ADD", "hostVeth", hostName, "ips", fmt.Sprint(podIPs), "mode", conf.Mode)
	// The bytes types.PrintResult writes, without encoding/json building
	// its reflection caches in a process that lives a few milliseconds.
	return cniresult.Print(out, result, conf.CNIVersion)
}

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE: no automatic IPv6 addresses.
const addrGenModeNone = 1

func hasV6(ips []*current.IPConfig) bool {
	for _, ipc := range ips {
		if ipc.Address.IP.To4() == nil {
			return true
		}
	}
	return false
}

// ipamOutcome is what an IPAM ADD run alongside the link work returned.
type ipamOutcome struct {
	res   *current.Result
	fresh bool
	err   error
}

// asyncMasq adds an attachment's masquerade elements in the background.
type asyncMasq struct {
	network string
	ips     []net.IP
	res     chan error
	closed  chan struct{}
	err     error
	done    bool
}

func startMasq(network, containerID, ifname, pod string, ipns []*net.IPNet) *asyncMasq {
	m := &asyncMasq{network: network, res: make(chan error, 1), closed: make(chan struct{})}
	for _, ipn := range ipns {
		m.ips = append(m.ips, ipn.IP)
	}
	go func() {
		defer close(m.closed)
		c, err := masq.Open()
		if err != nil {
			m.res <- err
			return
		}
		m.res <- c.Add(network, containerID, ifname, pod, ipns)
		c.Close()
	}()
	return m
}

// wait returns the commit's outcome.
func (m *asyncMasq) wait() error {
	if !m.done {
		m.err, m.done = <-m.res, true
	}
	return m.err
}

// join waits until the goroutine is done with the socket: closed, or
// left to the kernel to release after exit (masq.ReleaseAfterExit).
func (m *asyncMasq) join() { <-m.closed }

// undo removes the elements again (rollback of a failed ADD).
func (m *asyncMasq) undo() error {
	_ = m.wait()
	c, err := masq.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.DelAddrs(m.network, m.ips); err != nil {
		return err
	}
	// This may have been the network's first pod.
	return c.PruneIfEmpty(m.network)
}

func addRoute(h *netlink.Handle, r *netlink.Route) error {
	if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// firstIP is the subnet's first host address: the gateway when IPAM names none.
func firstIP(ipn *net.IPNet) net.IP {
	ip := ipn.IP.Mask(ipn.Mask)
	out := make(net.IP, len(ip))
	copy(out, ip)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	return out
}

func hostNet(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

func defaultNet(v6 bool) *net.IPNet {
	if v6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}
