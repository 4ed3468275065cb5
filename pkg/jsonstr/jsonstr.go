// Package jsonstr writes a JSON string as encoding/json writes it, for the
// few outputs podns writes by hand (a plugin's result, a pod's record)
// because encoding/json would first describe the types involved.
package jsonstr

import "unicode/utf8"

// What a byte of invalid UTF-8 becomes: encoding/json writes Escaped; a
// second encoding of that output (the CNI library's result printing)
// writes Replaced, the rune the escape stands for.
const (
	Escaped  = `\ufffd`
	Replaced = "\uFFFD"
)

const hex = "0123456789abcdef"

// Append appends s quoted the HTML-safe way encoding/json uses: ", \ and
// control characters escaped, <, >, &, U+2028 and U+2029 as \u escapes,
// and each byte of invalid UTF-8 as invalid (Escaped or Replaced).
func Append(b []byte, s, invalid string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, invalid...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
