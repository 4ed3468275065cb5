package cnienv

import (
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// The arguments' CNI variables replace whatever the environment holds;
// everything else of the environment is kept.
func TestFor(t *testing.T) {
	t.Setenv("CNI_COMMAND", "VERSION")
	t.Setenv("CNI_PATH", "/stale")
	t.Setenv("CNI_NETNS_OVERRIDE", "1")
	t.Setenv("PODNS_TEST_KEEP", "yes")
	env := For("ADD", &skel.CmdArgs{ContainerID: "c1", Netns: "/n", IfName: "eth0", Args: "A=1", Path: "/bin1:/bin2"})
	for _, want := range []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/n", "CNI_IFNAME=eth0", "CNI_ARGS=A=1", "CNI_PATH=/bin1:/bin2", "PODNS_TEST_KEEP=yes"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s missing from %v", want, env)
		}
	}
	for _, gone := range []string{"CNI_COMMAND=VERSION", "CNI_PATH=/stale", "CNI_NETNS_OVERRIDE=1"} {
		if slices.Contains(env, gone) {
			t.Errorf("%s kept", gone)
		}
	}
}
