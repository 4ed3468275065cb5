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
// the link is gone (RTM_DELLINK), then finishes its own work and exits.
// The child is this same binary, re-executed with Arg; it lives a few tens
// of milliseconds. If anything goes wrong on the child's side the parent
// deletes the link itself, so a DEL never reports success with the link
// still there.
package finisher

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/link"
)

// Arg is the first argument that makes the plugin binary run Main. Runtimes
// exec CNI plugins without arguments, so it never collides with a verb.
const Arg = "--podns-finish"

// maxFds bounds the descriptors handed over in one message.
const maxFds = 8

// giveUp is how long the parent waits for the child before deleting the
// link itself.
const giveUp = 10 * time.Second

// Child is a started finisher waiting for its work.
type Child struct {
	cmd    *exec.Cmd
	sock   int // parent's end of the SOCK_SEQPACKET pair
	exited chan struct{}
}

// Start execs the child. It waits on a socket for one message (Hand); a
// parent that exits without sending lets it exit at once.
func Start() (*Child, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("finisher socketpair: %w", err)
	}
	childEnd := os.NewFile(uintptr(fds[1]), "finisher")
	defer childEnd.Close()
	cmd := exec.Command("/proc/self/exe", Arg)
	// One P and no GC: the child makes two syscalls and exits.
	cmd.Env = []string{"GOMAXPROCS=1", "GOGC=off"}
	cmd.ExtraFiles = []*os.File{childEnd} // fd 3
	// Its own session: a runtime that kills the plugin's process group on
	// timeout must not stop a delete half way through.
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("start finisher: %w", err)
	}
	c := &Child{cmd: cmd, sock: fds[0], exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Cancel tells the child there is nothing to do.
func (c *Child) Cancel() {
	if c.sock >= 0 {
		unix.Close(c.sock)
		c.sock = -1
	}
}

// DeleteLink has the child delete the link with index idx in the process's
// own network namespace and close fds (the caller keeps its copies and
// should close them right after), and returns once the link is gone from
// the namespace. The child receives the fds, so their last close, and the
// kernel's wait in it, happens there.
func (c *Child) DeleteLink(idx int, fds ...int) error {
	h := &netlink.Handle{}
	if len(fds) > maxFds {
		return fmt.Errorf("finisher: %d descriptors, at most %d", len(fds), maxFds)
	}
	// Subscribed before the delete is sent: the announcement cannot be missed.
	sub, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		c.Cancel()
		return deleteSelf(h, idx)
	}
	defer sub.Close()
	// Only this link's RTM_DELLINK wakes us: without a filter, every DEL of
	// a burst reads every other link's announcements (64 DELs at once made
	// 64 x ~300 messages).
	if err := onlyDelLink(sub.GetFd(), idx); err != nil {
		c.Cancel()
		return deleteSelf(h, idx)
	}
	tv := unix.NsecToTimeval((2 * time.Millisecond).Nanoseconds())
	if err := sub.SetReceiveTimeout(&tv); err != nil {
		c.Cancel()
		return deleteSelf(h, idx)
	}
	msg := make([]byte, 4)
	binary.LittleEndian.PutUint32(msg, uint32(idx))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	err = unix.Sendmsg(c.sock, msg, oob, nil, unix.MSG_NOSIGNAL)
	c.Cancel()
	if err != nil {
		return deleteSelf(h, idx)
	}
	deadline := time.Now().Add(giveUp)
	for {
		msgs, _, err := sub.Receive()
		for _, m := range msgs {
			if m.Header.Type == unix.RTM_DELLINK && len(m.Data) >= unix.SizeofIfInfomsg &&
				int(nl.DeserializeIfInfomsg(m.Data).Index) == idx {
				return nil
			}
		}
		if err == nil {
			continue
		}
		// A timeout, or the socket overflowed while many links changed:
		// look instead of listening.
		if gone, lerr := linkGone(h, idx); lerr != nil || gone {
			return lerr
		}
		select {
		case <-c.exited:
			// The child is done and the link is still there.
			return deleteSelf(h, idx)
		default:
		}
		if time.Now().After(deadline) {
			return deleteSelf(h, idx)
		}
	}
}

// onlyDelLink attaches a socket filter that passes RTM_DELLINK messages
// for link idx and drops everything else. Netlink is host-endian; classic
// BPF loads are big-endian, hence the swapped constants.
func onlyDelLink(fd, idx int) error {
	const (
		offType  = 4                       // nlmsghdr.nlmsg_type
		offIndex = unix.SizeofNlMsghdr + 4 // ifinfomsg.ifi_index
	)
	var t [2]byte
	var i [4]byte
	binary.NativeEndian.PutUint16(t[:], unix.RTM_DELLINK)
	binary.NativeEndian.PutUint32(i[:], uint32(idx))
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: offType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(t[:])), SkipTrue: 3},
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

func linkGone(h *netlink.Handle, idx int) (bool, error) {
	_, err := h.LinkByIndex(idx)
	if err == nil {
		return false, nil
	}
	if link.IsNotFound(err) {
		return true, nil
	}
	return false, fmt.Errorf("look up link %d: %w", idx, err)
}

func deleteSelf(h *netlink.Handle, idx int) error {
	err := h.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}})
	if err != nil && !link.IsNotFound(err) {
		return fmt.Errorf("delete link %d: %w", idx, err)
	}
	return nil
}

// Main is the child's side: read one message from fd 3, delete the link it
// names (index 0: none), close the descriptors it carries, exit. Its exit
// status is for tests; the parent watches the link, not the status.
func Main() int {
	const sock = 3
	msg := make([]byte, 4)
	oob := make([]byte, unix.CmsgSpace(4*maxFds))
	n, oobn, _, _, err := unix.Recvmsg(sock, msg, oob, 0)
	if err != nil || n == 0 {
		return 0 // the parent had nothing for us
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cmsgs {
			if got, err := unix.ParseUnixRights(&cm); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	status := 0
	if idx := int(binary.LittleEndian.Uint32(msg)); n == 4 && idx > 0 {
		if err := deleteSelf(&netlink.Handle{}, idx); err != nil {
			status = 1
		}
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	return status
}
