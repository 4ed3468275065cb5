package netconf

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/podns/podns/pkg/jsonobj"
)

// maxConf mirrors what a runtime hands a plugin: conflists are small, but
// the parser must stay sane on anything up to this size.
const maxConf = 64 << 10

func seedConfs() []string {
	return []string{
		`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"podns-ipam","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`,
		`{"cniVersion":"0.3.1","name":"n","type":"podns","mode":"routed","mtu":1400,"ipMasq":true,"ipam":{"type":"host-local"}}`,
		`{"cniVersion":"1.0.0","name":"n","type":"podns","bridge":"br0","isGateway":false,"hairpinMode":true,"ipam":{"type":"podns-ipam"},"runtimeConfig":{"mac":"02:00:00:00:00:01"}}`,
		`{"cniVersion":"0.4.0","name":"n","type":"podns","ipam":{"type":"podns-ipam"},"args":{"cni":{"mac":"0a:58:0a:f4:00:02"}},"prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0}]}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"podns-ipam"},"prevResult":{"cniVersion":"1.1.0","ips":[null],"routes":[null],"interfaces":[null]}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"podns","bridge":"../../x","ipam":{"type":"../bin/sh"}}`,
		`{"cniVersion":"9.9.9","name":"n","type":"podns"}`,
		`{"cniVersion":"1.1.0","name":"n","type":"podns","mtu":-1,"logLevel":"trace","ipam":{"type":"x"}}`,
		`[]`, `null`, ``,
	}
}

// FuzzParse: Parse never panics; what it accepts satisfies every rule the
// plugin relies on later (names safe for netlink and exec lookup, mode and
// MTU in range); what it rejects carries a CNI error code.
func FuzzParse(f *testing.F) {
	for _, s := range seedConfs() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxConf {
			return
		}
		n, err := Parse(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("error without a CNI code: %v", err)
			}
			switch te.Code {
			case types.ErrIncompatibleCNIVersion, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
			default:
				t.Fatalf("unexpected code %d: %v", te.Code, err)
			}
			if n != nil {
				t.Fatalf("config returned with an error")
			}
			return
		}
		if n.Type == "" || n.Name == "" || n.IPAM.Type == "" {
			t.Fatalf("accepted a config without type, name or ipam.type: %+v", n)
		}
		if strings.ContainsAny(n.IPAM.Type, "/\\") || n.IPAM.Type == "." || n.IPAM.Type == ".." {
			t.Fatalf("accepted ipam.type %q that is a path", n.IPAM.Type)
		}
		if !isSupported(n.CNIVersion) {
			t.Fatalf("accepted cniVersion %q", n.CNIVersion)
		}
		switch n.Mode {
		case ModeBridge:
			if ValidIfName(n.Bridge) != nil {
				t.Fatalf("accepted bridge name %q", n.Bridge)
			}
			if strings.ContainsRune(n.Bridge, 0) {
				t.Fatalf("accepted bridge name with NUL %q", n.Bridge)
			}
		case ModeRouted:
			if n.Bridge != "" {
				t.Fatalf("routed mode kept bridge %q", n.Bridge)
			}
		default:
			t.Fatalf("accepted mode %q", n.Mode)
		}
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.MAC != nil && (len(n.MAC) != 6 || n.MAC[0]&1 == 1) {
			t.Fatalf("accepted mac %s", n.MAC)
		}
		// An accepted config survives a round trip through JSON.
		again, err := json.Marshal(n)
		if err != nil {
			t.Fatalf("re-encode accepted config: %v", err)
		}
		if _, err := Parse(again); err != nil && n.RawPrevResult == nil {
			t.Fatalf("re-encoded config rejected: %v\n%s", err, again)
		}
	})
}

// FuzzParseArgs: CNI_ARGS parsing never panics, rejects only segments
// without "=", with code 4, and the last value of each known key wins.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"",
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2-3",
		"K8S_POD_NAME=a;K8S_POD_NAME=b",
		"IP=10.0.0.5", ";;;", "novalue", "=x", "K8S_POD_NAME=a=b", "K8S_POD_NAME=../../etc\x00",
		"IgnoreUnknown=TRUE;x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		bad := false
		want := map[string]string{}
		for _, kv := range strings.Split(s, ";") {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				bad = true
				break
			}
			want[k] = v
		}
		if bad {
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("ParseArgs(%q) = %v, want code 4", s, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseArgs(%q): %v", s, err)
		}
		if a.Namespace != want["K8S_POD_NAMESPACE"] || a.Name != want["K8S_POD_NAME"] ||
			a.InfraID != want["K8S_POD_INFRA_CONTAINER_ID"] || a.UID != want["K8S_POD_UID"] {
			t.Fatalf("ParseArgs(%q) = %+v, want %v", s, a, want)
		}
		if a.Pod() != "" && a.Name == "" {
			t.Fatalf("Pod() %q without a name", a.Pod())
		}
	})
}

// FuzzDecodeMatchesUnmarshal: decode (member by member) gives what
// json.Unmarshal into NetConf gives, error or value, for any input but
// those whose objects repeat a member (which encoding/json merges or
// resolves by order; see pkg/jsonobj).
func FuzzDecodeMatchesUnmarshal(f *testing.F) {
	for _, s := range seedConfs() {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"CNIVERSION":"1.1.0","Name":"n","TYPE":"podns","IPAM":{"Type":"x"},"MTU":1400,"IsGateway":null}`,
		`{"name":"n","dns":{"nameservers":["10.0.0.10"],"domain":"cluster.local","search":["a","b"],"options":["ndots:5"]},"capabilities":{"mac":true}}`,
		`{"name":"n","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}],"type":"podns"}`,
		`{"name":"n","mtu":"1500"}`, `{"name":"n","mtu":1500.5}`, `{"name":"n","isGateway":"yes"}`,
		`{"name":"n","ipam":"podns-ipam"}`, `{"name":"n","ipam":null,"dns":null,"args":null,"runtimeConfig":null}`,
		`{"name":"n","args":{"cni":{"mac":5}}}`, `{"name":"n","args":{"cni":[]}}`, `{"name":"n","dns":{"search":"x"}}`,
		`{"name":"n","runtimeConfig":{"mac":"02:00:00:00:00:01","portMappings":[]}}`, `{"name":"n","Gateway":true,"MAC":"x"}`,
		`{"name":"n","ipam":{"type":"a"},"ipam":{"type":"b"}}`, `"x"`, `1`, `{"name":"n"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxConf || jsonobj.RepeatsMember(data) {
			return
		}
		want := &NetConf{}
		wantErr := json.Unmarshal(data, want)
		got := &NetConf{}
		err := decodeInto(got, data)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decode error %v, json.Unmarshal error %v\n%s", err, wantErr, data)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decode gave\n%+v\njson.Unmarshal gave\n%+v\nfor %s", got, want, data)
		}
	})
}
