// Package cniresult prints a CNI result exactly as types.PrintResult does,
// without encoding/json's reflection for the versions podns normally answers.
//
// A plugin process lives a few milliseconds; in it, encoding/json spends most
// of PrintResult building its per-type caches for Result, Interface,
// IPConfig, Route and DNS. For 1.0.0 and 1.1.0 the library prints the
// current.Result as is, so Print writes those bytes by hand. Every other
// version, and any value the library would refuse, goes through the library.
package cniresult

import (
	"errors"
	"io"
	"net"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/podns/podns/pkg/jsonstr"
)

// Print writes to w the bytes types.PrintResult(r, cniVersion) writes to
// stdout, and leaves r as PrintResult leaves it.
func Print(w io.Writer, r *current.Result, cniVersion string) error {
	if r == nil {
		return errors.New("cniresult: nil result")
	}
	// GetAsVersion does this to the caller's result before converting.
	if r.CNIVersion == "" {
		r.CNIVersion = current.ImplementedSpecVersion
	}
	if !native(r.CNIVersion) || !native(cniVersion) {
		return fallback(w, r, cniVersion)
	}
	b, ok := appendResult(make([]byte, 0, 1024), r, cniVersion)
	if !ok {
		// The library fails on this value; let it give its own error.
		return fallback(w, r, cniVersion)
	}
	_, err := w.Write(b)
	return err
}

// fallback is library; tests wrap it to see which path Print took.
var fallback = library

// library is types.PrintResult writing to w instead of os.Stdout.
func library(w io.Writer, r *current.Result, cniVersion string) error {
	res, err := r.GetAsVersion(cniVersion)
	if err != nil {
		return err
	}
	return res.PrintTo(w)
}

// native reports the versions whose printed form is current.Result with only
// cniVersion changed (the library's converters between 1.0.0 and 1.1.0 copy
// every field as is).
func native(v string) bool {
	return v == "1.0.0" || v == "1.1.0"
}

// The library's Result.MarshalJSON marshals, decodes into a map and marshals
// again, then MarshalIndent indents with four spaces and no final newline.
// So the output has every object's keys sorted, every number printed as the
// float64 it decodes to, and every string escaped twice over (see
// appendString). The key order in the functions below is that sorted order.

type encoder struct {
	b     []byte
	depth int
	first bool
}

func (e *encoder) newline() {
	e.b = append(e.b, '\n')
	for i := 0; i < e.depth; i++ {
		e.b = append(e.b, "    "...)
	}
}

// Objects and arrays written here are never empty (each object has a key
// without omitempty, each array is omitted when empty), so no "{}" case.
func (e *encoder) open(c byte) {
	e.b = append(e.b, c)
	e.depth++
	e.first = true
}

func (e *encoder) close(c byte) {
	e.depth--
	e.newline()
	e.b = append(e.b, c)
	e.first = false
}

// elem starts an array element or an object member.
func (e *encoder) elem() {
	if !e.first {
		e.b = append(e.b, ',')
	}
	e.first = false
	e.newline()
}

func (e *encoder) key(k string) {
	e.elem()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':', ' ')
}

func (e *encoder) str(k, v string) {
	e.key(k)
	e.b = appendString(e.b, v)
}

func (e *encoder) num(k string, v int) {
	e.key(k)
	// The map round trip turns every number into a float64.
	e.b = strconv.AppendFloat(e.b, float64(v), 'f', -1, 64)
}

// ip writes a net.IP member with omitempty; false when the library's
// MarshalText fails on it.
func (e *encoder) ip(k string, ip net.IP) bool {
	switch len(ip) {
	case 0:
	case net.IPv4len, net.IPv6len:
		e.str(k, ip.String())
	default:
		return false
	}
	return true
}

func (e *encoder) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	e.key(k)
	e.open('[')
	for _, s := range v {
		e.elem()
		e.b = appendString(e.b, s)
	}
	e.close(']')
}

func (e *encoder) null() {
	e.elem()
	e.b = append(e.b, "null"...)
}

func appendResult(b []byte, r *current.Result, version string) ([]byte, bool) {
	e := encoder{b: b}
	e.open('{')
	e.str("cniVersion", version)
	if !r.DNS.IsEmpty() {
		d := &r.DNS
		e.key("dns")
		e.open('{')
		if d.Domain != "" {
			e.str("domain", d.Domain)
		}
		e.strs("nameservers", d.Nameservers)
		e.strs("options", d.Options)
		e.strs("search", d.Search)
		e.close('}')
	}
	list(&e, "interfaces", r.Interfaces, func(i *current.Interface) bool {
		if i.Mac != "" {
			e.str("mac", i.Mac)
		}
		if i.Mtu != 0 {
			e.num("mtu", i.Mtu)
		}
		e.str("name", i.Name)
		if i.PciID != "" {
			e.str("pciID", i.PciID)
		}
		if i.Sandbox != "" {
			e.str("sandbox", i.Sandbox)
		}
		if i.SocketPath != "" {
			e.str("socketPath", i.SocketPath)
		}
		return true
	})
	ok := list(&e, "ips", r.IPs, func(c *current.IPConfig) bool {
		e.str("address", c.Address.String())
		if !e.ip("gateway", c.Gateway) {
			return false
		}
		if c.Interface != nil {
			e.num("interface", *c.Interface)
		}
		return true
	}) && list(&e, "routes", r.Routes, func(rt *types.Route) bool {
		if rt.AdvMSS != 0 {
			e.num("advmss", rt.AdvMSS)
		}
		e.str("dst", rt.Dst.String())
		if !e.ip("gw", rt.GW) {
			return false
		}
		if rt.MTU != 0 {
			e.num("mtu", rt.MTU)
		}
		if rt.Priority != 0 {
			e.num("priority", rt.Priority)
		}
		if rt.Scope != nil {
			e.num("scope", *rt.Scope)
		}
		if rt.Table != nil {
			e.num("table", *rt.Table)
		}
		return true
	})
	if !ok {
		return nil, false
	}
	e.close('}')
	return e.b, true
}

// list writes key: [...] with one object per entry (null for a nil one);
// fields writes an object's fields and reports false for a value the
// library would refuse. Nothing is written for an empty list (omitempty).
func list[T any](e *encoder, key string, items []*T, fields func(*T) bool) bool {
	if len(items) == 0 {
		return true
	}
	e.key(key)
	e.open('[')
	for _, it := range items {
		if it == nil {
			e.null()
			continue
		}
		e.elem()
		e.open('{')
		if !fields(it) {
			return false
		}
		e.close('}')
	}
	e.close(']')
	return true
}

// appendString appends s as the library prints it. The first marshal
// replaces each byte of invalid UTF-8 with the escape \ufffd, which decodes
// to U+FFFD, which the second marshal writes as is; everything else ends up
// escaped once the HTML-safe way.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, jsonstr.Replaced) }
