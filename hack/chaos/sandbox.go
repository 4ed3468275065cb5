//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/podns/podns/sandbox/nsutil"
)

// sbEnv drives podnsctl with a private state dir and CNI conf dir whose
// network is the scenario's own podns network.
type sbEnv struct {
	*netEnv
	state   string
	confDir string
	tag     string // CHAOS_TAG in the environment of everything started
}

type sbPod struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	State  string   `json:"state"`
	Mode   string   `json:"mode"`
	Holder int      `json:"holderPid"`
	IPs    []string `json:"ips"`
}

func (s *sbEnv) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--state-dir", s.state, "--cni-conf-dir", s.confDir, "--cni-bin-dir", s.bin,
		"--sandbox-bin", filepath.Join(s.bin, "podns-sandbox"), "--stop-timeout", "1s"}, args...)
	c := exec.Command(filepath.Join(s.bin, "podnsctl"), full...)
	c.Env = append(os.Environ(), "CHAOS_TAG="+s.tag)
	return c
}

// ctl runs podnsctl, SIGKILLing it killAfter after the start when > 0.
func (s *sbEnv) ctl(killAfter time.Duration, args ...string) (out string, killed bool, dur time.Duration, err error) {
	c := s.cmd(args...)
	var ob, eb bytes.Buffer
	c.Stdout, c.Stderr = &ob, &eb
	start := time.Now()
	if err := c.Start(); err != nil {
		return "", false, 0, err
	}
	var t *time.Timer
	if killAfter > 0 {
		t = time.AfterFunc(killAfter, func() { c.Process.Kill() })
	}
	err = c.Wait()
	dur = time.Since(start)
	if t != nil {
		t.Stop()
	}
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		killed = true
	}
	if err != nil && !killed {
		err = fmt.Errorf("podnsctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(eb.String()))
	}
	return ob.String(), killed, dur, err
}

func (s *sbEnv) pods() ([]sbPod, error) {
	out, _, _, err := s.ctl(0, "pods", "-o", "json")
	if err != nil {
		return nil, err
	}
	var ps []sbPod
	return ps, json.Unmarshal([]byte(out), &ps)
}

// strays are live processes carrying this env's tag: holders, shims and
// containers of pods that should be gone.
func (s *sbEnv) strays() []string {
	ents, _ := os.ReadDir("/proc")
	needle := []byte("CHAOS_TAG=" + s.tag + "\x00")
	var out []string
	for _, en := range ents {
		if en.Name()[0] < '0' || en.Name()[0] > '9' {
			continue
		}
		env, err := os.ReadFile("/proc/" + en.Name() + "/environ")
		if err == nil && bytes.Contains(env, needle) {
			var pid int
			fmt.Sscan(en.Name(), &pid)
			out = append(out, fmt.Sprintf("%d (%s)", pid, nsutil.Comm(pid)))
		}
	}
	return out
}

// sandboxFaults is scenario 3: kill -9 the holder, a container, and
// podnsctl at random points of runp, run and rmp; `podnsctl gc` (and the
// runtime's retried rmp) must bring the node back to its baseline. Between
// rounds every pod that is left must be healthy: ready, holder alive,
// exactly its address allocated and its veth present.
// maxLivePods bounds the pods the sandbox scenario keeps between rounds.
const maxLivePods = 32

func sandboxFaults(ctx context.Context, bin string, b budget) *report {
	r := newReport("sandbox faults")
	ne, err := newNetEnv(bin, "sb", 24)
	if !r.checkf(err == nil, "setup", "%v", err) {
		return r
	}
	defer ne.cleanup()
	s := &sbEnv{netEnv: ne, state: filepath.Join(ne.dataDir, "state"), confDir: filepath.Join(ne.dataDir, "net.d"), tag: ne.id}
	os.MkdirAll(s.confDir, 0o700)
	conflist := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[%s]}`, ne.name, ne.conf(nil))
	if err := os.WriteFile(filepath.Join(s.confDir, "10-chaos.conflist"), []byte(conflist), 0o600); err != nil {
		r.check("setup", err.Error())
		return r
	}
	defer func() {
		s.ctl(0, "rmp", "-a", "-f")
		for _, m := range mountsUnder(s.state) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}()
	podFile := func(name, mode string) string {
		p := filepath.Join(ne.dataDir, name+".yaml")
		y := fmt.Sprintf("metadata: {name: %s, namespace: chaos, uid: %s}\nannotations: {podns.io/mode: %s}\n", name, name, mode)
		if mode == "pinned" {
			// A pinned pod has no init process to hold a shared PID namespace.
			y += "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"
		}
		os.WriteFile(p, []byte(y), 0o600)
		return p
	}
	est := map[string]*estimator{"runp": {}, "rmp": {}, "run": {}}
	kills := map[string]int{}
	rounds := 0
	deadline := time.Now().Add(b.sandbox)
	for n := 0; ctx.Err() == nil && (n < 6 || time.Now().Before(deadline)); n++ {
		name := fmt.Sprintf("%s-%d", ne.id, n)
		mode := "holder"
		if n%3 == 2 {
			mode = "pinned"
		}
		fault := []string{"runp", "holder", "container", "run", "rmp", "none"}[n%6]
		if mode == "pinned" && fault == "holder" {
			fault = "rmp"
		}
		kill := func(verb string) time.Duration { return randDur(est[verb].typical()) + time.Microsecond }
		var podID string
		killAfter := time.Duration(0)
		if fault == "runp" {
			killAfter = kill("runp")
		}
		out, killed, dur, err := s.ctl(killAfter, "runp", "--mode", mode, podFile(name, mode))
		if killed {
			kills["runp"]++
		} else if r.checkf(err == nil, "runp", "%v", err) {
			est["runp"].add(dur)
			lines := strings.Fields(out)
			if len(lines) > 0 {
				podID = lines[len(lines)-1]
			}
		}
		if podID != "" {
			switch fault {
			case "holder":
				if ps, err := s.pods(); err == nil {
					for _, p := range ps {
						if p.ID == podID && p.Holder > 0 {
							syscall.Kill(p.Holder, syscall.SIGKILL)
							kills["holder"]++
						}
					}
				}
			case "container", "run":
				ka := time.Duration(0)
				if fault == "run" {
					ka = kill("run")
				}
				_, k, d, err := s.ctl(ka, "run", "-d", "--name", "c", "-e", "CHAOS_TAG="+s.tag, podID, "--", "/bin/sleep", "3600")
				if k {
					kills["run"]++
				} else if r.checkf(err == nil, "run -d", "%v", err) {
					est["run"].add(d)
					if fault == "container" {
						var c struct {
							PID int `json:"pid"`
						}
						o, _, _, err := s.ctl(0, "inspect", "-o", "json", podID+"/c")
						if err == nil && json.Unmarshal([]byte(o), &c) == nil && c.PID > 0 {
							syscall.Kill(c.PID, syscall.SIGKILL)
							kills["container"]++
						}
					}
				}
			case "rmp":
				_, k, d, err := s.ctl(kill("rmp"), "rmp", podID)
				if k {
					kills["rmp"]++
				} else if r.checkf(err == nil, "rmp", "%v", err) {
					est["rmp"].add(d)
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // let the kernel reap what was killed
		_, _, _, err = s.ctl(0, "gc")
		r.checkf(err == nil, "podnsctl gc", "%v", err)
		if fault == "rmp" && podID != "" {
			// The runtime retries the removal it asked for.
			_, _, _, err = s.ctl(0, "rmp", podID)
			if err != nil && !strings.Contains(err.Error(), "not found") {
				r.check("retried rmp", err.Error())
			}
		}
		r.check("after gc every pod left is healthy", s.healthy()...)
		// Rounds without an rmp fault leave their pod running; a long
		// budget would otherwise fill the /24 with live pods. Removing the
		// surplus is also the plain, unfaulted rmp a runtime does.
		if ps, err := s.pods(); err == nil && len(ps) > maxLivePods {
			for _, p := range ps[:len(ps)-maxLivePods] {
				_, _, _, err := s.ctl(0, "rmp", p.ID)
				r.checkf(err == nil, "rmp of a surplus pod", "%v", err)
			}
		}
		rounds++
	}
	_, _, _, err = s.ctl(0, "rmp", "-a")
	r.checkf(err == nil, "rmp -a", "%v", err)
	_, _, _, err = s.ctl(0, "gc")
	r.checkf(err == nil, "final gc", "%v", err)
	time.Sleep(100 * time.Millisecond)
	var bad []string
	if ps, err := s.pods(); err != nil || len(ps) > 0 {
		bad = append(bad, fmt.Sprintf("pods left: %v %v", ps, err))
	}
	if ents, _ := os.ReadDir(filepath.Join(s.state, "pods")); len(ents) > 0 {
		bad = append(bad, fmt.Sprintf("%d pod directories left", len(ents)))
	}
	if m := mountsUnder(s.state); len(m) > 0 {
		bad = append(bad, fmt.Sprintf("mounts left: %v", m))
	}
	bad = append(bad, prefixAll("process left: ", persisting(s.strays, strayGrace))...)
	if o, err := ne.observe(); err != nil {
		bad = append(bad, err.Error())
	} else {
		bad = append(bad, ne.expectExactly(o, nil, nil)...)
	}
	r.check("baseline after gc and rmp: no pod, process, mount, veth, allocation or rule", bad...)
	r.stat("%d rounds; SIGKILLed: podnsctl runp %d, run %d, rmp %d; holders %d; containers %d",
		rounds, kills["runp"], kills["run"], kills["rmp"], kills["holder"], kills["container"])
	return r
}

// healthy checks every pod that is left: ready, its holder alive (holder
// mode), its address allocated and its host veth there, and no allocation
// or veth belonging to a pod that is gone.
func (s *sbEnv) healthy() []string {
	ps, err := s.pods()
	if err != nil {
		return []string{err.Error()}
	}
	o, err := s.observe()
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	want := map[string]att{}
	ips := map[string][]string{}
	for _, p := range ps {
		if p.State != "ready" {
			bad = append(bad, fmt.Sprintf("pod %s left in state %s after gc", p.Name, p.State))
		}
		if p.Mode == "holder" && (p.Holder <= 0 || syscall.Kill(p.Holder, 0) != nil) {
			bad = append(bad, fmt.Sprintf("pod %s: holder %d not running", p.Name, p.Holder))
		}
		want[p.ID+"/eth0"] = att{cid: p.ID, ifname: "eth0"}
		for _, ip := range p.IPs {
			ips[p.ID+"/eth0"] = append(ips[p.ID+"/eth0"], strings.SplitN(ip, "/", 2)[0])
		}
	}
	return append(bad, s.expectExactly(o, want, ips)...)
}

func mountsUnder(dir string) []string {
	m, _ := nsutil.MountsUnder(dir)
	return m
}
