//go:build linux

// Command podns is the podns CNI main plugin ("type": "podns").
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cniplugin"
	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/netconf"
)

func main() {
	// DEL re-executes this binary to finish the kernel's slow part of a
	// teardown (pkg/finisher); runtimes never pass arguments to a plugin.
	if len(os.Args) == 2 && os.Args[1] == finisher.Arg {
		os.Exit(finisher.Main())
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cniplugin.Add,
		Del:    cniplugin.Del,
		Check:  cniplugin.Check,
		Status: cniplugin.Status,
		GC:     cniplugin.GC,
	}, version.PluginSupports(netconf.SupportedVersions...), "podns: pod networking (bridge and routed veth) for Kubernetes nodes")
}
