//go:build linux

package cniplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/testutil"
)

// invokeArgs is an attachment of a bridge network with podns-ipam in a
// temporary data dir and a unique bridge, into netnsPath.
func invokeArgs(t testing.TB, version, netnsPath, subnet string) (*skel.CmdArgs, string) {
	t.Helper()
	netw, br := testutil.UniqueName("inv"), testutil.UniqueName("invb")
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(br); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	conf := fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"podns","bridge":%q,"isGateway":true,`+
		`"ipam":{"type":"podns-ipam","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`, version, netw, br, t.TempDir(), subnet)
	return &skel.CmdArgs{ContainerID: "c" + netw, IfName: "eth0", Netns: netnsPath, StdinData: []byte(conf)}, br
}

func cniCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// Invoke refuses, with the code skel would print, what skel refuses around
// an exec'd plugin, and makes nothing when it does.
func TestInvokeRefusesWhatSkelRefuses(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name, verb, version, netns string
		want                       uint
	}{
		{"unsupported cniVersion", "ADD", "9.9.9", "/proc/self/ns/net", types.ErrIncompatibleCNIVersion},
		{"unsupported cniVersion on DEL", "DEL", "0.2.0", "", types.ErrIncompatibleCNIVersion},
		{"own netns", "ADD", "1.1.0", "/proc/self/ns/net", types.ErrInvalidNetNS},
		{"own netns on DEL", "DEL", "1.1.0", "/proc/self/ns/net", types.ErrInvalidNetNS},
		{"verb not served in-process", "CHECK", "1.1.0", "", types.ErrInvalidEnvironmentVariables},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, br := invokeArgs(t, tc.version, tc.netns, "10.238.1.0/24")
			var out bytes.Buffer
			err := Invoke(tc.verb, args, &out)
			if cniCode(err) != tc.want {
				t.Fatalf("got %v (code %d), want code %d", err, cniCode(err), tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %q", out.String())
			}
			if _, err := netlink.LinkByName(br); err == nil {
				t.Fatalf("bridge %s made by a refused %s", br, tc.verb)
			}
		})
	}
	var out bytes.Buffer
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: []byte(`{"cniVersion":`)}
	if err := Invoke("ADD", args, &out); cniCode(err) != types.ErrDecodingFailure {
		t.Fatalf("truncated config: %v", err)
	}
}

// An in-process ADD writes the result an exec'd one prints and wires the
// pod; the DEL after it, with a warm finisher (this test binary
// re-executed, TestMain), removes the veth. The caller's thread stays in
// its own netns throughout.
func TestInvokeAddDel(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	nsName := testutil.UniqueName("invns")
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	args, _ := invokeArgs(t, "1.1.0", "/var/run/netns/"+nsName, "10.238.2.0/24")

	var out bytes.Buffer
	if err := Invoke("ADD", args, &out); err != nil {
		t.Fatal(err)
	}
	var res struct {
		CNIVersion string
		IPs        []struct{ Address string }
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.CNIVersion != "1.1.0" || len(res.IPs) != 1 || res.IPs[0].Address != "10.238.2.2/24" {
		t.Fatalf("ADD result %q (%v)", out.String(), err)
	}
	var conf struct{ Name string }
	_ = json.Unmarshal(args.StdinData, &conf)
	host := link.HostVethName(conf.Name, args.ContainerID, args.IfName)
	if _, err := netlink.LinkByName(host); err != nil {
		t.Fatalf("host veth after ADD: %v", err)
	}
	if now, err := netns.Get(); err != nil || !now.Equal(self) {
		t.Fatalf("ADD moved the caller's thread to another netns (%v)", err)
	}

	WarmDel("")
	var warmPid int
	for deadline := time.Now().Add(5 * time.Second); warmPid == 0; time.Sleep(time.Millisecond) {
		if kids := finisher.Children(os.Getpid()); len(kids) == 1 {
			warmPid = kids[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("WarmDel: finisher children %v, want one", kids)
		}
	}
	out.Reset()
	if err := Invoke("DEL", args, &out); err != nil {
		t.Fatal(err)
	}
	wantGone(t, host)
	if fin, _ := takeWarm(); fin != nil {
		t.Fatal("DEL left the warm finisher untaken")
	}
	// The warm child did the delete (it was the only finisher) and is gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", warmPid))
		if left := finisher.Children(os.Getpid()); len(left) == 0 && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after DEL: warm finisher %d still there", warmPid)
		}
	}
}
