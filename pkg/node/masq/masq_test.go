//go:build linux

package masq

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/podns/podns/pkg/testutil"
)

func TestApplyReplaceDelete(t *testing.T) {
	testutil.RequireRoot(t)
	name := testutil.UniqueName("mq")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	list := func() string {
		out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "table", "inet", TableName).CombinedOutput()
		if err != nil {
			return ""
		}
		return string(out)
	}
	r := Rules{
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:244:1::/64")},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/48"), netip.MustParsePrefix("10.244.0.0/16")},
	}
	if err := Apply(c, r); err != nil {
		t.Fatal(err)
	}
	out := list()
	for _, want := range []string{
		"type nat hook postrouting priority srcnat",
		"ip daddr 10.244.0.0/16 return",
		"ip6 daddr fd00:244::/48 return",
		"ip saddr 10.244.1.0/24 masquerade",
		"ip6 saddr fd00:244:1::/64 masquerade",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "return"); n != 2 {
		t.Errorf("duplicate cluster CIDR not collapsed: %d return rules\n%s", n, out)
	}
	// Re-applying replaces rather than appends.
	r2 := Rules{PodCIDRs: r.PodCIDRs[:1], ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	if err := Apply(c, r2); err != nil {
		t.Fatal(err)
	}
	out = list()
	if strings.Count(out, "masquerade") != 1 || strings.Contains(out, "ip6") {
		t.Fatalf("after replace:\n%s", out)
	}
	if ok, err := Present(c); err != nil || !ok {
		t.Fatalf("Present = %v, %v", ok, err)
	}
	if err := Delete(c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Present(c); ok || list() != "" {
		t.Fatal("table still there after Delete")
	}
	if err := Delete(c); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestRulesEqual(t *testing.T) {
	a := Rules{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24"), netip.MustParsePrefix("10.0.1.0/24")}}
	b := Rules{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.1.7/24")},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("10.0.2.0/24"), netip.MustParsePrefix("10.0.2.0/24")}}
	if !a.Equal(b) {
		t.Fatal("equal rule sets compare unequal")
	}
	b.ClusterCIDRs = b.ClusterCIDRs[:1]
	if a.Equal(b) {
		t.Fatal("different rule sets compare equal")
	}
}
