package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestBinaries(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "podns"), []byte("A"), 0o755))
	must(os.WriteFile(filepath.Join(src, "podns-ipam"), []byte("B"), 0o755))
	must(os.WriteFile(filepath.Join(src, "README"), []byte("not a binary"), 0o644))
	changed, err := Binaries(src, dst)
	must(err)
	if !slices.Equal(changed, []string{"podns", "podns-ipam"}) {
		t.Fatalf("changed = %v", changed)
	}
	if _, err := os.Stat(filepath.Join(dst, "README")); err == nil {
		t.Fatal("non-executable file installed")
	}
	if st, _ := os.Stat(filepath.Join(dst, "podns")); st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", st.Mode())
	}
	changed, err = Binaries(src, dst)
	must(err)
	if len(changed) != 0 {
		t.Fatalf("second install changed %v", changed)
	}
	must(os.WriteFile(filepath.Join(src, "podns"), []byte("A2"), 0o755))
	changed, err = Binaries(src, dst)
	must(err)
	if !slices.Equal(changed, []string{"podns"}) {
		t.Fatalf("update changed %v", changed)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "podns")); string(b) != "A2" {
		t.Fatalf("content %q", b)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != 2 {
		t.Fatalf("temp files left: %v", ents)
	}
	if _, err := Binaries(t.TempDir(), dst); err == nil {
		t.Fatal("empty source accepted")
	}
	if _, err := Binaries(filepath.Join(src, "missing"), dst); err == nil {
		t.Fatal("missing source accepted")
	}
}
