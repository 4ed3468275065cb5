//go:build linux

package cni_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForwardingOnlyWhenNeeded: in a node netns with forwarding off, a
// bridge without gateway or ipMasq leaves forwarding off; a gateway turns
// IPv4 and IPv6 forwarding on.
func TestForwardingOnlyWhenNeeded(t *testing.T) {
	n := newTestNet(t)
	hostNS, _ := newNetns(t)
	fwd := func() string {
		return strings.Join(strings.Fields(inNS(t, hostNS, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")), " ")
	}
	// A new netns may inherit the host's setting: start from off.
	inNS(t, hostNS, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	if got := fwd(); got != "0 0" {
		t.Fatalf("forwarding %q after switching it off", got)
	}
	for _, tc := range []struct {
		gateway bool
		want    string
	}{{false, "0 0"}, {true, "1 1"}} {
		c := n.conf("1.1.0", true, true)
		c["isGateway"] = tc.gateway
		c["ipam"].(map[string]any)["type"] = "podns-ipam"
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "10-fwd.conflist"), conflist(t, n.Name, "1.1.0", c), 0o644); err != nil {
			t.Fatal(err)
		}
		podNS, podPath := newNetns(t)
		env := []string{"CNI_CONTAINERID=c" + podNS}
		if out, err := cnitool(t, hostNS, dir, n.CNIPath, env, "add", n.Name, podPath); err != nil {
			t.Fatalf("cnitool add: %v\n%s", err, out)
		}
		if got := fwd(); got != tc.want {
			t.Fatalf("isGateway=%v: forwarding %q, want %q", tc.gateway, got, tc.want)
		}
		if out, err := cnitool(t, hostNS, dir, n.CNIPath, env, "del", n.Name, podPath); err != nil {
			t.Fatalf("cnitool del: %v\n%s", err, out)
		}
	}
}
