package cni

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
)

// recorder is a CNI plugin that keeps each call's stdin and environment
// and answers ADD with one address.
const recorder = `#!/bin/sh
n=$(ls "$REC_DIR" | wc -l)
cat > "$REC_DIR/$n-$CNI_COMMAND-$(basename "$0").json"
env | grep '^CNI_' | sort > "$REC_DIR/$n-$CNI_COMMAND-$(basename "$0").env"
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.2.3/24","interface":0}]}' ;;
esac
`

const failer = `#!/bin/sh
echo '{"cniVersion":"1.0.0","code":11,"msg":"try later"}'
exit 1
`

func setup(t *testing.T) (bin, rec string) {
	bin, rec = t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"rec-a": recorder, "rec-b": recorder, "fail": failer} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("REC_DIR", rec)
	return bin, rec
}

func calls(t *testing.T, rec string) map[string]map[string]any {
	out := map[string]map[string]any{}
	files, _ := filepath.Glob(filepath.Join(rec, "*.json"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v: %s", f, err, data)
		}
		_, name, _ := strings.Cut(filepath.Base(f), "-")
		out[strings.TrimSuffix(name, ".json")] = m
	}
	return out
}

const listJSON = `{"cniVersion":"1.0.0","name":"net1","plugins":[
 {"type":"rec-a","capabilities":{"portMappings":true},"big":12345678901234567890},
 {"type":"rec-b","capabilities":{"bandwidth":true,"portMappings":false}}]}`

func attachment() *Attachment {
	return &Attachment{PodID: "pod1", Name: "n", Namespace: "ns", UID: "u", NetNS: "/x/net",
		PortMappings: []*runtimeapi.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: runtimeapi.Protocol_UDP}, {ContainerPort: 81}},
		IngressBPS:   1000}
}

// TestAddDelChain: ADD runs the plugins in order with name, version,
// prevResult and only the capabilities each declared; DEL runs them in
// reverse with the cached result; the cache is gone afterwards.
func TestAddDelChain(t *testing.T) {
	bin, rec := setup(t)
	list, err := Parse([]byte(listJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{BinDirs: []string{t.TempDir(), bin}, CacheDir: t.TempDir()}
	ips, err := c.Add(context.Background(), list, attachment())
	if err != nil || len(ips) != 1 || ips[0] != "10.1.2.3/24" {
		t.Fatalf("add: %v %v", ips, err)
	}
	got := calls(t, rec)
	a, b := got["ADD-rec-a"], got["ADD-rec-b"]
	if a == nil || b == nil {
		t.Fatalf("calls: %v", got)
	}
	if a["name"] != "net1" || a["cniVersion"] != "1.0.0" || a["prevResult"] != nil || b["prevResult"] == nil {
		t.Fatalf("names, versions, prevResult: %v / %v", a, b)
	}
	if rc := a["runtimeConfig"].(map[string]any); rc["portMappings"] == nil || rc["bandwidth"] != nil ||
		len(rc["portMappings"].([]any)) != 1 || rc["portMappings"].([]any)[0].(map[string]any)["protocol"] != "udp" {
		t.Fatalf("rec-a runtimeConfig %v", rc)
	}
	if rc := b["runtimeConfig"].(map[string]any); rc["bandwidth"] == nil || rc["portMappings"] != nil {
		t.Fatalf("rec-b runtimeConfig %v", rc)
	}
	data, _ := os.ReadFile(filepath.Join(rec, "0-ADD-rec-a.json"))
	if !strings.Contains(string(data), "12345678901234567890") {
		t.Fatalf("plugin config numbers changed: %s", data)
	}
	env, _ := os.ReadFile(filepath.Join(rec, "0-ADD-rec-a.env"))
	for _, w := range []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=pod1", "CNI_NETNS=/x/net", "CNI_IFNAME=eth0",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=n;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u", "CNI_PATH=" + c.BinDirs[0] + ":" + bin} {
		if !strings.Contains(string(env), w+"\n") {
			t.Errorf("env lacks %q:\n%s", w, env)
		}
	}
	if err := c.Del(context.Background(), list, attachment()); err != nil {
		t.Fatal(err)
	}
	got = calls(t, rec)
	if got["DEL-rec-a"]["prevResult"] == nil || got["DEL-rec-b"]["prevResult"] == nil {
		t.Fatalf("DEL without the cached result: %v", got)
	}
	// Each call leaves two files, so calls are numbered 0, 2, 4, 6.
	_, errB := os.Stat(filepath.Join(rec, "4-DEL-rec-b.json"))
	if _, errA := os.Stat(filepath.Join(rec, "6-DEL-rec-a.json")); errA != nil || errB != nil {
		t.Fatal("DEL did not run in reverse order")
	}
	if ents, _ := os.ReadDir(filepath.Join(c.CacheDir, "results")); len(ents) != 0 {
		t.Fatalf("cache left: %v", ents)
	}
}

// TestCacheCompatibleWithLibcni: libcni's DEL finds the result podnsctl
// cached, and podnsctl's DEL finds what libcni cached.
func TestCacheCompatibleWithLibcni(t *testing.T) {
	bin, rec := setup(t)
	list, _ := Parse([]byte(listJSON))
	lcList, err := libcni.NetworkConfFromBytes([]byte(listJSON))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	c := &Client{BinDirs: []string{bin}, CacheDir: cache}
	lc := libcni.NewCNIConfigWithCacheDir([]string{bin}, cache, nil)
	rt := &libcni.RuntimeConf{ContainerID: "pod1", NetNS: "/x/net", IfName: IfName}

	if _, err := c.Add(context.Background(), list, attachment()); err != nil {
		t.Fatal(err)
	}
	if err := lc.DelNetworkList(context.Background(), lcList, rt); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, rec); got["DEL-rec-a"]["prevResult"] == nil {
		t.Fatalf("libcni did not read podnsctl's cache: %v", got)
	}
	os.RemoveAll(rec)
	os.Mkdir(rec, 0o700)
	if _, err := lc.AddNetworkList(context.Background(), lcList, rt); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(context.Background(), list, attachment()); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, rec); got["DEL-rec-a"]["prevResult"] == nil {
		t.Fatalf("podnsctl did not read libcni's cache: %v", got)
	}
}

// TestErrors: a plugin's CNI error keeps its code; a missing plugin, a bad
// list and an empty conf dir are clear errors.
func TestErrors(t *testing.T) {
	bin, _ := setup(t)
	list, _ := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"rec-a"},{"type":"fail"}]}`))
	c := &Client{BinDirs: []string{bin}, CacheDir: t.TempDir()}
	_, err := c.Add(context.Background(), list, attachment())
	if err == nil || !strings.Contains(err.Error(), `plugin type="fail" failed (add): try later`) {
		t.Fatalf("add error: %v", err)
	}
	list, _ = Parse([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"nope"}]}`))
	if _, err := c.Add(context.Background(), list, attachment()); err == nil || !strings.Contains(err.Error(), `failed to find plugin "nope"`) {
		t.Fatalf("missing plugin: %v", err)
	}
	for in, want := range map[string]string{
		`{"plugins":[{"type":"a"}]}`:                                   "no name",
		`{"name":"n","plugins":[]}`:                                    "no plugins",
		`{"name":"n","plugins":[{"x":1}]}`:                             "missing 'type'",
		`{"name":"n","disableCheck":"maybe","plugins":[{"type":"a"}]}`: "disableCheck",
		`[1]`: "error parsing configuration list",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if l, err := Parse([]byte(`{"name":"n","cniVersion":"0.4.0","cniVersions":["0.3.1","1.0.0","9.9.9"],"plugins":[{"type":"a"}]}`)); err != nil || l.CNIVersion != "1.0.0" {
		t.Errorf("cniVersions: %+v %v", l, err)
	}
	dir := t.TempDir()
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no CNI network config") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "20-b.conflist"), []byte(listJSON), 0o644)
	os.WriteFile(filepath.Join(dir, "10-a.conf"), []byte(`{"cniVersion":"0.4.0","name":"single","type":"rec-a"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "05-x.txt"), []byte(`junk`), 0o644)
	data, l, err := Load(dir)
	if err != nil || l.Name != "single" || l.CNIVersion != "0.4.0" || len(l.Plugins) != 1 || l.Plugins[0].Type != "rec-a" {
		t.Fatalf("single conf: %+v %v", l, err)
	}
	if again, err := Parse(data); err != nil || again.Name != "single" {
		t.Fatalf("saved single conf does not parse: %s %v", data, err)
	}
}

// TestCachedResultConverted: a cached result in another version reaches
// the DEL in the list's version; an unreadable cache entry means no
// prevResult and is dropped.
func TestCachedResultConverted(t *testing.T) {
	bin, rec := setup(t)
	c := &Client{BinDirs: []string{bin}, CacheDir: t.TempDir()}
	newer, _ := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"rec-a"}]}`))
	if _, err := c.Add(context.Background(), newer, attachment()); err != nil {
		t.Fatal(err)
	}
	older, _ := Parse([]byte(`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"rec-a"}]}`))
	if err := c.Del(context.Background(), older, attachment()); err != nil {
		t.Fatal(err)
	}
	prev, _ := calls(t, rec)["DEL-rec-a"]["prevResult"].(map[string]any)
	if prev == nil || prev["cniVersion"] != "0.4.0" {
		t.Fatalf("DEL prevResult %v", prev)
	}
	os.MkdirAll(filepath.Join(c.CacheDir, "results"), 0o700)
	os.WriteFile(c.cacheFile(older, attachment()), []byte("{junk"), 0o600)
	os.RemoveAll(rec)
	os.Mkdir(rec, 0o700)
	if err := c.Del(context.Background(), older, attachment()); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, rec)["DEL-rec-a"]; got == nil || got["prevResult"] != nil {
		t.Fatalf("DEL after a bad cache entry: %v", got)
	}
	if _, err := os.Stat(c.cacheFile(older, attachment())); err == nil {
		t.Fatal("bad cache entry kept")
	}
}

// TestInProcessPlugin: a plugin type in Client.InProcess is called in this
// process for ADD and DEL with what an exec'd one gets in its environment
// and on stdin; its result chains into the next (exec'd) plugin and is
// cached; its CNI error comes back with its code; it must still be
// installed.
func TestInProcessPlugin(t *testing.T) {
	bin, rec := setup(t)
	list, err := Parse([]byte(listJSON))
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		verb string
		args skel.CmdArgs
		conf map[string]any
	}
	var got []call
	inproc := func(verb string, args *skel.CmdArgs, out io.Writer) error {
		var conf map[string]any
		if err := json.Unmarshal(args.StdinData, &conf); err != nil {
			t.Fatalf("in-process stdin: %v", err)
		}
		got = append(got, call{verb, *args, conf})
		if verb == "ADD" {
			_, err := io.WriteString(out, `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.9.8.7/24","interface":0}]}`)
			return err
		}
		return nil
	}
	c := &Client{BinDirs: []string{t.TempDir(), bin}, CacheDir: t.TempDir(), InProcess: map[string]InProcessPlugin{"rec-a": inproc}}
	ips, err := c.Add(context.Background(), list, attachment())
	if err != nil || len(ips) != 1 || ips[0] != "10.1.2.3/24" { // rec-b's result is the chain's
		t.Fatalf("add: %v %v", ips, err)
	}
	if len(got) != 1 || got[0].verb != "ADD" {
		t.Fatalf("in-process calls %v", got)
	}
	want := skel.CmdArgs{ContainerID: "pod1", Netns: "/x/net", IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=n;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u",
		Path: c.BinDirs[0] + ":" + bin}
	a := got[0].args
	a.StdinData = nil
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("in-process args %+v, want %+v", a, want)
	}
	if conf := got[0].conf; conf["name"] != "net1" || conf["prevResult"] != nil || conf["runtimeConfig"].(map[string]any)["portMappings"] == nil {
		t.Fatalf("in-process config %v", conf)
	}
	b := calls(t, rec)["ADD-rec-b"]
	if prev, _ := json.Marshal(b["prevResult"]); !strings.Contains(string(prev), "10.9.8.7/24") {
		t.Fatalf("rec-b's prevResult is not the in-process result: %s", prev)
	}
	if err := c.Del(context.Background(), list, attachment()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].verb != "DEL" || got[1].conf["prevResult"] == nil {
		t.Fatalf("in-process DEL %v", got)
	}
	if _, err := os.Stat(filepath.Join(rec, "2-DEL-rec-b.json")); err != nil {
		t.Fatal("DEL did not run rec-b before the in-process rec-a")
	}

	// An in-process CNI error keeps its code.
	c.InProcess["rec-a"] = func(string, *skel.CmdArgs, io.Writer) error {
		return types.NewError(types.ErrTryAgainLater, "busy", "")
	}
	_, err = c.Add(context.Background(), list, attachment())
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Fatalf("in-process error: %#v", err)
	}
	// Not installed: not run, in-process or not.
	c.BinDirs = []string{t.TempDir()}
	if _, err := c.Add(context.Background(), list, attachment()); err == nil || !strings.Contains(err.Error(), `failed to find plugin "rec-a"`) {
		t.Fatalf("uninstalled in-process plugin: %v", err)
	}
}
