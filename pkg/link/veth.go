//go:build linux

package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VethSpec describes one veth pair, created from the host side with the
// peer placed straight into the pod's netns in the same request.
type VethSpec struct {
	HostName    string
	PodName     string
	PodNSFd     int
	MTU         int
	PodMAC      net.HardwareAddr // nil: a random one
	MasterIndex int              // bridge to enslave the host end to, 0 for none
}

// Veth is a pair CreateVeth made: both ends with index, name, MAC and MTU.
// Pod's index is in the pod netns. It keeps the route socket the create
// used, for UpHost; Close releases it.
type Veth struct {
	Host, Pod netlink.Link
	raw       map[int]*nl.SocketHandle
}

// Close releases the socket kept for UpHost.
func (v *Veth) Close() { v.raw[unix.NETLINK_ROUTE].Close() }

// ErrPodIfExists means the pod's netns already has an interface of that name.
var ErrPodIfExists = errors.New("interface already exists")

// CreateVeth makes the pair and enslaves the host end: one create request
// (the kernel enslaves in it) and one lookup for both ends' indexes (the
// host end's IFLA_LINK is its peer's), where the library's calls made two
// requests and two lookups. Both MACs are chosen here. Both ends stay down
// (UpHost brings the host end up). On error nothing is left.
//
// (Asking the kernel to echo the new link, NLM_F_ECHO, would save the
// lookup, but made 64 ADDs at once 25-30% slower here.)
func CreateVeth(h *netlink.Handle, s VethSpec) (*Veth, error) {
	hostMAC := randomMAC()
	podMAC := s.PodMAC
	if podMAC == nil {
		podMAC = randomMAC()
	}
	raw, err := openRaw()
	if err != nil {
		return nil, err
	}
	v := &Veth{raw: raw}
	if err := createVethPair(raw, s, hostMAC, podMAC); err != nil {
		v.Close()
		if errors.Is(err, unix.EEXIST) {
			// Tell apart a stale host end from a taken pod interface.
			if _, lerr := h.LinkByName(s.HostName); lerr == nil {
				return nil, fmt.Errorf("host veth %s: %w", s.HostName, ErrPodIfExists)
			}
			return nil, fmt.Errorf("%s in the pod netns: %w", s.PodName, ErrPodIfExists)
		}
		return nil, fmt.Errorf("create veth %s/%s: %w", s.HostName, s.PodName, err)
	}
	l, err := h.LinkByName(s.HostName)
	if err != nil {
		v.Close()
		_ = DeleteByName(h, s.HostName)
		return nil, fmt.Errorf("look up %s: %w", s.HostName, err)
	}
	host := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{
		Index: l.Attrs().Index, Name: s.HostName, MTU: l.Attrs().MTU, HardwareAddr: hostMAC, MasterIndex: s.MasterIndex,
	}}
	podIdx := l.Attrs().ParentIndex // the peer's index in its netns (IFLA_LINK)
	if podIdx == 0 {
		v.Close()
		_ = h.LinkDel(host)
		return nil, fmt.Errorf("veth %s: the kernel did not report its peer's index", s.HostName)
	}
	pod := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: podIdx, Name: s.PodName, MTU: host.MTU, HardwareAddr: podMAC}}
	v.Host, v.Pod = host, pod
	return v, nil
}

// UpHost sets the host end's alias and brings it up in one RTM_SETLINK,
// first switching IPv6 off on it when noIPv6 is set: a bridge port, or the
// host end of a pod with no IPv6 address, needs no link-local address, and
// each one brings IPv6 routes that every later link change on the node
// walks (fib6_ifdown), making ADD and DEL slower as pods accumulate.
func (v *Veth) UpHost(alias string, noIPv6 bool) error {
	name := v.Host.Attrs().Name
	if noIPv6 {
		f := "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"
		// A kernel without IPv6 has no such file: nothing to switch off.
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("disable IPv6 on %s: %w", name, err)
		}
	}
	if err := setAliasUp(v.raw, v.Host.Attrs().Index, alias); err != nil {
		return fmt.Errorf("set alias of %s and bring it up: %w", name, err)
	}
	v.Host.Attrs().Alias = alias
	v.Host.Attrs().Flags |= net.FlagUp
	return nil
}

// openRaw opens a route netlink socket in the current netns for the
// requests the library has no call for.
func openRaw() (map[int]*nl.SocketHandle, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}, nil
}

// createVethPair sends the create request: both ends named, MTU and MAC
// set, the peer straight into the pod's netns, the host end on its bridge.
func createVethPair(sockets map[int]*nl.SocketHandle, s VethSpec, hostMAC, podMAC net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.Sockets = sockets
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.HostName)))
	if s.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU))))
	}
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, hostMAC))
	// One TX and one RX queue per end, the number the kernel leaves in
	// use anyway: given no count, veth allocates one per possible CPU and
	// then cuts the real count to one, which waits for an expedited RCU
	// grace period per end (ADD 0.2 ms slower here). A pod's veth has no
	// use for more; ethtool -L cannot raise them later.
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(1)))
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(1)))
	// The kernel enslaves in the create and unregisters the pair if that
	// fails, so no half-made pair is left.
	if s.MasterIndex != 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(s.MasterIndex))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.PodName))
	if s.MTU > 0 {
		peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU)))
	}
	peer.AddRtAttr(unix.IFLA_ADDRESS, podMAC)
	peer.AddRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(1))
	peer.AddRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(1))
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(s.PodNSFd)))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// setAliasUp sets the alias and IFF_UP in one RTM_SETLINK.
func setAliasUp(sockets map[int]*nl.SocketHandle, idx int, alias string) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	req.Sockets = sockets
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	if alias != "" {
		req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(alias)))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// randomMAC is a random locally administered unicast Ethernet address. It
// names a port on one node's bridge: it needs to be unlikely to repeat, not
// unpredictable, so it comes from the runtime's generator (no getrandom
// state to map in a process that lives a few milliseconds).
func randomMAC() net.HardwareAddr {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], rand.Uint64())
	m := net.HardwareAddr(b[:6])
	m[0] = m[0]&0xfe | 0x02
	return m
}
