package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteIfChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "10-x.conflist")
	for i, step := range []struct {
		data    string
		changed bool
	}{{"one\n", true}, {"one\n", false}, {"two\n", true}} {
		changed, err := WriteIfChanged(path, []byte(step.data), 0o644)
		if err != nil || changed != step.changed {
			t.Fatalf("step %d: changed %v err %v, want changed %v", i, changed, err, step.changed)
		}
		if got, _ := os.ReadFile(path); string(got) != step.data {
			t.Fatalf("step %d: file holds %q, want %q", i, got, step.data)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the directory, want only the file (no temp files left)", len(ents))
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600, false); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed write left %d entries", len(ents))
	}
}
