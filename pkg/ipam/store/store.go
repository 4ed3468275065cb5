//go:build linux

// Package store keeps podns-ipam's allocations of one network in a bbolt
// database: address → attachment and attachment → addresses, the released
// addresses and the allocator's cursors, all changed in one transaction per
// CNI call so a kill -9 at any instant leaves it consistent. Allocations
// belong to one boot (BootFile), so commits are not fsynced.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const (
	// DBFile and LockFile are the store's files inside the network's directory.
	DBFile   = "podns-ipam.db"
	LockFile = "podns-ipam.lock"
)

var (
	bucketAddrs = []byte("addrs")       // 16-byte address → attachment key
	bucketAtts  = []byte("attachments") // attachment key → 16-byte addresses
	bucketFree  = []byte("free")        // released 16-byte addresses
	bucketMeta  = []byte("meta")        // allocator cursors, migration marker
)

// ErrLocked is returned when another process held the store past the timeout.
var ErrLocked = errors.New("store is locked by another process")

// Attachment names one interface of one container.
type Attachment struct {
	ContainerID string
	IfName      string
}

func (a Attachment) key() []byte { return []byte(a.ContainerID + "\x00" + a.IfName) }

func (a Attachment) String() string { return a.ContainerID + "/" + a.IfName }

func parseAttachment(k []byte) Attachment {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return Attachment{ContainerID: string(k)}
	}
	return Attachment{ContainerID: string(k[:i]), IfName: string(k[i+1:])}
}

func addrKey(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

func keyAddr(k []byte) netip.Addr {
	if len(k) != 16 {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte(k)).Unmap()
}

// Store is an open store. Only one process has it open at a time: open it,
// run one transaction, close it.
type Store struct {
	db   *bolt.DB
	lock *os.File
	Dir  string
}

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for other processes to finish with the store.
	Timeout time.Duration
	// NoSync skips fsync on commit even when the store is not scoped to
	// the boot: for benchmarks of the algorithm only.
	NoSync bool
}

// OpenExisting is Open for readers: it fails, creating nothing, when dir
// holds no store.
func OpenExisting(dir string, timeout time.Duration) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, DBFile)); err != nil {
		return nil, fmt.Errorf("no podns-ipam store in %s: %w", dir, err)
	}
	return Open(dir, timeout)
}

// Open opens (creating it 0700/0600 if needed) the store in dir, waiting at
// most timeout for other processes to finish with it.
func Open(dir string, timeout time.Duration) (*Store, error) {
	return OpenWith(dir, Options{Timeout: timeout})
}

// OpenWith is Open with options.
func OpenWith(dir string, o Options) (*Store, error) {
	timeout := o.Timeout
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	// A directory left by host-local is 0755; the store holds who owns what.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	lk, err := lockFile(filepath.Join(dir, LockFile), timeout)
	if err != nil {
		return nil, err
	}
	noSync, err := scopeToBoot(dir)
	if err != nil {
		lk.Close()
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	if err := createAtomically(path); err != nil {
		lk.Close()
		return nil, err
	}
	// Our own lock is held, so bbolt's flock succeeds at once; the timeout
	// only guards against a foreign process holding the database file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: noSync || o.NoSync})
	if err != nil {
		lk.Close()
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, lock: lk, Dir: dir}, nil
}

// createAtomically makes an empty database under a temporary name and
// renames it into place, so a kill -9 while bbolt writes its first pages
// cannot leave a truncated database behind. The caller holds the lock.
func createAtomically(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	tmp := path + ".new"
	os.Remove(tmp) // left by a process killed here before
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create %s: %w", path, err)
	}
	// Make the new name durable before anything is committed into it.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// lockFile takes an exclusive flock on path. A waiter blocks in the kernel,
// so it is woken the moment the holder lets go (a store transaction lasts a
// millisecond; sleeping and polling made 64 parallel ADDs wait several
// times that). The blocking call runs on a goroutine of its own, so the
// deadline still holds: a waiter that gives up leaves the goroutine to
// close the file (and with it any lock it gets later).
func lockFile(path string, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return f, nil
	}
	if err != unix.EWOULDBLOCK && err != unix.EINTR {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	const waiting, taken, abandoned = 0, 1, 2
	var state atomic.Int32
	got := make(chan error, 1)
	go func() {
		var err error
		for {
			if err = unix.Flock(fd, unix.LOCK_EX); err != unix.EINTR {
				break
			}
		}
		if !state.CompareAndSwap(waiting, taken) {
			f.Close() // the waiter gave up
			return
		}
		got <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-got:
	case <-timer.C:
		if state.CompareAndSwap(waiting, abandoned) {
			return nil, fmt.Errorf("lock %s after %s: %w", path, timeout, ErrLocked)
		}
		err = <-got // taken just as the deadline passed
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// Close releases the database and the lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// Update runs fn in one read-write transaction, committed only if fn
// succeeds (fsynced only when the store is not scoped to the boot).
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error {
		tx, err := newTx(btx, true)
		if err != nil {
			return err
		}
		return fn(tx)
	})
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error {
		tx, err := newTx(btx, false)
		if err != nil {
			return err
		}
		return fn(tx)
	})
}

// Tx is one transaction on the store. It implements allocator.Index.
type Tx struct {
	btx                     *bolt.Tx
	addrs, atts, free, meta *bolt.Bucket
}

func newTx(btx *bolt.Tx, write bool) (*Tx, error) {
	t := &Tx{btx: btx}
	bs := []**bolt.Bucket{&t.addrs, &t.atts, &t.free, &t.meta}
	for i, name := range [][]byte{bucketAddrs, bucketAtts, bucketFree, bucketMeta} {
		if write {
			b, err := btx.CreateBucketIfNotExists(name)
			if err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", name, err)
			}
			*bs[i] = b
		} else {
			*bs[i] = btx.Bucket(name) // nil in a store never written
		}
	}
	return t, nil
}

// Owner returns the attachment holding addr.
func (t *Tx) Owner(addr netip.Addr) (Attachment, bool) {
	if t.addrs == nil {
		return Attachment{}, false
	}
	v := t.addrs.Get(addrKey(addr))
	if v == nil {
		return Attachment{}, false
	}
	return parseAttachment(v), true
}

// IsAllocated reports whether addr belongs to an attachment.
func (t *Tx) IsAllocated(addr netip.Addr) bool {
	return t.addrs != nil && t.addrs.Get(addrKey(addr)) != nil
}

// FreeSeek returns the lowest released address in [lo, hi].
func (t *Tx) FreeSeek(lo, hi netip.Addr) (netip.Addr, bool) {
	if t.free == nil {
		return netip.Addr{}, false
	}
	k, _ := t.free.Cursor().Seek(addrKey(lo))
	if k == nil || bytes.Compare(k, addrKey(hi)) > 0 {
		return netip.Addr{}, false
	}
	return keyAddr(k), true
}

// Meta returns an address stored under key.
func (t *Tx) Meta(key string) (netip.Addr, bool) {
	if t.meta == nil {
		return netip.Addr{}, false
	}
	v := t.meta.Get([]byte(key))
	if len(v) != 16 {
		return netip.Addr{}, false
	}
	return keyAddr(v), true
}

// SetMeta stores an address under key.
func (t *Tx) SetMeta(key string, addr netip.Addr) error {
	return t.meta.Put([]byte(key), addrKey(addr))
}

// Flag and SetFlag keep small non-address markers (the migration record).
// Unlike Meta they outlive the boot's allocations, told apart by length:
// a Meta value is always 16 bytes, a flag never.
func (t *Tx) Flag(key string) []byte {
	if t.meta == nil {
		return nil
	}
	return t.meta.Get([]byte(key))
}

// SetFlag stores a marker.
func (t *Tx) SetFlag(key string, v []byte) error {
	if len(v) == 16 {
		return fmt.Errorf("flag %s: a 16-byte value would read as allocator state", key)
	}
	return t.meta.Put([]byte(key), v)
}

// Addrs returns the addresses of an attachment in allocation order.
func (t *Tx) Addrs(a Attachment) []netip.Addr {
	if t.atts == nil {
		return nil
	}
	v := t.atts.Get(a.key())
	var out []netip.Addr
	for len(v) >= 16 {
		out = append(out, keyAddr(v[:16]))
		v = v[16:]
	}
	return out
}

// Allocate gives addr to a. It fails if addr already belongs to anyone.
func (t *Tx) Allocate(addr netip.Addr, a Attachment) error {
	k := addrKey(addr)
	if v := t.addrs.Get(k); v != nil {
		return fmt.Errorf("address %s already belongs to %s", addr, parseAttachment(v))
	}
	if err := t.addrs.Put(k, a.key()); err != nil {
		return err
	}
	if err := t.free.Delete(k); err != nil {
		return err
	}
	old := t.atts.Get(a.key())
	v := make([]byte, 0, len(old)+16)
	v = append(append(v, old...), k...)
	return t.atts.Put(a.key(), v)
}

// Release frees every address of a and returns them; an unknown attachment
// is not an error.
func (t *Tx) Release(a Attachment) ([]netip.Addr, error) { return t.ReleaseKeep(a, nil) }

// ReleaseKeep is Release that records a freed address in the free list only
// if keep (nil: always) says so: huge ranges do not use the list.
func (t *Tx) ReleaseKeep(a Attachment, keep func(netip.Addr) bool) ([]netip.Addr, error) {
	addrs := t.Addrs(a)
	for _, addr := range addrs {
		k := addrKey(addr)
		// Only free what is still ours: never release another's address.
		if v := t.addrs.Get(k); v != nil && bytes.Equal(v, a.key()) {
			if err := t.addrs.Delete(k); err != nil {
				return nil, err
			}
			if keep == nil || keep(addr) {
				if err := t.free.Put(k, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := t.atts.Delete(a.key()); err != nil {
		return nil, err
	}
	return addrs, nil
}

// Attachments lists every attachment holding addresses.
func (t *Tx) Attachments() []Attachment {
	var out []Attachment
	if t.atts == nil {
		return nil
	}
	t.atts.ForEach(func(k, _ []byte) error {
		out = append(out, parseAttachment(k))
		return nil
	})
	return out
}

// Allocations returns every allocated address and its owner.
func (t *Tx) Allocations() map[netip.Addr]Attachment {
	out := map[netip.Addr]Attachment{}
	if t.addrs == nil {
		return out
	}
	t.addrs.ForEach(func(k, v []byte) error {
		out[keyAddr(k)] = parseAttachment(v)
		return nil
	})
	return out
}

// Verify checks the store's invariants: both indexes agree, no address is
// both allocated and free, no attachment lists an address twice, and every
// key is well formed.
func (t *Tx) Verify() error {
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	if t.addrs != nil {
		t.addrs.ForEach(func(k, v []byte) error {
			addr := keyAddr(k)
			if !addr.IsValid() {
				bad("malformed address key %x", k)
				return nil
			}
			owner := parseAttachment(v)
			found := false
			for _, x := range t.Addrs(owner) {
				if x == addr {
					found = true
				}
			}
			if !found {
				bad("%s belongs to %s, which does not list it", addr, owner)
			}
			if t.free != nil && t.free.Get(k) != nil {
				bad("%s is both allocated and free", addr)
			}
			return nil
		})
	}
	if t.atts != nil {
		t.atts.ForEach(func(k, v []byte) error {
			a := parseAttachment(k)
			if len(v) == 0 || len(v)%16 != 0 {
				bad("attachment %s has a malformed address list (%d bytes)", a, len(v))
				return nil
			}
			seen := map[netip.Addr]bool{}
			for _, addr := range t.Addrs(a) {
				if seen[addr] {
					bad("attachment %s lists %s twice", a, addr)
				}
				seen[addr] = true
				if o, ok := t.Owner(addr); !ok || o != a {
					bad("attachment %s lists %s, which is not recorded as its own", a, addr)
				}
			}
			return nil
		})
	}
	if t.free != nil {
		t.free.ForEach(func(k, _ []byte) error {
			if !keyAddr(k).IsValid() {
				bad("malformed free key %x", k)
			}
			return nil
		})
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("store inconsistent: %d problem(s): %v", len(problems), problems)
	}
	return nil
}

// Check opens the store in dir and verifies it (bbolt's own page check and
// Verify): for chaos tooling and tests.
func Check(dir string, timeout time.Duration) error {
	s, err := OpenExisting(dir, timeout)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.db.View(func(btx *bolt.Tx) error {
		// Drain the channel fully so bbolt's checker goroutine ends.
		var first error
		for err := range btx.Check() {
			if first == nil {
				first = fmt.Errorf("bbolt check %s: %w", dir, err)
			}
		}
		if first != nil {
			return first
		}
		tx, err := newTx(btx, false)
		if err != nil {
			return err
		}
		return tx.Verify()
	})
}
