//go:build linux

package main

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
)

// report collects one scenario's checks: every check counts as passed or
// failed, and the first failures are printed with their reason.
type report struct {
	name   string
	mu     sync.Mutex
	passed int
	failed int
	shown  int
	stats  []string
}

func newReport(name string) *report { return &report{name: name} }

// check records one check; problems empty means it passed.
func (r *report) check(what string, problems ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(problems) == 0 {
		r.passed++
		return true
	}
	r.failed++
	if r.shown < 40 {
		r.shown++
		for i, p := range problems {
			if i == 10 {
				fmt.Fprintf(os.Stderr, "  %s: FAIL %s: ... %d more\n", r.name, what, len(problems)-10)
				break
			}
			fmt.Fprintf(os.Stderr, "  %s: FAIL %s: %s\n", r.name, what, p)
		}
	}
	return false
}

func (r *report) checkf(ok bool, what, format string, a ...any) bool {
	if ok {
		return r.check(what)
	}
	return r.check(what, fmt.Sprintf(format, a...))
}

func (r *report) stat(format string, a ...any) {
	r.mu.Lock()
	r.stats = append(r.stats, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *report) summary(took time.Duration) string {
	return fmt.Sprintf("%s: %d passed, %d failed (%s)", r.name, r.passed, r.failed, took.Round(time.Second))
}

// durStats are the median and 95th percentile of a sample.
func durStats(d []time.Duration) (p50, p95 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)*95/100]
}

// estimator tracks how long an unkilled verb takes, so kills land uniformly
// over a typical run time even as machine load changes.
type estimator struct {
	mu sync.Mutex
	d  []time.Duration
}

func (e *estimator) add(d time.Duration) {
	e.mu.Lock()
	e.d = append(e.d, d)
	if len(e.d) > 64 {
		e.d = e.d[len(e.d)-64:]
	}
	e.mu.Unlock()
}

func (e *estimator) typical() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	p50, _ := durStats(e.d)
	if p50 == 0 {
		return 50 * time.Millisecond
	}
	return p50
}
