#!/usr/bin/env bash
# The main job end to end, on the installed podns (make install ran first):
# a pod network driven by cnitool, then pods with containers through podnsctl.
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"

# podns creates its bridge (and its masquerade chain and sets) on the first
# ADD and, like the reference bridge plugin, keeps them after the last DEL.
# When the demo is what made the bridge, and no pod is left on it, remove
# it, and let CNI GC (a 1.1.0 verb: the conflist is sent as 1.1.0) drop the
# network's nftables state, so the demo leaves the node as it found it.
conf=$(ls "${CONF_DIR:-/etc/cni/net.d}"/*.conflist 2>/dev/null | head -n1 || true)
bridge=""
if [[ -n $conf ]]; then
	bridge=$(jq -r '[.plugins[] | select(.type == "podns") | select((.mode // "bridge") == "bridge") | (.bridge // "podns0")][0] // empty' "$conf")
fi
bridge_was_there=0
[[ -n $bridge ]] && ip link show "$bridge" >/dev/null 2>&1 && bridge_was_there=1
remove_demo_bridge() {
	[[ -n $bridge && $bridge_was_there == 0 ]] || return 0
	ip link show "$bridge" >/dev/null 2>&1 || return 0
	[[ -z $(ip -o link show master "$bridge") ]] || return 0
	ip link del "$bridge" && log "removed bridge $bridge, which the demo created"
	local gcdir
	gcdir=$(mktemp -d)
	# In an EXIT trap under set -e: every failure goes to the warning, so
	# the temp dir is always removed.
	if jq '.cniVersion = "1.1.0"' "$conf" >"$gcdir/$(basename "$conf")" &&
		NETCONFPATH=$gcdir CNI_PATH=${PREFIX_BIN:-/opt/cni/bin} cnitool gc "$(jq -r .name "$conf")" /nonexistent; then
		log "CNI GC: no pod left; the network's masquerade chain and sets removed"
	else
		log "warning: CNI GC of the demo network failed; its chain may be left in table inet podns"
	fi
	rm -rf "$gcdir"
}
trap remove_demo_bridge EXIT

log "part 1: a pod network namespace wired by the installed podns, driven by cnitool"
hack/demo-cnitool.sh
log "part 2: two pods with two containers each, through podnsctl and podns-sandbox"
hack/demo-pods.sh
log "demo done: everything it created has been removed"
