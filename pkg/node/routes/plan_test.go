package routes

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestDesired(t *testing.T) {
	nodes := []Node{
		{Name: "a", PodCIDRs: []netip.Prefix{pfx("10.1.1.0/24"), pfx("fd00:1:1::/64")}, InternalIPs: []netip.Addr{addr("192.168.0.1"), addr("fd00::1")}},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.1.2.0/24"), pfx("fd00:1:2::/64")}, InternalIPs: []netip.Addr{addr("fd00::2"), addr("192.168.0.2")}},
		{Name: "c", PodCIDRs: []netip.Prefix{pfx("10.1.3.0/24"), pfx("fd00:1:3::/64")}, InternalIPs: []netip.Addr{addr("192.168.0.3")}}, // no v6 address
		{Name: "d", PodCIDRs: []netip.Prefix{pfx("10.1.2.0/24")}, InternalIPs: []netip.Addr{addr("192.168.0.4")}},                       // duplicate of b
		{Name: "e", PodCIDRs: []netip.Prefix{pfx("10.1.1.128/25")}, InternalIPs: []netip.Addr{addr("192.168.0.5")}},                     // overlaps a
		{Name: "f", InternalIPs: []netip.Addr{addr("192.168.0.6")}},                                                                     // no CIDR yet
	}
	want, warns := Desired("a", nodes)
	exp := map[netip.Prefix]netip.Addr{
		pfx("10.1.2.0/24"):   addr("192.168.0.2"),
		pfx("fd00:1:2::/64"): addr("fd00::2"),
		pfx("10.1.3.0/24"):   addr("192.168.0.3"),
	}
	if !reflect.DeepEqual(want, exp) {
		t.Fatalf("Desired = %v, want %v", want, exp)
	}
	joined := strings.Join(warns, "\n")
	for _, w := range []string{"node c: no InternalIP of the family of fd00:1:3::/64", "node d: pod CIDR 10.1.2.0/24 already belongs to node b", "node e: pod CIDR 10.1.1.128/25 overlaps"} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q lack %q", joined, w)
		}
	}
	// A node that does not know itself yet still routes to everyone else.
	want, _ = Desired("zz", nodes[:2])
	if len(want) != 4 {
		t.Fatalf("Desired for an unknown self = %v, want 4 routes", want)
	}
}

func TestMakePlan(t *testing.T) {
	want := map[netip.Prefix]netip.Addr{
		pfx("10.1.2.0/24"): addr("192.168.0.2"), // present and right
		pfx("10.1.3.0/24"): addr("192.168.0.3"), // present with the wrong gateway
		pfx("10.1.4.0/24"): addr("192.168.0.4"), // missing
		pfx("10.1.5.0/24"): addr("192.168.0.5"), // held by a foreign route
	}
	owned := []Route{
		{pfx("10.1.2.0/24"), addr("192.168.0.2")},
		{pfx("10.1.3.0/24"), addr("192.168.0.9")},
		{pfx("10.1.6.0/24"), addr("192.168.0.6")}, // node deleted
	}
	foreign := []Route{{Dst: pfx("10.1.5.0/24")}, {Dst: pfx("10.1.2.0/24")}}
	p := MakePlan(want, owned, foreign)
	exp := Plan{
		Add:       []Route{{pfx("10.1.4.0/24"), addr("192.168.0.4")}},
		Replace:   []Route{{pfx("10.1.3.0/24"), addr("192.168.0.3")}},
		Delete:    []Route{{pfx("10.1.6.0/24"), addr("192.168.0.6")}},
		Conflicts: []Route{{pfx("10.1.5.0/24"), addr("192.168.0.5")}},
	}
	if !reflect.DeepEqual(p, exp) {
		t.Fatalf("plan\n got %+v\nwant %+v", p, exp)
	}
	if p.Empty() {
		t.Fatal("plan with changes reports Empty")
	}
	// Applying the plan leaves nothing to do.
	after := []Route{
		{pfx("10.1.2.0/24"), addr("192.168.0.2")},
		{pfx("10.1.3.0/24"), addr("192.168.0.3")},
		{pfx("10.1.4.0/24"), addr("192.168.0.4")},
	}
	if p2 := MakePlan(want, after, foreign); !p2.Empty() || len(p2.Conflicts) != 1 {
		t.Fatalf("second plan = %+v, want empty with one conflict", p2)
	}
	// Nothing wanted: every owned route goes, foreign ones are never listed.
	if p3 := MakePlan(nil, owned, foreign); len(p3.Delete) != 3 || len(p3.Add)+len(p3.Replace) != 0 {
		t.Fatalf("plan for no nodes = %+v", p3)
	}
}
