//go:build linux

package sandbox_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podns/podns/sandbox/nsutil"
)

// TestHostNetworkPod: network NODE means the host's netns and UTS, and no
// CNI at all (the conf dir is empty, so any CNI call would fail); pid NODE
// is the host's PID namespace; ipc POD is still the pod's own.
func TestHostNetworkPod(t *testing.T) {
	e := newEnv(t, envOpts{noConf: true})
	pod := e.runp(podYAML("hostnet", `linux:
  security_context:
    namespace_options: {network: NODE, pid: NODE, ipc: POD}
`))
	p := e.pod(pod)
	if len(p.IPs) != 0 || p.Pins["net"] != "" {
		t.Fatalf("host-network pod has CNI state: %+v", p)
	}
	c := e.runD(pod, "a", "sleep", "3600")
	host := nsutil.ProcNS(os.Getpid())
	got := nsutil.ProcNS(c.PID)
	if got["net"] != host["net"] || got["uts"] != host["uts"] {
		t.Fatalf("host-network container: net %d uts %d, host net %d uts %d", got["net"], got["uts"], host["net"], host["uts"])
	}
	if got["ipc"] == host["ipc"] || got["ipc"] != p.NSInodes["ipc"] {
		t.Fatalf("ipc POD: container ipc %d, pod %d, host %d", got["ipc"], p.NSInodes["ipc"], host["ipc"])
	}
	if got["mnt"] == host["mnt"] {
		t.Fatal("container shares the host's mount namespace")
	}
	if got["pid"] != host["pid"] {
		t.Fatal("pid NODE: container is not in the host's PID namespace")
	}
	hn, _ := os.Hostname()
	if out := e.must("exec", pod+"/a", "--", "hostname"); strings.TrimSpace(out) != hn {
		t.Fatalf("hostname in host-network pod %q, host %q", out, hn)
	}
}

// TestSysctlsAndResolvConf: namespaced sysctls land inside the pod and not
// on the host; dns_config becomes the containers' /etc/resolv.conf; the
// hostname is set and lo is up. In holder mode the holder does the set-up,
// in pinned mode a thread of podnsctl that unshared the namespaces.
func TestSysctlsAndResolvConf(t *testing.T) {
	for _, mode := range []string{"holder", "pinned"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			hostBefore := readSysctls(t)
			hostName, _ := os.Hostname()
			pod := e.runp(podYAML("sysctl-"+mode, `hostname: tuned
dns_config:
  servers: [10.96.0.10, 10.96.0.11]
  searches: [test.svc.cluster.local, svc.cluster.local]
  options: [ndots:5]
linux:
  sysctls:
    net.ipv4.ip_unprivileged_port_start: "53"
    net/ipv4/ping_group_range: "0 2147483647"
    kernel.msgmax: "4096"
    kernel.shm_rmid_forced: "1"
  security_context:
    namespace_options: {pid: CONTAINER}
`), "--mode", mode)
			out := e.must("run", "--name", "check", pod, "--", "sh", "-c",
				"cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/msgmax /proc/sys/kernel/shm_rmid_forced; cat /etc/resolv.conf; echo host=$(hostname) lo=$(cat /sys/class/net/lo/flags)")
			want := []string{"53", "0\t2147483647", "4096", "1",
				"search test.svc.cluster.local svc.cluster.local", "nameserver 10.96.0.10", "nameserver 10.96.0.11", "options ndots:5",
				"host=tuned lo=0x9"}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("container output lacks %q:\n%s", w, out)
				}
			}
			if after := readSysctls(t); after != hostBefore {
				t.Errorf("host sysctls changed: %q → %q", hostBefore, after)
			}
			if data, _ := os.ReadFile("/etc/resolv.conf"); strings.Contains(string(data), "10.96.0.11") {
				t.Error("host resolv.conf changed")
			}
			if now, _ := os.Hostname(); now != hostName {
				t.Errorf("host name changed: %q → %q", hostName, now)
			}
		})
	}
}

func readSysctls(t *testing.T) string {
	var b strings.Builder
	for _, p := range []string{"net/ipv4/ip_unprivileged_port_start", "net/ipv4/ping_group_range", "kernel/msgmax", "kernel/shm_rmid_forced"} {
		data, err := os.ReadFile("/proc/sys/" + p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestPortMappingsAndBandwidthReachChain: port_mappings and the bandwidth
// annotations arrive as CNI capabilities: portmap DNATs the host port to
// the pod (a real connection goes through) and bandwidth shapes the veth.
func TestPortMappingsAndBandwidthReachChain(t *testing.T) {
	e := newEnv(t, envOpts{portmap: true, bandwidth: true})
	hostPort := 20000 + int(time.Now().UnixNano()%20000)
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("through-portmap\n"), 0o644)
	pod := e.runp(podYAML("ports", fmt.Sprintf(`port_mappings:
- {container_port: 8080, host_port: %d, protocol: TCP, host_ip: %s.1}
annotations:
  kubernetes.io/ingress-bandwidth: 10M
  kubernetes.io/egress-bandwidth: 20M
linux:
  security_context:
    namespace_options: {pid: CONTAINER}
`, hostPort, e.subnet)))
	e.runD(pod, "web", "busybox", "httpd", "-f", "-p", "8080", "-h", www)

	// The host-side address is the bridge gateway (a local address); the
	// portmap plugin's OUTPUT rule DNATs it to the pod.
	addr := fmt.Sprintf("%s.1:%d", e.subnet, hostPort)
	var body string
	waitFor(t, "a reply through the host port", 15*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		body = string(buf[:n])
		return strings.Contains(body, "through-portmap")
	})

	// bandwidth: an ingress tbf on the host veth and an ifb for egress.
	br, err := netlink.LinkByName(e.bridge)
	if err != nil {
		t.Fatal(err)
	}
	links, _ := netlink.LinkList()
	var veth netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			veth = l
		}
	}
	if veth == nil {
		t.Fatal("no veth on the bridge")
	}
	out, err := exec.Command("tc", "qdisc", "show", "dev", veth.Attrs().Name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tbf") {
		t.Fatalf("no tbf qdisc on %s (bandwidth capability not passed?): %s %v", veth.Attrs().Name, out, err)
	}
	e.must("rmp", pod)
	if conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		conn.Close()
		t.Fatal("host port still answers after rmp")
	}
}
