package cri

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/podns/podns/pkg/jsonobj"
)

// enumValues are the enums' name tables, by type, for the reference decoder.
var enumValues = map[reflect.Type]map[string]int32{
	reflect.TypeOf(MountPropagation(0)):            MountPropagation_value,
	reflect.TypeOf(NamespaceMode(0)):               NamespaceMode_value,
	reflect.TypeOf(Protocol(0)):                    Protocol_value,
	reflect.TypeOf(SecurityProfile_ProfileType(0)): SecurityProfile_ProfileType_value,
	reflect.TypeOf(Signal(0)):                      Signal_value,
	reflect.TypeOf(SupplementalGroupsPolicy(0)):    SupplementalGroupsPolicy_value,
}

// referenceDecode is what the generated decoders must match: enum names
// turned into numbers where the config's types have enums, then a strict
// encoding/json decode.
func referenceDecode(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("not an object")
	}
	if err := fixEnums(v, reflect.TypeOf(into).Elem()); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	strict := json.NewDecoder(bytes.NewReader(js))
	strict.DisallowUnknownFields()
	return strict.Decode(into)
}

func fixEnums(v any, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		if list, ok := v.([]any); ok {
			for _, item := range list {
				if err := fixEnums(item, t.Elem()); err != nil {
					return err
				}
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok || t == reflect.TypeOf(KeyValue{}) {
		return nil
	}
	for k, val := range obj {
		f, ok := fieldFor(t, k)
		if !ok {
			continue
		}
		names, isEnum := enumValues[f.Type]
		if !isEnum {
			if err := fixEnums(val, f.Type); err != nil {
				return err
			}
			continue
		}
		switch x := val.(type) {
		case string:
			n, ok := names[strings.ToUpper(x)]
			if !ok {
				return fmt.Errorf("enum name %q", x)
			}
			obj[k] = n
		case json.Number:
			n, err := strconv.ParseInt(string(x), 10, 32)
			found := false
			for _, v := range names {
				found = found || (err == nil && v == int32(n))
			}
			if !found {
				return fmt.Errorf("enum number %s", x)
			}
		default:
			return fmt.Errorf("enum value %v", x)
		}
	}
	return nil
}

// fieldFor finds the field for member k as encoding/json does.
func fieldFor(t reflect.Type, k string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := jsonName(f)
		if name == k {
			return f, true
		}
		if !found && strings.EqualFold(name, k) {
			fold, found = f, true
		}
	}
	return fold, found
}

func decodeSeeds() []string {
	return []string{
		`{"metadata":{"name":"a","namespace":"n","uid":"u","attempt":2},"hostname":"h","log_directory":"/l",
		  "dns_config":{"servers":["1.1.1.1"],"searches":["s"],"options":["ndots:5"]},
		  "port_mappings":[{"protocol":"udp","container_port":53,"host_port":5353,"host_ip":"127.0.0.1"},null],
		  "labels":{"pid":"x"},"annotations":{"c":"d"},
		  "linux":{"cgroup_parent":"/x","sysctls":{"net.ipv4.ip_forward":"1"},
		    "security_context":{"namespace_options":{"network":"node","pid":1,"ipc":0,"target_id":"t",
		      "userns_options":{"mode":2,"uids":[{"host_id":1,"container_id":2,"length":3}]}},
		      "selinux_options":{"user":"u"},"run_as_user":{"value":5},"readonly_rootfs":true,"supplemental_groups":[1,2],
		      "privileged":true,"seccomp":{"profile_type":"Localhost","localhost_ref":"r"},"seccomp_profile_path":"p"},
		    "overhead":{"cpu_period":1,"memory_limit_in_bytes":2,"hugepage_limits":[{"page_size":"2MB","limit":3}],"unified":{"k":"v"}},
		    "resources":{"cpu_shares":4}},
		  "windows":{"security_context":{"run_as_username":"x"}}}`,
		`{"Metadata":{"NAME":"a"},"linux":null,"port_mappings":[]}`,
		`{"metadata":{"name":"a"},"bogus":1}`,
		`{"metadata":{"name":"a","nope":true}}`,
		`{"linux":{"security_context":{"namespace_options":{"pid":"POD","network":7}}}}`,
		`{"linux":{"security_context":{"namespace_options":{"pid":null}}}}`,
		`{"linux":{"security_context":{"namespace_options":{"ipc":1.0}}}}`,
		`{"metadata":{"name":"c","attempt":1},"image":{"image":"busybox","annotations":{"a":"b"}},"command":["sh"],"args":["-c","x"],
		  "working_dir":"/w","envs":[{"key":"K","value":"V é"},{"key":"E","extra":1}],
		  "mounts":[{"container_path":"/c","host_path":"/h","readonly":true,"propagation":"propagation_bidirectional","uidMappings":[]}],
		  "devices":[{"container_path":"/dev/x","host_path":"/dev/y","permissions":"rw"}],
		  "stop_signal":"SIGTERM","linux":{"resources":{"cpu_quota":"x"}}}`,
		`{"metadata":{"name":"c"},"stop_signal":99,"mounts":{"a":1}}`,
		`[1]`, `null`, `{"metadata":"x"}`, `{"metadata":{"attempt":-1}}`, `{"metadata":{"attempt":4294967296}}`,
	}
}

// FuzzDecodeSame: the generated decoders accept exactly what the reference
// accepts, with the same result, for both configs.
func FuzzDecodeSame(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		if !json.Valid(data) {
			// (The reference's stream decoder would take a valid prefix.)
			if _, err := DecodePodSandboxConfig(data); err == nil {
				t.Fatalf("%q: invalid JSON accepted", data)
			}
			return
		}
		if jsonobj.RepeatsMember(data) {
			return // a repeated member: see pkg/jsonobj
		}
		check := func(name string, ours any, errOurs error, ref any) {
			errRef := referenceDecode(data, ref)
			if (errOurs == nil) != (errRef == nil) {
				t.Fatalf("%s %s: decoder says %v, reference says %v", name, data, errOurs, errRef)
			}
			if errOurs == nil && !reflect.DeepEqual(ours, ref) {
				t.Fatalf("%s %s:\ndecoder:   %+v\nreference: %+v", name, data, ours, ref)
			}
		}
		p, err := DecodePodSandboxConfig(data)
		check("pod", p, err, &PodSandboxConfig{})
		c, err := DecodeContainerConfig(data)
		check("container", c, err, &ContainerConfig{})
	})
}

// TestDecodeErrors: a bad member is named by its path.
func TestDecodeErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"linux":{"security_context":{"namespace_options":{"pid":"SHARED"}}}}`: `linux.security_context.namespace_options.pid: unknown value "SHARED" (want one of POD|CONTAINER|NODE|TARGET)`,
		`{"port_mappings":[{"container_port":1},{"bogus":1}]}`:                  `unknown field "port_mappings.1.bogus"`,
		`{"metadata":{"attempt":"x"}}`:                                          `metadata.attempt: json: cannot unmarshal string into Go value of type uint32`,
		`null`:                                                                  `expected an object at the top level`,
	} {
		_, err := DecodePodSandboxConfig([]byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}
