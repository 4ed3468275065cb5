//go:build linux

// Package finisher lets a CNI DEL return as soon as its teardown is visible,
// while a short-lived child process pays the kernel's slow part of it.
//
// Deleting a veth unlists both ends at once (within a millisecond), but the
// deleting task then waits in rcu_barrier() until the devices can be freed:
// 15-35 ms on a 2-core node, longer under load, and more than all the rest
// of a DEL. Closing an nftables socket after a commit that deleted something
// waits for the same kind of grace period. Neither wait changes what anyone
// can see, so podns hands both to a child: the child sends the link delete
// and holds the socket, the parent waits only until the kernel announces
// the link down (the delete under way, under RTNL), finishes its own work
// while the kernel tears the link down, makes sure it is unlisted, and exits.
// The child is this same binary, re-executed with Arg; it lives a few tens
// of milliseconds. If anything goes wrong on the child's side the parent
// deletes the link itself, so a DEL never reports success with the link
// still there.
package finisher

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/finisher/spawn"
)

// Arg is the first argument that makes the plugin binary run Main. Runtimes
// exec CNI plugins without arguments, so it never collides with a verb.
const Arg = spawn.Arg

// maxFds bounds the descriptors handed over (Finish); more are left to
// the caller.
const maxFds = spawn.MaxFds

// giveUp is how long the parent waits for the child before deleting the
// link itself.
const giveUp = 10 * time.Second

// Child is a started finisher waiting for its work. A DEL that has none
// for it calls Cancel; the child also exits at once when this process
// does, since its socket then reads EOF.
type Child struct {
	pid  int
	sock int // parent's end of the SOCK_SEQPACKET pair; -1 once closed
	// exited is closed once the child has been reaped; status is its exit
	// status then (tests look at both).
	exited chan struct{}
	status int
}

// Start returns DEL's finisher: the one pkg/finisher/spawn started from
// its package init in a DEL of the plugin binary, else a new one. The child
// waits on a socket for the index of the link to delete (StartDelete); a
// parent that cancels or exits without sending one lets it exit at once.
//
// syscall.ForkExec (spawn.Start) rather than os/exec: os.StartProcess
// probes pidfd support with a throw-away fork, opens /dev/null once per
// standard descriptor and needs a thread blocked in wait; here one
// /dev/null serves all three and the child is reaped through its pidfd by
// the netpoller.
func Start() (*Child, error) {
	if p, ok := spawn.Take(); ok {
		return adopt(p), nil // started by spawn's init, if linked
	}
	return StartExe("/proc/self/exe")
}

// StartExe is Start with the child run from exe, another binary that hands
// Arg to Main (the podns plugin): a caller whose own binary starts slower
// than the plugin's (podnsctl, whose package init is heavier) uses it. A
// binary that does not speak the protocol exits without deleting anything,
// and Finish then deletes the link itself.
func StartExe(exe string) (*Child, error) {
	p, err := spawn.Start(exe)
	if err != nil {
		return nil, fmt.Errorf("start finisher: %w", err)
	}
	return adopt(p), nil
}

func adopt(p spawn.Proc) *Child {
	c := &Child{pid: p.Pid, sock: p.Sock, exited: make(chan struct{})}
	c.reap(p.PidFD)
	return c
}

// reap collects the child's exit status as soon as it exits, so it is
// never a zombie beside a running DEL, without a thread blocked in wait:
// the pidfd becomes readable on exit and the netpoller wakes the
// goroutine. Without a pidfd, a blocking wait4 does it.
func (c *Child) reap(pidfd int) {
	done := func(ws unix.WaitStatus) {
		c.status = ws.ExitStatus()
		if ws.Signaled() {
			c.status = exitSignaled + int(ws.Signal())
		}
		close(c.exited)
	}
	if pidfd >= 0 {
		if unix.SetNonblock(pidfd, true) == nil {
			f := os.NewFile(uintptr(pidfd), "finisher pidfd")
			if rc, err := f.SyscallConn(); err == nil {
				go func() {
					defer f.Close()
					var ws unix.WaitStatus
					_ = rc.Read(func(uintptr) bool {
						pid, err := unix.Wait4(c.pid, &ws, unix.WNOHANG, nil)
						return pid == c.pid || (err != nil && err != unix.EINTR)
					})
					done(ws)
				}()
				return
			}
			f.Close()
		} else {
			unix.Close(pidfd)
		}
	}
	go func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(c.pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		done(ws)
	}()
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.pid }

// Exited is closed once the child has exited and been reaped; ExitStatus
// is then one of the Exit* values (128+n: killed by signal n).
func (c *Child) Exited() <-chan struct{} { return c.exited }

// ExitStatus is the child's exit status, once Exited is closed.
func (c *Child) ExitStatus() int {
	<-c.exited
	return c.status
}

// Children lists the processes whose parent is ppid and that run the
// finisher, or that have exited and wait unreaped (zombies): what a DEL
// must never leave behind. It reads /proc; tests and diagnostics use it.
func Children(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		if f[0] == "Z" || len(args) > 1 && args[1] == Arg {
			out = append(out, pid)
		}
	}
	return out
}

// Cancel closes this side's end of the child's socket, without waiting:
// a child still waiting for a link exits at once, one that has its link
// exits after the delete. A no-op on nil and after the first call.
func (c *Child) Cancel() {
	if c != nil && c.sock >= 0 {
		unix.Close(c.sock)
		c.sock = -1
	}
}

// DeleteLink has the child delete the link with index idx in the process's
// own network namespace and close fds, and returns once the link is gone
// from the namespace: StartDelete, Finish and Gone in one.
func (c *Child) DeleteLink(idx int, fds ...int) error {
	d := c.StartDelete(idx)
	err := d.Finish(fds...)
	if gerr := d.Gone(); err == nil {
		err = gerr
	}
	return err
}

// Delete is a link delete handed to the child, not yet seen done.
type Delete struct {
	c      *Child
	idx    int
	sub    int  // link subscription; -1 when the child was not asked or once closed
	gone   bool // the link is no longer listed
	waited bool // Gone found it still listed and waited (tests look)
}

// StartDelete has the child delete link idx now, so the kernel's part
// (about a millisecond until the link is unlisted and announced) overlaps
// whatever the caller does before Finish. It does not wait.
func (c *Child) StartDelete(idx int) *Delete {
	d := &Delete{c: c, idx: idx, sub: -1}
	if c.sock < 0 {
		return d
	}
	// Subscribed before the delete is sent: no announcement can be missed.
	sub, err := subscribeDel(idx)
	if err != nil {
		c.Cancel()
		return d
	}
	msg := make([]byte, 4)
	binary.LittleEndian.PutUint32(msg, uint32(idx))
	if err := unix.Sendmsg(c.sock, msg, nil, nil, unix.MSG_NOSIGNAL); err != nil {
		unix.Close(sub)
		c.Cancel()
		return d
	}
	d.sub = sub
	return d
}

// Finish hands the child fds to close once its delete is done (the caller
// keeps its copies and should close them right after; their last close,
// and the kernel's wait in it, happens in the child) and returns once the
// delete is under way: the link was announced down, or gone.
//
// Deleting a link first closes it (announced), then unlists it, then runs
// every subsystem's teardown for it (a bridge port's walks over all other
// ports among them: the part that grows with pods) and only then announces
// it gone, all under RTNL, in one request that cannot fail once it has
// closed the link. The caller's work after Finish (a DEL's lease release)
// runs beside that teardown; Gone then makes sure the link is unlisted.
// An error means the link could not be deleted; Gone is still to be called.
//
// If the child could not be asked, dies first, or is silent for 10 s,
// Finish deletes the link itself.
func (d *Delete) Finish(fds ...int) error {
	c := d.c
	if d.sub < 0 {
		d.gone = true
		c.Cancel()
		return deleteSelf(d.idx)
	}
	if len(fds) > maxFds {
		fds = fds[:maxFds]
	}
	if len(fds) > 0 {
		// One byte of data: a message must carry some for its descriptors.
		// A child already gone does not matter here; the wait sees it.
		_ = unix.Sendmsg(c.sock, []byte{0}, unix.UnixRights(fds...), nil, unix.MSG_NOSIGNAL)
	}
	return d.wait(false)
}

// Gone returns once link idx is no longer listed in the namespace: at once
// when it is already unlisted (a lookup that does not wait for RTNL), else
// when a later lookup finds it unlisted or it is announced gone, whichever
// comes first. A link that was set down by someone else, not
// by the delete, is deleted here if the child does not. It releases the
// subscription and the child; call it once, after Finish.
func (d *Delete) Gone() error {
	defer d.c.Cancel()
	defer d.closeSub()
	if d.gone {
		return nil
	}
	if d.sub < 0 {
		d.gone = true
		return deleteSelf(d.idx)
	}
	if listed, err := listed(d.sub, d.idx); err == nil && !listed {
		return nil
	}
	d.waited = true
	return d.wait(true)
}

func (d *Delete) closeSub() {
	if d.sub >= 0 {
		unix.Close(d.sub)
		d.sub = -1
	}
}

// Waiting for the link to be unlisted (Gone), the lookup is repeated after
// firstRecheck, then at intervals that double every recheckRun lookups, up
// to lastRecheck. No message marks the unlisting: the deletion's
// announcement comes only after every subsystem's teardown of the link, on
// a bridge with 1000 ports about a millisecond after the unlisting (the
// bridge's walks over its ports). A DEL at that size returned 0.38-0.47 ms
// sooner; the growing interval keeps a long wait (64 DELs queued on RTNL)
// to a few dozen lookups.
const (
	firstRecheck = 100 * time.Microsecond
	recheckRun   = 4
	lastRecheck  = 5 * time.Millisecond
)

// wait polls the link subscription and the child's socket, which hangs up
// when the child exits, until the link is gone (or, unless untilGone,
// announced down). Announced down, it needs no lookups but after an
// overflowed subscription; until gone, it also looks the link up at the
// intervals above.
func (d *Delete) wait(untilGone bool) error {
	c, idx := d.c, d.idx
	deadline := time.Now().Add(giveUp)
	buf := make([]byte, 4096)
	recheck, lookups := firstRecheck, 0
	for {
		left := time.Until(deadline)
		if left <= 0 {
			d.gone = true
			return deleteSelf(idx)
		}
		timeout := left
		if untilGone && recheck < left {
			timeout = recheck
		}
		pfd := []unix.PollFd{{Fd: int32(d.sub), Events: unix.POLLIN}, {Fd: int32(c.sock), Events: unix.POLLIN}}
		ts := unix.NsecToTimespec(timeout.Nanoseconds())
		n, err := unix.Ppoll(pfd, &ts, nil)
		if err != nil && err != unix.EINTR {
			d.gone = true
			return deleteSelf(idx)
		}
		if n == 0 && untilGone {
			if l, err := listed(d.sub, idx); err == nil && !l {
				d.gone = true
				return nil
			}
			if lookups++; lookups%recheckRun == 0 {
				recheck = min(2*recheck, lastRecheck)
			}
			continue
		}
		// The subscription first: the announcement is queued before the
		// child can exit, so both may be ready at once.
		if pfd[0].Revents != 0 {
			st, err := readDel(d.sub, idx, buf)
			if err != nil {
				return err
			}
			if st == linkGone {
				d.gone = true
				return nil
			}
			if st == linkDown && !untilGone {
				return nil
			}
		}
		if pfd[1].Revents != 0 {
			// The child exited (its end hung up) and the link is still
			// there, or it was never announced: delete it here.
			d.gone = true
			return deleteSelf(idx)
		}
	}
}

// subscribeDel opens a link subscription that passes only link idx's
// RTM_DELLINK and the RTM_NEWLINK that announces it down. Without a filter,
// every DEL of a burst reads every other link's announcements (64 DELs at
// once made 64 x ~300 messages). The filter is attached before bind, so
// nothing else is ever queued.
func subscribeDel(idx int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("link subscription: %w", err)
	}
	if err := onlyDelLink(fd, idx); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("link subscription: %w", err)
	}
	return fd, nil
}

// What the subscription said about the link.
const (
	linkListed = iota // nothing new
	linkDown          // announced down
	linkGone          // announced deleted, or looked up and not found
)

// readDel drains the subscription and says what it announced about link
// idx, the latest news first. An overflow (ENOBUFS: many links changed at
// once) may have dropped the announcement, so the link is looked up instead.
func readDel(fd, idx int, buf []byte) (int, error) {
	st := linkListed
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return st, nil
		case err == unix.ENOBUFS:
			if l, lerr := listed(fd, idx); lerr != nil {
				return st, lerr
			} else if !l {
				return linkGone, nil
			}
			continue
		case err != nil:
			return st, fmt.Errorf("link subscription: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if len(m.Data) < unix.SizeofIfInfomsg {
				continue
			}
			ifi := nl.DeserializeIfInfomsg(m.Data)
			switch {
			case int(ifi.Index) != idx:
			case m.Header.Type == unix.RTM_DELLINK:
				return linkGone, nil
			case m.Header.Type == unix.RTM_NEWLINK && ifi.Flags&unix.IFF_UP == 0:
				st = linkDown
			}
		}
	}
}

// onlyDelLink attaches a socket filter that passes link idx's RTM_DELLINK,
// and its RTM_NEWLINKs without IFF_UP, and drops everything else. Netlink is host-endian; classic
// BPF loads are big-endian, hence the swapped constants.
func onlyDelLink(fd, idx int) error {
	const (
		offType  = 4                       // nlmsghdr.nlmsg_type
		offIndex = unix.SizeofNlMsghdr + 4 // ifinfomsg.ifi_index
		offFlags = unix.SizeofNlMsghdr + 8 // ifinfomsg.ifi_flags
	)
	var t [2]byte
	var i [4]byte
	binary.NativeEndian.PutUint16(t[:], unix.RTM_DELLINK)
	binary.NativeEndian.PutUint32(i[:], uint32(idx))
	var nw [2]byte
	binary.NativeEndian.PutUint16(nw[:], unix.RTM_NEWLINK)
	// The byte of ifi_flags that holds IFF_UP.
	offUp := uint32(offFlags)
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		offUp += 3
	}
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: offType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(binary.BigEndian.Uint16(t[:])), SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(nw[:])), SkipTrue: 5},
		bpf.LoadAbsolute{Off: offUp, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.IFF_UP, SkipTrue: 3},
		bpf.LoadAbsolute{Off: offIndex, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(i[:]), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return fmt.Errorf("link filter: %w", err)
	}
	f := make([]unix.SockFilter, len(prog))
	for n, ins := range prog {
		f[n] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

// listed says whether link idx is still listed in the namespace of fd, a
// socket (the link subscription: no socket of its own per DEL). It asks
// with SIOCGIFNAME, which looks the index up under RCU: a netlink lookup
// would wait for RTNL, which the delete holds until its teardown is done.
func listed(fd, idx int) (bool, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return false, fmt.Errorf("look up link %d: %w", idx, err)
	}
	ifr.SetUint32(uint32(idx))
	switch err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err {
	case nil:
		return true, nil
	case unix.ENODEV:
		return false, nil
	default:
		return false, fmt.Errorf("look up link %d: %w", idx, err)
	}
}

// deleteSelf deletes link idx in this process with one RTM_DELLINK (the
// child's request, spawn.DeleteLink); a link already gone is not an error.
func deleteSelf(idx int) error {
	if err := spawn.DeleteLink(int32(idx)); err != nil {
		return fmt.Errorf("delete link %d: %w", idx, err)
	}
	return nil
}

// Exit statuses of the child (spawn.Child). They are for tests; the
// parent watches the link, not the status.
const (
	ExitDeleted  = spawn.ExitDeleted // deleted the link it was given (or found it gone)
	ExitFailed   = spawn.ExitFailed  // the delete failed
	ExitNoWork   = spawn.ExitNoWork  // cancelled: the parent had nothing for it
	ExitKilled   = 128 + 9
	exitSignaled = 128
)

// Main is the child's side, for a binary that is exec'd with Arg but
// without the environment Start gives it: spawn.Child. A finisher Start
// made does its work in spawn's package init instead, before the plugin's
// other packages initialise.
func Main() int { return spawn.Child() }
