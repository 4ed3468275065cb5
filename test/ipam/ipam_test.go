//go:build linux

package ipam_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/ipam/store"
	"github.com/podns/podns/pkg/testutil"
)

var dualStack = map[string]any{
	"ranges": [][]map[string]string{
		{{"subnet": "10.62.0.0/24", "rangeStart": "10.62.0.10", "rangeEnd": "10.62.0.50"}},
		{{"subnet": "fd00:62::/64"}},
	},
	"routes": []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}},
}

func TestEveryCNIVersion(t *testing.T) {
	p := newPlugin(t)
	// A real netns, as a runtime would pass.
	ns := testutil.UniqueName("ipamns")
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	p.netns = "/var/run/netns/" + ns

	out, err := p.run("VERSION", "", "", []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	info, err := (&version.PluginDecoder{}).Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(info.SupportedVersions(), ","); got != "0.3.0,0.3.1,0.4.0,1.0.0,1.1.0" {
		t.Errorf("supportedVersions = %s", got)
	}

	for i, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			conf := p.conf(v, dualStack, nil)
			id := fmt.Sprintf("ver%d", i)
			out, err := p.run("ADD", id, "", conf)
			if err != nil {
				t.Fatal(err)
			}
			// The result must be a valid result of the requested version.
			res, err := version.NewResult(v, out)
			if err != nil {
				t.Fatalf("result is not a %s result: %v\n%s", v, err, out)
			}
			if res.Version() != v {
				t.Errorf("result version %s", res.Version())
			}
			r := parseResult(t, out)
			if r.CNIVersion != v || len(r.IPs) != 2 || len(r.Routes) != 2 {
				t.Fatalf("result %s", out)
			}
			want4 := fmt.Sprintf("10.62.0.%d/24", 10+i)
			if r.IPs[0].Address != want4 || r.IPs[0].Gateway != "10.62.0.1" || r.IPs[0].Interface != nil {
				t.Errorf("v4 ip %+v, want %s via 10.62.0.1 and no interface", r.IPs[0], want4)
			}
			if !strings.HasPrefix(r.IPs[1].Address, "fd00:62::") {
				t.Errorf("v6 ip %+v", r.IPs[1])
			}
			if v == "0.3.0" || v == "0.3.1" {
				if r.IPs[0].Version != "4" || r.IPs[1].Version != "6" {
					t.Errorf("%s result lacks ip versions: %s", v, out)
				}
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				var prev map[string]any
				json.Unmarshal(out, &prev)
				withPrev := p.conf(v, dualStack, map[string]any{"prevResult": prev})
				if _, err := p.run("CHECK", id, "", withPrev); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "1.1.0"); ok {
				if _, err := p.run("STATUS", "", "", conf); err != nil {
					t.Errorf("STATUS: %v", err)
				}
				if _, err := p.run("GC", "", "", p.conf(v, dualStack, map[string]any{
					"cni.dev/valid-attachments": []map[string]string{{"containerID": id, "ifname": "eth0"}},
				})); err != nil {
					t.Errorf("GC: %v", err)
				}
			} else {
				if _, err := p.run("STATUS", "", "", conf); errCode(err) != types.ErrIncompatibleCNIVersion {
					t.Errorf("STATUS with a %s config: %v, want code 1", v, err)
				}
			}
			for k := 0; k < 2; k++ {
				if _, err := p.run("DEL", id, "", conf); err != nil {
					t.Fatalf("DEL %d: %v", k, err)
				}
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				if _, err := p.run("CHECK", id, "", conf); errCode(err) != types.ErrUnknownContainer {
					t.Errorf("CHECK after DEL: %v, want code 3", err)
				}
			}
		})
	}
	assertStoreEmpty(t, p.storeDir())

	// DEL with the netns already gone: a runtime may send no CNI_NETNS.
	conf := p.conf("1.1.0", dualStack, nil)
	if _, err := p.run("ADD", "gone", "", conf); err != nil {
		t.Fatal(err)
	}
	c := p.cmd("DEL", "gone", "", conf)
	c.Env = slices.DeleteFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, "CNI_NETNS=") })
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("DEL without CNI_NETNS: %v %s", err, out)
	}
	assertStoreEmpty(t, p.storeDir())
}

func TestStaticIPsThroughTheBinary(t *testing.T) {
	p := newPlugin(t)
	conf := p.conf("1.1.0", dualStack, nil)
	out, err := p.run("ADD", "st1", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=a;IP=10.62.0.42", conf)
	if err != nil {
		t.Fatal(err)
	}
	if r := parseResult(t, out); r.IPs[0].Address != "10.62.0.42/24" {
		t.Fatalf("CNI_ARGS IP= not honoured: %s", out)
	}
	rc := p.conf("1.1.0", dualStack, map[string]any{"runtimeConfig": map[string]any{"ips": []string{"10.62.0.43/24", "fd00:62::43/64"}}})
	out, err = p.run("ADD", "st2", "", rc)
	if err != nil {
		t.Fatal(err)
	}
	if r := parseResult(t, out); r.IPs[0].Address != "10.62.0.43/24" || r.IPs[1].Address != "fd00:62::43/64" {
		t.Fatalf("runtimeConfig.ips not honoured: %s", out)
	}
	_, err = p.run("ADD", "st3", "IgnoreUnknown=1;IP=10.62.0.42", conf)
	if errCode(err) != ipam.CodeAddressInUse || !strings.Contains(err.Error(), "st1") {
		t.Errorf("taken static IP: %v", err)
	}
	_, err = p.run("ADD", "st3", "IgnoreUnknown=1;IP=10.62.0.200", conf)
	if errCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "outside every configured range") {
		t.Errorf("static IP outside the range: %v", err)
	}
	// Neither refusal left anything behind.
	s, err := store.Open(p.storeDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(func(tx *store.Tx) error {
		if got := tx.Addrs(store.Attachment{ContainerID: "st3", IfName: "eth0"}); len(got) != 0 {
			t.Errorf("refused ADD holds %v", got)
		}
		return nil
	})
}

func TestExhaustionStatusGC(t *testing.T) {
	p := newPlugin(t)
	small := map[string]any{"ranges": [][]map[string]string{{{"subnet": "10.63.0.0/30"}}}} // .2 only
	conf := p.conf("1.1.0", small, nil)
	if _, err := p.run("ADD", "a", "", conf); err != nil {
		t.Fatal(err)
	}
	_, err := p.run("ADD", "b", "", conf)
	if errCode(err) != ipam.CodeRangeExhausted || !strings.Contains(err.Error(), "10.63.0.0/30") {
		t.Fatalf("ADD into a full range: %v", err)
	}
	_, err = p.run("STATUS", "", "", conf)
	if errCode(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("STATUS on a full range: %v", err)
	}
	// GC with an empty valid list releases everything.
	gc := p.conf("1.1.0", small, map[string]any{"cni.dev/valid-attachments": []any{}})
	if out, err := p.run("GC", "", "", gc); err != nil || len(out) != 0 {
		t.Fatalf("GC: %q %v", out, err)
	}
	if _, err := p.run("STATUS", "", "", conf); err != nil {
		t.Fatalf("STATUS after GC: %v", err)
	}
	assertStoreEmpty(t, p.storeDir())
	// A store that cannot be opened makes STATUS answer 50.
	os.Chmod(p.storeDir(), 0o700)
	if err := os.WriteFile(p.storeDir()+"/"+store.DBFile, []byte("this is not a bbolt file, it is long enough to have a header of garbage in it......................................................................................................................................."), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = p.run("STATUS", "", "", conf)
	if errCode(err) != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with a broken store: %v, want 50", err)
	}
}

func assertStoreEmpty(t *testing.T, dir string) {
	t.Helper()
	if err := store.Check(dir, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(dir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(func(tx *store.Tx) error {
		if a := tx.Allocations(); len(a) != 0 {
			t.Errorf("store not empty: %v", a)
		}
		return nil
	})
}

// allocations reads the store: address → attachment.
func allocations(t *testing.T, dir string) map[netip.Addr]store.Attachment {
	t.Helper()
	s, err := store.Open(dir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out map[netip.Addr]store.Attachment
	s.View(func(tx *store.Tx) error {
		out = tx.Allocations()
		return nil
	})
	return out
}
