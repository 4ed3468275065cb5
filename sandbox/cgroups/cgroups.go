//go:build linux

// Package cgroups places container processes in cgroupfs directories and
// applies CPU and memory limits. It speaks cgroup v1 (one directory per
// controller, as on this hybrid host) and the unified v2 hierarchy.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root is the cgroupfs mount point.
var Root = "/sys/fs/cgroup"

// v1Controllers are the v1 hierarchies a container is placed in.
var v1Controllers = []string{"memory", "cpu", "pids"}

// Limits are the CRI LinuxContainerResources podns applies.
type Limits struct {
	MemoryBytes int64
	CPUShares   int64
	CPUQuota    int64
	CPUPeriod   int64
}

// Unified reports whether the host uses the pure v2 hierarchy.
func Unified() bool {
	_, err := os.Stat(filepath.Join(Root, "cgroup.controllers"))
	return err == nil
}

// Dirs returns the cgroupfs directories for the relative cgroup path rel.
func Dirs(rel string) []string {
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	if Unified() {
		return []string{filepath.Join(Root, rel)}
	}
	var out []string
	for _, c := range v1Controllers {
		if _, err := os.Stat(filepath.Join(Root, c)); err == nil {
			out = append(out, filepath.Join(Root, c, rel))
		}
	}
	return out
}

// Create makes the cgroup rel in every hierarchy and applies limits.
func Create(rel string, l Limits) error {
	dirs := Dirs(rel)
	if len(dirs) == 0 {
		return fmt.Errorf("no cgroup hierarchy found under %s", Root)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			Remove(rel)
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	if err := apply(rel, l); err != nil {
		Remove(rel)
		return err
	}
	return nil
}

func apply(rel string, l Limits) error {
	type setting struct{ ctrl, file, val string }
	var set []setting
	if Unified() {
		if l.MemoryBytes > 0 {
			set = append(set, setting{"", "memory.max", strconv.FormatInt(l.MemoryBytes, 10)})
		}
		if l.CPUQuota > 0 {
			period := l.CPUPeriod
			if period == 0 {
				period = 100000
			}
			set = append(set, setting{"", "cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, period)})
		}
		if l.CPUShares > 0 {
			// The kubelet's shares→weight conversion.
			w := 1 + ((l.CPUShares-2)*9999)/262142
			set = append(set, setting{"", "cpu.weight", strconv.FormatInt(w, 10)})
		}
	} else {
		if l.MemoryBytes > 0 {
			set = append(set, setting{"memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
		}
		if l.CPUPeriod > 0 {
			set = append(set, setting{"cpu", "cpu.cfs_period_us", strconv.FormatInt(l.CPUPeriod, 10)})
		}
		if l.CPUQuota > 0 {
			set = append(set, setting{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota, 10)})
		}
		if l.CPUShares > 0 {
			set = append(set, setting{"cpu", "cpu.shares", strconv.FormatInt(l.CPUShares, 10)})
		}
	}
	for _, s := range set {
		p := filepath.Join(Root, s.ctrl, strings.TrimPrefix(filepath.Clean("/"+rel), "/"), s.file)
		if err := os.WriteFile(p, []byte(s.val), 0); err != nil {
			return fmt.Errorf("cgroup limit %s=%s: %w", p, s.val, err)
		}
	}
	return nil
}

// Add moves pid into the cgroup rel in every hierarchy.
func Add(rel string, pid int) error {
	for _, d := range Dirs(rel) {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("add %d to cgroup %s: %w", pid, d, err)
		}
	}
	return nil
}

// Procs lists the processes in the cgroup rel.
func Procs(rel string) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range Dirs(rel) {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Kill sends SIGKILL to everything in the cgroup until it is empty.
func Kill(rel string) {
	for i := 0; i < 50; i++ {
		procs := Procs(rel)
		if len(procs) == 0 {
			return
		}
		for _, p := range procs {
			unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove deletes the cgroup rel (its processes must be gone); missing is fine.
func Remove(rel string) error {
	var errs []error
	for _, d := range Dirs(rel) {
		var err error
		for i := 0; i < 50; i++ {
			err = unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond) // exited tasks linger briefly
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
