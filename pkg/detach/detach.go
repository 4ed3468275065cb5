//go:build linux

// Package detach closes a descriptor without paying for the file's release
// in this process.
//
// Closing the last reference to some files makes the closing task wait for
// kernel work that has nothing to do with it. The one podns meets: releasing
// any nftables netlink socket flushes the netns's pending nf_tables
// destruction work (nft_rcv_nl_event), which waits an RCU grace period
// whenever anyone deleted nftables objects a moment earlier: the previous
// pod's DEL, or kube-proxy. An ADD right after a DEL took 10 ms instead of
// 4 on this VM, 5 of them in that wait, at its exit.
//
// The file's last reference is handed to an io_uring instance as a
// registered file. When the process exits, the kernel tears the ring down
// from a workqueue, and the file is released there. The caller has had its
// answer from the kernel already (the commit was acknowledged), so nothing
// anyone can observe waits on the release. Where io_uring is unavailable
// (kernel.io_uring_disabled, an old kernel, a seccomp filter) the
// descriptor is closed as usual.
package detach

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioringRegisterFiles is IORING_REGISTER_FILES from linux/io_uring.h.
const ioringRegisterFiles = 2

// Close closes fd. It reports whether the release was detached from this
// process (false: fd was closed the ordinary way).
func Close(fd int) bool {
	if fd < 0 {
		return false
	}
	// struct io_uring_params is 120 bytes; all zero asks for defaults.
	var params [120]byte
	ring, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		unix.Close(fd)
		return false
	}
	fds := [1]int32{int32(fd)}
	_, _, errno = unix.Syscall6(unix.SYS_IO_URING_REGISTER, ring, ioringRegisterFiles, uintptr(unsafe.Pointer(&fds[0])), 1, 0, 0)
	runtime.KeepAlive(&fds)
	if errno != 0 {
		unix.Close(int(ring))
		unix.Close(fd)
		return false
	}
	// The ring now holds the file; the ring's own descriptor stays open
	// until exit, when its teardown is queued to a kernel worker.
	unix.Close(fd)
	return true
}
