//go:build linux

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/link"
)

// storm is scenario 1: workers run ADDs and DELs concurrently, each
// SIGKILLed at a uniformly random instant over a typical run with
// probability killP; some completed ADDs survive. Then the runtime's
// recovery: DEL of every started attachment that is not a survivor, and GC
// with the survivors as the valid set. Afterwards exactly the survivors
// remain, intact, and nothing else.
func storm(ctx context.Context, bin string, b budget) *report {
	r := newReport("kill-9 storm")
	e, err := newNetEnv(bin, "st", 22)
	if !r.checkf(err == nil, "setup", "%v", err) {
		return r
	}
	defer e.cleanup()

	var (
		est       = map[string]*estimator{"ADD": {}, "DEL": {}}
		mu        sync.Mutex
		pending   = map[string]att{}      // ADD started, no successful DEL yet
		live      = map[string][]string{} // ADD succeeded, DEL not started: key -> IPs
		owner     = map[string]string{}   // IP -> live attachment
		survive   = map[string]att{}
		results   = map[string][]byte{}
		failCodes = map[uint]int{}
		ops       atomic.Int64
		kills     atomic.Int64
		failures  atomic.Int64
	)
	const killP = 0.85
	deadline := time.Now().Add(b.storm)
	done := func() bool {
		if ctx.Err() != nil {
			return true
		}
		if b.stormKills > 0 && kills.Load() < int64(b.stormKills) {
			return time.Now().After(deadline.Add(b.storm * 3)) // give up eventually
		}
		return time.Now().After(deadline)
	}
	killAfter := func(verb string) time.Duration {
		if float64(randInt(1000))/1000 >= killP {
			return 0
		}
		return randDur(est[verb].typical()) + time.Microsecond
	}

	// Calibrate on a scratch attachment so the first kills land well.
	ns0, err := e.addNetns("cal")
	if !r.checkf(err == nil, "setup netns", "%v", err) {
		return r
	}
	for i := 0; i < 3; i++ {
		a := att{cid: fmt.Sprintf("%s-cal-%d", e.id, i), ifname: "eth0", netns: ns0}
		ra := e.exec(ctx, "ADD", a, e.conf(nil), 0)
		rd := e.exec(ctx, "DEL", a, e.conf(nil), 0)
		if !r.checkf(ra.ok() && rd.ok(), "calibration ADD/DEL", "ADD %s, DEL %s", ra, rd) {
			return r
		}
		est["ADD"].add(ra.dur)
		est["DEL"].add(rd.dur)
	}

	// addLive records a completed ADD's addresses and reports any that a
	// live attachment already holds.
	addLive := func(a att, out []byte) bool {
		ips, err := resultIPs(out)
		if !r.checkf(err == nil, "ADD result", "%s: %v", a.key(), err) {
			return false
		}
		mu.Lock()
		var dup []string
		for _, ip := range ips {
			if o, ok := owner[ip]; ok {
				dup = append(dup, fmt.Sprintf("%s handed to %s while %s holds it", ip, a.key(), o))
			}
			owner[ip] = a.key()
		}
		live[a.key()] = ips
		results[a.key()] = out
		mu.Unlock()
		r.check("no address handed to two live attachments", dup...)
		return true
	}
	worker := func(w int, ns string) {
		kept := 0
		for n := 0; !done(); n++ {
			if kept < 6 && randInt(8) == 0 {
				// A survivor: the only attachment of its own netns (a pod's
				// default route belongs to its first interface), added
				// while the other workers' operations are being killed.
				sns, err := e.addNetns(fmt.Sprintf("%d-s%d", w, kept))
				if !r.checkf(err == nil, "survivor netns", "%v", err) {
					continue
				}
				a := att{cid: fmt.Sprintf("%s-%d-s%d", e.id, w, kept), ifname: "eth0", netns: sns}
				kept++
				mu.Lock()
				pending[a.key()] = a
				mu.Unlock()
				ra := e.exec(ctx, "ADD", a, e.conf(nil), 0)
				ops.Add(1)
				if r.checkf(ra.ok(), "survivor ADD", "%s: %s", a.key(), ra) && addLive(a, ra.out) {
					mu.Lock()
					survive[a.key()] = a
					mu.Unlock()
				}
				continue
			}
			a := att{cid: fmt.Sprintf("%s-%d-%d", e.id, w, n), ifname: fmt.Sprintf("e%d", n), netns: ns}
			mu.Lock()
			pending[a.key()] = a
			mu.Unlock()
			ra := e.exec(ctx, "ADD", a, e.conf(nil), killAfter("ADD"))
			ops.Add(1)
			if ra.killed {
				kills.Add(1)
			} else {
				est["ADD"].add(ra.dur)
			}
			if ra.ok() {
				addLive(a, ra.out)
			} else if !ra.killed {
				// A failed ADD is fine only with a CNI error; the DEL follows.
				if r.checkf(ra.cniErr != nil, "ADD fails cleanly", "%s: %s", a.key(), ra) {
					mu.Lock()
					failCodes[ra.cniErr.Code]++
					mu.Unlock()
				}
				failures.Add(1)
			}
			// The runtime DELs every ADD it started, killed or not.
			mu.Lock()
			for _, ip := range live[a.key()] {
				delete(owner, ip)
			}
			delete(live, a.key())
			mu.Unlock()
			// A runtime retries a DEL until it succeeds; here up to three
			// times, each attempt killable, and recovery does the rest.
			for attempt := 0; attempt < 3; attempt++ {
				rd := e.exec(ctx, "DEL", a, e.conf(nil), killAfter("DEL"))
				ops.Add(1)
				if rd.killed {
					kills.Add(1)
					continue
				}
				est["DEL"].add(rd.dur)
				if r.checkf(rd.ok(), "DEL succeeds", "%s: %s", a.key(), rd) {
					mu.Lock()
					delete(pending, a.key())
					mu.Unlock()
				}
				break
			}
		}
	}
	var wg sync.WaitGroup
	nss := make([]string, b.workers)
	for w := range nss {
		if nss[w], err = e.addNetns(fmt.Sprint(w)); !r.checkf(err == nil, "setup netns", "%v", err) {
			return r
		}
	}
	start := time.Now()
	for w := range nss {
		wg.Add(1)
		go func() { defer wg.Done(); worker(w, nss[w]) }()
	}
	wg.Wait()
	stormTook := time.Since(start)

	// Recovery, as a runtime does it after a crash: DEL what was started
	// and is not wanted, then GC with the valid set.
	var todo []att
	for k, a := range pending {
		if _, ok := survive[k]; !ok {
			todo = append(todo, a)
		}
	}
	recovered := len(todo)
	work := make(chan att)
	var rw sync.WaitGroup
	for i := 0; i < b.workers; i++ {
		rw.Add(1)
		go func() {
			defer rw.Done()
			for a := range work {
				rd := e.exec(ctx, "DEL", a, e.conf(nil), 0)
				r.checkf(rd.ok(), "recovery DEL", "%s: %s", a.key(), rd)
			}
		}()
	}
	for _, a := range todo {
		work <- a
	}
	close(work)
	rw.Wait()
	var valid []att
	for _, a := range survive {
		valid = append(valid, a)
	}
	rg := e.gc(ctx, valid, 0)
	r.checkf(rg.ok(), "GC with the survivors", "%s", rg)

	o, err := e.observe()
	if r.checkf(err == nil, "observe", "%v", err) {
		r.check("after recovery exactly the survivors remain, store consistent", e.expectExactly(o, survive, live)...)
	}
	for k, a := range survive {
		rc := e.check(ctx, a, results[k])
		r.checkf(rc.ok(), "survivor passes CNI CHECK", "%s: %s", k, rc)
	}
	checkNS := map[string]int{}
	for w, ns := range nss {
		checkNS[ns] = w
	}
	for _, a := range survive {
		checkNS[a.netns] = -1
	}
	for ns, w := range checkNS {
		got, err := netnsLinks(ns)
		if !r.checkf(err == nil, "list pod links", "%v", err) {
			continue
		}
		var bad []string
		want := map[string]bool{}
		for _, a := range survive {
			if a.netns == ns {
				want[a.ifname] = true
				if !got[a.ifname] {
					bad = append(bad, fmt.Sprintf("%s: survivor %s lost %s", ns, a.cid, a.ifname))
				}
			}
		}
		for ifn := range got {
			if !want[ifn] {
				bad = append(bad, fmt.Sprintf("%s (worker %d): leaked pod interface %s", ns, w, ifn))
			}
		}
		r.check("pod netns holds exactly its survivors", bad...)
	}
	r.check("no plugin process outlived the storm", prefixAll("stray plugin pid ", persisting(e.strayPlugins, strayGrace))...)

	// Finally the survivors go too, and the network is back to nothing.
	for k, a := range survive {
		rd := e.exec(ctx, "DEL", a, e.conf(nil), 0)
		r.checkf(rd.ok(), "final DEL", "%s: %s", k, rd)
		if _, err := netlink.LinkByName(link.HostVethName(e.name, a.cid, a.ifname)); err == nil {
			r.check("final DEL removes host veth", k+" still has its host veth")
		}
	}
	if o, err := e.observe(); r.checkf(err == nil, "observe", "%v", err) {
		r.check("baseline after final DEL", e.expectExactly(o, nil, nil)...)
	}
	r.stat("%d operations in %s with %d workers, %d SIGKILLed mid-run, %d ADDs failed with a CNI error (by code: %v), %d recovery DELs, %d survivors kept through GC",
		ops.Load(), stormTook.Round(time.Second), b.workers, kills.Load(), failures.Load(), failCodes, recovered, len(survive))
	a50, a95 := durStats(est["ADD"].d)
	r.stat("unkilled ADD p50 %s p95 %s (last 64)", a50.Round(time.Millisecond), a95.Round(time.Millisecond))
	return r
}

func prefixAll(p string, s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = p + v
	}
	return out
}
