package oneproc_test

import (
	"fmt"
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
			cmd.Env = []string{"CNI_COMMAND=VERSION"}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
			var before []string
			found := false
			for _, in := range testutil.Inits(t, cmd) {
				if in.Pkg == self {
					found = true
					break
				}
				if in.Pkg != "runtime" && in.Allocs != 0 {
					before = append(before, fmt.Sprintf("%s (%d allocs)", in.Pkg, in.Allocs))
				}
			}
			if !found {
				t.Fatalf("%s does not initialise %s", name, self)
			}
			if len(before) > 0 {
				t.Errorf("%s: packages that allocate initialise before %s: %s", name, self, strings.Join(before, ", "))
			}
		})
	}
}
