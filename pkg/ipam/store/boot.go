//go:build linux

package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/podns/podns/pkg/atomicfile"
)

// BootFile names the boot the store's allocations belong to.
//
// Allocations live exactly as long as the boot: a pod's network namespace
// and interfaces never survive a reboot, so neither does its address. That
// is what lets a commit skip fsync. A process killed at any instant leaves
// its completed writes in the page cache, where the next process reads them
// (bbolt's copy-on-write pages and meta page keep every transaction whole),
// so kill -9 safety does not depend on the disk. Only a machine crash can
// lose or tear unsynced pages, and a machine crash is a new boot: the first
// open in that boot finds another boot's id here and forgets the
// allocations. Before anything is written unsynced, this file is written
// and fsynced, so a store that may hold torn pages always names a boot that
// is over.
const BootFile = "podns-ipam.boot"

// bootIDPath is the kernel's random id of the running boot.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot id: %s is empty", bootIDPath)
	}
	return id, nil
})

// scopeToBoot makes the store in dir (whose lock the caller holds) belong to
// the running boot, and reports whether commits may skip fsync: not when
// the boot id cannot be read, then every commit is synced as before.
//
//   - BootFile names this boot: nothing to do.
//   - No BootFile: the store was written (synced) by a podns that did not
//     scope it, or there is none yet. Its allocations may belong to pods
//     running now, so they are kept and the store is adopted.
//   - BootFile names another boot: its pods are gone. The allocations are
//     forgotten (flags such as the host-local migration record are kept),
//     or the database is removed when a crash left it unreadable.
func scopeToBoot(dir string) (noSync bool, err error) {
	id, err := bootID()
	if err != nil {
		return false, nil
	}
	marker := filepath.Join(dir, BootFile)
	old, err := os.ReadFile(marker)
	switch {
	case err == nil && string(old) == id:
		return true, nil
	case err == nil:
		if err := forgetAllocations(filepath.Join(dir, DBFile)); err != nil {
			return false, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("read %s: %w", marker, err)
	}
	if err := atomicfile.Write(marker, []byte(id), 0o600, true); err != nil {
		return false, err
	}
	return true, nil
}

// forgetAllocations empties a previous boot's store: leases, released
// addresses and the allocator's cursors and marks (Meta: 16-byte values),
// keeping Flags. A database that does not open (torn by the crash that
// ended its boot) is removed; Open creates a new one.
func forgetAllocations(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err == nil {
		err = db.Update(func(btx *bolt.Tx) error {
			for _, name := range [][]byte{bucketAddrs, bucketAtts, bucketFree} {
				if err := btx.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
					return err
				}
			}
			meta := btx.Bucket(bucketMeta)
			if meta == nil {
				return nil
			}
			var drop [][]byte
			meta.ForEach(func(k, v []byte) error {
				if len(v) == 16 {
					drop = append(drop, bytes.Clone(k))
				}
				return nil
			})
			for _, k := range drop {
				if err := meta.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return nil
		}
	}
	if rerr := os.Remove(path); rerr != nil {
		return fmt.Errorf("remove %s from a previous boot (it did not open: %v): %w", path, err, rerr)
	}
	return nil
}
