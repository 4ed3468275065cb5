//go:build linux

package ipamcall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/podns/podns/pkg/testutil"
)

// A missing exec'd IPAM is a config error for ADD/DEL/CHECK/GC and "not
// available" for STATUS, and names the plugin.
func TestMissingPlugin(t *testing.T) {
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Path: t.TempDir(), StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"nope"}}`)}
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
	if inProcess == nil {
		t.Fatal("pkg/ipam is not linked in")
	}
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Path: t.TempDir(), StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"podns-ipam","dataDir":"` + t.TempDir() + `","ranges":[[{"subnet":"10.300.0.0/24"}]]}}`)}
	_, err := Add(context.Background(), InProcessType, args)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("got %v, want pkg/ipam's config error", err)
	}
}

// refHostLocal is the reference host-local v1.10.0 that hack/deps.sh installs.
const refHostLocal = "/usr/local/lib/cni-v1.10.0"

// A foreign IPAM is exec'd with the CNI protocol: its result is decoded
// into a current result, its error JSON comes back with its own code. Its
// CNI variables come from the call's arguments, never from this process's
// environment: a runtime running podns in-process (cniplugin.Invoke) has
// none, or other ones.
func TestExecHostLocal(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat(filepath.Join(refHostLocal, "host-local")); err != nil {
		t.Skipf("reference host-local not installed (hack/deps.sh): %v", err)
	}
	t.Setenv("CNI_PATH", t.TempDir())
	t.Setenv("CNI_COMMAND", "VERSION")
	t.Setenv("CNI_CONTAINERID", "other")
	dir := t.TempDir()
	conf := func(subnet string) *skel.CmdArgs {
		return &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: "/var/run/netns/none",
			Path: t.TempDir() + ":" + refHostLocal, StdinData: []byte(`{"cniVersion":"1.0.0","name":"n` +
				`","type":"podns","ipam":{"type":"host-local","dataDir":"` + dir + `","ranges":[[{"subnet":"` + subnet + `"}]]}}`)}
	}
	ctx := context.Background()
	args := conf("10.237.4.0/24")
	res, err := Add(ctx, "host-local", args)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.237.4.2/24" {
		t.Fatalf("result %+v", res)
	}
	// host-local records the CNI_CONTAINERID and CNI_IFNAME it was given.
	if b, err := os.ReadFile(filepath.Join(dir, "n", "10.237.4.2")); err != nil || strings.Fields(string(b))[0] != "c1" {
		t.Fatalf("host-local's lease %q (%v): not the arguments' container id", b, err)
	}
	if ips, ok, err := Addrs("host-local", args); ok || err != nil || ips != nil {
		t.Fatalf("Addrs of an exec'd IPAM: %v %v %v", ips, ok, err)
	}
	if err := Del(ctx, "host-local", args); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n", "10.237.4.2")); !os.IsNotExist(err) {
		t.Fatalf("DEL left the allocation: %v", err)
	}
	_, err = Add(ctx, "host-local", conf("10.237.4.0/33"))
	var te *types.Error
	if !errors.As(err, &te) || te.Code == 0 || !strings.Contains(te.Msg, "10.237.4.0/33") && !strings.Contains(te.Details, "10.237.4.0/33") {
		t.Fatalf("host-local's error did not come back as a CNI error: %#v", err)
	}
}
