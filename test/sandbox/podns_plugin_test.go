//go:build linux

package sandbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPodsOnPodnsPlugin runs pods on this tree's podns CNI plugin (with
// host-local IPAM, whose allocations the leak check can read): pod-to-pod
// ping, then a killed holder that gc must clean up completely.
func TestPodsOnPodnsPlugin(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	a := e.runp(podYAML("pa", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	b := e.runp(podYAML("pb", "linux: {security_context: {namespace_options: {pid: POD}}}\n"))
	e.runD(a, "s", "sleep", "3600")
	e.runD(b, "s", "sleep", "3600")
	ipB := strings.Split(e.pod(b).IPs[0], "/")[0]
	if !strings.HasPrefix(ipB, e.subnet+".") {
		t.Fatalf("pod b address %s not from %s.0/24", ipB, e.subnet)
	}
	if out, errOut, code := e.ctl("exec", a+"/s", "--", "ping", "-c", "1", "-W", "2", ipB); code != 0 {
		t.Fatalf("ping a→b: %s %s", out, errOut)
	}
	unix.Kill(e.pod(b).Holder, unix.SIGKILL)
	waitFor(t, "pod b dead", 15*time.Second, func() bool { return e.pod(b).State == "dead" })
	if out := e.must("gc"); !strings.Contains(out, "holder died") {
		t.Fatalf("gc: %q", out)
	}
	if got := len(e.ipamAllocations()); got != 1 {
		t.Fatalf("%d IPAM allocations after gc, want 1 (pod a)", got)
	}
	e.must("rmp", a)
	e.assertClean()
}

// TestPodnsPluginInProcessAndExec: podnsctl runs the podns plugin's ADD and
// DEL in-process by default and exec's it with PODNS_CNI_IN_PROCESS=0; pods
// made either way reach each other, either DEL undoes either ADD, and
// nothing is left. In-process still needs podns installed in the bin dirs,
// so a chain behaves the same both ways.
func TestPodnsPluginInProcessAndExec(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	a := e.runp(podYAML("ina", ""))
	t.Setenv("PODNS_CNI_IN_PROCESS", "0")
	b := e.runp(podYAML("inb", ""))
	e.runD(a, "s", "sleep", "3600")
	e.runD(b, "s", "sleep", "3600")
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		to := strings.Split(e.pod(pair[1]).IPs[0], "/")[0]
		if !strings.HasPrefix(to, e.subnet+".") {
			t.Fatalf("pod address %s not from %s.0/24", to, e.subnet)
		}
		if out, errOut, code := e.ctl("exec", pair[0]+"/s", "--", "ping", "-c", "1", "-W", "2", to); code != 0 {
			t.Fatalf("ping %s: %s %s", to, out, errOut)
		}
	}
	e.must("rmp", a) // exec'd DEL of an in-process ADD
	t.Setenv("PODNS_CNI_IN_PROCESS", "1")
	e.must("rmp", b) // and the other way round
	if got := len(e.ipamAllocations()); got != 0 {
		t.Fatalf("%d IPAM allocations left", got)
	}
	e.assertClean()

	// Without podns in the bin dirs runp fails, in-process as exec'd.
	e.binDirs = refPlugins
	path := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(path, []byte(podYAML("inc", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.ctl("runp", path); code == 0 || !strings.Contains(errOut, `failed to find plugin "podns"`) {
		t.Fatalf("runp without podns installed: exit %d, %q", code, errOut)
	}
	e.assertClean()
}

// execsOf runs podnsctl under strace and returns the base names of the
// programs it and its children exec'd (-b execve lets long-lived children go).
func execsOf(t *testing.T, e *env, args ...string) []string {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "trace")
	full := append([]string{"-f", "-qq", "-b", "execve", "-e", "trace=execve", "-o", trace, filepath.Join(e.bin, "podnsctl"),
		"--state-dir", e.state, "--cni-conf-dir", e.confDir, "--cni-bin-dir", e.binDirs, "--stop-timeout", "1s"}, args...)
	if out, err := exec.Command("strace", full...).CombinedOutput(); err != nil {
		t.Fatalf("podnsctl %v under strace: %v\n%s", args, err, out)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var progs []string
	for _, l := range strings.Split(string(data), "\n") {
		i := strings.Index(l, `execve("`)
		if i < 0 || strings.Contains(l, "ENOENT") {
			continue
		}
		prog := l[i+len(`execve("`):]
		progs = append(progs, filepath.Base(prog[:strings.IndexByte(prog, '"')]))
	}
	return progs
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// TestPodnsFinisherOnlyWhenNeeded: the in-process DEL's finisher (the podns
// binary re-executed) starts only for a teardown that runs a DEL of a chain
// with podns in it: once for stopp, not for the rmp of the stopped pod, and
// never for a pod on another chain.
func TestPodnsFinisherOnlyWhenNeeded(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	id := e.runp(podYAML("fa", ""))
	if got := count(execsOf(t, e, "stopp", id), "podns"); got != 1 {
		t.Fatalf("stopp exec'd podns %d times, want 1 (the DEL's finisher)", got)
	}
	if got := count(execsOf(t, e, "rmp", id), "podns"); got != 0 {
		t.Fatalf("rmp of a stopped pod exec'd podns %d times, want 0", got)
	}
	e.assertClean()

	ref := newEnv(t, envOpts{})
	ref.binDirs = e.bin + ":" + ref.binDirs // podns installed, but not in the chain
	id = ref.runp(podYAML("fb", ""))
	if got := execsOf(t, ref, "rmp", id); count(got, "podns") != 0 || count(got, "bridge") != 1 {
		t.Fatalf("rmp of a pod on the reference bridge exec'd %v, want bridge and no podns", got)
	}
	ref.assertClean()
}
