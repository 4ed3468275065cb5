// Package routes computes and applies the routes that send every other
// node's pod CIDR to that node's InternalIP. Routes the agent installs carry
// a dedicated route protocol number; anything else is never changed.
package routes

import (
	"fmt"
	"net/netip"
	"sort"
)

// Node is what route planning needs from a Kubernetes Node.
type Node struct {
	Name        string
	PodCIDRs    []netip.Prefix
	InternalIPs []netip.Addr
}

// Route is one destination prefix routed via one gateway.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Gw.String() }

// Desired returns the routes node self needs: each other node's pod CIDRs
// via that node's InternalIP of the same family. Problems that make a node
// unroutable (no address of the family, a CIDR claimed twice or overlapping
// our own) are reported as warnings and the node's CIDR is skipped.
func Desired(self string, nodes []Node) (map[netip.Prefix]netip.Addr, []string) {
	sorted := append([]Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var own []netip.Prefix
	for _, n := range sorted {
		if n.Name == self {
			own = append(own, n.PodCIDRs...)
		}
	}
	want := map[netip.Prefix]netip.Addr{}
	owner := map[netip.Prefix]string{}
	var warns []string
	for _, n := range sorted {
		if n.Name == self {
			continue
		}
		for _, c := range n.PodCIDRs {
			c = c.Masked()
			if overlapsAny(c, own) {
				warns = append(warns, fmt.Sprintf("node %s: pod CIDR %s overlaps this node's pod CIDRs, skipped", n.Name, c))
				continue
			}
			gw, ok := sameFamily(c, n.InternalIPs)
			if !ok {
				warns = append(warns, fmt.Sprintf("node %s: no InternalIP of the family of %s, skipped", n.Name, c))
				continue
			}
			if prev, dup := owner[c]; dup {
				warns = append(warns, fmt.Sprintf("node %s: pod CIDR %s already belongs to node %s, skipped", n.Name, c, prev))
				continue
			}
			owner[c] = n.Name
			want[c] = gw
		}
	}
	return want, warns
}

func sameFamily(c netip.Prefix, addrs []netip.Addr) (netip.Addr, bool) {
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() == c.Addr().Is4() && a.IsValid() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func overlapsAny(c netip.Prefix, list []netip.Prefix) bool {
	for _, o := range list {
		if c.Overlaps(o) {
			return true
		}
	}
	return false
}

// Plan is the set of changes that turns the kernel's owned routes into the
// desired ones.
type Plan struct {
	Add       []Route // no route to Dst yet
	Replace   []Route // an owned route to Dst has another gateway
	Delete    []Route // owned routes nobody wants any more
	Conflicts []Route // wanted, but a foreign route holds Dst: left alone
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Add)+len(p.Replace)+len(p.Delete) == 0 }

// MakePlan compares the desired routes with the routes the agent owns and
// the foreign routes on the same destinations. It never plans a change to a
// foreign route.
func MakePlan(want map[netip.Prefix]netip.Addr, owned, foreign []Route) Plan {
	var p Plan
	have := map[netip.Prefix][]Route{}
	for _, r := range owned {
		have[r.Dst] = append(have[r.Dst], r)
	}
	theirs := map[netip.Prefix]bool{}
	for _, r := range foreign {
		theirs[r.Dst] = true
	}
	for dst, gw := range want {
		cur := have[dst]
		switch {
		case len(cur) == 1 && cur[0].Gw == gw:
		case len(cur) > 0:
			p.Replace = append(p.Replace, Route{dst, gw})
			for _, r := range cur[1:] {
				p.Delete = append(p.Delete, r) // duplicates left by someone else's tool
			}
		case theirs[dst]:
			p.Conflicts = append(p.Conflicts, Route{dst, gw})
		default:
			p.Add = append(p.Add, Route{dst, gw})
		}
	}
	for _, r := range owned {
		if _, ok := want[r.Dst]; !ok {
			p.Delete = append(p.Delete, r)
		}
	}
	for _, l := range [][]Route{p.Add, p.Replace, p.Delete, p.Conflicts} {
		sort.Slice(l, func(i, j int) bool { return l[i].String() < l[j].String() })
	}
	return p
}
