//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"
)

// ParallelRun is one burst of scenario 3: conc ADDs released at once, then
// conc DELs at once.
type ParallelRun struct {
	Side       string  `json:"side"`
	Conc       int     `json:"conc"`
	Round      int     `json:"round"`
	AddWallMS  float64 `json:"add_wall_ms"`
	DelWallMS  float64 `json:"del_wall_ms"`
	AddErrors  int     `json:"add_errors"`
	DelErrors  int     `json:"del_errors"`
	Duplicates int     `json:"duplicate_addresses"`
	// Leftovers after every DEL returned: host ports still on the bridge,
	// attachments of the burst the IPAM still holds, and masquerade rule
	// lines more than before the burst.
	LeftPorts  int    `json:"left_ports"`
	LeftIPAM   int    `json:"left_ipam"`
	LeftRules  int    `json:"left_rules"`
	FirstError string `json:"first_error,omitempty"`
	// SettleSeconds is the wait before the ADDs for the CPUs to go quiet.
	SettleSeconds float64 `json:"settle_seconds,omitempty"`
}

func (b *Bench) scenarioParallel() error {
	logf("scenario 3: %v ADDs at once, then DELs at once", b.cfg.Conc)
	var nets []*Net
	for _, impl := range b.cfg.impls.bridge {
		if impl.Side == "deb" {
			continue
		}
		n, err := b.network(impl, "par", true, "")
		if err != nil {
			return err
		}
		nets = append(nets, n)
	}
	for _, conc := range b.cfg.Conc {
		var err error
		interleave(b.cfg.Rounds, nets, b.stopped, func(round int, n *Net) {
			if err != nil {
				return
			}
			var r ParallelRun
			r, err = b.burst(n, conc)
			r.Round = round
			b.report.Parallel = append(b.report.Parallel, r)
			logf("  %-6s %2d at once: ADD %.0f ms, DEL %.0f ms, errors %d/%d, duplicates %d, leftovers %d/%d/%d",
				n.Impl.Side, conc, r.AddWallMS, r.DelWallMS, r.AddErrors, r.DelErrors, r.Duplicates, r.LeftPorts, r.LeftIPAM, r.LeftRules)
		})
		if err != nil {
			return err
		}
		if b.stopped() {
			return errInterrupted
		}
	}
	return nil
}

// burst releases conc ADDs at the same instant, then conc DELs.
func (b *Bench) burst(n *Net, conc int) (ParallelRun, error) {
	r := ParallelRun{Side: n.Impl.Side, Conc: conc}
	rules0 := ruleLines(n)
	atts := make([]*Attachment, conc)
	for i := range atts {
		a, err := b.prepare(n)
		if err != nil {
			for _, a := range atts[:i] {
				_ = delNetns(a.NetnsName)
			}
			return r, err
		}
		atts[i] = a
	}
	errs := make([]error, conc)
	release := func(f func(i int)) time.Duration {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range atts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				f(i)
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		return time.Since(t0)
	}
	// The previous burst's namespaces are still being torn down by the
	// kernel in the background (a kworker busy for a second or more after
	// 64 DELs); a burst released into that measures the last one, often the
	// other side's, not this plugin.
	r.SettleSeconds = b.settle(500*time.Millisecond, 3*time.Second).Seconds()
	r.AddWallMS = ms(release(func(i int) { _, errs[i] = b.add(atts[i], viaExec) }))
	seen := map[string]bool{}
	for i, a := range atts {
		if errs[i] != nil {
			r.AddErrors++
			if r.FirstError == "" {
				r.FirstError = errs[i].Error()
			}
		}
		for _, ip := range a.IPs {
			if seen[ip] {
				r.Duplicates++
			}
			seen[ip] = true
		}
	}
	r.DelWallMS = ms(release(func(i int) { _, errs[i] = b.del(atts[i], viaExec) }))
	for _, err := range errs {
		if err != nil {
			r.DelErrors++
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
		}
	}
	r.LeftPorts = bridgePorts(n.Bridge)
	ids := map[string]bool{}
	for _, a := range atts {
		ids[a.ContainerID] = true
	}
	r.LeftIPAM = ipamRefs(n, ids)
	r.LeftRules = ruleLines(n) - rules0
	return r, nil
}

// bridgePorts counts the links enslaved to a bridge.
func bridgePorts(bridge string) int {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return 0
	}
	links, err := netlink.LinkList()
	if err != nil {
		return 0
	}
	c := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			c++
		}
	}
	return c
}

// ipamRefs counts the attachments of ids that a network's IPAM still holds,
// without knowing its schema: host-local keeps one file per address holding
// the container ID; a bbolt store is searched key by key and value by value.
// (Free lists and cursors name no container, so they do not count.)
func ipamRefs(n *Net, ids map[string]bool) int {
	found := map[string]bool{}
	note := func(b []byte) {
		for _, m := range idRe.FindAll(b, -1) {
			if ids[string(m)] {
				found[string(m)] = true
			}
		}
	}
	_ = filepath.Walk(n.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		base := info.Name()
		switch {
		case net.ParseIP(base) != nil:
			if b, err := os.ReadFile(path); err == nil {
				note(b)
			}
		case strings.HasPrefix(base, "last_reserved_ip"), strings.HasSuffix(base, ".lock"), base == "lock":
		default:
			boltScan(path, note)
		}
		return nil
	})
	return len(found)
}

// idRe matches the container IDs the bench makes: prefix, 4 hex, 8 digits.
var idRe = regexp.MustCompile(namePrefix + `[0-9a-f]{4}[0-9]{8}`)

func boltScan(path string, note func([]byte)) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return
	}
	defer db.Close()
	var scan func(bk *bolt.Bucket)
	scan = func(bk *bolt.Bucket) {
		_ = bk.ForEach(func(k, v []byte) error {
			note(k)
			if v == nil {
				if sub := bk.Bucket(k); sub != nil {
					scan(sub)
				}
				return nil
			}
			note(v)
			return nil
		})
	}
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, bk *bolt.Bucket) error {
			scan(bk)
			return nil
		})
	})
}

var ipv4Re = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// ruleLines counts lines of the whole nftables ruleset (which includes
// iptables-nft's rules) naming an address of the network's subnet: whatever
// keys a plugin uses, a per-pod masquerade rule names the pod's address.
// A prefix (10.147.8.0/21) is the network's, not a pod's: podns keeps its
// network's subnet set from the first ADD until GC, as it keeps the bridge.
func ruleLines(n *Net) int {
	out, err := runOut("nft", "list", "ruleset")
	if err != nil {
		return 0
	}
	c := 0
	for _, line := range strings.Split(out, "\n") {
		for _, loc := range ipv4Re.FindAllStringIndex(line, -1) {
			if loc[1] < len(line) && line[loc[1]] == '/' {
				continue
			}
			if ip := net.ParseIP(line[loc[0]:loc[1]]); ip != nil && n.Subnet.Contains(ip) {
				c++
				break
			}
		}
	}
	return c
}

func runOut(name string, args ...string) (string, error) {
	out, err := execCommand(name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}
