//go:build linux

package cni_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/podns/podns/pkg/testutil"
)

// cnitool runs cnitool with the conflist dir and CNI_PATH, inside hostNS
// (a throwaway netns standing in for the node) when it is set.
func cnitool(t testing.TB, hostNS, confDir, cniPath string, env []string, args ...string) (string, error) {
	t.Helper()
	tool, err := exec.LookPath("cnitool")
	if err != nil {
		if home, _ := os.UserHomeDir(); home != "" {
			tool = filepath.Join(home, "go", "bin", "cnitool")
		}
	}
	argv := append([]string{tool}, args...)
	if hostNS != "" {
		argv = append([]string{"ip", "netns", "exec", hostNS}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NETCONFPATH=" + confDir, "CNI_PATH=" + cniPath, "CNI_IFNAME=eth0"}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChainReferencePlugins: one conflist of podns + portmap, bandwidth,
// tuning and firewall passes ADD, CHECK and DEL through cnitool; each
// reference plugin finds what it needs in podns's result. Run once with
// Debian's plugins (cniVersion 1.0.0) and once with the v1.10.0 ones
// (1.1.0, with STATUS and GC). The node is a throwaway netns so the
// reference plugins' iptables chains vanish with it.
func TestChainReferencePlugins(t *testing.T) {
	for _, tc := range []struct{ version, dir string }{{"1.0.0", DebianPluginDir}, {"1.1.0", RefPluginDir}} {
		t.Run(tc.version, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(tc.dir, "portmap")); err != nil {
				t.Fatalf("reference plugins missing (run hack/deps.sh): %v", err)
			}
			n := newTestNet(t)
			hostNS, _ := newNetns(t)
			inNS(t, hostNS, "ip", "link", "set", "lo", "up")
			podNS, podPath := newNetns(t)

			// Dual stack: Debian's portmap CHECK also looks for its IPv6 chain.
			podns := n.conf(tc.version, true, true)
			podns["ipMasq"] = true
			podns["ipam"].(map[string]any)["type"] = "podns-ipam"
			podns["capabilities"] = map[string]bool{"mac": true}
			plugins := func(portmap bool) []Conf {
				ps := []Conf{podns}
				if portmap {
					ps = append(ps, Conf{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
				}
				return append(ps,
					Conf{"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 1000000},
					Conf{"type": "tuning", "sysctl": map[string]string{"net.ipv4.conf.eth0.rp_filter": "2"}},
					Conf{"type": "firewall"})
			}
			list := conflist(t, n.Name, tc.version, plugins(true)...)
			confDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(confDir, "10-chain.conflist"), list, 0o644); err != nil {
				t.Fatal(err)
			}
			cniPath := n.Bin + ":" + tc.dir
			cid := testutil.UniqueName("chain")
			env := []string{
				"CNI_CONTAINERID=" + cid,
				`CAP_ARGS={"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}],"mac":"0a:58:0a:01:02:03"}`,
				"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=chained",
			}
			out, err := cnitool(t, hostNS, confDir, cniPath, env, "add", n.Name, podPath)
			if err != nil {
				t.Fatalf("cnitool add: %v\n%s", err, out)
			}
			t.Cleanup(func() { _, _ = cnitool(t, hostNS, confDir, cniPath, env, "del", n.Name, podPath) })
			var res current.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 2 {
				t.Fatalf("cnitool add result: %v\n%s", err, out)
			}
			podIP := res.IPs[0].Address.IP.String()

			// Each plugin did its part.
			if got := inNS(t, podNS, "sysctl", "-n", "net.ipv4.conf.eth0.rp_filter"); strings.TrimSpace(got) != "2" {
				t.Fatalf("tuning: rp_filter %q", got)
			}
			if l := inNS(t, podNS, "ip", "-o", "link", "show", "eth0"); !strings.Contains(l, "0a:58:0a:01:02:03") {
				t.Fatalf("mac capability not applied: %s", l)
			}
			hostVeth := res.Interfaces[1].Name
			if q := inNS(t, hostNS, "tc", "qdisc", "show", "dev", hostVeth); !strings.Contains(q, "tbf") {
				t.Fatalf("bandwidth: no tbf qdisc on %s:\n%s", hostVeth, q)
			}
			rules := inNS(t, hostNS, "iptables-save")
			if !strings.Contains(rules, "18080") || !strings.Contains(rules, podIP) {
				t.Fatalf("portmap/firewall rules missing for %s:\n%s", podIP, rules)
			}
			ping(t, podNS, res.IPs[0].Gateway.String())
			ping(t, hostNS, podIP)

			checkDir := confDir
			if tc.dir == DebianPluginDir {
				// Debian's portmap v1.1.1 CHECK looks for its IPv4 rules in
				// ip6tables and always fails on dual stack; the rest of the
				// chain is checked without it.
				checkDir = t.TempDir()
				if err := os.WriteFile(filepath.Join(checkDir, "10-chain.conflist"), conflist(t, n.Name, tc.version, plugins(false)...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := cnitool(t, hostNS, checkDir, cniPath, env, "check", n.Name, podPath); err != nil {
				t.Fatalf("cnitool check: %v\n%s", err, out)
			}
			if tc.version == "1.1.0" {
				if out, err := cnitool(t, hostNS, confDir, cniPath, env, "status", n.Name, podPath); err != nil {
					t.Fatalf("cnitool status: %v\n%s", err, out)
				}
			}
			if out, err := cnitool(t, hostNS, confDir, cniPath, env, "del", n.Name, podPath); err != nil {
				t.Fatalf("cnitool del: %v\n%s", err, out)
			}
			if rules := inNS(t, hostNS, "iptables-save"); strings.Contains(rules, podIP) {
				t.Fatalf("rules for %s survived DEL:\n%s", podIP, rules)
			}
			if out := inNS(t, podNS, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
				t.Fatalf("eth0 survived DEL:\n%s", out)
			}
			if out, err := cnitool(t, hostNS, confDir, cniPath, env, "del", n.Name, podPath); err != nil {
				t.Fatalf("second cnitool del: %v\n%s", err, out)
			}
		})
	}
}

// TestCnitoolAlone: cnitool drives ADD, CHECK, STATUS, GC and DEL against
// podns alone on the host; `cnitool gc` passes no valid attachments, so
// the attachment goes away.
func TestCnitoolAlone(t *testing.T) {
	n := newTestNet(t)
	c := n.conf("1.1.0", true, true)
	c["ipMasq"] = true
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-podns.conflist"), conflist(t, n.Name, "1.1.0", c), 0o644); err != nil {
		t.Fatal(err)
	}
	ns, path := newNetns(t)
	env := []string{"CNI_CONTAINERID=c" + ns}
	for _, verb := range []string{"add", "check", "status", "gc"} {
		if out, err := cnitool(t, "", confDir, n.CNIPath, env, verb, n.Name, path); err != nil {
			t.Fatalf("cnitool %s: %v\n%s", verb, err, out)
		}
		if verb == "check" {
			ping(t, ns, strings.TrimSuffix(n.Sub4, "0/24")+"1")
		}
	}
	n.assertNoState(ns)
	if out, err := cnitool(t, "", confDir, n.CNIPath, env, "del", n.Name, path); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
}
