//go:build linux

// Package masq keeps podns's source NAT in nftables, through netlink (no
// nft or iptables exec). Everything lives in the inet table "podns". Per
// network: a postrouting nat chain "masq-<network>" with one rule per
// family,
//
//	ip saddr @pods4-<net> ip daddr != @nets4-<net> ip daddr != 224.0.0.0/4 masquerade
//	ip6 saddr @pods6-<net> ip6 daddr != @nets6-<net> ip6 daddr != ff00::/8 masquerade
//
// a set of pod addresses per family (one element per pod address, its
// comment naming the attachment, so GC can find its owner) and an interval
// set of the network's subnets. ADD adds elements and DEL deletes them by
// address: no chain dump and no rule rebuild per pod, so the cost does not
// grow with the number of pods.
package masq

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/detach"
	"github.com/podns/podns/pkg/digest"
)

// TableName is the nftables table podns owns; it touches no other.
const TableName = "podns"

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// ChainName is the nat chain of one network.
func ChainName(network string) string { return "masq-" + network }

// PodSetName is the set of a network's pod addresses of one family.
func PodSetName(network string, v6 bool) string {
	if v6 {
		return "pods6-" + network
	}
	return "pods4-" + network
}

// NetSetName is the interval set of a network's subnets of one family.
func NetSetName(network string, v6 bool) string {
	if v6 {
		return "nets6-" + network
	}
	return "nets4-" + network
}

func chain(network string) *nftables.Chain {
	return &nftables.Chain{
		Name:     ChainName(network),
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
}

func podSet(network string, v6 bool) *nftables.Set {
	s := &nftables.Set{Table: table, Name: PodSetName(network, v6), KeyType: nftables.TypeIPAddr}
	if v6 {
		s.KeyType = nftables.TypeIP6Addr
	}
	return s
}

func netSet(network string, v6 bool) *nftables.Set {
	s := podSet(network, v6)
	s.Name = NetSetName(network, v6)
	s.Interval = true
	return s
}

// Key identifies an attachment's elements: a digest of container ID and
// interface, so it stays whole however long the container ID is.
func Key(containerID, ifname string) string {
	return digest.Hex(16, containerID, ifname)
}

// Comment is the tag of an attachment's elements: the key first (what GC
// matches), then the attachment and pod for people (may be cut short).
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

// Rule is what an element's (or a legacy rule's) comment says about its
// attachment.
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

// Conn is one nftables netlink socket used for a verb's whole masquerade
// work. Closing it makes the kernel finish the committed transaction's
// destruction work (an RCU grace period, several ms): callers close it in
// the background while they do other work, or hand a duplicate of the
// socket (Dup) to a process that outlives them (pkg/finisher).
type Conn struct {
	c  *nftables.Conn
	nl *netlink.Conn
}

// Open dials the socket.
func Open() (*Conn, error) {
	mc := &Conn{}
	keep := func(nc *netlink.Conn) error { mc.nl = nc; return nil }
	c, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(keep))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	mc.c = c
	return mc, nil
}

// Dup returns a new descriptor of the connection's socket; the caller
// closes it. While any copy is open the kernel does not release the socket.
func (c *Conn) Dup() (int, error) {
	if c.nl == nil {
		return -1, errors.New("nftables socket not open")
	}
	rc, err := c.nl.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("nftables socket: %w", err)
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return -1, fmt.Errorf("nftables socket: %w", cerr)
	}
	if err != nil {
		return -1, fmt.Errorf("dup nftables socket: %w", err)
	}
	return fd, nil
}

var releaseAfterExit atomic.Bool

// ReleaseAfterExit is for a process that exits as soon as its work is done
// (the plugin binary, podnsctl): from then on Close leaves each socket's
// release to the kernel after the exit (pkg/detach). Releasing any nftables
// socket waits until the kernel has destroyed whatever anyone deleted from
// nftables a moment earlier (an RCU grace period): an ADD right after
// another pod's DEL waited for that DEL. A long-lived process does not call
// it; its closed sockets would stay open until it exits.
func ReleaseAfterExit() { releaseAfterExit.Store(true) }

// Close closes the socket. Its release, where the kernel's grace period is
// paid, happens here, or after the process exits (ReleaseAfterExit).
func (c *Conn) Close() error {
	if releaseAfterExit.Load() {
		if fd, err := c.Dup(); err == nil {
			err := c.c.CloseLasting() // the duplicate keeps the socket
			detach.Close(fd)
			return err
		}
	}
	return c.c.CloseLasting()
}

// CloseShared closes this process's descriptor of a socket whose duplicate
// (Dup) another process holds: the release happens there.
func (c *Conn) CloseShared() error { return c.c.CloseLasting() }

func withConn(f func(*Conn) error) error {
	c, err := Open()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

func v6(ip net.IP) bool { return ip.To4() == nil }

func addrBytes(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// subnetElems is the interval of ipn's subnet as set elements.
func subnetElems(ipn *net.IPNet) []nftables.SetElement {
	ip := addrBytes(ipn.IP)
	mask := ipn.Mask
	if len(mask) == net.IPv6len && len(ip) == net.IPv4len {
		mask = mask[12:]
	}
	if len(mask) != len(ip) {
		mask = net.CIDRMask(len(ip)*8, len(ip)*8)
	}
	start := net.IP(ip).Mask(mask)
	end := make([]byte, len(start))
	carry := true
	for i := len(start) - 1; i >= 0; i-- {
		end[i] = start[i] | ^mask[i]
	}
	// The interval's end element is the first address after the subnet;
	// none when the subnet reaches the top of the address space.
	for i := len(end) - 1; i >= 0 && carry; i-- {
		end[i]++
		carry = end[i] == 0
	}
	out := []nftables.SetElement{{Key: []byte(start)}}
	if !carry {
		out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
	}
	return out
}

// addElems queues the elements of one attachment's addresses.
func addElems(c *nftables.Conn, network, comment string, ipns []*net.IPNet) error {
	for _, fam := range []bool{false, true} {
		var pods, nets []nftables.SetElement
		for _, ipn := range ipns {
			if v6(ipn.IP) != fam {
				continue
			}
			pods = append(pods, nftables.SetElement{Key: addrBytes(ipn.IP), Comment: comment})
			nets = append(nets, subnetElems(ipn)...)
		}
		if len(pods) == 0 {
			continue
		}
		if err := c.SetAddElements(podSet(network, fam), pods); err != nil {
			return err
		}
		if err := c.SetAddElements(netSet(network, fam), nets); err != nil {
			return err
		}
	}
	return nil
}

// Add masquerades traffic from each address in ipns to anywhere outside
// the network's subnets (and not multicast). The common case is one commit
// that adds set elements; the first pod of a network (or after the last
// one left) also creates the chain, sets and rules.
func (c *Conn) Add(network, containerID, ifname, pod string, ipns []*net.IPNet) error {
	unlock, err := lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	comment := Comment(containerID, ifname, pod)
	if err := addElems(c.c, network, comment, ipns); err != nil {
		return fmt.Errorf("masquerade elements for %s/%s: %w", containerID, ifname, err)
	}
	err = c.c.Flush()
	if err == nil {
		return nil
	}
	if !isENOENT(err) {
		return fmt.Errorf("add masquerade for %s/%s: %w", containerID, ifname, err)
	}
	if err := c.setup(network); err != nil {
		return err
	}
	if err := addElems(c.c, network, comment, ipns); err != nil {
		return fmt.Errorf("masquerade elements for %s/%s: %w", containerID, ifname, err)
	}
	if err := c.c.Flush(); err != nil {
		return fmt.Errorf("add masquerade for %s/%s: %w", containerID, ifname, err)
	}
	return nil
}

// Add is Conn.Add on a connection of its own.
func Add(network, containerID, ifname, pod string, ipns []*net.IPNet) error {
	return withConn(func(c *Conn) error { return c.Add(network, containerID, ifname, pod, ipns) })
}

// setup queues the network's table, chain, sets and its two rules. The
// chain is flushed first in the same transaction, so concurrent setups
// leave exactly one rule per family. Per-pod rules of older podns versions
// become set elements on the way.
func (c *Conn) setup(network string) error {
	legacy, err := c.legacyRules(network)
	if err != nil {
		return err
	}
	c.c.AddTable(table)
	ch := c.c.AddChain(chain(network))
	c.c.FlushChain(ch)
	for _, fam := range []bool{false, true} {
		ps, ns := podSet(network, fam), netSet(network, fam)
		if err := c.c.AddSet(ps, nil); err != nil {
			return fmt.Errorf("set %s: %w", ps.Name, err)
		}
		if err := c.c.AddSet(ns, nil); err != nil {
			return fmt.Errorf("set %s: %w", ns.Name, err)
		}
		c.c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: ruleExprs(ps, ns, fam)})
	}
	for _, l := range legacy {
		if err := addElems(c.c, network, l.comment, []*net.IPNet{l.addr}); err != nil {
			return err
		}
	}
	return nil
}

func ruleExprs(pods, nets *nftables.Set, isV6 bool) []expr.Any {
	proto, saddrOff, daddrOff, alen := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4)
	mcast := &net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}
	if isV6 {
		proto, saddrOff, daddrOff, alen = unix.NFPROTO_IPV6, 8, 24, 16
		mcast = &net.IPNet{IP: net.ParseIP("ff00::"), Mask: net.CIDRMask(8, 128)}
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: alen},
		&expr.Lookup{SourceRegister: 1, SetName: pods.Name, SetID: pods.ID},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: alen},
		&expr.Lookup{SourceRegister: 1, SetName: nets.Name, SetID: nets.ID, Invert: true},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: alen},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: alen, Mask: []byte(mcast.Mask), Xor: make([]byte, alen)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(mcast.IP.Mask(mcast.Mask))},
		&expr.Masq{},
	}
}

// legacyRule is a per-pod rule of an older podns: its comment and address.
type legacyRule struct {
	rule    *nftables.Rule
	comment string
	addr    *net.IPNet
}

// legacyRules lists the chain's per-pod rules (comment "k=..."). A missing
// table or chain is none.
func (c *Conn) legacyRules(network string) ([]legacyRule, error) {
	rs, err := c.c.GetRules(table, &nftables.Chain{Name: ChainName(network), Table: table})
	if err != nil {
		if isENOENT(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list rules of chain %s: %w", ChainName(network), err)
	}
	var out []legacyRule
	for _, r := range rs {
		cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		if _, ok := parseComment(cm); !ok || len(r.Exprs) < 7 {
			continue
		}
		src, ok1 := r.Exprs[3].(*expr.Cmp)
		bw, ok2 := r.Exprs[5].(*expr.Bitwise)
		if !ok1 || !ok2 || len(bw.Mask) != len(src.Data) {
			continue
		}
		out = append(out, legacyRule{rule: r, comment: cm, addr: &net.IPNet{IP: net.IP(src.Data), Mask: net.IPMask(bw.Mask)}})
	}
	return out, nil
}

// DelAddrs removes the elements of the given pod addresses (what IPAM says
// the attachment holds). Addresses without an element are skipped.
func (c *Conn) DelAddrs(network string, ips []net.IP) error {
	if len(ips) == 0 {
		return nil
	}
	byFam := map[bool][]nftables.SetElement{}
	for _, ip := range ips {
		byFam[v6(ip)] = append(byFam[v6(ip)], nftables.SetElement{Key: addrBytes(ip)})
	}
	for fam, els := range byFam {
		if err := c.c.SetDeleteElements(podSet(network, fam), els); err != nil {
			return err
		}
	}
	err := c.c.Flush()
	if err == nil || !isENOENT(err) || len(ips) == 1 {
		// With one element, ENOENT already says all there is: it is gone
		// (or ipMasq is off); the one-by-one retry would resend the same.
		if isENOENT(err) {
			return nil
		}
		return wrapDel(err)
	}
	// Some element or set is missing (a DEL repeated, ipMasq switched on
	// after ADD): delete one by one and skip what is not there.
	for fam, els := range byFam {
		for _, e := range els {
			if err := c.c.SetDeleteElements(podSet(network, fam), []nftables.SetElement{e}); err != nil {
				return err
			}
			if err := c.c.Flush(); err != nil && !isENOENT(err) {
				return wrapDel(err)
			}
		}
	}
	return nil
}

// DelAddrsIfSet is DelAddrs for a caller that cannot tell whether the
// network ever had masquerade: a DEL whose config has ipMasq off (it may have
// been on at ADD). It first asks, with reads that start no transaction,
// whether the network's pod set of each family exists, and deletes only from
// those that do. A delete from a missing set fails, and the kernel aborts a
// failed nftables transaction only after an RCU grace period: 10-25 ms that
// every such DEL waited here.
func (c *Conn) DelAddrsIfSet(network string, ips []net.IP) error {
	have := map[bool]bool{}
	var keep []net.IP
	for _, ip := range ips {
		fam := v6(ip)
		ok, seen := have[fam]
		if !seen {
			_, err := c.c.GetSetByName(table, PodSetName(network, fam))
			switch {
			case err == nil:
				ok = true
			case isENOENT(err):
			default:
				return fmt.Errorf("look up masquerade set %s: %w", PodSetName(network, fam), err)
			}
			have[fam] = ok
		}
		if ok {
			keep = append(keep, ip)
		}
	}
	return c.DelAddrs(network, keep)
}

func wrapDel(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("delete masquerade elements: %w", err)
}

// element is one pod address element with its owner.
type element struct {
	v6   bool
	el   nftables.SetElement
	rule Rule
}

// elements lists the network's pod address elements; a missing table or
// set is none.
func (c *Conn) elements(network string) ([]element, error) {
	els, _, err := c.elementsAny(network)
	return els, err
}

// elementsAny is elements, and whether either pod set exists at all.
func (c *Conn) elementsAny(network string) ([]element, bool, error) {
	var out []element
	any := false
	for _, fam := range []bool{false, true} {
		els, err := c.c.GetSetElements(podSet(network, fam))
		if err != nil {
			if isENOENT(err) {
				continue
			}
			return nil, false, fmt.Errorf("list set %s: %w", PodSetName(network, fam), err)
		}
		any = true
		for _, e := range els {
			r, _ := parseComment(e.Comment)
			out = append(out, element{v6: fam, el: e, rule: r})
		}
	}
	return out, any, nil
}

// chunk bounds the elements or rules deleted per netlink message and per
// commit: each message is ACKed, and thousands of ACKs at once overflow
// the socket's receive buffer (ENOBUFS).
const chunk = 256

// remove deletes the elements and legacy rules of attachments for which
// drop returns true, in bounded batches.
func (c *Conn) remove(network string, drop func(Rule) bool) error {
	els, err := c.elements(network)
	if err != nil {
		return err
	}
	byFam := map[bool][]nftables.SetElement{}
	for _, e := range els {
		if drop(e.rule) {
			byFam[e.v6] = append(byFam[e.v6], nftables.SetElement{Key: e.el.Key})
		}
	}
	for fam, list := range byFam {
		for len(list) > 0 {
			n := min(chunk, len(list))
			if err := c.c.SetDeleteElements(podSet(network, fam), list[:n]); err != nil {
				return err
			}
			if err := c.c.Flush(); err != nil && !isENOENT(err) {
				return wrapDel(err)
			}
			list = list[n:]
		}
	}
	legacy, err := c.legacyRules(network)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range legacy {
		a, _ := parseComment(l.comment)
		if !drop(a) {
			continue
		}
		if err := c.c.DelRule(l.rule); err != nil {
			return fmt.Errorf("delete rule %d: %w", l.rule.Handle, err)
		}
		if n++; n%chunk == 0 {
			if err := c.c.Flush(); err != nil && !isENOENT(err) {
				return fmt.Errorf("delete masquerade rules: %w", err)
			}
		}
	}
	if err := c.c.Flush(); err != nil && !isENOENT(err) {
		return fmt.Errorf("delete masquerade rules: %w", err)
	}
	return nil
}

// Remove deletes the masquerade state of the attachments for which drop
// returns true. A missing table, chain or set is not an error.
func Remove(network string, drop func(Rule) bool) error {
	return withConn(func(c *Conn) error { return c.remove(network, drop) })
}

// DelKey removes one attachment's elements, found by their comment: for a
// DEL that cannot ask IPAM which addresses the attachment held.
func (c *Conn) DelKey(network, containerID, ifname string) error {
	key := Key(containerID, ifname)
	return c.remove(network, func(a Rule) bool { return a.Key == key })
}

// Del removes one attachment's masquerade state.
func Del(network, containerID, ifname string) error {
	return withConn(func(c *Conn) error { return c.DelKey(network, containerID, ifname) })
}

// Attachments lists the attachments that have masquerade state.
func Attachments(network string) ([]Rule, error) {
	var out []Rule
	err := withConn(func(c *Conn) error {
		els, err := c.elements(network)
		if err != nil {
			return err
		}
		legacy, err := c.legacyRules(network)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		add := func(r Rule) {
			if r.Key != "" && !seen[r.Key] {
				seen[r.Key] = true
				out = append(out, r)
			}
		}
		for _, e := range els {
			add(e.rule)
		}
		for _, l := range legacy {
			r, _ := parseComment(l.comment)
			add(r)
		}
		return nil
	})
	return out, err
}

// Check verifies that every address in ips is masqueraded for this
// attachment: its element carries the attachment's key and the chain has
// the family's rule.
func Check(network, containerID, ifname string, ips []*net.IPNet) error {
	return withConn(func(c *Conn) error {
		els, err := c.elements(network)
		if err != nil {
			return err
		}
		rs, err := c.c.GetRules(table, &nftables.Chain{Name: ChainName(network), Table: table})
		if err != nil && !isENOENT(err) {
			return fmt.Errorf("list rules of chain %s: %w", ChainName(network), err)
		}
		key := Key(containerID, ifname)
		for _, ipn := range ips {
			found := false
			for _, e := range els {
				if e.rule.Key == key && net.IP(e.el.Key).Equal(ipn.IP) {
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("no masquerade element for %s in set %s", ipn.IP, PodSetName(network, v6(ipn.IP)))
			}
			if !hasLookup(rs, PodSetName(network, v6(ipn.IP))) {
				return fmt.Errorf("no masquerade rule for set %s in chain %s", PodSetName(network, v6(ipn.IP)), ChainName(network))
			}
		}
		return nil
	})
}

func hasLookup(rs []*nftables.Rule, set string) bool {
	for _, r := range rs {
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok && l.SetName == set && !l.Invert {
				return true
			}
		}
	}
	return false
}

// Prune removes the network's chain and sets when no pod address is left
// in them, and the podns table when it holds no chains or sets. It runs
// under the exclusive lock, so no ADD adds an element between the look and
// the delete.
func (c *Conn) Prune(network string) error { return c.prune(network, true) }

// PruneIfEmpty is Prune for DEL: it does nothing, cheaply, for a network
// that has no pod address sets (ipMasq off).
func (c *Conn) PruneIfEmpty(network string) error { return c.prune(network, false) }

func (c *Conn) prune(network string, thorough bool) error {
	// Without the lock first: DEL must not serialise with every ADD on
	// the exclusive lock when pods remain or ipMasq is off.
	els, any, err := c.elementsAny(network)
	if err != nil || len(els) > 0 || (!any && !thorough) {
		return err
	}
	unlock, err := lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if els, err := c.elements(network); err != nil || len(els) > 0 {
		return err
	}
	if legacy, err := c.legacyRules(network); err != nil || len(legacy) > 0 {
		return err
	}
	chains, err := c.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	sets, err := c.c.GetSets(table)
	if err != nil && !isENOENT(err) {
		return fmt.Errorf("list sets: %w", err)
	}
	// What of the table is this network's, and whether anything else is.
	mine := map[string]bool{}
	for _, fam := range []bool{false, true} {
		mine[PodSetName(network, fam)], mine[NetSetName(network, fam)] = true, true
	}
	haveChain, others := false, false
	var mySets []*nftables.Set
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		if ch.Name == ChainName(network) {
			haveChain = true
		} else {
			others = true
		}
	}
	for _, st := range sets {
		if mine[st.Name] {
			mySets = append(mySets, st)
		} else {
			others = true
		}
	}
	tableExists := len(sets) > 0 || haveChain || err == nil
	if !tableExists || (!haveChain && len(mySets) == 0 && others) {
		return nil
	}
	// One transaction: a crash cannot leave sets without their rule.
	if !others {
		c.c.DelTable(table)
	} else {
		if haveChain {
			ch := &nftables.Chain{Name: ChainName(network), Table: table}
			c.c.FlushChain(ch)
			c.c.DelChain(ch)
		}
		for _, st := range mySets {
			c.c.DelSet(&nftables.Set{Table: table, Name: st.Name})
		}
	}
	if err := c.c.Flush(); err != nil && !isENOENT(err) {
		return fmt.Errorf("delete masquerade chain and sets of %s: %w", network, err)
	}
	return nil
}

// Prune is Conn.Prune on a connection of its own.
func Prune(network string) error { return withConn(func(c *Conn) error { return c.Prune(network) }) }

// LockFile serialises structure changes: adding elements (shared) against
// removing a network's emptied chain and sets (exclusive). The kernel has
// no "delete this set only if empty" a library here can send atomically.
const LockFile = "/run/podns/masq.lock"

func lock(how int) (func(), error) {
	f, err := os.OpenFile(LockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll("/run/podns", 0o700); err == nil {
			f, err = os.OpenFile(LockFile, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("masquerade lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("masquerade lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// isENOENT reports a missing table, chain, set or element. The library
// formats some netlink errors with %v, losing the errno, so the kernel's
// message text is matched too.
func isENOENT(err error) bool {
	return errors.Is(err, unix.ENOENT) || err != nil && strings.HasSuffix(err.Error(), unix.ENOENT.Error())
}
