//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Impl is one implementation under test: a set of plugin binaries and how to
// configure them. Side names the column it fills ("podns", "ref", "deb").
type Impl struct {
	Side       string `json:"side"`
	Label      string `json:"label"`
	Dir        string `json:"dir"` // CNI_PATH
	Main       string `json:"main"`
	Mode       string `json:"mode,omitempty"` // podns only: bridge or routed
	IPAM       string `json:"ipam"`
	CNIVersion string `json:"cniVersion"`
}

// Net is one network of one implementation: its own name, bridge, subnet and
// IPAM data directory, so the sides never share state.
type Net struct {
	Impl    Impl
	Name    string
	Bridge  string
	Subnet  *net.IPNet
	DataDir string
	Conf    []byte // single plugin config, as a runtime sends it
	// ConfDir holds <Name>.conflist for cnitool.
	ConfDir string
}

func newNet(impl Impl, name, bridge, subnet, stateDir string, ipMasq bool) (*Net, error) {
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil {
		return nil, fmt.Errorf("subnet %s: %w", subnet, err)
	}
	n := &Net{Impl: impl, Name: name, Bridge: bridge, Subnet: sn,
		DataDir: filepath.Join(stateDir, "ipam", name), ConfDir: filepath.Join(stateDir, "conf")}
	ipam := map[string]any{
		"type":    impl.IPAM,
		"ranges":  [][]map[string]string{{{"subnet": subnet}}},
		"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
		"dataDir": n.DataDir,
	}
	conf := map[string]any{"cniVersion": impl.CNIVersion, "name": name, "type": impl.Main, "ipam": ipam}
	if ipMasq {
		conf["ipMasq"] = true
	}
	switch impl.Main {
	case "bridge":
		conf["bridge"], conf["isGateway"] = bridge, true
	case "podns":
		conf["mode"] = impl.Mode
		if impl.Mode == "bridge" {
			conf["bridge"], conf["isGateway"] = bridge, true
		}
	}
	if n.Conf, err = json.Marshal(conf); err != nil {
		return nil, err
	}
	list := map[string]any{"cniVersion": impl.CNIVersion, "name": name, "plugins": []any{conf}}
	delete(conf, "cniVersion")
	delete(conf, "name")
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, name+".conflist"), b, 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

// Attachment is one pod's interface on a Net.
type Attachment struct {
	Net         *Net
	ContainerID string
	NetnsName   string
	NetnsPath   string
	IfName      string
	IPs         []string
}

// via selects how a plugin is driven: exec'd directly as a runtime does, or
// through cnitool (libcni: conflist parsing, result cache, version checks).
type via string

const (
	viaExec    via = "exec"
	viaCnitool via = "cnitool"
)

// cniError is a plugin failure with the plugin's own output.
type cniError struct {
	cmd    string
	err    error
	output string
}

func (e *cniError) Error() string {
	out := strings.TrimSpace(e.output)
	if len(out) > 300 {
		out = out[:300] + "..."
	}
	return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, out)
}

// run execs one CNI command for the attachment and returns the wall time of
// the process (fork to reap), the way a runtime pays for it.
func (a *Attachment) run(cmd string, how via) (time.Duration, []byte, error) {
	var c *exec.Cmd
	switch how {
	case viaExec:
		c = exec.Command(filepath.Join(a.Net.Impl.Dir, a.Net.Impl.Main))
		c.Env = []string{
			"CNI_COMMAND=" + cmd,
			"CNI_CONTAINERID=" + a.ContainerID,
			"CNI_NETNS=" + a.NetnsPath,
			"CNI_IFNAME=" + a.IfName,
			"CNI_PATH=" + a.Net.Impl.Dir,
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		}
		c.Stdin = bytes.NewReader(a.Net.Conf)
	case viaCnitool:
		c = exec.Command(cnitoolPath, strings.ToLower(cmd), a.Net.Name, a.NetnsPath)
		c.Env = []string{
			"NETCONFPATH=" + a.Net.ConfDir,
			"CNI_PATH=" + a.Net.Impl.Dir,
			"CNI_IFNAME=" + a.IfName,
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		}
	default:
		return 0, nil, fmt.Errorf("unknown way %q", how)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if err != nil {
		return d, stdout.Bytes(), &cniError{cmd: fmt.Sprintf("%s %s %s (%s)", a.Net.Impl.Label, cmd, a.ContainerID, how), err: err, output: stdout.String() + stderr.String()}
	}
	return d, stdout.Bytes(), nil
}

// resultIPs pulls the addresses out of any CNI result version.
func resultIPs(out []byte) []string {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
		IP4 *struct {
			IP string `json:"ip"`
		} `json:"ip4"`
	}
	if json.Unmarshal(out, &r) != nil {
		return nil
	}
	var ips []string
	for _, ip := range r.IPs {
		ips = append(ips, ip.Address)
	}
	if r.IP4 != nil {
		ips = append(ips, r.IP4.IP)
	}
	return ips
}

// cnitoolContainerID is the container ID cnitool derives from a netns path.
var cnitoolPath = "cnitool"
