//go:build linux

package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	name := testutil.UniqueName("pnl")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// routeHandle is a route netlink handle in the test's netns, closed at the end.
func routeHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestNamesAndAlias(t *testing.T) {
	a := HostVethName("net", "cid", "eth0")
	if len(a) > 15 || a != HostVethName("net", "cid", "eth0") || a == HostVethName("net", "cid", "eth1") || a == HostVethName("net2", "cid", "eth0") {
		t.Fatalf("host veth names not stable and distinct: %s", a)
	}
	ai, ok := ParseAliasInfo(Alias("net", "cid", "eth0", "ns/pod"))
	if !ok || ai.Network != "net" || ai.ContainerID != "cid" || ai.IfName != "eth0" || ai.Pod != "ns/pod" {
		t.Fatalf("alias round trip: %+v %v", ai, ok)
	}
	if _, _, _, _, ok := ParseAlias("someone else's link"); ok {
		t.Fatal("foreign alias parsed")
	}
	long := Alias(strings.Repeat("n", 200), strings.Repeat("c", 200), "eth0", "ns/pod")
	if len(long) > 255 || !OfNetwork(long, strings.Repeat("n", 200)) || OfNetwork(long, "net") {
		t.Fatalf("a cut alias must still name its network: %q", long)
	}
}

// TestVethIntoNetns: one request makes the pair with the peer in the pod
// netns, MTU on both ends, the MAC on the pod end, the host end on the
// bridge; a second create with the same pod name reports ErrPodIfExists.
func TestVethIntoNetns(t *testing.T) {
	testutil.RequireRoot(t)
	pod := newNS(t)
	h := &netlink.Handle{}
	brName := testutil.UniqueName("pnlbr")
	br, created, err := EnsureBridge(h, brName, 1400)
	if err != nil || !created {
		t.Fatalf("EnsureBridge: %v created=%v", err, created)
	}
	t.Cleanup(func() { _ = DeleteByName(h, brName) })
	// The bridge podns makes does no multicast snooping (O(ports) work on
	// every port change).
	if b, err := os.ReadFile("/sys/class/net/" + brName + "/bridge/multicast_snooping"); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("multicast_snooping of %s: %q, %v; want 0", brName, b, err)
	}
	// An existing bridge, down: brought up, and reported as the kernel has it.
	if err := h.LinkSetDown(br); err != nil {
		t.Fatal(err)
	}
	again, made, err := EnsureBridge(h, brName, 1400)
	if err != nil || made {
		t.Fatalf("second EnsureBridge: %v created=%v", err, made)
	}
	kb, err := h.LinkByName(brName)
	if err != nil || kb.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("existing bridge not brought up: %+v %v", kb, err)
	}
	if g, w := again.Attrs(), kb.Attrs(); g.Index != w.Index || g.MTU != w.MTU || g.HardwareAddr.String() != w.HardwareAddr.String() || g.Name != w.Name {
		t.Fatalf("EnsureBridge reported %d %s mtu %d %s, kernel has %d %s mtu %d %s", g.Index, g.Name, g.MTU, g.HardwareAddr, w.Index, w.Name, w.MTU, w.HardwareAddr)
	}
	host := testutil.UniqueName("pnlv")
	mac, _ := net.ParseMAC("0a:58:0a:00:00:09")
	veth, err := CreateVeth(h, VethSpec{HostName: host, PodName: "eth0", PodNSFd: int(pod), MTU: 1400, PodMAC: mac, MasterIndex: br.Attrs().Index})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteByName(h, host) })
	defer veth.Close()
	if l, err := h.LinkByName(host); err != nil || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("host end after CreateVeth: %+v %v; want it down", l, err)
	}
	if err := veth.UpHost("podns test", true); err != nil {
		t.Fatal(err)
	}
	brAfter, err := h.LinkByName(brName)
	if err != nil || brAfter.Attrs().HardwareAddr.String() != br.Attrs().HardwareAddr.String() || br.Attrs().HardwareAddr[0]&2 == 0 {
		t.Fatalf("bridge MAC %v changed to %v when a port joined (or is not locally administered)", br.Attrs().HardwareAddr, brAfter.Attrs().HardwareAddr)
	}
	hl, err := h.LinkByName(host)
	if err != nil || hl.Attrs().MTU != 1400 || hl.Attrs().MasterIndex != br.Attrs().Index || hl.Attrs().Flags&net.FlagUp == 0 || hl.Attrs().Alias != "podns test" {
		t.Fatalf("host end: %+v %v", hl, err)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + host + "/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) != "1" {
		t.Errorf("IPv6 on the host end of a bridge port: disable_ipv6=%q", b)
	}
	ph, err := netlink.NewHandleAt(pod, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	pl, err := ph.LinkByName("eth0")
	if err != nil || pl.Attrs().MTU != 1400 || pl.Attrs().HardwareAddr.String() != mac.String() {
		t.Fatalf("pod end: %+v %v", pl, err)
	}
	for end, a := range map[string]*netlink.LinkAttrs{"host": hl.Attrs(), "pod": pl.Attrs()} {
		if a.NumTxQueues != 1 || a.NumRxQueues != 1 {
			t.Errorf("%s end has %d TX and %d RX queues, want 1 and 1", end, a.NumTxQueues, a.NumRxQueues)
		}
	}
	// What CreateVeth returns is what the kernel has: no lookup needed.
	if g, w := veth.Host.Attrs(), hl.Attrs(); g.Index != w.Index || g.HardwareAddr.String() != w.HardwareAddr.String() || g.Name != w.Name {
		t.Errorf("returned host end %d %s %s, kernel has %d %s %s", g.Index, g.Name, g.HardwareAddr, w.Index, w.Name, w.HardwareAddr)
	}
	if g, w := veth.Pod.Attrs(), pl.Attrs(); g.Index != w.Index || g.HardwareAddr.String() != w.HardwareAddr.String() || g.Name != w.Name {
		t.Errorf("returned pod end %d %s %s, kernel has %d %s %s", g.Index, g.Name, g.HardwareAddr, w.Index, w.Name, w.HardwareAddr)
	}
	// The pod name is taken now.
	_, err = CreateVeth(h, VethSpec{HostName: testutil.UniqueName("pnlv"), PodName: "eth0", PodNSFd: int(pod)})
	if !errors.Is(err, ErrPodIfExists) {
		t.Fatalf("duplicate pod interface: %v", err)
	}
	// Deleting the host end takes the pod end with it; deleting again is fine.
	if err := DeleteByName(h, host); err != nil {
		t.Fatal(err)
	}
	if err := DeleteByName(h, host); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := ph.LinkByName("eth0"); err == nil {
		t.Fatal("pod end survived")
	}
	if err := DeleteBridgeIfUnused(h, br); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(brName); err == nil {
		t.Fatal("unused bridge not deleted")
	}
}

// TestVethWithoutBridge: no master, IPv6 kept on the host end brought up;
// the pod end gets a locally administered MAC of its own.
func TestVethWithoutBridge(t *testing.T) {
	testutil.RequireRoot(t)
	pod := newNS(t)
	h := routeHandle(t)
	host := testutil.UniqueName("pnlv")
	veth, err := CreateVeth(h, VethSpec{HostName: host, PodName: "eth1", PodNSFd: int(pod)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteByName(h, host) })
	defer veth.Close()
	if err := veth.UpHost("podns routed", false); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + host + "/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) != "0" {
		t.Errorf("IPv6 switched off on a host end that keeps it: disable_ipv6=%q", b)
	}
	hl, err := h.LinkByName(host)
	if err != nil || hl.Attrs().Flags&net.FlagUp == 0 || hl.Attrs().MasterIndex != 0 || hl.Attrs().Alias != "podns routed" || hl.Attrs().Index != veth.Host.Attrs().Index {
		t.Fatalf("host end: %+v %v", hl, err)
	}
	ph, err := netlink.NewHandleAt(pod, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	pl, err := ph.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	mac := pl.Attrs().HardwareAddr
	if pl.Attrs().Index != veth.Pod.Attrs().Index || mac.String() != veth.Pod.Attrs().HardwareAddr.String() || mac[0]&3 != 2 {
		t.Fatalf("pod end %d %s, returned %d %s (want a locally administered unicast MAC)", pl.Attrs().Index, mac, veth.Pod.Attrs().Index, veth.Pod.Attrs().HardwareAddr)
	}
}

// TestVethBadMasterLeavesNothing: the kernel enslaves in the create
// request; when that fails, neither end may remain.
func TestVethBadMasterLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	pod := newNS(t)
	h := routeHandle(t)
	// A veth end is not a bridge: enslaving to it fails in the kernel.
	notBridge := testutil.UniqueName("pnlx")
	la := netlink.NewLinkAttrs()
	la.Name = notBridge
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testutil.UniqueName("pnlx")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteByName(h, notBridge) })
	nb, err := h.LinkByName(notBridge)
	if err != nil {
		t.Fatal(err)
	}
	host := testutil.UniqueName("pnlv")
	_, err = CreateVeth(h, VethSpec{HostName: host, PodName: "eth0", PodNSFd: int(pod), MasterIndex: nb.Attrs().Index})
	if err == nil {
		_ = DeleteByName(h, host)
		t.Fatal("veth enslaved to a non-bridge link")
	}
	if _, err := h.LinkByName(host); err == nil {
		t.Errorf("host end %s left after a failed create", host)
		_ = DeleteByName(h, host)
	}
	ph, err := netlink.NewHandleAt(pod, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	if _, err := ph.LinkByName("eth0"); err == nil {
		t.Error("pod end left after a failed create")
	}
}

func TestEnsureBridgeRefusesOtherLinks(t *testing.T) {
	testutil.RequireRoot(t)
	h := &netlink.Handle{}
	name := testutil.UniqueName("pnlx")
	peer := testutil.UniqueName("pnlp")
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteByName(h, name) })
	if _, _, err := EnsureBridge(h, name, 0); !errors.Is(err, ErrNotBridge) {
		t.Fatalf("got %v, want ErrNotBridge", err)
	}
}

// TestForwarding: the netlink read of each family's forwarding switch
// agrees with /proc/sys, off and on, and EnableForwarding turns it on. In
// a netns of its own, on a thread that stays there.
func TestForwarding(t *testing.T) {
	testutil.RequireRoot(t)
	ns := newNS(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in the test netns
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		done <- checkForwarding()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func checkForwarding() error {
	files := map[bool]string{false: "/proc/sys/net/ipv4/ip_forward", true: "/proc/sys/net/ipv6/conf/all/forwarding"}
	for _, v6 := range []bool{false, true} {
		f := files[v6]
		if _, err := os.Stat(f); v6 && errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		for _, want := range []string{"0", "1", "0"} {
			if err := os.WriteFile(f, []byte(want), 0o644); err != nil {
				return err
			}
			on, err := forwarding(v6)
			if err != nil {
				return err
			}
			if on != (want == "1") {
				return fmt.Errorf("%s is %s, netlink says forwarding %v", f, want, on)
			}
		}
		if err := EnableForwarding(v6); err != nil {
			return err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1" {
			return fmt.Errorf("%s is %q after EnableForwarding", f, b)
		}
		if on, err := forwarding(v6); err != nil || !on {
			return fmt.Errorf("after EnableForwarding, netlink says %v (%v)", on, err)
		}
	}
	return nil
}
