//go:build linux

package sandbox_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podns/podns/sandbox/nsutil"
)

type nsReport struct {
	Rows []struct {
		Pod       string            `json:"pod"`
		PodID     string            `json:"podId"`
		Container string            `json:"container"`
		PID       int               `json:"pid"`
		NS        map[string]uint64 `json:"ns"`
		Host      map[string]bool   `json:"host"`
	} `json:"rows"`
	CrossPod []string `json:"crossPod"`
}

// TestTwoPodsShareWithinNotAcross is the pod model: two pods with two
// containers each; containers of a pod share net, ipc and uts (and pid with
// pid POD), have their own mnt; pods share nothing.
func TestTwoPodsShareWithinNotAcross(t *testing.T) {
	e := newEnv(t, envOpts{})
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello-from-a\n"), 0o644)

	podA := e.runp(podYAML("alpha", `hostname: alpha-host
linux:
  security_context:
    namespace_options: {network: POD, pid: POD, ipc: POD}
`))
	podB := e.runp(podYAML("beta", `hostname: beta-host
linux:
  security_context:
    namespace_options: {network: POD, pid: CONTAINER, ipc: POD}
`))
	// Container a of each pod makes a SysV message queue and serves on
	// 127.0.0.1 only; b just runs.
	for _, pod := range []string{podA, podB} {
		e.runD(pod, "a", "sh", "-c", "ipcmk -Q >/dev/null && exec busybox httpd -f -p 127.0.0.1:8080 -h "+www)
		e.runD(pod, "b", "sleep", "3600")
	}
	waitFor(t, "queues", 15*time.Second, func() bool {
		out, _, _ := e.ctl("exec", podA+"/a", "--", "ipcs", "-q")
		return strings.Count(out, "0x") == 1
	})

	var rep nsReport
	if err := json.Unmarshal([]byte(e.must("ns", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.CrossPod) != 0 {
		t.Fatalf("namespaces shared across pods: %v", rep.CrossPod)
	}
	byPod := map[string]map[string]map[string]uint64{} // pod → container → ns
	for _, r := range rep.Rows {
		if byPod[r.PodID] == nil {
			byPod[r.PodID] = map[string]map[string]uint64{}
		}
		if _, seen := byPod[r.PodID][r.Container]; !seen {
			byPod[r.PodID][r.Container] = r.NS
		}
	}
	host := nsutil.ProcNS(os.Getpid())
	for _, pod := range []string{podA, podB} {
		c := byPod[pod]
		if len(c) != 3 {
			t.Fatalf("pod %s: want holder+2 containers in ns table, got %v", pod, c)
		}
		for _, k := range []string{"net", "ipc", "uts"} {
			if c["a"][k] != c["b"][k] || c["a"][k] != c["(holder)"][k] || c["a"][k] == host[k] {
				t.Errorf("pod %s: %s not shared by the pod: %v", pod, k, c)
			}
		}
		if c["a"]["mnt"] == c["b"]["mnt"] || c["a"]["mnt"] == host["mnt"] {
			t.Errorf("pod %s: containers share a mount namespace", pod)
		}
		if c["a"]["cgroup"] == host["cgroup"] {
			t.Errorf("pod %s: container has the host's cgroup namespace", pod)
		}
	}
	for _, k := range []string{"net", "ipc", "uts", "mnt", "pid"} {
		for _, ca := range byPod[podA] {
			for _, cb := range byPod[podB] {
				if ca[k] == cb[k] && ca[k] != host[k] {
					t.Errorf("%s shared across pods", k)
				}
			}
		}
	}
	// pid: POD shares (b sees a's httpd, PID 1 is the holder); CONTAINER not.
	if byPod[podA]["a"]["pid"] != byPod[podA]["b"]["pid"] {
		t.Error("pid POD: containers have different PID namespaces")
	}
	if byPod[podB]["a"]["pid"] == byPod[podB]["b"]["pid"] {
		t.Error("pid CONTAINER: containers share a PID namespace")
	}

	// Checks run as a third container in each pod, in the foreground.
	check := func(pod, script string) string {
		t.Helper()
		out, errOut, code := e.ctl("run", "--name", "check"+fmt.Sprint(len(script)%1000), pod, "--", "sh", "-c", script)
		if code != 0 {
			t.Fatalf("check in %s: exit %d: %s %s", pod, code, out, errOut)
		}
		return out
	}
	const procs = "cat /proc/[0-9]*/comm | sort -u | tr '\\n' ,"
	outA := check(podA, "hostname; ipcs -q | grep -c 0x; busybox wget -q -O- http://127.0.0.1:8080/; cat /proc/1/comm; "+procs)
	lines := strings.Fields(outA)
	if len(lines) < 5 || lines[0] != "alpha-host" || lines[1] != "1" || lines[2] != "hello-from-a" || lines[3] != "podns-sandbox" {
		t.Fatalf("pod alpha check: %q (want hostname, 1 queue, the page, PID 1 = holder)", outA)
	}
	if !strings.Contains(lines[4], "sleep") || !strings.Contains(lines[4], "busybox") {
		t.Errorf("pid POD: a new container does not see the others' processes: %s", lines[4])
	}
	// b of pod A sees a's processes by name.
	if out, _, _ := e.ctl("exec", podA+"/b", "--", "sh", "-c", "cat /proc/[0-9]*/comm"); !strings.Contains(out, "busybox") && !strings.Contains(out, "httpd") {
		t.Errorf("pid POD: b does not see a's httpd: %q", out)
	}
	// Pod beta: its own queue only, a's server unreachable from it? No: its
	// own a serves; pod alpha's queue id must not be visible.
	qa, _, _ := e.ctl("exec", podA+"/a", "--", "ipcs", "-q")
	qb, _, _ := e.ctl("exec", podB+"/b", "--", "ipcs", "-q")
	if keysOf(qa) == keysOf(qb) {
		t.Errorf("pod beta sees pod alpha's message queue:\n%s\n%s", qa, qb)
	}
	outB := check(podB, "hostname; cat /proc/1/comm; "+procs)
	lb := strings.Fields(outB)
	if len(lb) < 3 || lb[0] != "beta-host" || lb[1] != "sh" {
		t.Fatalf("pod beta check: %q (want beta-host, PID 1 = its own sh)", outB)
	}
	if strings.Contains(lb[2], "sleep") || strings.Contains(lb[2], "busybox") || strings.Contains(lb[2], "podns-sandbox") {
		t.Errorf("pid CONTAINER: a container sees other processes: %s", lb[2])
	}
	if out, _, _ := e.ctl("exec", podB+"/b", "--", "sh", "-c", "cat /proc/[0-9]*/comm"); strings.Contains(out, "httpd") || strings.Contains(out, "busybox") {
		t.Errorf("pid CONTAINER: b sees a's processes: %q", out)
	}
	// Pod beta's 127.0.0.1 is its own: it reaches its own a, and pod
	// alpha's server is not there (stop beta's a, then nothing answers).
	e.must("exec", podB+"/b", "--", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/")
	if out, _, _ := e.ctl("exec", podB+"/a", "--", "hostname"); strings.TrimSpace(out) != "beta-host" {
		t.Errorf("exec hostname in beta/a: %q", out)
	}
	for _, pod := range []string{podA, podB} {
		e.must("stopp", pod)
	}
	e.must("rmp", podA, podB)
}

func keysOf(ipcs string) string {
	var keys []string
	for _, f := range strings.Fields(ipcs) {
		if strings.HasPrefix(f, "0x") {
			keys = append(keys, f)
		}
	}
	return strings.Join(keys, ",")
}
