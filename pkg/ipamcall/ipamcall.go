//go:build linux

// Package ipamcall hands a verb to the network's IPAM plugin. podns-ipam is
// called in-process (no fork/exec on the hot path); any other ipam.type is
// exec'd from CNI_PATH as the spec describes, with the same stdin and the
// caller's CNI_* environment (exec.go). It does not link libcni's invoke
// package: that brings ~100 packages (HTTP, TLS, tracing) whose init every
// podns call would pay.
package ipamcall

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// InProcessType is the ipam.type served without exec.
const InProcessType = "podns-ipam"

// InProcess reports whether typ is served in this process: such an IPAM
// can run alongside the link work and says which allocations are fresh.
func InProcess(typ string) bool { return typ == InProcessType && inProcess != nil }

// Add allocates addresses for the attachment.
func Add(ctx context.Context, typ string, args *skel.CmdArgs) (*current.Result, error) {
	res, _, err := AddFresh(ctx, typ, args)
	return res, err
}

// AddFresh is Add that also reports whether the addresses were allocated
// by this call; an exec'd IPAM cannot say, and reports true.
func AddFresh(ctx context.Context, typ string, args *skel.CmdArgs) (*current.Result, bool, error) {
	var r types.Result
	var err error
	fresh := true
	if InProcess(typ) {
		r, fresh, err = inProcess.Add(args)
	} else {
		r, err = execAdd(ctx, typ, args)
	}
	if err != nil {
		return nil, false, fmt.Errorf("ipam %s ADD: %w", typ, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fresh, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("ipam %s result: %v", typ, err), "")
	}
	return res, fresh, nil
}

// Addrs returns the addresses the attachment holds, asked of podns-ipam
// without changing anything; ok is false for an IPAM that cannot be asked
// (exec'd plugins have no such verb).
func Addrs(typ string, args *skel.CmdArgs) (ips []net.IP, ok bool, err error) {
	if !InProcess(typ) {
		return nil, false, nil
	}
	ips, err = inProcess.Addrs(args)
	return ips, err == nil, wrap(typ, "lookup", err)
}

// Del releases the attachment's addresses.
func Del(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if InProcess(typ) {
		return wrap(typ, "DEL", inProcess.Del(args))
	}
	return wrap(typ, "DEL", execNoResult(ctx, typ, "DEL", args, types.ErrInvalidNetworkConfig))
}

// Check asks IPAM to verify the attachment's addresses (prevResult in stdin).
func Check(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if InProcess(typ) {
		return wrap(typ, "CHECK", inProcess.Check(args))
	}
	return wrap(typ, "CHECK", execNoResult(ctx, typ, "CHECK", args, types.ErrInvalidNetworkConfig))
}

// Status asks IPAM whether it can serve an ADD.
func Status(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if InProcess(typ) {
		return wrap(typ, "STATUS", inProcess.Status(args))
	}
	return wrap(typ, "STATUS", execNoResult(ctx, typ, "STATUS", args, types.ErrPluginNotAvailable))
}

// GC asks IPAM to release what valid-attachments (in stdin) does not list.
func GC(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if InProcess(typ) {
		return wrap(typ, "GC", inProcess.GC(args))
	}
	return wrap(typ, "GC", execNoResult(ctx, typ, "GC", args, types.ErrInvalidNetworkConfig))
}

func wrap(typ, verb string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("ipam %s %s: %w", typ, verb, err)
}

// Plugin is the in-process IPAM surface (pkg/ipam's exported verbs).
type Plugin interface {
	Add(*skel.CmdArgs) (r types.Result, fresh bool, err error)
	Addrs(*skel.CmdArgs) ([]net.IP, error)
	Del(*skel.CmdArgs) error
	Check(*skel.CmdArgs) error
	Status(*skel.CmdArgs) error
	GC(*skel.CmdArgs) error
}

// inProcess is set by inprocess.go when pkg/ipam is linked in.
var inProcess Plugin
