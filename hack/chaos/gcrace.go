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

// gcRace is scenario 4: workers ADD, CHECK and DEL attachments while GC
// runs over and over with the runtime's valid set: every attachment whose
// ADD has started and whose DEL has not finished. Registration pauses while
// a GC call is in flight, so every ADD that overlaps a GC is in its valid
// set; the ADD and the CHECKs after it must still succeed. Some ADDs are
// SIGKILLed and forgotten without DEL: GC must remove those.
func gcRace(ctx context.Context, bin string, b budget) *report {
	r := newReport("GC vs ADD/DEL")
	e, err := newNetEnv(bin, "gc", 24)
	if !r.checkf(err == nil, "setup", "%v", err) {
		return r
	}
	defer e.cleanup()

	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		gcActive bool
		valid    = map[string]att{}
		stop     atomic.Bool
		gcs      atomic.Int64
		adds     atomic.Int64
		orphans  atomic.Int64
		est      estimator
	)
	register := func(a att) {
		mu.Lock()
		for gcActive {
			cond.Wait()
		}
		valid[a.key()] = a
		mu.Unlock()
	}
	unregister := func(a att) {
		mu.Lock()
		delete(valid, a.key())
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			mu.Lock()
			gcActive = true
			var set []att
			for _, a := range valid {
				set = append(set, a)
			}
			mu.Unlock()
			rg := e.gc(ctx, set, 0)
			mu.Lock()
			gcActive = false
			cond.Broadcast()
			mu.Unlock()
			r.checkf(rg.ok(), "GC succeeds", "%s", rg)
			gcs.Add(1)
			time.Sleep(time.Duration(randInt(50)) * time.Millisecond)
		}
	}()

	workers := b.workers
	if workers > 4 {
		workers = 4
	}
	var nss []string
	var nsMu sync.Mutex
	var orphanList []att
	deadline := time.Now().Add(b.gcrace)
	var ww sync.WaitGroup
	for w := 0; w < workers; w++ {
		ns, err := e.addNetns(fmt.Sprint(w))
		if !r.checkf(err == nil, "setup netns", "%v", err) {
			break
		}
		nsMu.Lock()
		nss = append(nss, ns)
		nsMu.Unlock()
		ww.Add(1)
		go func() {
			defer ww.Done()
			for n := 0; ctx.Err() == nil && time.Now().Before(deadline); n++ {
				a := att{cid: fmt.Sprintf("%s-%d-%d", e.id, w, n), ifname: "eth0", netns: ns}
				if n%4 == 3 {
					// Orphans keep their pod interface until GC removes the
					// host end, so each gets a netns of its own.
					ons, err := e.addNetns(fmt.Sprintf("%d-o%d", w, n))
					if !r.checkf(err == nil, "orphan netns", "%v", err) {
						continue
					}
					a.netns = ons
					nsMu.Lock()
					nss = append(nss, ons)
					nsMu.Unlock()
				}
				register(a)
				if n%4 == 3 {
					// A runtime that crashed mid-ADD and forgot the pod:
					// the attachment leaves the valid set without a DEL.
					e.exec(ctx, "ADD", a, e.conf(nil), randDur(est.typical()*2)+time.Microsecond)
					unregister(a)
					orphans.Add(1)
					nsMu.Lock()
					orphanList = append(orphanList, a)
					nsMu.Unlock()
					continue
				}
				ra := e.exec(ctx, "ADD", a, e.conf(nil), 0)
				adds.Add(1)
				if !r.checkf(ra.ok(), "ADD while GC runs", "%s: %s", a.key(), ra) {
					e.exec(ctx, "DEL", a, e.conf(nil), 0)
					unregister(a)
					continue
				}
				est.add(ra.dur)
				for i := 0; i < 2; i++ {
					rc := e.check(ctx, a, ra.out)
					r.checkf(rc.ok(), "valid attachment intact while GC runs (CHECK)", "%s: %s", a.key(), rc)
				}
				rd := e.exec(ctx, "DEL", a, e.conf(nil), 0)
				r.checkf(rd.ok(), "DEL while GC runs", "%s: %s", a.key(), rd)
				unregister(a)
			}
		}()
	}
	ww.Wait()
	stop.Store(true)
	wg.Wait()

	// One more GC with the (now empty) valid set removes the orphans.
	rg := e.gc(ctx, nil, 0)
	r.checkf(rg.ok(), "final GC", "%s", rg)
	if o, err := e.observe(); r.checkf(err == nil, "observe", "%v", err) {
		r.check("GC removed every orphan and nothing is left", e.expectExactly(o, nil, nil)...)
	}
	for _, ns := range nss {
		got, err := netnsLinks(ns)
		r.checkf(err == nil && len(got) == 0, "no pod interface left", "%s: %v %v", ns, got, err)
	}
	// An orphan whose host veth survived GC: say whether it carries the
	// alias GC identifies podns's links by.
	for _, a := range orphanList {
		if l, err := netlink.LinkByName(link.HostVethName(e.name, a.cid, a.ifname)); err == nil {
			r.check("GC finds every orphaned host veth", fmt.Sprintf("orphan %s: host veth %s left with alias %q (ADD was killed before labelling it; GC cannot tell it is podns's)",
				a.key(), l.Attrs().Name, l.Attrs().Alias))
		}
	}
	r.stat("%d ADDs checked twice each under %d concurrent GCs, %d orphaned ADDs (killed or forgotten) collected by GC", adds.Load(), gcs.Load(), orphans.Load())
	return r
}
