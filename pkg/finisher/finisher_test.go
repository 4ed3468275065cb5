//go:build linux

package finisher

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

// TestMain lets the test binary play the child: Start re-executes
// /proc/self/exe, which is this binary here.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == Arg {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

// vethToNS makes a veth pair with its peer in a new named netns and
// returns the host end's index and the netns handle.
func vethToNS(t *testing.T) (int, netns.NsHandle, string) {
	t.Helper()
	nsName := testutil.UniqueName("fin")
	host := testutil.UniqueName("finh")
	// NewNamed switches the calling thread; do it on a thread of its own.
	done := make(chan error, 1)
	var pod netns.NsHandle
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in the new netns
		var err error
		pod, err = netns.NewNamed(nsName)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pod.Close(); _ = netns.DeleteNamed(nsName) })
	la := netlink.NewLinkAttrs()
	la.Name = host
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(pod)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(host); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	l, err := netlink.LinkByName(host)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index, pod, host
}

// TestDeleteLink: when DeleteLink returns, both ends are gone from their
// namespaces; the descriptor handed over is closed by the child.
func TestDeleteLink(t *testing.T) {
	testutil.RequireRoot(t)
	idx, pod, host := vethToNS(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteLink(idx, p[1]); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("host end %s still there when DeleteLink returned", host)
	}
	ph, err := netlink.NewHandleAt(pod)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	if _, err := ph.LinkByName("eth0"); err == nil {
		t.Fatal("pod end still there when DeleteLink returned")
	}
	// The pipe reads EOF once the child, the last holder, closed it.
	readEOF(t, p[0])
	waitExit(t, c)
	if code := c.ExitStatus(); code != ExitDeleted {
		t.Fatalf("child exited %d, want %d (it did the delete)", code, ExitDeleted)
	}
}

// TestStartDeleteOverlaps: StartDelete has the child delete the link
// before Finish is called (the caller's work in between overlaps the
// kernel's); Finish then hands over a descriptor, which the child closes,
// and returns at once.
func TestStartDeleteOverlaps(t *testing.T) {
	testutil.RequireRoot(t)
	idx, _, host := vethToNS(t)
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	d := c.StartDelete(idx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := netlink.LinkByName(host); err != nil {
			break
		}
		if time.Now().After(deadline) {
			c.Cancel()
			t.Fatalf("%s still there 5 s after StartDelete, before Finish", host)
		}
		time.Sleep(time.Millisecond)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := d.Finish(p[1]); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	if err := d.Gone(); err != nil {
		t.Fatal(err)
	}
	readEOF(t, p[0])
	waitExit(t, c)
	if code := c.ExitStatus(); code != ExitDeleted {
		t.Fatalf("child exited %d, want %d", code, ExitDeleted)
	}
}

// TestGoneAfterForeignDown: Finish returns once the link is announced
// down, which is normally the delete under way. If someone else set it down
// and the child never deletes it, Gone still returns only once the link is
// gone, deleting it itself.
func TestGoneAfterForeignDown(t *testing.T) {
	testutil.RequireRoot(t)
	idx, _, host := vethToNS(t)
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	// A child that holds its socket a while and deletes nothing.
	idle := filepath.Join(t.TempDir(), "idle")
	if err := os.WriteFile(idle, []byte("#!/bin/sh\nexec sleep 0.3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := StartExe(idle)
	if err != nil {
		t.Fatal(err)
	}
	d := c.StartDelete(idx)
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByIndex(idx); err != nil {
		t.Fatalf("link gone when Finish returned (%v): it should have returned on the down announcement", err)
	}
	if err := d.Gone(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("%s still there when Gone returned", host)
	}
	waitExit(t, c)
}

// TestDeleteLinkChildGone: a child that died before its message makes
// DeleteLink delete the link itself.
func TestDeleteLinkChildGone(t *testing.T) {
	testutil.RequireRoot(t)
	idx, _, host := vethToNS(t)
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(c.Pid(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, c)
	if err := c.DeleteLink(idx); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("%s still there", host)
	}
}

// TestStartExeForeignBinary: a child binary that does not speak the
// protocol (an older plugin, or any program) exits without deleting
// anything, and DeleteLink deletes the link itself.
func TestStartExeForeignBinary(t *testing.T) {
	testutil.RequireRoot(t)
	idx, _, host := vethToNS(t)
	c, err := StartExe("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteLink(idx); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("%s still there", host)
	}
	waitExit(t, c)
}

// TestCancel: a child with nothing to do exits at once, is reaped (no
// zombie: its /proc entry goes) and no finisher child of ours is left.
func TestCancel(t *testing.T) {
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	c.Cancel()
	waitExit(t, c)
	if code := c.ExitStatus(); code != ExitNoWork {
		t.Fatalf("child exited %d, want %d", code, ExitNoWork)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Pid())); err == nil {
		t.Fatalf("child %d still in /proc after it was reaped", c.Pid())
	}
	if left := Children(os.Getpid()); len(left) > 0 {
		t.Fatalf("finisher children left: %v", left)
	}
}

// TestStartStdio: the child holds none of the parent's descriptors but
// /dev/null on 0-2 and its socket on 3, and runs in its own session.
func TestStartStdio(t *testing.T) {
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Cancel(); waitExit(t, c) }()
	// Its descriptors are final once it waits for its work in recvmsg
	// (the runtime opens a few files while it starts).
	deadline := time.Now().Add(5 * time.Second)
	for !inRecvmsg(c.Pid()) {
		if time.Now().After(deadline) {
			t.Fatal("child never came to wait for its work")
		}
		time.Sleep(time.Millisecond)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.Pid(), e.Name()))
		switch fd := e.Name(); {
		case fd == "0" || fd == "1" || fd == "2":
			if target != "/dev/null" {
				t.Errorf("child fd %s is %s, want /dev/null", fd, target)
			}
		case fd == "3":
			if !strings.HasPrefix(target, "socket:") {
				t.Errorf("child fd 3 is %s, want its socket", target)
			}
		case strings.HasPrefix(target, "anon_inode:") || strings.HasPrefix(target, "/sys/fs/cgroup/"):
			// The Go runtime's own: epoll, eventfd, and (in a test binary,
			// which watches cgroup CPU limits) the cgroup's CPU files.
		default:
			// Nothing of the parent's but what this test process was
			// itself given without close-on-exec (the shell's, say).
			if !inheritable(fd, target) {
				t.Errorf("child holds fd %s: %s", fd, target)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if sid := f[3]; sid != fmt.Sprint(c.Pid()) {
		t.Errorf("child session %s, want its own (%d)", sid, c.Pid())
	}
}

// inRecvmsg says whether a thread of pid is in recvmsg(2).
func inRecvmsg(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(unix.SYS_RECVMSG) {
			return true
		}
	}
	return false
}

// inheritable says whether this process has fd open on target without
// close-on-exec, so that any child it execs holds it too.
func inheritable(fd, target string) bool {
	own, err := os.Readlink("/proc/self/fd/" + fd)
	if err != nil || own != target {
		return false
	}
	info, err := os.ReadFile("/proc/self/fdinfo/" + fd)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&unix.O_CLOEXEC == 0
		}
	}
	return false
}

// TestDeleteLinkChildHangsUp: a child that takes its work and exits
// without deleting (its socket hangs up) makes DeleteLink delete the link
// itself at once, without waiting for the 10 s give-up. The peer is this
// test, on a real socket pair.
func TestDeleteLinkChildHangsUp(t *testing.T) {
	testutil.RequireRoot(t)
	idx, _, host := vethToNS(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		msg := make([]byte, 4)
		n, _, _, _, _ := unix.Recvmsg(fds[1], msg, nil, 0)
		unix.Close(fds[1])
		got <- n
	}()
	c := &Child{sock: fds[0], exited: make(chan struct{})}
	start := time.Now()
	if err := c.DeleteLink(idx); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 4 {
		t.Fatalf("peer read %d bytes, want the 4-byte message", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("DeleteLink took %v after the child hung up", d)
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("%s still there after the child hung up", host)
	}
}

func readEOF(t *testing.T, fd int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 5000); err != nil || n != 1 {
		t.Fatalf("pipe not closed by the child within 5 s (%d, %v)", n, err)
	}
	if n, err := unix.Read(fd, make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("read %d, %v; want EOF", n, err)
	}
}

func waitExit(t *testing.T, c *Child) {
	t.Helper()
	select {
	case <-c.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("child still running after 5 s")
	}
}

// TestOnlyDelLink: the subscription filter passes the one link's
// RTM_DELLINK and its RTM_NEWLINKs without IFF_UP (the start of a delete),
// not the one announcing it up, and nothing of any other link (a new one,
// another's delete).
func TestOnlyDelLink(t *testing.T) {
	testutil.RequireRoot(t)
	mk := func() (int, string) {
		name := testutil.UniqueName("finf")
		la := netlink.NewLinkAttrs()
		la.Name = name
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testutil.UniqueName("finp")}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				_ = netlink.LinkDel(l)
			}
		})
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index, name
	}
	want, _ := mk()
	sub, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := onlyDelLink(sub.GetFd(), want); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := sub.SetReceiveTimeout(&tv); err != nil {
		t.Fatal(err)
	}
	// Another link comes and goes: nothing may pass.
	other, _ := mk()
	if err := netlink.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: other}}); err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := sub.Receive(); err == nil {
		t.Fatalf("filter passed %d messages about other links", len(msgs))
	}
	wl := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: want}}
	if err := netlink.LinkSetUp(wl); err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := sub.Receive(); err == nil {
		t.Fatalf("filter passed %d messages announcing link %d up", len(msgs), want)
	}
	if err := netlink.LinkSetDown(wl); err != nil {
		t.Fatal(err)
	}
	msgs, _, err := sub.Receive()
	if err != nil {
		t.Fatalf("no down announcement for link %d: %v", want, err)
	}
	for _, m := range msgs {
		ifi := nl.DeserializeIfInfomsg(m.Data)
		if m.Header.Type != unix.RTM_NEWLINK || int(ifi.Index) != want || ifi.Flags&unix.IFF_UP != 0 {
			t.Fatalf("filter passed type %d flags %#x for link %d", m.Header.Type, ifi.Flags, ifi.Index)
		}
	}
	if err := netlink.LinkDel(wl); err != nil {
		t.Fatal(err)
	}
	msgs, _, err = sub.Receive()
	if err != nil {
		t.Fatalf("no RTM_DELLINK for link %d: %v", want, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_DELLINK || int(nl.DeserializeIfInfomsg(m.Data).Index) != want {
			t.Fatalf("filter passed type %d for link %d", m.Header.Type, nl.DeserializeIfInfomsg(m.Data).Index)
		}
	}
}

// TestGoneBeforeAnnounced: a deleted bridge port is unlisted well before
// its deletion is announced (the bridge walks its other ports in between),
// and a Gone that finds the link still listed returns on the unlisting,
// not on the announcement. It runs in a netns of its own, on a thread that
// stays there, with 600 veth ports on one bridge; a monitor subscribed to
// link announcements tells whether the deletion was announced when Gone
// returned. Scheduling may delay a lookup past the announcement, so one of
// ten Gones that had to wait must come first (without the lookups, none
// does; with them, about half did on a loaded 2-core machine).
func TestGoneBeforeAnnounced(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread() // never unlocked: the thread dies in the test netns
	nsName := testutil.UniqueName("fing")
	nsh, err := netns.NewNamed(nsName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close(); _ = netns.DeleteNamed(nsName) })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", Flags: unix.IFF_UP}}); err != nil {
		t.Fatal(err)
	}
	brl, err := h.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	const ports = 600
	for i := range ports {
		la := netlink.LinkAttrs{Name: fmt.Sprintf("p%d", i), MasterIndex: brl.Attrs().Index, Flags: unix.IFF_UP}
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("q%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	mon, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	// announced drains the monitor and says whether it held link idx's
	// RTM_DELLINK (the bridge's or the link's own).
	announced := func(idx int) bool {
		buf := make([]byte, 1<<16)
		seen := false
		for {
			n, _, err := unix.Recvfrom(mon.GetFd(), buf, unix.MSG_DONTWAIT)
			if err == unix.EINTR || err == unix.ENOBUFS {
				continue
			}
			if err != nil {
				return seen
			}
			msgs, _ := syscall.ParseNetlinkMessage(buf[:n])
			for _, m := range msgs {
				if m.Header.Type == unix.RTM_DELLINK && int(nl.DeserializeIfInfomsg(m.Data).Index) == idx {
					seen = true
				}
			}
		}
	}
	waited, first := 0, 0
	for i := 0; i < 60 && waited < 10; i++ {
		l, err := h.LinkByName(fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		idx := l.Attrs().Index
		announced(0)
		c, err := Start()
		if err != nil {
			t.Fatal(err)
		}
		d := c.StartDelete(idx)
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		if err := d.Gone(); err != nil {
			t.Fatal(err)
		}
		if d.waited {
			waited++
			if !announced(idx) {
				first++
			}
		}
		if _, err := h.LinkByIndex(idx); err == nil {
			t.Fatalf("port %d still listed when Gone returned", idx)
		}
		waitExit(t, c)
	}
	t.Logf("Gone had to wait in %d deletes and returned before the announcement in %d", waited, first)
	if waited == 0 {
		t.Skip("every port was unlisted before Gone looked; nothing to check")
	}
	if first == 0 {
		t.Fatal("Gone waited for the deletion's announcement every time")
	}
}
