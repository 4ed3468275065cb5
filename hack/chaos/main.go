//go:build linux

// Command chaos runs podns's reliability scenarios against the built
// binaries on the real kernel: a kill -9 storm of ADD/DEL with the
// runtime's recovery, a churn soak, sandbox faults under podnsctl, and GC
// racing ADD/DEL. Each prints "N passed, N failed"; the exit status is
// non-zero on any loss or leak.
//
//	CHAOS_BUDGET=ci     about 4 minutes (the default)
//	CHAOS_BUDGET=long   about 12 minutes; the storm alone kills at least 2,000 operations
//	CHAOS_BUDGET=600    seconds, shared between the scenarios
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type budget struct {
	name                          string
	storm, churn, sandbox, gcrace time.Duration
	stormKills                    int // > 0: the storm runs until this many kills
	workers                       int
}

func parseBudget(s string) (budget, error) {
	switch s {
	case "", "ci":
		return budget{name: "ci", storm: 60 * time.Second, churn: 40 * time.Second, sandbox: 45 * time.Second, gcrace: 30 * time.Second, workers: 6}, nil
	case "long":
		return budget{name: "long", storm: 3 * time.Minute, churn: 3 * time.Minute, sandbox: 3 * time.Minute, gcrace: 2 * time.Minute, stormKills: 2000, workers: 8}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 20 {
		return budget{}, fmt.Errorf("CHAOS_BUDGET %q: want ci, long or a number of seconds ≥ 20", s)
	}
	d := time.Duration(n) * time.Second
	return budget{name: s + "s", storm: d * 2 / 5, churn: d / 5, sandbox: d / 5, gcrace: d / 5, workers: 6}, nil
}

func main() {
	bin := flag.String("bin", "bin", "directory with podns, podns-ipam, podnsctl and podns-sandbox")
	only := flag.String("scenarios", "storm,churn,sandbox,gc", "scenarios to run, comma-separated")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "chaos: must run as root (real netns, veth, nftables)")
		os.Exit(2)
	}
	b, err := parseBudget(os.Getenv("CHAOS_BUDGET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	dir, err := filepath.Abs(*bin)
	if err == nil {
		for _, f := range []string{"podns", "podns-ipam", "podnsctl", "podns-sandbox"} {
			if _, err = os.Stat(filepath.Join(dir, f)); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: binaries:", err, "(run hack/build.sh)")
		os.Exit(2)
	}
	// SIGINT/SIGTERM stop the scenarios; their deferred cleanup still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scenarios := []struct {
		key string
		run func(context.Context, string, budget) *report
	}{{"storm", storm}, {"churn", churn}, {"sandbox", sandboxFaults}, {"gc", gcRace}}
	fmt.Printf("chaos: budget %s, binaries in %s\n", b.name, dir)
	failed := 0
	var lines []string
	for _, sc := range scenarios {
		if !strings.Contains(","+*only+",", ","+sc.key+",") {
			continue
		}
		start := time.Now()
		r := sc.run(ctx, dir, b)
		line := r.summary(time.Since(start))
		fmt.Println(line)
		for _, s := range r.stats {
			fmt.Println("    " + s)
		}
		lines = append(lines, line)
		if r.failed > 0 || r.passed == 0 {
			failed++
		}
	}
	if ctx.Err() != nil {
		fmt.Println("chaos: interrupted")
		os.Exit(130)
	}
	if failed > 0 {
		fmt.Printf("chaos: %d scenario(s) found a loss or leak\n", failed)
		os.Exit(1)
	}
	fmt.Println("chaos: all scenarios passed")
}
