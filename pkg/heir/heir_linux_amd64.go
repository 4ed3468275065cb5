//go:build linux && amd64

package heir

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func cloneHeir(stack, fd uintptr) (pid uintptr, errno uintptr)

// stack is the heir's stack pointer's home. The heir makes system calls
// only, which push nothing, so it is never written.
var stack [64]byte

// Start starts the heir and returns its PID, or 0 when there is none. Call
// it once, from a package init: Go runs them on the main thread, locked,
// so the signal mask set here is that thread's and stays until restored.
func Start() int {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0
	}
	// The write end stays open in this process until it exits (or execs).
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return 0
	}
	sp := (uintptr(unsafe.Pointer(&stack[0])) + uintptr(len(stack))) &^ 15
	pid, errno := cloneHeir(sp, uintptr(p[0]))
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	unix.Close(p[0])
	if errno != 0 {
		unix.Close(p[1])
		return 0
	}
	return int(pid)
}
