//go:build linux

package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultProtocol marks podns-node's routes (`ip route ... proto 211`); it is
// not one of the numbers in iproute2's rt_protos.
const DefaultProtocol = 211

// Manager applies plans to the main routing table of one network namespace.
type Manager struct {
	Handle   *netlink.Handle // nil: the calling thread's netns
	Protocol netlink.RouteProtocol
}

func (m *Manager) h() *netlink.Handle {
	if m.Handle != nil {
		return m.Handle
	}
	return &netlink.Handle{}
}

// Owned lists the main-table routes carrying the agent's protocol.
func (m *Manager) Owned() ([]Route, error) {
	rs, err := m.h().RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Protocol: m.Protocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes with protocol %d: %w", m.Protocol, err)
	}
	var out []Route
	for _, r := range rs {
		if rt, ok := toRoute(r); ok {
			out = append(out, rt)
		}
	}
	return out, nil
}

// foreignAt lists main-table routes to dst that are not the agent's.
func (m *Manager) foreignAt(dst netip.Prefix) ([]Route, error) {
	fam := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	rs, err := m.h().RouteListFiltered(fam, &netlink.Route{Dst: ipNet(dst), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes to %s: %w", dst, err)
	}
	var out []Route
	for _, r := range rs {
		if r.Protocol == m.Protocol {
			continue
		}
		out = append(out, Route{Dst: dst})
	}
	return out, nil
}

// Result tells what a Sync did.
type Result struct {
	Plan   Plan
	Owned  int // owned routes after the sync
	Errors []error
}

// Sync makes the owned routes match want. It keeps going past a failing
// route (say, a gateway not on any link yet) and reports every error.
func (m *Manager) Sync(want map[netip.Prefix]netip.Addr) (Result, error) {
	owned, err := m.Owned()
	if err != nil {
		return Result{}, err
	}
	var foreign []Route
	have := map[netip.Prefix]bool{}
	for _, r := range owned {
		have[r.Dst] = true
	}
	for dst := range want {
		if have[dst] {
			continue
		}
		f, err := m.foreignAt(dst)
		if err != nil {
			return Result{}, err
		}
		foreign = append(foreign, f...)
	}
	p := MakePlan(want, owned, foreign)
	res := Result{Plan: p, Owned: len(owned)}
	for _, r := range p.Delete {
		if err := m.h().RouteDel(m.nl(r)); err != nil && !errors.Is(err, unix.ESRCH) {
			res.Errors = append(res.Errors, fmt.Errorf("delete route %s: %w", r, err))
			continue
		}
		res.Owned--
	}
	for _, r := range p.Replace {
		if err := m.h().RouteReplace(m.nl(r)); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("replace route %s: %w", r, err))
		}
	}
	for _, r := range p.Add {
		// RouteAdd, not Replace: if a foreign route appeared since we looked,
		// the kernel refuses with EEXIST instead of us overwriting it.
		if err := m.h().RouteAdd(m.nl(r)); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("add route %s: %w", r, err))
			continue
		}
		res.Owned++
	}
	return res, nil
}

func (m *Manager) nl(r Route) *netlink.Route {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Protocol: m.Protocol, Table: unix.RT_TABLE_MAIN}
	if r.Gw.IsValid() {
		nr.Gw = net.IP(r.Gw.AsSlice())
	}
	return nr
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func toRoute(r netlink.Route) (Route, bool) {
	if r.Dst == nil {
		return Route{}, false // a default route is never one of ours
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return Route{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	out := Route{Dst: netip.PrefixFrom(a.Unmap(), ones)}
	if r.Gw != nil {
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			out.Gw = gw.Unmap()
		}
	}
	return out, true
}
