//go:build linux

package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCalls: several podnsctl processes at once (runp, run, rmp)
// serialise on the state lock: every pod is made once, with its own
// address, and all of it goes away.
func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = 6
	dir := t.TempDir()
	ids := make([]string, n)
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		path := filepath.Join(dir, fmt.Sprintf("p%d.yaml", i))
		os.WriteFile(path, []byte(podYAML(fmt.Sprintf("conc%d", i), "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n")), 0o644)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, errOut, code := e.ctl("runp", path)
			if code != 0 {
				errs[i] = errOut
				return
			}
			ids[i] = strings.TrimSpace(out)
		}(i)
	}
	// The same pod name raced from two callers: exactly one may win.
	dup := filepath.Join(dir, "dup.yaml")
	os.WriteFile(dup, []byte(podYAML("racer", "linux: {security_context: {namespace_options: {pid: CONTAINER}}}\n")), 0o644)
	var dupOK [2]bool
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, code := e.ctl("runp", dup)
			dupOK[i] = code == 0
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != "" {
			t.Fatalf("runp %d: %s", i, err)
		}
	}
	if dupOK[0] == dupOK[1] {
		t.Fatalf("racing runp of one pod name: successes %v, want exactly one", dupOK)
	}
	ips := map[string]bool{}
	for _, id := range ids {
		p := e.pod(id)
		e.track(p.Holder)
		if len(p.IPs) != 1 || ips[p.IPs[0]] {
			t.Fatalf("pod %s IPs %v (seen %v)", id, p.IPs, ips)
		}
		ips[p.IPs[0]] = true
	}
	if got := len(e.ipamAllocations()); got != n+1 {
		t.Fatalf("%d IPAM allocations, want %d", got, n+1)
	}
	for i, id := range ids {
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			if _, errOut, code := e.ctl("run", "--name", "c", id, "--", "true"); code != 0 {
				errs[i] = errOut
			}
			if _, errOut, code := e.ctl("rmp", id); code != 0 {
				errs[i] += errOut
			}
		}(i, id)
	}
	wg.Wait()
	for i, err := range errs {
		if err != "" {
			t.Fatalf("run/rmp %d: %s", i, err)
		}
	}
}

// TestRootfsPivot: a container with a root filesystem directory sees only
// that tree (pivot_root), with its own /proc and the pod's resolv.conf.
func TestRootfsPivot(t *testing.T) {
	e := newEnv(t, envOpts{})
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox (busybox-static) needed: %v", err)
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	for _, l := range []string{"sh", "ls", "cat", "hostname"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	os.WriteFile(filepath.Join(root, "marker"), []byte("inside-rootfs\n"), 0o644)
	pod := e.runp(podYAML("rootfs", "hostname: rooted\ndns_config: {servers: [10.96.0.10]}\nlinux: {security_context: {namespace_options: {pid: CONTAINER}}}\n"))
	out := e.must("run", "--name", "r", "--rootfs", root, pod, "--", "/bin/sh", "-c",
		"cat /marker; ls /; cat /proc/1/comm; hostname; cat /etc/resolv.conf")
	for _, w := range []string{"inside-rootfs", "marker", "rooted", "nameserver 10.96.0.10"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "usr") || strings.Contains(out, ".podns-oldroot") {
		t.Errorf("host tree visible inside the rootfs:\n%s", out)
	}
}
