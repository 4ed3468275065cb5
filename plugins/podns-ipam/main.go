//go:build linux

// Command podns-ipam is the podns IPAM plugin: host-local-compatible
// configuration, a crash-safe bbolt store, GC and STATUS.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/ipam"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    ipam.CmdDel,
		Check:  ipam.CmdCheck,
		Status: ipam.CmdStatus,
		GC:     ipam.CmdGC,
	}, version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "podns-ipam: IP address management for podns")
}

func cmdAdd(args *skel.CmdArgs) error {
	res, err := ipam.CmdAdd(args)
	if err != nil {
		return err
	}
	conf, err := (&version.ConfigDecoder{}).Decode(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "podns-ipam: decode cniVersion", err.Error())
	}
	return types.PrintResult(res, conf)
}
