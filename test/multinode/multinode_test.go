//go:build linux && multinode

package multinode

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podns/podns/pkg/testutil"
)

// wantRoutes is what node n must hold: every other live node's CIDRs via its
// underlay addresses.
func wantRoutes(n *node, others ...*node) map[string]string {
	want := map[string]string{}
	for _, o := range others {
		if o == n {
			continue
		}
		want[o.cidr4.String()] = o.ip4.String()
		want[o.cidr6.String()] = o.ip6.String()
	}
	return want
}

func routesConverge(t *testing.T, what string, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		want := wantRoutes(n, nodes...)
		eventually(t, 20*time.Second, what+" on "+n.name, func() error {
			if got := n.agentRoutes(); !maps.Equal(got, want) {
				return fmt.Errorf("routes %v, want %v", got, want)
			}
			return nil
		})
	}
}

func TestMultiNode(t *testing.T) {
	testutil.RequireRoot(t)
	c := newCluster(t)
	t.Logf("CNI: %s + %s (plugins from %s), kube-apiserver state %s", c.pluginT, c.ipamT, c.bin, kubeDir)

	a, b, cc := c.addNode(), c.addNode(), c.addNode()
	all := []*node{a, b, cc}

	// 1. Each node's conflist carries its own pod CIDRs and the uplink MTU.
	for _, n := range all {
		path := filepath.Join(n.dir, "net.d", "10-podns.conflist")
		var conf struct {
			Plugins []struct {
				Type string
				MTU  int
				IPAM struct {
					Type    string
					Ranges  [][]struct{ Subnet string }
					DataDir string
				}
			}
		}
		eventually(t, 30*time.Second, "conflist of "+n.name, func() error {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return json.Unmarshal(data, &conf)
		})
		p := conf.Plugins[0]
		if p.Type != c.pluginT || p.IPAM.Type != c.ipamT || p.MTU != 1500 || len(p.IPAM.Ranges) != 2 ||
			p.IPAM.Ranges[0][0].Subnet != n.cidr4.String() || p.IPAM.Ranges[1][0].Subnet != n.cidr6.String() {
			t.Fatalf("conflist of %s: %+v, want %s and %s, MTU 1500", n.name, conf, n.cidr4, n.cidr6)
		}
		if len(conf.Plugins) != 2 || conf.Plugins[1].Type != "portmap" {
			t.Fatalf("conflist of %s does not chain portmap: %+v", n.name, conf)
		}
		check(t, "%s conflist has %s + %s, mtu %d, portmap chained", n.name, n.cidr4, n.cidr6, p.MTU)
	}

	// 2. Routes to every other node, v4 and v6, marked with the agent's protocol.
	routesConverge(t, "routes between 3 nodes", all...)
	for _, n := range all {
		check(t, "%s routes (proto 211): %v", n.name, n.agentRoutes())
	}

	// 3. /healthz and /metrics.
	for _, n := range all {
		eventually(t, 10*time.Second, "healthz on "+n.name, func() error {
			code, body, err := n.httpGet("/healthz")
			if err != nil || code != 200 {
				return fmt.Errorf("healthz %d %q %v", code, body, err)
			}
			return nil
		})
	}
	_, metrics, err := a.httpGet("/metrics")
	if err != nil || !strings.Contains(metrics, "podns_node_routes 4") || !strings.Contains(metrics, "podns_node_nodes 3") {
		t.Fatalf("metrics of %s lack podns_node_routes 4 / podns_node_nodes 3 (%v):\n%s", a.name, err, metrics)
	}
	check(t, "/healthz 200 on every node; /metrics of %s shows 4 routes and 3 nodes", a.name)

	// 4. Pods on each node reach each other, v4 and v6, both ways.
	pods := []*pod{a.addPod(), b.addPod(), cc.addPod()}
	for i, p := range pods {
		for j, q := range pods {
			if i == j {
				continue
			}
			for _, ip := range []netip.Addr{q.ip4, q.ip6} {
				if err := p.ping(ip); err != nil {
					t.Fatal(err)
				}
			}
			check(t, "pod on %s (%s) pings pod on %s (%s, %s)", p.n.name, p.ip4, q.n.name, q.ip4, q.ip6)
		}
	}

	// 5. Pod-to-pod across nodes keeps the pod's source; pod-to-outside is
	// masqueraded to the node's address.
	for _, fam := range []struct {
		dst, want, podSrc netip.Addr
		outside           string
	}{
		{pods[1].ip4, pods[0].ip4, pods[0].ip4, outsideV4},
		{pods[1].ip6, pods[0].ip6, pods[0].ip6, outsideV6},
	} {
		src, err := udpSource(pods[0].ns, pods[1].ns, netip.AddrPortFrom(fam.dst, 7001))
		if err != nil || src != fam.want {
			t.Fatalf("pod %s -> pod %s: source seen %v (%v), want %v (no masquerade inside the cluster)", fam.podSrc, fam.dst, src, err, fam.want)
		}
		check(t, "pod %s -> pod on %s %s: source kept (%s)", fam.podSrc, b.name, fam.dst, src)
		out := netip.MustParseAddr(fam.outside)
		src, err = udpSource(pods[0].ns, c.outside, netip.AddrPortFrom(out, 7002))
		nodeIP := a.ip4
		if out.Is6() {
			nodeIP = a.ip6
		}
		if err != nil || src != nodeIP {
			t.Fatalf("pod %s -> outside %s: source seen %v (%v), want the node's %v", fam.podSrc, out, src, err, nodeIP)
		}
		check(t, "pod %s -> outside %s: masqueraded to node %s address %s", fam.podSrc, out, a.name, src)
	}

	// 6. Routes the agent did not make are left alone: one on a destination
	// no node has, and one holding the CIDR a future node will get.
	c.run("ip", "-n", a.ns, "route", "add", "10.250.0.0/24", "via", "10.213.0.99", "proto", "static")
	futureIdx := c.nextIdx + 2 // node D (index 5) after node E (index 4)
	futureCIDR := fmt.Sprintf("10.214.%d.0/24", futureIdx)
	c.run("ip", "-n", b.ns, "route", "add", futureCIDR, "via", "10.213.0.98", "proto", "static")
	foreign := func() error {
		ra, rb := a.routes(), b.routes()
		if r := ra["10.250.0.0/24"]; r.Gw != "10.213.0.99" || r.Proto != 4 {
			return fmt.Errorf("foreign route on %s changed: %+v", a.name, r)
		}
		if r := rb[futureCIDR]; r.Gw != "10.213.0.98" || r.Proto != 4 {
			return fmt.Errorf("foreign route on %s changed: %+v", b.name, r)
		}
		return nil
	}

	// 7. An owned route pointed elsewhere by hand is repaired.
	c.run("ip", "-n", a.ns, "route", "replace", b.cidr4.String(), "via", "10.213.0.97", "proto", "211")
	routesConverge(t, "repair of a wrong route", all...)
	check(t, "%s: owned route %s pointed to 10.213.0.97 by hand is put back via %s", a.name, b.cidr4, b.ip4)

	// 8. Restarting the API server disturbs no route; the agents re-list.
	before := map[string]map[string]string{}
	for _, n := range all {
		before[n.name] = n.agentRoutes()
	}
	stopWatch := watchRoutes(t, all, before)
	script := filepath.Join(testutil.RepoRoot(), "hack", "kube-apiserver.sh")
	if out, err := exec.Command(script, "restart-apiserver", kubeDir).CombinedOutput(); err != nil {
		t.Fatalf("restart kube-apiserver: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second) // two resyncs with the watch re-established
	if err := stopWatch(); err != nil {
		t.Fatal(err)
	}
	check(t, "kube-apiserver restarted: routes on all nodes unchanged throughout")
	for _, n := range all {
		if code, body, err := n.httpGet("/healthz"); err != nil || code != 200 {
			t.Fatalf("healthz on %s after the API server restart: %d %q %v", n.name, code, body, err)
		}
	}
	check(t, "/healthz still 200 on every node after the API server restart")
	// A Node created after the restart shows the watches came back.
	e4 := netip.MustParsePrefix(fmt.Sprintf("10.214.%d.0/24", c.nextIdx+1))
	eName := testutil.UniqueName("ghost")
	eIP := netip.MustParseAddr(fmt.Sprintf(underlayV4, 10+c.nextIdx+1))
	c.nextIdx++
	c.createNode(eName, []netip.Prefix{e4}, []netip.Addr{eIP})
	for _, n := range all {
		eventually(t, 20*time.Second, "route to a node created after the restart on "+n.name, func() error {
			if gw := n.agentRoutes()[e4.String()]; gw != eIP.String() {
				return fmt.Errorf("route to %s is %q", e4, gw)
			}
			return nil
		})
	}
	check(t, "node %s created after the API server restart: every agent routes %s via %s", eName, e4, eIP)
	c.deleteNode(eName)
	routesConverge(t, "after deleting "+eName, all...)
	check(t, "node %s deleted: its route is gone everywhere", eName)

	// 9. Restarting an agent (SIGTERM, clean exit) changes neither routes nor
	// conflist, and the new agent takes over.
	conf := filepath.Join(a.dir, "net.d", "10-podns.conflist")
	st1, err := os.Stat(conf)
	if err != nil {
		t.Fatal(err)
	}
	before = map[string]map[string]string{}
	for _, n := range all {
		before[n.name] = n.agentRoutes()
	}
	stopWatch = watchRoutes(t, all, before)
	if err := a.stopAgent(); err != nil {
		t.Fatalf("agent on %s after SIGTERM: %v", a.name, err)
	}
	check(t, "agent on %s exited 0 on SIGTERM", a.name)
	time.Sleep(time.Second)
	a.startAgent()
	eventually(t, 15*time.Second, "healthz after restart", func() error {
		code, _, err := a.httpGet("/healthz")
		if err != nil || code != 200 {
			return fmt.Errorf("healthz %d %v", code, err)
		}
		return nil
	})
	time.Sleep(2500 * time.Millisecond) // at least one resync of the new agent
	if err := stopWatch(); err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(conf)
	if err != nil || !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("conflist of %s rewritten by the restarted agent", a.name)
	}
	if _, m, _ := a.httpGet("/metrics"); !strings.Contains(m, "podns_node_conflist_writes_total 0") {
		t.Fatalf("restarted agent wrote the conflist:\n%s", m)
	}
	check(t, "agent on %s restarted: routes unchanged throughout, conflist not rewritten", a.name)

	// 10. Deleting node C's Node removes the routes to C everywhere.
	cc.stopAgent()
	c.deleteNode(cc.name)
	routesConverge(t, "after deleting "+cc.name, a, b)
	check(t, "Node %s deleted: routes to %s and %s gone on %s and %s", cc.name, cc.cidr4, cc.cidr6, a.name, b.name)

	// 11. Adding node D adds its routes everywhere; pods on A and D talk.
	d := c.addNode()
	if d.cidr4.String() != futureCIDR {
		t.Fatalf("test bug: node D got %s, foreign route was made for %s", d.cidr4, futureCIDR)
	}
	for _, n := range []*node{a, d} {
		want := wantRoutes(n, a, b, d)
		eventually(t, 20*time.Second, "routes with node D on "+n.name, func() error {
			if got := n.agentRoutes(); !maps.Equal(got, want) {
				return fmt.Errorf("routes %v, want %v", got, want)
			}
			return nil
		})
	}
	// On B a foreign route holds D's v4 CIDR: the agent must leave it and
	// report the conflict.
	wantB := wantRoutes(b, a, b, d)
	delete(wantB, futureCIDR)
	eventually(t, 20*time.Second, "routes with node D on "+b.name, func() error {
		if got := b.agentRoutes(); !maps.Equal(got, wantB) {
			return fmt.Errorf("routes %v, want %v", got, wantB)
		}
		if _, m, err := b.httpGet("/metrics"); err != nil || !strings.Contains(m, "podns_node_route_conflicts 1") {
			return fmt.Errorf("conflict not reported in metrics (%v)", err)
		}
		return nil
	})
	check(t, "node %s added: routes to %s, %s on %s and %s; on %s the foreign route to %s is kept (conflict reported)",
		d.name, d.cidr4, d.cidr6, a.name, d.name, b.name, futureCIDR)
	pd := d.addPod()
	for _, pair := range [][2]*pod{{pods[0], pd}, {pd, pods[0]}} {
		for _, ip := range []netip.Addr{pair[1].ip4, pair[1].ip6} {
			if err := pair[0].ping(ip); err != nil {
				t.Fatal(err)
			}
		}
	}
	check(t, "pod on %s and pod on new node %s ping each other (v4 and v6)", a.name, d.name)

	if err := foreign(); err != nil {
		t.Fatal(err)
	}
	check(t, "routes not made by the agent (10.250.0.0/24 on %s, %s on %s) untouched through everything", a.name, futureCIDR, b.name)
}

// watchRoutes samples the agent routes of nodes every 50 ms until the
// returned stop function is called, which reports any deviation from want.
func watchRoutes(t *testing.T, nodes []*node, want map[string]map[string]string) func() error {
	var (
		mu   sync.Mutex
		bad  error
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	samples := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, n := range nodes {
				if got := n.agentRoutes(); !maps.Equal(got, want[n.name]) {
					mu.Lock()
					if bad == nil {
						bad = fmt.Errorf("routes on %s changed to %v (were %v)", n.name, got, want[n.name])
					}
					mu.Unlock()
				}
			}
			samples++
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() error {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("route watch: %d samples", samples)
		return bad
	}
}
