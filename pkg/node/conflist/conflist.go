// Package conflist renders the node's CNI network configuration list from
// its pod CIDRs and writes it atomically, only when its content changes.
package conflist

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/podns/podns/pkg/atomicfile"
)

// Params describe one node's network as the agent sees it.
type Params struct {
	Name       string         // network name, e.g. "podns"
	CNIVersion string         // e.g. "1.1.0"
	PluginType string         // main plugin, "podns" (or "bridge")
	IPAMType   string         // "podns-ipam" (or "host-local")
	Bridge     string         // bridge name on the node
	MTU        int            // MTU of the node's uplink; 0 leaves it to the plugin
	PodCIDRs   []netip.Prefix // node.spec.podCIDRs, at most one per family
	PortMap    bool           // chain the portmap plugin
	DataDir    string         // IPAM data dir; empty uses the IPAM default
}

type ipRange struct {
	Subnet string `json:"subnet"`
}

type route struct {
	Dst string `json:"dst"`
}

type ipam struct {
	Type    string      `json:"type"`
	Ranges  [][]ipRange `json:"ranges"`
	Routes  []route     `json:"routes"`
	DataDir string      `json:"dataDir,omitempty"`
}

type mainPlugin struct {
	Type        string `json:"type"`
	Bridge      string `json:"bridge"`
	IsGateway   bool   `json:"isGateway"`
	HairpinMode bool   `json:"hairpinMode"`
	IPMasq      bool   `json:"ipMasq"`
	MTU         int    `json:"mtu,omitempty"`
	IPAM        ipam   `json:"ipam"`
}

type portMap struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
	SNAT         bool            `json:"snat"`
}

type list struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

// Render returns the conflist for p. The agent masquerades itself, so the
// plugin's ipMasq stays off.
func Render(p Params) ([]byte, error) {
	if p.Name == "" || p.PluginType == "" || p.IPAMType == "" {
		return nil, errors.New("conflist: name, plugin type and IPAM type are required")
	}
	if len(p.PodCIDRs) == 0 {
		return nil, errors.New("conflist: node has no pod CIDR")
	}
	var v4, v6 int
	m := mainPlugin{
		Type: p.PluginType, Bridge: p.Bridge, IsGateway: true, HairpinMode: true, MTU: p.MTU,
		IPAM: ipam{Type: p.IPAMType, DataDir: p.DataDir},
	}
	for _, c := range p.PodCIDRs {
		if !c.IsValid() || c.Masked() != c {
			return nil, fmt.Errorf("conflist: pod CIDR %s is not a network prefix", c)
		}
		dst := "0.0.0.0/0"
		if c.Addr().Is4() {
			v4++
		} else {
			v6++
			dst = "::/0"
		}
		m.IPAM.Ranges = append(m.IPAM.Ranges, []ipRange{{Subnet: c.String()}})
		m.IPAM.Routes = append(m.IPAM.Routes, route{Dst: dst})
	}
	if v4 > 1 || v6 > 1 {
		return nil, fmt.Errorf("conflist: at most one pod CIDR per family, got %v", p.PodCIDRs)
	}
	l := list{CNIVersion: p.CNIVersion, Name: p.Name, Plugins: []any{m}}
	if p.PortMap {
		l.Plugins = append(l.Plugins, portMap{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}, SNAT: true})
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteIfChanged writes the conflist durably by temp file + rename, so a
// runtime never reads a half-written file, and only when it changed; it
// reports whether it wrote.
func WriteIfChanged(path string, data []byte) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	return atomicfile.WriteIfChanged(path, data, 0o644)
}
