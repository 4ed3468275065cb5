//go:build linux

package ipam_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/testutil"
)

const refPlugins = "/usr/local/lib/cni-v1.10.0" // hack/deps.sh

// TestUnderReferenceBridge uses podns-ipam exactly like host-local: the
// reference bridge plugin execs it from CNI_PATH, and the address lands on
// eth0 in a real netns.
func TestUnderReferenceBridge(t *testing.T) {
	if _, err := os.Stat(filepath.Join(refPlugins, "bridge")); err != nil {
		t.Fatalf("reference bridge missing (hack/deps.sh installs it): %v", err)
	}
	p := newPlugin(t)
	ns := testutil.UniqueName("ipambr")
	br := testutil.UniqueName("ipbr")
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", br).Run()
	})
	// No isGateway: the bridge gets no address on the host.
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": p.name, "type": "bridge", "bridge": br,
		"ipam": map[string]any{"type": "podns-ipam", "dataDir": p.dataDir,
			"ranges": [][]map[string]string{{{"subnet": "10.69.0.0/24"}}}},
	})
	run := func(command string) ([]byte, error) {
		c := exec.Command(filepath.Join(refPlugins, "bridge"))
		c.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=brctr", "CNI_IFNAME=eth0",
			"CNI_NETNS=/var/run/netns/" + ns, "CNI_PATH=" + refPlugins + ":" + filepath.Dir(p.bin)}
		c.Stdin = strings.NewReader(string(conf))
		return c.Output()
	}
	out, err := run("ADD")
	if err != nil {
		t.Fatalf("bridge ADD: %v %s", err, out)
	}
	if !strings.Contains(string(out), `"10.69.0.2/24"`) {
		t.Fatalf("bridge result without podns-ipam's address: %s", out)
	}
	addrs, err := exec.Command("ip", "-n", ns, "-4", "-br", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(addrs), "10.69.0.2/24") {
		t.Fatalf("eth0 in the pod netns: %v %s", err, addrs)
	}
	if out, err := run("DEL"); err != nil {
		t.Fatalf("bridge DEL: %v %s", err, out)
	}
	if al, err := ipam.Allocations(p.dataDir, p.name, time.Second); err != nil || len(al) != 0 {
		t.Fatalf("after DEL through bridge: %v %v", al, err)
	}
}

// TestShippedConflists checks that every podns-ipam section in conf/ is a
// config podns-ipam accepts.
func TestShippedConflists(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), "conf", "*.conflist"))
	more, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), "conf", "*", "*.conflist"))
	files = append(files, more...)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			CNIVersion string           `json:"cniVersion"`
			Name       string           `json:"name"`
			Plugins    []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, pl := range list.Plugins {
			section, ok := pl["ipam"].(map[string]any)
			if !ok || section["type"] != "podns-ipam" {
				continue
			}
			pl["cniVersion"], pl["name"] = list.CNIVersion, list.Name
			stdin, _ := json.Marshal(pl)
			if _, err := ipam.LoadConfig(stdin, ""); err != nil {
				t.Errorf("%s: podns-ipam rejects its ipam section: %v", f, err)
			}
			n++
		}
	}
	t.Logf("%d podns-ipam sections checked", n)
}
