//go:build linux

package cni_test

import (
	"fmt"
	"sync"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// TestConcurrentAdds: a runtime starts many pods at once. Eight ADDs race
// to create the bridge, its gateway address and the nftables chain; all
// succeed with distinct addresses, the bridge keeps one MAC, every pod
// reaches the gateway, and eight concurrent DELs leave nothing.
func TestConcurrentAdds(t *testing.T) {
	for _, ipamType := range []string{"host-local", "podns-ipam"} {
		t.Run(ipamType, func(t *testing.T) {
			n := newTestNet(t)
			c := n.conf("1.1.0", true, true)
			c["ipMasq"] = true
			c["ipam"].(map[string]any)["type"] = ipamType
			conf := c.bytes(t)
			const pods = 8
			type att struct{ ns, path, id, ip string }
			atts := make([]att, pods)
			for i := range atts {
				ns, path := newNetns(t)
				atts[i] = att{ns: ns, path: path, id: "c" + ns}
			}
			var wg sync.WaitGroup
			errs := make([]error, pods)
			outs := make([][]byte, pods)
			for i := range atts {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					out, e := n.exec(Call{Cmd: "ADD", ContainerID: atts[i].id, Netns: atts[i].path, IfName: "eth0"}, conf)
					if e != nil {
						errs[i] = e
					}
					outs[i] = out
				}(i)
			}
			wg.Wait()
			seen := map[string]bool{}
			for i := range atts {
				if errs[i] != nil {
					t.Fatalf("ADD %d: %v", i, errs[i])
				}
				r, err := current.NewResult(outs[i])
				if err != nil {
					t.Fatal(err)
				}
				cur, _ := current.NewResultFromResult(r)
				ip := cur.IPs[0].Address.IP.String()
				if seen[ip] {
					t.Fatalf("address %s handed out twice", ip)
				}
				seen[ip] = true
				atts[i].ip = ip
			}
			br, err := netlink.LinkByName(n.Bridge)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(n.masqRules()); got != pods {
				t.Fatalf("%d attachments with masquerade rules, want %d", got, pods)
			}
			gw := fmt.Sprintf("%s1", n.Sub4[:len(n.Sub4)-4])
			for _, a := range atts {
				ping(t, a.ns, gw)
			}
			ping(t, atts[0].ns, atts[pods-1].ip)
			if br2, _ := netlink.LinkByName(n.Bridge); br2.Attrs().HardwareAddr.String() != br.Attrs().HardwareAddr.String() {
				t.Fatalf("bridge MAC changed")
			}
			for i := range atts {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if _, e := n.exec(Call{Cmd: "DEL", ContainerID: atts[i].id, Netns: atts[i].path, IfName: "eth0"}, conf); e != nil {
						errs[i] = e
					}
				}(i)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("DEL %d: %v", i, err)
				}
			}
			for _, a := range atts {
				n.assertNoState(a.ns)
			}
		})
	}
}
