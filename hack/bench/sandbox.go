//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SandboxRow is scenario 5: one runtime's pod create + remove, with the
// memory each pod's holder costs.
type SandboxRow struct {
	Runtime string `json:"runtime"`
	Steps   string `json:"steps"`
	// Target names the side of the ratio: "podnsctl" or "crictl".
	Target string           `json:"target"`
	Pods   int              `json:"pods"`
	Stat   *Stat            `json:"stat"`
	Parts  map[string]*Stat `json:"parts,omitempty"`
	Memory string           `json:"memory,omitempty"`
}

// sandboxSide is one way of making pods, measured step by step.
type sandboxSide struct {
	name, target, steps string
	total               series
	parts               map[string]*series
	order               []string
	memory              string
	run                 func(i int) (map[string]time.Duration, error)
}

func (s *sandboxSide) record(d map[string]time.Duration, err error) {
	if err != nil {
		s.total.add(0, err)
		return
	}
	var sum time.Duration
	for _, k := range s.order {
		sum += d[k]
		s.parts[k].add(d[k], nil)
	}
	s.total.add(sum, nil)
}

// timed runs a command and returns its wall time and stdout.
func timed(name string, args ...string) (time.Duration, string, error) {
	c := exec.Command(name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	t0 := time.Now()
	err := c.Run()
	d := time.Since(t0)
	if err != nil {
		return d, out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(errb.String()+out.String()))
	}
	return d, out.String(), nil
}

// privateMemory reads a process's private memory: dirty (its own heap and
// stacks, the real per-pod cost) and clean (mostly its binary's pages, which
// become shared as soon as a second pod runs the same binary).
func privateMemory(pid int) (dirtyKB, cleanKB int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Private_Dirty:":
			dirtyKB = v
		case "Private_Clean:":
			cleanKB = v
		}
	}
	return dirtyKB, cleanKB, nil
}

func memText(pid int) string {
	dirty, clean, err := privateMemory(pid)
	if err != nil {
		return "unknown: " + err.Error()
	}
	return fmt.Sprintf("%d KiB private dirty + %d KiB private clean", dirty, clean)
}

// writeSandboxConflist writes the chain both runtimes use, as cniVersion
// 1.0.0, which libcni v1.3 (podnsctl) and containerd 1.6's libcni accept.
// It is podns alone: the reference portmap execs iptables on every ADD and
// DEL even without port mappings (~25 ms each here), which both sides would
// pay alike and which would hide the runtimes' own cost.
func (b *Bench) writeSandboxConflist(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bridge := fmt.Sprintf("%s-s%d", b.prefix, len(b.extraLinks))
	b.extraLinks = append(b.extraLinks, bridge)
	list := map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []any{
		map[string]any{"type": "podns", "mode": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
			"ipam": map[string]any{"type": "podns-ipam", "ranges": [][]map[string]string{{{"subnet": b.nextSubnet()}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}}, "dataDir": filepath.Join(b.stateDir, "ipam", name)}},
	}}
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "10-"+name+".conflist"), data, 0o644)
}

// scenarioSandbox is scenario 5: podnsctl runp + rmp (holder and pinned
// mode) against crictl runp + stopp + rmp on a private containerd, both with
// the same CNI chain (podns + podns-ipam; containerd adds its loopback),
// interleaved.
func (b *Bench) scenarioSandbox() error {
	podnsctl := filepath.Join(b.cfg.podnsDir, "podnsctl")
	sandboxBin := filepath.Join(b.cfg.podnsDir, "podns-sandbox")
	for _, p := range []string{podnsctl, sandboxBin, filepath.Join(b.cfg.podnsDir, "podns"), filepath.Join(b.cfg.podnsDir, "podns-ipam")} {
		if _, err := os.Stat(p); err != nil {
			b.report.Notes = append(b.report.Notes, fmt.Sprintf("scenario 5 skipped: %s is missing (make build)", p))
			return nil
		}
	}
	logf("scenario 5: pod sandboxes, podnsctl (holder, pinned) vs containerd + crictl, same CNI chain")
	dir := filepath.Join(b.stateDir, "sandbox")
	binDir := filepath.Join(dir, "cni-bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	for src, name := range map[string]string{
		filepath.Join(b.cfg.podnsDir, "podns"):      "podns",
		filepath.Join(b.cfg.podnsDir, "podns-ipam"): "podns-ipam",
		filepath.Join(b.cfg.refDir, "portmap"):      "portmap",
		filepath.Join(b.cfg.refDir, "loopback"):     "loopback",
	} {
		if err := os.Symlink(src, filepath.Join(binDir, name)); err != nil {
			return err
		}
	}
	confP, confC := filepath.Join(dir, "net.d-podnsctl"), filepath.Join(dir, "net.d-containerd")
	if err := b.writeSandboxConflist(confP, b.prefix+"-sbx-p"); err != nil {
		return err
	}
	if err := b.writeSandboxConflist(confC, b.prefix+"-sbx-c"); err != nil {
		return err
	}
	ctl := []string{"--state-dir", filepath.Join(dir, "podnsctl"), "--cni-conf-dir", confP, "--cni-bin-dir", binDir,
		"--cni-cache-dir", filepath.Join(dir, "podnsctl-cache"), "--sandbox-bin", sandboxBin}
	defer func() {
		_, _, _ = timed(podnsctl, append(ctl, "rmp", "-f", "-a")...)
		_, _, _ = timed(podnsctl, append(ctl, "gc")...)
	}()

	// The pod config a kubelet sends by default: PID per container.
	podConf := func(tag string, i int, cgroupParent string) (string, error) {
		linux := map[string]any{"security_context": map[string]any{"namespace_options": map[string]int{"pid": 1}}}
		if cgroupParent != "" {
			linux["cgroup_parent"] = cgroupParent
		}
		name := fmt.Sprintf("%s-%d", tag, i)
		c := map[string]any{"metadata": map[string]any{"name": name, "namespace": b.prefix, "uid": b.prefix + "-" + name, "attempt": 0},
			"hostname": name, "log_directory": filepath.Join(dir, "logs", name), "linux": linux}
		data, _ := json.Marshal(c)
		p := filepath.Join(dir, name+".json")
		return p, os.WriteFile(p, data, 0o644)
	}
	podnsctlSide := func(mode string) *sandboxSide {
		s := &sandboxSide{name: "podnsctl, " + mode + " mode", target: "podnsctl-" + mode, steps: "runp + rmp",
			order: []string{"runp", "rmp"}, parts: map[string]*series{"runp": {}, "rmp": {}}}
		s.run = func(i int) (map[string]time.Duration, error) {
			f, err := podConf("p"+mode[:1], i, "")
			if err != nil {
				return nil, err
			}
			d1, out, err := timed(podnsctl, append(ctl, "runp", "--mode", mode, f)...)
			if err != nil {
				return nil, err
			}
			id := strings.TrimSpace(out)
			if s.memory == "" {
				s.memory = b.holderMemory(podnsctl, ctl, id)
			}
			d2, _, err := timed(podnsctl, append(ctl, "rmp", id)...)
			if err != nil {
				return nil, err
			}
			return map[string]time.Duration{"runp": d1, "rmp": d2}, nil
		}
		return s
	}
	sides := []*sandboxSide{podnsctlSide("holder"), podnsctlSide("pinned")}

	ctdScript := filepath.Join(b.cfg.repo, "hack", "bench", "containerd.sh")
	work := filepath.Join(dir, "containerd")
	cgroupParent := "/" + b.prefix
	crictl, errCri := exec.LookPath("crictl")
	_, errCtd := exec.LookPath("containerd")
	switch {
	case errCri != nil || errCtd != nil:
		b.report.Notes = append(b.report.Notes, "scenario 5: crictl or containerd missing (hack/e2e-containerd.sh installs crictl); containerd side not measured")
	default:
		defer func() {
			if _, _, err := timed(ctdScript, "stop", work, cgroupParent); err != nil {
				warnf("stop containerd: %v", err)
			}
		}()
		if _, _, err := timed(ctdScript, "start", work, sandboxBin, binDir, confC); err != nil {
			return fmt.Errorf("start containerd: %w", err)
		}
		cri := []string{"--config", filepath.Join(work, "crictl.yaml")}
		s := &sandboxSide{name: "containerd " + containerdVersion() + " + crictl", target: "crictl", steps: "runp + stopp + rmp",
			order: []string{"runp", "stopp", "rmp"}, parts: map[string]*series{"runp": {}, "stopp": {}, "rmp": {}}}
		s.run = func(i int) (map[string]time.Duration, error) {
			f, err := podConf("c", i, cgroupParent)
			if err != nil {
				return nil, err
			}
			d1, out, err := timed(crictl, append(cri, "runp", f)...)
			if err != nil {
				return nil, err
			}
			id := strings.TrimSpace(out)
			if s.memory == "" {
				s.memory = criMemory(crictl, cri, id)
			}
			d2, _, err := timed(crictl, append(cri, "stopp", id)...)
			if err != nil {
				return nil, err
			}
			d3, _, err := timed(crictl, append(cri, "rmp", id)...)
			if err != nil {
				return nil, err
			}
			return map[string]time.Duration{"runp": d1, "stopp": d2, "rmp": d3}, nil
		}
		sides = append(sides, s)
	}
	// Warm-up, untimed: first image unpack, first bridge, page cache.
	for _, s := range sides {
		if _, err := s.run(-1); err != nil {
			warnf("scenario 5 warm-up %s: %v", s.name, err)
		}
		s.memory = ""
	}
	p := newProgress("scenario 5 pods", b.cfg.SandboxSamples*len(sides))
	for i := 0; i < b.cfg.SandboxSamples && !b.stopped(); i++ {
		for j := range sides {
			k := j
			if i%2 == 1 {
				k = len(sides) - 1 - j
			}
			d, err := sides[k].run(i)
			sides[k].record(d, err)
			p.step()
		}
	}
	p.done()
	for _, s := range sides {
		row := SandboxRow{Runtime: s.name, Steps: s.steps, Target: s.target, Stat: s.total.stat(), Parts: map[string]*Stat{}, Memory: s.memory}
		for k, v := range s.parts {
			row.Parts[k] = v.stat()
		}
		b.report.Sandbox = append(b.report.Sandbox, row)
	}
	b.report.Sandbox = append(b.report.Sandbox, SandboxRow{Runtime: "pause stand-in: busybox-static sleep", Steps: "(memory only)", Target: "pause", Memory: pauseStandIn()})
	if b.stopped() {
		return errInterrupted
	}
	return nil
}

// holderMemory reports the holder's memory, or that a pinned pod has no
// process at all (checked: no holder PID recorded).
func (b *Bench) holderMemory(podnsctl string, ctl []string, id string) string {
	_, out, err := timed(podnsctl, append(ctl, "inspectp", "-o", "json", id)...)
	if err != nil {
		return "unknown: " + err.Error()
	}
	var st struct {
		Mode      string `json:"mode"`
		HolderPid int    `json:"holderPid"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "unknown: " + err.Error()
	}
	if st.HolderPid == 0 {
		return "no process (" + st.Mode + ")"
	}
	return "holder " + memText(st.HolderPid)
}

// criMemory reports the sandbox's pause process and its containerd shim.
func criMemory(crictl string, cri []string, id string) string {
	_, out, err := timed(crictl, append(cri, "inspectp", "-o", "json", id)...)
	if err != nil {
		return "unknown: " + err.Error()
	}
	var st struct {
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Info.Pid == 0 {
		return "unknown: no pid in inspectp"
	}
	s := "pause (podns-sandbox image) " + memText(st.Info.Pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.Info.Pid)); err == nil {
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				s += " + shim " + memText(ppid)
			}
		}
	}
	return s
}

// pauseStandIn measures a static C process that only sleeps, as the
// Kubernetes pause binary does (a sleep loop with signal handlers).
func pauseStandIn() string {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "busybox missing"
	}
	c := exec.Command(bb, "sleep", "600")
	if err := c.Start(); err != nil {
		return err.Error()
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	time.Sleep(100 * time.Millisecond)
	return memText(c.Process.Pid)
}

func containerdVersion() string {
	out, err := exec.Command("containerd", "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return strings.TrimSuffix(strings.SplitN(f[2], "~", 2)[0], "\n")
	}
	return ""
}
