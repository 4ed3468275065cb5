package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// Annotations the kubelet's kubenet and the bandwidth plugin convention use.
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// Bandwidth returns the pod's ingress and egress limits in bits per second
// (0 when unset) from the kubernetes.io/*-bandwidth annotations.
func Bandwidth(ann map[string]string) (ingress, egress uint64, err error) {
	if v, ok := ann[IngressBandwidthAnnotation]; ok {
		if ingress, err = parseQuantity(v); err != nil {
			return 0, 0, fmt.Errorf("annotation %s: %w", IngressBandwidthAnnotation, err)
		}
	}
	if v, ok := ann[EgressBandwidthAnnotation]; ok {
		if egress, err = parseQuantity(v); err != nil {
			return 0, 0, fmt.Errorf("annotation %s: %w", EgressBandwidthAnnotation, err)
		}
	}
	return ingress, egress, nil
}

// parseQuantity parses the subset of Kubernetes resource quantities that
// bandwidth annotations use: an integer with an optional SI or binary suffix.
func parseQuantity(s string) (uint64, error) {
	suffixes := []struct {
		s string
		m uint64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	}
	mult := uint64(1)
	num := s
	for _, sf := range suffixes {
		if strings.HasSuffix(s, sf.s) {
			num, mult = strings.TrimSuffix(s, sf.s), sf.m
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid bandwidth %q (want e.g. 10M)", s)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("bandwidth %q too large", s)
	}
	return n * mult, nil
}
