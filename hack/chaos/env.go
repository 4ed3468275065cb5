//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/ipam/store"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/masq"
)

// netEnv is one scenario's private network: its own CNI network name,
// bridge, subnet, IPAM dataDir and network namespaces, all removed by
// cleanup whatever happened.
type netEnv struct {
	bin     string
	id      string // short random tag in every name this env makes
	name    string // CNI network name
	bridge  string
	subnet  string
	dataDir string
	ipMasq  bool

	mu     sync.Mutex
	netnss []string
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randInt(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// randDur is uniform in [0, d).
func randDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(randInt(int64(d)))
}

// newNetEnv makes the env's dataDir; the bridge appears on the first ADD.
// prefixLen is the subnet size (a /22 holds a storm's live attachments).
func newNetEnv(bin, tag string, prefixLen int) (*netEnv, error) {
	id := tag + randHex(3)
	dir, err := os.MkdirTemp("", "podns-chaos-"+id+"-")
	if err != nil {
		return nil, err
	}
	// 10.150-179.x: away from the 10.200+ subnets the integration tests pick.
	second := 150 + randInt(30)
	var subnet string
	switch prefixLen {
	case 22:
		subnet = fmt.Sprintf("10.%d.%d.0/22", second, 4*randInt(64))
	default:
		subnet = fmt.Sprintf("10.%d.%d.0/24", second, randInt(256))
	}
	e := &netEnv{
		bin: bin, id: id, name: "chaos-" + id, bridge: "chz" + id + "br",
		subnet: subnet, dataDir: dir, ipMasq: true,
	}
	record("net", e.name)
	record("bridge", e.bridge)
	record("dir", e.dataDir)
	record("tag", e.id)
	return e, nil
}

// record appends a resource to $CHAOS_MANIFEST, so hack/chaos.sh's trap can
// remove it even if this process is SIGKILLed before its own cleanup.
func record(kind, value string) {
	path := os.Getenv("CHAOS_MANIFEST")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %s\n", kind, value)
	f.Close()
}

// conf is the network config; extra keys (prevResult, valid attachments)
// are merged in.
func (e *netEnv) conf(extra map[string]any) []byte {
	c := map[string]any{
		"cniVersion": "1.1.0", "name": e.name, "type": "podns",
		"bridge": e.bridge, "ipMasq": e.ipMasq,
		"ipam": map[string]any{
			"type": "podns-ipam", "dataDir": e.dataDir,
			"ranges": [][]map[string]string{{{"subnet": e.subnet}}},
		},
	}
	for k, v := range extra {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func (e *netEnv) storeDir() string { return filepath.Join(e.dataDir, e.name) }

// addNetns makes a named netns (ip netns add, as runtimes do).
func (e *netEnv) addNetns(suffix string) (string, error) {
	name := "chz-" + e.id + "-" + suffix
	record("netns", name)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	e.mu.Lock()
	e.netnss = append(e.netnss, name)
	e.mu.Unlock()
	return name, nil
}

func netnsPath(name string) string { return "/var/run/netns/" + name }

// cleanup removes everything the env may have left: host veths of its
// network (by alias), its masquerade rules, netns, bridge and dataDir.
func (e *netEnv) cleanup() {
	if links, err := linkList(); err == nil {
		for _, l := range links {
			if n, _, _, _, ok := link.ParseAlias(l.Attrs().Alias); ok && n == e.name {
				netlink.LinkDel(l)
			}
		}
	}
	masq.Remove(e.name, func(masq.Attachment) bool { return true })
	masq.Prune(e.name)
	e.mu.Lock()
	for _, n := range e.netnss {
		exec.Command("ip", "netns", "del", n).Run()
	}
	e.netnss = nil
	e.mu.Unlock()
	if l, err := netlink.LinkByName(e.bridge); err == nil {
		netlink.LinkDel(l)
	}
	os.RemoveAll(e.dataDir)
}

// att is one attachment: what a runtime would DEL and list in GC.
type att struct {
	cid, ifname, netns string
}

func (a att) key() string { return a.cid + "/" + a.ifname }

// opResult is one plugin invocation.
type opResult struct {
	out    []byte
	stderr string
	err    error
	killed bool // SIGKILLed while it still ran
	dur    time.Duration
	maxRSS int64 // KiB
	cniErr *types.Error
}

func (r opResult) ok() bool { return r.err == nil && !r.killed }

func (r opResult) String() string {
	switch {
	case r.killed:
		return "killed"
	case r.cniErr != nil:
		return fmt.Sprintf("CNI error %d: %s %s", r.cniErr.Code, r.cniErr.Msg, r.cniErr.Details)
	case r.err != nil:
		return fmt.Sprintf("%v: %s", r.err, strings.TrimSpace(r.stderr))
	}
	return "ok"
}

// exec runs the podns plugin for one verb. killAfter > 0 sends SIGKILL that
// long after the start (if it still runs).
func (e *netEnv) exec(ctx context.Context, verb string, a att, stdin []byte, killAfter time.Duration) opResult {
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "podns"))
	cmd.Env = []string{"CNI_COMMAND=" + verb, "CNI_PATH=" + e.bin, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if verb != "GC" && verb != "STATUS" {
		ns := ""
		if a.netns != "" {
			ns = netnsPath(a.netns)
		}
		cmd.Env = append(cmd.Env, "CNI_CONTAINERID="+a.cid, "CNI_IFNAME="+a.ifname, "CNI_NETNS="+ns,
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=chaos;K8S_POD_NAME="+a.cid)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return opResult{err: err}
	}
	var timer *time.Timer
	if killAfter > 0 {
		timer = time.AfterFunc(killAfter, func() { cmd.Process.Kill() })
	}
	err := cmd.Wait()
	r := opResult{out: out.Bytes(), stderr: errb.String(), err: err, dur: time.Since(start)}
	if timer != nil {
		timer.Stop()
	}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
		}
	}
	if err != nil && !r.killed {
		te := &types.Error{}
		if json.Unmarshal(r.out, te) == nil && te.Code != 0 {
			r.cniErr = te
		}
	}
	return r
}

// gc runs GC with the given valid attachments.
func (e *netEnv) gc(ctx context.Context, valid []att, killAfter time.Duration) opResult {
	list := []map[string]string{}
	for _, a := range valid {
		list = append(list, map[string]string{"containerID": a.cid, "ifname": a.ifname})
	}
	return e.exec(ctx, "GC", att{}, e.conf(map[string]any{"cni.dev/valid-attachments": list}), killAfter)
}

// check runs CNI CHECK with the result ADD printed as prevResult.
func (e *netEnv) check(ctx context.Context, a att, result []byte) opResult {
	var prev any
	if err := json.Unmarshal(result, &prev); err != nil {
		return opResult{err: fmt.Errorf("ADD result is not JSON: %v", err)}
	}
	return e.exec(ctx, "CHECK", a, e.conf(map[string]any{"prevResult": prev}), 0)
}

// resultIPs returns the addresses of an ADD result.
func resultIPs(out []byte) ([]string, error) {
	r, err := current.NewResult(out)
	if err != nil {
		return nil, err
	}
	res, err := current.GetResult(r)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, ip := range res.IPs {
		ips = append(ips, ip.Address.IP.String())
	}
	if len(ips) == 0 {
		return nil, errors.New("ADD result has no addresses")
	}
	return ips, nil
}

// observed is what the machine holds for a network, seen from outside.
type observed struct {
	hostVeths map[string]string // attachment key -> host veth name
	allocs    map[string][]string
	rules     map[string]bool
	storeErr  error
	storeSize int64
	files     int
}

// observe reads host links, the IPAM store and nftables for the network.
func (e *netEnv) observe() (*observed, error) {
	o := &observed{hostVeths: map[string]string{}, allocs: map[string][]string{}, rules: map[string]bool{}}
	links, err := linkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if n, id, ifn, _, ok := link.ParseAlias(l.Attrs().Alias); ok && n == e.name {
			o.hostVeths[id+"/"+ifn] = l.Attrs().Name
		}
	}
	if _, err := os.Stat(filepath.Join(e.storeDir(), store.DBFile)); err == nil {
		s, err := store.Open(e.storeDir(), 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		err = s.View(func(tx *store.Tx) error {
			for addr, a := range tx.Allocations() {
				k := a.ContainerID + "/" + a.IfName
				o.allocs[k] = append(o.allocs[k], addr.String())
			}
			return nil
		})
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("read store: %w", err)
		}
		o.storeErr = errors.Join(store.Check(e.storeDir(), 30*time.Second),
			ipam.CheckNetwork(e.conf(nil), 30*time.Second))
		if fi, err := os.Stat(filepath.Join(e.storeDir(), store.DBFile)); err == nil {
			o.storeSize = fi.Size()
		}
	}
	filepath.WalkDir(e.dataDir, func(string, os.DirEntry, error) error { o.files++; return nil })
	as, err := masq.Attachments(e.name)
	if err != nil && !isMissingTable(err) {
		return nil, fmt.Errorf("masquerade rules: %w", err)
	}
	for _, a := range as {
		o.rules[a.ContainerID+"/"+a.IfName] = true
	}
	return o, nil
}

// linkList retries a dump the kernel interrupted because links changed
// meanwhile (other pods are being wired all the time).
func linkList() ([]netlink.Link, error) {
	var err error
	for i := 0; i < 200; i++ {
		var ls []netlink.Link
		if ls, err = netlink.LinkList(); err == nil {
			return ls, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, err
		}
		time.Sleep(time.Duration(5+randInt(20)) * time.Millisecond)
	}
	return nil, err
}

func isMissingTable(err error) bool {
	return errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file or directory")
}

// expectExactly compares what the machine holds with the attachments that
// should exist, returning one problem per difference.
func (e *netEnv) expectExactly(o *observed, want map[string]att, wantIPs map[string][]string) []string {
	var bad []string
	for k := range want {
		if _, ok := o.hostVeths[k]; !ok {
			bad = append(bad, "valid attachment "+k+" lost its host veth")
		}
		if len(o.allocs[k]) != 1 {
			bad = append(bad, fmt.Sprintf("valid attachment %s holds %d addresses, want 1", k, len(o.allocs[k])))
		} else if ips := wantIPs[k]; len(ips) > 0 && ips[0] != o.allocs[k][0] {
			bad = append(bad, fmt.Sprintf("valid attachment %s holds %s, ADD returned %s", k, o.allocs[k][0], ips[0]))
		}
		if e.ipMasq && !o.rules[k] {
			bad = append(bad, "valid attachment "+k+" lost its masquerade rule")
		}
	}
	for k, v := range o.hostVeths {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("leaked host veth %s of %s", v, k))
		}
	}
	for k, v := range o.allocs {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("leaked allocation %v of %s", v, k))
		}
	}
	for k := range o.rules {
		if _, ok := want[k]; !ok {
			bad = append(bad, "leaked masquerade rule of "+k)
		}
	}
	owner := map[string]string{}
	for k, ips := range o.allocs {
		for _, ip := range ips {
			if prev, ok := owner[ip]; ok {
				bad = append(bad, fmt.Sprintf("address %s held by %s and %s", ip, prev, k))
			}
			owner[ip] = k
		}
	}
	if o.storeErr != nil {
		bad = append(bad, fmt.Sprintf("IPAM store consistency check: %v", o.storeErr))
	}
	sort.Strings(bad)
	return bad
}

// netnsLinks lists the non-loopback interfaces in a netns.
func netnsLinks(name string) (map[string]bool, error) {
	out, err := exec.Command("ip", "-n", name, "-j", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -n %s link: %w", name, err)
	}
	var ls []struct {
		IfName string `json:"ifname"`
	}
	if err := json.Unmarshal(out, &ls); err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range ls {
		if l.IfName != "lo" {
			m[l.IfName] = true
		}
	}
	return m, nil
}

// strayGrace is how long a process may take to go before a scan counts it
// as left behind.
const strayGrace = 2 * time.Second

// persisting scans until nothing is found or grace has passed, and returns
// what the last scan found. The plugins and podnsctl leave an heir
// (pkg/heir) that shares their address space, and so their environment,
// and exits just after them, freeing it: a scan made as a process is
// reaped can still see its heir for a few milliseconds (up to 5 ms on this
// 2-core VM, in 25 of 300 podnsctl runs). A process still there after
// grace has outlived its caller.
func persisting(scan func() []string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		left := scan()
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// strayPlugins lists live processes whose environment names one of this
// env's container IDs: a plugin that outlived its kill or its caller.
func (e *netEnv) strayPlugins() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	needle := []byte("CNI_CONTAINERID=" + e.id)
	for _, en := range ents {
		if en.Name()[0] < '0' || en.Name()[0] > '9' {
			continue
		}
		env, err := os.ReadFile("/proc/" + en.Name() + "/environ")
		if err == nil && bytes.Contains(env, needle) {
			out = append(out, en.Name())
		}
	}
	return out
}
