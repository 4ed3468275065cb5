//go:build linux

// Command podns is the podns CNI main plugin ("type": "podns").
//
// A plugin lives for a few milliseconds, mostly in the kernel: the Go
// runtime does not read cgroup CPU limits at start (a tenth of its start-up
// here) and runs on one P, which halves the threads it wakes and the
// context switches between them (-10% CPU per ADD; with 64 ADDs at once
// the node's cores are the limit).
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cniplugin"
	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/netconf"
)

func main() {
	runtime.GOMAXPROCS(1)
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
