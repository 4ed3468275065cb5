// Package spec reads crictl-style pod and container configs (the CRI
// runtime/v1 PodSandboxConfig and ContainerConfig, JSON or YAML) and checks
// the parts podnsctl honours, so bad input fails before anything is made.
package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
)

// Mode is a namespace mode in the words of the CRI NamespaceMode enum.
type Mode string

const (
	ModePod       Mode = "POD"
	ModeContainer Mode = "CONTAINER"
	ModeNode      Mode = "NODE"
	ModeTarget    Mode = "TARGET"
)

func modeOf(m runtimeapi.NamespaceMode) Mode {
	switch m {
	case runtimeapi.NamespaceMode_POD:
		return ModePod
	case runtimeapi.NamespaceMode_CONTAINER:
		return ModeContainer
	case runtimeapi.NamespaceMode_NODE:
		return ModeNode
	case runtimeapi.NamespaceMode_TARGET:
		return ModeTarget
	}
	return Mode(fmt.Sprintf("unknown(%d)", int32(m)))
}

// PodNamespaces is the pod's NamespaceOption after validation.
type PodNamespaces struct {
	Network Mode `json:"network"`
	PID     Mode `json:"pid"`
	IPC     Mode `json:"ipc"`
}

// configJSON returns a config as JSON: what crictl and the kubelet write
// is JSON and is used as it is; anything else is read as YAML (JSON is YAML
// too, but the YAML round trip is most of a parse).
func configJSON(data []byte) ([]byte, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' && json.Valid(data) {
		return data, nil
	}
	return yaml.YAMLToJSON(data)
}

// ReadFile reads a config file; "-" means standard input.
func ReadFile(path string) ([]byte, error) {
	if path == "-" {
		var b bytes.Buffer
		_, err := b.ReadFrom(os.Stdin)
		return b.Bytes(), err
	}
	return os.ReadFile(path)
}

// sysctlName matches sysctl names as the kubelet accepts them, with dots
// or slashes; compiled on first use, as few pods set sysctls.
var sysctlName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$`)
})

// isDNSSubdomain says whether s is dot-separated labels of lower-case
// letters, digits and inner hyphens, each starting and ending with a
// letter or digit (the length limits are the caller's). Written out, not a
// regexp: every runp checks a name, and compiling the regexp was a tenth
// of a millisecond of a fresh podnsctl.
func isDNSSubdomain(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Pod is a parsed and validated pod config.
type Pod struct {
	Config *runtimeapi.PodSandboxConfig
	// JSON is the config as it was given, in JSON (YAML converted).
	JSON       []byte
	Namespaces PodNamespaces
	// Sysctls are the config's linux.sysctls with names in dotted form.
	Sysctls map[string]string
}

// ParsePod parses and validates a PodSandboxConfig in JSON or YAML.
func ParsePod(data []byte) (*Pod, error) {
	js, err := configJSON(data)
	if err != nil {
		return nil, fmt.Errorf("malformed pod config: %w", err)
	}
	cfg, err := runtimeapi.DecodePodSandboxConfig(js)
	if err != nil {
		return nil, fmt.Errorf("malformed pod config: %w", err)
	}
	md := cfg.GetMetadata()
	if md.GetName() == "" {
		return nil, fmt.Errorf("invalid pod config: metadata.name is required")
	}
	if len(md.GetName()) > 253 || !isDNSSubdomain(md.GetName()) {
		return nil, fmt.Errorf("invalid pod config: metadata.name %q is not a DNS subdomain", md.GetName())
	}
	if h := cfg.GetHostname(); h != "" && (len(h) > 64 || !isDNSSubdomain(h)) {
		return nil, fmt.Errorf("invalid pod config: hostname %q is not a valid host name", h)
	}
	p := &Pod{Config: cfg, JSON: js, Sysctls: map[string]string{}}
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	p.Namespaces = PodNamespaces{
		Network: modeOf(nso.GetNetwork()),
		PID:     modeOf(nso.GetPid()),
		IPC:     modeOf(nso.GetIpc()),
	}
	if n := p.Namespaces.Network; n != ModePod && n != ModeNode {
		return nil, fmt.Errorf("invalid pod config: network namespace mode %s (a pod's network is POD or NODE)", n)
	}
	if n := p.Namespaces.IPC; n != ModePod && n != ModeNode {
		return nil, fmt.Errorf("invalid pod config: ipc namespace mode %s (a pod's ipc is POD or NODE)", n)
	}
	if n := p.Namespaces.PID; n == ModeTarget {
		if nso.GetTargetId() == "" {
			return nil, fmt.Errorf("invalid pod config: pid namespace mode TARGET needs target_id")
		}
		return nil, fmt.Errorf("invalid pod config: pid namespace mode TARGET applies to containers, not pods")
	}
	if nso.GetUsernsOptions() != nil && nso.GetUsernsOptions().GetMode() != runtimeapi.NamespaceMode_NODE {
		return nil, fmt.Errorf("invalid pod config: user namespaces are not supported")
	}
	for k, v := range cfg.GetLinux().GetSysctls() {
		name := dottedSysctl(k)
		if !sysctlName().MatchString(k) {
			return nil, fmt.Errorf("invalid pod config: sysctl name %q", k)
		}
		if !namespacedSysctl(name) {
			return nil, fmt.Errorf("invalid pod config: sysctl %q is not namespaced (want net.*, kernel.shm*, kernel.msg*, kernel.sem or fs.mqueue.*)", k)
		}
		if strings.HasPrefix(name, "net.") && p.Namespaces.Network == ModeNode {
			return nil, fmt.Errorf("invalid pod config: sysctl %q would change the host: the pod uses the node's network", k)
		}
		if (strings.HasPrefix(name, "kernel.shm") || strings.HasPrefix(name, "kernel.msg") || strings.HasPrefix(name, "kernel.sem") || strings.HasPrefix(name, "fs.mqueue.")) && p.Namespaces.IPC == ModeNode {
			return nil, fmt.Errorf("invalid pod config: sysctl %q would change the host: the pod uses the node's ipc namespace", k)
		}
		p.Sysctls[name] = v
	}
	for i, pm := range cfg.GetPortMappings() {
		if pm.GetContainerPort() <= 0 || pm.GetContainerPort() > 65535 {
			return nil, fmt.Errorf("invalid pod config: port_mappings[%d].container_port %d out of range", i, pm.GetContainerPort())
		}
		if pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
			return nil, fmt.Errorf("invalid pod config: port_mappings[%d].host_port %d out of range", i, pm.GetHostPort())
		}
	}
	if _, _, err := Bandwidth(cfg.GetAnnotations()); err != nil {
		return nil, fmt.Errorf("invalid pod config: %w", err)
	}
	return p, nil
}

// namespacedSysctl is the kubelet's list of sysctls that live in a pod's
// network or IPC namespace; anything else would be written to the host.
// dottedSysctl puts a sysctl name in the kubelet's dotted form. A name
// whose first separator is "/" is in the path form, where a dot belongs to
// a component ("net/ipv4/conf/eth0.100/rp_filter"): dots and slashes swap,
// giving "net.ipv4.conf.eth0/100.rp_filter", which the holder's sysctl
// writer (plugins' pkg/utils/sysctl) maps back to the right /proc/sys path.
func dottedSysctl(name string) string {
	if i := strings.IndexAny(name, "./"); i >= 0 && name[i] == '/' {
		return strings.NewReplacer(".", "/", "/", ".").Replace(name)
	}
	return name
}

func namespacedSysctl(name string) bool {
	for _, p := range []string{"net.", "kernel.shm", "kernel.msg", "fs.mqueue."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return name == "kernel.sem"
}

// Container is a parsed and validated container config.
type Container struct {
	Config *runtimeapi.ContainerConfig
}

// ParseContainer parses and validates a ContainerConfig in JSON or YAML.
func ParseContainer(data []byte) (*Container, error) {
	js, err := configJSON(data)
	if err != nil {
		return nil, fmt.Errorf("malformed container config: %w", err)
	}
	cfg, err := runtimeapi.DecodeContainerConfig(js)
	if err != nil {
		return nil, fmt.Errorf("malformed container config: %w", err)
	}
	if err := ValidateContainer(cfg); err != nil {
		return nil, err
	}
	return &Container{Config: cfg}, nil
}

// ValidateContainer checks a container config podnsctl was handed.
func ValidateContainer(cfg *runtimeapi.ContainerConfig) error {
	name := cfg.GetMetadata().GetName()
	if name == "" {
		return fmt.Errorf("invalid container config: metadata.name is required")
	}
	if len(name) > 63 || !isDNSSubdomain(name) || strings.Contains(name, ".") {
		return fmt.Errorf("invalid container config: metadata.name %q is not a DNS label", name)
	}
	if len(cfg.GetCommand())+len(cfg.GetArgs()) == 0 {
		return fmt.Errorf("invalid container config: command or args is required")
	}
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nso != nil {
		switch modeOf(nso.GetPid()) {
		case ModeTarget:
			if nso.GetTargetId() == "" {
				return fmt.Errorf("invalid container config: pid namespace mode TARGET needs target_id")
			}
		case ModePod, ModeContainer, ModeNode:
		default:
			return fmt.Errorf("invalid container config: pid namespace mode %s", modeOf(nso.GetPid()))
		}
	}
	for _, e := range cfg.GetEnvs() {
		if e.GetKey() == "" || strings.Contains(e.GetKey(), "=") {
			return fmt.Errorf("invalid container config: environment variable name %q", e.GetKey())
		}
	}
	return nil
}

// ContainerPIDMode is the PID mode a container asks for, or "" to follow the pod.
func ContainerPIDMode(cfg *runtimeapi.ContainerConfig) (Mode, string) {
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nso == nil {
		return "", ""
	}
	return modeOf(nso.GetPid()), nso.GetTargetId()
}
