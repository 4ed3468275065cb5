// Package cri holds plain Go copies of the CRI runtime/v1 messages podnsctl
// reads (PodSandboxConfig, ContainerConfig and everything they contain):
// the same field names, types, JSON names and nil-safe getters, with none of
// the protobuf and gRPC machinery. Linking k8s.io/cri-api costs every
// podnsctl start ~2.5 ms of package init and page faults, more than
// podnsctl's own work for a pod; encoding/json needs only the struct tags.
//
// types.go is generated from the cri-api version in go.mod by
// gen_test.go (go test ./sandbox/spec/cri -run TestGenerated -update), which
// also fails when the two drift apart.
package cri
