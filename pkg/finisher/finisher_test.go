//go:build linux

package finisher

import (
	"os"
	"runtime"
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
	if err := c.cmd.Process.Kill(); err != nil {
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

// TestCancel: a child with nothing to do exits at once.
func TestCancel(t *testing.T) {
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	c.Cancel()
	waitExit(t, c)
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("child exited %d", code)
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
	case <-c.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("child still running after 5 s")
	}
}

// TestOnlyDelLink: the subscription filter passes the RTM_DELLINK of the
// one link and nothing of any other link (a new one, another's delete).
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
	if err := netlink.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: want}}); err != nil {
		t.Fatal(err)
	}
	msgs, _, err := sub.Receive()
	if err != nil {
		t.Fatalf("no RTM_DELLINK for link %d: %v", want, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_DELLINK || int(nl.DeserializeIfInfomsg(m.Data).Index) != want {
			t.Fatalf("filter passed type %d for link %d", m.Header.Type, nl.DeserializeIfInfomsg(m.Data).Index)
		}
	}
}
