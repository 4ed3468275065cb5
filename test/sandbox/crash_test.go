//go:build linux

package sandbox_test

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podns/podns/sandbox/nsutil"
)

// TestKillRunpAtRandomInstants kills podnsctl runp by SIGKILL at random
// moments (before, during and after holder start, pinning and CNI ADD);
// after gc nothing of any attempt is left, holders included. A private copy
// of podns-sandbox tells this test's holders from everyone else's.
func TestKillRunpAtRandomInstants(t *testing.T) {
	e := newEnv(t, envOpts{})
	sbDir := t.TempDir()
	sb := filepath.Join(sbDir, "podns-sandbox")
	data, err := os.ReadFile(filepath.Join(e.bin, "podns-sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(sb, data, 0o755)
	holders := func() []int {
		var out []int
		for _, pid := range nsutil.Pids() {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == sb && nsutil.Alive(pid, 0) {
				out = append(out, pid)
			}
		}
		return out
	}
	t.Cleanup(func() {
		for _, p := range holders() {
			t.Errorf("holder %d left", p)
		}
	})
	cfgDir := t.TempDir()
	survivors := 0
	for i := 0; i < 8; i++ {
		path := filepath.Join(cfgDir, fmt.Sprintf("p%d.yaml", i))
		os.WriteFile(path, []byte(podYAML(fmt.Sprintf("crash%d", i), "linux: {security_context: {namespace_options: {pid: POD}}}\n")), 0o644)
		cmd := exec.Command(filepath.Join(e.bin, "podnsctl"), "--state-dir", e.state, "--cni-conf-dir", e.confDir,
			"--cni-bin-dir", e.binDirs, "--sandbox-bin", sb, "runp", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A runp takes tens of milliseconds here: kill within about that.
		d, _ := rand.Int(rand.Reader, big.NewInt(100000))
		time.Sleep(time.Duration(d.Int64()) * time.Microsecond)
		cmd.Process.Kill()
		if err := cmd.Wait(); err == nil {
			survivors++ // finished before the kill: a complete pod, gc keeps it
		}
	}
	e.must("gc")
	// What gc kept must be complete and healthy; remove it the normal way.
	for _, id := range strings.Fields(e.must("pods", "-q")) {
		if p := e.pod(id); p.State != "ready" || len(p.IPs) != 1 {
			t.Errorf("gc kept a broken pod: %+v", p)
		}
		e.must("rmp", id)
	}
	t.Logf("%d of 8 runp calls finished before the kill", survivors)
	waitFor(t, "every holder gone", 15*time.Second, func() bool { return len(holders()) == 0 })
	e.assertClean()
}
