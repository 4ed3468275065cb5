//go:build linux

package main

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NSCost is scenario 6: what creating and destroying namespaces costs per pod
// while Held other pods keep theirs alive.
type NSCost struct {
	Kind string `json:"kind"`
	Held int    `json:"held"`
	Stat *Stat  `json:"stat"`
	// OverMS is the median minus the median of a plain fork+exec+exit of the
	// same program: the namespaces' own share.
	OverMS float64 `json:"over_baseline_ms"`
}

type nsKind struct {
	name  string
	flags uintptr
}

var nsKinds = []nsKind{
	{"baseline (fork+exec+exit, no new ns)", 0},
	{"uts", unix.CLONE_NEWUTS},
	{"ipc", unix.CLONE_NEWIPC},
	{"net", unix.CLONE_NEWNET},
	{"mnt", unix.CLONE_NEWNS},
	{"pid", unix.CLONE_NEWPID},
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"user", unix.CLONE_NEWUSER},
	{"pod set: net+ipc+uts", unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS},
	{"pod+container: net+ipc+uts+mnt+pid", unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS | unix.CLONE_NEWPID},
}

// pinnedNet is measured in process: a netns made and bind-mounted the way
// `ip netns add` and runtimes make them, then unmounted and removed.
const pinnedNet = "net pinned (create+bind mount+remove, no process)"

func (b *Bench) scenarioNamespaces() error {
	logf("scenario 6: namespace create+destroy cost per pod as held pods grow %v", b.cfg.NSLevels)
	truePath, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("scenario 6 needs true(1): %w", err)
	}
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		return fmt.Errorf("scenario 6 needs sleep(1): %w", err)
	}
	var holders []*exec.Cmd
	defer func() {
		for _, c := range holders {
			b.unregisterProc(c)
		}
	}()
	for _, level := range b.cfg.NSLevels {
		if need := level - len(holders); need > 0 {
			p := newProgress(fmt.Sprintf("start %d pod holders (net+ipc+uts each)", level), need)
			for i := 0; i < need; i++ {
				c := exec.Command(sleepPath, "infinity")
				c.SysProcAttr = &syscall.SysProcAttr{
					Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
					Pdeathsig:  syscall.SIGKILL,
				}
				if err := c.Start(); err != nil {
					return fmt.Errorf("start holder: %w", err)
				}
				b.registerProc(c)
				holders = append(holders, c)
				p.step()
			}
			p.done()
		}
		ser := make([]*series, len(nsKinds)+1)
		for i := range ser {
			ser[i] = &series{}
		}
		for s := 0; s < b.cfg.NSSamples && !b.stopped(); s++ {
			for j := range nsKinds {
				// Alternate the order so drift hits every kind alike.
				i := j
				if s%2 == 1 {
					i = len(nsKinds) - 1 - j
				}
				k := nsKinds[i]
				c := exec.Command(truePath)
				c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: k.flags}
				t0 := time.Now()
				err := c.Run()
				ser[i].add(time.Since(t0), err)
			}
			name := fmt.Sprintf("%s-ns%d", b.prefix, s)
			t0 := time.Now()
			_, err := newNetns(name)
			if err == nil {
				err = delNetns(name)
			}
			ser[len(nsKinds)].add(time.Since(t0), err)
		}
		if b.stopped() {
			return errInterrupted
		}
		base := ser[0].stat().Median
		for i := range ser {
			kind := pinnedNet
			if i < len(nsKinds) {
				kind = nsKinds[i].name
			}
			st := ser[i].stat()
			over := st.Median - base
			if i == 0 || i == len(nsKinds) {
				over = 0
			}
			b.report.Namespaces = append(b.report.Namespaces, NSCost{Kind: kind, Held: level, Stat: st, OverMS: over})
		}
	}
	return nil
}

func (b *Bench) registerProc(c *exec.Cmd) {
	b.mu.Lock()
	b.procs[c.Process.Pid] = c
	b.mu.Unlock()
}

// unregisterProc kills and reaps a process the bench started.
func (b *Bench) unregisterProc(c *exec.Cmd) {
	b.mu.Lock()
	_, ok := b.procs[c.Process.Pid]
	delete(b.procs, c.Process.Pid)
	b.mu.Unlock()
	if ok {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}
