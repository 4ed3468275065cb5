//go:build linux

// Package ipam is podns-ipam: host-local-compatible address management
// backed by a crash-safe bbolt store, callable in-process (CmdAdd, ...) by
// the podns main plugin or through the podns-ipam binary.
//
// The Cmd functions never read CNI_* variables, never print, and close
// everything they open before returning.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/ipam/store"
)

// CmdAdd allocates one address per range set to (ContainerID, IfName), or
// returns the addresses it already holds, and returns the IPAM result.
func CmdAdd(args *skel.CmdArgs) (*current.Result, error) {
	res, _, err := Allocate(args)
	return res, err
}

// Allocate is CmdAdd that also tells whether the addresses were allocated
// by this call (false: a repeated ADD got what the attachment held), so a
// caller rolling back a failed ADD releases only what it took.
func Allocate(args *skel.CmdArgs) (res *current.Result, fresh bool, err error) {
	c, att, err := request(args, true)
	if err != nil {
		return nil, false, err
	}
	var dns types.DNS
	if c.ResolvConf != "" {
		if dns, err = readResolvConf(c.ResolvConf); err != nil {
			return nil, false, types.NewError(types.ErrInvalidNetworkConfig, "podns-ipam: resolvConf "+c.ResolvConf, err.Error())
		}
	}
	s, err := open(c)
	if err != nil {
		return nil, false, err
	}
	defer s.Close()
	var addrs []netip.Addr
	reused := false
	err = s.Update(func(tx *store.Tx) error {
		if err := migrate(tx, c); err != nil {
			return err
		}
		addrs, reused, err = allocate(tx, c, att)
		return err
	})
	if err != nil {
		return nil, false, storeErr("allocate for "+att.String(), err)
	}
	res = &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: c.Routes, DNS: dns}
	for i, a := range addrs {
		rg := c.Sets[i][c.Sets[i].Find(a)]
		ipc := &current.IPConfig{Address: net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(rg.Subnet.Bits(), a.BitLen())}}
		if rg.Gateway.IsValid() {
			ipc.Gateway = rg.Gateway.AsSlice()
		}
		res.IPs = append(res.IPs, ipc)
	}
	return res, !reused, nil
}

// allocate returns one address per range set, in set order, for att, and
// whether they are the ones att already held.
func allocate(tx *store.Tx, c *Config, att store.Attachment) (_ []netip.Addr, reused bool, _ error) {
	static := make([]netip.Addr, len(c.Sets))
	for _, a := range c.Static {
		for i, set := range c.Sets {
			if set.Find(a) >= 0 {
				static[i] = a
			}
		}
	}
	// A repeated ADD gets the same answer when what it holds still fits.
	if held := tx.Addrs(att); len(held) > 0 {
		if out, ok := reuse(c, held, static); ok {
			return out, true, nil
		}
		if _, err := tx.ReleaseKeep(att, c.keepFree); err != nil {
			return nil, false, err
		}
	}
	out := make([]netip.Addr, len(c.Sets))
	// Static addresses first, so a dynamic pick cannot take them.
	for i, a := range static {
		if !a.IsValid() {
			continue
		}
		alloc := allocator.New(c.Sets[i], c.Reserved)
		if alloc.Excluded(a) {
			return nil, false, invalid("podns-ipam: requested IP %s is a gateway or reserved address of %s", a, c.Sets[i])
		}
		if owner, ok := tx.Owner(a); ok {
			return nil, false, types.NewError(CodeAddressInUse, fmt.Sprintf("podns-ipam: requested IP %s is already allocated to %s", a, owner), "")
		}
		if err := tx.Allocate(a, att); err != nil {
			return nil, false, err
		}
		out[i] = a
	}
	for i, set := range c.Sets {
		if out[i].IsValid() {
			continue
		}
		a, err := allocator.New(set, c.Reserved).Next(tx, true)
		if errors.Is(err, allocator.ErrExhausted) {
			return nil, false, types.NewError(CodeRangeExhausted, fmt.Sprintf("podns-ipam: no free address in range set %s of network %q", set, c.Name), "")
		}
		if err != nil {
			return nil, false, err
		}
		if err := tx.Allocate(a, att); err != nil {
			return nil, false, err
		}
		out[i] = a
	}
	return out, false, nil
}

// reuse maps held addresses onto the range sets: exactly one per set,
// matching any static request.
func reuse(c *Config, held, static []netip.Addr) ([]netip.Addr, bool) {
	if len(held) != len(c.Sets) {
		return nil, false
	}
	out := make([]netip.Addr, len(c.Sets))
	for _, a := range held {
		found := false
		for i, set := range c.Sets {
			if set.Find(a) >= 0 && !out[i].IsValid() && (!static[i].IsValid() || static[i] == a) {
				out[i], found = a, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return out, true
}

// CmdDel releases every address of (ContainerID, IfName). Releasing an
// unknown attachment, or a network with no store, succeeds.
func CmdDel(args *skel.CmdArgs) error {
	c, att, err := request(args, false)
	if err != nil {
		return err
	}
	if !exists(c.Dir) && !exists(c.MigrateFrom) {
		return nil
	}
	s, err := open(c)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.Update(func(tx *store.Tx) error {
		if err := migrate(tx, c); err != nil {
			return err
		}
		rel, err := tx.ReleaseKeep(att, c.keepFree)
		if err == nil && len(rel) == 0 && att.IfName != "" {
			// Adopted from an old host-local that recorded no ifname.
			_, err = tx.ReleaseKeep(store.Attachment{ContainerID: att.ContainerID}, c.keepFree)
		}
		return err
	})
	return storeErr("release "+att.String(), err)
}

// CmdCheck verifies that (ContainerID, IfName) holds an address in every
// range set and owns each address of prevResult inside the ranges.
func CmdCheck(args *skel.CmdArgs) error {
	c, att, err := request(args, true)
	if err != nil {
		return err
	}
	var prev struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if c.raw.RawPrevResult != nil {
		b, _ := json.Marshal(c.raw.RawPrevResult)
		if err := json.Unmarshal(b, &prev); err != nil {
			return types.NewError(types.ErrDecodingFailure, "podns-ipam: decode prevResult", err.Error())
		}
	}
	if !exists(c.Dir) && !exists(c.MigrateFrom) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("podns-ipam: no allocation for %s: network %q has no store", att, c.Name), "")
	}
	s, err := open(c)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := ensureMigrated(s, c); err != nil {
		return storeErr("adopt host-local allocations", err)
	}
	err = s.View(func(tx *store.Tx) error {
		held := tx.Addrs(att)
		if len(held) == 0 {
			return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("podns-ipam: no allocation for %s", att), "")
		}
		for _, set := range c.Sets {
			found := false
			for _, a := range held {
				found = found || set.Find(a) >= 0
			}
			if !found {
				return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("podns-ipam: %s holds no address in range set %s", att, set), "")
			}
		}
		for _, ip := range prev.IPs {
			p, err := netip.ParsePrefix(ip.Address)
			if err != nil {
				return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("podns-ipam: prevResult address %q", ip.Address), err.Error())
			}
			a := p.Addr().Unmap()
			inRange := false
			for _, set := range c.Sets {
				inRange = inRange || set.Find(a) >= 0
			}
			if !inRange {
				continue // another IPAM's address
			}
			if owner, ok := tx.Owner(a); !ok || owner != att {
				return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("podns-ipam: prevResult address %s is not allocated to %s", a, att), "")
			}
		}
		return nil
	})
	return storeErr("check "+att.String(), err)
}

// CmdStatus answers whether ADD can be served: 0 when every range set has a
// free address, error 50 when one is exhausted or the store cannot be opened.
func CmdStatus(args *skel.CmdArgs) error {
	c, err := loadConfig(args.StdinData, args.Args, false)
	if err != nil {
		return err
	}
	s, err := open(c)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("podns-ipam: store of network %q cannot be opened", c.Name), err.Error())
	}
	defer s.Close()
	if err := ensureMigrated(s, c); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("podns-ipam: store of network %q cannot be written", c.Name), err.Error())
	}
	err = s.View(func(tx *store.Tx) error {
		for _, set := range c.Sets {
			ok, err := allocator.New(set, c.Reserved).HasFree(tx)
			if err != nil {
				return err
			}
			if !ok {
				return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("podns-ipam: range set %s of network %q is exhausted", set, c.Name), "")
			}
		}
		return nil
	})
	var te *types.Error
	if err != nil && !errors.As(err, &te) {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("podns-ipam: store of network %q cannot be read", c.Name), err.Error())
	}
	return err
}

// CmdGC releases, in one transaction, every allocation whose attachment is
// not in cni.dev/valid-attachments.
func CmdGC(args *skel.CmdArgs) error {
	c, err := loadConfig(args.StdinData, args.Args, false)
	if err != nil {
		return err
	}
	if !exists(c.Dir) && !exists(c.MigrateFrom) {
		return nil
	}
	valid := map[store.Attachment]bool{}
	validID := map[string]bool{}
	for _, v := range c.raw.ValidAttachments {
		valid[store.Attachment{ContainerID: v.ContainerID, IfName: v.IfName}] = true
		validID[v.ContainerID] = true
	}
	s, err := open(c)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.Update(func(tx *store.Tx) error {
		if err := migrate(tx, c); err != nil {
			return err
		}
		for _, a := range tx.Attachments() {
			if valid[a] || (a.IfName == "" && validID[a.ContainerID]) {
				continue
			}
			if _, err := tx.ReleaseKeep(a, c.keepFree); err != nil {
				return fmt.Errorf("release %s: %w", a, err)
			}
		}
		return nil
	})
	return storeErr("gc", err)
}

// keepFree says whether a released address goes to the free list: not
// when it lies in a sparse range, whose allocator does not use the list.
func (c *Config) keepFree(a netip.Addr) bool {
	for _, set := range c.Sets {
		if i := set.Find(a); i >= 0 {
			return !set[i].Sparse()
		}
	}
	return true
}

// ensureMigrated adopts host-local's allocations before a read-only
// operation, writing only when that has not happened yet.
func ensureMigrated(s *store.Store, c *Config) error {
	done := false
	if err := s.View(func(tx *store.Tx) error {
		_, done = Migration(tx)
		return nil
	}); err != nil || done {
		return err
	}
	return s.Update(func(tx *store.Tx) error { return migrate(tx, c) })
}

// request is what every per-attachment verb starts from: the config
// (ranges required when the verb allocates or checks) and the attachment.
func request(args *skel.CmdArgs, needRanges bool) (*Config, store.Attachment, error) {
	c, err := loadConfig(args.StdinData, args.Args, needRanges)
	if err != nil {
		return nil, store.Attachment{}, err
	}
	att, err := attachment(args)
	if err != nil {
		return nil, store.Attachment{}, err
	}
	return c, att, nil
}

func attachment(args *skel.CmdArgs) (store.Attachment, error) {
	if err := utils.ValidateContainerID(args.ContainerID); err != nil {
		return store.Attachment{}, err
	}
	if err := utils.ValidateInterfaceName(args.IfName); err != nil {
		return store.Attachment{}, err
	}
	return store.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}, nil
}

func open(c *Config) (*store.Store, error) {
	s, err := store.Open(c.Dir, c.LockTimeout)
	if err != nil {
		return nil, storeErr("open store", err)
	}
	return s, nil
}

// storeErr keeps CNI errors as they are, turns a lock timeout into 11 and
// anything else into 5 (I/O failure).
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, store.ErrLocked) {
		return types.NewError(types.ErrTryAgainLater, "podns-ipam: "+op+": store busy, try again later", err.Error())
	}
	return types.NewError(types.ErrIOFailure, "podns-ipam: "+op, err.Error())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
