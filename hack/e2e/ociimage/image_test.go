//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readTar returns every regular file and every header of a tar stream.
func readTar(t *testing.T, b []byte) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files, hdrs := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, hdrs
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		hdrs[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = data
		}
	}
}

func TestWriteImageLayout(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "busybox"), []byte("#!fake busybox"), 0o755))
	must(os.Link(filepath.Join(root, "bin", "busybox"), filepath.Join(root, "bin", "sh")))
	must(os.Symlink("busybox", filepath.Join(root, "bin", "ls")))

	spec := Spec{RootFS: root, Names: []string{"localhost/t/a:1", "example.org/t/b:2"}, Entrypoint: []string{"/bin/sh"}, User: "65535:65535"}
	var out, again bytes.Buffer
	must(Write(&out, spec))
	must(Write(&again, spec))
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Fatal("two writes of the same rootfs differ; digests would not be stable")
	}

	files, _ := readTar(t, out.Bytes())
	var idx index
	must(json.Unmarshal(files["index.json"], &idx))
	if len(idx.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2", len(idx.Manifests))
	}
	for i, want := range spec.Names {
		if got := idx.Manifests[i].Annotations[annotationContainerdName]; got != want {
			t.Errorf("manifest %d named %q, want %q", i, got, want)
		}
	}
	manJSON := files[blobPath(idx.Manifests[0].Digest)]
	if digestOf(manJSON) != idx.Manifests[0].Digest {
		t.Fatal("manifest blob does not match its digest")
	}
	var man manifest
	must(json.Unmarshal(manJSON, &man))
	cfgJSON, layer := files[blobPath(man.Config.Digest)], files[blobPath(man.Layers[0].Digest)]
	if digestOf(cfgJSON) != man.Config.Digest || digestOf(layer) != man.Layers[0].Digest {
		t.Fatal("config or layer blob does not match its digest")
	}
	var cfg imageConfig
	must(json.Unmarshal(cfgJSON, &cfg))
	if cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest || cfg.Config.User != "65535:65535" || cfg.Config.Entrypoint[0] != "/bin/sh" {
		t.Fatalf("unexpected config %s", cfgJSON)
	}

	lfiles, lhdrs := readTar(t, layer)
	if string(lfiles["bin/busybox"]) != "#!fake busybox" {
		t.Errorf("bin/busybox content %q", lfiles["bin/busybox"])
	}
	if h := lhdrs["bin/sh"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
		t.Errorf("bin/sh should be a hard link to bin/busybox, got %+v", h)
	}
	if h := lhdrs["bin/ls"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/ls should be a symlink to busybox, got %+v", h)
	}
	if h := lhdrs["bin/"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 0 {
		t.Errorf("bin/ should be a root-owned directory, got %+v", h)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	root := t.TempDir()
	for name, spec := range map[string]Spec{
		"no name":     {RootFS: root},
		"untagged":    {RootFS: root, Names: []string{"localhost/t/a"}},
		"digest ref":  {RootFS: root, Names: []string{"localhost/t/a@sha256:00"}},
		"missing dir": {RootFS: filepath.Join(root, "nope"), Names: []string{"localhost/t/a:1"}},
	} {
		if err := Write(io.Discard, spec); err == nil {
			t.Errorf("%s: Write succeeded, want an error", name)
		}
	}
}
