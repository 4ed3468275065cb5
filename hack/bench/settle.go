//go:build linux

package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// settle waits, after a fill, until the machine's CPUs are quiet again
// (less than a quarter of one CPU busy over a second), at least min and at
// most max. Pods just made are still starting up for ~10 s after their ADD
// (IPv6 DAD, MLD reports, router solicitations, each flooded by the bridge
// to every port), and a probe taken in that storm measures the last fill,
// often the other side's, not the plugin.
func (b *Bench) settle(min, max time.Duration) time.Duration {
	t0 := time.Now()
	prevBusy, prevTotal, ok := cpuTimes()
	for !b.stopped() {
		time.Sleep(time.Second)
		busy, total, ok2 := cpuTimes()
		if !ok || !ok2 {
			break
		}
		ncpu := float64(runtime.NumCPU())
		// Busy share of one CPU over the last second.
		share := float64(busy-prevBusy) / float64(total-prevTotal) * ncpu
		prevBusy, prevTotal = busy, total
		el := time.Since(t0)
		if el >= min && share < 0.25 || el >= max {
			break
		}
	}
	return time.Since(t0)
}

// cpuTimes reads the aggregate busy and total jiffies from /proc/stat.
func cpuTimes() (busy, total uint64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, total > 0
}
