//go:build linux

// Package link creates and removes the links podns wires a pod with: the
// veth pair, the bridge, addresses and routes, and the sysctls they need.
package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/digest"
)

// AliasPrefix starts the alias of every host veth podns creates, so GC can
// tell its links from anyone else's.
const AliasPrefix = "podns "

// HostVethName is the host end's name for one attachment: derived from the
// network, container ID and interface, so DEL and GC find it without the
// pod's netns or any state.
//
// The name starts with the network's own prefix (HostVethPrefix), so GC can
// still tell the network's links when a kill -9 between creating the veth
// and setting its alias (the kernel ignores an alias in the create request)
// left one without an alias.
func HostVethName(network, containerID, ifname string) string {
	return HostVethPrefix(network) + digest.Hex(9, network, containerID, ifname)
}

// HostVethPrefix is how the names of a network's host veths begin: "pn" and
// four hex digits of the network name's digest.
func HostVethPrefix(network string) string {
	return "pn" + netHash(network)[:4]
}

// IsHostVethOf reports whether a link is one of network's host veths by its
// name and type alone (for a link whose alias is missing).
func IsHostVethOf(l netlink.Link, network string) bool {
	name := l.Attrs().Name
	return l.Type() == "veth" && len(name) == 15 && strings.HasPrefix(name, HostVethPrefix(network))
}

// netHash is a short digest of the network name: it leads the alias, so
// GC can tell its network's links apart even when a long container ID or
// network name gets the alias cut at the kernel's 255 bytes.
func netHash(network string) string {
	return digest.Hex(12, network)
}

// Alias is what podns writes into a host veth's alias: the network's hash,
// then the attachment and pod for people and logs (those may be cut short).
func Alias(network, containerID, ifname, pod string) string {
	s := fmt.Sprintf("%snh=%s if=%s id=%s", AliasPrefix, netHash(network), ifname, containerID)
	if pod != "" {
		s += " pod=" + pod
	}
	s += " net=" + network
	if len(s) > 255 {
		s = s[:255]
	}
	return s
}

// AliasInfo is what ParseAlias reads back; all but NetHash may be cut short.
type AliasInfo struct {
	NetHash, Network, ContainerID, IfName, Pod string
}

// ParseAlias returns the attachment fields of an alias written by Alias
// (any of them may be cut short; OfNetwork is the reliable network test).
func ParseAlias(alias string) (network, containerID, ifname, pod string, ok bool) {
	a, ok := ParseAliasInfo(alias)
	return a.Network, a.ContainerID, a.IfName, a.Pod, ok
}

// ParseAliasInfo reads an alias written by Alias; ok is false for other links.
func ParseAliasInfo(alias string) (AliasInfo, bool) {
	var a AliasInfo
	if !strings.HasPrefix(alias, AliasPrefix) {
		return a, false
	}
	for _, f := range strings.Fields(alias[len(AliasPrefix):]) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "nh":
			a.NetHash = v
		case "net":
			a.Network = v
		case "id":
			a.ContainerID = v
		case "if":
			a.IfName = v
		case "pod":
			a.Pod = v
		}
	}
	return a, a.NetHash != ""
}

// OfNetwork reports whether an alias marks a host veth of this network.
func OfNetwork(alias, network string) bool {
	a, ok := ParseAliasInfo(alias)
	return ok && a.NetHash == netHash(network)
}

// ErrNotBridge is returned when the configured bridge name is taken by a
// link of another kind.
var ErrNotBridge = errors.New("exists and is not a bridge")

// EnsureBridge returns the named bridge, creating it (up) if missing;
// created tells whether this call made it.
func EnsureBridge(h *netlink.Handle, name string, mtu int) (br *netlink.Bridge, created bool, err error) {
	l, err := h.LinkByName(name)
	if err == nil {
		br, ok := l.(*netlink.Bridge)
		if !ok {
			return nil, false, fmt.Errorf("bridge %s: %w (it is a %s)", name, ErrNotBridge, l.Type())
		}
		if br.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(br); err != nil {
				return nil, false, fmt.Errorf("set bridge %s up: %w", name, err)
			}
		}
		return br, false, nil
	}
	if !IsNotFound(err) {
		return nil, false, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	la.Flags = net.FlagUp
	// A bridge without a MAC of its own takes its lowest port's and changes
	// it as pods come and go, leaving pods with a stale gateway neighbour
	// entry. One set at creation stays.
	la.HardwareAddr = randomMAC()
	// No multicast snooping: with it, adding or removing any port walks
	// every port's multicast state (br_port_state_selection ->
	// br_multicast_enable_port), O(pods) per ADD and DEL, while a pod
	// bridge has no multicast querier, so unregistered multicast was
	// flooded to every port all the same.
	snooping := false
	br = &netlink.Bridge{LinkAttrs: la, MulticastSnooping: &snooping}
	created = true
	if err := h.LinkAdd(br); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nil, false, fmt.Errorf("create bridge %s: %w", name, err)
		}
		created = false // another ADD made it first
	}
	l, err = h.LinkByName(name)
	if err != nil {
		return nil, false, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, false, fmt.Errorf("bridge %s: %w", name, ErrNotBridge)
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return nil, false, fmt.Errorf("set bridge %s up: %w", name, err)
		}
	}
	return br, created, nil
}

// DeleteBridgeIfUnused removes a bridge that has no ports: the undo of an
// EnsureBridge that created it, which must not cut off pods that joined
// meanwhile.
func DeleteBridgeIfUnused(h *netlink.Handle, br netlink.Link) error {
	links, err := List(h)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return nil
		}
	}
	if err := h.LinkDel(br); err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete bridge %s: %w", br.Attrs().Name, err)
	}
	return nil
}

// DeleteByName removes a link; a missing link is not an error.
func DeleteByName(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		if IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// IsNotFound reports whether a netlink error means "no such link/address/route".
func IsNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// AddAddr adds an address without duplicate address detection, so the pod
// can use an IPv6 address at once; an address already there is fine.
func AddAddr(h *netlink.Handle, l netlink.Link, ipn *net.IPNet) error {
	a := &netlink.Addr{IPNet: ipn}
	if ipn.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", ipn, l.Attrs().Name, err)
	}
	return nil
}

// EnableForwarding turns on IPv4 or IPv6 forwarding in the current netns,
// writing only when it is off.
//
// plugins' pkg/ip has the same helper, but importing it links iptables,
// knftables and ethtool packages into every ADD's process start.
func EnableForwarding(v6 bool) error {
	f := "/proc/sys/net/ipv4/ip_forward"
	if v6 {
		f = "/proc/sys/net/ipv6/conf/all/forwarding"
	}
	on, err := forwarding(v6)
	if err != nil {
		// A kernel that does not answer for the family over netlink.
		b, ferr := os.ReadFile(f)
		if ferr != nil {
			return fmt.Errorf("read %s: %w", f, ferr)
		}
		on = strings.TrimSpace(string(b)) == "1"
	}
	if on {
		return nil
	}
	if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding %s: %w", f, err)
	}
	return nil
}

// Attributes of a netconf message (linux/netconf.h).
const (
	netconfaIfindex    = 1
	netconfaForwarding = 2
	netconfaIfindexAll = -1 // the family's "all" settings
)

// forwarding reads the family's forwarding switch (net.ipv4.ip_forward,
// net.ipv6.conf.all.forwarding) with one RTM_GETNETCONF. Reading it from
// /proc/sys costs a path lookup that compares the name against a dentry of
// every netns in which anything ever opened /proc/sys/net (runc does, for
// the sysctls containerd sets in each pod): 0.15-0.2 ms per read on a node
// with 1000 such netns, 1.2 ms of an ADD under load.
func forwarding(v6 bool) (bool, error) {
	fam := uint8(unix.AF_INET)
	if v6 {
		fam = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNETCONF, 0)
	req.AddData(netconfMsg(fam))
	all := int32(netconfaIfindexAll)
	req.AddData(nl.NewRtAttr(netconfaIfindex, nl.Uint32Attr(uint32(all))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNETCONF)
	if err != nil {
		return false, fmt.Errorf("netconf of family %d: %w", fam, err)
	}
	for _, m := range msgs {
		if len(m) < unix.NLMSG_ALIGNTO {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.NLMSG_ALIGNTO:])
		if err != nil {
			return false, fmt.Errorf("netconf of family %d: %w", fam, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netconfaForwarding && len(a.Value) >= 4 {
				return nl.NativeEndian().Uint32(a.Value) != 0, nil
			}
		}
	}
	return false, fmt.Errorf("netconf of family %d: no forwarding attribute", fam)
}

// netconfMsg is struct netconfmsg: the family, padded to the alignment.
type netconfMsg uint8

func (m netconfMsg) Len() int          { return unix.NLMSG_ALIGNTO }
func (m netconfMsg) Serialize() []byte { return []byte{byte(m), 0, 0, 0} }

// List dumps all links. The kernel flags a dump that raced with a link
// change as interrupted (common on a busy node); it is retried rather than
// trusting partial data. A node with thousands of links and hundreds of
// link changes a second rarely gives a clean dump at once, so after a few
// tries it pauses briefly between attempts (never on ADD's success path).
func List(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for i := 0; i < 100; i++ {
		var links []netlink.Link
		links, err = h.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
		if i >= 5 {
			time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		}
	}
	return nil, fmt.Errorf("list links: %w", err)
}
