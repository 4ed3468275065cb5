// Package digest names things after their identity: the leading hex digits
// of a 128-bit FNV-1a hash of a few strings. podns uses it where a name must
// be short, stable across processes, and found again without state (host
// veth names, masquerade keys).
//
// Not crypto/sha256: nothing here needs a hash an attacker cannot collide
// (a collision makes an ADD fail, it cannot reach another pod's state, and
// the names are truncated to 36-64 bits anyway), and linking crypto/sha256
// brings the FIPS module's package initialisation into every plugin
// process, which is a measurable part of its life
// (docs/benchmark-findings.md, Round 7).
package digest

import (
	"encoding/hex"
	"hash/fnv"
)

// Hex returns the first n (at most 32) hex digits of the hash of parts,
// each followed by a NUL so that ("ab", "c") and ("a", "bc") differ.
func Hex(n int, parts ...string) string {
	h := fnv.New128a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [16]byte
	return hex.EncodeToString(h.Sum(sum[:0]))[:n]
}
