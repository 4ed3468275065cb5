//go:build linux

package cniplugin

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/netconf"
)

func addrsOf(r *current.Result) []string {
	var out []string
	for _, ip := range r.IPs {
		if ip != nil {
			out = append(out, ip.Address.String())
		}
	}
	sort.Strings(out)
	return out
}

// FuzzResultConversion: a result (or prevResult) of any version podns
// accepts converts to 1.1.0 (what CHECK does with prevResult) and from there
// to every supported version (what ADD prints) without panicking, and the
// addresses survive the trip there and back.
func FuzzResultConversion(f *testing.F) {
	for _, s := range []struct {
		v    uint8
		data string
	}{
		{4, `{"cniVersion":"1.1.0","interfaces":[{"name":"podns0","mac":"02:00:00:00:00:01"},{"name":"pn0123456789a","mac":"02:00:00:00:00:02","mtu":1500},{"name":"eth0","mac":"02:00:00:00:00:03","sandbox":"/var/run/netns/p"}],"ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":2},{"address":"fd00::2/64","gateway":"fd00::1","interface":2}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"::/0","gw":"fd00::1","mtu":1400,"advmss":1360,"priority":10,"table":5,"scope":0}],"dns":{"nameservers":["10.0.0.10"],"search":["svc"]}}`},
		{0, `{"cniVersion":"0.3.0","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.1.0.2/24","interface":0}]}`},
		{1, `{"cniVersion":"0.3.1","ips":[{"version":"6","address":"fd00::5/64","interface":-1}]}`},
		{2, `{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.2/24","interface":7}],"routes":[{"dst":"10.0.0.0/8"}]}`},
		{3, `{"cniVersion":"1.0.0","ips":[null],"routes":[null],"interfaces":[null]}`},
		{4, `{"cniVersion":"1.1.0","ips":[{"address":"10.1.0.2"}]}`},
		{4, `{}`},
		{4, `null`},
	} {
		f.Add(s.v, []byte(s.data))
	}
	vers := netconf.SupportedVersions
	f.Fuzz(func(t *testing.T, v uint8, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		from := vers[int(v)%len(vers)]
		// The library's converters dereference every list element; a null
		// element panics inside libcni. podns must refuse such a prevResult
		// before converting it (test/cni TestHardeningCheckNullPrevResult),
		// so here only well-formed lists are converted.
		if hasNullElement(data) {
			return
		}
		r, err := version.NewResult(from, data)
		if err != nil {
			return
		}
		cur, err := current.NewResultFromResult(r)
		if err != nil {
			return
		}
		// An IP config without an address is printed as "<nil>" by libcni
		// and cannot be read back. podns never prints one: its addresses
		// come from IPAM and are put on the pod's interface first, and
		// podns-ipam's CHECK rejects such a prevResult with code 6.
		// The same holds for a route without a destination: podns-ipam
		// must refuse one in its config (test/cni
		// TestHardeningIPAMRoutesValidated), and podns prints only routes
		// it installed.
		for _, ip := range cur.IPs {
			if ip.Address.IP == nil {
				return
			}
		}
		for _, rt := range cur.Routes {
			if rt.Dst.IP == nil {
				return
			}
		}
		want := addrsOf(cur)
		for _, to := range vers {
			out, err := cur.GetAsVersion(to)
			if err != nil {
				continue
			}
			var buf bytes.Buffer
			if err := out.PrintTo(&buf); err != nil {
				t.Fatalf("print %s result: %v", to, err)
			}
			if !json.Valid(buf.Bytes()) {
				t.Fatalf("%s result is not JSON: %s", to, buf.Bytes())
			}
			back, err := version.NewResult(to, buf.Bytes())
			if err != nil {
				t.Fatalf("re-read %s result: %v\n%s", to, err, buf.Bytes())
			}
			again, err := current.NewResultFromResult(back)
			if err != nil {
				t.Fatalf("convert %s result back: %v", to, err)
			}
			if got := addrsOf(again); !equal(got, want) {
				t.Fatalf("%s -> %s -> 1.1.0 changed addresses: %v, want %v", from, to, got, want)
			}
		}
		// The prevResult path CHECK takes: Parse, then conversion to 1.1.0.
		conf := []byte(`{"cniVersion":"` + from + `","name":"n","type":"podns","ipam":{"type":"podns-ipam"},"prevResult":` + string(data) + `}`)
		if n, err := netconf.Parse(conf); err == nil && n.PrevResult != nil {
			if p, err := current.NewResultFromResult(n.PrevResult); err == nil && !equal(addrsOf(p), want) {
				t.Fatalf("prevResult addresses %v, want %v", addrsOf(p), want)
			}
		}
	})
}

// hasNullElement reports whether interfaces, ips or routes hold a null.
func hasNullElement(data []byte) bool {
	var lists struct {
		Interfaces []json.RawMessage `json:"interfaces"`
		IPs        []json.RawMessage `json:"ips"`
		Routes     []json.RawMessage `json:"routes"`
		DNS        json.RawMessage   `json:"dns"`
	}
	if json.Unmarshal(data, &lists) != nil {
		return false
	}
	for _, l := range [][]json.RawMessage{lists.Interfaces, lists.IPs, lists.Routes} {
		for _, e := range l {
			if string(bytes.TrimSpace(e)) == "null" {
				return true
			}
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
