//go:build linux

package masq

import (
	"net"
	"os/exec"
	"strings"
	"testing"

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

// TestRulesLifecycle: rules per attachment in the network's own chain,
// checked, listed, removed by attachment, and the chain pruned when empty.
func TestRulesLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	netw := testutil.UniqueName("pnm")
	t.Cleanup(func() {
		_ = Remove(netw, func(Rule) bool { return true })
		_ = Prune(netw)
	})
	a4, a6 := cidr(t, "10.233.1.5/24"), cidr(t, "fd00:233:1::5/64")
	if err := Add(netw, "c1", "eth0", "ns/p1", []*net.IPNet{a4, a6}); err != nil {
		t.Fatal(err)
	}
	if err := Add(netw, "c2", "eth0", "", []*net.IPNet{cidr(t, "10.233.1.6/24")}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "chain", "inet", TableName, ChainName(netw)).CombinedOutput()
	if err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	for _, want := range []string{"ip saddr 10.233.1.5 ip daddr != 10.233.1.0/24", "ip6 saddr fd00:233:1::5 ip6 daddr != fd00:233:1::/64", "masquerade", `comment "k=` + Key("c1", "eth0") + ` if=eth0 id=c1 pod=ns/p1"`, "hook postrouting"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("chain lacks %q:\n%s", want, out)
		}
	}
	if err := Check(netw, "c1", "eth0", []*net.IPNet{a4, a6}); err != nil {
		t.Fatal(err)
	}
	if err := Check(netw, "c1", "eth0", []*net.IPNet{cidr(t, "10.233.1.7/24")}); err == nil {
		t.Fatal("Check passed for an address without a rule")
	}
	as, err := Attachments(netw)
	if err != nil || len(as) != 2 {
		t.Fatalf("attachments %v %v", as, err)
	}
	if err := Del(netw, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := Del(netw, "c1", "eth0"); err != nil {
		t.Fatalf("second Del: %v", err)
	}
	if as, _ := Attachments(netw); len(as) != 1 || as[0].ContainerID != "c2" {
		t.Fatalf("after Del: %v", as)
	}
	// Prune keeps a chain in use.
	if err := Prune(netw); err != nil {
		t.Fatal(err)
	}
	if as, _ := Attachments(netw); len(as) != 1 {
		t.Fatalf("Prune removed a used chain: %v", as)
	}
	if err := Remove(netw, func(a Rule) bool { return a.Key == Key("c2", "eth0") }); err != nil {
		t.Fatal(err)
	}
	if err := Prune(netw); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "chain", "inet", TableName, ChainName(netw)).CombinedOutput(); err == nil {
		t.Fatalf("empty chain not pruned:\n%s", out)
	}
	// A network that never had rules: every call is a no-op.
	none := testutil.UniqueName("pnm")
	if err := Del(none, "c", "eth0"); err != nil {
		t.Fatal(err)
	}
	if as, err := Attachments(none); err != nil || len(as) != 0 {
		t.Fatalf("%v %v", as, err)
	}
}
