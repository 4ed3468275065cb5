//go:build linux

// Package masq keeps podns's source NAT in nftables, through netlink (no
// nft or iptables exec). Everything lives in the inet table "podns": one
// postrouting nat chain per network, one masquerade rule per pod address,
// each rule tagged with a comment naming its attachment (container ID and
// interface), so DEL and GC can find it with the pod's netns long gone.
package masq

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table podns owns; it touches no other.
const TableName = "podns"

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// ChainName is the nat chain of one network.
func ChainName(network string) string { return "masq-" + network }

func chain(network string) *nftables.Chain {
	return &nftables.Chain{
		Name:     ChainName(network),
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
}

// Key identifies an attachment's rules: a digest of container ID and
// interface, so it stays whole however long the container ID is.
func Key(containerID, ifname string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + ifname))
	return hex.EncodeToString(h[:])[:16]
}

// Comment is the tag of an attachment's rules: the key first (what DEL and
// GC match), then the attachment and pod for people (may be cut short).
func Comment(containerID, ifname, pod string) string {
	s := "k=" + Key(containerID, ifname) + " if=" + ifname + " id=" + containerID
	if pod != "" {
		s += " pod=" + pod
	}
	if len(s) > 250 {
		s = s[:250]
	}
	return s
}

// Rule is what a rule's comment says about its attachment.
type Rule struct{ Key, ContainerID, IfName string }

// Attachment is the former name of Rule, kept for callers.
type Attachment = Rule

func parseComment(c string) (Rule, bool) {
	var r Rule
	for _, f := range strings.Fields(c) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "k":
			r.Key = v
		case "id":
			r.ContainerID = v
		case "if":
			r.IfName = v
		}
	}
	return r, r.Key != ""
}

// Add installs masquerading for traffic from each address in ipns to
// anywhere outside its subnet (and not multicast), in one netlink batch.
func Add(network, containerID, ifname, pod string, ipns []*net.IPNet) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(table)
	ch := c.AddChain(chain(network))
	ud := userdata.AppendString(nil, userdata.TypeComment, Comment(containerID, ifname, pod))
	for _, ipn := range ipns {
		c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: masqExprs(ipn), UserData: ud})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add masquerade rules for %s/%s: %w", containerID, ifname, err)
	}
	return nil
}

func masqExprs(ipn *net.IPNet) []expr.Any {
	proto, saddrOff, daddrOff, alen := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4)
	ip := ipn.IP.To4()
	mcast := &net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}
	if ip == nil {
		proto, saddrOff, daddrOff, alen = unix.NFPROTO_IPV6, 8, 24, 16
		ip = ipn.IP.To16()
		mcast = &net.IPNet{IP: net.ParseIP("ff00::"), Mask: net.CIDRMask(8, 128)}
	}
	mask := ipn.Mask
	if len(mask) != int(alen) {
		mask = net.CIDRMask(len(mask)*8, int(alen)*8)
	}
	subnet := &net.IPNet{IP: ip.Mask(mask), Mask: mask}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: alen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip)},
	}
	for _, n := range []*net.IPNet{subnet, mcast} {
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: alen},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: alen, Mask: []byte(n.Mask), Xor: make([]byte, alen)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(n.IP.Mask(n.Mask))},
		)
	}
	return append(ex, &expr.Masq{})
}

// rules returns the network's rules; a missing table or chain is no rules.
func rules(c *nftables.Conn, network string) ([]*nftables.Rule, error) {
	rs, err := c.GetRules(table, &nftables.Chain{Name: ChainName(network), Table: table})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("list rules of chain %s: %w", ChainName(network), err)
	}
	return rs, nil
}

// Attachments lists the attachments that have rules in the network's chain.
func Attachments(network string) ([]Rule, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	rs, err := rules(c, network)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Rule
	for _, r := range rs {
		cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		a, ok := parseComment(cm)
		if ok && !seen[a.Key] {
			seen[a.Key] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// Remove deletes the rules of the attachments for which drop returns true.
// A missing table or chain is not an error.
func Remove(network string, drop func(Rule) bool) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rs, err := rules(c, network)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range rs {
		cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		a, ok := parseComment(cm)
		if !ok || !drop(a) {
			continue
		}
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete rule %d: %w", r.Handle, err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete masquerade rules: %w", err)
	}
	return nil
}

// Del removes one attachment's rules.
func Del(network, containerID, ifname string) error {
	key := Key(containerID, ifname)
	return Remove(network, func(a Rule) bool { return a.Key == key })
}

// Check verifies that every address in ips has its masquerade rule.
func Check(network, containerID, ifname string, ips []*net.IPNet) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rs, err := rules(c, network)
	if err != nil {
		return err
	}
	key := Key(containerID, ifname)
	for _, ipn := range ips {
		want := masqExprs(ipn)
		found := false
		for _, r := range rs {
			cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			a, ok := parseComment(cm)
			if ok && a.Key == key && sameSaddr(r.Exprs, want) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no masquerade rule for %s in chain %s", ipn.IP, ChainName(network))
		}
	}
	return nil
}

// sameSaddr compares the source address a rule matches (its 4th expression).
func sameSaddr(got, want []expr.Any) bool {
	if len(got) < 4 {
		return false
	}
	g, ok1 := got[3].(*expr.Cmp)
	w, ok2 := want[3].(*expr.Cmp)
	return ok1 && ok2 && string(g.Data) == string(w.Data)
}

// Prune deletes the network's chain when it holds no rules, and the podns
// table when it holds no chains. A concurrent ADD that just added a rule
// makes the kernel refuse (EBUSY); that is fine, the chain is in use.
func Prune(network string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rs, err := rules(c, network)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		c.DelChain(&nftables.Chain{Name: ChainName(network), Table: table})
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("delete empty chain %s: %w", ChainName(network), err)
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			return nil
		}
	}
	c.DelTable(table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("delete empty table %s: %w", TableName, err)
	}
	return nil
}
