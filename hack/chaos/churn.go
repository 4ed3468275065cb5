//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// churn is scenario 2: cycles of 32 pods ADDed at once and DELed at once,
// for a fixed time. After every cycle the network's host links,
// allocations, masquerade rules, files and store size are back at the
// baseline taken after the first cycle, and the harness holds no more open
// files; ADD latency and plugin RSS do not drift between the first and
// the last cycles.
func churn(ctx context.Context, bin string, b budget) *report {
	r := newReport("churn soak")
	e, err := newNetEnv(bin, "ch", 24)
	if !r.checkf(err == nil, "setup", "%v", err) {
		return r
	}
	defer e.cleanup()
	const pods = 32
	nss := make([]string, pods)
	for i := range nss {
		if nss[i], err = e.addNetns(fmt.Sprint(i)); !r.checkf(err == nil, "setup netns", "%v", err) {
			return r
		}
	}
	type cycleStats struct {
		lat []time.Duration
		rss []int64
	}
	var cycles []cycleStats
	var base *observed
	baseFDs := 0
	deadline := time.Now().Add(b.churn)
	for c := 0; ctx.Err() == nil && (c < 3 || time.Now().Before(deadline)); c++ {
		var st cycleStats
		var mu sync.Mutex
		var wg sync.WaitGroup
		atts := make([]att, pods)
		for i := range atts {
			atts[i] = att{cid: fmt.Sprintf("%s-%d-%d", e.id, c, i), ifname: "eth0", netns: nss[i]}
		}
		ips := map[string]string{}
		var dup []string
		for _, a := range atts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ra := e.exec(ctx, "ADD", a, e.conf(nil), 0)
				if !r.checkf(ra.ok(), "ADD", "cycle %d %s: %s", c, a.key(), ra) {
					return
				}
				got, err := resultIPs(ra.out)
				r.checkf(err == nil, "ADD result", "%v", err)
				mu.Lock()
				st.lat = append(st.lat, ra.dur)
				st.rss = append(st.rss, ra.maxRSS)
				for _, ip := range got {
					if o, ok := ips[ip]; ok {
						dup = append(dup, fmt.Sprintf("cycle %d: %s given to %s and %s", c, ip, o, a.key()))
					}
					ips[ip] = a.key()
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		r.check("32 concurrent ADDs get distinct addresses", dup...)
		for _, a := range atts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rd := e.exec(ctx, "DEL", a, e.conf(nil), 0)
				r.checkf(rd.ok(), "DEL", "cycle %d %s: %s", c, a.key(), rd)
			}()
		}
		wg.Wait()
		o, err := e.observe()
		if !r.checkf(err == nil, "observe", "%v", err) {
			break
		}
		fds := countFDs()
		r.check(fmt.Sprintf("cycle leaves no link, allocation or rule"), e.expectExactly(o, nil, nil)...)
		if base == nil {
			base, baseFDs = o, fds
		} else {
			var bad []string
			if o.files != base.files {
				bad = append(bad, fmt.Sprintf("cycle %d: %d files in dataDir, baseline %d", c, o.files, base.files))
			}
			// bbolt keeps freed pages: the file may grow by its free list
			// settling, never with the number of cycles.
			if o.storeSize > 2*base.storeSize {
				bad = append(bad, fmt.Sprintf("cycle %d: store %d bytes, baseline %d", c, o.storeSize, base.storeSize))
			}
			if fds > baseFDs+2 {
				bad = append(bad, fmt.Sprintf("cycle %d: harness has %d open files, baseline %d", c, fds, baseFDs))
			}
			r.check("cycle returns to baseline (files, store size, open files)", bad...)
		}
		cycles = append(cycles, st)
	}
	if len(cycles) < 3 {
		r.check("enough cycles", fmt.Sprintf("only %d cycles ran", len(cycles)))
		return r
	}
	// Drift: the first two cycles against the last two. The machine is
	// shared, so latency gets a generous bound; RSS a tight one.
	pick := func(cs []cycleStats) (lat []time.Duration, rss []time.Duration) {
		for _, c := range cs {
			lat = append(lat, c.lat...)
			for _, v := range c.rss {
				rss = append(rss, time.Duration(v))
			}
		}
		return
	}
	fl, fr := pick(cycles[:2])
	ll, lr := pick(cycles[len(cycles)-2:])
	fl50, _ := durStats(fl)
	ll50, ll95 := durStats(ll)
	fr50, _ := durStats(fr)
	lr50, _ := durStats(lr)
	r.checkf(ll50 <= 3*fl50+200*time.Millisecond, "ADD latency does not drift",
		"median ADD %s in the last cycles, %s in the first", ll50, fl50)
	// A short-lived Go process's peak RSS moves with when its GC runs;
	// growth with the number of cycles is what this catches.
	r.checkf(lr50 <= fr50+fr50/2+2048, "plugin RSS does not drift",
		"median max RSS %d KiB in the last cycles, %d KiB in the first", lr50, fr50)
	r.stat("%d cycles of %d pods; ADD p50 first %s last %s (p95 %s); plugin max RSS p50 first %d KiB last %d KiB; store %d bytes",
		len(cycles), pods, fl50.Round(time.Millisecond), ll50.Round(time.Millisecond), ll95.Round(time.Millisecond),
		int64(fr50), int64(lr50), base.storeSize)
	return r
}

func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
