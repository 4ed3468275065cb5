//go:build linux

package ipam_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/ipam/store"
)

const hostLocal = "/usr/lib/cni/host-local" // Debian containernetworking-plugins

// TestMigrationFromRealHostLocal lets the real host-local binary allocate
// into a dataDir, then switches the network's ipam type to podns-ipam with
// the same dataDir: the pods keep their addresses, new pods do not collide,
// and round robin continues after host-local's last address.
func TestMigrationFromRealHostLocal(t *testing.T) {
	if _, err := os.Stat(hostLocal); err != nil {
		t.Fatalf("%s missing (hack/deps.sh installs containernetworking-plugins): %v", hostLocal, err)
	}
	p := newPlugin(t)
	ranges := map[string]any{"ranges": [][]map[string]string{
		{{"subnet": "10.65.0.0/24"}},
		{{"subnet": "fd00:65::/64"}},
	}}
	hl := *p
	hl.bin = hostLocal
	hlConf := func() []byte {
		b := p.conf("1.0.0", ranges, nil)
		var m map[string]any
		json.Unmarshal(b, &m)
		m["ipam"].(map[string]any)["type"] = "host-local"
		b, _ = json.Marshal(m)
		return b
	}()
	held := map[string][]string{}
	for _, id := range []string{"hl1", "hl2", "hl3", "hl4"} {
		out, err := hl.run("ADD", id, "", hlConf)
		if err != nil {
			t.Fatalf("host-local ADD: %v", err)
		}
		r := parseResult(t, out)
		held[id] = []string{r.IPs[0].Address, r.IPs[1].Address}
	}
	if _, err := hl.run("DEL", "hl2", "", hlConf); err != nil {
		t.Fatal(err)
	}
	delete(held, "hl2")
	if _, err := os.Stat(filepath.Join(p.storeDir(), "10.65.0.4")); err != nil {
		t.Fatalf("host-local did not write its files where expected: %v", err)
	}

	for _, v := range []string{"1.0.0", "1.1.0"} {
		// The adopted pods pass CHECK with their host-local results.
		for id, addrs := range held {
			prev := map[string]any{"cniVersion": v, "ips": []map[string]string{{"address": addrs[0]}, {"address": addrs[1]}}}
			if _, err := p.run("CHECK", id, "", p.conf(v, ranges, map[string]any{"prevResult": prev})); err != nil {
				t.Fatalf("CHECK of adopted %s (%s): %v", id, v, err)
			}
		}
	}
	conf := p.conf("1.1.0", ranges, nil)
	out, err := p.run("ADD", "new1", "", conf)
	if err != nil {
		t.Fatal(err)
	}
	r := parseResult(t, out)
	// host-local handed .2 .3 .4 .5 (and freed .3): round robin goes on at .6.
	if r.IPs[0].Address != "10.65.0.6/24" || r.IPs[1].Address != "fd00:65::6/64" {
		t.Errorf("first podns-ipam ADD got %s %s, want 10.65.0.6 and fd00:65::6", r.IPs[0].Address, r.IPs[1].Address)
	}
	// A repeated ADD of an adopted pod keeps its addresses.
	out, err = p.run("ADD", "hl1", "", conf)
	if err != nil {
		t.Fatal(err)
	}
	if r := parseResult(t, out); r.IPs[0].Address != held["hl1"][0] || r.IPs[1].Address != held["hl1"][1] {
		t.Errorf("repeated ADD of adopted hl1 got %s, want %v", out, held["hl1"])
	}
	if _, err := p.run("DEL", "hl3", "", conf); err != nil {
		t.Fatal(err)
	}
	alloc := allocations(t, p.storeDir())
	for _, a := range []string{"10.65.0.4", "fd00:65::4"} {
		if _, ok := alloc[netip.MustParseAddr(a)]; ok {
			t.Errorf("%s of deleted hl3 still held", a)
		}
	}
	for _, a := range held["hl4"] {
		if o := alloc[netip.MustParsePrefix(a).Addr()]; o.ContainerID != "hl4" || o.IfName != "eth0" {
			t.Errorf("%s: owner %v, want hl4/eth0", a, o)
		}
	}
	s, err := store.Open(p.storeDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(func(tx *store.Tx) error {
		rec, ok := ipam.Migration(tx)
		if !ok || rec.Adopted != 6 {
			t.Errorf("migration record %+v, want 6 addresses adopted", rec)
		}
		return tx.Verify()
	})
}
