//go:build linux

package state

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLockSerialises(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		inside  int
		maxSeen int
		wg      sync.WaitGroup
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := s.Lock()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			if inside > maxSeen {
				maxSeen = inside
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if maxSeen != 1 {
		t.Fatalf("%d holders of the lock at once", maxSeen)
	}
}

func TestRecordsRoundTripAndAtomicWrite(t *testing.T) {
	s, _ := Open(t.TempDir())
	p := &Pod{ID: "abc", Name: "n", Phase: PhaseCreating, CreatedAt: time.Now()}
	if err := s.SavePod(p); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: "c1", PodID: "abc", Name: "x", Phase: PhaseCreated}
	if err := s.SaveContainer(c); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadPod("abc")
	if err != nil || got.Name != "n" || got.Phase != PhaseCreating {
		t.Fatalf("%+v %v", got, err)
	}
	cs, _ := s.Containers("abc")
	if len(cs) != 1 || cs[0].Name != "x" {
		t.Fatalf("%+v", cs)
	}
	// No temp files are left next to the records.
	ents, _ := os.ReadDir(s.PodDir("abc"))
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" && e.Name() != "containers" {
			t.Errorf("stray file %s", e.Name())
		}
	}
}
