package jsonstr

import (
	"encoding/json"
	"testing"
)

// FuzzAppend: Append with Escaped writes what json.Marshal writes for a
// string, and with Replaced what a second marshal of its decoding writes.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "eth0", "<a&b>", "\u2028\u2029", "\x00\x1f\x7f", "\"\\", "\xff\xed\xa0\x80", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append(nil, s, Escaped); string(got) != string(want) {
			t.Fatalf("%q: Append %s, json.Marshal %s", s, got, want)
		}
		var once string
		if err := json.Unmarshal(want, &once); err != nil {
			t.Fatal(err)
		}
		twice, _ := json.Marshal(once)
		if got := Append(nil, s, Replaced); string(got) != string(twice) {
			t.Fatalf("%q: Append %s, marshalled twice %s", s, got, twice)
		}
	})
}
