package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

func podSeeds() []string {
	return []string{
		"metadata:\n  name: web\n  namespace: default\n  uid: u1\nhostname: web\nlinux:\n  security_context:\n    namespace_options:\n      network: POD\n      pid: CONTAINER\n      ipc: POD\n  sysctls:\n    net.ipv4.ip_unprivileged_port_start: \"0\"\n    kernel/shm_rmid_forced: \"1\"\nport_mappings:\n- container_port: 80\n  host_port: 8080\n  protocol: TCP\n",
		`{"metadata":{"name":"a.b-c","namespace":"ns","uid":"x","attempt":1},"linux":{"security_context":{"namespace_options":{"network":2,"pid":1,"ipc":0}}},"annotations":{"kubernetes.io/ingress-bandwidth":"10M","kubernetes.io/egress-bandwidth":"1G","podns.io/mode":"pinned"},"dns_config":{"servers":["10.0.0.10"],"searches":["svc"],"options":["ndots:5"]}}`,
		`{"metadata":{"name":"../../etc"}}`,
		`{"metadata":{"name":"x"},"linux":{"security_context":{"namespace_options":{"network":"NODE"}},"sysctls":{"net.core.somaxconn":"1"}}}`,
		`{"metadata":{"name":"x"},"linux":{"security_context":{"namespace_options":{"pid":"TARGET","target_id":"abc"}}}}`,
		`{"metadata":{"name":"x"},"port_mappings":[{"container_port":70000}],"bogus":1}`,
		"- a\n- b\n", "null", "", "metadata: {name: x}\nhostname: \"\\0\"\n",
	}
}

// FuzzParsePod: the pod config loader never panics; an accepted pod has a
// DNS-subdomain name (safe as a directory and cgroup component), network and
// ipc modes podnsctl supports, only namespaced sysctls, ports in range, and
// re-encoding it gives a config that is accepted again.
func FuzzParsePod(f *testing.F) {
	for _, s := range podSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		p, err := ParsePod(data)
		if err != nil {
			if p != nil {
				t.Fatalf("pod returned with an error")
			}
			return
		}
		name := p.Config.GetMetadata().GetName()
		if name == "" || len(name) > 253 || !dnsSubdomainRE.MatchString(name) || strings.ContainsAny(name, "/\x00") || strings.Contains(name, "..") {
			t.Fatalf("accepted pod name %q", name)
		}
		if m := p.Namespaces.Network; m != ModePod && m != ModeNode {
			t.Fatalf("accepted network mode %s", m)
		}
		if m := p.Namespaces.IPC; m != ModePod && m != ModeNode {
			t.Fatalf("accepted ipc mode %s", m)
		}
		if p.Namespaces.PID == ModeTarget {
			t.Fatalf("accepted pod pid mode TARGET")
		}
		for k := range p.Sysctls {
			// Dotted form; a "/" stands for a dot inside a component
			// (eth0/100), so no form may make an empty or ".." component.
			if strings.Contains(k, "\x00") || strings.Contains(k, "..") || strings.Contains(k, "//") ||
				strings.Contains(k, "./") || strings.Contains(k, "/.") || strings.HasPrefix(k, "/") {
				t.Fatalf("sysctl %q could escape /proc/sys", k)
			}
			if !strings.HasPrefix(k, "net.") && !strings.HasPrefix(k, "kernel.") && !strings.HasPrefix(k, "fs.mqueue.") {
				t.Fatalf("accepted non-namespaced sysctl %q", k)
			}
			if strings.HasPrefix(k, "net.") && p.Namespaces.Network == ModeNode {
				t.Fatalf("accepted host-changing sysctl %q", k)
			}
		}
		for _, pm := range p.Config.GetPortMappings() {
			if pm.GetContainerPort() <= 0 || pm.GetContainerPort() > 65535 || pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
				t.Fatalf("accepted port mapping %v", pm)
			}
		}
		again, err := json.Marshal(p.Config)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		q, err := ParsePod(again)
		if err != nil {
			t.Fatalf("re-encoded pod rejected: %v\n%s", err, again)
		}
		if q.Config.GetMetadata().GetName() != name || q.Namespaces != p.Namespaces {
			t.Fatalf("round trip changed the pod: %+v vs %+v", q.Namespaces, p.Namespaces)
		}
	})
}

// FuzzParseContainer: the container config loader never panics; an
// accepted container has a DNS-label name without dots or slashes, a
// command, a known PID mode and well-formed environment names.
func FuzzParseContainer(f *testing.F) {
	for _, s := range []string{
		"metadata:\n  name: app\ncommand: [/bin/sh, -c, 'echo hi']\nenvs:\n- key: A\n  value: b\nlinux:\n  security_context:\n    namespace_options:\n      pid: POD\n",
		`{"metadata":{"name":"c1","attempt":2},"image":{"image":"busybox"},"args":["sleep","1"],"working_dir":"/","linux":{"security_context":{"namespace_options":{"pid":"TARGET","target_id":"abc"}}}}`,
		`{"metadata":{"name":"../x"},"command":["true"]}`,
		`{"metadata":{"name":"x"},"command":["true"],"envs":[{"key":"A=B"}]}`,
		`{"metadata":{"name":"x"}}`,
		`{"metadata":{"name":"x"},"command":["true"],"linux":{"security_context":{"namespace_options":{"pid":9}}}}`,
		"[]", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		c, err := ParseContainer(data)
		if err != nil {
			return
		}
		name := c.Config.GetMetadata().GetName()
		if name == "" || len(name) > 63 || strings.ContainsAny(name, "./\x00") {
			t.Fatalf("accepted container name %q", name)
		}
		if len(c.Config.GetCommand())+len(c.Config.GetArgs()) == 0 {
			t.Fatalf("accepted a container with nothing to run")
		}
		for _, e := range c.Config.GetEnvs() {
			if e.GetKey() == "" || strings.Contains(e.GetKey(), "=") {
				t.Fatalf("accepted env name %q", e.GetKey())
			}
		}
		switch m, target := ContainerPIDMode(c.Config); m {
		case "", ModePod, ModeContainer, ModeNode:
		case ModeTarget:
			if target == "" {
				t.Fatalf("accepted TARGET without target_id")
			}
		default:
			t.Fatalf("accepted pid mode %s", m)
		}
		again, err := json.Marshal(c.Config)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := ParseContainer(again); err != nil {
			t.Fatalf("re-encoded container rejected: %v\n%s", err, again)
		}
	})
}
