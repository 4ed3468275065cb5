//go:build linux

package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/podns/podns/pkg/jsonobj"
)

// fullPod has every field set, so a member decode forgets none unseen.
func fullPod(t *testing.T) *Pod {
	p := &Pod{}
	v := reflect.ValueOf(p).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC)))
		case json.RawMessage:
			f.SetBytes([]byte(`{"metadata":{"name":"a"}}`))
		default:
			switch f.Kind() {
			case reflect.String:
				f.SetString("s" + v.Type().Field(i).Name)
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(i + 1))
			case reflect.Uint32, reflect.Uint64:
				f.SetUint(uint64(i + 1))
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Slice:
				f.Set(reflect.ValueOf([]string{"10.0.0.2/24"}))
			case reflect.Map:
				m := reflect.MakeMap(f.Type())
				m.SetMapIndex(reflect.ValueOf("k"), reflect.New(f.Type().Elem()).Elem())
				f.Set(m)
			default:
				t.Fatalf("field %s: kind %s not filled", v.Type().Field(i).Name, f.Kind())
			}
		}
	}
	return p
}

// TestDecodeFullPod: a record with every field set reads back whole.
func TestDecodeFullPod(t *testing.T) {
	want := fullPod(t)
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := &Pod{}
	if err := got.decode(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v\nwant    %+v", got, want)
	}
}

// FuzzDecodePod: decode reads what json.Unmarshal reads.
func FuzzDecodePod(f *testing.F) {
	full, _ := json.Marshal(fullPod(&testing.T{}))
	for _, s := range []string{string(full), `{"id":"a","ID":"b"}`, `{"holderPid":"x"}`, `{"createdAt":null,"config":null}`, `{"Labels":{"a":"b"},"PINS":null}`, `[]`, `null`, `{"attempt":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if jsonobj.RepeatsMember(data) {
			return // a repeated member: see pkg/jsonobj
		}
		var want, got Pod
		errWant := json.Unmarshal(data, &want)
		errGot := got.decode(data)
		if (errWant == nil) != (errGot == nil) {
			t.Fatalf("%s: json.Unmarshal says %v, decode says %v", data, errWant, errGot)
		}
		if errWant == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\ndecode %+v\nwant   %+v", data, got, want)
		}
	})
}

// TestEncodeFullPod: encode writes what json.MarshalIndent writes.
func TestEncodeFullPod(t *testing.T) {
	for _, p := range []*Pod{fullPod(t), {}, {Labels: map[string]string{}, Config: json.RawMessage(" { \"a\" : \"<&>\" } ")}} {
		want, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.encode()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("encode:\n%s\nwant:\n%s", got, want)
		}
	}
}

// FuzzEncodePod: encode writes what json.MarshalIndent writes, strings of
// any bytes included.
func FuzzEncodePod(f *testing.F) {
	f.Add("a", "<b>&\u2028", "\x00\xff\"\\", uint64(3), -5, true, []byte(`{"x":[1, 2]}`))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, u uint64, n int, b bool, raw []byte) {
		p := &Pod{ID: s1, Name: s2, Hostname: s3, Attempt: uint32(u), Holder: n, HolderStart: u, CNIAdded: b,
			Labels: map[string]string{s1: s2, s3: s1}, Pins: map[string]string{s2: s3}, NSInodes: map[string]uint64{s3: u},
			IPs: []string{s2, s3}, ResolvConf: s1, CreatedAt: time.Unix(int64(n), int64(u%1e9)).UTC()}
		if json.Valid(raw) {
			p.Config = raw
		}
		want, errWant := json.MarshalIndent(p, "", "  ")
		got, errGot := p.encode()
		if (errWant == nil) != (errGot == nil) || string(got) != string(want) {
			t.Fatalf("encode (%v):\n%s\nwant (%v):\n%s", errGot, got, errWant, want)
		}
	})
}
