//go:build linux

package cni_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// TestBridgeLifecycleLibcni: ADD through libcni wires eth0 with its address
// and default route; pods reach the gateway, each other and the host, and
// the host reaches them; CHECK passes until someone removes the address or
// the route; DEL removes the host veth and releases the address; DEL again
// succeeds; ADD after DEL gets an address again.
func TestBridgeLifecycleLibcni(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	c["ipMasq"] = true
	list, err := libcni.NetworkConfFromBytes(conflist(t, n.Name, "1.1.0", c))
	if err != nil {
		t.Fatal(err)
	}
	cni := n.newLibcni()
	type lp struct {
		ns string
		rt *libcni.RuntimeConf
		r  *current.Result
	}
	addPod := func() *lp {
		ns, path := newNetns(t)
		rt := &libcni.RuntimeConf{ContainerID: "c" + ns, NetNS: path, IfName: "eth0",
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", ns}, {"K8S_POD_INFRA_CONTAINER_ID", "c" + ns}, {"K8S_POD_UID", "u-" + ns}}}
		res, err := cni.AddNetworkList(ctx(t), list, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		r, err := current.NewResultFromResult(res)
		if err != nil {
			t.Fatal(err)
		}
		return &lp{ns, rt, r}
	}
	a, b := addPod(), addPod()

	// eth0 is up with the address and a default route via the gateway.
	out := inNS(t, a.ns, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	addr := a.r.IPs[0].Address.String()
	if !strings.Contains(out, addr) || !strings.Contains(inNS(t, a.ns, "ip", "-o", "link", "show", "eth0"), "state UP") {
		t.Fatalf("eth0 in %s lacks %s or is not up:\n%s", a.ns, addr, out)
	}
	gw := a.r.IPs[0].Gateway.String()
	if rt := inNS(t, a.ns, "ip", "route", "show", "default"); !strings.Contains(rt, "default via "+gw+" dev eth0") {
		t.Fatalf("default route: %q, want via %s", rt, gw)
	}
	// IPv4-only bridge network: eth0 makes no IPv6 link-local address (no
	// DAD, MLD or router solicitations for the bridge to flood).
	if out := inNS(t, a.ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0"); strings.TrimSpace(out) != "" {
		t.Fatalf("eth0 of an IPv4-only pod has IPv6 addresses:\n%s", out)
	}
	// The host veth records the pod (from K8S_* CNI_ARGS) in its alias.
	hv, ok := n.hostVeth(a.rt.ContainerID, "eth0")
	if !ok || !strings.Contains(hv.Attrs().Alias, "pod=default/"+a.ns) {
		t.Fatalf("host veth alias does not name the pod: %+v", hv)
	}
	if br, err := netlink.LinkByName(n.Bridge); err != nil || hv.Attrs().MasterIndex != br.Attrs().Index {
		t.Fatalf("host veth not on bridge %s: %v", n.Bridge, err)
	}

	ping(t, a.ns, gw)
	ping(t, a.ns, b.r.IPs[0].Address.IP.String())
	ping(t, b.ns, a.r.IPs[0].Address.IP.String())
	ping(t, "", a.r.IPs[0].Address.IP.String())

	if err := cni.CheckNetworkList(ctx(t), list, a.rt); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	inNS(t, a.ns, "ip", "addr", "del", addr, "dev", "eth0")
	if err := cni.CheckNetworkList(ctx(t), list, a.rt); err == nil || !strings.Contains(err.Error(), "address") {
		t.Fatalf("CHECK after the address was removed: %v, want an address error", err)
	}
	inNS(t, b.ns, "ip", "route", "del", "default")
	if err := cni.CheckNetworkList(ctx(t), list, b.rt); err == nil || !strings.Contains(err.Error(), "route") {
		t.Fatalf("CHECK after the default route was removed: %v, want a route error", err)
	}

	for _, p := range []*lp{a, b} {
		if err := cni.DelNetworkList(ctx(t), list, p.rt); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if _, ok := n.hostVeth(p.rt.ContainerID, "eth0"); ok {
			t.Fatalf("host veth of %s survived DEL", p.ns)
		}
		// DEL twice is fine.
		if err := cni.DelNetworkList(ctx(t), list, p.rt); err != nil {
			t.Fatalf("second DEL: %v", err)
		}
	}
	n.assertNoState(a.ns)
	n.assertNoState(b.ns)

	// ADD → DEL → ADD gets an address again in the same netns.
	res, err := cni.AddNetworkList(ctx(t), list, a.rt)
	if err != nil {
		t.Fatalf("ADD after DEL: %v", err)
	}
	r, _ := current.NewResultFromResult(res)
	if len(r.IPs) != 1 || !strings.Contains(inNS(t, a.ns, "ip", "-o", "addr", "show", "eth0"), r.IPs[0].Address.String()) {
		t.Fatalf("second ADD did not configure an address: %v", r)
	}
	if err := cni.DelNetworkList(ctx(t), list, a.rt); err != nil {
		t.Fatal(err)
	}
	n.assertNoState(a.ns)
}

// TestDelWithNetnsGone: DEL after the netns was deleted still releases the
// address and the masquerade rules, and a DEL with no netns at all too.
func TestDelWithNetnsGone(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, true)
	c["ipMasq"] = true
	conf := c.bytes(t)
	p := n.add(conf)
	if got := n.masqRules(); len(got) != 1 || got[0].ContainerID != p.ID {
		t.Fatalf("masquerade rules after ADD: %v", got)
	}
	if len(n.allocations()) != 2 {
		t.Fatalf("allocations after ADD: %v", n.allocations())
	}
	run(t, "ip", "netns", "del", p.NS)
	n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf)
	n.assertNoState("")
	// Empty CNI_NETNS: DEL is still fine.
	n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: "", IfName: "eth0"}, conf)
}

// TestDelOwnNetns: a DEL whose CNI_NETNS is the plugin's own netns is
// refused with skel's code before anything is torn down; with the
// runtime's CNI_NETNS_OVERRIDE it runs (the teardown needs no netns).
func TestDelOwnNetns(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	c["ipMasq"] = true
	conf := c.bytes(t)
	p := n.add(conf)
	own := Call{Cmd: "DEL", ContainerID: p.ID, Netns: "/proc/self/ns/net", IfName: "eth0"}
	e := n.wantCode(own, conf, types.ErrInvalidNetNS)
	if !strings.Contains(e.Msg, "CNI_NETNS") {
		t.Fatalf("message does not name CNI_NETNS: %q", e.Msg)
	}
	if _, ok := n.hostVeth(p.ID, "eth0"); !ok {
		t.Fatal("refused DEL deleted the host veth")
	}
	if len(n.allocations()) != 1 || len(n.masqRules()) != 1 {
		t.Fatalf("refused DEL released state: allocations %v, masquerade %v", n.allocations(), n.masqRules())
	}
	own.Env = []string{"CNI_NETNS_OVERRIDE=1"}
	n.mustExec(own, conf)
	n.assertNoState("")
}

// TestMTUAndMAC: mtu lands on both veth ends, the MAC from runtimeConfig
// (and from args.cni.mac) on the pod end.
func TestMTUAndMAC(t *testing.T) {
	n := newTestNet(t)
	for i, key := range []string{"runtimeConfig", "args"} {
		mac := fmt.Sprintf("0a:58:0a:00:00:%02x", i+1)
		c := n.conf("1.1.0", true, false)
		c["mtu"] = 1280 + i
		if key == "args" {
			c["args"] = map[string]any{"cni": map[string]any{"mac": mac}}
		} else {
			c["runtimeConfig"] = map[string]any{"mac": mac}
		}
		p := n.add(c.bytes(t))
		out := inNS(t, p.NS, "ip", "-o", "link", "show", "eth0")
		if !strings.Contains(out, fmt.Sprintf("mtu %d", 1280+i)) || !strings.Contains(out, mac) {
			t.Fatalf("%s: pod eth0 %q, want mtu %d and %s", key, out, 1280+i, mac)
		}
		hv, ok := n.hostVeth(p.ID, "eth0")
		if !ok || hv.Attrs().MTU != 1280+i {
			t.Fatalf("%s: host veth mtu %v, want %d", key, hv, 1280+i)
		}
		if p.Result.Interfaces[2].Mac != mac {
			t.Fatalf("%s: result mac %s, want %s", key, p.Result.Interfaces[2].Mac, mac)
		}
		n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, c.bytes(t))
	}
	n.assertNoState("")
}

// TestDualStackBridge: IPv4 and IPv6 from two ranges; both gateways answer
// at once (no DAD wait), pods reach each other over both.
func TestDualStackBridge(t *testing.T) {
	n := newTestNet(t)
	conf := n.conf("1.1.0", true, true).bytes(t)
	a, b := n.add(conf), n.add(conf)
	for _, v6 := range []bool{false, true} {
		if a.ip(v6) == nil || a.gw(v6) == nil {
			t.Fatalf("v6=%v: result has no address or gateway: %+v", v6, a.Result)
		}
		ping(t, a.NS, a.gw(v6).String())
		ping(t, a.NS, b.ip(v6).String())
	}
	if rt := inNS(t, a.NS, "ip", "-6", "route", "show", "default"); !strings.Contains(rt, "via "+a.gw(true).String()) {
		t.Fatalf("no IPv6 default route via the gateway: %q", rt)
	}
	out := inNS(t, a.NS, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if !strings.Contains(out, a.ip(true).String()) || strings.Contains(out, "tentative") {
		t.Fatalf("pod IPv6 address is tentative (DAD was not skipped):\n%s", out)
	}
	// With IPv6 in the network the pod keeps its link-local address.
	if out := inNS(t, a.NS, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"); !strings.Contains(out, "fe80::") {
		t.Fatalf("dual-stack eth0 has no link-local address:\n%s", out)
	}
	for _, p := range []*pod{a, b} {
		n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf)
	}
	n.assertNoState(a.NS)
}

// TestIPv6Only: a single IPv6 range works alone.
func TestIPv6Only(t *testing.T) {
	n := newTestNet(t)
	conf := n.conf("1.1.0", false, true).bytes(t)
	a := n.add(conf)
	if a.ip(false) != nil || a.ip(true) == nil {
		t.Fatalf("want only IPv6: %+v", a.Result.IPs)
	}
	ping(t, a.NS, a.gw(true).String())
	ping(t, "", a.ip(true).String())
	n.mustExec(Call{Cmd: "DEL", ContainerID: a.ID, Netns: a.Path, IfName: "eth0"}, conf)
	n.assertNoState(a.NS)
}

// TestHairpin: hairpinMode sets the bridge port flag.
func TestHairpin(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	c["hairpinMode"] = true
	p := n.add(c.bytes(t))
	out := run(t, "bridge", "-d", "link", "show", "dev", p.Result.Interfaces[1].Name)
	if !strings.Contains(out, "hairpin on") {
		t.Fatalf("hairpin not on:\n%s", out)
	}
	n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, c.bytes(t))
	n.assertNoState(p.NS)
}
