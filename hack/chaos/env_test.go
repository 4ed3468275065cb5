//go:build linux

package main

import (
	"testing"
	"time"
)

func TestPersisting(t *testing.T) {
	// A process that goes after a few scans (an heir freeing its parent's
	// address space) is not reported.
	n := 0
	goes := func() []string {
		if n++; n < 4 {
			return []string{"123 (podnsctl)"}
		}
		return nil
	}
	if got := persisting(goes, time.Second); len(got) != 0 {
		t.Fatalf("a process gone after %d scans was reported: %v", n, got)
	}
	// One that stays is reported, once the grace has passed.
	start := time.Now()
	stays := func() []string { return []string{"456 (podnsctl)"} }
	if got := persisting(stays, 100*time.Millisecond); len(got) != 1 || got[0] != "456 (podnsctl)" {
		t.Fatalf("a process that stayed: got %v", got)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("reported after %v, before the grace", d)
	}
}
