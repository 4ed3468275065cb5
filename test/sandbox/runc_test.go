//go:build linux

package sandbox_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podns/podns/pkg/testutil"
	"github.com/podns/podns/sandbox/nsutil"
)

// TestPauseImageUnderRunc runs podns-sandbox as the only file of a root
// filesystem (what a pause image is) under the real runc, the way
// containerd runs its sandbox_image: PID 1, ignores SIGQUIT, exits 0 on
// SIGTERM.
func TestPauseImageUnderRunc(t *testing.T) {
	testutil.RequireRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc is needed (hack/deps.sh installs it)")
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	bin, err := os.ReadFile(filepath.Join(testutil.BinDir(t), "podns-sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "pause"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	var spec map[string]any
	data, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	json.Unmarshal(data, &spec)
	id := testutil.UniqueName("pausetest")
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/pause"}
	spec["root"].(map[string]any)["readonly"] = true
	spec["linux"].(map[string]any)["cgroupsPath"] = id
	data, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644)

	root := t.TempDir()
	rc := func(args ...string) (string, error) {
		out, err := exec.Command(runc, append([]string{"--root", root}, args...)...).CombinedOutput()
		return string(out), err
	}
	cmd := exec.Command(runc, "--root", root, "run", "--bundle", bundle, id)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rc("kill", id, "KILL")
		cmd.Wait()
		rc("delete", "-f", id)
	})
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	waitFor(t, "runc container running", 10*time.Second, func() bool {
		out, err := rc("state", id)
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Status == "running"
	})
	waitFor(t, "signals set up", 15*time.Second, func() bool { return sigIgnored(st.Pid, 3) })
	if ns := statusField(st.Pid, "NSpid"); !strings.HasSuffix(ns, "\t1") && !strings.HasSuffix(ns, " 1") {
		t.Fatalf("pause is not PID 1 in its namespace: NSpid %q", ns)
	}
	if out, err := rc("kill", id, "QUIT"); err != nil {
		t.Fatalf("runc kill QUIT: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	if !nsutil.Alive(st.Pid, 0) {
		t.Fatalf("pause died of SIGQUIT: %s", errb.String())
	}
	rc("kill", id, "TERM")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runc run: %v (want exit 0) %s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pause did not exit on SIGTERM")
	}
	if strings.Contains(errb.String(), "not PID 1") {
		t.Fatalf("warning as PID 1: %s", errb.String())
	}
}
