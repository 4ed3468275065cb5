//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Report is everything one run measured; -o json prints it, and `report` and
// `plot` rebuild the tables and the figure from it.
type Report struct {
	Mode       string        `json:"mode"`
	Started    time.Time     `json:"started"`
	Seconds    float64       `json:"seconds"`
	Host       Host          `json:"host"`
	Impls      []Impl        `json:"impls"`
	SelfCheck  bool          `json:"self_check,omitempty"`
	Notes      []string      `json:"notes,omitempty"`
	Floors     []Floor       `json:"floors,omitempty"`
	Probes     []Probe       `json:"probes,omitempty"`
	Fills      []Fill        `json:"fills,omitempty"`
	Teardowns  []Teardown    `json:"teardowns,omitempty"`
	Parallel   []ParallelRun `json:"parallel,omitempty"`
	Namespaces []NSCost      `json:"namespaces,omitempty"`
	Sandbox    []SandboxRow  `json:"sandbox,omitempty"`
	Targets    []Target      `json:"targets,omitempty"`
}

// Host describes where the numbers come from; load shows the noise.
type Host struct {
	Kernel    string  `json:"kernel"`
	CPUs      int     `json:"cpus"`
	Load1     float64 `json:"load1_start"`
	Load1End  float64 `json:"load1_end"`
	GoVersion string  `json:"go"`
	Commit    string  `json:"commit,omitempty"`
}

// Target is one line of issue 6's "Targets", checked from the run's output.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	// Pass is nil when the run did not measure it.
	Pass *bool `json:"pass"`
}

// table is rendered as aligned text or as markdown.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (t table) text(w io.Writer) {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			if len(c) > width[i] {
				width[i] = len(c)
			}
		}
	}
	fmt.Fprintf(w, "\n%s\n", t.title)
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "  %*s", width[i], c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

func (t table) markdown(w io.Writer) {
	fmt.Fprintf(w, "\n**%s**\n\n| %s |\n|%s\n", t.title, strings.Join(t.header, " | "), strings.Repeat("---|", len(t.header)))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "%s\n", n)
		}
	}
}

func f1(v float64) string {
	if math.IsNaN(v) || v == 0 {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fratio(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func (r *Report) impl(side string) *Impl {
	for i := range r.Impls {
		if r.Impls[i].Side == side {
			return &r.Impls[i]
		}
	}
	return nil
}

// cell prints "median / p90" and the error count when there is one.
func cell(s *Stat) string {
	if s == nil {
		return "-"
	}
	if s.N == 0 {
		return fmt.Sprintf("failed (%d)", s.Errors)
	}
	c := f1(s.Median) + " / " + f1(s.P90)
	if s.Errors > 0 {
		c += fmt.Sprintf(" (%d err)", s.Errors)
	}
	return c
}

func med(s *Stat) float64 {
	if s == nil || s.N == 0 {
		return math.NaN()
	}
	return s.Median
}

// tables builds one table per scenario that the report holds.
func (r *Report) tables() []table {
	var ts []table
	sideLabel := func(side string) string {
		if im := r.impl(side); im != nil {
			return im.Label
		}
		return side
	}
	hasDeb := r.impl("deb") != nil
	// Scenarios 1 and 2.
	for _, sc := range []int{1, 2} {
		t := table{title: map[int]string{
			1: "Scenario 1: one ADD and one DEL into a fresh netns, 0 other pods (ms, median / p90)",
			2: "Scenario 2: the probe as pods accumulate (ms, median / p90)",
		}[sc]}
		t.header = []string{"case", "via", "op", "pods", "podns", "reference v1.10.0", "podns/ref"}
		if sc == 1 && hasDeb {
			t.header = append(t.header, "Debian v1.1.1")
		}
		for _, p := range r.Probes {
			if p.Scenario != sc || p.Group == sameWindowGroup { // a note below
				continue
			}
			row := []string{p.Group, p.Via, p.Op, fmt.Sprint(p.Pods), cell(p.Stats["podns"]), cell(p.Stats["ref"]),
				fratio(ratio(med(p.Stats["podns"]), med(p.Stats["ref"])))}
			if sc == 1 && hasDeb {
				row = append(row, cell(p.Stats["deb"]))
			}
			t.rows = append(t.rows, row)
		}
		if len(t.rows) == 0 {
			continue
		}
		if sc == 1 {
			t.notes = append(t.notes, "bridge rows: podns bridge mode + podns-ipam vs the reference bridge + host-local; routed rows: podns routed mode + podns-ipam vs the reference ptp + host-local; all with ipMasq.")
			if r.SelfCheck {
				t.notes = append(t.notes, "self-check: the podns column is "+sideLabel("podns")+".")
			}
		}
		if sc == 2 {
			for _, side := range []string{"podns", "ref"} {
				for _, op := range []string{"ADD", "DEL"} {
					if g := r.growthIn(bridgeGroup, side, op, true); !math.IsNaN(g.x) {
						t.notes = append(t.notes, fmt.Sprintf("%s %s median grows %.2fx from %d to %d pods (its own pods only on the node): %s.", sideLabel(side), op, g.x, g.from, g.to, g.detail()))
					}
					if g := r.growthIn(bridgeGroup, side, op, false); !math.IsNaN(g.x) {
						t.notes = append(t.notes, fmt.Sprintf("%s %s median grows %.2fx from %d to %d pods (both sides' pods on the node, interleaved).", sideLabel(side), op, g.x, g.from, g.to))
					}
					if g := r.growthIn(routedGroup, side, op, true); !math.IsNaN(g.x) {
						t.notes = append(t.notes, fmt.Sprintf("podns routed mode + podns-ipam %s median grows %.2fx from %d to %d pods (its own pods only on the node).", op, g.x, g.from, g.to))
					}
					if x, pods, filled, empty := r.sameWindow(op); side == "podns" && !math.IsNaN(x) {
						t.notes = append(t.notes, fmt.Sprintf("same window: podns %s %s ms on its bridge with %d pods against %s ms on an empty podns bridge, interleaved: %.2fx (the bridge's own growth, without the drift in load between levels).", op, f1(filled), pods, f1(empty), x))
					}
				}
			}
			for i, f := range r.Fills {
				t.notes = append(t.notes, fmt.Sprintf("filling %s from %d to %d pods took %.1f s (%.1f pods/s, %d workers).",
					sideLabel(f.Side), f.From, f.Pods, f.Seconds, float64(f.Pods-f.From)/f.Seconds, fillWorkersNote))
				if f.SettleSeconds > 0 && (i+1 == len(r.Fills) || r.Fills[i+1].Pods != f.Pods) {
					t.notes = append(t.notes, fmt.Sprintf("then %.1f s until the machine was quiet (the new pods' start-up traffic) before the %d-pod probe.", f.SettleSeconds, f.Pods))
				}
			}
		}
		if sc == 2 {
			for _, td := range r.Teardowns {
				who := td.Label
				if who == "" {
					who = sideLabel(td.Side)
				}
				t.notes = append(t.notes, fmt.Sprintf("removing %d pods of %s (netns delete, then %s) took %.1f s; left behind: %d rule lines, %d IPAM entries.",
					td.Pods, who, td.How, td.Seconds, td.LeftRules, td.LeftIPAM))
			}
		}
		ts = append(ts, t)
	}
	if len(r.Floors) > 0 {
		t := table{title: "Floor: starting a program as a runtime execs a plugin (ms, median / p90)", header: []string{"program", "median / p90"}}
		for _, f := range r.Floors {
			t.rows = append(t.rows, []string{f.Name, cell(f.Stat)})
		}
		ts = append(ts, t)
	}
	// Scenario 3.
	if len(r.Parallel) > 0 {
		t := table{title: "Scenario 3: N ADDs released at once, then N DELs at once (median over rounds)",
			header: []string{"N", "side", "ADD wall ms", "ADD pods/s", "DEL wall ms", "DEL pods/s", "errors", "dup addrs", "leftovers port/ipam/rule", "ADD wall podns/ref"}}
		for _, conc := range r.concs() {
			addWall := map[string]float64{}
			for _, side := range []string{"podns", "ref"} {
				var add, del []float64
				errs, dups, lp, li, lr := 0, 0, 0, 0, 0
				for _, p := range r.Parallel {
					if p.Conc != conc || p.Side != side {
						continue
					}
					add, del = append(add, p.AddWallMS), append(del, p.DelWallMS)
					errs += p.AddErrors + p.DelErrors
					dups += p.Duplicates
					lp, li, lr = lp+p.LeftPorts, li+p.LeftIPAM, lr+p.LeftRules
				}
				if len(add) == 0 {
					continue
				}
				sort.Float64s(add)
				sort.Float64s(del)
				a, d := quantile(add, .5), quantile(del, .5)
				addWall[side] = a
				rat := ""
				if side == "ref" {
					rat = fratio(ratio(addWall["podns"], a))
				}
				t.rows = append(t.rows, []string{fmt.Sprint(conc), sideLabel(side), f1(a), fmt.Sprintf("%.1f", float64(conc)/a*1000),
					f1(d), fmt.Sprintf("%.1f", float64(conc)/d*1000), fmt.Sprint(errs), fmt.Sprint(dups), fmt.Sprintf("%d/%d/%d", lp, li, lr), rat})
			}
		}
		var settled []float64
		for _, p := range r.Parallel {
			settled = append(settled, p.SettleSeconds)
		}
		if sort.Float64s(settled); len(settled) > 0 && settled[len(settled)-1] > 0 {
			t.notes = append(t.notes, fmt.Sprintf("each burst was released once the CPUs were quiet (the previous burst's namespaces are torn down in the background): waited %.1f s median, %.1f s at most (3 s cap).",
				quantile(settled, .5), settled[len(settled)-1]))
		}
		for _, p := range r.Parallel {
			if p.FirstError != "" {
				t.notes = append(t.notes, fmt.Sprintf("first error (%s, %d at once): %s", p.Side, p.Conc, p.FirstError))
				break
			}
		}
		ts = append(ts, t)
	}
	// Scenario 4.
	{
		t := table{title: "Scenario 4: IPAM alone, one allocation and its release (ms, median / p90)",
			header: []string{"range", "op", "fill", "podns-ipam", "host-local v1.10.0", "podns/ref"}}
		for _, p := range r.Probes {
			if p.Scenario != 4 {
				continue
			}
			t.rows = append(t.rows, []string{p.Group, p.Op, fmt.Sprintf("%d%% (%d)", p.FillPct, p.Pods), cell(p.Stats["podns"]), cell(p.Stats["ref"]),
				fratio(ratio(med(p.Stats["podns"]), med(p.Stats["ref"])))})
		}
		if len(t.rows) > 0 {
			t.notes = append(t.notes, fmt.Sprintf("podns side: %s.", sideLabel("podns")))
			ts = append(ts, t)
		}
	}
	// Scenario 5.
	if len(r.Sandbox) > 0 {
		t := table{title: "Scenario 5: pod sandbox create + remove, same CNI chain (ms, median / p90) and memory per pod",
			header: []string{"runtime", "steps", "total", "per step (median)", "vs containerd", "memory per pod"}}
		cri := math.NaN()
		for _, s := range r.Sandbox {
			if s.Target == "crictl" {
				cri = med(s.Stat)
			}
		}
		for _, s := range r.Sandbox {
			var parts []string
			for _, k := range []string{"runp", "stopp", "rmp"} {
				if p, ok := s.Parts[k]; ok {
					parts = append(parts, fmt.Sprintf("%s %s", k, f1(med(p))))
				}
			}
			total, rat := "-", ""
			if s.Stat != nil {
				total = cell(s.Stat)
				if s.Target != "crictl" {
					rat = fratio(ratio(med(s.Stat), cri))
				}
			}
			t.rows = append(t.rows, []string{s.Runtime, s.Steps, total, strings.Join(parts, ", "), rat, s.Memory})
		}
		t.notes = append(t.notes, "Kubernetes' pause is a static C loop around sleep() with signal handlers that allocates nothing (kubernetes/kubernetes#93055); busybox-static sleep stands in for it here, as no registry is reachable.")
		ts = append(ts, t)
	}
	// Scenario 6.
	if len(r.Namespaces) > 0 {
		levels := []int{}
		seen := map[int]bool{}
		for _, n := range r.Namespaces {
			if !seen[n.Held] {
				seen[n.Held] = true
				levels = append(levels, n.Held)
			}
		}
		t := table{title: "Scenario 6: create + destroy namespaces for one pod (ms, median; over fork+exec baseline in brackets) while N pods hold theirs",
			header: []string{"namespaces"}}
		for _, l := range levels {
			t.header = append(t.header, fmt.Sprintf("N=%d", l))
		}
		var kinds []string
		byKind := map[string]map[int]NSCost{}
		for _, n := range r.Namespaces {
			if byKind[n.Kind] == nil {
				byKind[n.Kind] = map[int]NSCost{}
				kinds = append(kinds, n.Kind)
			}
			byKind[n.Kind][n.Held] = n
		}
		for _, k := range kinds {
			row := []string{k}
			for _, l := range levels {
				c, ok := byKind[k][l]
				switch {
				case !ok || c.Stat == nil || c.Stat.N == 0:
					row = append(row, "-")
				case c.OverMS != 0:
					row = append(row, fmt.Sprintf("%.2f (%+.2f)", c.Stat.Median, c.OverMS))
				default:
					row = append(row, fmt.Sprintf("%.2f", c.Stat.Median))
				}
			}
			t.rows = append(t.rows, row)
		}
		t.notes = append(t.notes, "each sample forks /bin/true with the clone flags and waits for it; the namespaces die with it (net's teardown finishes asynchronously in the kernel).")
		ts = append(ts, t)
	}
	if len(r.Targets) > 0 {
		t := table{title: "Targets (issue 6)", header: []string{"target", "want", "got", "result"}}
		for _, tg := range r.Targets {
			res := "not measured"
			if tg.Pass != nil {
				res = map[bool]string{true: "PASS", false: "MISS"}[*tg.Pass]
			}
			t.rows = append(t.rows, []string{tg.Name, tg.Want, tg.Got, res})
		}
		ts = append(ts, t)
	}
	return ts
}

// fillWorkersNote is set from the run's configuration for the fill notes.
var fillWorkersNote = 4

func (r *Report) concs() []int {
	seen := map[int]bool{}
	var cs []int
	for _, p := range r.Parallel {
		if !seen[p.Conc] {
			seen[p.Conc] = true
			cs = append(cs, p.Conc)
		}
	}
	sort.Ints(cs)
	return cs
}

type growth struct {
	x        float64
	from, to int
	lo, hi   *Stat // the two levels' samples
	alone    bool  // measured with the side's own pods only on the node
}

// detail is the growth in milliseconds and, when a level was measured in
// blocks at different times, each block's median.
func (g growth) detail() string {
	d := fmt.Sprintf("%s -> %s ms (%+.1f ms)", f1(g.lo.Median), f1(g.hi.Median), g.hi.Median-g.lo.Median)
	blocks := func(s *Stat) string {
		if len(s.Blocks) == 0 {
			return f1(s.Median) // one block
		}
		var b []string
		for _, v := range s.Blocks {
			b = append(b, f1(v))
		}
		return strings.Join(b, ", ")
	}
	if len(g.lo.Blocks) > 1 || len(g.hi.Blocks) > 1 {
		d += fmt.Sprintf("; medians of its blocks, in the order taken: %s at %d pods, %s at %d", blocks(g.lo), g.from, blocks(g.hi), g.to)
	}
	return d
}

// The probe groups of scenario 2.
const (
	bridgeGroup = "bridge+ipMasq"
	routedGroup = "routed+ipMasq"
	// sameWindowGroup probes podns's filled bridge network interleaved with
	// one of the same plugin whose bridge is empty (side emptyBridgeSide).
	sameWindowGroup = "same window: podns bridge with its pods vs an empty podns bridge"
	emptyBridgeSide = "podns-empty"
)

// sameWindow is podns's growth at the most pods measured against an empty
// bridge in the same window: filled and empty medians and their ratio.
func (r *Report) sameWindow(op string) (x float64, pods int, filled, empty float64) {
	x = math.NaN()
	for i := range r.Probes {
		p := &r.Probes[i]
		if p.Scenario != 2 || p.Group != sameWindowGroup || p.Op != op || p.Stats["podns"] == nil || p.Stats[emptyBridgeSide] == nil || p.Pods < pods {
			continue
		}
		pods, filled, empty = p.Pods, med(p.Stats["podns"]), med(p.Stats[emptyBridgeSide])
		x = ratio(filled, empty)
	}
	return x, pods, filled, empty
}

// growth compares a side's scenario-2 bridge median at the most pods with
// 0 pods.
func (r *Report) growth(side, op string) growth {
	// The pass with the side's own pods only, when the run has one.
	if g := r.growthIn(bridgeGroup, side, op, true); !math.IsNaN(g.x) {
		return g
	}
	return r.growthIn(bridgeGroup, side, op, false)
}

// alone reports whether a probe comes from a side's own-pods-only pass.
func (p *Probe) alone() bool { return strings.HasSuffix(p.Group, ", own pods only") }

func (r *Report) growthIn(group, side, op string, alone bool) growth {
	g := growth{x: math.NaN()}
	var lo, hi *Probe
	for i := range r.Probes {
		p := &r.Probes[i]
		if p.Scenario != 2 || p.Op != op || p.Stats[side] == nil || p.alone() != alone || !strings.HasPrefix(p.Group, group) {
			continue
		}
		if lo == nil || p.Pods < lo.Pods {
			lo = p
		}
		if hi == nil || p.Pods > hi.Pods {
			hi = p
		}
	}
	if lo == nil || hi == nil || lo == hi {
		return g
	}
	g.x, g.from, g.to, g.alone = ratio(med(hi.Stats[side]), med(lo.Stats[side])), lo.Pods, hi.Pods, alone
	g.lo, g.hi = lo.Stats[side], hi.Stats[side]
	return g
}

func (r *Report) find(sc int, group, via, op string, pods int) *Probe {
	for i := range r.Probes {
		p := &r.Probes[i]
		if p.Scenario == sc && p.Group == group && p.Via == via && p.Op == op && p.Pods == pods {
			return p
		}
	}
	return nil
}

// floor returns the named floor's samples, nil if it was not measured.
func (r *Report) floor(name string) *Stat {
	for _, f := range r.Floors {
		if f.Name == name {
			return f.Stat
		}
	}
	return nil
}

// checkTargets evaluates issue 6's targets from the measured numbers.
func (r *Report) checkTargets() {
	r.Targets = nil
	add := func(name, want, got string, pass *bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Pass: pass})
	}
	b := func(v bool) *bool { return &v }
	for _, op := range []string{"ADD", "DEL"} {
		p := r.find(1, "bridge+ipMasq", "exec", op, 0)
		if p == nil {
			add(op+" median vs reference (bridge+ipMasq)", "<= 0.15x", "", nil)
			continue
		}
		x := ratio(med(p.Stats["podns"]), med(p.Stats["ref"]))
		got := fmt.Sprintf("%.3fx (%s vs %s ms)", x, f1(med(p.Stats["podns"])), f1(med(p.Stats["ref"])))
		// What of that is only starting and ending a Go process.
		if fl := r.floor("podns VERSION (podns)"); fl != nil {
			got += fmt.Sprintf("; podns VERSION alone %.3fx", ratio(med(fl), med(p.Stats["ref"])))
		}
		add(op+" median vs reference (bridge+ipMasq)", "<= 0.15x (aim 0.10x)", got, b(x <= 0.15))
	}
	for _, op := range []string{"ADD", "DEL"} {
		g := r.growth("podns", op)
		if math.IsNaN(g.x) {
			add("podns "+op+" growth 0 -> 1000 pods", "<= 1.25x", "", nil)
			continue
		}
		got := fmt.Sprintf("%.2fx", g.x)
		if g.alone {
			got += fmt.Sprintf(" (own pods only, %s -> %s ms)", f1(g.lo.Median), f1(g.hi.Median))
			if both := r.growthIn(bridgeGroup, "podns", op, false); !math.IsNaN(both.x) {
				got += fmt.Sprintf("; %.2fx beside the reference's", both.x)
			}
		}
		if rt := r.growthIn(routedGroup, "podns", op, true); !math.IsNaN(rt.x) {
			got += fmt.Sprintf("; routed mode %.2fx", rt.x)
		}
		if ref := r.growthIn(bridgeGroup, "ref", op, true); !math.IsNaN(ref.x) {
			got += fmt.Sprintf("; the reference %.2fx (%s -> %s ms)", ref.x, f1(ref.lo.Median), f1(ref.hi.Median))
		}
		if x, _, _, _ := r.sameWindow(op); !math.IsNaN(x) {
			got += fmt.Sprintf("; bridge vs an empty one in the same window %.2fx", x)
		}
		add(fmt.Sprintf("podns %s growth %d -> %d pods", op, g.from, g.to), "<= 1.25x", got, b(g.x <= 1.25))
	}
	{
		var pw, rw []float64
		errs, dups := 0, 0
		for _, p := range r.Parallel {
			if p.Conc != 64 {
				continue
			}
			if p.Side == "podns" {
				pw = append(pw, p.AddWallMS)
				errs += p.AddErrors + p.DelErrors
				dups += p.Duplicates
			} else if p.Side == "ref" {
				rw = append(rw, p.AddWallMS)
			}
		}
		if len(pw) == 0 || len(rw) == 0 {
			add("64 parallel ADDs", "0 errors, 0 duplicates, wall <= 0.15x", "", nil)
		} else {
			sort.Float64s(pw)
			sort.Float64s(rw)
			x := ratio(quantile(pw, .5), quantile(rw, .5))
			add("64 parallel ADDs", "0 errors, 0 duplicates, wall <= 0.15x",
				fmt.Sprintf("%d errors, %d duplicates, %.3fx", errs, dups, x), b(errs == 0 && dups == 0 && x <= 0.15))
		}
	}
	{
		var at0, at99 float64 = math.NaN(), math.NaN()
		for _, p := range r.Probes {
			if p.Scenario == 4 && p.Op == "allocate" {
				switch p.FillPct {
				case 0:
					at0 = med(p.Stats["podns"])
				case 99:
					at99 = med(p.Stats["podns"])
				}
			}
		}
		x := ratio(at99, at0)
		if math.IsNaN(x) {
			add("podns-ipam allocate at 99% vs 0% fill", "<= 1.5x", "", nil)
		} else {
			add("podns-ipam allocate at 99% vs 0% fill", "<= 1.5x", fmt.Sprintf("%.2fx", x), b(x <= 1.5))
		}
	}
	{
		var pod, cri float64 = math.NaN(), math.NaN()
		for _, s := range r.Sandbox {
			if s.Target == "podnsctl-holder" {
				pod = med(s.Stat)
			}
			if s.Target == "crictl" {
				cri = med(s.Stat)
			}
		}
		x := ratio(pod, cri)
		if math.IsNaN(x) {
			add("podnsctl runp+rmp vs crictl runp+stopp+rmp", "<= 0.10x", "", nil)
		} else {
			add("podnsctl runp+rmp vs crictl runp+stopp+rmp", "<= 0.10x", fmt.Sprintf("%.3fx", x), b(x <= 0.10))
		}
		holderMem, pinnedMem, pauseMem := "", "", ""
		for _, s := range r.Sandbox {
			switch s.Target {
			case "podnsctl-holder":
				holderMem = s.Memory
			case "podnsctl-pinned":
				pinnedMem = s.Memory
			case "pause":
				pauseMem = s.Memory
			}
		}
		if holderMem == "" {
			add("holder memory next to pause's; pinned pod has no process", "reported; no process", "", nil)
		} else {
			add("holder memory next to pause's; pinned pod has no process", "reported; no process",
				fmt.Sprintf("%s vs pause stand-in %s; pinned: %s", holderMem, pauseMem, pinnedMem), b(strings.HasPrefix(pinnedMem, "no process")))
		}
	}
	if r.SelfCheck {
		for i := range r.Targets {
			r.Targets[i].Pass = nil
			r.Targets[i].Got += " (self-check: podns column is the reference)"
		}
	}
}

// render writes the header and every table.
func (r *Report) render(w io.Writer, md bool) {
	hdr := fmt.Sprintf("podns benchmark (%s mode), %s, %s, %d CPUs, load %.2f -> %.2f, %.0f s",
		r.Mode, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Host.Kernel, r.Host.CPUs, r.Host.Load1, r.Host.Load1End, r.Seconds)
	if r.Host.Commit != "" {
		hdr += ", commit " + r.Host.Commit
	}
	if md {
		fmt.Fprintf(w, "_%s_\n", hdr)
	} else {
		fmt.Fprintln(w, hdr)
	}
	for _, n := range r.Notes {
		if md {
			fmt.Fprintf(w, "\n> %s\n", n)
		} else {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
	for _, t := range r.tables() {
		if md {
			t.markdown(w)
		} else {
			t.text(w)
		}
	}
}
