//go:build linux

package cniplugin

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/testutil"
)

// TestMain lets this test binary play DEL's finisher: finisher.Start
// re-executes /proc/self/exe, which is this binary here.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == finisher.Arg {
		os.Exit(finisher.Main())
	}
	os.Exit(m.Run())
}

// delArgs is a DEL of a bridge network without IPAM or ipMasq (so no
// IPAM state is touched); the network name is unique, so is the host veth.
func delArgs(t *testing.T) *skel.CmdArgs {
	t.Helper()
	netw := testutil.UniqueName("dlt")
	return &skel.CmdArgs{
		ContainerID: "c" + netw,
		IfName:      "eth0",
		StdinData:   []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"podns","bridge":%q}`, netw, testutil.UniqueName("dltb"))),
	}
}

// hostVeth makes the host veth DEL looks for (its peer stays in the host
// netns under a unique name) and returns its name.
func hostVeth(t *testing.T, args *skel.CmdArgs) string {
	t.Helper()
	conf := struct{ Name string }{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		t.Fatal(err)
	}
	name := link.HostVethName(conf.Name, args.ContainerID, args.IfName)
	peer := testutil.UniqueName("dltp")
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{name, peer} {
			if l, err := netlink.LinkByName(n); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	})
	return name
}

// wantGone fails the test if link host is still there.
func wantGone(t *testing.T, host string) {
	t.Helper()
	if _, err := netlink.LinkByName(host); err == nil {
		t.Fatalf("%s still there when DEL returned", host)
	}
}

// startFinisher starts a finisher child of this test binary (TestMain).
func startFinisher(t *testing.T) *finisher.Child {
	t.Helper()
	fin, err := finisher.Start()
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

// wantFinisherExit waits until fin is gone and checks how it ended.
func wantFinisherExit(t *testing.T, fin *finisher.Child, want int, why string) {
	t.Helper()
	waitNoFinisher(t, fin)
	if st := exitStatus(t, fin); st != want {
		t.Fatalf("finisher exited %d, want %d (%s)", st, want, why)
	}
}

// waitNoFinisher fails unless fin has exited and been reaped and no
// finisher child of this process is left, within a bounded wait.
func waitNoFinisher(t *testing.T, fin *finisher.Child) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := finisher.Children(os.Getpid())
		_, err := os.Stat(fmt.Sprintf("/proc/%d", fin.Pid()))
		if len(left) == 0 && err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after DEL returned: finisher %d in /proc: %v; finisher children or zombies: %v", fin.Pid(), err == nil, left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitStatus is fin's exit status, once it was reaped (within 5 s).
func exitStatus(t *testing.T, fin *finisher.Child) int {
	t.Helper()
	select {
	case <-fin.Exited():
		return fin.ExitStatus()
	case <-time.After(5 * time.Second):
		t.Fatalf("finisher %d not reaped within 5 s", fin.Pid())
		return -1
	}
}

// TestDelNothingCancelsFinisher: a DEL with no host veth (a repeated DEL)
// tells the early finisher there is no work; it exits with that status and
// is reaped, and no finisher child is left.
func TestDelNothingCancelsFinisher(t *testing.T) {
	testutil.RequireRoot(t)
	args := delArgs(t)
	fin := startFinisher(t)
	if err := del(args, fin, nil); err != nil {
		t.Fatal(err)
	}
	wantFinisherExit(t, fin, finisher.ExitNoWork, "no work")
}

// TestDelBadConfigCancelsFinisher: a DEL that fails before it looks for
// the link lets the early finisher go too.
func TestDelBadConfigCancelsFinisher(t *testing.T) {
	fin := startFinisher(t)
	if err := del(&skel.CmdArgs{ContainerID: "x", IfName: "eth0", StdinData: []byte(`{"cniVersion":"1.1.0"}`)}, fin, nil); err == nil {
		t.Fatal("DEL of a config without a name succeeded")
	}
	wantFinisherExit(t, fin, finisher.ExitNoWork, "no work")
}

// TestDelUsesEarlyFinisher: the finisher started before DEL does the
// delete (its status says it deleted a link), the veth is gone when DEL
// returns, and no finisher child is left afterwards.
func TestDelUsesEarlyFinisher(t *testing.T) {
	testutil.RequireRoot(t)
	args := delArgs(t)
	host := hostVeth(t, args)
	fin := startFinisher(t)
	if err := del(args, fin, nil); err != nil {
		t.Fatal(err)
	}
	wantGone(t, host)
	wantFinisherExit(t, fin, finisher.ExitDeleted, "it deleted the link")
}

// TestDelFinisherKilledBeforeWork: the early finisher dies before DEL has
// work for it; DEL deletes the link itself and succeeds.
func TestDelFinisherKilledBeforeWork(t *testing.T) {
	testutil.RequireRoot(t)
	args := delArgs(t)
	host := hostVeth(t, args)
	fin := startFinisher(t)
	if err := unix.Kill(fin.Pid(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := exitStatus(t, fin); st != finisher.ExitKilled {
		t.Fatalf("finisher exited %d, want %d (killed)", st, finisher.ExitKilled)
	}
	if err := del(args, fin, nil); err != nil {
		t.Fatal(err)
	}
	wantGone(t, host)
}

// TestDelNoFinisher: a finisher that could not be started (DelWith with
// its error) leaves DEL to delete the link in-process.
func TestDelNoFinisher(t *testing.T) {
	testutil.RequireRoot(t)
	args := delArgs(t)
	host := hostVeth(t, args)
	if err := DelWith(nil, fmt.Errorf("test: no child"))(args); err != nil {
		t.Fatal(err)
	}
	wantGone(t, host)
	if left := finisher.Children(os.Getpid()); len(left) > 0 {
		t.Fatalf("finisher children: %v", left)
	}
}
