//go:build linux

package cni_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/podns/podns/pkg/netconf"
	"github.com/podns/podns/pkg/testutil"
)

// TestShippedConflists: every conf/*.conflist is valid and works as
// shipped, with only its names, subnets and data dir swapped for this
// test's own: cnitool add, check, status, del, in a throwaway node netns.
func TestShippedConflists(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(), "conf", "*.conflist"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want the default, routed and dual-stack conflists in conf/, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			n := newTestNet(t)
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var list map[string]any
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			list["name"] = n.Name
			plugins := list["plugins"].([]any)
			pc := plugins[0].(map[string]any)
			if pc["type"] != "podns" {
				t.Fatalf("%s: first plugin is %v, want podns", f, pc["type"])
			}
			if _, ok := pc["bridge"]; ok {
				pc["bridge"] = n.Bridge
			}
			ipam := pc["ipam"].(map[string]any)
			ipam["dataDir"] = n.DataDir
			for _, set := range ipam["ranges"].([]any) {
				for _, r := range set.([]any) {
					rm := r.(map[string]any)
					v6 := strings.Contains(rm["subnet"].(string), ":")
					rm["subnet"] = map[bool]string{false: n.Sub4, true: n.Sub6}[v6]
					delete(rm, "gateway")
				}
			}
			// The podns part must pass the plugin's own validation.
			one := map[string]any{"cniVersion": list["cniVersion"], "name": n.Name}
			for k, v := range pc {
				one[k] = v
			}
			b, _ := json.Marshal(one)
			if _, err := netconf.Parse(b); err != nil {
				t.Fatalf("%s: podns config invalid: %v", f, err)
			}
			out, _ := json.Marshal(list)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "10-test.conflist"), out, 0o644); err != nil {
				t.Fatal(err)
			}

			hostNS, _ := newNetns(t)
			inNS(t, hostNS, "ip", "link", "set", "lo", "up")
			podNS, podPath := newNetns(t)
			cniPath := n.Bin + ":" + RefPluginDir
			env := []string{"CNI_CONTAINERID=c" + podNS}
			res, err := cnitool(t, hostNS, dir, cniPath, env, "add", n.Name, podPath)
			if err != nil {
				t.Fatalf("cnitool add: %v\n%s", err, res)
			}
			var r current.Result
			if err := json.Unmarshal([]byte(res), &r); err != nil || len(r.IPs) == 0 {
				t.Fatalf("result: %v\n%s", err, res)
			}
			for _, ipc := range r.IPs {
				ping(t, podNS, ipc.Gateway.String())
				ping(t, hostNS, ipc.Address.IP.String())
			}
			for _, verb := range []string{"check", "status", "del", "del"} {
				if out, err := cnitool(t, hostNS, dir, cniPath, env, verb, n.Name, podPath); err != nil {
					t.Fatalf("cnitool %s: %v\n%s", verb, err, out)
				}
			}
			if out := inNS(t, podNS, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
				t.Fatalf("eth0 survived DEL:\n%s", out)
			}
		})
	}
}
