//go:build linux

package ipam

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/podns/podns/pkg/jsonobj"
)

// FuzzLoadConfig: the IPAM config and CNI_ARGS parser never panics; an
// accepted config keeps its store inside dataDir, has non-overlapping range
// sets and only static addresses inside them; a rejected one says why with
// a CNI code (4, 6 or 7).
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []struct{ conf, args string }{
		{`{"cniVersion":"1.1.0","name":"net1","ipam":{"type":"podns-ipam","dataDir":"/tmp/x","ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.20","gateway":"10.1.0.1"}],[{"subnet":"fd00::/120"}]]}}`, ""},
		{`{"cniVersion":"0.3.1","name":"net1","ipam":{"type":"podns-ipam","subnet":"10.2.0.0/16","reserved":["10.2.0.5","10.2.1.0/24"],"routes":[{"dst":"0.0.0.0/0"}],"lockTimeout":"2s"}}`, "IgnoreUnknown=1;IP=10.2.0.9"},
		{`{"cniVersion":"1.0.0","name":"net1","ipam":{"type":"podns-ipam","ranges":[[{"subnet":"10.3.0.0/24"}]]},"runtimeConfig":{"ips":["10.3.0.7/24"],"ipRanges":[[{"subnet":"10.4.0.0/30"}]]},"args":{"cni":{"ips":["10.3.0.7"]}}}`, ""},
		{`{"cniVersion":"1.1.0","name":"..","ipam":{"type":"podns-ipam","dataDir":"/tmp","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`, ""},
		{`{"cniVersion":"1.1.0","name":"a/../../b","ipam":{"type":"podns-ipam","dataDir":"relative","migrateFrom":"../x","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`, ""},
		{`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"podns-ipam","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.128/25"}]]}}`, "IP=10.9.9.9"},
		{`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"podns-ipam","ranges":[[{"subnet":"10.1.0.0/32"}],[{"subnet":"::/0"}]],"lockTimeout":"-1s"}}`, "bad"},
		{`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"podns-ipam","ranges":[[{"subnet":"::ffff:10.0.0.0/120"}]]}}`, "IP=::ffff:10.0.0.5"},
		{`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"podns-ipam","ranges":[[]]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`, ""},
		{`{"name":"n","ipam":null}`, ""},
		{`{`, ""},
	} {
		f.Add([]byte(s.conf), s.args)
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		if len(stdin) > 64<<10 {
			return
		}
		c, err := LoadConfig(stdin, cniArgs)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("error without a CNI code: %v", err)
			}
			switch te.Code {
			case types.ErrInvalidEnvironmentVariables, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
			default:
				t.Fatalf("unexpected code %d: %v", te.Code, err)
			}
			return
		}
		if utils.ValidateNetworkName(c.Name) != nil {
			t.Fatalf("accepted network name %q", c.Name)
		}
		if !filepath.IsAbs(c.DataDir) {
			t.Fatalf("accepted relative dataDir %q", c.DataDir)
		}
		rel, err := filepath.Rel(filepath.Clean(c.DataDir), c.Dir)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "/") {
			t.Fatalf("store dir %q is not one level inside dataDir %q", c.Dir, c.DataDir)
		}
		if strings.ContainsRune(c.Dir, 0) {
			t.Fatalf("store dir %q has a NUL", c.Dir)
		}
		if len(c.Sets) == 0 {
			t.Fatalf("accepted a config with no range sets")
		}
		for i := range c.Sets {
			for j := i + 1; j < len(c.Sets); j++ {
				if c.Sets[i].Overlaps(c.Sets[j]) {
					t.Fatalf("range sets %d and %d overlap", i, j)
				}
			}
		}
		for _, a := range c.Static {
			in := 0
			for _, set := range c.Sets {
				if set.Find(a) >= 0 {
					in++
				}
			}
			if in != 1 {
				t.Fatalf("static %s is in %d range sets", a, in)
			}
		}
		// Routes go into the result podns prints and installs: each needs
		// a destination (a null entry crashed ADD after it made the veth).
		for i, rt := range c.Routes {
			if rt == nil || rt.Dst.IP == nil || rt.Dst.Mask == nil {
				t.Fatalf("accepted route %d without a destination: %v", i, rt)
			}
		}
		if c.LockTimeout <= 0 {
			t.Fatalf("lock timeout %v", c.LockTimeout)
		}
	})
}

// FuzzDecodeMatchesUnmarshal: decodeNetConf (member by member) gives what
// json.Unmarshal into netConf gives, error or value, for any input but
// those whose objects repeat a member (see pkg/jsonobj).
func FuzzDecodeMatchesUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"net1","ipam":{"type":"podns-ipam","dataDir":"/tmp/x","ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.20","gateway":"10.1.0.1"}],[{"subnet":"fd00::/120"}]]}}`,
		`{"cniVersion":"0.3.1","name":"net1","ipam":{"type":"podns-ipam","subnet":"10.2.0.0/16","rangeStart":"10.2.0.2","gateway":"10.2.0.1","reserved":["10.2.0.5","10.2.1.0/24"],"routes":[{"dst":"0.0.0.0/0","gw":"10.2.0.1"},null],"lockTimeout":"2s","resolvConf":"/etc/r","migrateFrom":"/var/lib/cni/networks"}}`,
		`{"name":"n","ipam":{"type":"x"},"runtimeConfig":{"ips":["10.3.0.7/24"],"ipRanges":[[{"subnet":"10.4.0.0/30"}],null,[]]},"args":{"cni":{"ips":["10.3.0.7"]}}}`,
		`{"name":"n","args":{},"ipam":{}}`, `{"name":"n","args":{"cni":null}}`, `{"name":"n","args":null,"ipam":null,"runtimeConfig":null}`,
		`{"name":"n","ipam":{"ranges":[[null,{"subnet":1}]]}}`, `{"name":"n","ipam":{"ranges":[{"subnet":"x"}]}}`, `{"name":"n","ipam":{"ranges":[]}}`,
		`{"name":"n","ipam":{"routes":[{"dst":"nope"}]}}`, `{"name":"n","ipam":{"reserved":"x"}}`, `{"name":"n","runtimeConfig":{"ips":[1]}}`,
		`{"NAME":"n","IPAM":{"TYPE":"t","Subnet":"10.0.0.0/8"},"CNI.DEV/VALID-ATTACHMENTS":[{"containerID":"a","ifname":"eth0"}],"prevResult":{"ips":[]}}`,
		`{"name":"n","ipam":{"type":"a"},"ipam":{"dataDir":"/x"}}`, `[]`, `null`, `{`, `"s"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 || jsonobj.RepeatsMember(data) {
			return
		}
		want := &netConf{}
		wantErr := json.Unmarshal(data, want)
		got, err := decodeNetConf(data)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decode error %v, json.Unmarshal error %v\n%s", err, wantErr, data)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decode gave\n%+v\njson.Unmarshal gave\n%+v\nfor %s", got, want, data)
		}
	})
}
