//go:build linux

package cni_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/ipam/store"
	"github.com/podns/podns/pkg/testutil"
)

// TestBadInput: every bad input gets the spec's error code and leaves
// nothing behind: no host veth, no allocation, no rule, nothing in the
// netns, and no bridge when the bridge did not exist before.
func TestBadInput(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	good := func() Conf {
		c := n.conf("1.1.0", true, true)
		c["ipMasq"] = true
		return c
	}
	with := func(k string, v any) []byte {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c.bytes(t)
	}
	withIPAM := func(ipam map[string]any) []byte {
		c := good()
		c["ipam"] = ipam
		return c.bytes(t)
	}
	add := Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}
	call := func(f func(*Call)) Call { c := add; f(&c); return c }

	// A non-bridge link under the configured bridge name.
	notBridge := testutil.UniqueName("pnvb")
	run(t, "ip", "link", "add", notBridge, "type", "veth", "peer", "name", testutil.UniqueName("pnvp"))
	t.Cleanup(func() { _ = exec0("ip", "link", "del", notBridge) })

	plainFile := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(plainFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		call       Call
		stdin      []byte
		code       uint
		podnsField bool // a podns field is bad: DEL must still succeed
	}{
		{"invalid JSON", add, []byte(`{"cniVersion":"1.1.0",`), types.ErrDecodingFailure, false},
		{"missing type", add, with("type", nil), types.ErrInvalidNetworkConfig, true},
		{"missing name", add, with("name", nil), types.ErrInvalidNetworkConfig, false},
		{"unknown cniVersion", add, with("cniVersion", "0.2.0"), types.ErrIncompatibleCNIVersion, false},
		{"too new cniVersion", add, with("cniVersion", "9.9.9"), types.ErrIncompatibleCNIVersion, false},
		{"unsupported mode", add, with("mode", "vxlan"), types.ErrInvalidNetworkConfig, true},
		{"mtu out of range", add, with("mtu", 20), types.ErrInvalidNetworkConfig, true},
		{"bad runtimeConfig mac", add, with("runtimeConfig", map[string]any{"mac": "zz:00"}), types.ErrInvalidNetworkConfig, true},
		{"no ipam", add, with("ipam", nil), types.ErrInvalidNetworkConfig, false},
		{"missing CNI_NETNS", call(func(c *Call) { c.Netns = "" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"non-existent CNI_NETNS", call(func(c *Call) { c.Netns = "/var/run/netns/" + testutil.UniqueName("nope") }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_NETNS is a plain file", call(func(c *Call) { c.Netns = plainFile }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_NETNS is the host netns", call(func(c *Call) { c.Netns = "/proc/self/ns/net" }), good().bytes(t), types.ErrInvalidNetNS, false},
		{"empty CNI_IFNAME", call(func(c *Call) { c.IfName = "" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_IFNAME over 15 bytes", call(func(c *Call) { c.IfName = "eth0123456789012" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_IFNAME with /", call(func(c *Call) { c.IfName = "et/h0" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"empty CNI_CONTAINERID", call(func(c *Call) { c.ContainerID = "" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_CONTAINERID with /", call(func(c *Call) { c.ContainerID = "a/b" }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"CNI_CONTAINERID ..", call(func(c *Call) { c.ContainerID = ".." }), good().bytes(t), types.ErrInvalidEnvironmentVariables, false},
		{"bridge is not a bridge", add, with("bridge", notBridge), types.ErrInvalidNetworkConfig, true},
		{"bridge name template br%d", add, with("bridge", "pnbr%d"), types.ErrInvalidNetworkConfig, true},
		{"invalid subnet (podns-ipam)", add, withIPAM(map[string]any{"type": "podns-ipam", "dataDir": n.DataDir, "ranges": [][]map[string]any{{{"subnet": "10.300.0.0/24"}}}}), types.ErrInvalidNetworkConfig, false},
		{"invalid subnet (host-local passes its own code through)", add, withIPAM(map[string]any{"type": "host-local", "dataDir": n.DataDir, "ranges": [][]map[string]any{{{"subnet": "10.300.0.0/24"}}}}), types.ErrInternal, false},
		{"IPAM plugin missing from CNI_PATH", add, withIPAM(map[string]any{"type": "no-such-ipam", "dataDir": n.DataDir}), types.ErrInvalidNetworkConfig, false},
		{"IPAM route that cannot be installed (after allocation)", add, withIPAM(map[string]any{"type": "host-local", "dataDir": n.DataDir,
			"ranges": [][]map[string]any{{{"subnet": n.Sub4}}}, "routes": []map[string]any{{"dst": "10.99.0.0/16", "gw": "192.0.2.1"}}}), types.ErrInternal, false},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			nt := *n
			nt.t = t
			e := nt.wantCode(tc.call, tc.stdin, tc.code)
			if e.Msg == "" {
				t.Fatal("error without a message")
			}
			nt.assertNoState(ns)
			// The runtime DELs after a failed ADD: that must not fail on a
			// config ADD refused (it would wedge the pod's teardown).
			if tc.podnsField {
				del := tc.call
				del.Cmd = "DEL"
				nt.mustExec(del, tc.stdin)
			}
			if _, err := netlink.LinkByName(n.Bridge); err == nil {
				t.Fatalf("failed ADD left bridge %s behind", n.Bridge)
			}
		})
	}
	if _, err := netlink.LinkByName(notBridge); err != nil {
		t.Fatalf("the non-bridge link was touched: %v", err)
	}
}

// TestInterfaceExists: ADD into a netns that already has CNI_IFNAME fails
// and leaves the existing interface alone.
func TestInterfaceExists(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	inNS(t, ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	e := n.wantCode(Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, n.conf("1.1.0", true, false).bytes(t), types.ErrInvalidEnvironmentVariables)
	if !strings.Contains(e.Msg, "already exists") {
		t.Fatalf("message: %s", e.Msg)
	}
	if !strings.Contains(inNS(t, ns, "ip", "-o", "link", "show", "eth0"), "eth0@eth1") {
		t.Fatal("the existing eth0 was changed")
	}
	if _, ok := n.hostVeth("c"+ns, "eth0"); ok {
		t.Fatal("host veth left behind")
	}
	if a := n.allocations(); len(a) > 0 {
		t.Fatalf("allocations left: %v", a)
	}
}

// TestExhaustedRangeRollsBack: when IPAM fails mid-ADD (range exhausted),
// the veth made before it is removed and the first pod is untouched.
func TestExhaustedRangeRollsBack(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, false)
	one := strings.TrimSuffix(n.Sub4, "0/24") + "7"
	c["ipam"].(map[string]any)["ranges"] = [][]map[string]any{{{"subnet": n.Sub4, "rangeStart": one, "rangeEnd": one}}}
	conf := c.bytes(t)
	first := n.add(conf)
	ns, path := newNetns(t)
	_, e := n.exec(Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, conf)
	if e == nil {
		t.Fatal("ADD on an exhausted range succeeded")
	}
	if !strings.Contains(e.Msg, "host-local") {
		t.Fatalf("error does not say IPAM failed: %s", e.Msg)
	}
	if _, ok := n.hostVeth("c"+ns, "eth0"); ok {
		t.Fatal("the failed ADD left its host veth")
	}
	if out := inNS(t, ns, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Fatalf("the failed ADD left eth0:\n%s", out)
	}
	if a := n.allocations(); len(a) != 1 || a[0] != one {
		t.Fatalf("allocations %v, want only %s", a, one)
	}
	ping(t, first.NS, first.gw(false).String())
	n.mustExec(Call{Cmd: "DEL", ContainerID: first.ID, Netns: first.Path, IfName: "eth0"}, conf)
	n.assertNoState(first.NS)
}

func exec0(name string, args ...string) error {
	return execCommand(name, args...).Run()
}

// TestRepeatedAddKeepsLease: podns-ipam allocates alongside the link work,
// so a failed ADD must tell its own allocation from one it was handed
// again. A repeated ADD of a wired attachment fails and leaves the first
// ADD's address, veth and masquerade element in place; an ADD that fails
// because the pod already has the interface releases the address it took.
func TestRepeatedAddKeepsLease(t *testing.T) {
	n := newTestNet(t)
	dataDir := t.TempDir()
	c := podnsIPAM(n.conf("1.0.0", true, false), dataDir, n.Sub4)
	c["ipMasq"] = true
	conf := c.bytes(t)
	leases := func() map[string]string {
		t.Helper()
		s, err := store.OpenExisting(filepath.Join(dataDir, n.Name), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out := map[string]string{}
		s.View(func(tx *store.Tx) error {
			for a, att := range tx.Allocations() {
				out[a.String()] = att.ContainerID
			}
			return nil
		})
		return out
	}

	first := n.add(conf)
	ip := first.ip(false).String()
	_, e := n.exec(Call{Cmd: "ADD", ContainerID: first.ID, Netns: first.Path, IfName: "eth0"}, conf)
	if e == nil {
		t.Fatal("a second ADD of a wired attachment succeeded")
	}
	if l := leases(); len(l) != 1 || l[ip] != first.ID {
		t.Fatalf("after the failed repeat: leases %v, want %s held by %s", l, ip, first.ID)
	}
	if _, ok := n.hostVeth(first.ID, "eth0"); !ok {
		t.Fatal("the failed repeat removed the first ADD's host veth")
	}
	if r := n.masqRules(); len(r) != 1 || r[0].ContainerID != first.ID {
		t.Fatalf("masquerade elements %v, want the first ADD's", r)
	}
	ping(t, first.NS, first.gw(false).String())

	// A new attachment whose pod already has an eth0: the ADD fails with
	// code 4 and gives its fresh address back.
	ns, path := newNetns(t)
	run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	n.wantCode(Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, conf, types.ErrInvalidEnvironmentVariables)
	if l := leases(); len(l) != 1 || l[ip] != first.ID {
		t.Fatalf("after the failed ADD: leases %v, want only %s", l, ip)
	}
	if r := n.masqRules(); len(r) != 1 {
		t.Fatalf("masquerade elements %v, want only the first ADD's", r)
	}
	n.mustExec(Call{Cmd: "DEL", ContainerID: first.ID, Netns: first.Path, IfName: "eth0"}, conf)
	if l := leases(); len(l) != 0 {
		t.Fatalf("leases after DEL: %v", l)
	}
}
