//go:build linux

package masq

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

func cidr(t *testing.T, s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

// testNetwork names a network of its own for one test; its masquerade
// state is removed when the test ends, also on failure.
func testNetwork(t *testing.T) string {
	netw := testutil.UniqueName("pnm")
	t.Cleanup(func() {
		_ = Remove(netw, func(Rule) bool { return true })
		_ = Prune(netw)
	})
	return netw
}

func nftList(t *testing.T, what ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("nft", append([]string{"list"}, what...)...).CombinedOutput()
	return string(out), err
}

// TestElementsLifecycle: one rule per family keyed by the network's sets,
// one element per pod address naming its attachment; checked, listed,
// removed by address and by attachment; chain and sets go with the last.
func TestElementsLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testNetwork(t)
	a4, a6 := cidr(t, "10.233.1.5/24"), cidr(t, "fd00:233:1::5/64")
	if err := Add(netw, "c1", "eth0", "ns/p1", []*net.IPNet{a4, a6}); err != nil {
		t.Fatal(err)
	}
	if err := Add(netw, "c2", "eth0", "", []*net.IPNet{cidr(t, "10.233.1.6/24")}); err != nil {
		t.Fatal(err)
	}
	// A second subnet joins the network's subnet set.
	if err := Add(netw, "c3", "eth0", "", []*net.IPNet{cidr(t, "10.233.9.6/24")}); err != nil {
		t.Fatal(err)
	}
	var out string
	for _, what := range [][]string{{"chain", "inet", TableName, ChainName(netw)},
		{"set", "inet", TableName, PodSetName(netw, false)}, {"set", "inet", TableName, PodSetName(netw, true)},
		{"set", "inet", TableName, NetSetName(netw, false)}, {"set", "inet", TableName, NetSetName(netw, true)}} {
		o, err := nftList(t, what...)
		if err != nil {
			t.Fatalf("nft: %v %s", err, o)
		}
		out += o
	}
	for _, want := range []string{
		"ip saddr @" + PodSetName(netw, false) + " ip daddr != @" + NetSetName(netw, false) + " ip daddr != 224.0.0.0/4 masquerade",
		"ip6 saddr @" + PodSetName(netw, true) + " ip6 daddr != @" + NetSetName(netw, true) + " ip6 daddr != ff00::/8 masquerade",
		`10.233.1.5 comment "k=` + Key("c1", "eth0") + ` if=eth0 id=c1 pod=ns/p1"`,
		"10.233.1.0/24", "10.233.9.0/24", "fd00:233:1::/64", "hook postrouting",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "masquerade"); n != 2 {
		t.Fatalf("%d masquerade rules, want 2:\n%s", n, out)
	}
	if err := Check(netw, "c1", "eth0", []*net.IPNet{a4, a6}); err != nil {
		t.Fatal(err)
	}
	if err := Check(netw, "c1", "eth0", []*net.IPNet{cidr(t, "10.233.1.7/24")}); err == nil {
		t.Fatal("Check passed for an address without an element")
	}
	if err := Check(netw, "c2", "eth0", []*net.IPNet{a4}); err == nil {
		t.Fatal("Check passed for another attachment's element")
	}
	as, err := Attachments(netw)
	if err != nil || len(as) != 3 {
		t.Fatalf("attachments %v %v", as, err)
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.DelAddrs(netw, []net.IP{a4.IP, a6.IP}); err != nil {
		t.Fatal(err)
	}
	if err := c.DelAddrs(netw, []net.IP{a4.IP, a6.IP}); err != nil {
		t.Fatalf("second DelAddrs: %v", err)
	}
	if err := Del(netw, "c3", "eth0"); err != nil {
		t.Fatal(err)
	}
	if as, _ := Attachments(netw); len(as) != 1 || as[0].ContainerID != "c2" {
		t.Fatalf("after deletes: %v", as)
	}
	// Prune keeps a network in use.
	if err := c.PruneIfEmpty(netw); err != nil {
		t.Fatal(err)
	}
	if as, _ := Attachments(netw); len(as) != 1 {
		t.Fatalf("Prune removed a used network: %v", as)
	}
	if err := Check(netw, "c2", "eth0", []*net.IPNet{cidr(t, "10.233.1.6/24")}); err != nil {
		t.Fatal(err)
	}
	if err := c.DelAddrs(netw, []net.IP{net.ParseIP("10.233.1.6")}); err != nil {
		t.Fatal(err)
	}
	if err := c.PruneIfEmpty(netw); err != nil {
		t.Fatal(err)
	}
	if out, err := nftList(t, "chain", "inet", TableName, ChainName(netw)); err == nil {
		t.Fatalf("empty chain not pruned:\n%s", out)
	}
	for _, s := range []string{PodSetName(netw, false), PodSetName(netw, true), NetSetName(netw, false), NetSetName(netw, true)} {
		if out, err := nftList(t, "set", "inet", TableName, s); err == nil {
			t.Fatalf("set %s not pruned:\n%s", s, out)
		}
	}
	// A network that never had state: every call is a no-op.
	none := testutil.UniqueName("pnm")
	if err := Del(none, "c", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := c.DelAddrs(none, []net.IP{a4.IP}); err != nil {
		t.Fatal(err)
	}
	if as, err := Attachments(none); err != nil || len(as) != 0 {
		t.Fatalf("%v %v", as, err)
	}
}

// TestRemoveMany: GC of several hundred attachments at once (the bug was
// ENOBUFS from one ACK per deleted rule in a single batch), then the
// network's chain and sets are gone.
func TestRemoveMany(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testNetwork(t)
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 700
	for i := 0; i < n; i++ {
		ip := cidr(t, fmt.Sprintf("10.234.%d.%d/16", i/250, i%250+1))
		if err := c.Add(netw, fmt.Sprintf("c%d", i), "eth0", "", []*net.IPNet{ip}); err != nil {
			t.Fatal(err)
		}
	}
	if as, err := Attachments(netw); err != nil || len(as) != n {
		t.Fatalf("%d attachments, %v", len(as), err)
	}
	keep := Key("c7", "eth0")
	if err := Remove(netw, func(r Rule) bool { return r.Key != keep }); err != nil {
		t.Fatal(err)
	}
	if as, err := Attachments(netw); err != nil || len(as) != 1 || as[0].Key != keep {
		t.Fatalf("after GC: %v %v", as, err)
	}
	if err := Remove(netw, func(Rule) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if err := Prune(netw); err != nil {
		t.Fatal(err)
	}
	if out, err := nftList(t, "chain", "inet", TableName, ChainName(netw)); err == nil {
		t.Fatalf("chain left:\n%s", out)
	}
}

// legacyExprs is the per-pod rule older podns versions wrote.
func legacyExprs(ipn *net.IPNet) []expr.Any {
	ip := ipn.IP.To4()
	subnet := &net.IPNet{IP: ip.Mask(ipn.Mask), Mask: ipn.Mask}
	mcast := &net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip)},
	}
	for _, n := range []*net.IPNet{subnet, mcast} {
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(n.IP.Mask(n.Mask))},
		)
	}
	return append(ex, &expr.Masq{})
}

// TestLegacyRules: a chain of per-pod rules from an older podns becomes
// set elements at the next ADD (pods keep their masquerade), and GC of
// hundreds of legacy rules works in bounded batches.
func TestLegacyRules(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testNetwork(t)
	legacy := func(from, n int) {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		c.AddTable(table)
		ch := c.AddChain(chain(netw))
		for i := from; i < from+n; i++ {
			ud := userdata.AppendString(nil, userdata.TypeComment, Comment(fmt.Sprintf("old%d", i), "eth0", ""))
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, UserData: ud,
				Exprs: legacyExprs(cidr(t, fmt.Sprintf("10.235.%d.%d/16", i/250, i%250+1)))})
			if (i+1)%100 == 0 {
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	legacy(0, 3)
	if as, err := Attachments(netw); err != nil || len(as) != 3 {
		t.Fatalf("legacy attachments %v %v", as, err)
	}
	if err := Add(netw, "new", "eth0", "", []*net.IPNet{cidr(t, "10.235.9.9/16")}); err != nil {
		t.Fatal(err)
	}
	if err := Check(netw, "old1", "eth0", []*net.IPNet{cidr(t, "10.235.0.2/16")}); err != nil {
		t.Fatalf("legacy rule not migrated: %v", err)
	}
	out, err := nftList(t, "chain", "inet", TableName, ChainName(netw))
	if err != nil || strings.Count(out, "masquerade") != 2 || strings.Contains(out, "comment") {
		t.Fatalf("after migration (%v):\n%s", err, out)
	}
	// GC of many legacy rules at once (added after the migration, as an
	// older podns racing a newer one would).
	legacy(100, 600)
	if err := Remove(netw, func(Rule) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if err := Prune(netw); err != nil {
		t.Fatal(err)
	}
	if out, err := nftList(t, "chain", "inet", TableName, ChainName(netw)); err == nil {
		t.Fatalf("chain left:\n%s", out)
	}
}

// TestFirstAndLastRace: pods come and go on a network whose every DEL may
// be its last and every ADD its first. A pruning DEL must never take the
// chain, rule or set from under a pod that another ADD just added.
func TestFirstAndLastRace(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testNetwork(t)
	const workers, rounds = 6, 15
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			errs <- func() error {
				for r := 0; r < rounds; r++ {
					id := fmt.Sprintf("w%d-%d", w, r)
					ip := cidr(t, fmt.Sprintf("10.238.%d.%d/16", w, r+1))
					c, err := Open()
					if err != nil {
						return err
					}
					if err := c.Add(netw, id, "eth0", "", []*net.IPNet{ip}); err != nil {
						c.Close()
						return fmt.Errorf("add %s: %w", id, err)
					}
					if err := Check(netw, id, "eth0", []*net.IPNet{ip}); err != nil {
						c.Close()
						return fmt.Errorf("check %s right after its ADD: %w", id, err)
					}
					if err := c.DelAddrs(netw, []net.IP{ip.IP}); err != nil {
						c.Close()
						return fmt.Errorf("del %s: %w", id, err)
					}
					err = c.PruneIfEmpty(netw)
					c.Close()
					if err != nil {
						return fmt.Errorf("prune after %s: %w", id, err)
					}
				}
				return nil
			}()
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if out, err := nftList(t, "chain", "inet", TableName, ChainName(netw)); err == nil {
		t.Fatalf("chain left after the last pod:\n%s", out)
	}
}

// TestDelAddrsIfSet: a DEL whose config has ipMasq off still removes the
// elements its ADD made (ipMasq may have been on then), and on a network
// that never had masquerade it changes nothing and reports no error.
func TestDelAddrsIfSet(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testNetwork(t)
	a4 := cidr(t, "10.233.4.5/24")
	if err := Add(netw, "c1", "eth0", "", []*net.IPNet{a4}); err != nil {
		t.Fatal(err)
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.DelAddrsIfSet(netw, []net.IP{a4.IP, net.ParseIP("fd00:233:4::5")}); err != nil {
		t.Fatal(err)
	}
	if as, err := Attachments(netw); err != nil || len(as) != 0 {
		t.Fatalf("attachments after DelAddrsIfSet: %v %v", as, err)
	}
	none := testutil.UniqueName("pnm")
	if err := c.DelAddrsIfSet(none, []net.IP{a4.IP}); err != nil {
		t.Fatal(err)
	}
	if out, err := nftList(t, "set", "inet", TableName, PodSetName(none, false)); err == nil {
		t.Fatalf("DelAddrsIfSet made a set:\n%s", out)
	}
}
