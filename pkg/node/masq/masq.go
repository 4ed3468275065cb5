//go:build linux

// Package masq keeps podns-node's masquerade rules: traffic from this
// node's pod CIDRs to anywhere outside the cluster's pod CIDRs leaves with
// the node's address. Pod-to-pod traffic between nodes keeps its source. The
// rules live in their own nftables table, apart from the CNI plugin's.
package masq

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the agent's nftables table (family inet).
const TableName = "podns-node"

// Rules are the inputs of the masquerade table.
type Rules struct {
	PodCIDRs     []netip.Prefix // this node's pod CIDRs: sources to masquerade
	ClusterCIDRs []netip.Prefix // every pod CIDR in the cluster: destinations to leave alone
}

// Normalize sorts and deduplicates, so two equal rule sets compare equal.
func (r Rules) Normalize() Rules {
	norm := func(in []netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(in))
		for _, p := range in {
			out = append(out, p.Masked())
		}
		slices.SortFunc(out, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		return slices.Compact(out)
	}
	return Rules{PodCIDRs: norm(r.PodCIDRs), ClusterCIDRs: norm(r.ClusterCIDRs)}
}

// Equal reports whether both describe the same table.
func (r Rules) Equal(o Rules) bool {
	a, b := r.Normalize(), o.Normalize()
	return slices.Equal(a.PodCIDRs, b.PodCIDRs) && slices.Equal(a.ClusterCIDRs, b.ClusterCIDRs)
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// Apply replaces the table's contents with r in one atomic batch: add the
// table, delete it, add it again with its chain and rules. Packets never see
// a half-built table.
func Apply(c *nftables.Conn, r Rules) error {
	r = r.Normalize()
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	ch := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	// First return for any destination inside the cluster, then masquerade
	// what is left if it comes from one of our pods.
	for _, d := range r.ClusterCIDRs {
		c.AddRule(&nftables.Rule{Table: table, Chain: ch,
			Exprs: append(match(d, false), &expr.Verdict{Kind: expr.VerdictReturn})})
	}
	for _, s := range r.PodCIDRs {
		c.AddRule(&nftables.Rule{Table: table, Chain: ch,
			Exprs: append(match(s, true), &expr.Masq{})})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// Present reports whether the agent's table exists.
func Present(c *nftables.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// Delete removes the table; a missing table is not an error.
func Delete(c *nftables.Conn) error {
	ok, err := Present(c)
	if err != nil || !ok {
		return err
	}
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// match builds `meta nfproto ipvX ip[6] saddr|daddr & mask == net`.
func match(p netip.Prefix, source bool) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if source {
		off = 12
	}
	if p.Addr().Is6() {
		proto, off, n = unix.NFPROTO_IPV6, 24, 16
		if source {
			off = 8
		}
	}
	mask := []byte(net.CIDRMask(p.Bits(), int(n)*8))
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}
