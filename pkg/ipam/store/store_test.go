//go:build linux

package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestPermissionsIndexesAndRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, DBFile): 0o600, filepath.Join(dir, LockFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	a := Attachment{"ctr1", "eth0"}
	b := Attachment{"ctr2", "eth0"}
	v4, v6 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")
	err = s.Update(func(tx *Tx) error {
		if err := tx.Allocate(v4, a); err != nil {
			return err
		}
		if err := tx.Allocate(v6, a); err != nil {
			return err
		}
		if err := tx.Allocate(v4, b); err == nil {
			t.Error("an address was given twice")
		}
		return tx.Verify()
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if got := tx.Addrs(a); len(got) != 2 || got[0] != v4 || got[1] != v6 {
			t.Errorf("Addrs = %v", got)
		}
		if o, ok := tx.Owner(v6); !ok || o != a {
			t.Errorf("Owner(%s) = %v %v", v6, o, ok)
		}
		return nil
	})
	err = s.Update(func(tx *Tx) error {
		rel, err := tx.Release(a)
		if err != nil || len(rel) != 2 {
			t.Errorf("Release = %v, %v", rel, err)
		}
		if rel, err := tx.Release(a); err != nil || len(rel) != 0 {
			t.Errorf("second Release = %v, %v", rel, err)
		}
		if f, ok := tx.FreeSeek(netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.255")); !ok || f != v4 {
			t.Errorf("FreeSeek = %v %v, want %s", f, ok, v4)
		}
		if _, ok := tx.FreeSeek(netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.255")); ok {
			t.Error("FreeSeek found an address above the only free one")
		}
		return tx.Verify()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsInconsistency(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := Attachment{"ctr1", "eth0"}
	addr := netip.MustParseAddr("10.0.0.2")
	if err := s.Update(func(tx *Tx) error { return tx.Allocate(addr, a) }); err != nil {
		t.Fatal(err)
	}
	// Break the reverse index behind the API's back, as a buggy writer would.
	if err := s.db.Update(func(btx *bolt.Tx) error {
		if err := btx.Bucket(bucketAtts).Delete(a.key()); err != nil {
			return err
		}
		return btx.Bucket(bucketFree).Put(addrKey(netip.MustParseAddr("10.0.0.3")), nil)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := Check(dir, time.Second); err == nil {
		t.Fatal("Check accepted a store whose address has no attachment")
	}
}

func TestLockTimeout(t *testing.T) {
	dir := t.TempDir()
	holder, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(dir, 200*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open while locked: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
	holder.Close()
	s, err := Open(dir, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("Open after release: %v", err)
	}
	s.Close()
}
