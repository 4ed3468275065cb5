// Package cni attaches a pod's network namespace through libcni: it picks
// the network from the conf dir the way kubelet and containerd do (first
// file in lexical order), and passes port mappings and bandwidth as CNI
// capabilities so only plugins that declare them receive them.
package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
)

// Defaults used by kubelet-era runtimes.
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultBinDir  = "/opt/cni/bin"
	IfName         = "eth0"
)

// Load returns the raw bytes of the network podnsctl uses: the first
// .conflist, .conf or .json file in dir, as a conflist.
func Load(dir string) ([]byte, *libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI config dir %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("no CNI network config in %s", dir)
	}
	file := files[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI config: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
	}
	if _, ok := probe["plugins"]; !ok {
		single, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
		}
		list, err := libcni.ConfListFromConf(single)
		if err != nil {
			return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
		}
		return list.Bytes, list, nil
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
	}
	if len(list.Plugins) == 0 {
		return nil, nil, fmt.Errorf("CNI config %s: no plugins", file)
	}
	return data, list, nil
}

// Parse reads a conflist saved at pod creation.
func Parse(data []byte) (*libcni.NetworkConfigList, error) {
	return libcni.NetworkConfFromBytes(data)
}

// Client runs plugins from BinDirs and caches results under CacheDir.
type Client struct {
	BinDirs  []string
	CacheDir string
}

func (c *Client) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(c.BinDirs, c.CacheDir, nil)
}

// Attachment is what identifies one pod on the network.
type Attachment struct {
	PodID, Name, Namespace, UID string
	NetNS                       string
	PortMappings                []*runtimeapi.PortMapping
	IngressBPS, EgressBPS       uint64
}

func (a *Attachment) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: a.PodID,
		NetNS:       a.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.Namespace},
			{"K8S_POD_NAME", a.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", a.PodID},
			{"K8S_POD_UID", a.UID},
		},
		CapabilityArgs: map[string]interface{}{},
	}
	var pms []map[string]interface{}
	for _, pm := range a.PortMappings {
		if pm.GetHostPort() <= 0 {
			continue // only published ports reach the portmap plugin
		}
		pms = append(pms, map[string]interface{}{
			"hostPort":      pm.GetHostPort(),
			"containerPort": pm.GetContainerPort(),
			"protocol":      strings.ToLower(pm.GetProtocol().String()),
			"hostIP":        pm.GetHostIp(),
		})
	}
	if len(pms) > 0 {
		rt.CapabilityArgs["portMappings"] = pms
	}
	if a.IngressBPS > 0 || a.EgressBPS > 0 {
		bw := map[string]interface{}{}
		if a.IngressBPS > 0 {
			bw["ingressRate"] = a.IngressBPS
			bw["ingressBurst"] = burst(a.IngressBPS)
		}
		if a.EgressBPS > 0 {
			bw["egressRate"] = a.EgressBPS
			bw["egressBurst"] = burst(a.EgressBPS)
		}
		rt.CapabilityArgs["bandwidth"] = bw
	}
	return rt
}

// burst is the token bucket size dockershim and containerd pass: effectively
// unlimited, leaving the rate as the only limit.
func burst(uint64) uint64 { return 1<<31 - 1 }

// Add attaches the pod and returns its addresses.
func (c *Client) Add(ctx context.Context, list *libcni.NetworkConfigList, a *Attachment) ([]string, error) {
	res, err := c.cni().AddNetworkList(ctx, list, a.runtimeConf())
	if err != nil {
		return nil, fmt.Errorf("CNI ADD on network %s: %w", list.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result: %w", err)
	}
	var ips []string
	for _, ip := range r.IPs {
		ips = append(ips, ip.Address.String())
	}
	return ips, nil
}

// Del detaches the pod; plugins succeed when things are already gone.
func (c *Client) Del(ctx context.Context, list *libcni.NetworkConfigList, a *Attachment) error {
	if err := c.cni().DelNetworkList(ctx, list, a.runtimeConf()); err != nil {
		return fmt.Errorf("CNI DEL on network %s: %w", list.Name, err)
	}
	return nil
}

// DefaultCacheDir is the libcni cache inside a podns state root.
func DefaultCacheDir(stateRoot string) string { return filepath.Join(stateRoot, "cni-cache") }
