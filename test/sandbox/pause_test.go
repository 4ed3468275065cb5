//go:build linux

package sandbox_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
	"github.com/podns/podns/sandbox/holder"
	"github.com/podns/podns/sandbox/nsutil"
)

// startHolder starts podns-sandbox with args, as PID 1 of a new PID
// namespace when pid1 is set, and kills it at cleanup.
func startHolder(t *testing.T, pid1 bool, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	bin := filepath.Join(testutil.BinDir(t), "podns-sandbox")
	cmd := exec.Command(bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if pid1 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &errb
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(15 * time.Second):
		t.Fatal("holder did not exit")
	}
	return -1
}

func TestPauseVersion(t *testing.T) {
	bin := filepath.Join(testutil.BinDir(t), "podns-sandbox")
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "podns-sandbox version ") {
		t.Fatalf("-v: %v %q", err, out)
	}
}

// TestPausePID1 checks pause's contract as PID 1: signals pause ignores
// stay ignored (a Go runtime handler would die of SIGQUIT), orphans are
// reaped, SIGTERM exits 0.
func TestPausePID1(t *testing.T) {
	testutil.RequireRoot(t)
	cmd, errb := startHolder(t, true)
	pid := cmd.Process.Pid
	// Wait until it has set its signal dispositions up.
	waitFor(t, "holder to ignore SIGQUIT", 15*time.Second, func() bool { return sigIgnored(pid, unix.SIGQUIT) })

	for _, s := range []syscall.Signal{unix.SIGQUIT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE} {
		if err := unix.Kill(pid, s); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if !nsutil.Alive(pid, 0) {
		t.Fatalf("holder died of an ignored signal: %s", errb)
	}

	// A child in the holder's PID namespace orphans a grandchild, which the
	// kernel reparents to the holder; the holder must reap it.
	sh := exec.Command("/bin/sh", "-c", "sleep 1 & exit 0")
	if err := nsutil.StartIn(sh, []nsutil.Join{{Kind: "pid", Path: fmt.Sprintf("/proc/%d/ns/pid", pid)}}); err != nil {
		t.Fatal(err)
	}
	sh.Wait()
	pidNS := nsutil.ProcNS(pid)["pid"]
	var orphan int
	waitFor(t, "the orphaned sleep in the holder's PID namespace", 10*time.Second, func() bool {
		for _, p := range nsutil.PidsInNS("pid", pidNS) {
			if p != pid && nsutil.Comm(p) == "sleep" {
				orphan = p
			}
		}
		return orphan != 0
	})
	if pp := ppid(orphan); pp != pid {
		t.Fatalf("orphan's parent is %d, want the holder %d", pp, pid)
	}
	waitFor(t, "orphan to exit and be reaped", 15*time.Second, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
		return os.IsNotExist(err)
	})
	if c := children(pid); c != "" {
		t.Fatalf("holder still has children (zombies?): %s", c)
	}

	unix.Kill(pid, unix.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
	if strings.Contains(errb.String(), "not PID 1") {
		t.Fatalf("warned about PID 1 while PID 1: %s", errb)
	}
}

func TestPauseNotPID1(t *testing.T) {
	testutil.RequireRoot(t)
	cmd, errb := startHolder(t, false)
	pid := cmd.Process.Pid
	waitFor(t, "holder to ignore SIGQUIT", 15*time.Second, func() bool { return sigIgnored(pid, unix.SIGQUIT) })
	unix.Kill(pid, unix.SIGQUIT)
	time.Sleep(100 * time.Millisecond)
	if !nsutil.Alive(pid, 0) {
		t.Fatal("holder died of SIGQUIT")
	}
	unix.Kill(pid, unix.SIGINT)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("SIGINT: exit %d, want 0", code)
	}
	if !strings.Contains(errb.String(), "not PID 1") {
		t.Fatalf("no warning when not PID 1: %q", errb)
	}
}

// TestHolderSetupFailures checks the distinct exit codes and that readiness
// is only signalled once set-up succeeded.
func TestHolderSetupFailures(t *testing.T) {
	testutil.RequireRoot(t)
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"--bogus"}, holder.ExitUsage},
		{[]string{"hold", "--sysctl", "noequals"}, holder.ExitUsage},
		{[]string{"hold", "--sysctl", "net.ipv4.no_such_sysctl=1"}, holder.ExitSysctl},
		{[]string{"hold", "--hostname", strings.Repeat("h", 100)}, holder.ExitHostname},
		{[]string{"hold", "--ready-fd", "9"}, holder.ExitReadyPipe},
	}
	for _, c := range cases {
		cmd, _ := startHolder(t, true, c.args...)
		if code := waitExit(t, cmd); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
	}
	// Readiness: the byte arrives on the pipe, after which it is closed.
	r, w, _ := os.Pipe()
	defer r.Close()
	bin := filepath.Join(testutil.BinDir(t), "podns-sandbox")
	cmd := exec.Command(bin, "hold", "--ready-fd", "3", "--hostname", "ready-test")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWUTS}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 8)
	n, _ := r.Read(buf)
	if n != 1 || buf[0] != holder.ReadyByte {
		t.Fatalf("readiness: got %q", buf[:n])
	}
	if n, _ := r.Read(buf); n != 0 {
		t.Fatal("readiness pipe not closed after the ready byte")
	}
	if !sigIgnored(cmd.Process.Pid, unix.SIGQUIT) {
		t.Fatal("ready before signals were set up")
	}
	unix.Kill(cmd.Process.Pid, unix.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// sigIgnored reads SigIgn from /proc/PID/status.
func sigIgnored(pid int, s syscall.Signal) bool {
	v := statusField(pid, "SigIgn")
	mask, err := strconv.ParseUint(v, 16, 64)
	return err == nil && mask&(1<<(uint(s)-1)) != 0
}

func ppid(pid int) int {
	n, _ := strconv.Atoi(statusField(pid, "PPid"))
	return n
}

func statusField(pid int, field string) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func children(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	return strings.TrimSpace(string(data))
}
