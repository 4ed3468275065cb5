//go:build linux

package sandbox_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/podns/podns/sandbox/nsutil"
)

// snapshot is what bad input must not change.
type snapshot struct {
	pods, mounts, ipam string
	links              int
}

func (e *env) snapshot() snapshot {
	m, _ := nsutil.MountsUnder(e.state)
	// Count only this test's veths: other tests share the machine.
	links := 0
	if br, err := netlink.LinkByName(e.bridge); err == nil {
		all, _ := netlink.LinkList()
		for _, l := range all {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				links++
			}
		}
	}
	return snapshot{
		pods:   strings.TrimSpace(e.must("pods", "-q")) + "|" + strings.TrimSpace(e.must("ps", "-q")),
		mounts: strings.Join(m, ","),
		ipam:   strings.Join(e.ipamAllocations(), ","),
		links:  links,
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", podYAML("dup", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	e.runp(podYAML("dup", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	targetless := write("ctr-target.yaml", "metadata: {name: t}\ncommand: [/bin/true]\nlinux: {security_context: {namespace_options: {pid: TARGET}}}\n")

	emptyConf := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"malformed yaml", []string{"runp", write("bad1.yaml", "metadata: {name: x\n  hostname: [")}, "malformed pod config"},
		{"malformed json", []string{"runp", write("bad2.json", `{"metadata": {"name": "x"`)}, "malformed pod config"},
		{"unknown field", []string{"runp", write("bad3.yaml", "metdata: {name: x}\n")}, "unknown field"},
		{"no name", []string{"runp", write("bad4.yaml", "hostname: x\n")}, "metadata.name is required"},
		{"unknown ns mode name", []string{"runp", write("bad5.yaml", podYAML("m1", "linux: {security_context: {namespace_options: {network: BOGUS}}}\n"))}, `unknown value "BOGUS"`},
		{"unknown ns mode number", []string{"runp", write("bad6.yaml", podYAML("m2", "linux: {security_context: {namespace_options: {ipc: 7}}}\n"))}, "unknown value 7"},
		{"pod network CONTAINER", []string{"runp", write("bad7.yaml", podYAML("m3", "linux: {security_context: {namespace_options: {network: CONTAINER}}}\n"))}, "network namespace mode CONTAINER"},
		{"pod TARGET without target", []string{"runp", write("bad8.yaml", podYAML("m4", "linux: {security_context: {namespace_options: {pid: TARGET}}}\n"))}, "TARGET needs target_id"},
		{"host sysctl", []string{"runp", write("bad9.yaml", podYAML("m5", "linux: {sysctls: {vm.swappiness: '10'}}\n"))}, "not namespaced"},
		{"net sysctl on host network", []string{"runp", write("bad10.yaml", podYAML("m6", "linux: {sysctls: {net.ipv4.ip_forward: '1'}, security_context: {namespace_options: {network: NODE}}}\n"))}, "would change the host"},
		{"bad mode", []string{"runp", "--mode", "floating", write("bad11.yaml", podYAML("m7", ""))}, "unknown pod mode"},
		{"duplicate pod", []string{"runp", good}, "already exists"},
		{"missing CNI config", []string{"--cni-conf-dir", emptyConf, "runp", write("bad12.yaml", podYAML("m8", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))}, "no CNI network config"},
		{"missing config file", []string{"runp", filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"container TARGET without target", []string{"create", "dup", targetless}, "TARGET needs target_id"},
		{"container for missing pod", []string{"run", "no-such-pod", "--", "true"}, `pod "no-such-pod" not found`},
		{"create for missing pod", []string{"create", "no-such-pod", write("ctr.yaml", "metadata: {name: c}\ncommand: [/bin/true]\n")}, `pod "no-such-pod" not found`},
		{"missing command", []string{"create", "dup", write("ctr2.yaml", "metadata: {name: c}\n")}, "command or args is required"},
		{"exec in missing container", []string{"exec", "dup/nope", "--", "true"}, `container "nope" not found`},
		{"unknown verb", []string{"frobnicate"}, "unknown command"},
	}
	before := e.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := e.ctl(c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure (out %q)", out)
			}
			if out != "" {
				t.Errorf("stdout not empty: %q", out)
			}
			errOut = strings.TrimSuffix(errOut, "\n")
			if strings.Contains(errOut, "\n") || !strings.HasPrefix(errOut, "podnsctl") {
				t.Errorf("not a one-line error: %q", errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("error %q does not say %q", errOut, c.want)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}
