//go:build linux

package detach

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) {
	// The child of TestReleasedAfterExit: open a netlink socket, detach
	// it, report its inode, wait for stdin to close, exit.
	if os.Getenv("DETACH_TEST_CHILD") == "1" {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			fmt.Println("socket:", err)
			os.Exit(1)
		}
		// Bound, so /proc/net/netlink lists it (and, for nftables, so its
		// release is announced to the subsystem: NETLINK_URELEASE).
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			fmt.Println("bind:", err)
			os.Exit(1)
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		if !Close(fd) {
			fmt.Println("not detached")
			os.Exit(1)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			fmt.Println("descriptor still open")
			os.Exit(1)
		}
		fmt.Println(st.Ino)
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	testutil.Main(m)
}

// netlinkInodes lists the inodes of this netns's netlink sockets.
func netlinkInodes(t *testing.T) map[uint64]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 10 {
			continue
		}
		if ino, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
			out[ino] = true
		}
	}
	return out
}

// TestReleasedAfterExit: a detached socket outlives its descriptor while
// the process runs, and the kernel releases it once the process is gone.
func TestReleasedAfterExit(t *testing.T) {
	h, line := testutil.StartHelper(t, "DETACH_TEST_CHILD=1")
	ino, err := strconv.ParseUint(line, 10, 64)
	if err != nil {
		t.Fatalf("child: %q", line)
	}
	if !netlinkInodes(t)[ino] {
		t.Fatalf("socket %d gone while its process still runs", ino)
	}
	h.Stdin.Close()
	if err := h.Cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for netlinkInodes(t)[ino] {
		if time.Now().After(deadline) {
			t.Fatalf("socket %d still open 10 s after its process exited", ino)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFallback: a descriptor io_uring cannot take is still closed.
func TestFallback(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	Close(fd)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd %d still open", fd)
	}
	if Close(-1) {
		t.Error("Close(-1) reported a detach")
	}
	// io_uring refuses to register a ring's own descriptor: the fallback
	// must still close it.
	var params [120]byte
	ring, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		t.Skipf("io_uring unavailable: %v", errno)
	}
	if Close(int(ring)) {
		t.Error("a ring descriptor reported as detached")
	}
	if _, err := unix.FcntlInt(ring, unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("ring fd %d still open after the fallback", ring)
	}
}

// BenchmarkClose: what detaching costs the caller, against a plain close,
// per netlink socket (the ring's teardown after exit runs in a kernel
// worker and is not counted here).
func BenchmarkClose(b *testing.B) {
	for _, detached := range []bool{false, true} {
		name := "plain"
		if detached {
			name = "detached"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
				if err != nil {
					b.Fatal(err)
				}
				if detached {
					Close(fd)
				} else {
					unix.Close(fd)
				}
			}
		})
	}
}
