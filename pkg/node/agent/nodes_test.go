package agent

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFromNode(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "w1"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:10:244:1::/64"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "w1"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
			{Type: corev1.NodeInternalIP, Address: "172.18.0.3"},
			{Type: corev1.NodeInternalIP, Address: "fc00:f853::3"},
			{Type: corev1.NodeInternalIP, Address: "garbage"},
		}},
	}
	got, warns := fromNode(n)
	if got.Name != "w1" || !slices.Equal(got.PodCIDRs, []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")}) {
		t.Fatalf("pod CIDRs %v", got.PodCIDRs)
	}
	if !slices.Equal(got.InternalIPs, []netip.Addr{netip.MustParseAddr("172.18.0.3"), netip.MustParseAddr("fc00:f853::3")}) {
		t.Fatalf("InternalIPs %v (ExternalIP must not be used)", got.InternalIPs)
	}
	if len(warns) != 1 {
		t.Fatalf("warnings %v", warns)
	}
	// Legacy single-stack field only.
	n.Spec.PodCIDRs = nil
	got, _ = fromNode(n)
	if len(got.PodCIDRs) != 1 || got.PodCIDRs[0].String() != "10.244.1.0/24" {
		t.Fatalf("legacy podCIDR: %v", got.PodCIDRs)
	}
}
