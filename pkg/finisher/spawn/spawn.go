//go:build linux

// Package spawn starts DEL's finisher process (pkg/finisher) and, in the
// podns plugin binary, starts it from a package init.
//
// The finisher is this binary exec'd again; DEL waits for it to be ready
// to send the link delete, and its Go runtime takes ~1.4 ms to get there.
// Started from main, it was ready ~0.9 ms after DEL wanted it (round 9).
// This package imports only syscall, so it initialises right after it,
// before the netlink, nftables, CNI and bbolt packages the plugin links
// (~0.5 ms of package initialisation on this VM), and the child's start
// overlaps them. pkg/finisher adopts the started process (Take). The
// child, in turn, does its work here too (Child) and exits before those
// packages initialise: it needs none of them.
package spawn

import "syscall"

// Arg is the first argument that makes the plugin binary run the
// finisher. Runtimes exec CNI plugins without arguments.
const Arg = "--podns-finish"

// Proc is a started finisher: its PID, this side's end of the socket pair
// (fd 3 in the child) and a pidfd for it (-1 without pidfd support).
type Proc struct{ Pid, Sock, PidFD int }

// Start forks and execs exe with Arg. The child gets /dev/null for its
// standard descriptors (a runtime reads the plugin's stdout and stderr to
// EOF, which must not wait for the child), the socket as fd 3, one P and
// no GC, and its own session (a runtime that kills the plugin's process
// group on timeout must not stop a delete half way through).
func Start(exe string) (Proc, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return Proc{}, err
	}
	defer syscall.Close(fds[1])
	null, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		syscall.Close(fds[0])
		return Proc{}, err
	}
	defer syscall.Close(null)
	pidfd := -1
	pid, err := syscall.ForkExec(exe, []string{exe, Arg}, &syscall.ProcAttr{
		Env:   []string{"GOMAXPROCS=1", "GOGC=off", childEnv + "=1"},
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(fds[1])},
		Sys:   &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd},
	})
	if err != nil {
		syscall.Close(fds[0])
		return Proc{}, err
	}
	return Proc{Pid: pid, Sock: fds[0], PidFD: pidfd}, nil
}

var early *Proc

// The finisher does its work here and exits (Child). A DEL of the podns
// plugin starts its finisher here (every other verb has no
// CNI_COMMAND=DEL). If skel later refuses the call, or DEL finds nothing
// to delete, the child reads EOF and exits.
func init() {
	if isChild() {
		syscall.Exit(Child())
	}
	if v, _ := syscall.Getenv("CNI_COMMAND"); v != "DEL" {
		return
	}
	if p, err := Start("/proc/self/exe"); err == nil {
		early = &p
	}
}

// Take returns the finisher started by this package's init, once.
func Take() (Proc, bool) {
	if early == nil {
		return Proc{}, false
	}
	p := *early
	early = nil
	return p, true
}
