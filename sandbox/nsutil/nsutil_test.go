//go:build linux

package nsutil

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// As podnsctl does: the main thread is never a pod thread.
func init() { runtime.LockOSThread() }

// TestLinkInodeMatchesStat: the readlink form names the same namespace as
// a stat through the link, for every kind.
func TestLinkInodeMatchesStat(t *testing.T) {
	for _, k := range Kinds {
		p := fmt.Sprintf("/proc/%d/ns/%s", os.Getpid(), k)
		a, errA := linkInode(p)
		b, errB := Inode(p)
		if errA != nil || errB != nil || a != b || a == 0 {
			t.Errorf("%s: readlink %d (%v), stat %d (%v)", k, a, errA, b, errB)
		}
	}
	if _, err := linkInode("/proc/self/exe"); err == nil {
		t.Error("a link that is not a namespace was accepted")
	}
	if pids := PidsInNS("net", 1); len(pids) != 0 {
		t.Errorf("processes in net namespace 1: %v", pids)
	}
	self, _ := Inode("/proc/self/ns/net")
	found := false
	for _, pid := range PidsInNS("net", self) {
		found = found || pid == os.Getpid()
	}
	if !found {
		t.Error("PidsInNS misses this process")
	}
}

// TestNSThread: namespaces unshared on a thread are new, set up on that
// thread, pinned in order; a closed thread leaves nothing mounted.
func TestNSThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	hostNet, _ := Inode("/proc/self/ns/net")
	hostUTS, _ := Inode("/proc/self/ns/uts")
	var order []string
	var setupNet uint64
	pins, err := StartUnshare([]string{"net", "uts"}).Finish(dir, func() error {
		var err error
		setupNet, err = Inode(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		return err
	}, func(kind, path string) error {
		order = append(order, kind)
		return nil
	})
	t.Cleanup(func() {
		for _, p := range pins {
			Unpin(p)
		}
	})
	if err != nil || len(pins) != 2 || fmt.Sprint(order) != "[net uts]" {
		t.Fatalf("pins %v order %v err %v", pins, order, err)
	}
	net, _ := Inode(pins["net"])
	uts, _ := Inode(pins["uts"])
	if net == hostNet || uts == hostUTS || net != setupNet || !IsNSFS(pins["net"]) {
		t.Fatalf("pinned net %d (setup saw %d, host %d), uts %d (host %d)", net, setupNet, hostNet, uts, hostUTS)
	}
	if now, _ := Inode("/proc/self/ns/net"); now != hostNet {
		t.Fatal("the process's own network namespace changed")
	}
	// Closed without Finish: nothing pinned, nothing mounted.
	th := StartUnshare([]string{"net"})
	th.Close()
	th.Close()
	if m, _ := MountsUnder(dir); len(m) != 2 {
		t.Fatalf("mounts under %s: %v", dir, m)
	}
	if _, err := StartUnshare([]string{"mnt"}).Finish(dir, nil, nil); err == nil {
		t.Fatal("a mount namespace was unshared on a thread")
	}
}
