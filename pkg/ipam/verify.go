//go:build linux

package ipam

import (
	"net/netip"
	"path/filepath"
	"time"

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
