//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/heir"
	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestDelNothingLeavesNoFinisher: the podns binary starts its finisher
// before it reads anything on DEL; a DEL with nothing to delete (no host
// veth, a repeated DEL) must not leave it running. This process is made a
// child subreaper, so a finisher that outlives its DEL becomes our child
// and shows up in /proc as one.
func TestDelNothingLeavesNoFinisher(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(testutil.BinDir(t), "podns")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }()
	netw := testutil.UniqueName("dlm")
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"podns","bridge":%q}`, netw, testutil.UniqueName("dlmb"))
	for i := 0; i < 5; i++ {
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=c" + netw, "CNI_IFNAME=eth0", "CNI_NETNS=", "CNI_PATH=" + filepath.Dir(bin), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.Stdin = bytes.NewReader([]byte(conf))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("DEL %d: %v\n%s", i, err, out)
		}
	}
	// skel rejects this one (no CNI_CONTAINERID) before DEL ever runs.
	cmd := exec.Command(bin)
	cmd.Env = []string{"CNI_COMMAND=DEL", "CNI_IFNAME=eth0", "CNI_NETNS=", "CNI_PATH=" + filepath.Dir(bin), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = bytes.NewReader([]byte(conf))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("DEL without CNI_CONTAINERID succeeded:\n%s", out)
	}
	// Bounded wait: each finisher exits at once; orphans that did are
	// reaped here (they are ours now) and must say they had no work.
	deadline := time.Now().Add(5 * time.Second)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if ws.ExitStatus() == heir.ExitStatus {
				continue // a DEL's or a finisher's heir (pkg/heir)
			}
			if ws.ExitStatus() != finisher.ExitNoWork {
				t.Errorf("orphaned finisher %d exited %v, want status %d", pid, ws, finisher.ExitNoWork)
			}
		}
		left := finisher.Children(os.Getpid())
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("finishers still running 5 s after their DEL returned: %v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
