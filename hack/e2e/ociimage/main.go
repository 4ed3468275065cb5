//go:build linux

// Command ociimage writes a single-layer OCI image layout tarball from a
// directory, for `ctr images import` on a machine with no registry.
//
//	ociimage -rootfs DIR -name localhost/podns/pause:e2e -entrypoint '["/pause"]' -o pause.tar
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// jsonArgs is a flag holding a JSON array of strings, as in a Dockerfile's exec form.
type jsonArgs []string

func (a *jsonArgs) String() string { b, _ := json.Marshal([]string(*a)); return string(b) }
func (a *jsonArgs) Set(v string) error {
	var s []string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return fmt.Errorf("want a JSON array of strings: %w", err)
	}
	*a = s
	return nil
}

func main() {
	var (
		spec       Spec
		names, env listFlag
		entry, cmd jsonArgs
		out        string
	)
	flag.StringVar(&spec.RootFS, "rootfs", "", "directory holding the image's files (required)")
	flag.Var(&names, "name", "image reference to import it as, e.g. localhost/podns/pause:e2e (repeatable, required)")
	flag.Var(&entry, "entrypoint", `entrypoint as a JSON array, e.g. '["/pause"]'`)
	flag.Var(&cmd, "cmd", `default arguments as a JSON array`)
	flag.Var(&env, "env", "KEY=VALUE environment entry (repeatable)")
	flag.StringVar(&spec.User, "user", "", "user[:group] the image runs as")
	flag.StringVar(&spec.WorkingDir, "workdir", "", "working directory")
	flag.StringVar(&out, "o", "", "output tarball (required)")
	flag.Parse()
	if spec.RootFS == "" || out == "" || len(names) == 0 || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ociimage -rootfs DIR -name REF [-name REF...] [-entrypoint JSON] [-cmd JSON] [-env K=V] [-user U] [-workdir D] -o OUT.tar")
		os.Exit(2)
	}
	spec.Names, spec.Env, spec.Entrypoint, spec.Cmd = names, env, entry, cmd
	if err := run(spec, out); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

// run writes the image next to out and renames it into place, so a
// half-written tarball never looks like a finished one.
func run(spec Spec, out string) error {
	if st, err := os.Stat(spec.RootFS); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("rootfs %s is not a directory", spec.RootFS)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".ociimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, spec); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
