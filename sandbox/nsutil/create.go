//go:build linux

package nsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LoopbackUp sets lo up in the calling thread's network namespace with one
// rtnetlink request. lo is interface 1 in every network namespace, so no
// lookup is needed, and no netlink library is linked for it.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("set lo up: netlink socket: %w", err)
	}
	defer unix.Close(fd)
	const size = unix.SizeofNlMsghdr + unix.SizeofIfInfomsg
	var req [size]byte
	*(*unix.NlMsghdr)(unsafe.Pointer(&req[0])) = unix.NlMsghdr{
		Len: size, Type: unix.RTM_NEWLINK, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: 1,
	}
	*(*unix.IfInfomsg)(unsafe.Pointer(&req[unix.SizeofNlMsghdr])) = unix.IfInfomsg{
		Family: unix.AF_UNSPEC, Index: 1, Flags: unix.IFF_UP, Change: unix.IFF_UP,
	}
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			h := *(*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
			if h.Len < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
				return errors.New("set lo up: bad netlink answer")
			}
			if h.Seq == 1 && h.Type == unix.NLMSG_ERROR {
				if h.Len < unix.SizeofNlMsghdr+4 {
					return errors.New("set lo up: short netlink answer")
				}
				if code := *(*int32)(unsafe.Pointer(&b[unix.SizeofNlMsghdr])); code != 0 {
					return fmt.Errorf("set lo up: %w", unix.Errno(-code))
				}
				return nil
			}
			next := int((h.Len + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1))
			if next >= len(b) {
				break
			}
			b = b[next:]
		}
	}
}

// NSThread is a locked OS thread that unshares new namespaces (net, ipc,
// uts: allowed per thread) as soon as it starts, so the kernel's part of
// making them (a network namespace takes the most) runs beside whatever
// the caller does next. Finish sets them up and pins them; Close drops
// them. The thread is never unlocked: Go ends it with its goroutine, and a
// namespace lives on only in its pins and in processes started from it.
// The caller should keep the main thread to itself (runtime.LockOSThread
// on the main goroutine): Go cannot end the main thread, and /proc/PID/ns
// shows the main thread's namespaces.
type NSThread struct {
	kinds []string
	work  chan func()
	ready chan struct{} // closed once the unshare is done
	err   error         // the unshare's
	close sync.Once
}

// StartUnshare starts a thread and unshares the given kinds on it.
func StartUnshare(kinds []string) *NSThread {
	t := &NSThread{kinds: kinds, work: make(chan func()), ready: make(chan struct{})}
	var flags int
	for _, k := range kinds {
		f, ok := CloneFlag[k]
		if !ok || (k != "net" && k != "ipc" && k != "uts") {
			t.err = fmt.Errorf("cannot unshare a %s namespace on a thread", k)
			close(t.ready)
			return t
		}
		flags |= int(f)
	}
	go func() {
		runtime.LockOSThread() // never unlocked: Go ends the thread with the goroutine
		if err := unix.Unshare(flags); err != nil {
			t.err = fmt.Errorf("unshare namespaces: %w", err)
		}
		close(t.ready)
		for f := range t.work {
			f()
		}
	}()
	return t
}

// Kinds are the namespaces the thread unshared.
func (t *NSThread) Kinds() []string { return t.kinds }

// Close retires the thread and with it namespaces nothing pinned; repeats
// are fine.
func (t *NSThread) Close() {
	t.close.Do(func() {
		<-t.ready
		if t.err == nil {
			close(t.work)
		}
	})
}

// Finish runs setup inside the thread's namespaces and pins each one on
// dir/KIND, in the thread's order, calling pinned (if set) on the thread
// after each pin: a process it starts is born in the namespaces. Then the
// thread is retired. It returns the pins it made, also when it fails part
// way, so the caller can record and undo them.
func (t *NSThread) Finish(dir string, setup func() error, pinned func(kind, path string) error) (map[string]string, error) {
	defer t.Close()
	pins := map[string]string{}
	if <-t.ready; t.err != nil {
		return pins, t.err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pins, err
	}
	done := make(chan error, 1)
	t.work <- func() {
		if setup != nil {
			if err := setup(); err != nil {
				done <- err
				return
			}
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/", unix.Gettid())
		for _, k := range t.kinds {
			dst := PinPath(dir, k)
			if err := pinFile(self+k, dst); err != nil {
				done <- fmt.Errorf("pin %s namespace: %w", k, err)
				return
			}
			pins[k] = dst
			if pinned != nil {
				if err := pinned(k, dst); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}
	return pins, <-done
}

// WarmExec has the Go runtime make, in the background and now, the
// one-time check for pidfd support it would otherwise make inside the first
// exec (a pidfd_open, a waitid and a vfork of a child that exits at once):
// for runp and rmp that first exec is a CNI plugin on the critical path.
func WarmExec() {
	go func() {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Release()
		}
	}()
}

// PinPath is where Finish pins a namespace of kind under dir.
func PinPath(dir, kind string) string { return filepath.Join(dir, kind) }
