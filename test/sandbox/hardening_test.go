//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podns/podns/sandbox/nsutil"
)

// foreignRecord writes a pod record podnsctl never made, whose ID points
// outside the state dir at victim, and returns its directory. The record
// names no holder, pins, cgroup or CNI attachment, so even a podnsctl that
// trusts it can only touch victim (a temp dir) and the record itself.
func foreignRecord(t *testing.T, dir, state, victim string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// PodDir(id) is state/pods/<id>.
	rel, err := filepath.Rel(filepath.Join(state, "pods"), victim)
	if err != nil {
		t.Fatal(err)
	}
	rec := fmt.Sprintf(`{"id":%q,"name":"foreign","namespace":"x","phase":"creating","mode":"pinned","networkMode":"NODE","createdAt":"2020-01-01T00:00:00Z","config":{}}`, rel)
	if err := os.WriteFile(filepath.Join(dir, "pod.json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
}

func makeVictim(t *testing.T) (dir, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "victim")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "keep")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func assertUntouched(t *testing.T, victim, file string) {
	t.Helper()
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("a file outside the state dir was removed or changed: %v", err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("podnsctl wrote outside its state dir: %s holds %v", victim, names)
	}
}

// TestHardeningPodRefTraversal: a pod reference on the command line is an
// ID, a name or an ID prefix, never a path. "../.." must not make podnsctl
// load a record from outside its state dir and act on it.
func TestHardeningPodRefTraversal(t *testing.T) {
	e := newEnv(t, envOpts{noConf: true})
	victim, file := makeVictim(t)
	outside := filepath.Join(t.TempDir(), "elsewhere")
	foreignRecord(t, outside, e.state, victim)
	rel, err := filepath.Rel(filepath.Join(e.state, "pods"), outside)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"inspectp", rel}, {"stopp", rel}, {"rmp", "-f", rel}} {
		out, errOut, code := e.ctl(args...)
		if code == 0 {
			t.Errorf("podnsctl %s acted on a record outside its state dir:\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
	assertUntouched(t, victim, file)
	if _, err := os.Stat(filepath.Join(outside, "pod.json")); err != nil {
		t.Errorf("the foreign record was removed: %v", err)
	}
}

// TestHardeningForeignRecordInStateDir: a record whose ID is not its own
// directory's name was not written by podnsctl. gc may remove the bogus
// directory, but never follow the ID out of the state dir.
func TestHardeningForeignRecordInStateDir(t *testing.T) {
	e := newEnv(t, envOpts{noConf: true})
	victim, file := makeVictim(t)
	bogus := filepath.Join(e.state, "pods", "0123456789abcdef0123456789abcdef")
	foreignRecord(t, bogus, e.state, victim)
	e.ctl("gc")
	assertUntouched(t, victim, file)
	os.RemoveAll(bogus) // whatever gc did with it, the env's own check is not about this
}

// TestHardeningStateModes: podnsctl's state (pod records name processes
// and namespaces) is readable by root only: directories 0700, files 0600.
func TestHardeningStateModes(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	id := e.runp(podYAML("modes", ""))
	e.runD(id, "c", "/bin/sleep", "60")
	var bad []string
	// The env made the state root itself; a root podnsctl makes is 0700.
	fresh := filepath.Join(t.TempDir(), "fresh-state")
	if _, errOut, code := e.ctl("--state-dir", fresh, "pods"); code != 0 {
		t.Fatalf("podnsctl pods with a new state dir: %s", errOut)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		bad = append(bad, fmt.Sprintf("new state root: %v %v", fi.Mode(), err))
	}
	// Namespace pins are nsfs mount points with the kernel's modes.
	pins := map[string]bool{}
	mounts, _ := nsutil.MountsUnder(e.state)
	for _, m := range mounts {
		pins[m] = true
	}
	filepath.Walk(e.state, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == e.state || pins[path] {
			return nil
		}
		switch {
		case fi.IsDir() && fi.Mode().Perm()&0o077 != 0:
			bad = append(bad, fmt.Sprintf("dir %s is %v", path, fi.Mode().Perm()))
		case fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0:
			bad = append(bad, fmt.Sprintf("file %s is %v", path, fi.Mode().Perm()))
		}
		return nil
	})
	if len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
	e.must("rmp", "-f", id)
}

// TestHardeningPodnsctlNoShell: runp, run, rmp exec only podns's own
// binaries, the CNI plugins of the network and the container's command;
// never a shell or a helper tool (ip, iptables, mount, nsenter...).
func TestHardeningPodnsctlNoShell(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	cfg := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(cfg, []byte(podYAML("noshell", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(t.TempDir(), "trace")
	seen := map[string]bool{}
	strace := func(args ...string) string {
		// -b execve: record each exec, then let the child go (the holder
		// and containers outlive podnsctl; strace -f would wait for them).
		full := append([]string{"-f", "-qq", "-b", "execve", "-e", "trace=execve", "-o", trace, filepath.Join(e.bin, "podnsctl"),
			"--state-dir", e.state, "--cni-conf-dir", e.confDir, "--cni-bin-dir", e.binDirs, "--stop-timeout", "1s"}, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "strace", full...).CombinedOutput()
		if err != nil {
			t.Fatalf("podnsctl %v under strace: %v\n%s", args, err, out)
		}
		data, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			i := strings.Index(l, "execve(\"")
			if i < 0 || strings.Contains(l, "ENOENT") {
				continue // PATH lookups that miss are not execs
			}
			prog := l[i+len("execve(\""):]
			prog = prog[:strings.IndexByte(prog, '"')]
			seen[filepath.Base(prog)] = true
			switch filepath.Base(prog) {
			case "podnsctl", "podns-sandbox", "exe", "podns", "host-local", "sleep":
			default:
				t.Errorf("podnsctl %s exec'd %s", args[0], prog)
			}
		}
		return string(out)
	}
	out := strace("runp", cfg)
	lines := strings.Fields(out)
	id := lines[len(lines)-1]
	strace("run", "-d", "--name", "c", id, "--", "/bin/sleep", "60")
	strace("rmp", "-f", id)
	// The trace must have seen the execs it vouches for. (The podns plugin
	// runs inside podnsctl; the host-local IPAM it delegates to is exec'd.)
	for _, p := range []string{"podns-sandbox", "host-local"} {
		if !seen[p] {
			t.Errorf("strace never saw %s exec'd: the trace is not working (saw %v)", p, seen)
		}
	}
}
