//go:build linux

// Package nsutil is the one place podns touches namespaces: reading a
// process's namespace identities, pinning a namespace to a file with a bind
// mount, and starting a process inside other namespaces. Go runs goroutines on
// many threads, so setns happens only on a locked thread that is thrown away
// afterwards, and new mount or PID namespaces come from clone flags at fork.
package nsutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kinds are the namespace types the kernel's nsproxy holds, in table order.
var Kinds = []string{"uts", "ipc", "mnt", "net", "pid", "user", "cgroup"}

// CloneFlag maps a namespace kind to its CLONE_NEW* flag.
var CloneFlag = map[string]uintptr{
	"uts": unix.CLONE_NEWUTS, "ipc": unix.CLONE_NEWIPC, "mnt": unix.CLONE_NEWNS,
	"net": unix.CLONE_NEWNET, "pid": unix.CLONE_NEWPID, "user": unix.CLONE_NEWUSER,
	"cgroup": unix.CLONE_NEWCGROUP,
}

// Inode returns the inode of a namespace file (its identity).
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// linkInode reads a process's namespace identity from its /proc/PID/ns
// link ("net:[4026531840]"): a readlink costs half a stat through the
// link, which matters when every process is looked at.
func linkInode(path string) (uint64, error) {
	var buf [64]byte
	n, err := unix.Readlink(path, buf[:])
	if err != nil {
		return 0, err
	}
	s := string(buf[:n])
	i, j := strings.IndexByte(s, '['), strings.LastIndexByte(s, ']')
	if i < 0 || j < i {
		return 0, fmt.Errorf("%s: unexpected link %q", path, s)
	}
	return strconv.ParseUint(s[i+1:j], 10, 64)
}

// IsNSFS says whether path is a namespace file (a pin or /proc/PID/ns/*),
// not, say, the empty file a pin leaves once unmounted.
func IsNSFS(path string) bool {
	var st unix.Statfs_t
	return path != "" && unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// ProcNS returns the namespace identities of a process by kind; kinds the
// process no longer has (it exited) are missing.
func ProcNS(pid int) map[string]uint64 {
	out := map[string]uint64{}
	for _, k := range Kinds {
		if ino, err := Inode(fmt.Sprintf("/proc/%d/ns/%s", pid, k)); err == nil {
			out[k] = ino
		}
	}
	return out
}

// pinFile keeps the namespace at src (e.g. /proc/PID/ns/net) alive by bind
// mounting it on dst, created as an empty file in an existing directory.
func pinFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o400)
	if err != nil {
		return fmt.Errorf("pin file %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	return nil
}

// Unpin unmounts dst if it is mounted and removes it; repeats are fine.
func Unpin(dst string) error {
	for {
		err := unix.Unmount(dst, unix.MNT_DETACH)
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break
			}
			return fmt.Errorf("unmount %s: %w", dst, err)
		}
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// MountsUnder lists mount points at or below dir from this process's
// mountinfo, deepest first, so crashed runs' pins can be found and removed.
func MountsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	return Mounts(func(mp, _ string) bool { return mp == dir || strings.HasPrefix(mp, dir+"/") })
}

// Mounts lists the mount points of this mount namespace that keep accepts
// (given the unescaped mount point and the filesystem type), innermost
// first, so they can be unmounted in order.
func Mounts(keep func(mountpoint, fstype string) bool) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 1 {
			continue
		}
		if mp := unescapeMount(fields[4]); keep(mp, tail[0]) {
			out = append(out, mp)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Join names namespace files to enter before a child is forked.
type Join struct {
	Kind string // uts, ipc, net, pid, cgroup
	Path string
}

// StartIn starts cmd inside the namespaces in joins. The setns calls run on
// a locked OS thread that is never unlocked, so Go retires it instead of
// reusing a thread in foreign namespaces. Joining pid affects only the child.
func StartIn(cmd *exec.Cmd, joins []Join) error {
	if len(joins) == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		for _, j := range joins {
			flag, ok := CloneFlag[j.Kind]
			if !ok || j.Kind == "mnt" || j.Kind == "user" {
				errc <- fmt.Errorf("cannot join a %s namespace from a running Go process", j.Kind)
				return
			}
			fd, err := unix.Open(j.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("open %s namespace %s: %w", j.Kind, j.Path, err)
				return
			}
			err = unix.Setns(fd, int(flag))
			unix.Close(fd)
			if err != nil {
				errc <- fmt.Errorf("join %s namespace %s: %w", j.Kind, j.Path, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// ProcStart returns a process's start time in clock ticks since boot; with
// the PID it names one process even after PIDs wrap.
func ProcStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ProcState returns the one-letter state of a process (R, S, Z, ...).
func ProcState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Alive says whether pid is still the process that started at start and has
// not exited (a zombie counts as gone).
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := ProcStart(pid)
	if err != nil || (start != 0 && st != start) {
		return false
	}
	s := ProcState(pid)
	return s != "" && s != "Z" && s != "X"
}

// Comm returns a process's command name.
func Comm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}

// Pids lists every process on the machine.
func Pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// PidsInNS lists live processes whose namespace of kind has inode ino.
func PidsInNS(kind string, ino uint64) []int {
	var out []int
	for _, pid := range Pids() {
		if got, err := linkInode(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); err == nil && got == ino {
			if s := ProcState(pid); s != "Z" && s != "X" && s != "" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// PidsInAnyNS lists live processes (other than this one) that are in any
// of the namespaces in inos (kind to inode), in one pass over /proc.
func PidsInAnyNS(inos map[string]uint64) []int {
	if len(inos) == 0 {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, pid := range Pids() {
		if pid == self {
			continue
		}
		if inAnyNS(pid, inos) {
			if s := ProcState(pid); s != "Z" && s != "X" && s != "" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// openPidfd returns a pidfd for pid if pid is still the process that
// started at start (0: any) and has not exited; -1 if it is gone. The
// identity check comes after the open, so the fd cannot name a newer
// process that reused the PID.
func openPidfd(pid int, start uint64) (int, error) {
	if pid <= 0 {
		return -1, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, nil
		}
		return -1, err
	}
	if !Alive(pid, start) {
		unix.Close(fd)
		return -1, nil
	}
	return fd, nil
}

// waitPidfd waits up to d for the process behind fd to exit; a pidfd
// polls readable once it has (no sleeping and re-reading /proc).
func waitPidfd(fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int((left+time.Millisecond-1)/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false
		}
		if n > 0 {
			return true
		}
		if left == 0 {
			return false
		}
	}
}

// WaitGone waits up to d until the process that started at start (0: any)
// has exited (a zombie counts as gone).
func WaitGone(pid int, start uint64, d time.Duration) bool {
	fd, err := openPidfd(pid, start)
	if err != nil {
		return pollGone(pid, start, d)
	}
	if fd < 0 {
		return true
	}
	defer unix.Close(fd)
	return waitPidfd(fd, d)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL and waits up to
// kill more; with no grace it sends SIGKILL at once. Signals go through a
// pidfd, so a reused PID is never hit.
func Stop(pid int, start uint64, grace, kill time.Duration) {
	fd, err := openPidfd(pid, start)
	if err != nil { // no pidfd support: signal by PID, poll /proc
		if !Alive(pid, start) {
			return
		}
		if grace > 0 {
			unix.Kill(pid, unix.SIGTERM)
			if pollGone(pid, start, grace) {
				return
			}
		}
		unix.Kill(pid, unix.SIGKILL)
		pollGone(pid, start, kill)
		return
	}
	if fd < 0 {
		return
	}
	defer unix.Close(fd)
	if grace > 0 {
		if unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0) != nil || waitPidfd(fd, grace) {
			return
		}
	}
	if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
		waitPidfd(fd, kill)
	}
}

// Kill sends SIGKILL and waits up to d until the process is gone.
func Kill(pid int, start uint64, d time.Duration) { Stop(pid, start, 0, d) }

func pollGone(pid int, start uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for Alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// KillInAnyNS sends SIGKILL to pid only if it is still in one of the
// namespaces inos (kind -> inode): the PID is pinned with a pidfd first and
// the namespaces checked after, so a process that exited since a /proc scan
// and whose PID was handed to someone else (pid_max is often 32768) is
// never hit.
func KillInAnyNS(pid int, inos map[string]uint64) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if inAnyNS(pid, inos) {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// inAnyNS reports whether pid is in one of the namespaces inos names
// (kind -> inode).
func inAnyNS(pid int, inos map[string]uint64) bool {
	for kind, ino := range inos {
		if got, err := linkInode("/proc/" + strconv.Itoa(pid) + "/ns/" + kind); err == nil && got == ino {
			return true
		}
	}
	return false
}
