//go:build linux

package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/podns/podns/pkg/ipam/store"
)

// conf builds a network config; extra is merged at the top level and
// ipamExtra into the ipam section.
func conf(t *testing.T, dataDir string, ipamExtra, extra map[string]any) []byte {
	t.Helper()
	ipam := map[string]any{
		"type":    "podns-ipam",
		"dataDir": dataDir,
		"ranges": [][]map[string]string{
			{{"subnet": "10.61.0.0/29"}},
			{{"subnet": "fd00:61::/64"}},
		},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
	for k, v := range ipamExtra {
		ipam[k] = v
	}
	n := map[string]any{"cniVersion": "1.1.0", "name": "unitnet", "type": "bridge", "ipam": ipam}
	for k, v := range extra {
		n[k] = v
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func args(id string, stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, IfName: "eth0", Netns: "/var/run/netns/x", StdinData: stdin}
}

func code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func ips(r *current.Result) []string {
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

func TestAddResultDelCheck(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 10.61.0.53\nsearch a.example b.example\noptions ndots:5\n"), 0o644)
	c := conf(t, dir, map[string]any{"resolvConf": resolv}, nil)
	r, err := CmdAdd(args("ctr1", c))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ips(r), ","); got != "10.61.0.2/29,fd00:61::2/64" {
		t.Fatalf("ips = %s", got)
	}
	if r.IPs[0].Gateway.String() != "10.61.0.1" || r.IPs[0].Interface != nil || len(r.Interfaces) != 0 {
		t.Errorf("bad IPAM result %+v", r.IPs[0])
	}
	if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" {
		t.Errorf("routes = %v", r.Routes)
	}
	if len(r.DNS.Nameservers) != 1 || len(r.DNS.Search) != 2 || r.DNS.Options[0] != "ndots:5" {
		t.Errorf("dns = %+v", r.DNS)
	}
	// A repeated ADD answers the same.
	r2, err := CmdAdd(args("ctr1", c))
	if err != nil || strings.Join(ips(r2), ",") != strings.Join(ips(r), ",") {
		t.Fatalf("repeated ADD: %v %v", ips(r2), err)
	}
	prev := map[string]any{"cniVersion": "1.1.0", "ips": []map[string]string{{"address": "10.61.0.2/29"}, {"address": "192.0.2.9/24"}}}
	if err := CmdCheck(args("ctr1", conf(t, dir, nil, map[string]any{"prevResult": prev}))); err != nil {
		t.Fatalf("CHECK of a live attachment: %v", err)
	}
	if err := CmdCheck(args("ctr2", c)); code(err) != types.ErrUnknownContainer {
		t.Fatalf("CHECK of an unknown attachment: %v", err)
	}
	bad := map[string]any{"cniVersion": "1.1.0", "ips": []map[string]string{{"address": "10.61.0.3/29"}}}
	if err := CmdCheck(args("ctr1", conf(t, dir, nil, map[string]any{"prevResult": bad}))); code(err) != types.ErrUnknownContainer {
		t.Fatalf("CHECK with a foreign prevResult address: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := CmdDel(args("ctr1", c)); err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if err := CmdCheck(args("ctr1", c)); code(err) != types.ErrUnknownContainer {
		t.Fatalf("CHECK after DEL: %v", err)
	}
	if err := CmdDel(args("never", conf(t, filepath.Join(dir, "none"), nil, nil))); err != nil {
		t.Fatalf("DEL on a network with no store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Error("DEL created a store for a network that had none")
	}
	if err := store.Check(filepath.Join(dir, "unitnet"), time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStaticIPs(t *testing.T) {
	dir := t.TempDir()
	rc := func(ips ...string) map[string]any { return map[string]any{"runtimeConfig": map[string]any{"ips": ips}} }
	r, err := CmdAdd(args("s1", conf(t, dir, nil, rc("10.61.0.5/29"))))
	if err != nil || ips(r)[0] != "10.61.0.5/29" {
		t.Fatalf("runtimeConfig.ips: %v %v", r, err)
	}
	a := args("s2", conf(t, dir, nil, map[string]any{"args": map[string]any{"cni": map[string]any{"ips": []string{"fd00:61::77"}}}}))
	r, err = CmdAdd(a)
	if err != nil || ips(r)[1] != "fd00:61::77/64" {
		t.Fatalf("args.cni.ips: %v %v", r, err)
	}
	a = args("s3", conf(t, dir, nil, nil))
	a.Args = "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.61.0.6"
	r, err = CmdAdd(a)
	if err != nil || ips(r)[0] != "10.61.0.6/29" {
		t.Fatalf("CNI_ARGS IP: %v %v", r, err)
	}
	for _, tc := range []struct {
		ip   string
		code uint
		msg  string
	}{
		{"10.61.0.5", CodeAddressInUse, "already allocated to s1/eth0"},
		{"10.61.0.1", types.ErrInvalidNetworkConfig, "gateway or reserved"},
		{"10.99.0.1", types.ErrInvalidNetworkConfig, "outside every configured range"},
		{"not-an-ip", types.ErrInvalidNetworkConfig, "requested IP"},
	} {
		_, err := CmdAdd(args("bad", conf(t, dir, nil, rc(tc.ip))))
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("static %s: got %v (code %d), want code %d with %q", tc.ip, err, code(err), tc.code, tc.msg)
		}
	}
	// A refused request left nothing behind.
	s, err := store.Open(filepath.Join(dir, "unitnet"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(func(tx *store.Tx) error {
		if got := tx.Addrs(store.Attachment{ContainerID: "bad", IfName: "eth0"}); len(got) != 0 {
			t.Errorf("a refused ADD holds %v", got)
		}
		return tx.Verify()
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		stdin string
		code  uint
	}{
		{"not json", `{"name":`, types.ErrDecodingFailure},
		{"no ipam", `{"cniVersion":"1.1.0","name":"n"}`, types.ErrInvalidNetworkConfig},
		{"no ranges", `{"cniVersion":"1.1.0","name":"n","ipam":{"type":"podns-ipam"}}`, types.ErrInvalidNetworkConfig},
		{"bad subnet", `{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.0.0.0/33"}}`, types.ErrInvalidNetworkConfig},
		{"host bits", `{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.0.0.1/24"}}`, types.ErrInvalidNetworkConfig},
		{"overlap", `{"cniVersion":"1.1.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/25"}]]}}`, types.ErrInvalidNetworkConfig},
		{"relative dataDir", `{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.0.0.0/24","dataDir":"rel"}}`, types.ErrInvalidNetworkConfig},
		{"bad reserved", `{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.0.0.0/24","reserved":["x"]}}`, types.ErrInvalidNetworkConfig},
		{"bad name", `{"cniVersion":"1.1.0","name":"../x","ipam":{"subnet":"10.0.0.0/24"}}`, types.ErrInvalidNetworkConfig},
	} {
		stdin := strings.Replace(tc.stdin, `"ipam":{`, `"ipam":{"dataDir":"`+dir+`",`, 1)
		if tc.name == "relative dataDir" {
			stdin = tc.stdin
		}
		_, err := CmdAdd(args("c", []byte(stdin)))
		if code(err) != tc.code {
			t.Errorf("%s: got %v (code %d), want code %d", tc.name, err, code(err), tc.code)
		}
	}
	a := args("c", conf(t, dir, nil, nil))
	a.Args = "K8S_POD_NAME=p" // unknown key without IgnoreUnknown
	if _, err := CmdAdd(a); code(err) != types.ErrInvalidEnvironmentVariables {
		t.Errorf("bad CNI_ARGS: %v", err)
	}
	a = args("c", conf(t, dir, nil, nil))
	a.IfName = "a/b"
	if _, err := CmdAdd(a); code(err) != types.ErrInvalidEnvironmentVariables {
		t.Errorf("bad ifname: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed ADDs left %d entries in the data dir", len(entries))
	}
}

func TestExhaustionStatusAndGC(t *testing.T) {
	dir := t.TempDir()
	c := conf(t, dir, map[string]any{"reserved": []string{"10.61.0.6"}}, nil)
	// 10.61.0.0/29: .2-.5 assignable (.1 gateway, .6 reserved).
	for i := 0; i < 4; i++ {
		if _, err := CmdAdd(args(fmt.Sprintf("c%d", i), c)); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if err := CmdStatus(args("", c)); err != nil {
				t.Fatalf("STATUS with free addresses: %v", err)
			}
		}
	}
	_, err := CmdAdd(args("c4", c))
	if code(err) != CodeRangeExhausted || !strings.Contains(err.Error(), "10.61.0.0/29") {
		t.Fatalf("ADD into a full range: %v", err)
	}
	err = CmdStatus(args("", c))
	if code(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("STATUS on a full range: %v", err)
	}
	valid := map[string]any{"cni.dev/valid-attachments": []map[string]string{{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c3", "ifname": "eth0"}}}
	if err := CmdGC(args("", conf(t, dir, nil, valid))); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(filepath.Join(dir, "unitnet"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *store.Tx) error {
		atts := tx.Attachments()
		if len(atts) != 2 {
			t.Errorf("after GC: %v, want c1 and c3", atts)
		}
		if len(tx.Allocations()) != 4 {
			t.Errorf("after GC: %d addresses, want 4", len(tx.Allocations()))
		}
		return tx.Verify()
	})
	s.Close()
	if err := CmdStatus(args("", c)); err != nil {
		t.Fatalf("STATUS after GC: %v", err)
	}
}

func TestStoreBusy(t *testing.T) {
	dir := t.TempDir()
	holder, err := store.Open(filepath.Join(dir, "unitnet"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	c := conf(t, dir, map[string]any{"lockTimeout": "150ms"}, nil)
	if _, err := CmdAdd(args("c", c)); code(err) != types.ErrTryAgainLater {
		t.Fatalf("ADD on a locked store: %v, want code 11", err)
	}
	if err := CmdStatus(args("", c)); code(err) != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS on a locked store: %v, want code 50", err)
	}
}

func TestNoLeakedFDsOrGoroutines(t *testing.T) {
	dir := t.TempDir()
	c := conf(t, dir, nil, nil)
	count := func() int {
		e, _ := os.ReadDir("/proc/self/fd")
		return len(e)
	}
	CmdAdd(args("warm", c))
	fds, gs := count(), runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		if _, err := CmdAdd(args("c", c)); err != nil {
			t.Fatal(err)
		}
		CmdCheck(args("c", c))
		CmdStatus(args("", c))
		CmdGC(args("", c))
		CmdDel(args("c", c))
	}
	if n := count(); n != fds {
		t.Errorf("open fds %d → %d", fds, n)
	}
	if n := runtime.NumGoroutine(); n > gs {
		t.Errorf("goroutines %d → %d", gs, n)
	}
}

func TestMigrationFromHostLocalFiles(t *testing.T) {
	// Files in host-local's format; test/ipam repeats this with files the
	// real host-local binary wrote.
	dir := t.TempDir()
	nd := filepath.Join(dir, "unitnet")
	os.MkdirAll(nd, 0o755)
	os.WriteFile(filepath.Join(nd, "10.61.0.3"), []byte("old1\r\neth0"), 0o644)
	os.WriteFile(filepath.Join(nd, "fd00:61::3"), []byte("old1\r\neth0"), 0o644)
	os.WriteFile(filepath.Join(nd, "10.61.0.4"), []byte("old2"), 0o644) // pre-ifname host-local
	os.WriteFile(filepath.Join(nd, "last_reserved_ip.0"), []byte("10.61.0.4"), 0o644)
	os.WriteFile(filepath.Join(nd, "lock"), nil, 0o600)
	c := conf(t, dir, nil, nil)
	r, err := CmdAdd(args("new", c))
	if err != nil {
		t.Fatal(err)
	}
	// Round robin continues after host-local's last address.
	if ips(r)[0] != "10.61.0.5/29" {
		t.Errorf("first ADD after migration got %v, want 10.61.0.5", ips(r))
	}
	if err := CmdCheck(args("old1", c)); err != nil {
		t.Errorf("adopted attachment fails CHECK: %v", err)
	}
	if err := CmdDel(args("old2", c)); err != nil {
		t.Fatal(err)
	}
	// old2's release must stick: a later open must not adopt it again.
	r, err = CmdAdd(args("new2", c))
	if err != nil || ips(r)[0] != "10.61.0.6/29" {
		t.Errorf("ADD after release of the adopted .4: %v %v", ips(r), err)
	}
	s, err := store.Open(nd, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(func(tx *store.Tx) error {
		rec, ok := Migration(tx)
		if !ok || rec.Adopted != 3 {
			t.Errorf("migration record %+v %v, want 3 adopted", rec, ok)
		}
		if _, held := tx.Owner(mustAddr("10.61.0.4")); held {
			t.Error("released adopted address came back")
		}
		return tx.Verify()
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLegacySubnetAndIPRanges(t *testing.T) {
	dir := t.TempDir()
	legacy := []byte(`{"cniVersion":"0.4.0","name":"legacy","ipam":{"type":"podns-ipam","dataDir":"` + dir + `",
		"subnet":"10.67.0.0/24","rangeStart":"10.67.0.20","rangeEnd":"10.67.0.30","gateway":"10.67.0.254"}}`)
	r, err := CmdAdd(args("l1", legacy))
	if err != nil {
		t.Fatal(err)
	}
	if ips(r)[0] != "10.67.0.20/24" || r.IPs[0].Gateway.String() != "10.67.0.254" {
		t.Errorf("legacy subnet: %v via %v", ips(r), r.IPs[0].Gateway)
	}
	// ipRanges capability: ranges from the runtime, none in the config.
	rt := []byte(`{"cniVersion":"1.1.0","name":"rtranges","ipam":{"type":"podns-ipam","dataDir":"` + dir + `"},
		"runtimeConfig":{"ipRanges":[[{"subnet":"10.68.0.0/24","rangeStart":"10.68.0.100"}],[{"subnet":"fd00:68::/120"}]]}}`)
	r, err = CmdAdd(args("r1", rt))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ips(r), ",") != "10.68.0.100/24,fd00:68::2/120" {
		t.Errorf("ipRanges: %v", ips(r))
	}
	if err := CmdDel(args("r1", rt)); err != nil {
		t.Fatal(err)
	}
	// STATUS of a config without ranges of its own has nothing to exhaust.
	if err := CmdStatus(args("", []byte(`{"cniVersion":"1.1.0","name":"rtranges","ipam":{"type":"podns-ipam","dataDir":"`+dir+`"}}`))); err != nil {
		t.Errorf("STATUS without ranges: %v", err)
	}
}

func TestCheckStoreAndAllocations(t *testing.T) {
	dir := t.TempDir()
	c := conf(t, dir, nil, nil)
	if _, err := CmdAdd(args("a", c)); err != nil {
		t.Fatal(err)
	}
	if err := CheckStore(dir, "unitnet", time.Second); err != nil {
		t.Fatal(err)
	}
	al, err := Allocations(dir, "unitnet", time.Second)
	if err != nil || len(al) != 2 || al[mustAddr("10.61.0.2")].ContainerID != "a" {
		t.Fatalf("Allocations = %v, %v", al, err)
	}
	if err := CheckStore(dir, "nosuchnet", time.Second); err == nil {
		t.Error("CheckStore of a network without a store succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "nosuchnet")); err == nil {
		t.Error("CheckStore created a store")
	}
}

func TestDelIgnoresStaticRequests(t *testing.T) {
	dir := t.TempDir()
	c := conf(t, dir, nil, map[string]any{"runtimeConfig": map[string]any{"ips": []string{"10.61.0.5"}}})
	if _, err := CmdAdd(args("s", c)); err != nil {
		t.Fatal(err)
	}
	// The pod's static address is now outside the (edited) range, and the
	// runtime repeats odd CNI_ARGS: DEL must still release.
	edited := conf(t, dir, map[string]any{"ranges": [][]map[string]string{{{"subnet": "10.61.1.0/24"}}}},
		map[string]any{"runtimeConfig": map[string]any{"ips": []string{"10.61.0.5"}}})
	a := args("s", edited)
	a.Args = "K8S_POD_NAME=p"
	if err := CmdDel(a); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if al, err := Allocations(dir, "unitnet", time.Second); err != nil || len(al) != 0 {
		t.Fatalf("after DEL: %v %v", al, err)
	}
}

func TestMigrateFromOtherDataDir(t *testing.T) {
	old, dir := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(old, "unitnet"), 0o755)
	os.WriteFile(filepath.Join(old, "unitnet", "10.61.0.2"), []byte("hl\r\neth0"), 0o644)
	c := conf(t, dir, map[string]any{"migrateFrom": old}, nil)
	r, err := CmdAdd(args("new", c))
	if err != nil {
		t.Fatal(err)
	}
	if ips(r)[0] != "10.61.0.3/29" {
		t.Errorf("ADD next to an adopted .2 got %v", ips(r))
	}
	al, err := Allocations(dir, "unitnet", time.Second)
	if err != nil || al[mustAddr("10.61.0.2")].ContainerID != "hl" {
		t.Errorf("adopted allocation missing: %v %v", al, err)
	}
	if b, _ := os.ReadFile(filepath.Join(old, "unitnet", "10.61.0.2")); string(b) != "hl\r\neth0" {
		t.Error("migration changed host-local's file")
	}
}
