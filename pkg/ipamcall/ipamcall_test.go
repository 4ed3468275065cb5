//go:build linux

package ipamcall

import (
	"context"
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// A missing exec'd IPAM is a config error for ADD/DEL/CHECK/GC and "not
// available" for STATUS, and names the plugin.
func TestMissingPlugin(t *testing.T) {
	t.Setenv("CNI_PATH", t.TempDir())
	t.Setenv("CNI_CONTAINERID", "c1")
	t.Setenv("CNI_IFNAME", "eth0")
	t.Setenv("CNI_NETNS", "")
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"nope"}}`)}
	ctx := context.Background()
	code := func(err error) uint {
		var te *types.Error
		if !errors.As(err, &te) {
			t.Fatalf("not a CNI error: %v", err)
		}
		return te.Code
	}
	if _, err := Add(ctx, "nope", args); code(err) != types.ErrInvalidNetworkConfig {
		t.Fatalf("ADD: %v", err)
	}
	if err := Del(ctx, "nope", args); code(err) != types.ErrInvalidNetworkConfig {
		t.Fatalf("DEL: %v", err)
	}
	if err := Status(ctx, "nope", args); code(err) != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS: %v", err)
	}
}

// podns-ipam is served in-process: with an empty CNI_PATH an invalid
// podns-ipam config still reaches pkg/ipam and gets its config error.
func TestInProcessDispatch(t *testing.T) {
	t.Setenv("CNI_PATH", t.TempDir())
	if inProcess == nil {
		t.Fatal("pkg/ipam is not linked in")
	}
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"podns-ipam","dataDir":"` + t.TempDir() + `","ranges":[[{"subnet":"10.300.0.0/24"}]]}}`)}
	_, err := Add(context.Background(), InProcessType, args)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("got %v, want pkg/ipam's config error", err)
	}
}
