// Package jsonobj decodes a JSON object member by member, each member's
// value with encoding/json, so that no Go struct type is reflected over.
//
// encoding/json decoding into a struct first builds a description of that
// struct type and of every struct type nested in it (fields, tags, name
// indexes). A plugin process decodes one config and exits, so it pays that
// in full each time: decoding the podns config into its struct took 0.15 ms
// of a fresh process, decoding the same bytes into an Object 0.015 ms.
//
// Members are matched as encoding/json matches struct fields: the exact
// name first, else a case-insensitive match. A member given twice: the
// last one is used. (encoding/json, decoding into a struct, merges a
// repeated object member into one struct, and takes the last of two
// spellings of one name; here the exact spelling wins, else the greater
// one in byte order.)
package jsonobj

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// Object is a decoded JSON object: its members' raw values by name. A nil
// Object (from JSON null, or a member that is absent) has no members.
type Object map[string]json.RawMessage

// Decode decodes b, which must be a JSON object or null.
func Decode(b []byte) (Object, error) {
	var o Object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	return o, nil
}

// Raw returns the raw value of member name.
func (o Object) Raw(name string) (json.RawMessage, bool) {
	if v, ok := o[name]; ok {
		return v, true
	}
	key, found := "", false
	for k := range o {
		if strings.EqualFold(k, name) && (!found || k > key) {
			key, found = k, true
		}
	}
	if !found {
		return nil, false
	}
	return o[key], true
}

// Get decodes member name into v, which must be a pointer; an absent
// member leaves v as it is, as does null for a non-pointer, non-map,
// non-slice v (encoding/json's rules). The error names the member.
func (o Object) Get(name string, v any) error {
	raw, ok := o.Raw(name)
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	return nil
}

// Object decodes member name as an object; absent or null gives nil.
func (o Object) Object(name string) (Object, error) {
	var m Object
	if err := o.Get(name, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Field names a member and where to decode it.
type Field struct {
	Name string
	Dst  any // a pointer, as for Get
}

// F is a Field.
func F(name string, dst any) Field { return Field{name, dst} }

// GetAll decodes the fields in order and returns the first error.
func (o Object) GetAll(fields ...Field) error {
	for _, f := range fields {
		if err := o.Get(f.Name, f.Dst); err != nil {
			return err
		}
	}
	return nil
}

// RepeatsMember reports whether an object in data names a member twice,
// in any letter case: the inputs on which Object's choice of member can
// differ from encoding/json's struct decoding (see the package comment).
// It reads data as far as it is valid JSON.
func RepeatsMember(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.isObj && top.key
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if top != nil && top.isObj {
					top.key = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, isObj: v == '{', key: v == '{'})
			} else {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].isObj {
					stack[len(stack)-1].key = true
				}
			}
			continue
		case string:
			if isKey {
				k := foldKey(v)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.isObj {
			top.key = true
		}
	}
}

// foldKey maps s to one spelling per case-insensitive class (the least
// rune of each rune's case orbit, as strings.EqualFold compares).
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < least {
				least = f
			}
		}
		b.WriteRune(least)
	}
	return b.String()
}
