#!/usr/bin/env bash
# Installs what podns's tests and demo need on a fresh Debian 12 machine.
# Idempotent: installs only what is missing.
source "$(dirname "$0")/lib.sh"
require_root

APT_PACKAGES=(iproute2 nftables iptables iputils-ping conntrack containernetworking-plugins
	strace hyperfine containerd runc jq busybox-static util-linux procps kmod openssl curl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
	log "apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || die "Go is not installed (expected /usr/local/go)"
if ! command -v cnitool >/dev/null; then
	log "go install cnitool@v1.3.0"
	go install github.com/containernetworking/cni/cnitool@v1.3.0
fi
# The newest reference plugins (v1.10.0) speak CNI 1.1.0 (STATUS, GC); Debian's
# v1.1.1 in /usr/lib/cni do not. Tests and benchmarks use them from here.
REF_CNI_DIR=/usr/local/lib/cni-v1.10.0
for p in main/bridge main/ptp ipam/host-local meta/portmap meta/bandwidth meta/tuning meta/firewall main/loopback; do
	[[ -x $REF_CNI_DIR/${p#*/} ]] && continue
	log "go install reference plugin $p@v1.10.0 into $REF_CNI_DIR"
	GOBIN=$REF_CNI_DIR go install "github.com/containernetworking/plugins/plugins/$p@v1.10.0"
done
log "dependencies ready"
