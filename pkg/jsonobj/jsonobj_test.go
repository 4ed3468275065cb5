package jsonobj

import (
	"strings"
	"testing"
)

func TestMembersMatchLikeStructFields(t *testing.T) {
	o, err := Decode([]byte(`{"mtu":1400,"MODE":"routed","Bridge":"b1","bridge2":"x","ſkip":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var mtu int
	var mode, bridge string
	var skip *int
	if err := o.GetAll(F("mtu", &mtu), F("mode", &mode), F("bridge", &bridge), F("skip", &skip)); err != nil {
		t.Fatal(err)
	}
	if mtu != 1400 || mode != "routed" || bridge != "b1" || skip == nil || *skip != 1 {
		t.Fatalf("got mtu %d mode %q bridge %q skip %v", mtu, mode, bridge, skip)
	}
	if _, ok := o.Raw("bridg"); ok {
		t.Fatal("a prefix matched a member")
	}
}

func TestExactSpellingWinsThenGreatest(t *testing.T) {
	o, err := Decode([]byte(`{"Mode":"a","mode":"b","MODE":"c","Mtu":1,"MTU":2}`))
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	var mtu int
	if err := o.GetAll(F("mode", &mode), F("mtu", &mtu)); err != nil {
		t.Fatal(err)
	}
	// "Mtu" > "MTU" in byte order.
	if mode != "b" || mtu != 1 {
		t.Fatalf("mode %q mtu %d, want b and 1", mode, mtu)
	}
}

func TestAbsentAndNullFollowEncodingJSON(t *testing.T) {
	o, err := Decode([]byte(`{"s":null,"p":null,"m":null,"o":null,"l":null}`))
	if err != nil {
		t.Fatal(err)
	}
	s, b := "kept", true
	p := &b
	m := map[string]bool{"x": true}
	if err := o.GetAll(F("s", &s), F("p", &p), F("m", &m), F("absent", &s)); err != nil {
		t.Fatal(err)
	}
	if s != "kept" || p != nil || m != nil {
		t.Fatalf("after null: s %q p %v m %v; want kept, nil, nil", s, p, m)
	}
	sub, err := o.Object("o")
	if err != nil || sub != nil {
		t.Fatalf("null object: %v, %v", sub, err)
	}
	var l []Object
	if err := o.Get("l", &l); err != nil || l != nil {
		t.Fatalf("null list: %v, %v", l, err)
	}
	if sub, err := o.Object("absent"); err != nil || sub != nil {
		t.Fatalf("absent object: %v, %v", sub, err)
	}
	if o, err := Decode([]byte(`null`)); err != nil || o != nil {
		t.Fatalf("null document: %v, %v", o, err)
	}
	empty, err := Decode([]byte(` { } `))
	if err != nil || empty == nil {
		t.Fatalf("{} gave %v, %v; want an empty, non-nil Object", empty, err)
	}
}

func TestErrorsNameTheMember(t *testing.T) {
	o, err := Decode([]byte(`{"mtu":"big","ipam":"x","l":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	var mtu int
	if err := o.GetAll(F("name", new(string)), F("mtu", &mtu)); err == nil || !strings.HasPrefix(err.Error(), `"mtu": `) {
		t.Fatalf("mtu error %v", err)
	}
	if _, err := o.Object("ipam"); err == nil || !strings.Contains(err.Error(), `"ipam"`) {
		t.Fatalf("ipam error %v", err)
	}
	var l []Object
	if err := o.Get("l", &l); err == nil {
		t.Fatal("a list of numbers decoded as objects")
	}
	for _, doc := range []string{`[]`, `"x"`, `1`, `{`, `{"a":1} x`, ``} {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("Decode(%q) gave no error", doc)
		}
	}
}

func TestListsOfObjectsKeepNullEntries(t *testing.T) {
	o, err := Decode([]byte(`{"ranges":[{"subnet":"10.0.0.0/24"},null,{}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var l []Object
	if err := o.Get("ranges", &l); err != nil || len(l) != 3 || l[1] != nil || l[2] == nil {
		t.Fatalf("got %v, %v", l, err)
	}
	var subnet string
	if err := l[0].Get("subnet", &subnet); err != nil || subnet != "10.0.0.0/24" {
		t.Fatalf("subnet %q, %v", subnet, err)
	}
}

func TestRepeatsMember(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":2}`:                   false,
		`{"a":1,"a":2}`:                   true,
		`{"mtu":1,"MTU":2}`:               true,
		`{"skip":1,"ſkip":2}`:             true, // ſ folds to s
		`{"k":1,"K":2}`:                   true, // the Kelvin sign folds to k
		`{"a":{"b":1},"c":{"b":2}}`:       false,
		`{"a":{"b":1,"b":2}}`:             true,
		`{"a":[{"b":1},{"b":2}]}`:         false,
		`[{"x":1},{"x":1}]`:               false,
		`{"a":["a","a"],"b":"a"}`:         false,
		`{"a":1,"b":[],"c":{},"a":3}`:     true,
		`{"a":1,"b":}`:                    false, // invalid before any repeat
		`{"a":{"x":[1,{"y":2,"Y":3}]}}`:   true,
		`{"ipam":{"type":"a"},"dns":{}}`:  false,
		`{"a":"b","b":"a","c":{"a":"a"}}`: false,
	} {
		if got := RepeatsMember([]byte(doc)); got != want {
			t.Errorf("RepeatsMember(%s) = %v, want %v", doc, got, want)
		}
	}
}
