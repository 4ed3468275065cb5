//go:build linux

// Command podns is the podns CNI main plugin ("type": "podns").
//
// A plugin lives for a few milliseconds, mostly in the kernel, so the Go
// runtime is kept small: it neither sizes GOMAXPROCS from cgroup CPU
// limits nor watches them, and it runs on one P from early in package
// initialisation (pkg/oneproc). A second P let ADD's
// in-process IPAM commit run beside the veth work, but its idle spinning
// and wake-ups cost more CPU than the overlap saved: 64 ADDs at once took
// 15% longer with two, one ADD alone the same (docs/plugin.md, Speed).
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cniplugin"
	"github.com/podns/podns/pkg/finisher"
	_ "github.com/podns/podns/pkg/heir/start" // the exit is reported before the address space is freed
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/pkg/netconf"
	_ "github.com/podns/podns/pkg/oneproc"
)

func main() {
	// DEL re-executes this binary to finish the kernel's slow part of a
	// teardown (pkg/finisher); runtimes never pass arguments to a plugin.
	if len(os.Args) == 2 && os.Args[1] == finisher.Arg {
		os.Exit(finisher.Main())
	}
	// Every verb is this process's last act.
	masq.ReleaseAfterExit()
	funcs := skel.CNIFuncs{
		Add:    cniplugin.Add,
		Del:    cniplugin.Del,
		Check:  cniplugin.Check,
		Status: cniplugin.Status,
		GC:     cniplugin.GC,
	}
	// DEL's finisher starts before anything is read, so the child's own
	// process start overlaps all of DEL's work up to the delete. A DEL
	// with nothing to delete cancels it; if skel fails before DEL runs,
	// this process's exit lets it go just the same.
	if os.Getenv("CNI_COMMAND") == "DEL" {
		funcs.Del = cniplugin.DelWith(finisher.Start())
	}
	skel.PluginMainFuncs(funcs, version.PluginSupports(netconf.SupportedVersions...), "podns: pod networking (bridge and routed veth) for Kubernetes nodes")
}
