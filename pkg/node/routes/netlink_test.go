//go:build linux

package routes

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

// newNS makes a named netns with an uplink 10.77.0.1/24 + fd00:77::1/64
// and returns a netlink handle inside it.
func newNS(t *testing.T) *netlink.Handle {
	t.Helper()
	testutil.RequireRoot(t)
	name := testutil.UniqueName("rt")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	nsh, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	// A veth pair inside the netns stands in for the uplink (the dummy
	// module is not always loadable).
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up0p"}
	if err := h.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	if p, err := h.LinkByName("up0p"); err != nil || h.LinkSetUp(p) != nil {
		t.Fatalf("peer up: %v", err)
	}
	l, err := h.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.77.0.1/24", "fd00:77::1/64"} {
		ad, _ := netlink.ParseAddr(a)
		ad.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(l, ad); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return h
}

func routeTo(t *testing.T, h *netlink.Handle, dst string) []netlink.Route {
	t.Helper()
	_, n, _ := net.ParseCIDR(dst)
	fam := netlink.FAMILY_V4
	if n.IP.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	rs, err := h.RouteListFiltered(fam, &netlink.Route{Dst: n}, netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestManagerSyncRealKernel(t *testing.T) {
	h := newNS(t)
	m := &Manager{Handle: h, Protocol: DefaultProtocol}
	// A route someone else made, on a destination the agent will want.
	_, foreignDst, _ := net.ParseCIDR("10.88.9.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: foreignDst, Gw: net.ParseIP("10.77.0.99"), Protocol: unix.RTPROT_STATIC}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]netip.Addr{
		pfx("10.88.1.0/24"):   addr("10.77.0.2"),
		pfx("10.88.2.0/24"):   addr("10.77.0.3"),
		pfx("fd00:88:1::/64"): addr("fd00:77::2"),
		pfx("10.88.9.0/24"):   addr("10.77.0.5"),
	}
	res, err := m.Sync(want)
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("Sync: %v %v", err, res.Errors)
	}
	if len(res.Plan.Add) != 3 || len(res.Plan.Conflicts) != 1 || res.Owned != 3 {
		t.Fatalf("first sync plan %+v owned %d", res.Plan, res.Owned)
	}
	for dst, gw := range map[string]string{"10.88.1.0/24": "10.77.0.2", "10.88.2.0/24": "10.77.0.3", "fd00:88:1::/64": "fd00:77::2"} {
		rs := routeTo(t, h, dst)
		if len(rs) != 1 || !rs[0].Gw.Equal(net.ParseIP(gw)) || rs[0].Protocol != DefaultProtocol {
			t.Fatalf("route to %s = %+v, want one via %s proto %d", dst, rs, gw, DefaultProtocol)
		}
	}
	if rs := routeTo(t, h, "10.88.9.0/24"); len(rs) != 1 || !rs[0].Gw.Equal(net.ParseIP("10.77.0.99")) || rs[0].Protocol != unix.RTPROT_STATIC {
		t.Fatalf("foreign route changed: %+v", rs)
	}
	// Second sync: nothing to do.
	if res, err := m.Sync(want); err != nil || !res.Plan.Empty() {
		t.Fatalf("second sync: %v %+v", err, res.Plan)
	}
	// Someone points our route elsewhere: it is put back.
	_, d1, _ := net.ParseCIDR("10.88.1.0/24")
	if err := h.RouteReplace(&netlink.Route{Dst: d1, Gw: net.ParseIP("10.77.0.200"), Protocol: DefaultProtocol}); err != nil {
		t.Fatal(err)
	}
	res, err = m.Sync(want)
	if err != nil || len(res.Plan.Replace) != 1 {
		t.Fatalf("repair sync: %v %+v", err, res.Plan)
	}
	if rs := routeTo(t, h, "10.88.1.0/24"); len(rs) != 1 || !rs[0].Gw.Equal(net.ParseIP("10.77.0.2")) {
		t.Fatalf("route not repaired: %+v", rs)
	}
	// A node goes away: its routes go, the foreign route stays.
	delete(want, pfx("10.88.2.0/24"))
	delete(want, pfx("fd00:88:1::/64"))
	res, err = m.Sync(want)
	if err != nil || len(res.Plan.Delete) != 2 || res.Owned != 1 {
		t.Fatalf("delete sync: %v %+v owned %d", err, res.Plan, res.Owned)
	}
	if rs := routeTo(t, h, "10.88.2.0/24"); len(rs) != 0 {
		t.Fatalf("route of a deleted node still there: %+v", rs)
	}
	if rs := routeTo(t, h, "10.88.9.0/24"); len(rs) != 1 || rs[0].Protocol != unix.RTPROT_STATIC {
		t.Fatalf("foreign route touched: %+v", rs)
	}
	// An unreachable gateway is an error for that route only.
	want[pfx("10.88.3.0/24")] = addr("10.99.0.1")
	res, err = m.Sync(want)
	if err != nil || len(res.Errors) != 1 {
		t.Fatalf("unreachable gateway: %v %v", err, res.Errors)
	}
}
