// Package netconf parses and validates the podns plugin's network
// configuration and the CNI_ARGS a runtime passes with it.
package netconf

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cnilog"
	"github.com/podns/podns/pkg/jsonobj"
)

// Modes the plugin can wire a pod in.
const (
	ModeBridge = "bridge"
	ModeRouted = "routed"
)

// DefaultBridge is the bridge used in bridge mode when "bridge" is unset.
const DefaultBridge = "podns0"

// SupportedVersions are the CNI spec versions podns accepts in a config.
var SupportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// NetConf is the podns plugin configuration.
type NetConf struct {
	types.PluginConf

	Mode        string `json:"mode,omitempty"`
	Bridge      string `json:"bridge,omitempty"`
	IsGateway   *bool  `json:"isGateway,omitempty"`
	HairpinMode bool   `json:"hairpinMode,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
	IPMasq      bool   `json:"ipMasq,omitempty"`
	LogFile     string `json:"logFile,omitempty"`
	LogLevel    string `json:"logLevel,omitempty"`

	RuntimeConfig struct {
		Mac string `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args struct {
		Cni struct {
			Mac string `json:"mac,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`

	// Filled in by Parse from the fields above.
	Gateway bool             `json:"-"`
	MAC     net.HardwareAddr `json:"-"`
}

func invalid(format string, a ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

// MaxConfigBytes bounds a network config: runtimes write a few KiB, and a
// plugin must not parse and act on whatever size it is fed.
const MaxConfigBytes = 1 << 20

func tooBig(stdin []byte) error {
	if len(stdin) > MaxConfigBytes {
		return invalid("network config is %d bytes, more than %d", len(stdin), MaxConfigBytes)
	}
	return nil
}

// decode gives the NetConf json.Unmarshal would, member by member
// (pkg/jsonobj): unmarshalling into NetConf first reflected over it and
// the seven struct types inside it, 0.13 ms of a plugin process.
func decode(stdin []byte) (*NetConf, error) {
	n := &NetConf{}
	if err := decodeInto(n, stdin); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode network config: %v", err), "")
	}
	return n, nil
}

func decodeInto(n *NetConf, stdin []byte) error {
	o, err := jsonobj.Decode(stdin)
	if err != nil {
		return err
	}
	ipam, err := o.Object("ipam")
	if err != nil {
		return err
	}
	dns, err := o.Object("dns")
	if err != nil {
		return err
	}
	rc, err := o.Object("runtimeConfig")
	if err != nil {
		return err
	}
	args, err := o.Object("args")
	if err != nil {
		return err
	}
	cni, err := args.Object("cni")
	if err != nil {
		return fmt.Errorf("\"args\": %w", err)
	}
	p := &n.PluginConf
	if err := ipam.Get("type", &p.IPAM.Type); err != nil {
		return fmt.Errorf("\"ipam\": %w", err)
	}
	if err := dns.GetAll(
		jsonobj.F("nameservers", &p.DNS.Nameservers),
		jsonobj.F("domain", &p.DNS.Domain),
		jsonobj.F("search", &p.DNS.Search),
		jsonobj.F("options", &p.DNS.Options),
	); err != nil {
		return fmt.Errorf("\"dns\": %w", err)
	}
	if err := rc.Get("mac", &n.RuntimeConfig.Mac); err != nil {
		return fmt.Errorf("\"runtimeConfig\": %w", err)
	}
	if err := cni.Get("mac", &n.Args.Cni.Mac); err != nil {
		return fmt.Errorf("\"args\": \"cni\": %w", err)
	}
	return o.GetAll(
		jsonobj.F("cniVersion", &p.CNIVersion),
		jsonobj.F("name", &p.Name),
		jsonobj.F("type", &p.Type),
		jsonobj.F("capabilities", &p.Capabilities),
		jsonobj.F("prevResult", &p.RawPrevResult),
		jsonobj.F("cni.dev/valid-attachments", &p.ValidAttachments),
		jsonobj.F("mode", &n.Mode),
		jsonobj.F("bridge", &n.Bridge),
		jsonobj.F("isGateway", &n.IsGateway),
		jsonobj.F("hairpinMode", &n.HairpinMode),
		jsonobj.F("mtu", &n.MTU),
		jsonobj.F("ipMasq", &n.IPMasq),
		jsonobj.F("logFile", &n.LogFile),
		jsonobj.F("logLevel", &n.LogLevel),
	)
}

// nullEntries rejects prevResult lists holding null: the CNI result
// converters dereference every entry.
func nullEntries(raw map[string]interface{}) error {
	for _, k := range []string{"interfaces", "ips", "routes"} {
		v, ok := raw[k]
		if !ok || v == nil {
			continue
		}
		l, ok := v.([]interface{})
		if !ok {
			return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult.%s is not a list", k), "")
		}
		for i, e := range l {
			if e == nil {
				return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult.%s[%d] is null", k, i), "")
			}
		}
	}
	return nil
}

// Parse decodes and validates stdin bytes. prevResult, when present, is
// parsed into PluginConf.PrevResult. Errors carry the CNI code to return.
func Parse(stdin []byte) (*NetConf, error) {
	if err := tooBig(stdin); err != nil {
		return nil, err
	}
	n, err := decode(stdin)
	if err != nil {
		return nil, err
	}
	if n.Type == "" {
		return nil, invalid("network config has no \"type\"")
	}
	if n.Name == "" {
		return nil, invalid("network config has no \"name\"")
	}
	if n.CNIVersion == "" {
		n.CNIVersion = "0.1.0"
	}
	if !isSupported(n.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion,
			fmt.Sprintf("cniVersion %q is not supported", n.CNIVersion),
			"supported: "+strings.Join(SupportedVersions, ", "))
	}
	switch n.Mode {
	case "":
		n.Mode = ModeBridge
	case ModeBridge, ModeRouted:
	default:
		return nil, invalid("unsupported mode %q (want %q or %q)", n.Mode, ModeBridge, ModeRouted)
	}
	if n.Mode == ModeBridge {
		if n.Bridge == "" {
			n.Bridge = DefaultBridge
		}
		if err := ValidIfName(n.Bridge); err != nil {
			return nil, invalid("bridge %q: %v", n.Bridge, err)
		}
	} else if n.Bridge != "" {
		return nil, invalid("\"bridge\" is not used in routed mode")
	}
	n.Gateway = n.IsGateway == nil || *n.IsGateway
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return nil, invalid("mtu %d out of range 68..65535", n.MTU)
	}
	if n.IPAM.Type == "" {
		return nil, invalid("network config has no \"ipam\" with a \"type\"")
	}
	if strings.ContainsAny(n.IPAM.Type, "/\\") || n.IPAM.Type == "." || n.IPAM.Type == ".." {
		return nil, invalid("ipam.type %q is not a plugin name", n.IPAM.Type)
	}
	if _, err := cnilog.ParseLevel(n.LogLevel); err != nil {
		return nil, invalid("logLevel: %v", err)
	}
	mac := n.RuntimeConfig.Mac
	if mac == "" {
		mac = n.Args.Cni.Mac
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, invalid("mac %q is not an Ethernet address", mac)
		}
		if hw[0]&1 == 1 {
			return nil, invalid("mac %q is a multicast address", mac)
		}
		n.MAC = hw
	}
	if n.RawPrevResult != nil {
		if err := nullEntries(n.RawPrevResult); err != nil {
			return nil, err
		}
		if err := version.ParsePrevResult(&n.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("parse prevResult: %v", err), "")
		}
	}
	return n, nil
}

func isSupported(v string) bool {
	for _, s := range SupportedVersions {
		if s == v {
			return true
		}
	}
	return false
}

// ValidIfName applies the kernel's rules for an interface name, and
// refuses a "%" too: the kernel takes a name with "%d" as a template and
// picks the name itself (eth%d becomes eth0), so the link would not be
// the one the config or CNI_IFNAME names.
func ValidIfName(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("must be 1 to 15 bytes")
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r%") {
		return fmt.Errorf("not a valid interface name")
	}
	return nil
}

// K8sArgs are the pod identity fields kubelets and containerd pass in CNI_ARGS.
type K8sArgs struct {
	Namespace string
	Name      string
	InfraID   string
	UID       string
}

// ParseArgs reads CNI_ARGS ("K=V;K=V"). Unknown keys are accepted: runtimes
// send IgnoreUnknown=1 and podns has no args of its own to reject.
func ParseArgs(s string) (K8sArgs, error) {
	var a K8sArgs
	if s == "" {
		return a, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return a, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", kv), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			a.Namespace = v
		case "K8S_POD_NAME":
			a.Name = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.InfraID = v
		case "K8S_POD_UID":
			a.UID = v
		}
	}
	return a, nil
}

// Pod returns "namespace/name" when the runtime named the pod, else "".
func (a K8sArgs) Pod() string {
	if a.Name == "" {
		return ""
	}
	return a.Namespace + "/" + a.Name
}

// ParseForDel decodes a config for DEL without judging podns's own fields.
// Runtimes DEL after every ADD, failed ones included: a config ADD refused
// (bad mode, mtu, mac, ...) created nothing, and failing its DEL forever
// would leave the pod stuck in teardown.
func ParseForDel(stdin []byte) (*NetConf, error) {
	if err := tooBig(stdin); err != nil {
		return nil, err
	}
	n, err := decode(stdin)
	if err != nil {
		return nil, err
	}
	if n.Name == "" {
		return nil, invalid("network config has no \"name\"")
	}
	if strings.ContainsAny(n.IPAM.Type, "/\\") || n.IPAM.Type == "." || n.IPAM.Type == ".." {
		n.IPAM.Type = ""
	}
	return n, nil
}
