//go:build linux

package nsutil

import (
	"fmt"
	"os"
	"testing"
)

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
