//go:build linux

package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/testutil"
)

// TestHolderFootprint measures an idle holder (PID 1 of its own PID
// namespace) and keeps it within bounds: the README compares these figures
// with the pause binary's. Run with -v to see them.
func TestHolderFootprint(t *testing.T) {
	testutil.RequireRoot(t)
	cmd, _ := startHolder(t, true)
	pid := cmd.Process.Pid
	waitFor(t, "holder set up", 15*time.Second, func() bool { return sigIgnored(pid, unix.SIGQUIT) })
	time.Sleep(300 * time.Millisecond)
	kb := func(field string) int {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				n, _ := strconv.Atoi(strings.Fields(v)[0])
				return n
			}
		}
		t.Fatalf("no %s in smaps_rollup", field)
		return 0
	}
	rss, anon := kb("Rss"), kb("Anonymous")
	threads, _ := strconv.Atoi(statusField(pid, "Threads"))
	st, err := os.Stat(filepath.Join(testutil.BinDir(t), "podns-sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("podns-sandbox: binary %d bytes, RSS %d kB, anonymous (private) %d kB, %d threads", st.Size(), rss, anon, threads)
	if anon > 4096 || threads > 16 || rss > 16384 {
		t.Fatalf("holder footprint regressed: RSS %d kB, anonymous %d kB, %d threads", rss, anon, threads)
	}
	unix.Kill(pid, unix.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
