//go:build linux

package cniplugin

import (
	"bytes"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/testutil"
)

// BenchmarkInvokeAdd runs the plugin's ADD in this warm process (Invoke, as
// podnsctl does), each pod in a fresh netns, and reports it per ADD: what
// the verb costs without a process start, the number a design with a
// long-lived node process would start from. The DEL after each ADD is not
// timed.
func BenchmarkInvokeAdd(b *testing.B) {
	testutil.RequireRoot(b)
	// As the plugin binary does: nftables sockets are released by the
	// kernel after this process exits, so no ADD waits in a socket release
	// for the previous DEL's clean-up (round 7). Benchmarks run after every
	// test of the package, so no test sees the setting.
	masq.ReleaseAfterExit()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nsName := testutil.UniqueName("invbn")
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	args, _ := invokeArgs(b, "1.1.0", "/var/run/netns/"+nsName, "10.238.8.0/24")
	var out bytes.Buffer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if o, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
			b.Fatalf("ip netns add: %v %s", err, o)
		}
		out.Reset()
		b.StartTimer()
		if err := Invoke("ADD", args, &out); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := Invoke("DEL", args, &out); err != nil {
			b.Fatal(err)
		}
		if o, err := exec.Command("ip", "netns", "del", nsName).CombinedOutput(); err != nil {
			b.Fatalf("ip netns del: %v %s", err, o)
		}
		// Let the kernel finish tearing the pod down before the next one.
		time.Sleep(20 * time.Millisecond)
		b.StartTimer()
	}
}
