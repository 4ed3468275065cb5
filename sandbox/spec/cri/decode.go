package cri

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/podns/podns/pkg/jsonobj"
)

// Decoding a config into these types with encoding/json first reflects over
// every struct type it meets (~0.3 ms of a fresh podnsctl, most of a pod
// config's parse); podnsctl parses one config per process. The decoders
// here take each object member by member (pkg/jsonobj) and hand a member
// to encoding/json only when its value is a string, number, list or map of
// those, which needs no type description. What they accept is what a
// strict encoding/json decode accepts (unknown members refused, names
// matched as encoding/json matches them), except that enum members take
// the value's name (any letter case) or one of its numbers, nothing else.

// message is a type with a generated (decoders.go) or hand-written
// member decoder.
type message interface {
	decodeMembers(o jsonobj.Object) error
}

// DecodePodSandboxConfig decodes a JSON PodSandboxConfig.
func DecodePodSandboxConfig(data []byte) (*PodSandboxConfig, error) {
	x := &PodSandboxConfig{}
	return x, decodeTop(data, x)
}

// DecodeContainerConfig decodes a JSON ContainerConfig.
func DecodeContainerConfig(data []byte) (*ContainerConfig, error) {
	x := &ContainerConfig{}
	return x, decodeTop(data, x)
}

func decodeTop(data []byte, x message) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		if !json.Valid(data) {
			return json.Unmarshal(data, new(any)) // its syntax error
		}
		return errors.New("expected an object at the top level")
	}
	o, err := jsonobj.Decode(data)
	if err != nil {
		return err
	}
	return x.decodeMembers(o)
}

// errUnknownMember is a member the message does not have.
var errUnknownMember = errors.New("unknown field")

// memberError is an error at a member path ("linux.sysctls").
type memberError struct {
	path string
	err  error
}

func (e *memberError) Error() string {
	if e.err == errUnknownMember {
		return fmt.Sprintf("unknown field %q", e.path)
	}
	return e.path + ": " + e.err.Error()
}

func (e *memberError) Unwrap() error { return e.err }

// inMember puts err under member name.
func inMember(name string, err error) error {
	var me *memberError
	if errors.As(err, &me) {
		return &memberError{path: name + "." + me.path, err: me.err}
	}
	return &memberError{path: name, err: err}
}

// memberIndex finds key among a message's member names as encoding/json
// finds a struct field: the exact name, else one equal under case folding.
func memberIndex(key string, names []string) int {
	if i := slices.Index(names, key); i >= 0 {
		return i
	}
	for i, n := range names {
		if strings.EqualFold(key, n) {
			return i
		}
	}
	return -1
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// decodeValue decodes a member whose type has no struct in it.
func decodeValue(v json.RawMessage, dst any) error { return json.Unmarshal(v, dst) }

// decodeMessage decodes an object (null: none) into *dst.
func decodeMessage[T any, P interface {
	*T
	message
}](v json.RawMessage, dst **T) error {
	if isNull(v) {
		*dst = nil
		return nil
	}
	o, err := jsonobj.Decode(v)
	if err != nil {
		return err
	}
	x := P(new(T))
	if err := x.decodeMembers(o); err != nil {
		return err
	}
	*dst = (*T)(x)
	return nil
}

// decodeMessages decodes a list of objects (null: none) into *dst.
func decodeMessages[T any, P interface {
	*T
	message
}](v json.RawMessage, dst *[]*T) error {
	if isNull(v) {
		*dst = nil
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return err
	}
	out := make([]*T, len(items))
	for i, item := range items {
		if err := decodeMessage[T, P](item, &out[i]); err != nil {
			return inMember(strconv.Itoa(i), err)
		}
	}
	*dst = out
	return nil
}

// decodeEnum decodes an enum member given by name (any letter case) or
// by number; either must be one of the enum's values.
func decodeEnum[E ~int32](v json.RawMessage, dst *E, values map[string]int32) error {
	t := bytes.TrimSpace(v)
	if len(t) > 0 && t[0] == '"' {
		var name string
		if err := json.Unmarshal(t, &name); err != nil {
			return err
		}
		if n, ok := values[strings.ToUpper(name)]; ok {
			*dst = E(n)
			return nil
		}
		return fmt.Errorf("unknown value %q (want one of %s)", name, enumNames(values))
	}
	if n, err := strconv.ParseInt(string(t), 10, 32); err == nil {
		for _, val := range values {
			if val == int32(n) {
				*dst = E(n)
				return nil
			}
		}
	}
	return fmt.Errorf("unknown value %s (want one of %s)", t, enumNames(values))
}

// enumNames lists an enum's names in value order.
func enumNames(values map[string]int32) string {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(values[a]) - int(values[b]) })
	return strings.Join(names, "|")
}
