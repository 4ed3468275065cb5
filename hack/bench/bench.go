//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
)

// namePrefix starts every netns, bridge and network the bench creates, so a
// sweep after a crash finds exactly its own leftovers.
const namePrefix = "pbench"

// benchBase is the /16 the bench carves its /21 subnets from; it is used only
// on the bench's own bridges and namespaces.
const benchBase = "10.147.0.0/16"

var errInterrupted = errors.New("interrupted")

// Bench owns every resource a run creates and removes them all at the end.
type Bench struct {
	cfg      Config
	id       string
	prefix   string
	stateDir string
	report   *Report

	stop atomic.Bool
	seq  atomic.Int64

	mu      sync.Mutex
	live    map[*Attachment]via
	nets    []*Net
	procs   map[int]*exec.Cmd
	subnets int
	// extraLinks are bridges made by networks that are not a *Net.
	extraLinks []string
}

func newBench(cfg Config, r *Report) (*Bench, error) {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b)
	bn := &Bench{cfg: cfg, id: id, prefix: namePrefix + id, report: r,
		live: map[*Attachment]via{}, procs: map[int]*exec.Cmd{}}
	bn.stateDir = filepath.Join(stateRoot, bn.prefix)
	if err := os.MkdirAll(bn.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return bn, nil
}

const stateRoot = "/run/podns-bench"

func (b *Bench) stopped() bool { return b.stop.Load() }

// nextSubnet hands out the next /21 of benchBase.
func (b *Bench) nextSubnet() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, base, _ := net.ParseCIDR(benchBase)
	ip := base.IP.To4()
	third := b.subnets * 8
	b.subnets++
	return fmt.Sprintf("%d.%d.%d.0/21", ip[0], ip[1], third)
}

// network creates a fresh network of impl with its own bridge and subnet.
func (b *Bench) network(impl Impl, tag string, ipMasq bool, subnet string) (*Net, error) {
	if subnet == "" {
		subnet = b.nextSubnet()
	}
	k := len(b.nets)
	n, err := newNet(impl, fmt.Sprintf("%s-%s-%s", b.prefix, impl.Side, tag),
		fmt.Sprintf("%s-%d", b.prefix, k), subnet, b.stateDir, ipMasq)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.nets = append(b.nets, n)
	b.mu.Unlock()
	return n, nil
}

// prepare creates a fresh netns for a new attachment (not timed).
func (b *Bench) prepare(n *Net) (*Attachment, error) {
	k := b.seq.Add(1)
	name := fmt.Sprintf("%s-%d", b.prefix, k)
	path, err := newNetns(name)
	if err != nil {
		return nil, err
	}
	return &Attachment{Net: n, ContainerID: fmt.Sprintf("%s%08d", b.prefix, k), NetnsName: name, NetnsPath: path, IfName: "eth0"}, nil
}

// add runs ADD for a prepared attachment. The attachment is registered before
// ADD runs: every ADD, even a failed one, gets its DEL.
func (b *Bench) add(a *Attachment, how via) (time.Duration, error) {
	b.mu.Lock()
	b.live[a] = how
	b.mu.Unlock()
	d, out, err := a.run("ADD", how)
	if err == nil {
		a.IPs = resultIPs(out)
	}
	return d, err
}

// del runs DEL and, when it succeeds, drops the attachment and its netns.
func (b *Bench) del(a *Attachment, how via) (time.Duration, error) {
	d, _, err := a.run("DEL", how)
	if err != nil {
		return d, err
	}
	b.mu.Lock()
	delete(b.live, a)
	b.mu.Unlock()
	if a.NetnsName != "" {
		if err := delNetns(a.NetnsName); err != nil {
			return d, err
		}
	}
	return d, nil
}

// attach = prepare + add.
func (b *Bench) attach(n *Net, how via) (*Attachment, time.Duration, error) {
	a, err := b.prepare(n)
	if err != nil {
		return nil, 0, err
	}
	d, err := b.add(a, how)
	return a, d, err
}

// parallel runs f for i in [0,n) on at most workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// fill attaches pods to n until pods holds target of them, with progress.
// The first failure stops the fill (not the run): a network that does not
// hold the pods it claims is not measured.
func (b *Bench) fill(n *Net, pods *[]*Attachment, target int, label string) error {
	need := target - len(*pods)
	if need <= 0 {
		return nil
	}
	p := newProgress(label, need)
	var mu sync.Mutex
	var firstErr error
	var failed atomic.Bool
	parallel(need, b.cfg.FillWorkers, func(int) {
		if b.stopped() || failed.Load() {
			return
		}
		a, _, err := b.attach(n, viaExec)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			failed.Store(b.cfg.StopOnFillError)
		}
		if a != nil && err == nil {
			*pods = append(*pods, a)
		}
		p.step()
	})
	p.done()
	if firstErr != nil {
		return fmt.Errorf("fill %s to %d pods: %w", n.Name, target, firstErr)
	}
	if b.stopped() {
		return errInterrupted
	}
	if len(*pods) < target {
		return fmt.Errorf("fill %s: only %d of %d pods attached", n.Name, len(*pods), target)
	}
	return nil
}

// teardown removes a filled network's pods the quick way, which is not
// measured: delete every pod netns (the kernel removes both veth ends), then
// let the plugin's GC drop rules and allocations (podns: CNI GC with an empty
// valid-attachments list), or for the reference (whose GC does nothing)
// remove its masquerade chains in one iptables-restore and its host-local
// files. Anything GC leaves is then DEL'd one by one and reported.
func (b *Bench) teardown(n *Net, pods *[]*Attachment) {
	list := *pods
	if len(list) == 0 {
		return
	}
	t0 := time.Now()
	ids := map[string]bool{}
	parallel(len(list), b.cfg.FillWorkers, func(i int) {
		if err := delNetns(list[i].NetnsName); err != nil {
			warnf("teardown: %v", err)
		}
	})
	for _, a := range list {
		ids[a.ContainerID] = true
	}
	how := "GC"
	if n.Impl.Main == "podns" {
		if err := cniGC(n); err != nil {
			warnf("teardown %s: GC: %v", n.Name, err)
		}
	} else {
		how = "iptables-restore + rm"
		sweepIPTables(n.Name)
		_ = os.RemoveAll(filepath.Join(n.DataDir, n.Name))
	}
	leftRules, leftIPAM := ruleLines(n), ipamRefs(n, ids)
	b.mu.Lock()
	for _, a := range list {
		delete(b.live, a)
	}
	b.mu.Unlock()
	if leftRules > 0 || leftIPAM > 0 {
		warnf("teardown %s: %s left %d rule lines and %d IPAM entries; DEL'ing each pod", n.Name, how, leftRules, leftIPAM)
		for _, a := range list {
			a.NetnsName = ""
			a.NetnsPath = ""
		}
		b.drain(pods, "DEL the pods of "+n.Impl.Label)
	}
	// The kernel tears the netns down in the background; wait for the host
	// veths to go so the next scenario does not measure that work.
	for i := 0; i < 600 && bridgePorts(n.Bridge) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	b.report.Teardowns = append(b.report.Teardowns, Teardown{Side: n.Impl.Side, Label: n.Impl.Label, Pods: len(list), How: how,
		Seconds: time.Since(t0).Seconds(), LeftRules: leftRules, LeftIPAM: leftIPAM})
	logf("  removed %d pods of %s in %.1f s (%s; left by it: %d rule lines, %d IPAM entries)", len(list), n.Impl.Label, time.Since(t0).Seconds(), how, leftRules, leftIPAM)
	*pods = nil
}

// Teardown records the unmeasured clean-up of a filled network, and what the
// plugin's GC left behind (should be nothing).
type Teardown struct {
	Side      string  `json:"side"`
	Label     string  `json:"label,omitempty"` // the side's network (bridge or routed)
	Pods      int     `json:"pods"`
	How       string  `json:"how"`
	Seconds   float64 `json:"seconds"`
	LeftRules int     `json:"left_rules"`
	LeftIPAM  int     `json:"left_ipam"`
}

// cniGC sends CNI GC with an empty valid-attachments list: every attachment
// of the network goes.
func cniGC(n *Net) error {
	var conf map[string]any
	if err := json.Unmarshal(n.Conf, &conf); err != nil {
		return err
	}
	conf["cniVersion"] = "1.1.0"
	conf["cni.dev/valid-attachments"] = []any{}
	data, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	c := exec.Command(filepath.Join(n.Impl.Dir, n.Impl.Main))
	c.Env = []string{"CNI_COMMAND=GC", "CNI_PATH=" + n.Impl.Dir, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	c.Stdin = bytes.NewReader(data)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// drain detaches every pod in pods.
func (b *Bench) drain(pods *[]*Attachment, label string) {
	list := *pods
	if len(list) == 0 {
		return
	}
	p := newProgress(label, len(list))
	parallel(len(list), b.cfg.FillWorkers, func(i int) {
		a := list[i]
		if _, err := b.del(a, viaExec); err != nil {
			warnf("drain: %v", err)
		}
		p.step()
	})
	p.done()
	*pods = nil
}

// cleanup removes everything the run created; it is safe to call twice.
func (b *Bench) cleanup() {
	b.mu.Lock()
	var live []*Attachment
	hows := map[*Attachment]via{}
	for a, how := range b.live {
		live = append(live, a)
		hows[a] = how
	}
	procs := b.procs
	b.procs = map[int]*exec.Cmd{}
	b.mu.Unlock()
	for _, c := range procs {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	if len(live) > 0 {
		logf("cleanup: DEL of %d attachments still present", len(live))
		parallel(len(live), 4, func(i int) {
			a := live[i]
			if _, err := b.del(a, hows[a]); err != nil {
				warnf("cleanup: %v", err)
				_ = delNetns(a.NetnsName)
			}
		})
	}
	bridges := append([]string{}, b.extraLinks...)
	for _, n := range b.nets {
		bridges = append(bridges, n.Bridge)
		removeCNICache(n.Name)
	}
	for _, br := range bridges {
		if l, err := netlink.LinkByName(br); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
	sweepPrefix(b.prefix)
	_ = os.RemoveAll(b.stateDir)
}

const cacheResultsDir = "/var/lib/cni/results"

// removeCNICache drops libcni's cached results for one of the bench's networks.
func removeCNICache(netName string) {
	matches, _ := filepath.Glob(filepath.Join(cacheResultsDir, netName+"-*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// ownedRe matches the names of any bench run: the prefix, 4 hex digits of
// run ID, then a dash. Other people's names that merely start alike (other
// tests on this machine use pn*, pnb*) never match.
var ownedRe = regexp.MustCompile("^" + namePrefix + "[0-9a-f]{4}-")

// owned reports whether name belongs to the bench run(s) prefix selects.
func owned(name, prefix string) bool {
	return strings.HasPrefix(name, prefix) && ownedRe.MatchString(name)
}

// sweepPrefix removes netns, links, masquerade rules and state left by a run
// whose names start with prefix (a crashed run, or leftovers of this one).
func sweepPrefix(prefix string) {
	entries, _ := os.ReadDir(netnsRunDir)
	for _, e := range entries {
		if owned(e.Name(), prefix) {
			if err := delNetns(e.Name()); err != nil {
				warnf("sweep: %v", err)
			}
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if owned(l.Attrs().Name, prefix) {
			_ = netlink.LinkDel(l)
		}
	}
	sweepIPTables(prefix)
	sweepNftChains(prefix)
	matches, _ := filepath.Glob(filepath.Join(cacheResultsDir, prefix+"*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
	dirs, _ := filepath.Glob(filepath.Join(stateRoot, prefix+"*"))
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// sweepIPTables deletes the reference plugins' per-pod masquerade chains
// whose comment names a network starting with prefix, and the jumps to them,
// in one iptables-restore transaction (one exec however many pods).
func sweepIPTables(prefix string) {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return
	}
	chains := map[string]bool{}
	var script strings.Builder
	script.WriteString("*nat\n")
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "-A POSTROUTING ") || !strings.Contains(line, `name: \"`+prefix) {
			continue
		}
		f := strings.Fields(line)
		for i := range f {
			if f[i] == "-j" && i+1 < len(f) {
				chains[f[i+1]] = true
			}
		}
		script.WriteString("-D" + strings.TrimPrefix(line, "-A") + "\n")
	}
	if len(chains) == 0 {
		return
	}
	var names []string
	for c := range chains {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		script.WriteString("-F " + c + "\n")
	}
	for _, c := range names {
		script.WriteString("-X " + c + "\n")
	}
	script.WriteString("COMMIT\n")
	c := exec.Command("iptables-restore", "--noflush", "-w")
	c.Stdin = strings.NewReader(script.String())
	if out, err := c.CombinedOutput(); err != nil {
		warnf("sweep: iptables-restore: %v: %s", err, strings.TrimSpace(string(out)))
	}
}

// sweepNftChains deletes nftables chains named after the bench's networks
// (podns keeps a per-network masquerade chain in its own table).
func sweepNftChains(prefix string) {
	out, err := exec.Command("nft", "list", "chains").Output()
	if err != nil {
		return
	}
	var family, table string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "table":
			family, table = f[1], f[2]
		case len(f) >= 2 && f[0] == "chain" && owned(strings.TrimPrefix(f[1], "masq-"), prefix) && table != "":
			_ = exec.Command("nft", "flush", "chain", family, table, f[1]).Run()
			if err := exec.Command("nft", "delete", "chain", family, table, f[1]).Run(); err != nil {
				warnf("sweep: delete nft chain %s %s %s: %v", family, table, f[1], err)
			}
		}
	}
	sweepPodnsSets(prefix)
}

// sweepPodnsSets deletes the address sets podns keeps per network in its
// table (a DEL leaves them for the network's next pod; CNI GC removes them),
// then the table if nothing else is left in it.
func sweepPodnsSets(prefix string) {
	out, err := exec.Command("nft", "list", "table", "inet", "podns").Output()
	if err != nil {
		return // no table
	}
	left := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "set" && f[0] != "chain") {
			continue
		}
		name := f[1]
		net := name
		for _, p := range []string{"pods4-", "pods6-", "nets4-", "nets6-"} {
			net = strings.TrimPrefix(net, p)
		}
		if f[0] == "set" && net != name && owned(net, prefix) {
			if err := exec.Command("nft", "delete", "set", "inet", "podns", name).Run(); err != nil {
				warnf("sweep: delete nft set inet podns %s: %v", name, err)
				left++
			}
			continue
		}
		left++
	}
	if left == 0 {
		_ = exec.Command("nft", "delete", "table", "inet", "podns").Run()
	}
}
