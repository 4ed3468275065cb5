//go:build linux

package main

import (
	"testing"
	"time"
)

// TestBaseProbePoolsBothHalves: a probe recorded from its first half of
// samples and brought up to date after the second holds both halves, in
// the place the first record took, and growth reads it.
func TestBaseProbePoolsBothHalves(t *testing.T) {
	podns := &Net{Impl: Impl{Side: "podns"}}
	g := group{name: bridgeGroup + ", own pods only", nets: []*Net{podns}}
	b := &Bench{report: &Report{}}
	ps := newProbeSeries(g.nets)
	for _, ms := range []int{4, 4, 4} { // before the fill
		ps.add[podns].add(time.Duration(ms)*time.Millisecond, nil)
		ps.del[podns].add(time.Duration(ms)*time.Millisecond, nil)
	}
	at := b.record(2, g, viaExec, 0, ps)
	top := newProbeSeries(g.nets)
	for range 6 {
		top.add[podns].add(6*time.Millisecond, nil)
		top.del[podns].add(6*time.Millisecond, nil)
	}
	b.record(2, g, viaExec, 1000, top)
	if g := b.report.growthIn(bridgeGroup, "podns", "ADD", true); g.x != 1.5 {
		t.Fatalf("growth from the first half alone: %v, want 1.5", g.x)
	}
	for _, ms := range []int{6, 6, 6, 6} { // after the drain: the load rose
		ps.add[podns].add(time.Duration(ms)*time.Millisecond, nil)
		ps.del[podns].add(time.Duration(ms)*time.Millisecond, nil)
	}
	b.rerecord(at, g, ps)
	if at != 0 || b.report.Probes[0].Pods != 0 || b.report.Probes[1].Op != "DEL" {
		t.Fatalf("base probe moved: %+v", b.report.Probes)
	}
	for i := range 2 {
		if st := b.report.Probes[at+i].Stats["podns"]; st.N != 7 || st.Median != 6 {
			t.Fatalf("%s base after both halves: n %d median %v, want 7 and 6", b.report.Probes[at+i].Op, st.N, st.Median)
		}
	}
	if g := b.report.growthIn(bridgeGroup, "podns", "DEL", true); g.x != 1 || g.from != 0 || g.to != 1000 {
		t.Fatalf("growth against the pooled base: %+v, want 1x from 0 to 1000", g)
	}
}

// TestSeriesBlocks: samples taken in blocks keep each block's median, in
// order; a block that got no samples is not one, and a single block
// reports none.
func TestSeriesBlocks(t *testing.T) {
	var s series
	add := func(ms ...int) {
		for _, v := range ms {
			s.add(time.Duration(v)*time.Millisecond, nil)
		}
	}
	s.block()
	add(4, 5, 6)
	if st := s.stat(); st.Blocks != nil {
		t.Fatalf("one block: %v, want none", st.Blocks)
	}
	s.block()
	s.block() // nothing sampled in between
	add(8, 9, 7)
	s.block()
	s.add(0, errInterrupted) // an error is no sample
	add(5)
	st := s.stat()
	if len(st.Blocks) != 3 || st.Blocks[0] != 5 || st.Blocks[1] != 8 || st.Blocks[2] != 5 {
		t.Fatalf("blocks %v, want [5 8 5]", st.Blocks)
	}
	if st.N != 7 || st.Median != 6 {
		t.Fatalf("pooled n %d median %v, want 7 and 6", st.N, st.Median)
	}
}
