//go:build linux

// Command podns is the podns CNI main plugin ("type": "podns").
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cniplugin"
	"github.com/podns/podns/pkg/netconf"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cniplugin.Add,
		Del:    cniplugin.Del,
		Check:  cniplugin.Check,
		Status: cniplugin.Status,
		GC:     cniplugin.GC,
	}, version.PluginSupports(netconf.SupportedVersions...), "podns: pod networking (bridge and routed veth) for Kubernetes nodes")
}
