//go:build linux

package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
)

// scenarioIPAM is scenario 4: the IPAM plugin alone, exec'd as a main plugin
// execs it, allocating and releasing one address at 0%, 50% and 99% fill.
func (b *Bench) scenarioIPAM() error {
	prefix := b.cfg.IPAMPrefix
	logf("scenario 4: IPAM alone (a /%d range), allocate + release at 0%%, 50%%, 99%% fill", prefix)
	holder, err := b.prepare(nil) // one netns for CNI_NETNS; IPAM never enters it
	if err != nil {
		return err
	}
	defer delNetns(holder.NetnsName)
	var nets []*Net
	for _, impl := range b.cfg.impls.ipam {
		subnet := b.nextSubnet()
		if prefix > 21 {
			subnet = subnet[:len(subnet)-2] + fmt.Sprint(prefix)
		}
		n, err := b.network(impl, "ipam", false, subnet)
		if err != nil {
			return err
		}
		nets = append(nets, n)
	}
	// Usable addresses: the network and broadcast addresses and the gateway
	// (.1) are never handed out.
	capacity := (1 << (32 - prefix)) - 3
	filled := map[*Net]int{}
	var seq int
	call := func(n *Net, cmd, id string) error {
		a := &Attachment{Net: n, ContainerID: id, NetnsPath: holder.NetnsPath, IfName: "eth0"}
		_, _, err := a.run(cmd, viaExec)
		return err
	}
	for _, pct := range []int{0, 50, 99} {
		target := int(math.Floor(float64(capacity) * float64(pct) / 100))
		for _, n := range nets {
			need := target - filled[n]
			if need <= 0 {
				continue
			}
			p := newProgress(fmt.Sprintf("fill %s to %d%% (%d addresses)", n.Impl.Label, pct, target), need)
			var firstErr error
			errc := make(chan error, need)
			base := filled[n]
			parallel(need, b.cfg.FillWorkers, func(i int) {
				if err := call(n, "ADD", fmt.Sprintf("%sfill%06d", b.prefix, base+i)); err != nil {
					errc <- err
				}
				p.step()
			})
			p.done()
			close(errc)
			for err := range errc {
				if firstErr == nil {
					firstErr = err
				}
			}
			if firstErr != nil {
				return fmt.Errorf("fill %s: %w", n.Name, firstErr)
			}
			filled[n] = target
		}
		add := map[*Net]*series{}
		del := map[*Net]*series{}
		for _, n := range nets {
			add[n], del[n] = &series{}, &series{}
		}
		interleave(b.cfg.IPAMSamples, nets, b.stopped, func(_ int, n *Net) {
			seq++
			a := &Attachment{Net: n, ContainerID: fmt.Sprintf("%sprobe%06d", b.prefix, seq), NetnsPath: holder.NetnsPath, IfName: "eth0"}
			d, _, err := a.run("ADD", viaExec)
			add[n].add(d, err)
			d, _, err = a.run("DEL", viaExec)
			del[n].add(d, err)
		})
		if b.stopped() {
			return errInterrupted
		}
		for _, op := range []struct {
			name string
			s    map[*Net]*series
		}{{"allocate", add}, {"release", del}} {
			pr := Probe{Scenario: 4, Group: fmt.Sprintf("ipam /%d", prefix), Via: string(viaExec), Op: op.name, Pods: target, FillPct: pct, Stats: map[string]*Stat{}}
			for _, n := range nets {
				pr.Stats[n.Impl.Side] = op.s[n].stat()
			}
			b.report.Probes = append(b.report.Probes, pr)
		}
	}
	// IPAM alone leaves no kernel state: dropping its data directory is the
	// whole clean-up.
	for _, n := range nets {
		if err := os.RemoveAll(n.DataDir); err != nil {
			warnf("remove %s: %v", n.DataDir, err)
		}
	}
	return nil
}

var execCommand = exec.Command
