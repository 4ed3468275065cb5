//go:build linux

package cni_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/link"
	"github.com/podns/podns/pkg/testutil"
)

// podnsIPAM switches a config to podns-ipam with dataDir.
func podnsIPAM(c Conf, dataDir, subnet string) Conf {
	c["ipam"] = map[string]any{"type": "podns-ipam", "dataDir": dataDir, "ranges": [][]map[string]any{{{"subnet": subnet}}}}
	return c
}

// listTree returns every path under dir, relative to it.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestHardeningNamesStayInDataDir: network names, container IDs and
// interface names that try to leave dataDir (.., /, NUL, white space) are
// refused with the spec's code before any file is made, and nothing
// appears outside dataDir or is left inside it.
func TestHardeningNamesStayInDataDir(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := func(name string) []byte {
		c := podnsIPAM(n.conf("1.1.0", true, false), dataDir, n.Sub4)
		c["name"] = name
		c["ipMasq"] = true
		return c.bytes(t)
	}
	add := Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}
	for _, tc := range []struct {
		what string
		call Call
		conf []byte
		code uint
	}{
		{"network name ../escape", add, conf("../escape"), types.ErrInvalidNetworkConfig},
		{"network name a/b", add, conf("a/b"), types.ErrInvalidNetworkConfig},
		{"network name ..", add, conf(".."), types.ErrInvalidNetworkConfig},
		{"network name with NUL", add, conf("x\x00y"), types.ErrInvalidNetworkConfig},
		{"network name with space", add, conf("a b"), types.ErrInvalidNetworkConfig},
		{"container ID ../x", Call{Cmd: "ADD", ContainerID: "../x", Netns: path, IfName: "eth0"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"container ID with space", Call{Cmd: "ADD", ContainerID: "a b", Netns: path, IfName: "eth0"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"ifname ..", Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: ".."}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"ifname .", Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "."}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"ifname a:b", Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "a:b"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"ifname with space", Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "a b"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		// The kernel would name it eth0 itself, and the result would lie.
		{"ifname template eth%d", Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth%d"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"DEL with container ID ../x", Call{Cmd: "DEL", ContainerID: "../x", Netns: path, IfName: "eth0"}, conf(n.Name), types.ErrInvalidEnvironmentVariables},
		{"DEL with network name ../escape", Call{Cmd: "DEL", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, conf("../escape"), types.ErrInvalidNetworkConfig},
	} {
		t.Run(strings.ReplaceAll(tc.what, " ", "_"), func(t *testing.T) {
			nt := *n
			nt.t = t
			nt.wantCode(tc.call, tc.conf, tc.code)
			if got := listTree(t, root); len(got) != 1 || got[0] != "data" {
				t.Fatalf("files appeared beside dataDir: %v", got)
			}
			if got := listTree(t, dataDir); len(got) != 0 {
				t.Fatalf("files left in dataDir: %v", got)
			}
			nt.assertNoState(ns)
		})
	}
}

// TestHardeningStoreModes: podns-ipam's store directory is 0700 and its
// files 0600 (allocations say which pod has which address), and the
// plugin's log file is 0600.
func TestHardeningStoreModes(t *testing.T) {
	n := newTestNet(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	c := podnsIPAM(n.conf("1.1.0", true, false), dataDir, n.Sub4)
	logFile := filepath.Join(t.TempDir(), "podns.log")
	c["logFile"] = logFile
	conf := c.bytes(t)
	p := n.add(conf)
	t.Cleanup(func() { n.exec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf) })
	var bad []string
	filepath.WalkDir(filepath.Join(dataDir, n.Name), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			bad = append(bad, err.Error())
			return nil
		}
		fi, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			bad = append(bad, fmt.Sprintf("%s is %v, want %v", path, fi.Mode().Perm(), want))
		}
		return nil
	})
	if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
		bad = append(bad, fmt.Sprintf("log file: %v %v", fi, err))
	}
	if len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
}

// TestHardeningConfigSizeBounded: a network config far beyond anything a
// runtime writes (16 MiB) is refused with a CNI error and changes nothing,
// instead of being read, parsed and acted on at whatever memory it takes.
func TestHardeningConfigSizeBounded(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	c := n.conf("1.1.0", true, false)
	c["padding"] = strings.Repeat("x", 16<<20)
	out, e := n.exec(Call{Cmd: "ADD", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, c.bytes(t))
	if e == nil {
		n.exec(Call{Cmd: "DEL", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, c.bytes(t))
		t.Fatalf("a 16 MiB network config was accepted (ADD printed %d bytes): config size is not bounded", len(out))
	}
	if e.Code != types.ErrInvalidNetworkConfig && e.Code != types.ErrDecodingFailure {
		t.Fatalf("code %d (%s), want 7 or 6", e.Code, e.Msg)
	}
	n.assertNoState(ns)
}

// TestHardeningCheckNullPrevResult: a prevResult whose lists hold null
// entries is bad input for CHECK, answered with a CNI error, never a Go
// panic (libcni's converters and CHECK dereference every entry).
func TestHardeningCheckNullPrevResult(t *testing.T) {
	n := newTestNet(t)
	c := podnsIPAM(n.conf("1.1.0", true, false), t.TempDir(), n.Sub4)
	conf := c.bytes(t)
	p := n.add(conf)
	t.Cleanup(func() { n.exec(Call{Cmd: "DEL", ContainerID: p.ID, Netns: p.Path, IfName: "eth0"}, conf) })
	for _, tc := range []struct{ version, prev string }{
		{"0.4.0", `{"cniVersion":"0.4.0","ips":[null]}`},
		{"0.4.0", `{"cniVersion":"0.4.0","interfaces":[null],"ips":[]}`},
		{"1.0.0", `{"cniVersion":"1.0.0","interfaces":[null]}`},
		{"1.1.0", `{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"` + p.Path + `"}],"ips":[null]}`},
		{"1.1.0", `{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"` + p.Path + `"}],"routes":[null]}`},
	} {
		t.Run(tc.version, func(t *testing.T) {
			cc := podnsIPAM(n.conf(tc.version, true, false), "", n.Sub4)
			cc["ipam"] = c["ipam"]
			cc["prevResult"] = json.RawMessage(tc.prev)
			cmd := exec.Command(filepath.Join(n.Bin, "podns"))
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=CHECK", "CNI_PATH=" + n.CNIPath,
				"CNI_CONTAINERID=" + p.ID, "CNI_NETNS=" + p.Path, "CNI_IFNAME=eth0"}
			cmd.Stdin = bytes.NewReader(cc.bytes(t))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if strings.Contains(stderr.String(), "panic:") {
				t.Fatalf("CHECK with prevResult %s panicked:\n%s", tc.prev, firstLines(stderr.String(), 12))
			}
			e := &types.Error{}
			if err == nil || json.Unmarshal(stdout.Bytes(), e) != nil || e.Code == 0 {
				t.Fatalf("CHECK with prevResult %s: err %v, stdout %s: want a CNI error", tc.prev, err, stdout.String())
			}
		})
	}
}

// TestHardeningIPAMRoutesValidated: IPAM routes without a destination (a
// null entry, or only a gateway) are an invalid config: ADD answers code 7
// and leaves nothing, instead of panicking halfway with the veth, address
// and allocation left behind, or installing and printing a "<nil>" route.
func TestHardeningIPAMRoutesValidated(t *testing.T) {
	n := newTestNet(t)
	for _, tc := range []struct {
		what   string
		routes any
	}{
		{"null route", []any{nil}},
		{"route without dst", []any{map[string]any{"gw": strings.TrimSuffix(n.Sub4, "0/24") + "1"}}},
	} {
		t.Run(strings.ReplaceAll(tc.what, " ", "_"), func(t *testing.T) {
			ns, path := newNetns(t)
			c := podnsIPAM(n.conf("1.1.0", true, false), t.TempDir(), n.Sub4)
			c["ipam"].(map[string]any)["routes"] = tc.routes
			cmd := exec.Command(filepath.Join(n.Bin, "podns"))
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=ADD", "CNI_PATH=" + n.CNIPath,
				"CNI_CONTAINERID=c" + ns, "CNI_NETNS=" + path, "CNI_IFNAME=eth0"}
			cmd.Stdin = bytes.NewReader(c.bytes(t))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			nt := *n
			nt.t = t
			defer nt.exec(Call{Cmd: "DEL", ContainerID: "c" + ns, Netns: path, IfName: "eth0"}, c.bytes(t))
			if strings.Contains(stderr.String(), "panic:") {
				t.Errorf("ADD panicked:\n%s", firstLines(stderr.String(), 8))
			} else {
				e := &types.Error{}
				if err == nil || json.Unmarshal(stdout.Bytes(), e) != nil || e.Code != types.ErrInvalidNetworkConfig {
					t.Errorf("ADD: err %v, stdout %s: want CNI error 7", err, stdout.String())
				}
			}
			if _, ok := n.hostVeth("c"+ns, "eth0"); ok {
				t.Errorf("the refused ADD left its host veth")
			}
			if out := inNS(t, ns, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
				t.Errorf("the refused ADD left eth0 in the pod")
			}
		})
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// TestHardeningOversizedIDsAndGC: the spec bounds neither container IDs nor
// network names. Either podns refuses ones too long for it, or GC still
// finds and removes their attachment; what it must not do is accept an
// attachment GC can never collect.
func TestHardeningOversizedIDsAndGC(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	c := podnsIPAM(n.conf("1.1.0", true, false), t.TempDir(), n.Sub4)
	c["name"] = n.Name + strings.Repeat("n", 100)
	c["ipMasq"] = true
	conf := c.bytes(t)
	id := "c" + strings.Repeat("0123456789abcdef", 12) // 193 bytes, valid per the spec
	nt := *n
	nt.Name = c["name"].(string)
	t.Cleanup(func() {
		// A truncated alias hides the veth from cleanup-by-alias too.
		_ = link.DeleteByName(&netlink.Handle{}, link.HostVethName(nt.Name, id, "eth0"))
		nt.cleanup()
	})
	_, e := n.exec(Call{Cmd: "ADD", ContainerID: id, Netns: path, IfName: "eth0"}, conf)
	if e != nil {
		if e.Code != types.ErrInvalidNetworkConfig && e.Code != types.ErrInvalidEnvironmentVariables {
			t.Fatalf("oversized IDs refused with code %d (%s), want 4 or 7", e.Code, e.Msg)
		}
		nt.assertNoState(ns)
		return
	}
	gc := Conf{}
	for k, v := range c {
		gc[k] = v
	}
	gc["cni.dev/valid-attachments"] = []any{}
	n.mustExec(Call{Cmd: "GC"}, gc.bytes(t))
	if _, ok := nt.hostVeth(id, "eth0"); ok {
		t.Fatalf("GC with no valid attachments left the host veth of a %d-byte container ID on network %q (its alias was truncated)", len(id), nt.Name)
	}
	nt.assertNoState(ns)
}

// TestHardeningNoShell: no verb execs a shell or a helper tool. With
// podns-ipam (in process) the plugin execs nothing at all; with host-local
// it execs exactly host-local from CNI_PATH. Shell syntax in pod names and
// config strings goes nowhere near a shell.
func TestHardeningNoShell(t *testing.T) {
	n := newTestNet(t)
	ns, path := newNetns(t)
	pwn := filepath.Join(t.TempDir(), "pwned")
	// No ";": that separates CNI_ARGS pairs.
	hostile := fmt.Sprintf("$(touch %s)`touch %s`", pwn, pwn)
	for _, ipamType := range []string{"podns-ipam", "host-local"} {
		t.Run(ipamType, func(t *testing.T) {
			c := n.conf("1.1.0", true, false)
			if ipamType == "podns-ipam" {
				c = podnsIPAM(c, t.TempDir(), n.Sub4)
			}
			c["ipMasq"] = true
			c["logFile"] = filepath.Join(t.TempDir(), "log;touch "+pwn)
			conf := c.bytes(t)
			id := "c" + ns
			args := "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + hostile + ";K8S_POD_NAME=" + hostile
			var execs []string
			for _, verb := range []string{"ADD", "CHECK", "DEL", "GC", "STATUS"} {
				stdin := conf
				if verb == "CHECK" {
					continue // needs the ADD result; covered by the CHECK tests
				}
				if verb == "GC" {
					gc := Conf{}
					for k, v := range c {
						gc[k] = v
					}
					gc["cni.dev/valid-attachments"] = []any{}
					stdin = gc.bytes(t)
				}
				trace := filepath.Join(t.TempDir(), "trace")
				cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=execve", "-o", trace, filepath.Join(n.Bin, "podns"))
				cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=" + verb, "CNI_PATH=" + n.CNIPath}
				if verb != "GC" && verb != "STATUS" {
					cmd.Env = append(cmd.Env, "CNI_CONTAINERID="+id, "CNI_NETNS="+path, "CNI_IFNAME=eth0", "CNI_ARGS="+args)
				}
				cmd.Stdin = bytes.NewReader(stdin)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s under strace: %v\n%s", verb, err, out)
				}
				data, err := os.ReadFile(trace)
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
					if i := strings.Index(l, "execve(\""); i >= 0 {
						prog := l[i+len("execve(\""):]
						prog = prog[:strings.IndexByte(prog, '"')]
						// DEL re-executes itself, with one fixed argument, to
						// finish the veth's deletion (pkg/finisher).
						isFinisher := verb == "DEL" && prog == "/proc/self/exe" && strings.Contains(l, `["/proc/self/exe", "`+finisher.Arg+`"]`)
						if prog != filepath.Join(n.Bin, "podns") && !isFinisher {
							execs = append(execs, verb+": "+prog)
						}
					}
				}
			}
			// host-local is exec'd for each verb; podns-ipam never is.
			for _, e := range execs {
				if ipamType != "host-local" || !strings.HasSuffix(e, ": "+filepath.Join(RefPluginDir, "host-local")) {
					t.Errorf("unexpected exec %s", e)
				}
			}
			if ipamType == "host-local" && len(execs) == 0 {
				t.Error("strace saw no exec of host-local: the trace is not working")
			}
			if _, err := os.Stat(pwn); err == nil {
				t.Fatal("input-derived shell syntax was executed")
			}
			n.assertNoState(ns)
		})
	}
}

// TestHardeningNftablesConfined: ipMasq, DEL and GC change nftables only
// inside podns's own table. The plugin runs in a private "host" netns whose
// ruleset has other tables (an iptables-style nat table, an inet filter
// table); they are byte-for-byte the same after every verb, and podns's
// table holds nothing but its masq-* chains.
func TestHardeningNftablesConfined(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BinDir(t)
	host, _ := newNetns(t)
	_, podPath := newNetns(t)
	rules := `table ip nat {
	chain POSTROUTING { type nat hook postrouting priority srcnat; policy accept; oifname "lo" counter masquerade; }
}
table inet filter {
	chain forward { type filter hook forward priority filter; policy accept; ct state established accept; }
	chain podns { counter; }
}
table inet podnsx {
	chain masq-x { counter; }
}
`
	load := exec.Command("ip", "netns", "exec", host, "nft", "-f", "-")
	load.Stdin = strings.NewReader(rules)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	others := func() (string, []string) {
		out := run(t, "ip", "netns", "exec", host, "nft", "-j", "list", "ruleset")
		var rs struct {
			Nftables []map[string]json.RawMessage `json:"nftables"`
		}
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatal(err)
		}
		var keep []string
		var ours []string
		for _, o := range rs.Nftables {
			var obj struct {
				Family string `json:"family"`
				Table  string `json:"table"`
				Name   string `json:"name"`
			}
			for k, v := range o {
				if k == "metainfo" {
					continue
				}
				json.Unmarshal(v, &obj)
				tbl := obj.Table
				if k == "table" {
					tbl = obj.Name
				}
				if obj.Family == "inet" && tbl == "podns" {
					if k == "chain" {
						ours = append(ours, obj.Name)
					}
					continue
				}
				keep = append(keep, k+":"+string(v))
			}
		}
		return strings.Join(keep, "\n"), ours
	}
	before, _ := others()
	name := testutil.UniqueName("pnh")
	conf := Conf{"cniVersion": "1.1.0", "name": name, "type": "podns", "bridge": testutil.UniqueName("pnhb"), "ipMasq": true,
		"ipam": map[string]any{"type": "podns-ipam", "dataDir": t.TempDir(), "ranges": [][]map[string]any{{{"subnet": "10.149.7.0/24"}}}}}
	callIn := func(verb string, stdin []byte) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", host, filepath.Join(bin, "podns"))
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=" + verb, "CNI_PATH=" + bin}
		if verb != "GC" {
			cmd.Env = append(cmd.Env, "CNI_CONTAINERID=c"+name, "CNI_NETNS="+podPath, "CNI_IFNAME=eth0")
		}
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s in private host netns: %v\n%s", verb, err, out)
		}
	}
	gc := Conf{}
	for k, v := range conf {
		gc[k] = v
	}
	gc["cni.dev/valid-attachments"] = []any{}
	for _, step := range []struct {
		verb  string
		stdin []byte
	}{{"ADD", conf.bytes(t)}, {"DEL", conf.bytes(t)}, {"ADD", conf.bytes(t)}, {"GC", gc.bytes(t)}} {
		callIn(step.verb, step.stdin)
		after, ours := others()
		if after != before {
			t.Fatalf("%s changed nftables outside table inet podns:\nbefore:\n%s\nafter:\n%s", step.verb, before, after)
		}
		for _, ch := range ours {
			if ch != "masq-"+name {
				t.Fatalf("%s: unexpected chain %q in table inet podns", step.verb, ch)
			}
		}
		if step.verb == "ADD" && len(ours) != 1 {
			t.Fatalf("ADD with ipMasq: chains in table podns %v, want [masq-%s]", ours, name)
		}
	}
}
