//go:build linux

// Package testutil holds helpers shared by podns's tests: unique resource
// names, root checks and the project's binaries built once per test binary.
package testutil

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// UniqueName returns prefix followed by random hex, at most 15 bytes long so
// it is valid as a Linux interface name as well as a netns or file name.
func UniqueName(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	name := prefix + hex.EncodeToString(b)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// RequireRoot fails the test unless it runs as root: podns's tests use the
// real kernel, and skipping silently would hide that nothing was tested.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it uses real network namespaces")
	}
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// BinDir returns a directory holding every podns binary. With PODNS_BIN_DIR
// set (hack/test.sh builds once for all packages) it is used as it is;
// otherwise the binaries are built once into a temporary directory.
func BinDir(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv("PODNS_BIN_DIR"); dir != "" {
			binDir = dir
			return
		}
		dir, err := os.MkdirTemp("", "podns-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./plugins/...", "./sandbox/cmd/...")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build binaries: %v\n%s", err, out)
			return
		}
		binDir = dir
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Main is TestMain for a package that uses BinDir: run the tests, then
// remove the binaries BinDir built, so a test run leaves no temporary
// directory behind.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuiltBinaries()
	os.Exit(code)
}

// RemoveBuiltBinaries deletes binaries BinDir built itself (Main calls it).
func RemoveBuiltBinaries() {
	if binDir != "" && os.Getenv("PODNS_BIN_DIR") == "" {
		os.RemoveAll(binDir)
	}
}

// Helper is the running test binary started again as a helper process:
// its TestMain sees env and plays the helper instead of running tests.
type Helper struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	Out   *bufio.Reader
}

// StartHelper starts the helper with env (NAME=value) added and returns it
// with the first line it printed, trimmed. When the test ends the helper
// is killed and waited for.
func StartHelper(t testing.TB, env string) (*Helper, string) {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	h := &Helper{Cmd: cmd, Stdin: in, Out: bufio.NewReader(out)}
	line, err := h.Out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v (first line %q)", err, line)
	}
	return h, strings.TrimSpace(line)
}

// Init is one package initialisation the Go runtime traced.
type Init struct {
	Pkg    string
	Allocs int
}

// Inits runs cmd with GODEBUG=inittrace=1 and returns its packages in the
// order the runtime initialised them, each with its allocation count.
func Inits(t testing.TB, cmd *exec.Cmd) []Init {
	t.Helper()
	cmd.Env = append(cmd.Env, "GODEBUG=inittrace=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", cmd.Path, err, stdout.String(), stderr.String())
	}
	var out []Init
	for _, l := range strings.Split(stderr.String(), "\n") {
		// "init PKG @T ms, C ms clock, B bytes, A allocs"
		f := strings.Fields(l)
		if len(f) != 11 || f[0] != "init" {
			continue
		}
		n, _ := strconv.Atoi(f[9])
		out = append(out, Init{Pkg: f[1], Allocs: n})
	}
	if len(out) == 0 {
		t.Fatalf("%s printed no init trace:\n%s", cmd.Path, stderr.String())
	}
	return out
}
