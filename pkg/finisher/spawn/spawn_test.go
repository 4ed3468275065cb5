//go:build linux

package spawn_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podns/podns/pkg/finisher/spawn"
	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestInitialisedEarly: in a DEL of the podns binary, spawn initialises
// (and starts the finisher) before the heavy packages the plugin links, so
// the finisher's start overlaps their initialisation.
func TestInitialisedEarly(t *testing.T) {
	const self = "github.com/podns/podns/pkg/finisher/spawn"
	bin := filepath.Join(testutil.BinDir(t), "podns")
	cmd := exec.Command(bin)
	cmd.Env = []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + testutil.UniqueName("spw"), "CNI_IFNAME=eth0", "CNI_NETNS=",
		"CNI_PATH=" + filepath.Dir(bin), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"spawntest","type":"podns","bridge":"spawntestbr"}`)
	heavy := map[string]bool{
		"github.com/vishvananda/netlink": true, "github.com/google/nftables": true,
		"go.etcd.io/bbolt": true, "github.com/containernetworking/cni/pkg/version": true, "os": true,
	}
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
