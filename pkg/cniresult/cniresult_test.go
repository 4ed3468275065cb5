package cniresult

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// versions printed natively and through the library (including ones the
// library refuses: "2.0.0", and "" which it reads as 0.1.0).
var (
	nativeVersions = []string{"1.0.0", "1.1.0"}
	otherVersions  = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "2.0.0", ""}
)

// libraryPrint runs types.PrintResult itself and returns what it wrote to
// stdout.
func libraryPrint(t testing.TB, r *current.Result, version string) ([]byte, error) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := io.ReadAll(pr)
		done <- read{b, err}
	}()
	saved := os.Stdout
	os.Stdout = pw
	defer pr.Close()
	perr := func() error {
		// Also on a panic of the library: restore stdout, end the reader.
		defer func() { os.Stdout = saved; pw.Close() }()
		return types.PrintResult(r, version)
	}()
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	return got.b, perr
}

// gen builds a result from rng: every field, nil and empty variants, v4 and
// v6, odd masks and odd strings. The same seed builds an equal result, so
// the writer and the library each get their own copy (both may change
// CNIVersion). nilElems allows null list elements, which only the 1.x
// printers accept (the library's down-converters dereference them).
type gen struct {
	rng      *rand.Rand
	nilElems bool
	extra    []string // strings from the fuzzer
}

var oddStrings = []string{
	"", "eth0", "podns0", "02:00:0a:01:00:02", "/var/run/netns/cni-1234",
	`quo"te`, `back\slash`, `\"`, "<script>&amp;</script>", "a>b<c&d",
	"line\nfeed\ttab\rcr\bbs\fff", "\x00\x01\x1f\x7f", "\u2028\u2029", "x\u2028y",
	"\xff", "ok\xc3", "\xed\xa0\x80", "\xe2\x80", "\ufffd", "日本語", "emoji 🙂",
	"0000:00:1f.6", "/run/vhost-user/sock", "svc.cluster.local", "ndots:5",
	"\"\\/\b\f\n\r\t", "\xe2\x80\xa8\xe2\x80\xa9", "\xf4\x90\x80\x80",
}

func (g *gen) chance(n int) bool { return g.rng.IntN(n) == 0 }

func (g *gen) str() string {
	switch {
	case len(g.extra) > 0 && g.chance(2):
		return g.extra[g.rng.IntN(len(g.extra))]
	case g.chance(3):
		// random bytes, any of them
		b := make([]byte, g.rng.IntN(12))
		for i := range b {
			b[i] = byte(g.rng.IntN(256))
		}
		return string(b)
	case g.chance(4):
		// random runes, valid UTF-8 around the escaping boundaries
		var sb strings.Builder
		for n := g.rng.IntN(8); n > 0; n-- {
			ranges := []rune{0x20, 0x80, 0x800, 0x2030, 0x10000, 0x110000}
			sb.WriteRune(rune(g.rng.IntN(int(ranges[g.rng.IntN(len(ranges))]))))
		}
		return sb.String()
	default:
		return oddStrings[g.rng.IntN(len(oddStrings))]
	}
}

// nonEmpty: the library omits an empty string, so half the time a field
// gets a value.
func (g *gen) optStr() string {
	if g.chance(2) {
		return ""
	}
	return g.str()
}

func (g *gen) int() int {
	switch g.rng.IntN(8) {
	case 0:
		return 0
	case 1:
		return -g.rng.IntN(1 << 20)
	case 2:
		// beyond float64's exact integers
		return []int{1<<53 + 1, 1<<62 + 12345, math.MaxInt64, math.MinInt64, -(1<<53 + 3), 999999999999999999}[g.rng.IntN(6)]
	case 3:
		return int(g.rng.Uint64())
	default:
		return g.rng.IntN(70000)
	}
}

func (g *gen) optInt() int {
	if g.chance(2) {
		return 0
	}
	return g.int()
}

func (g *gen) intPtr() *int {
	if g.chance(2) {
		return nil
	}
	v := g.int()
	return &v
}

func (g *gen) ip() net.IP {
	switch g.rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return net.IP{}
	case 2:
		return net.IPv4(10, byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256))) // 16 bytes
	case 3:
		return net.IP{10, 1, byte(g.rng.IntN(256)), byte(g.rng.IntN(256))}.To4()
	default:
		ip := make(net.IP, 16)
		for i := range ip {
			ip[i] = byte(g.rng.IntN(256))
		}
		if g.chance(2) {
			copy(ip, []byte{0xfd, 0})
			copy(ip[2:12], make([]byte, 10)) // runs of zeros: :: compression
		}
		return ip
	}
}

// badIP has a length net.IP.MarshalText refuses.
func (g *gen) badIP() net.IP {
	return make(net.IP, []int{1, 3, 5, 15, 17}[g.rng.IntN(5)])
}

func (g *gen) gw() net.IP {
	if g.chance(40) {
		return g.badIP()
	}
	return g.ip()
}

func (g *gen) ipnet() net.IPNet {
	ip := g.ip()
	var mask net.IPMask
	switch g.rng.IntN(6) {
	case 0:
		mask = nil
	case 1:
		// not a prefix: printed as hex
		mask = make(net.IPMask, len(ip))
		for i := range mask {
			mask[i] = byte(g.rng.IntN(256))
		}
	case 2:
		mask = net.CIDRMask(g.rng.IntN(129), 128)
	default:
		bits := 128
		if ip.To4() != nil && g.chance(2) {
			bits = 32
		}
		mask = net.CIDRMask(g.rng.IntN(bits+1), bits)
	}
	return net.IPNet{IP: ip, Mask: mask}
}

func (g *gen) strs() []string {
	switch g.rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	default:
		s := make([]string, 1+g.rng.IntN(3))
		for i := range s {
			s[i] = g.str()
		}
		return s
	}
}

// n returns a list length: -1 for nil, 0 for empty.
func (g *gen) n() int { return g.rng.IntN(6) - 1 }

func (g *gen) result() *current.Result {
	r := &current.Result{CNIVersion: []string{"", "1.0.0", "1.1.0"}[g.rng.IntN(3)]}
	if n := g.n(); n >= 0 {
		r.Interfaces = make([]*current.Interface, n)
		for i := range r.Interfaces {
			if g.nilElems && g.chance(6) {
				continue
			}
			r.Interfaces[i] = &current.Interface{
				Name:       g.optStr(),
				Mac:        g.optStr(),
				Mtu:        g.optInt(),
				Sandbox:    g.optStr(),
				SocketPath: g.optStr(),
				PciID:      g.optStr(),
			}
		}
	}
	if n := g.n(); n >= 0 {
		r.IPs = make([]*current.IPConfig, n)
		for i := range r.IPs {
			if g.nilElems && g.chance(6) {
				continue
			}
			r.IPs[i] = &current.IPConfig{Interface: g.intPtr(), Address: g.ipnet(), Gateway: g.gw()}
		}
	}
	if n := g.n(); n >= 0 {
		r.Routes = make([]*types.Route, n)
		for i := range r.Routes {
			if g.nilElems && g.chance(6) {
				continue
			}
			r.Routes[i] = &types.Route{
				Dst:      g.ipnet(),
				GW:       g.gw(),
				MTU:      g.optInt(),
				AdvMSS:   g.optInt(),
				Priority: g.optInt(),
				Table:    g.intPtr(),
				Scope:    g.intPtr(),
			}
		}
	}
	if !g.chance(3) {
		r.DNS = types.DNS{Nameservers: g.strs(), Domain: g.optStr(), Search: g.strs(), Options: g.strs()}
	}
	return r
}

// validIPs reports whether every IP the library marshals has a length it
// accepts (else the library fails and Print must hand the result to it).
func validIPs(r *current.Result) bool {
	ok := func(ip net.IP) bool { return len(ip) == 0 || len(ip) == 4 || len(ip) == 16 }
	for _, c := range r.IPs {
		if c != nil && !ok(c.Gateway) {
			return false
		}
	}
	for _, rt := range r.Routes {
		if rt != nil && !ok(rt.GW) {
			return false
		}
	}
	return true
}

// compare prints the result built by mk through Print and through
// types.PrintResult and fails on any difference: bytes, error, and what
// each left in the result.
func compare(t *testing.T, mk func() *current.Result, version string) {
	t.Helper()
	mine, lib := mk(), mk()
	want, wantErr := libraryPrint(t, lib, version)
	var buf bytes.Buffer
	fellBack := false
	fallback = func(w io.Writer, r *current.Result, v string) error {
		fellBack = true
		return library(w, r, v)
	}
	gotErr := Print(&buf, mine, version)
	fallback = library
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("version %q: error %v, library %v\nresult %+v", version, gotErr, wantErr, mk())
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("version %q: output differs from the library\n got: %q\nwant: %q", version, buf.Bytes(), want)
	}
	if !reflect.DeepEqual(mine, lib) {
		t.Fatalf("version %q: Print left the result as %+v, the library as %+v", version, mine, lib)
	}
	// The hand writer, not the library, must have printed every valid
	// result in a native version.
	r := mk()
	if handWritten := native(version) && native(orDefault(r.CNIVersion)) && validIPs(r); fellBack == handWritten {
		t.Fatalf("version %q, result version %q: fell back to the library: %v", version, r.CNIVersion, fellBack)
	}
}

func orDefault(v string) string {
	if v == "" {
		return current.ImplementedSpecVersion
	}
	return v
}

func TestEquivalenceRandom(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		seed := uint64(i)
		for _, v := range nativeVersions {
			compare(t, func() *current.Result {
				return (&gen{rng: rand.New(rand.NewPCG(seed, 1)), nilElems: true}).result()
			}, v)
		}
		// Other versions convert every element; nulls panic in the library.
		v := otherVersions[i%len(otherVersions)]
		compare(t, func() *current.Result {
			return (&gen{rng: rand.New(rand.NewPCG(seed, 2))}).result()
		}, v)
	}
}

// podnsResult is what podns ADD prints in bridge mode with dual stack.
func podnsResult() *current.Result {
	idx := 2
	_, dst4, _ := net.ParseCIDR("0.0.0.0/0")
	_, dst6, _ := net.ParseCIDR("::/0")
	a4, _ := types.ParseCIDR("10.200.0.7/16")
	a6, _ := types.ParseCIDR("fd00:200::7/64")
	return &current.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{
			{Name: "podns0", Mac: "02:00:00:00:00:01"},
			{Name: "pn0123456789a", Mac: "02:00:00:00:00:02", Mtu: 1500},
			{Name: "eth0", Mac: "02:00:00:00:00:03", Sandbox: "/var/run/netns/p1"},
		},
		IPs: []*current.IPConfig{
			{Interface: &idx, Address: *a4, Gateway: net.ParseIP("10.200.0.1")},
			{Interface: &idx, Address: *a6, Gateway: net.ParseIP("fd00:200::1")},
		},
		Routes: []*types.Route{
			{Dst: *dst4, GW: net.ParseIP("10.200.0.1")},
			{Dst: *dst6, GW: net.ParseIP("fd00:200::1"), MTU: 1400, AdvMSS: 1360, Priority: 10, Table: &idx, Scope: new(int)},
		},
		DNS: types.DNS{Nameservers: []string{"10.96.0.10"}, Search: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
	}
}

// Every version, native or not, prints as the library prints it.
func TestEveryVersion(t *testing.T) {
	for _, v := range append(append([]string{}, nativeVersions...), otherVersions...) {
		t.Run("v"+v, func(t *testing.T) {
			compare(t, podnsResult, v)
			compare(t, func() *current.Result { r := podnsResult(); r.CNIVersion = ""; return r }, v)
			compare(t, func() *current.Result { r := podnsResult(); r.CNIVersion = "1.0.0"; return r }, v)
			compare(t, func() *current.Result { return &current.Result{} }, v)
		})
	}
}

// A value the library refuses gets the library's error and nothing written.
func TestLibraryError(t *testing.T) {
	for _, v := range nativeVersions {
		for _, bad := range []func(r *current.Result){
			func(r *current.Result) { r.IPs[1].Gateway = net.IP{1, 2, 3} },
			func(r *current.Result) { r.Routes[0].GW = make(net.IP, 5) },
		} {
			mk := func() *current.Result { r := podnsResult(); bad(r); return r }
			want, wantErr := libraryPrint(t, mk(), v)
			if wantErr == nil || len(want) != 0 {
				t.Fatalf("library accepted a bad IP: %q", want)
			}
			compare(t, mk, v)
		}
	}
	var buf bytes.Buffer
	if err := Print(&buf, nil, "1.1.0"); err == nil || buf.Len() != 0 {
		t.Fatalf("nil result: err %v, wrote %q", err, buf.Bytes())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriteError(t *testing.T) {
	if err := Print(failWriter{}, podnsResult(), "1.1.0"); err != io.ErrClosedPipe {
		t.Fatalf("got %v, want the writer's error", err)
	}
}

// The writer knows these fields, with these types and tags. A library
// upgrade that adds, removes, renames or retypes one fails here instead of
// being silently dropped from the output.
func TestKnownFields(t *testing.T) {
	known := map[reflect.Type][]string{
		reflect.TypeFor[current.Result](): {
			`CNIVersion string json:"cniVersion,omitempty"`,
			`Interfaces []*types100.Interface json:"interfaces,omitempty"`,
			`IPs []*types100.IPConfig json:"ips,omitempty"`,
			`Routes []*types.Route json:"routes,omitempty"`,
			`DNS types.DNS json:"dns,omitempty"`,
		},
		reflect.TypeFor[current.Interface](): {
			`Name string json:"name"`,
			`Mac string json:"mac,omitempty"`,
			`Mtu int json:"mtu,omitempty"`,
			`Sandbox string json:"sandbox,omitempty"`,
			`SocketPath string json:"socketPath,omitempty"`,
			`PciID string json:"pciID,omitempty"`,
		},
		// Marshalled through the library's private ipConfig and route
		// structs; the random equivalence test checks their tags.
		reflect.TypeFor[current.IPConfig](): {
			`Interface *int `,
			`Address net.IPNet `,
			`Gateway net.IP `,
		},
		reflect.TypeFor[types.Route](): {
			`Dst net.IPNet `,
			`GW net.IP `,
			`MTU int `,
			`AdvMSS int `,
			`Priority int `,
			`Table *int `,
			`Scope *int `,
		},
		reflect.TypeFor[types.DNS](): {
			`Nameservers []string json:"nameservers,omitempty"`,
			`Domain string json:"domain,omitempty"`,
			`Search []string json:"search,omitempty"`,
			`Options []string json:"options,omitempty"`,
		},
	}
	for typ, want := range known {
		var got []string
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			got = append(got, fmt.Sprintf("%s %s %s", f.Name, f.Type, f.Tag))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s fields changed: cniresult must learn them\n got: %q\nknow: %q", typ, got, want)
		}
	}
	// The fields types.Route and IPConfig marshal are exactly the ones the
	// writer handles: one result with every field set prints every key.
	r := podnsResult()
	r.DNS.Domain = "cluster.local"
	r.Interfaces[2].SocketPath = "/run/sock"
	r.Interfaces[2].PciID = "0000:00:1f.6"
	var buf bytes.Buffer
	if err := Print(&buf, r, "1.1.0"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cniVersion", "dns", "domain", "nameservers", "options", "search",
		"interfaces", "mac", "mtu", "name", "pciID", "sandbox", "socketPath", "ips", "address", "gateway", "interface",
		"routes", "advmss", "dst", "gw", "priority", "scope", "table"} {
		if !bytes.Contains(buf.Bytes(), []byte(`"`+k+`": `)) {
			t.Errorf("key %q missing from %s", k, buf.Bytes())
		}
	}
}

func TestAppendString(t *testing.T) {
	// Checked against the library through a DNS domain, one string at a time.
	for _, s := range oddStrings {
		for c := 0; c < 256; c++ {
			s := s + string([]byte{byte(c)}) + "x"
			compare(t, func() *current.Result {
				return &current.Result{DNS: types.DNS{Domain: s}}
			}, "1.1.0")
		}
	}
}

func FuzzEquivalence(f *testing.F) {
	f.Add(uint64(0), uint8(0), "eth0", "", "\xff")
	f.Add(uint64(1), uint8(1), "<>&", "\u2028", "\"\\")
	f.Add(uint64(7), uint8(3), "\x00\x1f", "日本", "\xed\xa0\x80")
	f.Add(uint64(42), uint8(5), "/var/run/netns/x", "02:00:00:00:00:01", "ndots:5")
	f.Fuzz(func(t *testing.T, seed uint64, v uint8, a, b, c string) {
		versions := append(append([]string{}, nativeVersions...), otherVersions...)
		version := versions[int(v)%len(versions)]
		nilElems := native(version)
		compare(t, func() *current.Result {
			return (&gen{rng: rand.New(rand.NewPCG(seed, 3)), nilElems: nilElems, extra: []string{a, b, c}}).result()
		}, version)
	})
}

// Warm-cache numbers only: in a real plugin process the library pays its
// reflection caches on this one call, which no in-process benchmark shows.
func BenchmarkPrint(b *testing.B) {
	r := podnsResult()
	for b.Loop() {
		if err := Print(io.Discard, r, "1.1.0"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLibrary(b *testing.B) {
	r := podnsResult()
	for b.Loop() {
		res, err := r.GetAsVersion("1.1.0")
		if err != nil {
			b.Fatal(err)
		}
		if err := res.PrintTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// panics runs f and returns what it panicked with, if anything.
func panics(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// A current.Result claiming an older version: printed in that same version
// the library prints it unchanged; converted to 1.x the library's converter
// expects a 0.x result type and panics. Print does the same in both cases.
func TestOldResultVersion(t *testing.T) {
	for _, rv := range []string{"0.3.1", "0.4.0"} {
		mk := func() *current.Result { r := podnsResult(); r.CNIVersion = rv; return r }
		compare(t, mk, rv)
		for _, v := range nativeVersions {
			libPanic := panics(func() { _, _ = libraryPrint(t, mk(), v) })
			var buf bytes.Buffer
			var err error
			myPanic := panics(func() { err = Print(&buf, mk(), v) })
			if (libPanic == nil) != (myPanic == nil) {
				t.Fatalf("result %s as %s: library panicked with %v, Print with %v", rv, v, libPanic, myPanic)
			}
			if libPanic == nil {
				compare(t, mk, v)
			} else if err != nil || buf.Len() != 0 {
				t.Fatalf("result %s as %s: Print wrote %q, error %v", rv, v, buf.Bytes(), err)
			}
		}
	}
}
