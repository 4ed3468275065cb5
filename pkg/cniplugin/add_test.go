//go:build linux

package cniplugin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/testutil"
)

// TestAddDelegateGetsRuntimeEnv: an exec'd IPAM plugin gets the CNI
// variables the runtime gave ADD, and no CNI_NETNS_OVERRIDE the runtime
// did not set (ADD skips skel's own-netns check after it ran, not the
// delegate's).
func TestAddDelegateGetsRuntimeEnv(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := fmt.Sprintf(`#!/bin/sh
env > %s.$CNI_COMMAND
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.1.0","ips":[{"address":"10.238.9.2/24","gateway":"10.238.9.1"}]}'
fi
`, envFile)
	if err := os.WriteFile(filepath.Join(dir, "envdump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	nsName := testutil.UniqueName("addns")
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	netw, br := testutil.UniqueName("addt"), testutil.UniqueName("addb")
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(br); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	args := &skel.CmdArgs{
		ContainerID: "c" + netw, Netns: "/var/run/netns/" + nsName, IfName: "eth0", Path: dir,
		StdinData: []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"podns","bridge":%q,"ipam":{"type":"envdump"}}`, netw, br)),
	}
	var out bytes.Buffer
	if err := add(args, &out); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = del(args, nil, fmt.Errorf("test: no finisher")) })
	env, err := os.ReadFile(envFile + ".ADD")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CNI_COMMAND=ADD", "CNI_NETNS=" + args.Netns, "CNI_CONTAINERID=" + args.ContainerID} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("delegate env lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(string(env), "CNI_NETNS_OVERRIDE") {
		t.Errorf("delegate got CNI_NETNS_OVERRIDE the runtime did not set:\n%s", env)
	}
}
