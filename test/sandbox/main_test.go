//go:build linux

// Package sandbox_test drives podnsctl and podns-sandbox as built binaries
// against the real kernel: real network namespaces, bridges, CNI plugins
// and processes, each test with its own state dir, bridge and subnet.
package sandbox_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/testutil"
	"github.com/podns/podns/sandbox/nsutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// refPlugins holds the v1.10.0 reference plugins (hack/deps.sh).
const refPlugins = "/usr/local/lib/cni-v1.10.0"

type env struct {
	t       *testing.T
	bin     string // directory with podnsctl and podns-sandbox
	state   string
	confDir string
	binDirs string
	bridge  string
	network string
	subnet  string // e.g. 10.213.7
	ipamDir string
	tracked []int // pids that must be gone at the end
}

type envOpts struct {
	portmap   bool
	bandwidth bool
	noConf    bool
	extraBin  string // a directory searched before the reference plugins
	extraPlug string // JSON of one more plugin appended to the chain
	podns     bool   // main plugin: podns from this tree instead of the reference bridge
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat(filepath.Join(refPlugins, "bridge")); err != nil {
		t.Fatalf("reference CNI plugins missing in %s (run hack/deps.sh): %v", refPlugins, err)
	}
	e := &env{t: t, bin: testutil.BinDir(t)}
	e.state = t.TempDir()
	e.confDir = t.TempDir()
	e.ipamDir = t.TempDir()
	e.bridge = testutil.UniqueName("psbr")
	e.network = testutil.UniqueName("psnet")
	// 10.180-199.x: clear of test/cni (10.200+), chaos (10.150-179) and multinode (10.213-214).
	x, _ := rand.Int(rand.Reader, big.NewInt(20))
	y, _ := rand.Int(rand.Reader, big.NewInt(250))
	e.subnet = fmt.Sprintf("10.%d.%d", 180+x.Int64(), 1+y.Int64())
	e.binDirs = refPlugins
	if o.extraBin != "" {
		e.binDirs = o.extraBin + ":" + refPlugins
	}
	main := "bridge"
	if o.podns {
		main = "podns"
		e.binDirs = e.bin + ":" + e.binDirs
	}
	if !o.noConf {
		plugins := []string{fmt.Sprintf(`{"type":%q,`, main) + fmt.Sprintf(`"bridge":%q,"isGateway":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"%s.0/24"}]],"dataDir":%q}}`, e.bridge, e.subnet, e.ipamDir)}
		if o.portmap {
			plugins = append(plugins, `{"type":"portmap","capabilities":{"portMappings":true}}`)
		}
		if o.bandwidth {
			plugins = append(plugins, `{"type":"bandwidth","capabilities":{"bandwidth":true}}`)
		}
		if o.extraPlug != "" {
			plugins = append(plugins, o.extraPlug)
		}
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[%s]}`, e.network, strings.Join(plugins, ","))
		if err := os.WriteFile(filepath.Join(e.confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Remove every pod first; then check that nothing leaked.
		if _, errOut, code := e.ctl("rmp", "-a", "-f"); code != 0 {
			t.Errorf("cleanup rmp -a: %s", errOut)
		}
		e.assertClean()
		if l, err := netlink.LinkByName(e.bridge); err == nil {
			netlink.LinkDel(l)
		}
	})
	return e
}

// ctl runs podnsctl with this env's state and CNI dirs.
func (e *env) ctl(args ...string) (string, string, int) {
	return e.ctlIn("", args...)
}

func (e *env) ctlIn(stdin string, args ...string) (string, string, int) {
	full := append([]string{"--state-dir", e.state, "--cni-conf-dir", e.confDir, "--cni-bin-dir", e.binDirs, "--stop-timeout", "1s"}, args...)
	cmd := exec.Command(filepath.Join(e.bin, "podnsctl"), full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("podnsctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs podnsctl and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.ctl(args...)
	if code != 0 {
		e.t.Fatalf("podnsctl %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

// runp writes a pod config and creates the pod, returning its ID.
func (e *env) runp(config string, flags ...string) string {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "pod.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		e.t.Fatal(err)
	}
	out := e.must(append(append([]string{"runp"}, flags...), path)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := lines[len(lines)-1]
	p := e.pod(id)
	e.track(p.Holder)
	return id
}

type podJSON struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	State    string            `json:"state"`
	Holder   int               `json:"holderPid"`
	Pins     map[string]string `json:"pins"`
	NSInodes map[string]uint64 `json:"nsInodes"`
	IPs      []string          `json:"ips"`
	Mode     string            `json:"mode"`
}

func (e *env) pod(ref string) podJSON {
	e.t.Helper()
	var p podJSON
	if err := json.Unmarshal([]byte(e.must("inspectp", "-o", "json", ref)), &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

type ctrJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	Exit  *int   `json:"exit"`
	PID   int    `json:"pid"`
	Shim  int    `json:"shimPid"`
}

func (e *env) ctr(ref string) ctrJSON {
	e.t.Helper()
	var c ctrJSON
	if err := json.Unmarshal([]byte(e.must("inspect", "-o", "json", ref)), &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// runD starts a detached container and tracks its processes.
func (e *env) runD(pod, name string, cmd ...string) ctrJSON {
	e.t.Helper()
	e.must(append([]string{"run", "-d", "--name", name, pod, "--"}, cmd...)...)
	c := e.ctr(pod + "/" + name)
	e.track(c.PID, c.Shim)
	// Containers must not hold copies of namespace pins (other pods' or
	// ip netns's): those would keep removed pods' namespaces alive.
	if mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", c.PID)); err == nil && strings.Contains(string(mi), " - nsfs ") {
		e.t.Errorf("container %s/%s holds namespace pins:\n%s", pod, name, mi)
	}
	return c
}

func (e *env) track(pids ...int) {
	for _, p := range pids {
		if p > 0 {
			e.tracked = append(e.tracked, p)
		}
	}
}

// assertClean checks that no pod left a mount, process, veth, IPAM
// allocation or state directory behind.
func (e *env) assertClean() {
	t := e.t
	t.Helper()
	mounts, err := nsutil.MountsUnder(e.state)
	if err != nil {
		t.Error(err)
	}
	if len(mounts) > 0 {
		t.Errorf("mounts left under state dir: %v", mounts)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "pods")); len(ents) > 0 {
		t.Errorf("pod state left: %d entries", len(ents))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range e.tracked {
		for nsutil.Alive(pid, 0) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if nsutil.Alive(pid, 0) {
			t.Errorf("process %d (%s) still running", pid, nsutil.Comm(pid))
		}
	}
	if br, err := netlink.LinkByName(e.bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("veth %s still attached to %s", l.Attrs().Name, e.bridge)
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join(e.ipamDir, e.network)); err == nil {
		for _, en := range ents {
			if n := en.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
				t.Errorf("IPAM allocation left: %s", n)
			}
		}
	}
}

// ipamAllocations lists host-local's allocation files.
func (e *env) ipamAllocations() []string {
	ents, _ := os.ReadDir(filepath.Join(e.ipamDir, e.network))
	var out []string
	for _, en := range ents {
		if n := en.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, n)
		}
	}
	return out
}

func podYAML(name, extra string) string {
	return fmt.Sprintf("metadata: {name: %s, namespace: test, uid: %s-uid}\n%s", name, name, extra)
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
