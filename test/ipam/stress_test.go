//go:build linux

package ipam_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/ipam/store"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var slash24 = map[string]any{"ranges": [][]map[string]string{{{"subnet": "10.64.0.0/24"}}}}

// TestConcurrentAddDel starts 64 ADDs at once into one /24, then 64 DELs
// at once: 64 distinct addresses, no error, an empty store. Rounds:
// PODNS_IPAM_ROUNDS (default 3).
func TestConcurrentAddDel(t *testing.T) {
	p := newPlugin(t)
	// A generous lock bound: the 64-way burst fits in the 5s default on an
	// idle machine (the log shows the latencies), but this test checks
	// uniqueness, not a latency the machine's other load decides.
	conf := p.conf("1.1.0", slash24, map[string]any{"lockTimeout": "30s"})
	const n = 64
	for round := 0; round < envInt("PODNS_IPAM_ROUNDS", 3); round++ {
		outs := make([][]byte, n)
		errs := make([]error, n)
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				outs[i], errs[i] = p.run("ADD", fmt.Sprintf("r%dc%d", round, i), "", conf)
				lat[i] = time.Since(t0)
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		t.Logf("round %d: 64 ADDs in %s, per ADD median %s, max %s", round, time.Since(start).Round(time.Millisecond),
			lat[n/2].Round(time.Millisecond), lat[n-1].Round(time.Millisecond))
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("round %d ADD %d: %v", round, i, errs[i])
			}
			a := parseResult(t, outs[i]).IPs[0].Address
			if j, dup := seen[a]; dup {
				t.Fatalf("round %d: %s handed to both %d and %d", round, a, j, i)
			}
			seen[a] = i
		}
		if got := len(allocations(t, p.storeDir())); got != n {
			t.Fatalf("round %d: store holds %d addresses, want %d", round, got, n)
		}
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = p.run("DEL", fmt.Sprintf("r%dc%d", round, i), "", conf)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d DEL %d: %v", round, i, err)
			}
		}
		assertStoreEmpty(t, p.storeDir())
		if err := ipam.CheckNetwork(conf, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashSafety SIGKILLs ADDs and DELs at random moments
// (PODNS_IPAM_KILLS, default 200), then checks: the store is consistent,
// no address is held twice, every completed ADD (not followed by a DEL)
// still holds its address, every completed DEL left nothing, and GC with the
// live attachments removes the rest.
func TestCrashSafety(t *testing.T) {
	p := newPlugin(t)
	conf := p.conf("1.1.0", slash24, map[string]any{"lockTimeout": "20s"})
	kills := envInt("PODNS_IPAM_KILLS", 200)
	const ids, batch = 40, 8

	type state struct {
		known bool       // the last operation completed
		addr  netip.Addr // held address when known; invalid = none
	}
	st := make([]state, ids)
	for i := range st {
		st[i].known = true
	}
	killed, completed := 0, 0
	for killed < kills {
		perm := rand.Perm(ids)[:batch]
		type proc struct {
			id  int
			op  string
			cmd *exec.Cmd
			out bytes.Buffer
		}
		procs := make([]*proc, batch)
		for k, id := range perm {
			op := "ADD"
			if rand.IntN(5) < 2 {
				op = "DEL"
			}
			pr := &proc{id: id, op: op}
			pr.cmd = p.cmd(op, fmt.Sprintf("crash%d", id), "", conf)
			pr.cmd.Stdout = &pr.out
			if err := pr.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs[k] = pr
		}
		// Kill each at a random instant: before it ran, mid-transaction, or
		// after it finished.
		var wg sync.WaitGroup
		for _, pr := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.IntN(25000)) * time.Microsecond)
				pr.cmd.Process.Signal(syscall.SIGKILL)
			}()
		}
		wg.Wait()
		for _, pr := range procs {
			err := pr.cmd.Wait()
			if err != nil {
				if ws, ok := pr.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					killed++
					st[pr.id].known = false
					continue
				}
				t.Fatalf("%s crash%d failed without being killed: %v: %s", pr.op, pr.id, err, pr.out.String())
			}
			completed++
			if pr.op == "DEL" {
				st[pr.id] = state{known: true}
				continue
			}
			a := parseResult(t, pr.out.Bytes()).IPs[0].Address
			st[pr.id] = state{known: true, addr: netip.MustParsePrefix(a).Addr()}
		}
	}
	t.Logf("%d processes killed, %d completed", killed, completed)

	if err := ipam.CheckNetwork(conf, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	alloc := allocations(t, p.storeDir())
	perOwner := map[store.Attachment]int{}
	for _, o := range alloc {
		perOwner[o]++
		if perOwner[o] > 1 {
			t.Errorf("%s holds more than one address of a single range set", o)
		}
	}
	var valid []map[string]string
	for id, s := range st {
		att := store.Attachment{ContainerID: fmt.Sprintf("crash%d", id), IfName: "eth0"}
		if !s.known {
			continue
		}
		if s.addr.IsValid() {
			if o, ok := alloc[s.addr]; !ok || o != att {
				t.Errorf("completed ADD of %s got %s, store says %v (held %v)", att, s.addr, o, ok)
			}
			valid = append(valid, map[string]string{"containerID": att.ContainerID, "ifname": "eth0"})
		} else if perOwner[att] != 0 {
			t.Errorf("completed DEL of %s, yet it holds an address", att)
		}
	}
	gc := p.conf("1.1.0", slash24, map[string]any{"cni.dev/valid-attachments": valid})
	if _, err := p.run("GC", "", "", gc); err != nil {
		t.Fatal(err)
	}
	after := allocations(t, p.storeDir())
	if len(after) != len(valid) {
		t.Errorf("after GC %d addresses held, want %d (the completed ADDs)", len(after), len(valid))
	}
	for _, o := range after {
		var id int
		fmt.Sscanf(o.ContainerID, "crash%d", &id)
		if !st[id].known || !st[id].addr.IsValid() {
			t.Errorf("GC kept %s", o)
		}
	}
	if err := store.Check(p.storeDir(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The operator commands chaos tooling uses agree.
	if out, err := exec.Command(p.bin, "verify", p.storeDir()).CombinedOutput(); err != nil {
		t.Fatalf("podns-ipam verify: %v %s", err, out)
	}
	out, err := exec.Command(p.bin, "list", p.storeDir()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bytes.Fields(out)) / 3; n != len(after) {
		t.Errorf("podns-ipam list shows %d allocations, want %d:\n%s", n, len(after), out)
	}
}
