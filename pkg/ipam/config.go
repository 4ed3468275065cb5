//go:build linux

package ipam

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/podns/podns/pkg/ipam/allocator"
	"github.com/podns/podns/pkg/jsonobj"
)

const (
	// DefaultDataDir is host-local's default, so switching a network's
	// ipam type to podns-ipam adopts its allocations with no other change.
	DefaultDataDir = "/var/lib/cni/networks"
	// DefaultLockTimeout bounds the wait for the store; past it ADD fails
	// with code 11 (try again later).
	DefaultLockTimeout = 5 * time.Second
)

// Plugin-specific CNI error codes (the spec leaves 100+ to plugins).
const (
	CodeAddressInUse   uint = 100 // a requested static address belongs to another attachment
	CodeRangeExhausted uint = 101 // a range set has no free address
)

// rangeConf is one range as host-local spells it.
type rangeConf struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

type ipamConf struct {
	Type string `json:"type"`
	rangeConf
	Ranges      [][]rangeConf  `json:"ranges"`
	Routes      []*types.Route `json:"routes"`
	DataDir     string         `json:"dataDir"`
	ResolvConf  string         `json:"resolvConf"`
	Reserved    []string       `json:"reserved"`
	LockTimeout string         `json:"lockTimeout"`
	MigrateFrom string         `json:"migrateFrom"`
}

// netConf is the whole network config a runtime hands an IPAM plugin.
type netConf struct {
	Name          string    `json:"name"`
	CNIVersion    string    `json:"cniVersion"`
	IPAM          *ipamConf `json:"ipam"`
	RuntimeConfig struct {
		IPRanges [][]rangeConf `json:"ipRanges"`
		IPs      []string      `json:"ips"`
	} `json:"runtimeConfig"`
	Args             *argsConf            `json:"args"`
	RawPrevResult    map[string]any       `json:"prevResult"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments"`
}

type argsConf struct {
	CNI *cniArgsConf `json:"cni"`
}

type cniArgsConf struct {
	IPs []string `json:"ips"`
}

// decodeNetConf gives the netConf json.Unmarshal would, member by member
// (pkg/jsonobj): unmarshalling into netConf first reflected over it and
// the seven struct types inside it, which in a plugin process cost more
// than the decoding.
func decodeNetConf(stdin []byte) (*netConf, error) {
	o, err := jsonobj.Decode(stdin)
	if err != nil {
		return nil, err
	}
	n := &netConf{}
	ipam, err := o.Object("ipam")
	if err != nil {
		return nil, err
	}
	if ipam != nil {
		n.IPAM = &ipamConf{}
		if err := decodeIPAM(ipam, n.IPAM); err != nil {
			return nil, fmt.Errorf("\"ipam\": %w", err)
		}
	}
	rc, err := o.Object("runtimeConfig")
	if err != nil {
		return nil, err
	}
	if n.RuntimeConfig.IPRanges, err = decodeRangeSets(rc, "ipRanges"); err != nil {
		return nil, fmt.Errorf("\"runtimeConfig\": %w", err)
	}
	if err := rc.Get("ips", &n.RuntimeConfig.IPs); err != nil {
		return nil, fmt.Errorf("\"runtimeConfig\": %w", err)
	}
	args, err := o.Object("args")
	if err != nil {
		return nil, err
	}
	if args != nil {
		n.Args = &argsConf{}
		cni, err := args.Object("cni")
		if err != nil {
			return nil, fmt.Errorf("\"args\": %w", err)
		}
		if cni != nil {
			n.Args.CNI = &cniArgsConf{}
			if err := cni.Get("ips", &n.Args.CNI.IPs); err != nil {
				return nil, fmt.Errorf("\"args\": \"cni\": %w", err)
			}
		}
	}
	return n, o.GetAll(
		jsonobj.F("name", &n.Name),
		jsonobj.F("cniVersion", &n.CNIVersion),
		jsonobj.F("prevResult", &n.RawPrevResult),
		jsonobj.F("cni.dev/valid-attachments", &n.ValidAttachments),
	)
}

func decodeIPAM(o jsonobj.Object, c *ipamConf) error {
	if err := decodeRange(o, &c.rangeConf); err != nil {
		return err
	}
	var err error
	if c.Ranges, err = decodeRangeSets(o, "ranges"); err != nil {
		return err
	}
	return o.GetAll(
		jsonobj.F("type", &c.Type),
		jsonobj.F("routes", &c.Routes),
		jsonobj.F("dataDir", &c.DataDir),
		jsonobj.F("resolvConf", &c.ResolvConf),
		jsonobj.F("reserved", &c.Reserved),
		jsonobj.F("lockTimeout", &c.LockTimeout),
		jsonobj.F("migrateFrom", &c.MigrateFrom),
	)
}

// decodeRangeSets decodes a list of range sets, each a list of ranges;
// null lists stay nil, as encoding/json leaves them.
func decodeRangeSets(o jsonobj.Object, name string) ([][]rangeConf, error) {
	var raw [][]jsonobj.Object
	if err := o.Get(name, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, nil
	}
	sets := make([][]rangeConf, len(raw))
	for i, set := range raw {
		if set == nil {
			continue
		}
		sets[i] = make([]rangeConf, len(set))
		for j, r := range set {
			if err := decodeRange(r, &sets[i][j]); err != nil {
				return nil, fmt.Errorf("%q: %w", name, err)
			}
		}
	}
	return sets, nil
}

func decodeRange(o jsonobj.Object, r *rangeConf) error {
	return o.GetAll(
		jsonobj.F("subnet", &r.Subnet),
		jsonobj.F("rangeStart", &r.RangeStart),
		jsonobj.F("rangeEnd", &r.RangeEnd),
		jsonobj.F("gateway", &r.Gateway),
	)
}

// Config is a parsed, validated podns-ipam configuration.
type Config struct {
	Name        string
	CNIVersion  string
	Sets        []allocator.RangeSet
	Reserved    []netip.Prefix
	Routes      []*types.Route
	ResolvConf  string
	DataDir     string
	Dir         string // DataDir/Name: the network's store
	Static      []netip.Addr
	LockTimeout time.Duration
	MigrateFrom string // host-local network directory to adopt from

	raw *netConf
}

type envArgs struct {
	types.CommonArgs
	IP types.UnmarshallableString `json:"ip,omitempty"`
}

func invalid(format string, a ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

// LoadConfig parses stdin data and CNI_ARGS. Errors are *types.Error:
// 6 for undecodable JSON, 4 for bad CNI_ARGS, 7 for an invalid config.
func LoadConfig(stdin []byte, cniArgs string) (*Config, error) {
	return loadConfig(stdin, cniArgs, true)
}

// loadConfig with needRanges false accepts a config without ranges and
// ignores static requests (STATUS, DEL and GC do not allocate; ranges may
// come per call through ipRanges).
func loadConfig(stdin []byte, cniArgs string, needRanges bool) (*Config, error) {
	n, err := decodeNetConf(stdin)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "podns-ipam: decode network config", err.Error())
	}
	if err := utils.ValidateNetworkName(n.Name); err != nil {
		return nil, err
	}
	if n.IPAM == nil {
		return nil, invalid("podns-ipam: network config has no \"ipam\" section")
	}
	c := &Config{Name: n.Name, CNIVersion: n.CNIVersion, Routes: n.IPAM.Routes, ResolvConf: n.IPAM.ResolvConf, raw: n}
	for i, r := range c.Routes {
		if r == nil || r.Dst.IP == nil || r.Dst.Mask == nil {
			return nil, invalid("podns-ipam: route %d has no destination", i)
		}
		if r.GW != nil && (r.GW.To4() == nil) != (r.Dst.IP.To4() == nil) {
			return nil, invalid("podns-ipam: route %d to %s has a gateway %s of another family", i, r.Dst.String(), r.GW)
		}
	}
	c.DataDir = n.IPAM.DataDir
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if !filepath.IsAbs(c.DataDir) {
		return nil, invalid("podns-ipam: dataDir %q must be an absolute path", c.DataDir)
	}
	c.Dir = filepath.Join(c.DataDir, c.Name)
	if n.IPAM.MigrateFrom != "" {
		if !filepath.IsAbs(n.IPAM.MigrateFrom) {
			return nil, invalid("podns-ipam: migrateFrom %q must be an absolute path", n.IPAM.MigrateFrom)
		}
		c.MigrateFrom = filepath.Join(n.IPAM.MigrateFrom, c.Name)
	} else {
		c.MigrateFrom = c.Dir
	}
	c.LockTimeout = DefaultLockTimeout
	if n.IPAM.LockTimeout != "" {
		d, err := time.ParseDuration(n.IPAM.LockTimeout)
		if err != nil || d <= 0 {
			return nil, invalid("podns-ipam: lockTimeout %q is not a positive duration", n.IPAM.LockTimeout)
		}
		c.LockTimeout = d
	}

	for _, s := range n.IPAM.Reserved {
		p, err := parseAddrOrPrefix(s)
		if err != nil {
			return nil, invalid("podns-ipam: reserved %q: %v", s, err)
		}
		c.Reserved = append(c.Reserved, p)
	}

	// Range sets in host-local's order: runtime ipRanges, the legacy
	// top-level range, then "ranges".
	var confs [][]rangeConf
	confs = append(confs, n.RuntimeConfig.IPRanges...)
	if n.IPAM.Subnet != "" {
		confs = append(confs, []rangeConf{n.IPAM.rangeConf})
	} else if n.IPAM.RangeStart != "" || n.IPAM.RangeEnd != "" || n.IPAM.Gateway != "" {
		return nil, invalid("podns-ipam: rangeStart, rangeEnd or gateway given without subnet")
	}
	confs = append(confs, n.IPAM.Ranges...)
	if len(confs) == 0 && needRanges {
		return nil, invalid("podns-ipam: no IP ranges specified (set ipam.ranges or ipam.subnet)")
	}
	for i, rs := range confs {
		set, err := parseRangeSet(rs)
		if err != nil {
			return nil, invalid("podns-ipam: range set %d: %v", i, err)
		}
		for j, prev := range c.Sets {
			if prev.Overlaps(set) {
				return nil, invalid("podns-ipam: range set %d overlaps range set %d", i, j)
			}
		}
		c.Sets = append(c.Sets, set)
	}

	if !needRanges {
		// DEL, GC and STATUS allocate nothing: a static request they were
		// handed (kubelet repeats CNI_ARGS) must not make them fail.
		return c, nil
	}
	// Static requests: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips.
	var statics []string
	if cniArgs != "" {
		e := envArgs{}
		if err := types.LoadArgs(cniArgs, &e); err != nil {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "podns-ipam: parse CNI_ARGS", err.Error())
		}
		if e.IP != "" {
			statics = append(statics, strings.Split(string(e.IP), ",")...)
		}
	}
	if n.Args != nil && n.Args.CNI != nil {
		statics = append(statics, n.Args.CNI.IPs...)
	}
	statics = append(statics, n.RuntimeConfig.IPs...)
	used := map[int]netip.Addr{}
	for _, s := range statics {
		p, err := parseAddrOrPrefix(s)
		if err != nil {
			return nil, invalid("podns-ipam: requested IP %q: %v", s, err)
		}
		a := p.Addr()
		set := -1
		for i, rs := range c.Sets {
			if rs.Find(a) >= 0 {
				set = i
				break
			}
		}
		if set < 0 {
			return nil, invalid("podns-ipam: requested IP %s is outside every configured range %v", a, c.Sets)
		}
		if prev, ok := used[set]; ok {
			if prev == a {
				continue // the same request through two channels
			}
			return nil, invalid("podns-ipam: requested IPs %s and %s are in the same range set %s; one address per range set", prev, a, c.Sets[set])
		}
		used[set] = a
		c.Static = append(c.Static, a)
	}
	return c, nil
}

func parseRangeSet(rs []rangeConf) (allocator.RangeSet, error) {
	var set allocator.RangeSet
	for _, r := range rs {
		if r.Subnet == "" {
			return nil, fmt.Errorf("range has no subnet")
		}
		p, err := netip.ParsePrefix(r.Subnet)
		if err != nil {
			return nil, fmt.Errorf("subnet %q: %v", r.Subnet, err)
		}
		var start, end, gw netip.Addr
		for _, f := range []struct {
			name, val string
			dst       *netip.Addr
		}{{"rangeStart", r.RangeStart, &start}, {"rangeEnd", r.RangeEnd, &end}, {"gateway", r.Gateway, &gw}} {
			if f.val == "" {
				continue
			}
			a, err := netip.ParseAddr(f.val)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %v", f.name, f.val, err)
			}
			*f.dst = a
		}
		rg, err := allocator.NewRange(p, start, end, gw, true)
		if err != nil {
			return nil, err
		}
		set = append(set, rg)
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	return set, nil
}

// parseAddrOrPrefix accepts "10.0.0.5", "10.0.0.5/24" (the address) and
// "10.0.0.0/28" (the prefix); a plain address becomes a /32 or /128.
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
