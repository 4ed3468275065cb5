//go:build linux

package agent

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/podns/podns/pkg/node/masq"
	"github.com/podns/podns/pkg/node/routes"
	"github.com/podns/podns/pkg/testutil"
)

func mkNode(name, ip4, cidr4, ip6, cidr6 string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{cidr4, cidr6}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip4}, {Type: corev1.NodeInternalIP, Address: ip6},
		}},
	}
}

// TestReconcileOnce drives one agent's reconcile over an informer cache
// (no API server) inside a fresh netns on the real kernel: conflist, routes,
// masquerade table and forwarding.
func TestReconcileOnce(t *testing.T) {
	testutil.RequireRoot(t)
	name := testutil.UniqueName("ag")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run("ip", "-n", name, "link", "add", "eth0", "mtu", "1400", "type", "veth", "peer", "name", "eth0p", "mtu", "1400")
	run("ip", "-n", name, "addr", "add", "10.213.0.11/24", "dev", "eth0")
	run("ip", "-n", name, "addr", "add", "fd00:213::11/64", "dev", "eth0", "nodad")
	run("ip", "-n", name, "link", "set", "eth0", "up")
	run("ip", "-n", name, "link", "set", "eth0p", "up")
	netNS, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netNS.Close() })

	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range []*corev1.Node{
		mkNode("a", "10.213.0.11", "10.214.1.0/24", "fd00:213::11", "fd00:214:1::/64"),
		mkNode("b", "10.213.0.12", "10.214.2.0/24", "fd00:213::12", "fd00:214:2::/64"),
		mkNode("c", "10.213.0.13", "10.214.3.0/24", "fd00:213::13", "fd00:214:3::/64"),
	} {
		if err := idx.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	lister := listersv1.NewNodeLister(idx)
	dir := t.TempDir()
	a := &Agent{
		cfg: Config{NodeName: "a", CNIConfDir: dir, ConfFile: "10-podns.conflist", NetworkName: "podns", CNIVersion: "1.1.0",
			PluginType: "podns", IPAMType: "podns-ipam", Bridge: "podns0", PortMap: true,
			ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.214.0.0/16")}, RouteProtocol: routes.DefaultProtocol,
			Masquerade: true, Forwarding: true},
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		m:      newMetrics(),
		routes: &routes.Manager{Protocol: routes.DefaultProtocol},
	}
	reconcile := func() error {
		return netNS.Do(func(ns.NetNS) error { return a.reconcileOnce(lister) })
	}
	if err := reconcile(); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "10-podns.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"subnet": "10.214.1.0/24"`, `"subnet": "fd00:214:1::/64"`, `"mtu": 1400`, `"type": "portmap"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("conflist lacks %s:\n%s", want, conf)
		}
	}
	rt := run("ip", "-n", name, "route", "show", "proto", "211") + run("ip", "-n", name, "-6", "route", "show", "proto", "211")
	for _, want := range []string{"10.214.2.0/24 via 10.213.0.12", "10.214.3.0/24 via 10.213.0.13", "fd00:214:2::/64 via fd00:213::12", "fd00:214:3::/64 via fd00:213::13"} {
		if !strings.Contains(rt, want) {
			t.Errorf("routes lack %q:\n%s", want, rt)
		}
	}
	if strings.Contains(rt, "10.214.1.0") {
		t.Errorf("route to the node's own CIDR:\n%s", rt)
	}
	nft := run("ip", "netns", "exec", name, "nft", "list", "table", "inet", masq.TableName)
	for _, want := range []string{"ip saddr 10.214.1.0/24 masquerade", "ip daddr 10.214.3.0/24 return", "ip6 daddr fd00:214:3::/64 return"} {
		if !strings.Contains(nft, want) {
			t.Errorf("masquerade table lacks %q:\n%s", want, nft)
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if v := strings.TrimSpace(run("ip", "netns", "exec", name, "sysctl", "-n", k)); v != "1" {
			t.Errorf("%s = %s after reconcile", k, v)
		}
	}
	st1, _ := os.Stat(filepath.Join(dir, "10-podns.conflist"))

	// Node c leaves: its routes and its return rules go; the conflist stays.
	if err := idx.Delete(mkNode("c", "", "", "", "")); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(); err != nil {
		t.Fatal(err)
	}
	rt = run("ip", "-n", name, "route", "show", "proto", "211") + run("ip", "-n", name, "-6", "route", "show", "proto", "211")
	if strings.Contains(rt, "10.214.3.0") || strings.Contains(rt, "fd00:214:3::") || !strings.Contains(rt, "10.214.2.0/24") {
		t.Errorf("routes after node c left:\n%s", rt)
	}
	if nft = run("ip", "netns", "exec", name, "nft", "list", "table", "inet", masq.TableName); strings.Contains(nft, "fd00:214:3::") {
		t.Errorf("masquerade table still exempts node c's CIDR:\n%s", nft)
	}
	if st2, _ := os.Stat(filepath.Join(dir, "10-podns.conflist")); !os.SameFile(st1, st2) {
		t.Error("conflist rewritten although it did not change")
	}

	// Its own Node gone: reconcile reports it, and still keeps the routes to
	// the others.
	if err := idx.Delete(mkNode("a", "", "", "", "")); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(); err == nil || !strings.Contains(err.Error(), `own node "a" not found`) {
		t.Fatalf("reconcile without own node: %v", err)
	}
	if rt = run("ip", "-n", name, "route", "show", "proto", "211"); !strings.Contains(rt, "10.214.2.0/24 via 10.213.0.12") {
		t.Errorf("routes after own node vanished:\n%s", rt)
	}
}
