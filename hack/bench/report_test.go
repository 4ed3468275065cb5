//go:build linux

package main

import (
	"strings"
	"testing"
)

// TestLatencyTargetsNameTheFloor: the ADD and DEL target lines give the
// ratio and, when the floor was measured, what podns's VERSION (a bare
// process start and exit) alone is of the reference's median.
func TestLatencyTargetsNameTheFloor(t *testing.T) {
	st := func(ms float64) *Stat { return &Stat{N: 9, Median: ms} }
	r := &Report{Probes: []Probe{
		{Scenario: 1, Group: "bridge+ipMasq", Via: "exec", Op: "ADD", Stats: map[string]*Stat{"podns": st(6), "ref": st(40)}},
		{Scenario: 1, Group: "bridge+ipMasq", Via: "exec", Op: "DEL", Stats: map[string]*Stat{"podns": st(5), "ref": st(100)}},
	}}
	r.checkTargets()
	add, del := r.Targets[0], r.Targets[1]
	if add.Got != "0.150x (6.0 vs 40.0 ms)" || add.Pass == nil || !*add.Pass {
		t.Errorf("ADD target without a floor: %+v", add)
	}
	if !strings.HasPrefix(del.Got, "0.050x") || del.Pass == nil || !*del.Pass {
		t.Errorf("DEL target: %+v", del)
	}
	r.Floors = []Floor{{Name: "bridge VERSION (ref)", Stat: st(3)}, {Name: "podns VERSION (podns)", Stat: st(2)}}
	r.Probes[0].Stats["podns"] = st(6.4)
	r.checkTargets()
	add, del = r.Targets[0], r.Targets[1]
	if add.Got != "0.160x (6.4 vs 40.0 ms); podns VERSION alone 0.050x" || add.Pass == nil || *add.Pass {
		t.Errorf("ADD target with a floor: %+v", add)
	}
	if !strings.HasSuffix(del.Got, "; podns VERSION alone 0.020x") {
		t.Errorf("DEL target with a floor: %+v", del)
	}
}
