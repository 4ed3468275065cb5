package agent

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/podns/podns/pkg/node/routes"
)

// fromNode extracts what the agent uses from a Node: its pod CIDRs (spec.podCIDRs,
// or the legacy spec.podCIDR) and InternalIPs. Unparsable values are dropped
// and returned as warnings.
func fromNode(n *corev1.Node) (routes.Node, []string) {
	out := routes.Node{Name: n.Name}
	var warns []string
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			warns = append(warns, "node "+n.Name+": bad pod CIDR "+c)
			continue
		}
		out.PodCIDRs = append(out.PodCIDRs, p.Masked())
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			warns = append(warns, "node "+n.Name+": bad InternalIP "+a.Address)
			continue
		}
		out.InternalIPs = append(out.InternalIPs, ip.Unmap())
	}
	return out, warns
}
