//go:build linux

package cni_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/testutil"
)

// TestRoutedMode: the ptp shape. Pods get /32 and /128 addresses, a
// link-scoped route to the gateway and a default route via it; the host
// has a host route per pod address and no bridge; pods reach each other
// and the host reaches them, over IPv4 and IPv6. CHECK catches a removed
// host route.
func TestRoutedMode(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, true)
	delete(c, "bridge")
	c["mode"] = "routed"
	c["ipMasq"] = true
	conf := c.bytes(t)
	a, b := n.add(conf), n.add(conf)
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Fatal("routed mode created a bridge")
	}
	for _, v6 := range []bool{false, true} {
		bits := "/32"
		if v6 {
			bits = "/128"
		}
		ip, gw := a.ip(v6).String(), a.gw(v6).String()
		out := inNS(t, a.NS, "ip", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if !strings.Contains(out, ip+bits) {
			t.Fatalf("pod address %s%s missing:\n%s", ip, bits, out)
		}
		fam := "-4"
		if v6 {
			fam = "-6"
		}
		rts := inNS(t, a.NS, "ip", fam, "route", "show")
		if !strings.Contains(rts, gw+" dev eth0") || !strings.Contains(rts, "default via "+gw+" dev eth0") {
			t.Fatalf("pod routes lack the link route to %s or the default route:\n%s", gw, rts)
		}
		hostRts := run(t, "ip", fam, "route", "show", ip)
		if !strings.Contains(hostRts, "dev "+a.Result.Interfaces[0].Name) {
			t.Fatalf("host route to %s via %s missing: %q", ip, a.Result.Interfaces[0].Name, hostRts)
		}
		ping(t, a.NS, gw)
		ping(t, a.NS, b.ip(v6).String())
		ping(t, "", a.ip(v6).String())
	}
	prev := checkConf(t, c, a.Result)
	n.mustExec(Call{Cmd: "CHECK", ContainerID: a.ID, Netns: a.Path, IfName: "eth0"}, prev)
	run(t, "ip", "route", "del", a.ip(false).String()+"/32")
	n.wantCode(Call{Cmd: "CHECK", ContainerID: a.ID, Netns: a.Path, IfName: "eth0"}, prev, types.ErrInternal)
	for _, p := range []*pod{a, b} {
		n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf)
	}
	n.assertNoState(a.NS)
}

// TestRoutedIPv4Only: in an IPv4-only routed network neither end of a
// pod's veth has IPv6 (no link-local addresses, so no per-pod IPv6 routes
// for every later link change to walk), while IPv4 routing works; in a
// dual-stack one (TestRoutedMode) both keep it.
func TestRoutedIPv4Only(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	delete(c, "bridge")
	c["mode"] = "routed"
	conf := c.bytes(t)
	a, b := n.add(conf), n.add(conf)
	host := a.Result.Interfaces[0].Name
	if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + host + "/disable_ipv6"); err == nil && strings.TrimSpace(string(v)) != "1" {
		t.Errorf("host end %s of an IPv4-only pod keeps IPv6 (disable_ipv6=%s)", host, strings.TrimSpace(string(v)))
	}
	if out := run(t, "ip", "-6", "-o", "addr", "show", "dev", host); strings.TrimSpace(out) != "" {
		t.Errorf("host end %s has IPv6 addresses:\n%s", host, out)
	}
	if out := inNS(t, a.NS, "ip", "-6", "-o", "addr", "show", "dev", "eth0"); strings.TrimSpace(out) != "" {
		t.Errorf("eth0 of an IPv4-only routed pod has IPv6 addresses:\n%s", out)
	}
	ping(t, a.NS, a.gw(false).String())
	ping(t, a.NS, b.ip(false).String())
	ping(t, "", a.ip(false).String())
	for _, p := range []*pod{a, b} {
		n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf)
	}
	n.assertNoState(a.NS)
}

// checkConf returns conf with prevResult set to r, as a runtime sends CHECK.
func checkConf(t testing.TB, c Conf, r types.Result) []byte {
	t.Helper()
	rb, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	cc := Conf{}
	for k, v := range c {
		cc[k] = v
	}
	cc["prevResult"] = json.RawMessage(rb)
	return cc.bytes(t)
}

// TestCheckMasqRules: CHECK fails when the pod's masquerade rule is gone.
func TestCheckMasqRules(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.0.0", true, false)
	c["ipMasq"] = true
	p := n.add(c.bytes(t))
	prev := checkConf(t, c, p.Result)
	call := Call{Cmd: "CHECK", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}
	n.mustExec(call, prev)
	if err := masq.Del(n.Name, p.ID, "eth0"); err != nil {
		t.Fatal(err)
	}
	if e := n.wantCode(call, prev, types.ErrInternal); !strings.Contains(e.Msg, "masquerade") {
		t.Fatalf("CHECK error does not name the masquerade rule: %s", e.Msg)
	}
	n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, c.bytes(t))
	n.assertNoState(p.NS)
}

// TestEveryVersion: ADD, CHECK (from 0.4.0) and DEL for every supported
// cniVersion; the result comes back in the config's version.
func TestEveryVersion(t *testing.T) {
	n := newTestNet(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		c := n.conf(v, true, true)
		conf := c.bytes(t)
		ns, path := newNetns(t)
		id := "c" + ns
		out := n.mustExec(Call{Cmd: "ADD", ContainerID: id, Netns: path, IfName: "eth0"}, conf)
		var got struct {
			CNIVersion string `json:"cniVersion"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.CNIVersion != v {
			t.Fatalf("%s: result version %q (%v)\n%s", v, got.CNIVersion, err, out)
		}
		r, err := version.NewResult(v, out)
		if err != nil {
			t.Fatalf("%s: result does not parse: %v", v, err)
		}
		cur, err := current.NewResultFromResult(r)
		if err != nil || len(cur.IPs) != 2 {
			t.Fatalf("%s: result %v (%v)", v, cur, err)
		}
		ping(t, ns, cur.IPs[0].Gateway.String())
		if v != "0.3.0" && v != "0.3.1" {
			n.mustExec(Call{Cmd: "CHECK", ContainerID: id, Netns: path, IfName: "eth0"}, checkConf(t, c, r))
		}
		n.mustExec(Call{Cmd: "DEL", ContainerID: id, Netns: path, IfName: "eth0"}, conf)
		n.assertNoState(ns)
	}
}

// TestVersionVerb lists every supported version.
func TestVersionVerb(t *testing.T) {
	n := newTestNet(t)
	out := n.mustExec(Call{Cmd: "VERSION"}, []byte(`{"cniVersion":"1.1.0"}`))
	var vi struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &vi); err != nil {
		t.Fatal(err)
	}
	want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if !slices.Equal(vi.SupportedVersions, want) {
		t.Fatalf("supportedVersions %v, want %v", vi.SupportedVersions, want)
	}
}

// TestGC: GC with a valid-attachments list removes host veths, masquerade
// rules and allocations of the attachments it does not name, and only those.
func TestGC(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	c["ipMasq"] = true
	conf := c.bytes(t)
	keep, stale1, stale2 := n.add(conf), n.add(conf), n.add(conf)
	// A stale attachment whose netns is already gone: only its rule and
	// allocation are left.
	run(t, "ip", "netns", "del", stale2.NS)
	if len(n.allocations()) != 3 || len(n.masqRules()) != 3 {
		t.Fatalf("before GC: allocations %v, rules %v", n.allocations(), n.masqRules())
	}
	gc := Conf{}
	for k, v := range c {
		gc[k] = v
	}
	gc["cni.dev/valid-attachments"] = []types.GCAttachment{{ContainerID: keep.ID, IfName: "eth0"}}
	// An ADD killed between creating its veth and setting its alias leaves
	// a host veth with no alias: GC knows it by its name. A look-alike of
	// another network, also without an alias, stays.
	killed := link.HostVethName(n.Name, "killed-"+keep.ID, "eth0")
	foreign := link.HostVethName(n.Name+"-other", "killed-"+keep.ID, "eth0")
	for _, name := range []string{killed, foreign} {
		run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", testutil.UniqueName("tpeer"))
		t.Cleanup(func() { _ = link.DeleteByName(&netlink.Handle{}, name) })
	}
	n.mustExec(Call{Cmd: "GC"}, gc.bytes(t))
	if _, err := netlink.LinkByName(killed); err == nil {
		t.Fatal("GC left a host veth of the network that has no alias")
	}
	if _, err := netlink.LinkByName(foreign); err != nil {
		t.Fatalf("GC removed another network's host veth: %v", err)
	}

	if _, ok := n.hostVeth(stale1.ID, "eth0"); ok {
		t.Fatal("GC left the stale host veth")
	}
	if _, ok := n.hostVeth(keep.ID, "eth0"); !ok {
		t.Fatal("GC removed the valid host veth")
	}
	if r := n.masqRules(); len(r) != 1 || r[0].ContainerID != keep.ID {
		t.Fatalf("rules after GC: %v, want only %s", r, keep.ID)
	}
	if a := n.allocations(); len(a) != 1 || a[0] != keep.ip(false).String() {
		t.Fatalf("allocations after GC: %v, want only %s", a, keep.ip(false))
	}
	ping(t, keep.NS, keep.gw(false).String())

	// DEL leaves the network's chain and sets for the next pod.
	n.mustExec(Call{Cmd: "DEL", ContainerID: keep.ID, Netns: keep.Path, IfName: "eth0"}, conf)
	if chain, sets := n.hasChain(); !chain || len(sets) != 4 {
		t.Fatalf("after the last DEL: chain %v, sets %v; want the chain and 4 sets kept", chain, sets)
	}
	// GC with nothing valid empties the network, chain included.
	keep = n.add(conf)
	gc["cni.dev/valid-attachments"] = []types.GCAttachment{}
	n.mustExec(Call{Cmd: "GC"}, gc.bytes(t))
	n.assertNoState("")
	if chain, sets := n.hasChain(); chain || len(sets) > 0 {
		t.Fatalf("after GC with nothing valid: chain %v, sets %v left", chain, sets)
	}
	// GC only looks at its own network: a link of another network stays.
	other := newTestNet(t)
	op := other.add(other.conf("1.1.0", true, false).bytes(t))
	n.mustExec(Call{Cmd: "GC"}, gc.bytes(t))
	if _, ok := other.hostVeth(op.ID, "eth0"); !ok {
		t.Fatal("GC of one network removed another network's host veth")
	}
	// GC is refused for configs older than 1.1.0.
	gc["cniVersion"] = "1.0.0"
	n.wantCode(Call{Cmd: "GC"}, gc.bytes(t), types.ErrIncompatibleCNIVersion)
}

// TestStatus: 0 when ADD can be served; 50 with a reason when the bridge
// name is taken by another kind of link or the IPAM plugin is missing.
func TestStatus(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	n.mustExec(Call{Cmd: "STATUS"}, c.bytes(t))

	dummy := testutil.UniqueName("pndum")
	run(t, "ip", "link", "add", dummy, "type", "veth", "peer", "name", testutil.UniqueName("pndum"))
	t.Cleanup(func() { _ = link.DeleteByName(&netlink.Handle{}, dummy) })
	bad := Conf{}
	for k, v := range c {
		bad[k] = v
	}
	bad["bridge"] = dummy
	if e := n.wantCode(Call{Cmd: "STATUS"}, bad.bytes(t), types.ErrPluginNotAvailable); !strings.Contains(e.Msg, dummy) {
		t.Fatalf("STATUS reason does not name the bridge: %s", e.Msg)
	}
	e := n.wantCode(Call{Cmd: "STATUS", Path: n.Bin}, c.bytes(t), types.ErrPluginNotAvailable)
	if !strings.Contains(e.Msg, "host-local") {
		t.Fatalf("STATUS reason does not name the missing IPAM: %s", e.Msg)
	}
	// Pods on a bridge someone set down or deleted: 51, they lost connectivity.
	p := n.add(c.bytes(t))
	run(t, "ip", "link", "set", n.Bridge, "down")
	if e := n.wantCode(Call{Cmd: "STATUS"}, c.bytes(t), types.ErrLimitedConnectivity); !strings.Contains(e.Msg, "down") {
		t.Fatalf("STATUS reason: %s", e.Msg)
	}
	run(t, "ip", "link", "set", n.Bridge, "up")
	n.mustExec(Call{Cmd: "STATUS"}, c.bytes(t))
	run(t, "ip", "link", "del", n.Bridge)
	n.wantCode(Call{Cmd: "STATUS"}, c.bytes(t), types.ErrLimitedConnectivity)
	n.mustExec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, c.bytes(t))
	n.mustExec(Call{Cmd: "STATUS"}, c.bytes(t))

	c["cniVersion"] = "1.0.0"
	n.wantCode(Call{Cmd: "STATUS"}, c.bytes(t), types.ErrIncompatibleCNIVersion)
}

// TestInProcessIPAM: ipam.type podns-ipam is served without exec (CNI_PATH
// holds no IPAM at all) through the whole lifecycle, GC included.
func TestInProcessIPAM(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, true)
	ipam := c["ipam"].(map[string]any)
	ipam["type"] = "podns-ipam"
	// One IPv4 address only: a second ADD must fail until it is released.
	one := strings.TrimSuffix(n.Sub4, "0/24") + "9"
	ipam["ranges"].([]any)[0] = []any{map[string]any{"subnet": n.Sub4, "rangeStart": one, "rangeEnd": one}}
	conf := c.bytes(t)
	empty := t.TempDir() // no plugins at all: exec would fail
	ns, path := newNetns(t)
	id := "c" + ns
	call := Call{ContainerID: id, Netns: path, IfName: "eth0", Path: empty}
	n.mustExec(Call{Cmd: "STATUS", Path: empty}, conf)
	call.Cmd = "ADD"
	out := n.mustExec(call, conf)
	r, err := current.NewResult(out)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := current.NewResultFromResult(r)
	if len(cur.IPs) != 2 {
		t.Fatalf("want two addresses, got %v", cur.IPs)
	}
	ping(t, ns, cur.IPs[0].Gateway.String())
	call.Cmd = "CHECK"
	n.mustExec(call, checkConf(t, c, r))
	// The only IPv4 address is taken: STATUS says ADD cannot be served.
	n.wantCode(Call{Cmd: "STATUS", Path: empty}, conf, types.ErrPluginNotAvailable)
	call.Cmd = "DEL"
	n.mustExec(call, conf)
	n.mustExec(call, conf)
	// ADD again; a second pod finds the range exhausted; GC frees it.
	call.Cmd = "ADD"
	n.mustExec(call, conf)
	ns2, path2 := newNetns(t)
	if _, e := n.exec(Call{Cmd: "ADD", ContainerID: "c" + ns2, Netns: path2, IfName: "eth0", Path: empty}, conf); e == nil {
		t.Fatal("ADD on an exhausted range succeeded")
	}
	// The failed ADD rolled back its veth.
	if _, ok := n.hostVeth("c"+ns2, "eth0"); ok {
		t.Fatal("failed ADD left its host veth")
	}
	if out := inNS(t, ns2, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Fatalf("failed ADD left eth0 in the netns:\n%s", out)
	}
	gc := Conf{}
	for k, v := range c {
		gc[k] = v
	}
	gc["cni.dev/valid-attachments"] = []types.GCAttachment{}
	n.mustExec(Call{Cmd: "GC", Path: empty}, gc.bytes(t))
	// The address is free again: a new ADD in the same netns gets the first one.
	call.Cmd = "ADD"
	out2 := n.mustExec(call, conf)
	r2, _ := current.NewResult(out2)
	cur2, _ := current.NewResultFromResult(r2)
	if !cur2.IPs[0].Address.IP.Equal(cur.IPs[0].Address.IP) {
		t.Fatalf("after GC got %s, want the released %s", cur2.IPs[0].Address.IP, cur.IPs[0].Address.IP)
	}
	call.Cmd = "DEL"
	n.mustExec(call, conf)
	n.assertNoState(ns)
}

// TestLogFile: logFile gets structured lines naming the pod; stdout stays
// the bare result.
func TestLogFile(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	logf := t.TempDir() + "/podns.log"
	c["logFile"] = logf
	c["logLevel"] = "debug"
	ns, path := newNetns(t)
	call := Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0", Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u"}
	out := n.mustExec(call, c.bytes(t))
	if _, err := current.NewResult(out); err != nil {
		t.Fatalf("stdout is not only the result: %v\n%s", err, out)
	}
	call.Cmd = "DEL"
	n.mustExec(call, c.bytes(t))
	b := run(t, "cat", logf)
	if !strings.Contains(b, `"pod":"ns1/web"`) || !strings.Contains(b, `"msg":"ADD"`) || !strings.Contains(b, `"msg":"DEL"`) {
		t.Fatalf("log lacks ADD/DEL lines naming the pod:\n%s", b)
	}
	n.assertNoState(ns)
	_ = fmt.Sprint()
}
