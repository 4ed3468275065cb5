//go:build linux

package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/ipam/store"
)

// fill allocates every address of the /16 of stdin, then releases a random
// part of them so that fill percent stay allocated, scattered the way pod
// churn leaves them. Batches of transactions keep bbolt's nodes small.
func fill(b *testing.B, c *Config, percent int) {
	b.Helper()
	if percent == 0 {
		return
	}
	s, err := store.OpenWith(c.Dir, store.Options{Timeout: time.Minute, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a := allocator.New(c.Sets[0], c.Reserved)
	var atts []store.Attachment
	for full := false; !full; {
		err = s.Update(func(tx *store.Tx) error {
			for k := 0; k < 4096; k++ {
				addr, err := a.Next(tx, true)
				if errors.Is(err, allocator.ErrExhausted) {
					full = true
					return nil
				}
				if err != nil {
					return err
				}
				att := store.Attachment{ContainerID: fmt.Sprintf("fill%d", len(atts)), IfName: "eth0"}
				if err := tx.Allocate(addr, att); err != nil {
					return err
				}
				atts = append(atts, att)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, uint64(percent)))
	r.Shuffle(len(atts), func(i, j int) { atts[i], atts[j] = atts[j], atts[i] })
	rel := atts[:len(atts)*(100-percent)/100]
	for len(rel) > 0 {
		n := min(len(rel), 4096)
		err = s.Update(func(tx *store.Tx) error {
			for _, att := range rel[:n] {
				if _, err := tx.Release(att); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rel = rel[n:]
	}
}

func benchConf(b *testing.B) ([]byte, *Config) {
	dir := b.TempDir()
	stdin := []byte(`{"cniVersion":"1.1.0","name":"bench","ipam":{"type":"podns-ipam","dataDir":"` + dir + `","subnet":"10.66.0.0/16"}}`)
	c, err := LoadConfig(stdin, "")
	if err != nil {
		b.Fatal(err)
	}
	return stdin, c
}

// BenchmarkAddDel measures what a runtime waits for: a full CmdAdd and
// CmdDel (open, lock, transaction, fsync, close) with a /16 0%, 50% and
// 99% full. It reports alloc-µs and release-µs per operation.
func BenchmarkAddDel(b *testing.B) {
	for _, pct := range []int{0, 50, 99} {
		b.Run(fmt.Sprintf("fill=%d%%", pct), func(b *testing.B) {
			stdin, c := benchConf(b)
			fill(b, c, pct)
			var addT, delT time.Duration
			i := 0
			for b.Loop() {
				a := args(fmt.Sprintf("bench%d", i), stdin)
				i++
				t0 := time.Now()
				if _, err := CmdAdd(a); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := CmdDel(a); err != nil {
					b.Fatal(err)
				}
				addT += t1.Sub(t0)
				delT += time.Since(t1)
			}
			b.ReportMetric(float64(addT.Microseconds())/float64(b.N), "alloc-µs/op")
			b.ReportMetric(float64(delT.Microseconds())/float64(b.N), "release-µs/op")
		})
	}
}

// BenchmarkAllocator measures the allocation algorithm and its
// transaction without fsync and without the process around it: it must
// not grow with the fill.
func BenchmarkAllocator(b *testing.B) {
	for _, pct := range []int{0, 50, 99} {
		b.Run(fmt.Sprintf("fill=%d%%", pct), func(b *testing.B) {
			_, c := benchConf(b)
			fill(b, c, pct)
			s, err := store.OpenWith(c.Dir, store.Options{Timeout: time.Minute, NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			a := allocator.New(c.Sets[0], c.Reserved)
			var addT, delT time.Duration
			i := 0
			for b.Loop() {
				att := store.Attachment{ContainerID: fmt.Sprintf("bench%d", i), IfName: "eth0"}
				i++
				t0 := time.Now()
				err := s.Update(func(tx *store.Tx) error {
					addr, err := a.Next(tx, true)
					if err != nil {
						return err
					}
					return tx.Allocate(addr, att)
				})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := s.Update(func(tx *store.Tx) error {
					_, err := tx.Release(att)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				addT += t1.Sub(t0)
				delT += time.Since(t1)
			}
			b.ReportMetric(float64(addT.Nanoseconds())/float64(b.N), "alloc-ns/op")
			b.ReportMetric(float64(delT.Nanoseconds())/float64(b.N), "release-ns/op")
		})
	}
}
