package allocator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
)

// ErrExhausted is returned (wrapped) when a range set has no free address.
var ErrExhausted = errors.New("no free address")

// Index is the allocation state the allocator consults. Its methods run
// inside one store transaction.
type Index interface {
	// IsAllocated reports whether addr belongs to an attachment.
	IsAllocated(addr netip.Addr) bool
	// FreeSeek returns the lowest address in [lo, hi] that was released
	// and not allocated since.
	FreeSeek(lo, hi netip.Addr) (netip.Addr, bool)
	// Meta and SetMeta keep the allocator's cursors.
	Meta(key string) (netip.Addr, bool)
	SetMeta(key string, addr netip.Addr) error
}

// Allocator hands out addresses of one range set, round-robin from the last
// address it handed out.
//
// Every range keeps a high-water mark hw: each address of the range at or
// below hw is allocated, excluded, or recorded in the index's free list
// (released addresses are always recorded there). So the first free address
// at or after any point is the smaller of a free-list seek and a short walk
// from hw+1 over addresses taken out of order (static IPs); the walk moves hw
// forward, so its cost is paid once per address over the store's life. Both
// are O(log n) however full the range is.
//
// A sparse range (more than SparseThreshold addresses, like an IPv6 /64)
// never fills up, so it keeps no free list or mark: it walks from the cursor
// over the few allocated addresses, and its released addresses are not
// recorded (the free list would grow with every pod ever deleted).
type Allocator struct {
	Set       RangeSet
	Reserved  []netip.Prefix
	lastKey   string
	rangeKeys []string
	sparse    []bool
}

// SparseThreshold is the size above which a range is sparse.
const SparseThreshold = 1 << 20

// Sparse reports whether r has more than SparseThreshold addresses.
func (r Range) Sparse() bool {
	s, e := r.Start.As16(), r.End.As16()
	sh, sl := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
	eh, el := binary.BigEndian.Uint64(e[:8]), binary.BigEndian.Uint64(e[8:])
	dl := el - sl
	var borrow uint64
	if el < sl {
		borrow = 1
	}
	return eh-sh-borrow > 0 || dl >= SparseThreshold
}

// New returns an allocator for set that never hands out gateways or
// addresses inside reserved.
func New(set RangeSet, reserved []netip.Prefix) *Allocator {
	a := &Allocator{Set: set, Reserved: reserved}
	// The exclusions are part of each mark's key: a config change that
	// frees an address below a mark must not leave it unreachable.
	h := fnv.New64a()
	for _, r := range set {
		fmt.Fprintf(h, "gw %s;", r.Gateway)
	}
	for _, p := range reserved {
		fmt.Fprintf(h, "res %s;", p)
	}
	excl := fmt.Sprintf("%016x", h.Sum64())
	var sk []string
	for _, r := range set {
		sk = append(sk, r.Start.String()+"-"+r.End.String())
		a.sparse = append(a.sparse, r.Sparse())
		a.rangeKeys = append(a.rangeKeys, "hw/"+r.Start.String()+"-"+r.End.String()+"/"+excl)
	}
	a.lastKey = "last/" + strings.Join(sk, ",")
	return a
}

// Excluded reports whether addr must never be handed out: a gateway of the
// set or a reserved address.
func (a *Allocator) Excluded(addr netip.Addr) bool {
	for _, r := range a.Set {
		if r.Gateway == addr {
			return true
		}
	}
	for _, p := range a.Reserved {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// LastKey is the metadata key of the set's round-robin cursor.
func (a *Allocator) LastKey() string { return a.lastKey }

// Next picks the first free address after the last one handed out,
// wrapping around the set, and records it as the last one. With write false
// nothing is recorded (a read-only probe).
func (a *Allocator) Next(idx Index, write bool) (netip.Addr, error) {
	n := len(a.Set)
	type seg struct {
		i      int
		lo, hi netip.Addr
	}
	var segs []seg
	last, ok := idx.Meta(a.lastKey)
	r := -1
	if ok {
		r = a.Set.Find(last)
	}
	if r < 0 {
		for i, rg := range a.Set {
			segs = append(segs, seg{i, rg.Start, rg.End})
		}
	} else {
		if last != a.Set[r].End {
			segs = append(segs, seg{r, last.Next(), a.Set[r].End})
		}
		for k := 1; k < n; k++ {
			i := (r + k) % n
			segs = append(segs, seg{i, a.Set[i].Start, a.Set[i].End})
		}
		segs = append(segs, seg{r, a.Set[r].Start, last})
	}
	for _, s := range segs {
		addr, ok, err := a.firstFree(idx, s.i, s.lo, s.hi, write)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			if write {
				if err := idx.SetMeta(a.lastKey, addr); err != nil {
					return netip.Addr{}, err
				}
			}
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("range set %s: %w", a.Set, ErrExhausted)
}

// HasFree reports whether at least one address of the set is free.
func (a *Allocator) HasFree(idx Index) (bool, error) {
	for i, rg := range a.Set {
		_, ok, err := a.firstFree(idx, i, rg.Start, rg.End, false)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// firstFree returns the lowest free address in [lo, hi] of range i.
func (a *Allocator) firstFree(idx Index, i int, lo, hi netip.Addr, write bool) (netip.Addr, bool, error) {
	rg := a.Set[i]
	if a.sparse[i] {
		for p := lo; ; p = p.Next() {
			if !a.Excluded(p) && !idx.IsAllocated(p) {
				return p, true, nil
			}
			if p == hi {
				return netip.Addr{}, false, nil
			}
		}
	}
	// Candidate 1: a released address.
	c1, ok1 := idx.FreeSeek(lo, hi)
	for ok1 && a.Excluded(c1) {
		if c1 == hi {
			ok1 = false
			break
		}
		c1, ok1 = idx.FreeSeek(c1.Next(), hi)
	}
	// Candidate 2: the first free address above the high-water mark.
	key := a.rangeKeys[i]
	hwNext := rg.Start
	if hw, ok := idx.Meta(key); ok && rg.Contains(hw) {
		if hw == rg.End {
			hwNext = netip.Addr{}
		} else {
			hwNext = hw.Next()
		}
	}
	var c2 netip.Addr
	ok2 := false
	if hwNext.IsValid() && !hi.Less(hwNext) {
		p := hwNext
		if p.Less(lo) {
			p = lo
		}
		contiguous := p == hwNext
		var newHW netip.Addr
		for !hi.Less(p) && (!ok1 || p.Less(c1)) {
			if !a.Excluded(p) && !idx.IsAllocated(p) {
				c2, ok2 = p, true
				break
			}
			if contiguous {
				newHW = p
			}
			if p == hi {
				break
			}
			p = p.Next()
		}
		if ok2 && contiguous && (!ok1 || c2.Less(c1)) {
			// c2 is about to be allocated by the caller.
			newHW = c2
		}
		if write && newHW.IsValid() {
			if err := idx.SetMeta(key, newHW); err != nil {
				return netip.Addr{}, false, err
			}
		}
	}
	switch {
	case ok1 && ok2:
		if c2.Less(c1) {
			return c2, true, nil
		}
		return c1, true, nil
	case ok1:
		return c1, true, nil
	case ok2:
		return c2, true, nil
	}
	return netip.Addr{}, false, nil
}

// Verify checks the invariant behind the high-water marks: every assignable
// address of a dense range at or below its mark is allocated or in the free
// list. An address that is neither could never be handed out again. It
// walks the ranges, so it is for tests and tooling, not the hot path.
func (a *Allocator) Verify(idx Index) error {
	for i, rg := range a.Set {
		if a.sparse[i] {
			continue
		}
		hw, ok := idx.Meta(a.rangeKeys[i])
		if !ok || !rg.Contains(hw) {
			continue
		}
		for p := rg.Start; ; p = p.Next() {
			if !a.Excluded(p) && !idx.IsAllocated(p) {
				if f, ok := idx.FreeSeek(p, p); !ok || f != p {
					return fmt.Errorf("range %s: %s is below the mark %s but neither allocated nor free: it would never be handed out", rg, p, hw)
				}
			}
			if p == hw {
				break
			}
		}
	}
	return nil
}
