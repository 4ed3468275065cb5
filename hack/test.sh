#!/usr/bin/env bash
# Runs podns's test suite as root on the real kernel: unit tests and the
# integration tests in test/ (they use the binaries in ./bin).
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"
export PODNS_BIN_DIR="$REPO_ROOT/bin"

# The reference portmap (chained in some tests) installs CNI-HOSTPORT-* base
# chains in iptables' nat table and, by design, never removes them. When the
# table was not there before the run, remove it after all packages are done,
# so a test run leaves no nftables table behind.
nat_tables=()
for fam in ip ip6; do
	nft list table "$fam" nat >/dev/null 2>&1 || nat_tables+=("$fam")
done
remove_portmap_nat() {
	local fam
	for fam in "${nat_tables[@]}"; do
		nft list table "$fam" nat >/dev/null 2>&1 || continue
		# Only a table holding nothing but portmap's chains is ours to drop.
		if nft list table "$fam" nat | grep -E '^\s*chain ' | grep -qvE 'chain (CNI-HOSTPORT-[A-Z]+|PREROUTING|POSTROUTING|OUTPUT) \{'; then
			log "keeping table $fam nat: it holds chains portmap did not make"
			continue
		fi
		nft delete table "$fam" nat && log "removed table $fam nat left by the reference portmap"
	done
}
trap remove_portmap_nat EXIT

go vet ./...
go test -count=1 -timeout 30m "$@" ./...
