//go:build linux

package state

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/podns/podns/pkg/jsonstr"
)

// encode writes the record as json.MarshalIndent(p, "", "  ") does, byte
// for byte, without encoding/json describing the Pod type first: runp
// writes two records per process, and that description was ~0.25 ms of
// the first.
func (p *Pod) encode() ([]byte, error) {
	w := &objectWriter{}
	w.str("id", p.ID, false)
	w.str("name", p.Name, false)
	w.str("namespace", p.Namespace, false)
	w.str("uid", p.UID, false)
	w.uint("attempt", uint64(p.Attempt), false)
	w.str("phase", string(p.Phase), false)
	w.str("mode", p.Mode, false)
	w.str("networkMode", p.Network, false)
	w.str("pidMode", p.PID, false)
	w.str("ipcMode", p.IPC, false)
	w.str("hostname", p.Hostname, true)
	w.strMap("labels", p.Labels)
	w.int("holderPid", int64(p.Holder), true)
	w.uint("holderStart", p.HolderStart, true)
	w.strMap("pins", p.Pins)
	if len(p.NSInodes) > 0 {
		w.key("nsInodes")
		w.b = append(w.b, '{')
		for i, k := range slices.Sorted(maps.Keys(p.NSInodes)) {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendString(w.b, k)
			w.b = strconv.AppendUint(append(w.b, ':'), p.NSInodes[k], 10)
		}
		w.b = append(w.b, '}')
	}
	w.str("cniNetwork", p.CNINetwork, true)
	if p.CNIAdded {
		w.key("cniAdded")
		w.b = append(w.b, "true"...)
	}
	if len(p.IPs) > 0 {
		w.key("ips")
		w.b = append(w.b, '[')
		for i, ip := range p.IPs {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendString(w.b, ip)
		}
		w.b = append(w.b, ']')
	}
	w.str("cgroupParent", p.CgroupParent, true)
	w.str("resolvConf", p.ResolvConf, true)
	t, err := p.CreatedAt.MarshalJSON()
	if err != nil {
		return nil, err
	}
	w.key("createdAt")
	w.b = append(w.b, t...)
	w.key("config")
	if p.Config == nil {
		w.b = append(w.b, "null"...)
	} else {
		// As encoding/json writes a RawMessage: compacted, HTML escaped.
		var c bytes.Buffer
		if err := json.Compact(&c, p.Config); err != nil {
			return nil, err
		}
		var h bytes.Buffer
		json.HTMLEscape(&h, c.Bytes())
		w.b = append(w.b, h.Bytes()...)
	}
	w.b = append(w.b, '}')
	var out bytes.Buffer
	if err := json.Indent(&out, w.b, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// objectWriter builds a compact JSON object member by member.
type objectWriter struct{ b []byte }

func (w *objectWriter) key(k string) {
	if len(w.b) == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.b = append(appendString(w.b, k), ':')
}

func (w *objectWriter) str(k, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *objectWriter) uint(k string, v uint64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *objectWriter) int(k string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// strMap writes a map with omitempty: sorted keys, nothing when empty.
func (w *objectWriter) strMap(k string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '{')
	for i, mk := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(appendString(w.b, mk), ':')
		w.b = appendString(w.b, m[mk])
	}
	w.b = append(w.b, '}')
}

func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, jsonstr.Escaped) }
