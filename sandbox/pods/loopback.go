//go:build linux

package pods

import (
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// loopbackUp brings lo up inside the network namespace at path, as
// kubelet-era runtimes do, so containers of a pod reach each other on
// 127.0.0.1 whatever the CNI chain contains.
func loopbackUp(path string) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	})
}
