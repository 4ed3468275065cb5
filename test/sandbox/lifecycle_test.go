//go:build linux

package sandbox_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
	"github.com/podns/podns/sandbox/cgroups"
	"github.com/podns/podns/sandbox/nsutil"
)

// removeCgroupParent removes a test's cgroup parent, which must be empty
// by then: a leftover child cgroup is a leak.
func removeCgroupParent(t *testing.T, parent string) {
	for _, d := range cgroups.Dirs(parent) {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			for _, en := range ents {
				if en.IsDir() {
					t.Errorf("cgroup left under %s: %s", d, en.Name())
					cgroups.Kill(filepath.Join(parent, en.Name()))
				}
			}
		}
		unix.Rmdir(d)
	}
}

// TestPinnedMode: with no holder the namespaces live on bind mounts;
// containers join them; removal unmounts everything.
func TestPinnedMode(t *testing.T) {
	e := newEnv(t, envOpts{})
	pod := e.runp(podYAML("pinned", `hostname: pinned-host
linux:
  security_context:
    namespace_options: {pid: CONTAINER}
`), "--mode", "pinned")
	p := e.pod(pod)
	if p.Holder != 0 || p.Mode != "pinned" || p.State != "ready" {
		t.Fatalf("pinned pod: %+v", p)
	}
	for _, k := range []string{"net", "ipc", "uts"} {
		ino, err := nsutil.Inode(p.Pins[k])
		if err != nil || ino != p.NSInodes[k] {
			t.Fatalf("%s pin %s: inode %d err %v, want %d", k, p.Pins[k], ino, err, p.NSInodes[k])
		}
		// Nothing runs in the pod: the namespace lives on the mount alone.
		if pids := nsutil.PidsInNS(k, ino); len(pids) != 0 {
			t.Fatalf("processes in a pinned pod's %s namespace: %v", k, pids)
		}
	}
	mounts, _ := nsutil.MountsUnder(e.state)
	if len(mounts) != 3 {
		t.Fatalf("want 3 pins, got %v", mounts)
	}
	out := e.must("run", "--name", "c", pod, "--", "sh", "-c", "hostname; readlink /proc/self/ns/net")
	if !strings.Contains(out, "pinned-host") || !strings.Contains(out, fmt.Sprintf("net:[%d]", p.NSInodes["net"])) {
		t.Fatalf("container in pinned pod: %q", out)
	}
	if len(p.IPs) != 1 || !strings.HasPrefix(p.IPs[0], e.subnet+".") {
		t.Fatalf("pinned pod IPs %v", p.IPs)
	}
	// run is in the foreground: streams stdout/stderr, returns the status.
	sout, serr, code := e.ctl("run", "--name", "status", pod, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
	if code != 7 || sout != "to-out\n" || serr != "to-err\n" {
		t.Fatalf("foreground run: exit %d out %q err %q", code, sout, serr)
	}
	if c := e.ctr(pod + "/status"); c.State != "exited" || c.Exit == nil || *c.Exit != 7 {
		t.Fatalf("recorded status %+v", c)
	}
	e.must("rmp", pod)
	if mounts, _ := nsutil.MountsUnder(e.state); len(mounts) != 0 {
		t.Fatalf("mounts left after rmp: %v", mounts)
	}
	if a := e.ipamAllocations(); len(a) != 0 {
		t.Fatalf("IPAM allocations left: %v", a)
	}
}

// TestPinnedRefusesSharedPID: a PID namespace cannot outlive its init, so
// pinned mode with pid POD is refused up front and leaves nothing.
func TestPinnedRefusesSharedPID(t *testing.T) {
	e := newEnv(t, envOpts{})
	path := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(path, []byte(podYAML("sharedpid", "linux: {security_context: {namespace_options: {pid: POD}}}\n")), 0o644)
	out, errOut, code := e.ctl("runp", "--mode", "pinned", path)
	if code == 0 || !strings.Contains(errOut, "pinned mode cannot keep a shared PID namespace") || out != "" {
		t.Fatalf("exit %d out %q err %q", code, out, errOut)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("error is not one line: %q", errOut)
	}
	if ids := strings.TrimSpace(e.must("pods", "-q")); ids != "" {
		t.Fatalf("pods after refusal: %s", ids)
	}
}

// TestKillHolderThenGC: the holder dies by SIGKILL; gc tears the pod down
// (containers, CNI DEL, pins) and removes it.
func TestKillHolderThenGC(t *testing.T) {
	e := newEnv(t, envOpts{})
	pod := e.runp(podYAML("victim", "linux: {security_context: {namespace_options: {pid: POD}}}\n"))
	p := e.pod(pod)
	c := e.runD(pod, "a", "sleep", "3600")
	if len(e.ipamAllocations()) != 1 {
		t.Fatal("no IPAM allocation after runp")
	}
	unix.Kill(p.Holder, unix.SIGKILL)
	waitFor(t, "pod to be seen dead", 15*time.Second, func() bool { return e.pod(pod).State == "dead" })
	out := e.must("gc")
	if !strings.Contains(out, "holder died") {
		t.Fatalf("gc: %q", out)
	}
	if ids := strings.TrimSpace(e.must("pods", "-q")); ids != "" {
		t.Fatalf("pods after gc: %s", ids)
	}
	if nsutil.Alive(c.PID, 0) {
		t.Fatal("container survived")
	}
	e.assertClean()
}

// TestKillContainerThenGC: a container killed by SIGKILL is reported with
// status 137; gc cleans it up and the pod stays usable.
func TestKillContainerThenGC(t *testing.T) {
	e := newEnv(t, envOpts{})
	parent := testutil.UniqueName("podnscg")
	t.Cleanup(func() { removeCgroupParent(t, parent) })
	pod := e.runp(podYAML("ctrkill", fmt.Sprintf("linux: {cgroup_parent: %q, security_context: {namespace_options: {pid: CONTAINER}}}\n", parent)))
	// create + start from a CRI container config with limits, env, workdir.
	cfgPath := filepath.Join(t.TempDir(), "ctr.yaml")
	os.WriteFile(cfgPath, []byte(`metadata: {name: a}
command: [sh, -c]
args: ["echo $GREETING; pwd; sleep 3600 & sleep 3600"]
working_dir: /tmp
envs: [{key: GREETING, value: hi-there}]
linux:
  resources: {memory_limit_in_bytes: 67108864, cpu_quota: 50000, cpu_period: 100000}
`), 0o644)
	id := strings.TrimSpace(e.must("create", pod, cfgPath))
	if st := e.ctr(id).State; st != "created" {
		t.Fatalf("after create: %s", st)
	}
	e.must("start", id)
	c := e.ctr(id)
	e.track(c.PID, c.Shim)
	for _, d := range cgroups.Dirs(filepath.Join(parent, "podns-"+pod, c.ID)) {
		procs, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil || !strings.Contains(string(procs), strconv.Itoa(c.PID)) {
			t.Fatalf("container %d not in cgroup %s: %q %v", c.PID, d, procs, err)
		}
		if strings.Contains(d, "/memory/") {
			if lim, _ := os.ReadFile(filepath.Join(d, "memory.limit_in_bytes")); strings.TrimSpace(string(lim)) != "67108864" {
				t.Fatalf("memory limit %q", lim)
			}
		}
		if strings.Contains(d, "/cpu/") {
			if q, _ := os.ReadFile(filepath.Join(d, "cpu.cfs_quota_us")); strings.TrimSpace(string(q)) != "50000" {
				t.Fatalf("cpu quota %q", q)
			}
		}
	}
	waitFor(t, "container output", 15*time.Second, func() bool {
		log, _ := os.ReadFile(filepath.Join(e.state, "pods", pod, "containers", c.ID, "log"))
		return string(log) == "hi-there\n/tmp\n"
	})
	unix.Kill(c.PID, unix.SIGKILL)
	waitFor(t, "container to exit", 15*time.Second, func() bool { return e.ctr(c.ID).State == "exited" })
	if got := e.ctr(c.ID); got.Exit == nil || *got.Exit != 137 {
		t.Fatalf("exit status %v, want 137", got.Exit)
	}
	out := e.must("gc")
	if !strings.Contains(out, "exited: cleaned up") {
		t.Fatalf("gc: %q", out)
	}
	if p := e.pod(pod); p.State != "ready" {
		t.Fatalf("pod %s after container kill", p.State)
	}
	if out := e.must("run", "--name", "after", pod, "--", "echo", "still-works"); strings.TrimSpace(out) != "still-works" {
		t.Fatalf("pod unusable after gc: %q", out)
	}
	e.must("rmp", pod)
	e.assertClean()
}

// slowPlugin is a test instrument: a CNI plugin that blocks on ADD (so
// podnsctl can be killed inside runp; the sleep takes the shell's PID, so
// killing that PID leaves nothing behind) and succeeds on DEL.
const slowPlugin = `#!/bin/sh
cat >/dev/null
case "$CNI_COMMAND" in
ADD) echo $$ > "$(dirname "$0")/slow.pid"; exec sleep 60 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0
`

// TestKillPodnsctlMidRunpThenGC: podnsctl dies by SIGKILL while CNI ADD is
// half done (bridge and IPAM have run); gc finds the half-made pod and
// leaves no netns, mount, process, veth or IPAM allocation behind.
func TestKillPodnsctlMidRunpThenGC(t *testing.T) {
	plugDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(plugDir, "slowcni"), []byte(slowPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{extraBin: plugDir, extraPlug: `{"type":"slowcni"}`})
	path := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(path, []byte(podYAML("crashy", "linux: {security_context: {namespace_options: {pid: POD}}}\n")), 0o644)
	cmd := exec.Command(filepath.Join(e.bin, "podnsctl"), "--state-dir", e.state, "--cni-conf-dir", e.confDir, "--cni-bin-dir", e.binDirs, "runp", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(plugDir, "slow.pid")
	var slow int
	t.Cleanup(func() {
		if slow > 0 {
			unix.Kill(slow, unix.SIGKILL)
		}
	})
	waitFor(t, "the slow plugin's ADD", 10*time.Second, func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		slow, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return slow > 0
	})
	// Midway: state says creating, bridge made the veth, IPAM allocated.
	ids, _ := os.ReadDir(filepath.Join(e.state, "pods"))
	if len(ids) != 1 {
		t.Fatalf("want one pod dir, got %d", len(ids))
	}
	var rec struct {
		Phase    string `json:"phase"`
		CNIAdded bool   `json:"cniAdded"`
	}
	data, _ := os.ReadFile(filepath.Join(e.state, "pods", ids[0].Name(), "pod.json"))
	json.Unmarshal(data, &rec)
	if rec.Phase != "creating" || !rec.CNIAdded {
		t.Fatalf("midway record: %s", data)
	}
	// The holder is recorded only with the finished pod: gc must find this
	// one by its command line.
	holder := 0
	for _, pid := range nsutil.Pids() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "\x00hold\x00--pod\x00"+ids[0].Name()+"\x00") {
			holder = pid
		}
	}
	if holder == 0 {
		t.Fatal("no holder running for the half-made pod")
	}
	e.track(holder)
	if len(e.ipamAllocations()) != 1 {
		t.Fatal("bridge/host-local had not run before the slow plugin")
	}
	cmd.Process.Kill()
	cmd.Wait()
	unix.Kill(slow, unix.SIGKILL)
	// Once dead its PID can be anyone's (a process of another test binary
	// running beside this one): the cleanup must not signal it again.
	slow = 0

	out := e.must("gc")
	if !strings.Contains(out, "half made") {
		t.Fatalf("gc: %q", out)
	}
	e.assertClean()
	if nsutil.Alive(holder, 0) {
		t.Fatal("holder of the half-made pod survived gc")
	}
}

// TestPIDTarget: a container with pid TARGET joins another container's PID
// namespace (as kubectl debug does), and a missing target is refused.
func TestPIDTarget(t *testing.T) {
	e := newEnv(t, envOpts{})
	pod := e.runp(podYAML("target", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	a := e.runD(pod, "a", "sleep", "3600")
	cfg := filepath.Join(t.TempDir(), "debug.yaml")
	os.WriteFile(cfg, []byte(`metadata: {name: debug}
command: [sh, -c, "cat /proc/1/comm; sleep 3600"]
linux: {security_context: {namespace_options: {pid: TARGET, target_id: a}}}
`), 0o644)
	id := strings.TrimSpace(e.must("create", pod, cfg))
	e.must("start", id)
	d := e.ctr(id)
	e.track(d.PID, d.Shim)
	if nsutil.ProcNS(d.PID)["pid"] != nsutil.ProcNS(a.PID)["pid"] {
		t.Fatal("TARGET container is not in the target's PID namespace")
	}
	waitFor(t, "debug container output", 15*time.Second, func() bool {
		log, _ := os.ReadFile(filepath.Join(e.state, "pods", pod, "containers", id, "log"))
		return string(log) == "sleep\n"
	})
	os.WriteFile(cfg, []byte("metadata: {name: debug2}\ncommand: [/bin/true]\nlinux: {security_context: {namespace_options: {pid: TARGET, target_id: nope}}}\n"), 0o644)
	if _, errOut, code := e.ctl("create", pod, cfg); code == 0 || !strings.Contains(errOut, `container "nope" not found`) {
		t.Fatalf("TARGET to a missing container: exit %d %s", code, errOut)
	}
	if out := e.must("ns", pod); !strings.Contains(out, "across pods: no namespace is shared") || !strings.Contains(out, "debug") {
		t.Fatalf("ns table:\n%s", out)
	}
}

// TestForcedRmpForgetsCNICache: a DEL that fails keeps the pod (a plain
// rmp fails) and its cached CNI result, for the DEL that retries it; rmp -f
// removes the pod anyway and, since no retry will come, the cache entry.
func TestForcedRmpForgetsCNICache(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.runp(podYAML(testutil.UniqueName("fdel"), ""))
	cached := func() []string {
		m, _ := filepath.Glob(filepath.Join(e.state, "cni-cache", "results", "*"+id+"*"))
		return m
	}
	if len(cached()) != 1 {
		t.Fatalf("cached CNI results of %s: %v, want one", id, cached())
	}
	// A plugin that cannot be found, first in the pod's saved chain: its
	// DEL runs last, after the real plugins have released what they hold.
	saved := filepath.Join(e.state, "pods", id, "network.conflist")
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), `"plugins":[`, `"plugins":[{"type":"podns-test-missing"},`, 1)
	if broken == string(data) {
		t.Fatalf("no plugin list in %s: %s", saved, data)
	}
	if err := os.WriteFile(saved, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, code := e.ctl("rmp", id); code == 0 {
		t.Fatal("rmp succeeded although the CNI DEL failed")
	}
	if len(cached()) != 1 {
		t.Fatalf("a failed DEL removed the cached result the retry needs: %v", cached())
	}
	e.must("rmp", "-f", id)
	if left := cached(); len(left) != 0 {
		t.Fatalf("cached CNI result left after rmp -f: %v", left)
	}
}
