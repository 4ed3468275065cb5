//go:build linux

package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/ipam/store"
)

const migratedFlag = "migrated-from-host-local"

// MigrationRecord is stored in the store once host-local's files were read.
type MigrationRecord struct {
	From    string    `json:"from"`
	Adopted int       `json:"adopted"`
	At      time.Time `json:"at"`
}

// migrate adopts host-local's allocations of this network the first time
// the store is used: one file per address holding "containerID\r\nifname"
// (older host-local: just the container ID) and last_reserved_ip.N with the
// round-robin cursor of range set N. It runs inside the caller's
// transaction, so the adoption and the first operation commit together.
// host-local's files are left untouched (read-only source).
func migrate(tx *store.Tx, c *Config) error {
	if tx.Flag(migratedFlag) != nil {
		return nil
	}
	rec := MigrationRecord{From: c.MigrateFrom, At: time.Now().UTC()}
	entries, err := os.ReadDir(c.MigrateFrom)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read host-local dir %s: %w", c.MigrateFrom, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(c.MigrateFrom, name)
		if rest, ok := strings.CutPrefix(name, "last_reserved_ip."); ok {
			i, err := strconv.Atoi(rest)
			if err != nil || i < 0 || i >= len(c.Sets) {
				continue
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(string(b))); err == nil && c.Sets[i].Find(a) >= 0 {
				if err := tx.SetMeta(allocator.New(c.Sets[i], c.Reserved).LastKey(), a.Unmap()); err != nil {
					return err
				}
			}
			continue
		}
		addr, err := netip.ParseAddr(name)
		if err != nil {
			continue // host-local's lock file, our own files, anything else
		}
		addr = addr.Unmap()
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
		att := store.Attachment{ContainerID: strings.TrimSpace(lines[0])}
		if len(lines) > 1 {
			att.IfName = strings.TrimSpace(lines[1])
		}
		if att.ContainerID == "" || tx.IsAllocated(addr) {
			continue
		}
		if err := tx.Allocate(addr, att); err != nil {
			return fmt.Errorf("adopt %s: %w", path, err)
		}
		rec.Adopted++
	}
	v, _ := json.Marshal(rec)
	return tx.SetFlag(migratedFlag, v)
}

// Migration returns the record of the host-local adoption, if one ran.
func Migration(tx *store.Tx) (MigrationRecord, bool) {
	var rec MigrationRecord
	v := tx.Flag(migratedFlag)
	if v == nil || json.Unmarshal(v, &rec) != nil {
		return rec, false
	}
	return rec, true
}
