package spec

import (
	"regexp"
	"strings"
	"testing"
)

func TestParsePodCrictlJSON(t *testing.T) {
	// The shape crictl's docs use: numeric enums, snake_case keys.
	p, err := ParsePod([]byte(`{
	  "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1, "uid": "hdishd83djaidwnduwk28bcsb"},
	  "hostname": "web", "log_directory": "/tmp",
	  "dns_config": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
	  "port_mappings": [{"protocol": 1, "container_port": 53, "host_port": 5353}],
	  "linux": {"sysctls": {"net/ipv4/ip_forward": "1"},
	            "security_context": {"namespace_options": {"network": 0, "pid": 1, "ipc": 2}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespaces != (PodNamespaces{Network: ModePod, PID: ModeContainer, IPC: ModeNode}) {
		t.Fatalf("namespaces %+v", p.Namespaces)
	}
	if p.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("sysctls %v", p.Sysctls)
	}
	if pm := p.Config.GetPortMappings()[0]; pm.GetProtocol().String() != "UDP" || pm.GetHostPort() != 5353 {
		t.Fatalf("port mapping %v", pm)
	}
}

func TestParsePodYAMLNames(t *testing.T) {
	p, err := ParsePod([]byte("metadata: {name: a}\nport_mappings: [{protocol: sctp, container_port: 1}]\nlinux:\n  security_context:\n    namespace_options: {network: NODE, pid: pod}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespaces.Network != ModeNode || p.Namespaces.PID != ModePod || p.Namespaces.IPC != ModePod {
		t.Fatalf("%+v", p.Namespaces)
	}
}

func TestParsePodErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[1, 2]":                  "object at the top level",
		"metadata: {name: UPPER}": "not a DNS subdomain",
		"metadata: {name: a}\nhostname: 'bad host'":                                                                       "not a valid host name",
		"metadata: {name: a}\nlinux: {security_context: {namespace_options: {pid: 9}}}":                                   "unknown value 9",
		"metadata: {name: a}\nlinux: {security_context: {namespace_options: {ipc: TARGET}}}":                              "ipc namespace mode TARGET",
		"metadata: {name: a}\nport_mappings: [{container_port: 70000}]":                                                   "out of range",
		"metadata: {name: a}\nannotations: {kubernetes.io/ingress-bandwidth: fast}":                                       "invalid bandwidth",
		"metadata: {name: a}\nlinux: {sysctls: {kernel.shmmax: '1'}, security_context: {namespace_options: {ipc: NODE}}}": "node's ipc",
	} {
		if _, err := ParsePod([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestBandwidth(t *testing.T) {
	in, eg, err := Bandwidth(map[string]string{IngressBandwidthAnnotation: "10M", EgressBandwidthAnnotation: "1Gi"})
	if err != nil || in != 10_000_000 || eg != 1<<30 {
		t.Fatalf("%d %d %v", in, eg, err)
	}
	if _, _, err := Bandwidth(map[string]string{EgressBandwidthAnnotation: "0"}); err == nil {
		t.Fatal("zero bandwidth accepted")
	}
}

func TestParseContainer(t *testing.T) {
	c, err := ParseContainer([]byte("metadata: {name: c}\ncommand: [sh]\nenvs: [{key: A, value: b}]\nlinux: {security_context: {namespace_options: {pid: TARGET, target_id: x}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, tgt := ContainerPIDMode(c.Config); m != ModeTarget || tgt != "x" {
		t.Fatalf("%s %s", m, tgt)
	}
	if string(c.Config.GetEnvs()[0].GetValue()) != "b" {
		t.Fatal("env value")
	}
	for in, want := range map[string]string{
		"metadata: {name: c}":                                     "command or args",
		"metadata: {name: c.d}\ncommand: [x]":                     "DNS label",
		"metadata: {name: c}\ncommand: [x]\nenvs: [{key: 'A=B'}]": "environment variable",
	} {
		if _, err := ParseContainer([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// TestSysctlNamesWithDottedInterfaces: a VLAN interface's name has a dot, so
// both the dotted form (eth0/100) and the path form (eth0.100) must name
// net/ipv4/conf/eth0.100/..., the kubelet's rule.
func TestSysctlNamesWithDottedInterfaces(t *testing.T) {
	for _, in := range []string{"net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter"} {
		p, err := ParsePod([]byte(`{"metadata":{"name":"x","namespace":"d","uid":"u"},"linux":{"sysctls":{"` + in + `":"1"}}}`))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if _, ok := p.Sysctls["net.ipv4.conf.eth0/100.rp_filter"]; !ok || len(p.Sysctls) != 1 {
			t.Fatalf("%s parsed as %v, want net.ipv4.conf.eth0/100.rp_filter", in, p.Sysctls)
		}
	}
}

// dnsSubdomainRE is the DNS subdomain syntax isDNSSubdomain writes out.
var dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// FuzzDNSSubdomain: isDNSSubdomain agrees with the regular expression.
func FuzzDNSSubdomain(f *testing.F) {
	for _, s := range []string{"a", "a.b-c", "-a", "a-", "a..b", ".a", "a.", "", "A", "a_b", "0-0.9", "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDNSSubdomain(s), dnsSubdomainRE.MatchString(s); got != want {
			t.Fatalf("%q: isDNSSubdomain %v, regexp %v", s, got, want)
		}
	})
}
