//go:build linux

// Package ipam_test execs the podns-ipam binary the way a container runtime
// does: CNI_* environment, network config on stdin, result or CNI error JSON
// on stdout.
package ipam_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/podns/podns/pkg/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// plugin is the podns-ipam binary plus one network's config.
type plugin struct {
	t       *testing.T
	bin     string
	netns   string
	dataDir string
	name    string
}

func newPlugin(t *testing.T) *plugin {
	t.Helper()
	testutil.RequireRoot(t)
	return &plugin{
		t:       t,
		bin:     filepath.Join(testutil.BinDir(t), "podns-ipam"),
		netns:   "/var/run/netns/" + testutil.UniqueName("ipamnone"), // IPAM never enters it
		dataDir: t.TempDir(),
		name:    testutil.UniqueName("ipamnet"),
	}
}

// conf returns a network config with the given ipam section fields and
// top-level fields; "type", "dataDir" and "name" are filled in.
func (p *plugin) conf(version string, ipam map[string]any, top map[string]any) []byte {
	p.t.Helper()
	i := map[string]any{"type": "podns-ipam", "dataDir": p.dataDir}
	for k, v := range ipam {
		i[k] = v
	}
	n := map[string]any{"cniVersion": version, "name": p.name, "type": "bridge", "ipam": i}
	for k, v := range top {
		n[k] = v
	}
	b, err := json.Marshal(n)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// cmd prepares one invocation.
func (p *plugin) cmd(command, containerID, cniArgs string, stdin []byte) *exec.Cmd {
	c := exec.Command(p.bin)
	c.Env = []string{
		"CNI_COMMAND=" + command,
		"CNI_PATH=" + filepath.Dir(p.bin),
	}
	if containerID != "" {
		c.Env = append(c.Env, "CNI_CONTAINERID="+containerID, "CNI_IFNAME=eth0", "CNI_NETNS="+p.netns)
	}
	if cniArgs != "" {
		c.Env = append(c.Env, "CNI_ARGS="+cniArgs)
	}
	c.Stdin = bytes.NewReader(stdin)
	return c
}

// run execs the plugin and returns stdout, or the CNI error it printed.
func (p *plugin) run(command, containerID, cniArgs string, stdin []byte) ([]byte, error) {
	c := p.cmd(command, containerID, cniArgs, stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	var cniErr types.Error
	if jerr := json.Unmarshal(stdout.Bytes(), &cniErr); jerr != nil || cniErr.Code == 0 {
		return nil, fmt.Errorf("%s %s: %v: stdout %q stderr %q", command, containerID, err, stdout.String(), stderr.String())
	}
	return nil, &cniErr
}

func (p *plugin) storeDir() string { return filepath.Join(p.dataDir, p.name) }

func errCode(err error) uint {
	if e, ok := err.(*types.Error); ok {
		return e.Code
	}
	return 0
}

// ipamResult is the version-independent part of a result we check.
type ipamResult struct {
	CNIVersion string `json:"cniVersion"`
	IPs        []struct {
		Version   string `json:"version"`
		Address   string `json:"address"`
		Gateway   string `json:"gateway"`
		Interface *int   `json:"interface"`
	} `json:"ips"`
	Routes []map[string]any `json:"routes"`
}

func parseResult(t *testing.T, out []byte) ipamResult {
	t.Helper()
	var r ipamResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("result %q: %v", out, err)
	}
	return r
}
