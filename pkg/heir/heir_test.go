//go:build linux && amd64

package heir

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

// The test binary, run with helperEnv set, starts an heir (from a package
// init, as a plugin does), prints its PID and waits for a line on stdin.
const helperEnv = "PODNS_HEIR_TEST_HELPER"

var helperHeir int

func init() {
	if os.Getenv(helperEnv) != "" {
		helperHeir = Start()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		fmt.Println(helperHeir)
		bufio.NewReader(os.Stdin).ReadString('\n')
		if os.Getenv(helperEnv) == "exec" {
			// An exec replaces the address space the heir holds: the
			// close-on-exec pipe must end the heir, or it would keep the
			// old one forever.
			err := unix.Exec("/bin/sleep", []string{"sleep", "3"}, os.Environ())
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// state is the process's state letter, "" once it is gone.
func state(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[0]
}

// gone waits up to d until pid has exited (gone, or a zombie).
func gone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s := state(pid); s == "" || s == "Z" || s == "X" {
			return true
		}
	}
	return false
}

// runHelper starts the helper and returns it, its heir's PID and the pipe
// that lets it go on.
func runHelper(t *testing.T, mode string) (*exec.Cmd, int, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	// This process adopts the heir once the helper is gone, so the test
	// reaps it and leaves no zombie for init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	h, line := testutil.StartHelper(t, helperEnv+"="+mode)
	pid, err := strconv.Atoi(line)
	if err != nil || pid <= 0 {
		t.Fatalf("helper started no heir: %q", line)
	}
	t.Cleanup(func() {
		if state(pid) != "" && state(pid) != "Z" {
			unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	})
	return h.Cmd, pid, h.Stdin, h.Out
}

// TestHeirHoldsOnlyTheMemory: the heir shares the helper's address space,
// holds none of its descriptors (a runtime reading the plugin's stdout to
// EOF must not wait for it), ignores signals, and is gone once the helper
// has exited.
func TestHeirHoldsOnlyTheMemory(t *testing.T) {
	cmd, pid, in, out := runHelper(t, "exit")
	// Until it is scheduled the heir may still be on its way to the read.
	for deadline := time.Now().Add(2 * time.Second); state(pid) != "S" && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if s := state(pid); s != "S" {
		t.Fatalf("heir %d in state %q, want sleeping", pid, s)
	}
	helperMaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
	heirMaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if len(helperMaps) == 0 || string(helperMaps) != string(heirMaps) {
		t.Fatalf("heir does not share the helper's address space")
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil || len(fds) != 1 {
		t.Fatalf("heir holds %d descriptors (%v), want only its pipe", len(fds), err)
	}
	// Signals stay pending: the heir runs no handler (the Go runtime's,
	// copied into it, would run on the helper's memory).
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGURG, unix.SIGCHLD, unix.SIGINT} {
		if err := unix.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if s := state(pid); s != "S" {
		t.Fatalf("heir in state %q after signals, want sleeping", s)
	}
	in.Write([]byte("\n"))
	// The helper's stdout reaches EOF when the helper exits.
	done := make(chan error, 1)
	go func() { _, err := out.ReadString('\n'); done <- err }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("helper's stdout still open: the heir holds it")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if !gone(pid, 5*time.Second) {
		t.Fatalf("heir %d still running after the helper exited", pid)
	}
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, 0, nil); got != pid || err != nil || ws.ExitStatus() != ExitStatus {
		t.Fatalf("heir %d: wait %d %v, status %v, want exit %d", pid, got, err, ws, ExitStatus)
	}
}

// TestHeirEndsOnExec: an exec in the helper ends the heir (its pipe is
// close-on-exec), so no heir keeps a replaced address space alive.
func TestHeirEndsOnExec(t *testing.T) {
	_, pid, in, _ := runHelper(t, "exec")
	in.Write([]byte("\n"))
	// Well before the exec'd sleep ends.
	if !gone(pid, time.Second) {
		t.Fatalf("heir %d still running after the helper exec'd", pid)
	}
}
