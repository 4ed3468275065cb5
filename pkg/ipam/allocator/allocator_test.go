//go:build linux

package allocator_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/ipam/store"
)

func mustRange(t *testing.T, subnet, start, end, gw string) allocator.Range {
	t.Helper()
	parse := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	r, err := allocator.NewRange(netip.MustParsePrefix(subnet), parse(start), parse(end), parse(gw), true)
	if err != nil {
		t.Fatalf("NewRange(%s): %v", subnet, err)
	}
	return r
}

// env is a real store in a temporary directory.
type env struct {
	t *testing.T
	s *store.Store
	a *allocator.Allocator
}

func newEnv(t *testing.T, set allocator.RangeSet, reserved ...string) *env {
	t.Helper()
	s, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var res []netip.Prefix
	for _, r := range reserved {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			a := netip.MustParseAddr(r)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		res = append(res, p)
	}
	return &env{t: t, s: s, a: allocator.New(set, res)}
}

// next allocates one address to a fresh attachment named id.
func (e *env) next(id string) (netip.Addr, error) {
	var got netip.Addr
	err := e.s.Update(func(tx *store.Tx) error {
		a, err := e.a.Next(tx, true)
		if err != nil {
			return err
		}
		got = a
		return tx.Allocate(a, store.Attachment{ContainerID: id, IfName: "eth0"})
	})
	return got, err
}

func (e *env) mustNext(id string) netip.Addr {
	e.t.Helper()
	a, err := e.next(id)
	if err != nil {
		e.t.Fatalf("allocate %s: %v", id, err)
	}
	return a
}

func (e *env) release(id string) {
	e.t.Helper()
	if err := e.s.Update(func(tx *store.Tx) error {
		_, err := tx.Release(store.Attachment{ContainerID: id, IfName: "eth0"})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) static(id, addr string) {
	e.t.Helper()
	if err := e.s.Update(func(tx *store.Tx) error {
		return tx.Allocate(netip.MustParseAddr(addr), store.Attachment{ContainerID: id, IfName: "eth0"})
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) expectSeq(prefix string, want ...string) {
	e.t.Helper()
	for i, w := range want {
		got := e.mustNext(prefix + string(rune('a'+i)))
		if got.String() != w {
			e.t.Fatalf("allocation %d: got %s, want %s", i, got, w)
		}
	}
}

func (e *env) expectExhausted() {
	e.t.Helper()
	_, err := e.next("overflow")
	if !errors.Is(err, allocator.ErrExhausted) {
		e.t.Fatalf("want ErrExhausted, got %v", err)
	}
	var free bool
	e.s.View(func(tx *store.Tx) error {
		free, err = e.a.HasFree(tx)
		return err
	})
	if err != nil || free {
		e.t.Fatalf("HasFree on an exhausted set = %v, %v", free, err)
	}
	if err := e.s.View(func(tx *store.Tx) error {
		if err := tx.Verify(); err != nil {
			return err
		}
		return e.a.Verify(tx)
	}); err != nil {
		e.t.Fatal(err)
	}
}

func TestV4SkipsNetworkGatewayBroadcastAndExhausts(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "10.1.0.0/29", "", "", "")})
	// .0 network, .1 gateway, .7 broadcast.
	e.expectSeq("c", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6")
	e.expectExhausted()
}

func TestV6(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "fd00:1::/126", "", "", "")})
	// ::0 subnet-router anycast, ::1 gateway; v6 has no broadcast.
	e.expectSeq("c", "fd00:1::2", "fd00:1::3")
	e.expectExhausted()
}

func TestPointToPointPrefixes(t *testing.T) {
	for _, tc := range []struct {
		subnet, gw string
		want       []string
	}{
		{"10.2.0.0/31", "", []string{"10.2.0.0", "10.2.0.1"}},
		{"10.2.0.0/31", "10.2.0.0", []string{"10.2.0.1"}},
		{"10.2.0.9/32", "", []string{"10.2.0.9"}},
		{"fd00:2::/127", "", []string{"fd00:2::", "fd00:2::1"}},
		{"fd00:2::9/128", "", []string{"fd00:2::9"}},
	} {
		t.Run(tc.subnet+"gw"+tc.gw, func(t *testing.T) {
			r := mustRange(t, tc.subnet, "", "", tc.gw)
			if tc.gw == "" && r.Gateway.IsValid() {
				t.Fatalf("%s got default gateway %s; a point-to-point prefix has no room for one", tc.subnet, r.Gateway)
			}
			e := newEnv(t, allocator.RangeSet{r})
			e.expectSeq("c", tc.want...)
			e.expectExhausted()
		})
	}
}

func TestRangeStartEndAndReserved(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "10.3.0.0/24", "10.3.0.100", "10.3.0.110", "")},
		"10.3.0.101", "10.3.0.104/31", "10.3.0.200")
	e.expectSeq("c", "10.3.0.100", "10.3.0.102", "10.3.0.103", "10.3.0.106", "10.3.0.107",
		"10.3.0.108", "10.3.0.109", "10.3.0.110")
	e.expectExhausted()
}

func TestGatewayInsideRangeSkipped(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "10.4.0.0/24", "10.4.0.10", "10.4.0.12", "10.4.0.11")})
	e.expectSeq("c", "10.4.0.10", "10.4.0.12")
	e.expectExhausted()
}

func TestRoundRobinAndWrapAround(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "10.5.0.0/24", "10.5.0.10", "10.5.0.14", "")})
	e.expectSeq("c", "10.5.0.10", "10.5.0.11")
	// A released address is not reused at once: round robin moves on.
	e.release("ca")
	e.expectSeq("d", "10.5.0.12", "10.5.0.13", "10.5.0.14")
	// Wrap: the first free after .14 is .10.
	e.expectSeq("e", "10.5.0.10")
	e.expectExhausted()
	// Free .13 and .11; last was .10, so .11 comes first, then .13.
	e.release("db") // .13
	e.release("cb") // .11
	e.expectSeq("f", "10.5.0.11", "10.5.0.13")
	e.expectExhausted()
}

func TestStaticAllocationsAreSkipped(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "10.6.0.0/24", "10.6.0.10", "10.6.0.15", "")})
	e.static("s1", "10.6.0.11")
	e.static("s2", "10.6.0.13")
	e.expectSeq("c", "10.6.0.10", "10.6.0.12", "10.6.0.14", "10.6.0.15")
	e.expectExhausted()
	// A released static address below the high-water mark comes back.
	e.release("s1")
	e.expectSeq("d", "10.6.0.11")
}

func TestSeveralRangesInOneSet(t *testing.T) {
	set := allocator.RangeSet{
		mustRange(t, "10.7.0.0/24", "10.7.0.250", "10.7.0.251", ""),
		mustRange(t, "10.7.1.0/24", "10.7.1.2", "10.7.1.3", ""),
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, set)
	e.expectSeq("c", "10.7.0.250", "10.7.0.251", "10.7.1.2", "10.7.1.3")
	e.expectExhausted()
	e.release("cb") // 10.7.0.251
	e.expectSeq("d", "10.7.0.251")
}

func TestLargeV6RangeIsCheap(t *testing.T) {
	// A /64 cannot be enumerated; allocation must not try.
	e := newEnv(t, allocator.RangeSet{mustRange(t, "fd00:8::/64", "", "", "")})
	e.expectSeq("c", "fd00:8::2", "fd00:8::3", "fd00:8::4")
}

func TestInvalidRanges(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	var z netip.Addr
	for _, tc := range []struct {
		name           string
		subnet         netip.Prefix
		start, end, gw netip.Addr
	}{
		{"host bits", p("10.9.0.1/24"), z, z, z},
		{"start outside", p("10.9.0.0/24"), a("10.9.1.1"), z, z},
		{"start is network", p("10.9.0.0/24"), a("10.9.0.0"), z, z},
		{"end is broadcast", p("10.9.0.0/24"), z, a("10.9.0.255"), z},
		{"start after end", p("10.9.0.0/24"), a("10.9.0.50"), a("10.9.0.40"), z},
		{"gateway outside", p("10.9.0.0/24"), z, z, a("10.9.1.1")},
		{"family mix", p("10.9.0.0/24"), a("fd00::1"), z, z},
	} {
		if _, err := allocator.NewRange(tc.subnet, tc.start, tc.end, tc.gw, true); err == nil {
			t.Errorf("%s: NewRange accepted it", tc.name)
		}
	}
	mixed := allocator.RangeSet{mustRange(t, "10.9.0.0/24", "", "", ""), mustRange(t, "fd00:9::/64", "", "", "")}
	if mixed.Validate() == nil {
		t.Error("a range set mixing v4 and v6 was accepted")
	}
	overlap := allocator.RangeSet{mustRange(t, "10.9.0.0/24", "", "", ""), mustRange(t, "10.9.0.0/25", "", "", "")}
	if overlap.Validate() == nil {
		t.Error("overlapping ranges were accepted")
	}
}

func TestSparse(t *testing.T) {
	for subnet, want := range map[string]bool{
		"10.0.0.0/16":   false,
		"10.0.0.0/12":   false, // 2^20-2 addresses
		"10.0.0.0/11":   true,
		"fd00::/108":    false,
		"fd00::/107":    true,
		"fd00::/64":     true,
		"8000::/1":      true,
		"10.0.0.0/31":   false,
		"fd00::9/128":   false,
		"0.0.0.0/0":     true,
		"2001:db8::/96": true,
	} {
		if got := mustRange(t, subnet, "", "", "").Sparse(); got != want {
			t.Errorf("%s: Sparse() = %v, want %v", subnet, got, want)
		}
	}
	// Around a 64-bit boundary inside one range: the borrow matters.
	r := mustRange(t, "fd00::/64", "fd00::ffff:ffff:ffff:fff0", "fd00::ffff:ffff:ffff:fff5", "")
	if r.Sparse() {
		t.Error("a 6-address range is not sparse")
	}
}

func TestSparseRangeRoundRobin(t *testing.T) {
	e := newEnv(t, allocator.RangeSet{mustRange(t, "fd00:9::/64", "", "", "")})
	e.static("s", "fd00:9::4")
	e.expectSeq("c", "fd00:9::2", "fd00:9::3", "fd00:9::5")
	e.release("cb")
	e.expectSeq("d", "fd00:9::6", "fd00:9::7")
}

func TestConfigChangeUnreservesAddress(t *testing.T) {
	set := allocator.RangeSet{mustRange(t, "10.10.0.0/24", "10.10.0.10", "10.10.0.14", "")}
	e := newEnv(t, set, "10.10.0.11")
	e.expectSeq("c", "10.10.0.10", "10.10.0.12", "10.10.0.13", "10.10.0.14")
	e.expectExhausted()
	// The operator drops the reservation: .11, far below the old mark, is
	// free now and must be found.
	e.a = allocator.New(set, nil)
	e.expectSeq("d", "10.10.0.11")
	e.expectExhausted()
}

// TestAgainstModel drives the allocator with random allocations, static
// requests and releases and compares every pick with the definition: the
// first free address after the last one handed out, in cyclic order over the
// set's ranges.
func TestAgainstModel(t *testing.T) {
	reserved := []netip.Prefix{netip.MustParsePrefix("10.11.0.16/30"), netip.MustParsePrefix("10.11.1.12/32")}
	t.Run("small", func(t *testing.T) {
		// ~40 addresses, 60 attachments: constant exhaustion and wrap.
		checkModel(t, allocator.RangeSet{
			mustRange(t, "10.11.0.0/24", "10.11.0.2", "10.11.0.30", "10.11.0.1"),
			mustRange(t, "10.11.1.0/24", "10.11.1.5", "10.11.1.20", "10.11.1.9"),
		}, reserved, 60, 3000, 1)
	})
	t.Run("large", func(t *testing.T) {
		// ~750 addresses, 400 attachments, many static requests: the
		// high-water mark and released static addresses above it meet.
		for seed := uint64(2); seed < 4; seed++ {
			checkModel(t, allocator.RangeSet{
				mustRange(t, "10.11.0.0/24", "", "", ""),
				mustRange(t, "10.11.2.0/23", "", "", ""),
			}, reserved, 400, 3000, seed)
		}
	})
}

func checkModel(t *testing.T, set allocator.RangeSet, reserved []netip.Prefix, ids, steps int, seed uint64) {
	var order []netip.Addr // every assignable address, in the set's order
	excluded := func(a netip.Addr) bool {
		for _, r := range set {
			if r.Gateway == a {
				return true
			}
		}
		for _, p := range reserved {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, r := range set {
		for a := r.Start; ; a = a.Next() {
			if !excluded(a) {
				order = append(order, a)
			}
			if a == r.End {
				break
			}
		}
	}
	s, err := store.OpenWith(t.TempDir(), store.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	al := allocator.New(set, reserved)
	owner := map[netip.Addr]string{}
	byID := map[string]netip.Addr{}
	last := -1
	rng := rand.New(rand.NewPCG(seed, 4))
	for step := 0; step < steps; step++ {
		id := fmt.Sprintf("c%d", rng.IntN(ids))
		if held, ok := byID[id]; ok {
			if err := s.Update(func(tx *store.Tx) error {
				_, err := tx.Release(store.Attachment{ContainerID: id})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			delete(owner, held)
			delete(byID, id)
			continue
		}
		if rng.IntN(4) == 0 {
			// A static request for a random free address.
			a := order[rng.IntN(len(order))]
			if _, taken := owner[a]; taken {
				continue
			}
			if err := s.Update(func(tx *store.Tx) error { return tx.Allocate(a, store.Attachment{ContainerID: id}) }); err != nil {
				t.Fatal(err)
			}
			owner[a], byID[id] = id, a
			continue
		}
		want := -1
		for k := 1; k <= len(order); k++ {
			i := (last + k) % len(order)
			if last < 0 {
				i = k - 1
			}
			if _, taken := owner[order[i]]; !taken {
				want = i
				break
			}
		}
		var got netip.Addr
		err := s.Update(func(tx *store.Tx) error {
			a, err := al.Next(tx, true)
			if err != nil {
				return err
			}
			got = a
			return tx.Allocate(a, store.Attachment{ContainerID: id})
		})
		if want < 0 {
			if !errors.Is(err, allocator.ErrExhausted) {
				t.Fatalf("step %d: model has no free address, allocator gave %s (%v)", step, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: want %s, got error %v", step, order[want], err)
		}
		if got != order[want] {
			t.Fatalf("step %d: got %s, want %s (last %v)", step, got, order[want], last)
		}
		owner[got], byID[id] = id, got
		last = want
	}
	if err := s.View(func(tx *store.Tx) error {
		if err := tx.Verify(); err != nil {
			return err
		}
		return al.Verify(tx)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigChangeMidRange(t *testing.T) {
	set := allocator.RangeSet{mustRange(t, "10.12.0.0/24", "10.12.0.10", "10.12.0.16", "")}
	e := newEnv(t, set, "10.12.0.11")
	e.expectSeq("c", "10.12.0.10", "10.12.0.12")
	e.static("s", "10.12.0.13")
	// Dropping the reservation gives the range a fresh mark below the
	// cursor; walking on from the cursor must not move that mark over .11.
	e.a = allocator.New(set, nil)
	e.expectSeq("d", "10.12.0.14", "10.12.0.15", "10.12.0.16", "10.12.0.11")
	e.expectExhausted()
}
