package netconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParse(t *testing.T) {
	base := `"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"host-local"}`
	good, err := Parse([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if good.Mode != ModeBridge || good.Bridge != DefaultBridge || !good.Gateway || good.MAC != nil {
		t.Fatalf("defaults: %+v", good)
	}
	c, err := Parse([]byte(`{` + base + `,"isGateway":false,"runtimeConfig":{"mac":"0a:58:0a:00:00:05"},"args":{"cni":{"mac":"0a:58:0a:00:00:06"}}}`))
	if err != nil || c.Gateway || c.MAC.String() != "0a:58:0a:00:00:05" {
		t.Fatalf("runtimeConfig.mac wins over args, isGateway false: %+v %v", c, err)
	}
	c, err = Parse([]byte(`{` + base + `,"args":{"cni":{"mac":"0a:58:0a:00:00:06"}}}`))
	if err != nil || c.MAC.String() != "0a:58:0a:00:00:06" {
		t.Fatalf("args.cni.mac: %v %v", c, err)
	}
	c, err = Parse([]byte(`{` + base + `,"mode":"routed"}`))
	if err != nil || c.Bridge != "" {
		t.Fatalf("routed: %+v %v", c, err)
	}
	c, err = Parse([]byte(`{` + base + `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.1.2.3/24"}]}}`))
	if err != nil || c.PrevResult == nil {
		t.Fatalf("prevResult: %v", err)
	}

	bad := []struct {
		name, json string
		code       uint
	}{
		{"not JSON", `{`, types.ErrDecodingFailure},
		{"no type", `{"cniVersion":"1.1.0","name":"n","ipam":{"type":"x"}}`, types.ErrInvalidNetworkConfig},
		{"no name", `{"cniVersion":"1.1.0","type":"podns","ipam":{"type":"x"}}`, types.ErrInvalidNetworkConfig},
		{"old version", `{"cniVersion":"0.2.0","name":"n","type":"podns","ipam":{"type":"x"}}`, types.ErrIncompatibleCNIVersion},
		{"future version", `{"cniVersion":"2.0.0","name":"n","type":"podns","ipam":{"type":"x"}}`, types.ErrIncompatibleCNIVersion},
		{"mode", `{` + base + `,"mode":"macvlan"}`, types.ErrInvalidNetworkConfig},
		{"bridge name too long", `{` + base + `,"bridge":"abcdefghijklmnop"}`, types.ErrInvalidNetworkConfig},
		{"bridge name with /", `{` + base + `,"bridge":"a/b"}`, types.ErrInvalidNetworkConfig},
		{"bridge in routed mode", `{` + base + `,"mode":"routed","bridge":"br0"}`, types.ErrInvalidNetworkConfig},
		{"mtu", `{` + base + `,"mtu":67}`, types.ErrInvalidNetworkConfig},
		{"no ipam", `{"cniVersion":"1.1.0","name":"n","type":"podns"}`, types.ErrInvalidNetworkConfig},
		{"ipam path", `{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"../x"}}`, types.ErrInvalidNetworkConfig},
		{"log level", `{` + base + `,"logLevel":"loud"}`, types.ErrInvalidNetworkConfig},
		{"mac", `{` + base + `,"runtimeConfig":{"mac":"nope"}}`, types.ErrInvalidNetworkConfig},
		{"multicast mac", `{` + base + `,"runtimeConfig":{"mac":"01:00:5e:00:00:01"}}`, types.ErrInvalidNetworkConfig},
		{"bad prevResult", `{` + base + `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"nope"}]}}`, types.ErrDecodingFailure},
	}
	for _, tc := range bad {
		_, err := Parse([]byte(tc.json))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != tc.code {
			t.Errorf("%s: got %v, want code %d", tc.name, err, tc.code)
		}
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;OTHER=x")
	if err != nil {
		t.Fatal(err)
	}
	if a.Pod() != "kube-system/coredns-1" || a.InfraID != "abc" || a.UID != "u-1" {
		t.Fatalf("%+v", a)
	}
	if a, _ := ParseArgs(""); a.Pod() != "" {
		t.Fatalf("empty args name a pod: %+v", a)
	}
	if _, err := ParseArgs("K8S_POD_NAME"); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Fatalf("malformed args: %v", err)
	}
}

func TestParseBounds(t *testing.T) {
	big := `{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"x"},"pad":"` + strings.Repeat("x", MaxConfigBytes) + `"}`
	for _, f := range []func([]byte) (*NetConf, error){Parse, ParseForDel} {
		var te *types.Error
		if _, err := f([]byte(big)); !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig {
			t.Fatalf("oversized config: %v", err)
		}
	}
	for _, prev := range []string{`{"cniVersion":"1.1.0","ips":[null]}`, `{"cniVersion":"0.4.0","interfaces":[null]}`, `{"cniVersion":"1.0.0","routes":[null]}`, `{"cniVersion":"1.0.0","ips":{}}`} {
		var te *types.Error
		_, err := Parse([]byte(`{"cniVersion":"1.1.0","name":"n","type":"podns","ipam":{"type":"x"},"prevResult":` + prev + `}`))
		if !errors.As(err, &te) || te.Code != types.ErrDecodingFailure {
			t.Fatalf("prevResult %s: %v", prev, err)
		}
	}
}
