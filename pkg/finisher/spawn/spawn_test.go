//go:build linux

package spawn_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/podns/podns/pkg/finisher/spawn"
	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// self is this package's path, as the runtime's init trace names it.
const self = "github.com/podns/podns/pkg/finisher/spawn"

// heavy are packages of the plugin whose initialisation the finisher must
// neither wait for nor pay.
var heavy = map[string]bool{
	"github.com/vishvananda/netlink": true, "github.com/google/nftables": true,
	"go.etcd.io/bbolt": true, "github.com/containernetworking/cni/pkg/version": true, "os": true,
}

// TestInitialisedEarly: in a DEL of the podns binary, spawn initialises
// (and starts the finisher) before the heavy packages the plugin links, so
// the finisher's start overlaps their initialisation.
func TestInitialisedEarly(t *testing.T) {
	bin := filepath.Join(testutil.BinDir(t), "podns")
	cmd := exec.Command(bin)
	cmd.Env = []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + testutil.UniqueName("spw"), "CNI_IFNAME=eth0", "CNI_NETNS=",
		"CNI_PATH=" + filepath.Dir(bin), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"spawntest","type":"podns","bridge":"spawntestbr"}`)
	for _, in := range testutil.Inits(t, cmd) {
		if in.Pkg == self {
			return
		}
		if heavy[in.Pkg] {
			t.Fatalf("%s initialises before %s", in.Pkg, self)
		}
	}
	t.Fatalf("the podns binary does not initialise %s", self)
}

// TestTakeOnce: nothing was started in this process (no CNI_COMMAND=DEL).
func TestTakeOnce(t *testing.T) {
	if _, ok := spawn.Take(); ok {
		t.Fatal("Take returned a finisher no init started")
	}
}

// TestChildBeforeHeavyInits: a finisher (the podns binary run as Start
// runs it) does its work in this package's init and exits there, so none
// of the heavy packages the plugin links initialises in it, and it exits
// 0 (testutil.Inits fails otherwise). Given the index
// of a link that does not exist, it deletes nothing and exits 0.
func TestChildBeforeHeavyInits(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "finisher socket")
	defer child.Close()
	// Little-endian index, as pkg/finisher sends it; no such link.
	if _, err := syscall.Write(fds[0], []byte{0xf0, 0xff, 0xff, 0x7f}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[0]) // no descriptors to hand over: the child reads EOF
	cmd := exec.Command(filepath.Join(testutil.BinDir(t), "podns"), spawn.Arg)
	cmd.Env = []string{spawn.ChildEnv + "=1"}
	cmd.ExtraFiles = []*os.File{child}
	// The runtime prints a package's line once its init returns; the
	// finisher exits inside spawn's, so spawn's line never comes.
	for _, in := range testutil.Inits(t, cmd) {
		if heavy[in.Pkg] || in.Pkg == self {
			t.Fatalf("%s finished initialising in the finisher", in.Pkg)
		}
	}
}
