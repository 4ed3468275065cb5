//go:build linux

package sandbox_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPodsOnPodnsPlugin runs pods on this tree's podns CNI plugin (with
// host-local IPAM, whose allocations the leak check can read): pod-to-pod
// ping, then a killed holder that gc must clean up completely.
func TestPodsOnPodnsPlugin(t *testing.T) {
	e := newEnv(t, envOpts{podns: true})
	a := e.runp(podYAML("pa", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	b := e.runp(podYAML("pb", "linux: {security_context: {namespace_options: {pid: POD}}}\n"))
	e.runD(a, "s", "sleep", "3600")
	e.runD(b, "s", "sleep", "3600")
	ipB := strings.Split(e.pod(b).IPs[0], "/")[0]
	if !strings.HasPrefix(ipB, e.subnet+".") {
		t.Fatalf("pod b address %s not from %s.0/24", ipB, e.subnet)
	}
	if out, errOut, code := e.ctl("exec", a+"/s", "--", "ping", "-c", "1", "-W", "2", ipB); code != 0 {
		t.Fatalf("ping a→b: %s %s", out, errOut)
	}
	unix.Kill(e.pod(b).Holder, unix.SIGKILL)
	waitFor(t, "pod b dead", 15*time.Second, func() bool { return e.pod(b).State == "dead" })
	if out := e.must("gc"); !strings.Contains(out, "holder died") {
		t.Fatalf("gc: %q", out)
	}
	if got := len(e.ipamAllocations()); got != 1 {
		t.Fatalf("%d IPAM allocations after gc, want 1 (pod a)", got)
	}
	e.must("rmp", a)
	e.assertClean()
}
