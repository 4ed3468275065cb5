package cri

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// decodeBoth decodes data strictly into the cri-api type and into this
// package's copy and returns both re-encoded.
func decodeBoth(t *testing.T, data string, api, ours any) (string, string, error, error) {
	t.Helper()
	dec := func(into any) ([]byte, error) {
		d := json.NewDecoder(strings.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(into); err != nil {
			return nil, err
		}
		return json.Marshal(into)
	}
	a, errA := dec(api)
	b, errB := dec(ours)
	return string(a), string(b), errA, errB
}

// TestSameJSON checks that configs decode and encode exactly as with
// cri-api, unknown fields are refused alike, and env values stay strings.
func TestSameJSON(t *testing.T) {
	pods := []string{
		`{"metadata":{"name":"a","namespace":"n","uid":"u","attempt":2},"hostname":"h","log_directory":"/l",
		  "dns_config":{"servers":["1.1.1.1"],"searches":["s"],"options":["ndots:5"]},
		  "port_mappings":[{"protocol":1,"container_port":53,"host_port":5353,"host_ip":"127.0.0.1"}],
		  "labels":{"a":"b"},"annotations":{"c":"d"},
		  "linux":{"cgroup_parent":"/x","sysctls":{"net.ipv4.ip_forward":"1"},
		    "security_context":{"namespace_options":{"network":2,"pid":1,"ipc":0,"target_id":"t",
		      "userns_options":{"mode":2,"uids":[{"host_id":1,"container_id":2,"length":3}]}},
		      "selinux_options":{"user":"u"},"run_as_user":{"value":5},"readonly_rootfs":true,"supplemental_groups":[1,2],
		      "privileged":true,"seccomp":{"profile_type":1,"localhost_ref":"r"},"seccomp_profile_path":"p"},
		    "overhead":{"cpu_period":1,"memory_limit_in_bytes":2,"hugepage_limits":[{"page_size":"2MB","limit":3}],"unified":{"k":"v"}},
		    "resources":{"cpu_shares":4}},
		  "windows":{"security_context":{"run_as_username":"x"}}}`,
		`{"metadata":{"name":"a"},"bogus":1}`,
		`{"metadata":{"name":"a","nope":true}}`,
		`{"linux":{"security_context":{"namespace_options":{"pid":"POD"}}}}`,
	}
	for i, p := range pods {
		a, b, errA, errB := decodeBoth(t, p, &runtimeapi.PodSandboxConfig{}, &PodSandboxConfig{})
		if (i == 0) != (errA == nil) {
			t.Errorf("pod sample %d: cri-api says %v", i, errA)
		}
		if a != b || (errA == nil) != (errB == nil) {
			t.Errorf("pod %s:\ncri-api: %s %v\ncopy:    %s %v", p, a, errA, b, errB)
		}
	}
	ctrs := []string{
		`{"metadata":{"name":"c","attempt":1},"image":{"image":"busybox","annotations":{"a":"b"}},"command":["sh"],"args":["-c","x"],
		  "working_dir":"/w","envs":[{"key":"K","value":"V é"},{"key":"E"}],
		  "mounts":[{"container_path":"/c","host_path":"/h","readonly":true,"propagation":2,"uidMappings":[]}],
		  "devices":[{"container_path":"/dev/x","host_path":"/dev/y","permissions":"rw"}],
		  "labels":{"l":"m"},"annotations":{"podns.io/rootfs":"/r"},"log_path":"c.log","stdin":true,"tty":true,
		  "linux":{"resources":{"cpu_quota":1,"memory_limit_in_bytes":2,"unified":{"a":"b"}},
		    "security_context":{"capabilities":{"add_capabilities":["NET_ADMIN"]},"namespace_options":{"pid":3,"target_id":"x"},
		      "run_as_user":{"value":0},"masked_paths":["/m"],"apparmor":{"profile_type":2}}},
		  "stop_signal":15}`,
		`{"metadata":{"name":"c"},"envs":[{"key":"K","value":"V","extra":1}]}`,
		`{"metadata":{"name":"c"},"linux":{"resources":{"cpu_quota":"x"}}}`,
	}
	for i, c := range ctrs {
		a, b, errA, errB := decodeBoth(t, c, &runtimeapi.ContainerConfig{}, &ContainerConfig{})
		// cri-api's KeyValue decoder ignores unknown keys: sample 1 passes.
		if (i <= 1) != (errA == nil) {
			t.Errorf("container sample %d: cri-api says %v", i, errA)
		}
		if a != b || (errA == nil) != (errB == nil) {
			t.Errorf("container %s:\ncri-api: %s %v\ncopy:    %s %v", c, a, errA, b, errB)
		}
	}
	// Enum names and String agree.
	for n, v := range runtimeapi.NamespaceMode_value {
		if NamespaceMode_value[n] != v || NamespaceMode(v).String() != runtimeapi.NamespaceMode(v).String() {
			t.Errorf("namespace mode %s", n)
		}
	}
	if Protocol(1).String() != "UDP" || Protocol(9).String() != runtimeapi.Protocol(9).String() {
		t.Errorf("protocol names: %s %s", Protocol(9), runtimeapi.Protocol(9))
	}
	if !bytes.Contains([]byte(NamespaceMode_TARGET.String()), []byte("TARGET")) {
		t.Error("TARGET")
	}
}
