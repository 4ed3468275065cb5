//go:build linux

// Command bench measures podns against the reference CNI plugins side by side
// on the real kernel (issue 6): ADD/DEL latency, growth with pods, parallel
// bursts, IPAM alone, pod sandboxes and namespace costs. hack/bench.sh runs it.
//
//	bench [flags]                      run the scenarios, print tables
//	bench report -in r.json [-md]      print the tables of a saved run
//	bench plot -in r.json -out f.png   draw ADD/DEL latency vs pods attached
//	bench doc -in r.json -md doc.md    replace the generated block of doc.md
//	bench cleanup                      remove what a killed run left behind
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config is one run's shape; -quick shrinks every scenario.
type Config struct {
	Quick        bool
	Samples      int   // scenario 1: samples per side, way and group
	ProbeSamples int   // scenario 2: samples per side and level
	Levels       []int // scenario 2: pods attached
	Conc         []int // scenario 3: ADDs at once
	Rounds       int   // scenario 3: bursts per side and size
	IPAMPrefix   int   // scenario 4: range size
	IPAMSamples  int
	NSLevels     []int // scenario 6: pods holding namespaces
	NSSamples    int
	FillWorkers  int
	// Gap is a pause before each probe sample.
	Gap time.Duration
	// SandboxSamples is scenario 5's pods per side.
	SandboxSamples int
	Scenarios      map[int]bool
	// StopOnFillError ends the run at a failing fill instead of measuring a
	// network that does not hold the pods it claims.
	StopOnFillError bool

	impls    struct{ bridge, routed, ipam []Impl }
	podnsDir string
	refDir   string
	repo     string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "report":
			os.Exit(cmdReport(os.Args[2:]))
		case "plot":
			os.Exit(cmdPlot(os.Args[2:]))
		case "doc":
			os.Exit(cmdDoc(os.Args[2:]))
		case "cleanup":
			// Never under a run that is going on: a second run that was
			// refused (or a script's exit trap) must not sweep its state.
			unlock, err := tryLockRun()
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench cleanup: not sweeping:", err)
				return
			}
			sweepPrefix(namePrefix)
			unlock()
			return
		}
	}
	os.Exit(cmdRun(os.Args[1:]))
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	quick := fs.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "fewer samples, 100 pods at most (also BENCH_QUICK=1)")
	format := fs.String("o", "table", "output on stdout: table, markdown or json")
	jsonOut := fs.String("json", "", "also write the JSON report to this file")
	scen := fs.String("scenarios", "1,2,3,4,5,6", "scenarios to run")
	podnsDir := fs.String("podns", "", "directory with the podns and podns-ipam binaries (default <repo>/bin)")
	refDir := fs.String("ref", "/usr/local/lib/cni-v1.10.0", "reference plugins v1.10.0")
	debDir := fs.String("deb", "/usr/lib/cni", "Debian's reference plugins (second column in scenario 1; empty to skip)")
	selfCheck := fs.Bool("self-check", false, "put the reference plugins in the podns column too (proves the harness: ratios ~1)")
	levels := fs.String("levels", "", "scenario 2 pod counts (default 0,100,500,1000; quick 0,100)")
	workers := fs.Int("workers", 4, "parallel ADDs/DELs while filling and draining pods")
	gap := fs.Duration("gap", 0, "pause before each ADD+DEL probe sample (lets the previous sample's asynchronous kernel work finish)")
	_ = fs.Parse(args)
	if *format != "table" && *format != "markdown" && *format != "json" {
		fmt.Fprintf(os.Stderr, "bench: -o must be table, markdown or json, not %q\n", *format)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root (real network namespaces)")
		return 2
	}
	cfg := Config{Quick: *quick, FillWorkers: *workers, Gap: *gap, StopOnFillError: true, Scenarios: map[int]bool{}}
	if cfg.Quick {
		cfg.Samples, cfg.ProbeSamples, cfg.Levels = 8, 10, []int{0, 100}
		cfg.Conc, cfg.Rounds = []int{8, 32, 64}, 1
		cfg.IPAMPrefix, cfg.IPAMSamples = 24, 12
		cfg.NSLevels, cfg.NSSamples = []int{0, 100}, 15
		cfg.SandboxSamples = 5
	} else {
		// 31 ADD+DEL samples a side in scenario 1: its ratios decide two
		// targets, and on a shared machine a median of 15 moved by 0.3 ms
		// between runs minutes apart. Scenario 2 keeps 15 a level.
		cfg.Samples, cfg.ProbeSamples, cfg.Levels = 31, 15, []int{0, 100, 500, 1000}
		// Three bursts a size, so the median is one burst and not the mean
		// of two; 15 pods a side in scenario 5 (each containerd one ~0.2 s).
		cfg.Conc, cfg.Rounds = []int{8, 32, 64}, 3
		cfg.IPAMPrefix, cfg.IPAMSamples = 22, 30
		cfg.NSLevels, cfg.NSSamples = []int{0, 100, 500, 1000}, 30
		cfg.SandboxSamples = 15
	}
	fillWorkersNote = cfg.FillWorkers
	if *levels != "" {
		l, err := intList(*levels)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -levels: %v\n", err)
			return 2
		}
		cfg.Levels = l
	}
	sc, err := intList(*scen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -scenarios: %v\n", err)
		return 2
	}
	for _, s := range sc {
		cfg.Scenarios[s] = true
	}
	cfg.repo = repoRoot()
	if *podnsDir == "" {
		*podnsDir = filepath.Join(cfg.repo, "bin")
	}
	cfg.podnsDir, cfg.refDir = *podnsDir, *refDir
	if p, err := exec.LookPath("cnitool"); err == nil {
		cnitoolPath = p
	} else {
		fmt.Fprintln(os.Stderr, "bench: cnitool not found (hack/deps.sh installs it)")
		return 2
	}
	r := &Report{Mode: map[bool]string{true: "quick", false: "full"}[cfg.Quick], Started: time.Now()}
	if err := setImpls(&cfg, r, *podnsDir, *refDir, *debDir, *selfCheck); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	r.Host = hostInfo()

	unlock, err := lockRun()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	defer unlock()
	b, err := newBench(cfg, r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		warnf("interrupted: finishing the current step, then cleaning up")
		b.stop.Store(true)
	}()

	runErr := b.runAll()
	b.cleanup()
	r.Seconds = time.Since(r.Started).Seconds()
	r.Host.Load1End = load1()
	r.checkTargets()

	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, r); err != nil {
			warnf("%v", err)
		}
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	default:
		r.render(os.Stdout, *format == "markdown")
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", runErr)
		if errors.Is(runErr, errInterrupted) {
			return 130
		}
		// A scenario failed; the report above still holds everything else.
		return 1
	}
	return 0
}

func (b *Bench) runAll() error {
	s := b.cfg.Scenarios
	type step struct {
		on bool
		f  func() error
	}
	steps := []step{
		{s[1] || s[2], func() error { return b.scenarioPods(s[1], s[2]) }},
		{s[3], b.scenarioParallel},
		{s[4], b.scenarioIPAM},
		{s[6], b.scenarioNamespaces},
		{s[5], b.scenarioSandbox},
	}
	var failed error
	for _, st := range steps {
		if !st.on {
			continue
		}
		if b.stopped() {
			return errInterrupted
		}
		// A failing scenario is reported and the others still run: one
		// plugin's failure at 1000 pods should not hide every other number.
		if err := st.f(); err != nil {
			if errors.Is(err, errInterrupted) {
				return err
			}
			warnf("%v", err)
			b.report.Notes = append(b.report.Notes, "error: "+err.Error())
			if failed == nil {
				failed = err
			}
		}
	}
	return failed
}

// setImpls picks the binaries for every column and checks they exist.
func setImpls(cfg *Config, r *Report, podnsDir, refDir, debDir string, selfCheck bool) error {
	need := func(dir string, names ...string) error {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("%s missing in %s", n, dir)
			}
		}
		return nil
	}
	if err := need(refDir, "bridge", "ptp", "host-local"); err != nil {
		return fmt.Errorf("reference plugins: %w (hack/deps.sh installs them)", err)
	}
	refBr := Impl{Side: "ref", Label: "ref bridge+host-local v1.10.0", Dir: refDir, Main: "bridge", IPAM: "host-local", CNIVersion: "1.1.0"}
	refPtp := Impl{Side: "ref", Label: "ref ptp+host-local v1.10.0", Dir: refDir, Main: "ptp", IPAM: "host-local", CNIVersion: "1.1.0"}
	refIPAM := Impl{Side: "ref", Label: "host-local v1.10.0", Dir: refDir, Main: "host-local", IPAM: "host-local", CNIVersion: "1.1.0"}
	var podBr, podRt, podIPAM Impl
	if !selfCheck {
		if err := need(podnsDir, "podns", "podns-ipam"); err != nil {
			return fmt.Errorf("podns: %w (run make build, or pass -self-check to prove the harness)", err)
		}
		podBr = Impl{Side: "podns", Label: "podns bridge+podns-ipam", Dir: podnsDir, Main: "podns", Mode: "bridge", IPAM: "podns-ipam", CNIVersion: "1.1.0"}
		podRt = Impl{Side: "podns", Label: "podns routed+podns-ipam", Dir: podnsDir, Main: "podns", Mode: "routed", IPAM: "podns-ipam", CNIVersion: "1.1.0"}
		podIPAM = Impl{Side: "podns", Label: "podns-ipam", Dir: podnsDir, Main: "podns-ipam", IPAM: "podns-ipam", CNIVersion: "1.1.0"}
	} else {
		r.SelfCheck = true
		r.Notes = append(r.Notes, "self-check: the podns column runs the reference v1.10.0 plugins, so every ratio should be near 1.")
		podBr, podRt, podIPAM = refBr, refPtp, refIPAM
		podBr.Side, podRt.Side, podIPAM.Side = "podns", "podns", "podns"
		podBr.Label, podRt.Label, podIPAM.Label = "self-check: "+refBr.Label, "self-check: "+refPtp.Label, "self-check: "+refIPAM.Label
	}
	cfg.impls.bridge = []Impl{podBr, refBr}
	cfg.impls.routed = []Impl{podRt, refPtp}
	cfg.impls.ipam = []Impl{podIPAM, refIPAM}
	r.Impls = []Impl{podBr, refBr}
	if debDir != "" && need(debDir, "bridge", "ptp", "host-local") == nil {
		// Debian's v1.1.1 refuses cniVersion 1.1.0.
		debBr := Impl{Side: "deb", Label: "Debian bridge+host-local v1.1.1", Dir: debDir, Main: "bridge", IPAM: "host-local", CNIVersion: "1.0.0"}
		debPtp := Impl{Side: "deb", Label: "Debian ptp+host-local v1.1.1", Dir: debDir, Main: "ptp", IPAM: "host-local", CNIVersion: "1.0.0"}
		cfg.impls.bridge = append(cfg.impls.bridge, debBr)
		cfg.impls.routed = append(cfg.impls.routed, debPtp)
		r.Impls = append(r.Impls, debBr)
	}
	return nil
}

// lockRun keeps two benches from measuring each other. A run that is still
// exiting (its processes and namespaces take a moment to go) is waited for,
// up to two minutes.
func lockRun() (func(), error) { return takeRunLock(true, 120) }

// tryLockRun is lockRun without waiting, and without a lock file when no
// run ever made one.
func tryLockRun() (func(), error) { return takeRunLock(false, 0) }

// takeRunLock flocks the run lock, retrying once a second up to waits
// times; create makes the lock file when it is missing.
func takeRunLock(create bool, waits int) (func(), error) {
	flags := os.O_RDWR
	if create {
		if err := os.MkdirAll(stateRoot, 0o700); err != nil {
			return nil, err
		}
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(stateRoot, "lock"), flags, 0o600)
	if !create && errors.Is(err, os.ErrNotExist) {
		return func() {}, nil // no run ever took it
	}
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			return func() { f.Close() }, nil
		}
		if i >= waits {
			f.Close()
			return nil, errors.New("another bench run holds " + f.Name())
		}
		if i == 0 {
			logf("waiting for another bench run to finish (%s)", f.Name())
		}
		time.Sleep(time.Second)
	}
}

func repoRoot() string {
	if out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	wd, _ := os.Getwd()
	return wd
}

func hostInfo() Host {
	var u unix.Utsname
	_ = unix.Uname(&u)
	h := Host{Kernel: unix.ByteSliceToString(u.Release[:]), CPUs: runtime.NumCPU(), Load1: load1(), GoVersion: runtime.Version()}
	if out, err := exec.Command("git", "-C", repoRoot(), "rev-parse", "--short", "HEAD").Output(); err == nil {
		h.Commit = strings.TrimSpace(string(out))
	}
	return h
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func writeJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func cmdReport(args []string) int {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "JSON report of a run")
	md := fs.Bool("md", false, "markdown tables")
	_ = fs.Parse(args)
	r, err := readReport(*in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench report: %v\n", err)
		return 1
	}
	r.render(os.Stdout, *md)
	return 0
}

// Markers around the generated part of docs/benchmarks.md.
const (
	docBegin = "<!-- bench:begin (generated by hack/bench.sh; do not edit by hand) -->"
	docEnd   = "<!-- bench:end -->"
)

// cmdDoc replaces the text between the markers of a markdown file with the
// tables of a saved run, leaving the hand-written findings around it alone.
func cmdDoc(args []string) int {
	fs := flag.NewFlagSet("doc", flag.ExitOnError)
	in := fs.String("in", "", "JSON report of a run")
	md := fs.String("md", "docs/benchmarks.md", "markdown file with the bench markers")
	_ = fs.Parse(args)
	r, err := readReport(*in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench doc: %v\n", err)
		return 1
	}
	old, err := os.ReadFile(*md)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench doc: %v\n", err)
		return 1
	}
	s := string(old)
	i, j := strings.Index(s, docBegin), strings.Index(s, docEnd)
	if i < 0 || j < i {
		fmt.Fprintf(os.Stderr, "bench doc: %s has no %q ... %q block\n", *md, docBegin, docEnd)
		return 1
	}
	var b strings.Builder
	r.render(&b, true)
	s = s[:i+len(docBegin)] + "\n" + b.String() + "\n" + s[j:]
	if err := os.WriteFile(*md, []byte(s), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "bench doc: %v\n", err)
		return 1
	}
	return 0
}
