# Shared helpers for hack/ scripts; source it, do not run it.
# shellcheck shell=bash
set -euo pipefail
# With pipefail, `cmd | grep -q x` can fail although x is there: grep -q exits
# at its first match and cmd dies of SIGPIPE on its next write (it made
# `/bin/busybox --list | grep -qx httpd` fail in one CI run). Pipes into grep
# here send its output to /dev/null instead; `bash -c` does not inherit
# pipefail.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="/usr/local/go/bin:${HOME:-/root}/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
require_root() { [[ $(id -u) -eq 0 ]] || die "$0 must run as root (it uses real network namespaces)"; }

# The reference plugins (bridge's ipMasq, portmap) make iptables' nat table
# with base chains and, by design, never remove it. note_nat_tables records
# which nat tables are missing now; remove_new_nat_tables later drops those
# that appeared and hold nothing but such chains, so a run leaves no
# nftables table behind.
NAT_TABLES_BEFORE_MISSING=()
note_nat_tables() {
	local fam
	NAT_TABLES_BEFORE_MISSING=()
	for fam in ip ip6; do
		nft list table "$fam" nat >/dev/null 2>&1 || NAT_TABLES_BEFORE_MISSING+=("$fam")
	done
}
remove_new_nat_tables() {
	local fam
	for fam in "${NAT_TABLES_BEFORE_MISSING[@]}"; do
		nft list table "$fam" nat >/dev/null 2>&1 || continue
		if nft list table "$fam" nat | grep -E '^\s*chain ' | grep -vE 'chain (CNI-HOSTPORT-[A-Z]+|PREROUTING|POSTROUTING|OUTPUT|INPUT) \{' >/dev/null; then
			log "keeping table $fam nat: it holds chains the reference plugins did not make"
			continue
		fi
		nft delete table "$fam" nat && log "removed table $fam nat left by the reference plugins"
	done
}
