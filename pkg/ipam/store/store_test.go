//go:build linux

package store

import (
	"bytes"
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

// withBoot runs the test's opens as if the running boot had this id.
func withBoot(t *testing.T, id string, err error) {
	saved := bootID
	bootID = func() (string, error) { return id, err }
	t.Cleanup(func() { bootID = saved })
}

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAllocationsLastOneBoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	a, b := Attachment{"ctr1", "eth0"}, Attachment{"ctr2", "eth0"}
	v4a, v4b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	cursor := netip.MustParseAddr("10.0.0.3")
	record := []byte(`{"from":"/var/lib/cni/networks/net","adopted":2}`)

	withBoot(t, "boot-1", nil)
	s := openT(t, dir)
	if !s.db.NoSync {
		t.Error("a store scoped to the boot still fsyncs every commit")
	}
	err := s.Update(func(tx *Tx) error {
		for addr, att := range map[netip.Addr]Attachment{v4a: a, v4b: b} {
			if err := tx.Allocate(addr, att); err != nil {
				return err
			}
		}
		if _, err := tx.Release(b); err != nil {
			return err
		}
		if err := tx.SetMeta("last/x", cursor); err != nil {
			return err
		}
		return tx.SetFlag("migrated", record)
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, BootFile)); string(got) != "boot-1" {
		t.Fatalf("%s = %q, want boot-1", BootFile, got)
	}

	// Same boot: everything is still there.
	s = openT(t, dir)
	s.View(func(tx *Tx) error {
		if got := tx.Addrs(a); len(got) != 1 || got[0] != v4a {
			t.Errorf("same boot: Addrs(a) = %v", got)
		}
		if _, ok := tx.FreeSeek(v4b, v4b); !ok {
			t.Error("same boot: released address no longer free")
		}
		return nil
	})
	s.Close()

	// The next boot forgets leases, the free list and the cursors, keeps
	// the flags, and hands the addresses out again.
	withBoot(t, "boot-2", nil)
	s = openT(t, dir)
	defer s.Close()
	s.View(func(tx *Tx) error {
		if n := len(tx.Allocations()); n != 0 {
			t.Errorf("next boot: %d allocations left", n)
		}
		if n := len(tx.Attachments()); n != 0 {
			t.Errorf("next boot: %d attachments left", n)
		}
		if _, ok := tx.FreeSeek(v4a, v4b); ok {
			t.Error("next boot: free list kept")
		}
		if _, ok := tx.Meta("last/x"); ok {
			t.Error("next boot: allocator cursor kept")
		}
		if got := tx.Flag("migrated"); string(got) != string(record) {
			t.Errorf("next boot: flag = %q, want it kept", got)
		}
		return nil
	})
	if err := s.Update(func(tx *Tx) error { return tx.Allocate(v4a, b) }); err != nil {
		t.Errorf("next boot: address of the previous boot not reusable: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, BootFile)); string(got) != "boot-2" {
		t.Errorf("%s = %q, want boot-2", BootFile, got)
	}
}

func TestUnscopedStoreIsAdopted(t *testing.T) {
	// A store written by a podns that did not scope it to the boot may
	// hold the addresses of pods running now.
	dir := filepath.Join(t.TempDir(), "net")
	a := Attachment{"ctr1", "eth0"}
	addr := netip.MustParseAddr("10.0.0.2")
	withBoot(t, "boot-1", nil)
	s := openT(t, dir)
	if err := s.Update(func(tx *Tx) error { return tx.Allocate(addr, a) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, BootFile)); err != nil {
		t.Fatal(err)
	}
	withBoot(t, "boot-2", nil)
	s = openT(t, dir)
	defer s.Close()
	s.View(func(tx *Tx) error {
		if o, ok := tx.Owner(addr); !ok || o != a {
			t.Errorf("adopted store lost %s: owner %v %v", addr, o, ok)
		}
		return nil
	})
	if got, _ := os.ReadFile(filepath.Join(dir, BootFile)); string(got) != "boot-2" {
		t.Errorf("%s = %q, want boot-2", BootFile, got)
	}
}

func TestTornStore(t *testing.T) {
	garbage := bytes.Repeat([]byte("torn page "), 1000)
	mk := func(boot string) string {
		dir := filepath.Join(t.TempDir(), "net")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{DBFile: garbage, BootFile: []byte(boot)} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	withBoot(t, "boot-2", nil)

	// Torn by the crash that ended boot-1: replaced by an empty store.
	s := openT(t, mk("boot-1"))
	if err := s.Update(func(tx *Tx) error { return tx.Allocate(netip.MustParseAddr("10.0.0.2"), Attachment{"c", "eth0"}) }); err != nil {
		t.Errorf("store replacing a torn one: %v", err)
	}
	s.Close()

	// Damaged during this boot: an error, and the file is left for people.
	dir := mk("boot-2")
	if s, err := Open(dir, time.Second); err == nil {
		s.Close()
		t.Fatal("a damaged store of the running boot opened")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, DBFile)); !bytes.Equal(got, garbage) {
		t.Error("a damaged store of the running boot was replaced")
	}
}

func TestUnknownBootKeepsFsync(t *testing.T) {
	withBoot(t, "", errors.New("no /proc"))
	s := openT(t, filepath.Join(t.TempDir(), "net"))
	defer s.Close()
	if s.db.NoSync {
		t.Error("commits skip fsync although the boot is unknown")
	}
}

func TestSetFlagRefusesAddressLength(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "net"))
	defer s.Close()
	if err := s.Update(func(tx *Tx) error { return tx.SetFlag("f", make([]byte, 16)) }); err == nil {
		t.Error("a 16-byte flag was stored (it would be dropped as allocator state)")
	}
}
