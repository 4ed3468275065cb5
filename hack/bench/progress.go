//go:build linux

package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "warning: "+format+"\n", args...)
}

// progress prints "label: done/total, elapsed, ETA" on stderr at most every
// two seconds, so long fills show they are alive.
type progress struct {
	mu    sync.Mutex
	label string
	total int
	n     int
	start time.Time
	last  time.Time
}

func newProgress(label string, total int) *progress {
	now := time.Now()
	return &progress{label: label, total: total, start: now, last: now}
}

func (p *progress) step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if time.Since(p.last) >= 2*time.Second && p.n < p.total {
		p.last = time.Now()
		el := time.Since(p.start)
		eta := time.Duration(float64(el) / float64(p.n) * float64(p.total-p.n))
		fmt.Fprintf(os.Stderr, "    %s: %d/%d, %s elapsed, ~%s left\n", p.label, p.n, p.total,
			el.Round(time.Second), eta.Round(time.Second))
	}
}

func (p *progress) done() {
	fmt.Fprintf(os.Stderr, "    %s: %d/%d in %s\n", p.label, p.n, p.total, time.Since(p.start).Round(100*time.Millisecond))
}
