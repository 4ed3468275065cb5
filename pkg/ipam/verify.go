//go:build linux

package ipam

import (
	"net/netip"
	"path/filepath"
	"time"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/ipam/store"
)

// StoreDir is where network's store lives under dataDir ("" = default).
func StoreDir(dataDir, network string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, network)
}

// CheckStore verifies the store of a network (bbolt's page check and
// podns-ipam's invariants: both indexes agree, nothing is both allocated
// and free). For tests and chaos tooling; it waits for the lock like any
// invocation.
func CheckStore(dataDir, network string, timeout time.Duration) error {
	return store.Check(StoreDir(dataDir, network), timeout)
}

// Allocations returns every allocated address of a network and its owner.
func Allocations(dataDir, network string, timeout time.Duration) (map[netip.Addr]store.Attachment, error) {
	s, err := store.OpenExisting(StoreDir(dataDir, network), timeout)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out map[netip.Addr]store.Attachment
	err = s.View(func(tx *store.Tx) error {
		out = tx.Allocations()
		return nil
	})
	return out, err
}

// CheckNetwork is CheckStore for the network of a config (as a runtime
// would send it), plus the allocator's own invariant for its ranges: no
// address of a range is lost below its high-water mark.
func CheckNetwork(stdin []byte, timeout time.Duration) error {
	c, err := loadConfig(stdin, "", false)
	if err != nil {
		return err
	}
	if err := store.Check(c.Dir, timeout); err != nil {
		return err
	}
	s, err := store.OpenExisting(c.Dir, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.View(func(tx *store.Tx) error {
		for _, set := range c.Sets {
			if err := allocator.New(set, c.Reserved).Verify(tx); err != nil {
				return err
			}
		}
		return nil
	})
}
