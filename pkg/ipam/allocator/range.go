// Package allocator holds podns-ipam's address ranges and the round-robin
// allocation algorithm. It is pure: the allocations themselves live behind
// the Index interface (the bbolt store implements it).
package allocator

import (
	"fmt"
	"net/netip"
)

// Range is one contiguous block of assignable addresses inside a subnet.
type Range struct {
	Subnet  netip.Prefix
	Start   netip.Addr // first assignable address, inclusive
	End     netip.Addr // last assignable address, inclusive
	Gateway netip.Addr // zero when the range has no gateway
}

// RangeSet is a list of ranges of one family; an attachment gets one
// address from each range set.
type RangeSet []Range

// NewRange validates a subnet and its optional start, end and gateway and
// fills in host-local's defaults: start is the first host address, end the
// last (v4 broadcast excluded), gateway the first host address. /31 and
// /127 (RFC 3021, RFC 6164) use both addresses; /32 and /128 their only
// address; none of these get a default gateway.
func NewRange(subnet netip.Prefix, start, end, gw netip.Addr, defaultGateway bool) (Range, error) {
	if !subnet.IsValid() {
		return Range{}, fmt.Errorf("invalid subnet")
	}
	if subnet.Addr().Is4In6() {
		return Range{}, fmt.Errorf("subnet %s: IPv4-mapped IPv6 subnets are not supported", subnet)
	}
	if subnet.Masked() != subnet {
		return Range{}, fmt.Errorf("subnet %s has host bits set (did you mean %s?)", subnet, subnet.Masked())
	}
	first, last := Usable(subnet)
	r := Range{Subnet: subnet, Start: first, End: last}
	if start.IsValid() {
		start = start.Unmap()
		if !subnet.Contains(start) || start.Less(first) || last.Less(start) {
			return Range{}, fmt.Errorf("rangeStart %s is not a usable address of %s", start, subnet)
		}
		r.Start = start
	}
	if end.IsValid() {
		end = end.Unmap()
		if !subnet.Contains(end) || end.Less(first) || last.Less(end) {
			return Range{}, fmt.Errorf("rangeEnd %s is not a usable address of %s", end, subnet)
		}
		r.End = end
	}
	if r.End.Less(r.Start) {
		return Range{}, fmt.Errorf("rangeStart %s is after rangeEnd %s", r.Start, r.End)
	}
	if gw.IsValid() {
		gw = gw.Unmap()
		if !subnet.Contains(gw) {
			return Range{}, fmt.Errorf("gateway %s is not in subnet %s", gw, subnet)
		}
		r.Gateway = gw
	} else if defaultGateway && hostBits(subnet) >= 2 {
		r.Gateway = subnet.Addr().Next()
	}
	return r, nil
}

func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// Usable returns the first and last assignable addresses of a subnet: the
// v4 network and broadcast addresses and the v6 subnet-router anycast
// address are skipped unless the subnet is a point-to-point /31, /32, /127
// or /128.
func Usable(p netip.Prefix) (first, last netip.Addr) {
	first = p.Masked().Addr()
	last = lastAddr(p)
	if hostBits(p) >= 2 {
		first = first.Next()
		if first.Is4() {
			last = last.Prev()
		}
	}
	return first, last
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether addr lies between Start and End.
func (r Range) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.BitLen() == r.Start.BitLen() && !addr.Less(r.Start) && !r.End.Less(addr)
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	if r.Start.BitLen() != o.Start.BitLen() {
		return false
	}
	return !r.End.Less(o.Start) && !o.End.Less(r.Start)
}

func (r Range) String() string {
	return fmt.Sprintf("%s (%s-%s)", r.Subnet, r.Start, r.End)
}

// Validate checks a range set: not empty, one family, no overlaps.
func (s RangeSet) Validate() error {
	if len(s) == 0 {
		return fmt.Errorf("empty range set")
	}
	for i, r := range s {
		if r.Start.BitLen() != s[0].Start.BitLen() {
			return fmt.Errorf("range set mixes IPv4 and IPv6 (%s and %s)", s[0].Subnet, r.Subnet)
		}
		for _, o := range s[i+1:] {
			if r.Overlaps(o) {
				return fmt.Errorf("ranges %s and %s overlap", r, o)
			}
		}
	}
	return nil
}

// Overlaps reports whether any range of s overlaps any range of o.
func (s RangeSet) Overlaps(o RangeSet) bool {
	for _, a := range s {
		for _, b := range o {
			if a.Overlaps(b) {
				return true
			}
		}
	}
	return false
}

// Find returns the index of the range holding addr, or -1.
func (s RangeSet) Find(addr netip.Addr) int {
	for i, r := range s {
		if r.Contains(addr) {
			return i
		}
	}
	return -1
}

func (s RangeSet) String() string {
	out := ""
	for i, r := range s {
		if i > 0 {
			out += ", "
		}
		out += r.String()
	}
	return "[" + out + "]"
}
