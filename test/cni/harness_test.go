//go:build linux

// Package cni_test drives the built podns binaries on the real kernel:
// directly (exec with CNI_* env), through libcni, and through cnitool, with
// network namespaces made by `ip netns add`.
package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/testutil"
)

// RefPluginDir holds the v1.10.0 reference plugins (CNI 1.1.0 capable).
const RefPluginDir = "/usr/local/lib/cni-v1.10.0"

// DebianPluginDir holds Debian's reference plugins (up to CNI 1.0.0).
const DebianPluginDir = "/usr/lib/cni"

func TestMain(m *testing.M) { testutil.Main(m) }

// run runs a command and fails the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns makes a named netns with `ip netns add` and removes it after.
func newNetns(t testing.TB) (name, path string) {
	t.Helper()
	name = testutil.UniqueName("pnt")
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name, "/var/run/netns/" + name
}

// inNS runs a command inside a named netns.
func inNS(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

var execCommand = exec.Command

func inNSErr(ns string, args ...string) error {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).Run()
}

// ping pings addr from ns ("" = host), retrying briefly: a fresh bridge
// port or neighbour entry can drop the very first packet.
func ping(t testing.TB, ns, addr string) {
	t.Helper()
	args := []string{"ping", "-c1", "-W1", addr}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	var out []byte
	var err error
	for i := 0; i < 5; i++ {
		out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ping %s from %q: %v\n%s", addr, ns, err, out)
}

// testNet is one podns network with names and subnets no other test uses.
type testNet struct {
	t       testing.TB
	Name    string
	Bridge  string
	Sub4    string // e.g. 10.213.7.0/24
	Sub6    string // e.g. fd00:213:7::/64
	DataDir string
	Bin     string // dir with the podns binaries
	CNIPath string
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	testutil.RequireRoot(t)
	a, b := 200+rand.IntN(50), rand.IntN(250)+1
	n := &testNet{
		t:       t,
		Name:    testutil.UniqueName("pnet"),
		Bridge:  testutil.UniqueName("pnbr"),
		Sub4:    fmt.Sprintf("10.%d.%d.0/24", a, b),
		Sub6:    fmt.Sprintf("fd00:%d:%d::/64", a, b),
		DataDir: t.TempDir(),
		Bin:     testutil.BinDir(t),
	}
	n.CNIPath = n.Bin + ":" + RefPluginDir
	t.Cleanup(n.cleanup)
	return n
}

// cleanup removes whatever the network may have left: host veths carrying
// its alias, its bridge, its nftables chain (and the table when empty).
func (n *testNet) cleanup() {
	h := &netlink.Handle{}
	links, _ := link.List(h)
	for _, l := range links {
		if link.OfNetwork(l.Attrs().Alias, n.Name) {
			_ = h.LinkDel(l)
		}
	}
	_ = link.DeleteByName(h, n.Bridge)
	_ = masq.Remove(n.Name, func(masq.Rule) bool { return true })
	_ = masq.Prune(n.Name)
}

// Conf is the plugin config as a map: tests change keys before marshalling.
type Conf map[string]any

func (n *testNet) conf(version string, v4, v6 bool) Conf {
	var ranges []any
	if v4 {
		ranges = append(ranges, []any{map[string]any{"subnet": n.Sub4}})
	}
	if v6 {
		ranges = append(ranges, []any{map[string]any{"subnet": n.Sub6}})
	}
	return Conf{
		"cniVersion": version,
		"name":       n.Name,
		"type":       "podns",
		"bridge":     n.Bridge,
		"ipam":       map[string]any{"type": "host-local", "dataDir": n.DataDir, "ranges": ranges},
	}
}

func (c Conf) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Call is one direct plugin invocation.
type Call struct {
	Cmd, ContainerID, Netns, IfName, Args string
	Env                                   []string // extra or overriding KEY=VALUE
	Path                                  string   // CNI_PATH; testNet's when empty
}

// exec runs the podns binary with stdin; on failure it returns the CNI error.
func (n *testNet) exec(c Call, stdin []byte) ([]byte, *types.Error) {
	n.t.Helper()
	cmd := exec.Command(filepath.Join(n.Bin, "podns"))
	path := c.Path
	if path == "" {
		path = n.CNIPath
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=" + c.Cmd, "CNI_PATH=" + path}
	if c.Cmd != "STATUS" && c.Cmd != "GC" && c.Cmd != "VERSION" {
		cmd.Env = append(cmd.Env, "CNI_CONTAINERID="+c.ContainerID, "CNI_NETNS="+c.Netns, "CNI_IFNAME="+c.IfName, "CNI_ARGS="+c.Args)
	}
	cmd.Env = append(cmd.Env, c.Env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	e := &types.Error{}
	if jerr := json.Unmarshal(stdout.Bytes(), e); jerr != nil || e.Code == 0 {
		n.t.Fatalf("%s failed without CNI error JSON: %v\nstdout: %s\nstderr: %s", c.Cmd, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), e
}

// mustExec runs a call that must succeed.
func (n *testNet) mustExec(c Call, stdin []byte) []byte {
	n.t.Helper()
	out, e := n.exec(c, stdin)
	if e != nil {
		n.t.Fatalf("%s %s/%s: code %d: %s (%s)", c.Cmd, c.ContainerID, c.IfName, e.Code, e.Msg, e.Details)
	}
	return out
}

// wantCode runs a call that must fail with the given CNI code.
func (n *testNet) wantCode(c Call, stdin []byte, code uint) *types.Error {
	n.t.Helper()
	out, e := n.exec(c, stdin)
	if e == nil {
		n.t.Fatalf("%s succeeded, want error code %d; stdout %s", c.Cmd, code, out)
	}
	if e.Code != code {
		n.t.Fatalf("%s: code %d (%s), want %d", c.Cmd, e.Code, e.Msg, code)
	}
	return e
}

// pod is one attachment made by a direct ADD.
type pod struct {
	NS, Path, ID string
	Result       *current.Result
}

// add creates a netns and ADDs it to the network with conf.
func (n *testNet) add(conf []byte) *pod {
	n.t.Helper()
	ns, path := newNetns(n.t)
	p := &pod{NS: ns, Path: path, ID: "c" + ns}
	out := n.mustExec(Call{Cmd: "ADD", ContainerID: p.ID, Netns: path, IfName: "eth0"}, conf)
	r, err := current.NewResult(out)
	if err != nil {
		n.t.Fatalf("parse ADD result: %v\n%s", err, out)
	}
	if p.Result, err = current.NewResultFromResult(r); err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (p *pod) ip(v6 bool) net.IP {
	for _, ipc := range p.Result.IPs {
		if (ipc.Address.IP.To4() == nil) == v6 {
			return ipc.Address.IP
		}
	}
	return nil
}

func (p *pod) gw(v6 bool) net.IP {
	for _, ipc := range p.Result.IPs {
		if (ipc.Address.IP.To4() == nil) == v6 {
			return ipc.Gateway
		}
	}
	return nil
}

// hostVeth is the host end the plugin made for (containerID, ifname).
func (n *testNet) hostVeth(containerID, ifname string) (netlink.Link, bool) {
	l, err := netlink.LinkByName(link.HostVethName(n.Name, containerID, ifname))
	return l, err == nil
}

// allocations lists host-local's allocation files of this network.
func (n *testNet) allocations() []string {
	ents, _ := os.ReadDir(filepath.Join(n.DataDir, n.Name))
	var out []string
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// masqRules lists the attachments with masquerade rules in this network.
func (n *testNet) masqRules() []masq.Rule {
	n.t.Helper()
	as, err := masq.Attachments(n.Name)
	if err != nil {
		n.t.Fatal(err)
	}
	return as
}

// assertNoState checks that nothing of this network's pods is left: no
// host veths, no allocations, no masquerade elements; and that netns (if
// given) has nothing but lo. The network's own chain and sets may stay.
func (n *testNet) assertNoState(ns string) {
	n.t.Helper()
	links, err := link.List(&netlink.Handle{})
	if err != nil {
		n.t.Fatal(err)
	}
	for _, l := range links {
		if link.OfNetwork(l.Attrs().Alias, n.Name) {
			n.t.Errorf("host veth %s (%s) left behind", l.Attrs().Name, l.Attrs().Alias)
		}
	}
	if a := n.allocations(); len(a) > 0 {
		n.t.Errorf("allocations left behind: %v", a)
	}
	if r := n.masqRules(); len(r) > 0 {
		n.t.Errorf("masquerade rules left behind: %v", r)
	}
	if ns != "" {
		out := inNS(n.t, ns, "ip", "-o", "link", "show")
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			n.t.Errorf("netns %s has more than lo:\n%s", ns, out)
		}
	}
}

// hasChain reports whether the network's masquerade chain and sets exist:
// DEL leaves them (like the bridge) for the next pod; GC with no valid
// attachment removes them.
func (n *testNet) hasChain() (chain bool, sets []string) {
	n.t.Helper()
	chain = exec.Command("nft", "list", "chain", "inet", masq.TableName, masq.ChainName(n.Name)).Run() == nil
	for _, name := range []string{masq.PodSetName(n.Name, false), masq.PodSetName(n.Name, true),
		masq.NetSetName(n.Name, false), masq.NetSetName(n.Name, true)} {
		if exec.Command("nft", "list", "set", "inet", masq.TableName, name).Run() == nil {
			sets = append(sets, name)
		}
	}
	return chain, sets
}

// libcniConfig wraps a plugin list around confs for libcni and cnitool.
func conflist(t testing.TB, name, version string, plugins ...Conf) []byte {
	t.Helper()
	for _, p := range plugins {
		delete(p, "cniVersion")
		delete(p, "name")
	}
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": name, "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newLibcni returns a libcni client over the net's CNI_PATH with a private
// result cache.
func (n *testNet) newLibcni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(strings.Split(n.CNIPath, ":"), n.t.TempDir(), nil)
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}
