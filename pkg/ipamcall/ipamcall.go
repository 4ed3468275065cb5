//go:build linux

// Package ipamcall hands a verb to the network's IPAM plugin. podns-ipam is
// called in-process (no fork/exec on the hot path); any other ipam.type is
// exec'd from CNI_PATH as the spec describes, with the same stdin and the
// caller's CNI_* environment.
package ipamcall

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// InProcessType is the ipam.type served without exec.
const InProcessType = "podns-ipam"

// notFound turns invoke's "failed to find plugin" into an error that says
// which plugin and where it was looked for, with code.
func notFound(typ string, err error, code uint) error {
	var te *types.Error
	if errors.As(err, &te) {
		return err
	}
	return types.NewError(code, fmt.Sprintf("ipam plugin %q: %v", typ, err), "looked in CNI_PATH")
}

func isFindErr(err error) bool {
	var te *types.Error
	return err != nil && !errors.As(err, &te)
}

// Add allocates addresses for the attachment.
func Add(ctx context.Context, typ string, args *skel.CmdArgs) (*current.Result, error) {
	var r types.Result
	var err error
	if typ == InProcessType && inProcess != nil {
		r, err = inProcess.Add(args)
	} else {
		r, err = invoke.DelegateAdd(ctx, typ, args.StdinData, nil)
		if isFindErr(err) && r == nil {
			return nil, notFound(typ, err, types.ErrInvalidNetworkConfig)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ipam %s ADD: %w", typ, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("ipam %s result: %v", typ, err), "")
	}
	return res, nil
}

// Del releases the attachment's addresses.
func Del(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if typ == InProcessType && inProcess != nil {
		return wrap(typ, "DEL", inProcess.Del(args))
	}
	return execNoResult(typ, "DEL", args, types.ErrInvalidNetworkConfig,
		func() error { return invoke.DelegateDel(ctx, typ, args.StdinData, nil) })
}

// Check asks IPAM to verify the attachment's addresses (prevResult in stdin).
func Check(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if typ == InProcessType && inProcess != nil {
		return wrap(typ, "CHECK", inProcess.Check(args))
	}
	return execNoResult(typ, "CHECK", args, types.ErrInvalidNetworkConfig,
		func() error { return invoke.DelegateCheck(ctx, typ, args.StdinData, nil) })
}

// Status asks IPAM whether it can serve an ADD.
func Status(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if typ == InProcessType && inProcess != nil {
		return wrap(typ, "STATUS", inProcess.Status(args))
	}
	return execNoResult(typ, "STATUS", args, types.ErrPluginNotAvailable,
		func() error { return invoke.DelegateStatus(ctx, typ, args.StdinData, nil) })
}

// GC asks IPAM to release what valid-attachments (in stdin) does not list.
func GC(ctx context.Context, typ string, args *skel.CmdArgs) error {
	if typ == InProcessType && inProcess != nil {
		return wrap(typ, "GC", inProcess.GC(args))
	}
	return execNoResult(typ, "GC", args, types.ErrInvalidNetworkConfig,
		func() error { return invoke.DelegateGC(ctx, typ, args.StdinData, nil) })
}

func execNoResult(typ, verb string, args *skel.CmdArgs, findCode uint, call func() error) error {
	err := call()
	if isFindErr(err) {
		return notFound(typ, err, findCode)
	}
	return wrap(typ, verb, err)
}

func wrap(typ, verb string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("ipam %s %s: %w", typ, verb, err)
}

// Plugin is the in-process IPAM surface (pkg/ipam's exported verbs).
type Plugin interface {
	Add(*skel.CmdArgs) (types.Result, error)
	Del(*skel.CmdArgs) error
	Check(*skel.CmdArgs) error
	Status(*skel.CmdArgs) error
	GC(*skel.CmdArgs) error
}

// inProcess is set by inprocess.go when pkg/ipam is linked in.
var inProcess Plugin
