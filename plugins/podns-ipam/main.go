//go:build linux

// Command podns-ipam is the podns IPAM plugin: host-local-compatible
// configuration, a crash-safe bbolt store, GC and STATUS.
//
// Outside CNI it has two operator commands on a network's store directory
// (<dataDir>/<network>): "podns-ipam verify DIR" checks its consistency and
// "podns-ipam list DIR" prints "address containerID ifname" lines.
package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cniresult"
	_ "github.com/podns/podns/pkg/heir/start" // the exit is reported before the address space is freed
	"github.com/podns/podns/pkg/ipam"
	"github.com/podns/podns/pkg/ipam/store"
	_ "github.com/podns/podns/pkg/oneproc"
)

func main() {
	if len(os.Args) == 3 && os.Getenv("CNI_COMMAND") == "" {
		os.Exit(tool(os.Args[1], os.Args[2]))
	}
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
	return cniresult.Print(os.Stdout, res, conf)
}

func tool(cmd, dir string) int {
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(os.Stderr, "podns-ipam %s: %v\n", cmd, err)
		return 1
	}
	switch cmd {
	case "verify":
		if err := store.Check(dir, 10*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "podns-ipam verify: %v\n", err)
			return 1
		}
		return 0
	case "list":
		s, err := store.OpenExisting(dir, 10*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "podns-ipam list: %v\n", err)
			return 1
		}
		defer s.Close()
		var lines []string
		s.View(func(tx *store.Tx) error {
			for a, o := range tx.Allocations() {
				lines = append(lines, fmt.Sprintf("%s %s %s", a, o.ContainerID, o.IfName))
			}
			return nil
		})
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Println(l)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "podns-ipam: unknown command %q (verify DIR | list DIR)\n", cmd)
	return 2
}
