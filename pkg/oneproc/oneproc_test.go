package oneproc_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestInitialisedBeforeAnyAllocation: in each binary that imports it, oneproc
// must initialise before any package that allocates, or that package's
// allocations come from the second P's span cache (see the package doc).
// The runtime's own inittrace gives the order and each init's allocations.
func TestInitialisedBeforeAnyAllocation(t *testing.T) {
	const self = "github.com/podns/podns/pkg/oneproc"
	for name, args := range map[string][]string{"podns": nil, "podns-ipam": nil, "podns-sandbox": {"-v"}} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(testutil.BinDir(t), name), args...)
			cmd.Env = []string{"CNI_COMMAND=VERSION", "GODEBUG=inittrace=1"}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
			}
			var before []string
			found := false
			sc := bufio.NewScanner(&stderr)
			for sc.Scan() {
				// "init PKG @T ms, C ms clock, B bytes, A allocs"
				f := strings.Fields(sc.Text())
				if len(f) != 11 || f[0] != "init" {
					continue
				}
				if f[1] == self {
					found = true
					break
				}
				if f[1] != "runtime" && f[9] != "0" {
					before = append(before, f[1]+" ("+f[9]+" allocs)")
				}
			}
			if !found {
				t.Fatalf("%s does not initialise %s:\n%s", name, self, stderr.String())
			}
			if len(before) > 0 {
				t.Errorf("%s: packages that allocate initialise before %s: %s", name, self, strings.Join(before, ", "))
			}
		})
	}
}
