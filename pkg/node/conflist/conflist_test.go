package conflist

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRenderDualStack(t *testing.T) {
	b, err := Render(Params{
		Name: "podns", CNIVersion: "1.1.0", PluginType: "podns", IPAMType: "podns-ipam", Bridge: "podns0", MTU: 1450,
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")}, PortMap: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		CNIVersion string
		Name       string
		Plugins    []struct {
			Type         string
			Bridge       string
			MTU          int
			IPMasq       bool
			Capabilities map[string]bool
			IPAM         struct {
				Type   string
				Ranges [][]struct{ Subnet string }
				Routes []struct{ Dst string }
			}
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("rendered conflist is not JSON: %v\n%s", err, b)
	}
	if got.CNIVersion != "1.1.0" || got.Name != "podns" || len(got.Plugins) != 2 {
		t.Fatalf("conflist header: %s", b)
	}
	p := got.Plugins[0]
	if p.Type != "podns" || p.Bridge != "podns0" || p.MTU != 1450 || p.IPMasq || p.IPAM.Type != "podns-ipam" {
		t.Fatalf("main plugin: %s", b)
	}
	if len(p.IPAM.Ranges) != 2 || p.IPAM.Ranges[0][0].Subnet != "10.244.1.0/24" || p.IPAM.Ranges[1][0].Subnet != "fd00:10:244:1::/64" {
		t.Fatalf("ranges: one range set per family expected: %s", b)
	}
	if len(p.IPAM.Routes) != 2 || p.IPAM.Routes[0].Dst != "0.0.0.0/0" || p.IPAM.Routes[1].Dst != "::/0" {
		t.Fatalf("routes: %s", b)
	}
	if got.Plugins[1].Type != "portmap" || !got.Plugins[1].Capabilities["portMappings"] {
		t.Fatalf("portmap: %s", b)
	}
}

func TestRenderRejects(t *testing.T) {
	base := Params{Name: "n", CNIVersion: "1.1.0", PluginType: "podns", IPAMType: "podns-ipam"}
	for name, cidrs := range map[string][]string{
		"none":      nil,
		"two v4":    {"10.0.0.0/24", "10.0.1.0/24"},
		"host bits": {"10.0.0.1/24"},
	} {
		p := base
		for _, c := range cidrs {
			p.PodCIDRs = append(p.PodCIDRs, netip.MustParsePrefix(c))
		}
		if _, err := Render(p); err == nil {
			t.Errorf("%s: Render accepted %v", name, cidrs)
		}
	}
}

func TestWriteIfChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "net.d", "10-podns.conflist")
	changed, err := WriteIfChanged(path, []byte("one\n"))
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	st1, _ := os.Stat(path)
	time.Sleep(10 * time.Millisecond)
	changed, err = WriteIfChanged(path, []byte("one\n"))
	if err != nil || changed {
		t.Fatalf("identical write: changed=%v err=%v", changed, err)
	}
	st2, _ := os.Stat(path)
	if !st1.ModTime().Equal(st2.ModTime()) || !os.SameFile(st1, st2) {
		t.Fatal("identical content rewrote the file")
	}
	changed, err = WriteIfChanged(path, []byte("two\n"))
	if err != nil || !changed {
		t.Fatalf("changed write: %v %v", changed, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Fatalf("content %q", b)
	}
	if st3, _ := os.Stat(path); os.SameFile(st2, st3) {
		t.Fatal("changed content was written in place, not renamed over")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
}
