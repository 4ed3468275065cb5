//go:build linux

package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/ipamcall"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/netconf"
)

// Del is CNI DEL: remove the host veth (and with it the pod end) and the
// masquerade elements, then release IPAM. Nothing here needs the pod's
// netns, so it works the same when the netns, link or lease is already
// gone. The network's chain and sets stay, like its bridge, for the next
// pod; CNI GC removes them once no attachment is left. Del starts its
// finisher (pkg/finisher) once it knows there is a host veth; DelWith
// takes one started earlier.
func Del(args *skel.CmdArgs) error { return delChecked(args, nil, nil) }

// DelWith returns DEL for a plugin that started fin before the CNI
// arguments were even read, so the child's start overlaps all of DEL's
// own (startErr, when fin is nil, says why there is none; DEL then deletes
// in-process). DEL owns fin: it has it delete the host veth, or cancels it
// as soon as there is nothing to delete or DEL fails; it never waits for
// it to exit.
func DelWith(fin *finisher.Child, startErr error) func(*skel.CmdArgs) error {
	if fin == nil && startErr == nil {
		startErr = errors.New("no finisher given")
	}
	return func(args *skel.CmdArgs) error { return delChecked(args, fin, startErr) }
}

// delChecked refuses CNI_NETNS when it is the plugin's own netns, before
// anything is torn down (as Invoke does), runs del, and then turns skel's
// own check off (as Add does): skel checks after DEL by locking an OS
// thread, which starts the runtime's template thread in a DEL that never
// needed one, and by opening both namespaces, 0.35 ms of a DEL on a node
// with 1000 pods, where two stats do.
func delChecked(args *skel.CmdArgs, fin *finisher.Child, startErr error) error {
	if err := refuseOwnNetNS(args); err != nil {
		fin.Cancel()
		return err
	}
	if err := del(args, fin, startErr); err != nil {
		return toCNI(err)
	}
	args.NetnsOverride = "1"
	return nil
}

// refuseOwnNetNS is skel's DEL check of CNI_NETNS against the plugin's own
// netns, unless the runtime allowed it (CNI_NETNS_OVERRIDE). A path that
// does not stat (the pod's netns is gone) is not ours: its DEL must still
// release what the attachment holds.
func refuseOwnNetNS(args *skel.CmdArgs) error {
	if netnsOverridden(args.NetnsOverride) || args.Netns == "" {
		return nil
	}
	var st unix.Stat_t
	if unix.Stat(args.Netns, &st) != nil {
		return nil
	}
	own, err := ownNetNS(&st)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	}
	if own {
		return types.NewError(types.ErrInvalidNetNS, "plugin's netns and netns from CNI_NETNS should not be the same", "")
	}
	return nil
}

// netnsOverridden is skel's reading of CNI_NETNS_OVERRIDE: the runtime
// allows the plugin's own netns.
func netnsOverridden(v string) bool { return strings.ToUpper(v) == "TRUE" || v == "1" }

// del runs DEL with an early finisher fin, or none because of finErr, or
// (both nil) one it starts itself when there is a host veth.
func del(args *skel.CmdArgs, fin *finisher.Child, finErr error) error {
	// Every return before the hand-over lets the child go at once.
	defer fin.Cancel()
	conf, err := netconf.ParseForDel(args.StdinData)
	if err != nil {
		return err
	}
	k8s, _ := netconf.ParseArgs(args.Args)
	log, closeLog := logger(conf)
	defer closeLog()
	log = log.With("containerID", args.ContainerID, "ifname", args.IfName, "pod", k8s.Pod())

	// Links and masquerade go first, the lease last: an address must not
	// be handed to a new pod while the old pod's interface or element still
	// holds it.
	hostH := &netlink.Handle{}
	host := link.HostVethName(conf.Name, args.ContainerID, args.IfName)
	hostIdx := 0
	hostLink, err := hostH.LinkByName(host)
	if err == nil {
		hostIdx = hostLink.Attrs().Index
	} else if !link.IsNotFound(err) {
		return fmt.Errorf("look up %s: %w", host, err)
	}
	// The kernel's slow part of deleting the veth (and of releasing the
	// nftables socket) is left to a child. One started early waits for its
	// work already: it deletes the link now, while the masquerade work
	// below runs. Otherwise one is started now, so its start overlaps that
	// work, and deletes the link after it.
	var finStarted chan *finisher.Child
	var early *finisher.Delete
	switch {
	case hostIdx == 0:
		fin.Cancel()
		fin = nil
	case fin != nil:
		early = fin.StartDelete(hostIdx)
	case finErr != nil:
		log.Warn("no finisher; deleting in-process", "err", finErr)
	default:
		finStarted = make(chan *finisher.Child, 1)
		go func() {
			fin, err := finisher.Start()
			if err != nil {
				log.Warn("no finisher; deleting in-process", "err", err)
			}
			finStarted <- fin
		}()
	}

	var errs []error
	// Always look: ipMasq may have been switched off since ADD.
	mc, err := masq.Open()
	if err != nil {
		errs = append(errs, err)
	} else {
		ips, ok, lerr := ipamcall.Addrs(conf.IPAM.Type, args)
		switch {
		case lerr != nil:
			errs = append(errs, lerr)
		case ok && len(ips) > 0 && conf.IPMasq:
			err = mc.DelAddrs(conf.Name, ips)
		case ok && len(ips) > 0:
			// ipMasq is off now; it may have been on at ADD. Asking first
			// spares a transaction that fails on a missing set.
			err = mc.DelAddrsIfSet(conf.Name, ips)
		default:
			// IPAM that cannot be asked, or holds nothing (a repeated DEL):
			// find the elements by the attachment's key.
			err = mc.DelKey(conf.Name, args.ContainerID, args.IfName)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}

	if finStarted != nil {
		fin = <-finStarted
	}
	handed := false
	switch {
	case fin != nil:
		var held []int
		if mc != nil {
			if fd, err := mc.Dup(); err == nil {
				held = append(held, fd)
			}
		}
		if early == nil {
			early = fin.StartDelete(hostIdx)
		}
		if err := early.Finish(held...); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", host, err))
		}
		for _, fd := range held {
			unix.Close(fd)
		}
		handed = len(held) > 0
	case hostIdx > 0:
		// No finisher: the link found above is deleted here, by its index.
		if err := hostH.LinkDel(hostLink); err != nil && !link.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", host, err))
		}
	}
	// Closed here, after its duplicate went to the finisher: the kernel's
	// wait on release happens there, not in this process.
	switch {
	case mc == nil:
	case handed:
		mc.CloseShared()
	default:
		mc.Close()
	}
	// The lease goes while the kernel still tears the link down (under
	// RTNL, which any new use of the address needs first); DEL returns only
	// once the link is unlisted.
	if conf.IPAM.Type != "" && len(errs) == 0 {
		if err := ipamcall.Del(context.Background(), conf.IPAM.Type, args); err != nil {
			errs = append(errs, err)
		}
	}
	if early != nil {
		if err := early.Gone(); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", host, err))
		}
	}
	if len(errs) > 0 {
		log.Error("DEL failed", "err", errors.Join(errs...))
		return errs[0]
	}
	log.Info("DEL", "hostVeth", host)
	return nil
}

// Check is CNI CHECK: IPAM first, then the pod interface, its addresses and
// routes, the host side and the masquerade rules against prevResult.
func Check(args *skel.CmdArgs) error { return toCNI(check(args)) }

func check(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return codeErr(types.ErrInvalidNetworkConfig, "CHECK needs prevResult")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return codeErr(types.ErrDecodingFailure, "prevResult: %v", err)
	}
	if err := ipamcall.Check(context.Background(), conf.IPAM.Type, args); err != nil {
		return err
	}

	podIdx := -1
	for i, in := range prev.Interfaces {
		if in != nil && in.Name == args.IfName && in.Sandbox != "" {
			podIdx = i
		}
	}
	if podIdx < 0 {
		return fmt.Errorf("prevResult has no interface %s in a sandbox", args.IfName)
	}
	want := prev.Interfaces[podIdx]

	podNS, podH, err := openPod(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	defer podH.Close()
	pl, err := podH.LinkByName(args.IfName)
	if err != nil {
		return fmt.Errorf("interface %s in %s: %w", args.IfName, args.Netns, err)
	}
	if want.Mac != "" && want.Mac != pl.Attrs().HardwareAddr.String() {
		return fmt.Errorf("interface %s has MAC %s, prevResult says %s", args.IfName, pl.Attrs().HardwareAddr, want.Mac)
	}
	if conf.MTU != 0 && pl.Attrs().MTU != conf.MTU {
		return fmt.Errorf("interface %s has MTU %d, config says %d", args.IfName, pl.Attrs().MTU, conf.MTU)
	}
	if pl.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down", args.IfName)
	}

	addrs, err := retryDump(func() ([]netlink.Addr, error) { return podH.AddrList(pl, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", args.IfName, err)
	}
	var podIPs []*net.IPNet
	for _, ipc := range prev.IPs {
		if ipc == nil || ipc.Interface != nil && *ipc.Interface != podIdx {
			continue
		}
		found := false
		for _, a := range addrs {
			if a.IP.Equal(ipc.Address.IP) && a.Mask.String() == ipc.Address.Mask.String() {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("address %s missing on %s", ipc.Address.String(), args.IfName)
		}
		a := ipc.Address
		podIPs = append(podIPs, &a)
	}

	routes, err := retryDump(func() ([]netlink.Route, error) { return podH.RouteList(pl, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", args.IfName, err)
	}
	for _, r := range prev.Routes {
		if r == nil {
			continue
		}
		if !haveRoute(routes, r) {
			return fmt.Errorf("route %s missing in %s", r.String(), args.Netns)
		}
	}

	hostH := &netlink.Handle{}
	hostName := link.HostVethName(conf.Name, args.ContainerID, args.IfName)
	hl, err := hostH.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("host veth %s: %w", hostName, err)
	}
	if conf.Mode == netconf.ModeBridge {
		br, err := hostH.LinkByName(conf.Bridge)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", conf.Bridge, err)
		}
		if hl.Attrs().MasterIndex != br.Attrs().Index {
			return fmt.Errorf("host veth %s is not a port of bridge %s", hostName, conf.Bridge)
		}
	} else {
		hroutes, err := retryDump(func() ([]netlink.Route, error) { return hostH.RouteList(hl, netlink.FAMILY_ALL) })
		if err != nil {
			return fmt.Errorf("list routes of %s: %w", hostName, err)
		}
		for _, ip := range podIPs {
			if !haveRoute(hroutes, &types.Route{Dst: *hostNet(ip.IP)}) {
				return fmt.Errorf("host route to %s via %s missing", ip.IP, hostName)
			}
		}
	}
	if conf.IPMasq {
		if err := masq.Check(conf.Name, args.ContainerID, args.IfName, podIPs); err != nil {
			return err
		}
	}
	return nil
}

func haveRoute(routes []netlink.Route, want *types.Route) bool {
	wantOnes, _ := want.Dst.Mask.Size()
	for _, r := range routes {
		if r.Dst == nil {
			// The kernel's default route has no RTA_DST.
			if wantOnes != 0 {
				continue
			}
			if (r.Gw == nil) != (want.GW == nil) || (want.GW != nil && !r.Gw.Equal(want.GW)) {
				continue
			}
			if (r.Gw != nil && (r.Gw.To4() == nil) != (want.Dst.IP.To4() == nil)) || (r.Gw == nil && r.Family == unix.AF_INET6 != (want.Dst.IP.To4() == nil)) {
				continue
			}
			return true
		}
		if r.Dst.String() != want.Dst.String() {
			continue
		}
		if want.GW != nil && !want.GW.Equal(r.Gw) {
			continue
		}
		return true
	}
	return false
}

// Status is CNI STATUS: can an ADD be served now? IPAM is asked, the bridge
// name must not be taken by another kind of link, nftables must answer.
func Status(args *skel.CmdArgs) error { return toCNI(status(args)) }

func status(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	if conf.Mode == netconf.ModeBridge {
		l, err := (&netlink.Handle{}).LinkByName(conf.Bridge)
		if err == nil {
			if _, ok := l.(*netlink.Bridge); !ok {
				return codeErr(types.ErrPluginNotAvailable, "bridge %s is unusable: it exists as a %s link", conf.Bridge, l.Type())
			}
			// ADD would bring it up, but the pods already on it are cut off now.
			if l.Attrs().Flags&net.FlagUp == 0 {
				return codeErr(types.ErrLimitedConnectivity, "bridge %s is down: pods on it have no connectivity", conf.Bridge)
			}
		} else if link.IsNotFound(err) {
			// Gone while host veths of this network remain: their pods are cut off.
			if links, lerr := link.List(&netlink.Handle{}); lerr == nil {
				for _, hl := range links {
					if link.OfNetwork(hl.Attrs().Alias, conf.Name) {
						return codeErr(types.ErrLimitedConnectivity, "bridge %s is gone but pods of network %s remain (e.g. host veth %s)", conf.Bridge, conf.Name, hl.Attrs().Name)
					}
				}
			}
		} else {
			return codeErr(types.ErrPluginNotAvailable, "bridge %s: %v", conf.Bridge, err)
		}
	}
	if conf.IPMasq {
		c, err := nftables.New()
		if err == nil {
			_, err = c.ListTableOfFamily(masq.TableName, nftables.TableFamilyINet)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return codeErr(types.ErrPluginNotAvailable, "nftables unusable for ipMasq: %v", err)
		}
	}
	if err := ipamcall.Status(context.Background(), conf.IPAM.Type, args); err != nil {
		var te *types.Error
		if errors.As(err, &te) && (te.Code == types.ErrPluginNotAvailable || te.Code == types.ErrLimitedConnectivity) {
			return err
		}
		return codeErr(types.ErrPluginNotAvailable, "%v", err)
	}
	return nil
}

// GC is CNI GC: remove host links and masquerade rules of this network's
// attachments that cni.dev/valid-attachments does not list, keep going on
// errors, then let IPAM release its stale allocations.
func GC(args *skel.CmdArgs) error { return toCNI(gc(args)) }

func gc(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := logger(conf)
	defer closeLog()
	// Valid attachments by the names their state is found under: host veth
	// name and masquerade key, both digests, so no field can be cut short.
	validLinks, validKeys := map[string]bool{}, map[string]bool{}
	for _, a := range conf.ValidAttachments {
		validLinks[link.HostVethName(conf.Name, a.ContainerID, a.IfName)] = true
		validKeys[masq.Key(a.ContainerID, a.IfName)] = true
	}
	var errs []error
	hostH := &netlink.Handle{}
	links, err := link.List(hostH)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range links {
		if validLinks[l.Attrs().Name] {
			continue
		}
		// The alias says whose a link is; a host veth without one was
		// left by an ADD killed right after creating it.
		if alias := l.Attrs().Alias; alias != "" && !link.OfNetwork(alias, conf.Name) ||
			alias == "" && !link.IsHostVethOf(l, conf.Name) {
			continue
		}
		if err := hostH.LinkDel(l); err != nil && !link.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete stale %s: %w", l.Attrs().Name, err))
			continue
		}
		ai, _ := link.ParseAliasInfo(l.Attrs().Alias)
		log.Info("GC removed host veth", "hostVeth", l.Attrs().Name, "containerID", ai.ContainerID, "ifname", ai.IfName, "pod", ai.Pod)
	}
	if err := masq.Remove(conf.Name, func(r masq.Rule) bool {
		if validKeys[r.Key] {
			return false
		}
		log.Info("GC removes masquerade elements", "containerID", r.ContainerID, "ifname", r.IfName)
		return true
	}); err != nil {
		errs = append(errs, err)
	} else if err := masq.Prune(conf.Name); err != nil {
		errs = append(errs, err)
	}
	if err := ipamcall.GC(context.Background(), conf.IPAM.Type, args); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		log.Error("GC incomplete", "err", errors.Join(errs...))
		return errors.Join(errs...)
	}
	return nil
}

// retryDump repeats a netlink dump the kernel marked as interrupted by a
// concurrent change, so CHECK never judges from partial data.
func retryDump[T any](f func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for i := 0; i < 10; i++ {
		if out, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}
