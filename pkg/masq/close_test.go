//go:build linux

package masq

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// socketInode identifies c's socket in /proc/net/netlink.
func socketInode(t *testing.T, c *Conn) uint64 {
	t.Helper()
	fd, err := c.Dup()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// listed reports whether /proc/net/netlink still lists the socket.
func listed(t *testing.T, ino uint64) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == strconv.FormatUint(ino, 10) {
			return true
		}
	}
	return false
}

// TestCloseReleaseAfterExit: by default Close releases the socket; after
// ReleaseAfterExit the socket outlives Close (its release is the kernel's
// after exit; pkg/detach tests that part in a child process). The socket
// this leaves open lives until the test binary exits.
func TestCloseReleaseAfterExit(t *testing.T) {
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	ino := socketInode(t, c)
	c.Close()
	if listed(t, ino) {
		t.Fatalf("socket %d still open after a plain Close", ino)
	}

	ReleaseAfterExit()
	defer releaseAfterExit.Store(false)
	c, err = Open()
	if err != nil {
		t.Fatal(err)
	}
	ino = socketInode(t, c)
	c.Close()
	if !listed(t, ino) {
		t.Fatalf("socket %d released in Close after ReleaseAfterExit", ino)
	}
}
