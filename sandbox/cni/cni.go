// Package cni attaches a pod's network namespace by running the CNI
// plugins of a network configuration list, as the CNI spec lays out: it
// picks the network from the conf dir the way kubelet and containerd do
// (first file in lexical order), passes port mappings and bandwidth as
// capabilities only to plugins that declare them, chains each ADD's result
// into the next plugin as prevResult and keeps the final result in
// libcni's cache format (the DEL's prevResult).
//
// It runs the plugins itself rather than through libcni: libcni's exec
// layer links OpenTelemetry and with it net/http and crypto/tls, whose
// package init and page faults cost every podnsctl start ~1.5 ms, more
// than the whole plugin exec. Results, errors and versions still come from
// the CNI library's types packages.
package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/atomicfile"
	"github.com/podns/podns/pkg/cnienv"
	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
)

// Defaults used by kubelet-era runtimes.
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultBinDir  = "/opt/cni/bin"
	IfName         = "eth0"
)

// List is a network configuration list.
type List struct {
	Name       string
	CNIVersion string
	Plugins    []*Plugin
	Bytes      []byte // the list as loaded: saved with the pod, cached with the result
}

// Plugin is one plugin's configuration in a list.
type Plugin struct {
	Type         string
	Capabilities map[string]bool
	raw          map[string]json.RawMessage
}

// Load returns the raw bytes of the network podnsctl uses: the first
// .conflist, .conf or .json file in dir, as a conflist.
func Load(dir string) ([]byte, *List, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read CNI config dir %s: %w", dir, err)
	}
	file := ""
	for _, e := range ents { // ReadDir sorts by name
		switch filepath.Ext(e.Name()) {
		case ".conflist", ".conf", ".json":
			if !e.IsDir() {
				file = filepath.Join(dir, e.Name())
			}
		}
		if file != "" {
			break
		}
	}
	if file == "" {
		return nil, nil, fmt.Errorf("no CNI network config in %s", dir)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI config: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
	}
	if _, ok := probe["plugins"]; !ok {
		// A single plugin's config: make it a list of one.
		var name, ver string
		if err := unmarshalField(probe, "name", &name); err != nil {
			return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
		}
		if err := unmarshalField(probe, "cniVersion", &ver); err != nil {
			return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
		}
		if data, err = json.Marshal(map[string]any{"name": name, "cniVersion": ver, "plugins": []json.RawMessage{data}}); err != nil {
			return nil, nil, err
		}
	}
	list, err := Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("CNI config %s: %w", file, err)
	}
	return data, list, nil
}

func unmarshalField(m map[string]json.RawMessage, key string, into any) error {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("invalid %s: %w", key, err)
	}
	return nil
}

// Parse reads a conflist (as saved at pod creation).
func Parse(data []byte) (*List, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("error parsing configuration list: %w", err)
	}
	l := &List{Bytes: data}
	if _, ok := m["name"]; !ok {
		return nil, errors.New("error parsing configuration list: no name")
	}
	if err := unmarshalField(m, "name", &l.Name); err != nil {
		return nil, fmt.Errorf("error parsing configuration list: %w", err)
	}
	if err := unmarshalField(m, "cniVersion", &l.CNIVersion); err != nil {
		return nil, fmt.Errorf("error parsing configuration list: %w", err)
	}
	// cniVersions lists alternatives: use the newest this library speaks.
	var versions []string
	if err := unmarshalField(m, "cniVersions", &versions); err != nil {
		return nil, fmt.Errorf("error parsing configuration list: %w", err)
	}
	if len(versions) > 0 && l.CNIVersion != "" {
		versions = append(versions, l.CNIVersion)
	}
	best := ""
	for _, v := range versions {
		newer, err := version.GreaterThan(v, version.Current())
		if err != nil {
			return nil, fmt.Errorf("error parsing configuration list: invalid cniVersions entry %q: %w", v, err)
		}
		if newer {
			continue
		}
		if gt, _ := version.GreaterThan(v, best); best == "" || gt {
			best = v
		}
	}
	if best != "" {
		l.CNIVersion = best
	}
	for _, key := range []string{"disableCheck", "disableGC", "loadOnlyInlinedPlugins"} {
		if raw, ok := m[key]; ok {
			var b bool
			var s string
			if json.Unmarshal(raw, &b) != nil && (json.Unmarshal(raw, &s) != nil || (strings.ToLower(s) != "true" && strings.ToLower(s) != "false")) {
				return nil, fmt.Errorf("error parsing configuration list: invalid value %s for %s", raw, key)
			}
		}
	}
	var plugins []json.RawMessage
	if err := unmarshalField(m, "plugins", &plugins); err != nil {
		return nil, fmt.Errorf("error parsing configuration list: %w", err)
	}
	if len(plugins) == 0 {
		return nil, errors.New("error parsing configuration list: no plugins in list")
	}
	for i, raw := range plugins {
		p := &Plugin{}
		if err := json.Unmarshal(raw, &p.raw); err != nil {
			return nil, fmt.Errorf("failed to parse plugin config %d: %w", i, err)
		}
		if err := unmarshalField(p.raw, "type", &p.Type); err != nil || p.Type == "" {
			return nil, fmt.Errorf("failed to parse plugin config %d: missing 'type'", i)
		}
		if err := unmarshalField(p.raw, "capabilities", &p.Capabilities); err != nil {
			return nil, fmt.Errorf("failed to parse plugin config %d: %w", i, err)
		}
		l.Plugins = append(l.Plugins, p)
	}
	return l, nil
}

// Client runs plugins from BinDirs and caches results under CacheDir.
type Client struct {
	BinDirs  []string
	CacheDir string
	// InProcess serves the ADD and DEL of the plugin types it names in
	// this process instead of exec'ing them (podnsctl runs its own podns
	// plugin so). The plugin must still be installed in BinDirs, so a
	// chain works the same with and without the entry.
	InProcess map[string]InProcessPlugin
}

// InProcessPlugin runs verb ("ADD" or "DEL") for args, writes ADD's result
// to out and fails with the *types.Error an exec'd plugin would print.
type InProcessPlugin func(verb string, args *skel.CmdArgs, out io.Writer) error

// Attachment is what identifies one pod on the network.
type Attachment struct {
	PodID, Name, Namespace, UID string
	NetNS                       string
	PortMappings                []*runtimeapi.PortMapping
	IngressBPS, EgressBPS       uint64
}

func (a *Attachment) cniArgs() [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", a.Namespace},
		{"K8S_POD_NAME", a.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", a.PodID},
		{"K8S_POD_UID", a.UID},
	}
}

func (a *Attachment) capabilityArgs() map[string]any {
	caps := map[string]any{}
	var pms []map[string]any
	for _, pm := range a.PortMappings {
		if pm.GetHostPort() <= 0 {
			continue // only published ports reach the portmap plugin
		}
		pms = append(pms, map[string]any{
			"hostPort":      pm.GetHostPort(),
			"containerPort": pm.GetContainerPort(),
			"protocol":      strings.ToLower(pm.GetProtocol().String()),
			"hostIP":        pm.GetHostIp(),
		})
	}
	if len(pms) > 0 {
		caps["portMappings"] = pms
	}
	if a.IngressBPS > 0 || a.EgressBPS > 0 {
		bw := map[string]any{}
		if a.IngressBPS > 0 {
			bw["ingressRate"] = a.IngressBPS
			bw["ingressBurst"] = burst(a.IngressBPS)
		}
		if a.EgressBPS > 0 {
			bw["egressRate"] = a.EgressBPS
			bw["egressBurst"] = burst(a.EgressBPS)
		}
		caps["bandwidth"] = bw
	}
	return caps
}

// burst is the token bucket size dockershim and containerd pass: effectively
// unlimited, leaving the rate as the only limit.
func burst(uint64) uint64 { return 1<<31 - 1 }

// Add attaches the pod and returns its addresses.
func (c *Client) Add(ctx context.Context, list *List, a *Attachment) ([]string, error) {
	res, err := c.add(ctx, list, a)
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

func (c *Client) add(ctx context.Context, list *List, a *Attachment) (types.Result, error) {
	if err := validate(list, a); err != nil {
		return nil, err
	}
	caps := a.capabilityArgs()
	var (
		res  types.Result
		prev json.RawMessage
	)
	for i, p := range list.Plugins {
		if i > 0 {
			var err error
			if prev, err = json.Marshal(res); err != nil {
				return nil, err
			}
		}
		conf, err := pluginConf(list, p, prev, caps)
		if err != nil {
			return nil, err
		}
		out, err := c.run(ctx, "ADD", p, conf, a)
		if err == nil {
			// A plugin answers in the version of the config it was given.
			res, err = create.Create(confVersion(list), out)
		}
		if err != nil {
			return nil, fmt.Errorf("plugin type=%q failed (add): %w", p.Type, err)
		}
	}
	if err := c.cacheAdd(list, a, caps, res); err != nil {
		return nil, fmt.Errorf("failed to set network %q cached result: %w", list.Name, err)
	}
	return res, nil
}

// Del detaches the pod; plugins succeed when things are already gone.
func (c *Client) Del(ctx context.Context, list *List, a *Attachment) error {
	if err := c.del(ctx, list, a); err != nil {
		return fmt.Errorf("CNI DEL on network %s: %w", list.Name, err)
	}
	return nil
}

func (c *Client) del(ctx context.Context, list *List, a *Attachment) error {
	if err := validate(list, a); err != nil {
		return err
	}
	// From 0.4.0 on, DEL gets the ADD's result as prevResult.
	var prev json.RawMessage
	if ge, err := version.GreaterThanOrEqualTo(confVersion(list), "0.4.0"); err != nil {
		return err
	} else if ge {
		prev = c.cached(list, a)
	}
	caps := a.capabilityArgs()
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		p := list.Plugins[i]
		conf, err := pluginConf(list, p, prev, caps)
		if err == nil {
			_, err = c.run(ctx, "DEL", p, conf, a)
		}
		if err != nil {
			return fmt.Errorf("plugin type=%q failed (delete): %w", p.Type, err)
		}
	}
	c.Forget(list, a)
	return nil
}

// Forget removes the attachment's cached result. Del does it once the DEL
// succeeded; a caller that gives up on a failed DEL does it too.
func (c *Client) Forget(list *List, a *Attachment) { os.Remove(c.cacheFile(list, a)) }

// validate checks what plugins get as identifiers (the CNI library's
// checks return a *types.Error, nil when fine).
func validate(list *List, a *Attachment) error {
	if err := utils.ValidateContainerID(a.PodID); err != nil {
		return err
	}
	if err := utils.ValidateNetworkName(list.Name); err != nil {
		return err
	}
	if err := utils.ValidateInterfaceName(IfName); err != nil {
		return err
	}
	return nil
}

// confVersion is the version plugins see (a config without one is 0.1.0).
func confVersion(list *List) string {
	if list.CNIVersion == "" {
		return "0.1.0"
	}
	return list.CNIVersion
}

// pluginConf is one plugin's stdin: its own config with the list's name and
// version, the previous result, and the capabilities it declared.
func pluginConf(list *List, p *Plugin, prev json.RawMessage, caps map[string]any) ([]byte, error) {
	m := make(map[string]any, len(p.raw)+3)
	for k, v := range p.raw {
		m[k] = v
	}
	m["name"], m["cniVersion"] = list.Name, list.CNIVersion
	if prev != nil {
		m["prevResult"] = prev
	}
	rc := map[string]any{}
	for name, on := range p.Capabilities {
		if v, ok := caps[name]; ok && on {
			rc[name] = v
		}
	}
	if len(rc) > 0 {
		m["runtimeConfig"] = rc
	}
	return json.Marshal(m)
}

// run execs one plugin with the CNI environment and conf on stdin (or calls
// it in-process, see Client.InProcess) and returns its stdout; a failure
// comes back as the plugin's CNI error.
func (c *Client) run(ctx context.Context, command string, p *Plugin, conf []byte, a *Attachment) ([]byte, error) {
	path, err := c.Find(p.Type)
	if err != nil {
		return nil, err
	}
	args := make([]string, 0, 5)
	for _, kv := range a.cniArgs() {
		args = append(args, kv[0]+"="+kv[1])
	}
	cargs := &skel.CmdArgs{
		ContainerID: a.PodID, Netns: a.NetNS, IfName: IfName,
		Args: strings.Join(args, ";"), Path: strings.Join(c.BinDirs, string(os.PathListSeparator)), StdinData: conf,
	}
	if in := c.InProcess[p.Type]; in != nil && (command == "ADD" || command == "DEL") {
		var stdout bytes.Buffer
		if err := in(command, cargs, &stdout); err != nil {
			return nil, err
		}
		return stdout.Bytes(), nil
	}
	env := cnienv.For(command, cargs)
	for try := 0; ; try++ {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, path)
		cmd.Env, cmd.Stdin, cmd.Stdout = env, bytes.NewReader(conf), &stdout
		cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
		err := cmd.Run()
		if errors.Is(err, syscall.ETXTBSY) && try < 5 {
			time.Sleep(100 * time.Millisecond) // the plugin is being installed
			continue
		}
		if err == nil {
			return stdout.Bytes(), nil
		}
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
}

func pluginError(err error, stdout, stderr []byte) error {
	e := &types.Error{}
	switch {
	case len(stdout) > 0:
		if perr := json.Unmarshal(stdout, e); perr != nil || (e.Code == 0 && e.Msg == "") {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", stdout, err)
		}
	case len(stderr) > 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q: %v", stderr, err)
	default:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return e
}

// Find looks a plugin up in BinDirs, first match wins.
func (c *Client) Find(plugin string) (string, error) {
	if plugin == "" || strings.ContainsRune(plugin, os.PathSeparator) {
		return "", fmt.Errorf("invalid plugin name %q", plugin)
	}
	for _, dir := range c.BinDirs {
		p := filepath.Join(dir, plugin)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, c.BinDirs)
}

// cacheEntry is libcni's result cache record, so either can read the other's.
type cacheEntry struct {
	Kind           string          `json:"kind"`
	ContainerID    string          `json:"containerId"`
	Config         []byte          `json:"config"`
	IfName         string          `json:"ifName"`
	NetworkName    string          `json:"networkName"`
	NetNS          string          `json:"netns,omitempty"`
	CniArgs        [][2]string     `json:"cniArgs,omitempty"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
}

func (c *Client) cacheFile(list *List, a *Attachment) string {
	return filepath.Join(c.CacheDir, "results", list.Name+"-"+a.PodID+"-"+IfName)
}

func (c *Client) cacheAdd(list *List, a *Attachment, caps map[string]any, res types.Result) error {
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	data, err := json.Marshal(cacheEntry{
		Kind: "cniCacheV1", ContainerID: a.PodID, Config: list.Bytes, IfName: IfName, NetworkName: list.Name,
		NetNS: a.NetNS, CniArgs: a.cniArgs(), CapabilityArgs: caps, Result: raw,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.cacheFile(list, a)), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(c.cacheFile(list, a), data, 0o600, false)
}

// cached is the ADD's result from the cache in the list's version, or nil
// (an unreadable entry is dropped, as libcni does).
func (c *Client) cached(list *List, a *Attachment) json.RawMessage {
	data, err := os.ReadFile(c.cacheFile(list, a))
	if err != nil {
		return nil
	}
	var e cacheEntry
	if json.Unmarshal(data, &e) == nil && e.Kind == "cniCacheV1" && len(e.Result) > 0 {
		// Cached by this list's ADD, the result is in the list's version
		// already and goes to the plugins as it is.
		var v struct {
			CNIVersion string `json:"cniVersion"`
		}
		if json.Unmarshal(e.Result, &v) == nil && v.CNIVersion == confVersion(list) {
			return e.Result
		}
		if r, err := create.CreateFromBytes(e.Result); err == nil {
			if r, err = r.GetAsVersion(confVersion(list)); err == nil {
				if raw, err := json.Marshal(r); err == nil {
					return raw
				}
			}
		}
	}
	os.Remove(c.cacheFile(list, a))
	return nil
}

// DefaultCacheDir is the result cache inside a podns state root.
func DefaultCacheDir(stateRoot string) string { return filepath.Join(stateRoot, "cni-cache") }
