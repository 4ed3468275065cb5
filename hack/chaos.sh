#!/usr/bin/env bash
# Reliability scenarios against ./bin on the real kernel (issue 7): kill -9
# storm with the runtime's recovery, churn soak, sandbox faults under
# podnsctl, GC racing ADD/DEL. Prints "N passed, N failed" per scenario and
# exits non-zero on any loss or leak.
#   CHAOS_BUDGET=ci (default, ~4 min) | long (~12 min, >= 2,000 killed operations) | SECONDS
#   CHAOS_SCENARIOS=storm,churn,sandbox,gc
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"
for b in podns podns-ipam podnsctl podns-sandbox; do
	[[ -x bin/$b ]] || die "bin/$b missing: run hack/build.sh (make chaos does)"
done

work=$(mktemp -d /tmp/podns-chaos.XXXXXX)
export CHAOS_MANIFEST="$work/resources"
: >"$CHAOS_MANIFEST"

# The chaos program removes what it made; this trap is the safety net for
# when it dies before its own cleanup. Every resource it made is listed in
# the manifest, so nothing else on the machine is touched.
cleanup() {
	local kind value pid
	set +e +o pipefail # best effort: one miss must not stop the rest
	while read -r kind value; do
		case $kind in
		tag)
			for pid in $(grep -lsa "CHAOS_TAG=$value" /proc/[0-9]*/environ | cut -d/ -f3); do
				kill -9 "$pid" 2>/dev/null || true
			done
			;;
		netns) ip netns del "$value" 2>/dev/null || true ;;
		net)
			ip -j link show 2>/dev/null | jq -r --arg n "net=$value" \
				'.[] | select((.ifalias // "") | startswith("podns ") and (split(" ") | any(. == $n))) | .ifname' |
				while read -r l; do ip link del "$l" 2>/dev/null || true; done
			# The network's chain first (its rules use the sets), then its sets.
			for kind in chain set; do
				nft -j list table inet podns 2>/dev/null | jq -r --arg k "$kind" --arg s "-$value" \
					'.nftables[] | select(has($k)) | .[$k].name | select(endswith($s))' |
					while read -r obj; do nft delete "$kind" inet podns "$obj" 2>/dev/null || true; done
			done
			;;
		bridge) ip link del "$value" 2>/dev/null || true ;;
		dir)
			findmnt -rn -o TARGET | grep -F "$value/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
			rm -rf "$value"
			;;
		esac
	done <"$CHAOS_MANIFEST"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building hack/chaos"
go build -o "$work/chaos" ./hack/chaos
log "running chaos scenarios (budget ${CHAOS_BUDGET:-ci})"
"$work/chaos" -bin "$REPO_ROOT/bin" -scenarios "${CHAOS_SCENARIOS:-storm,churn,sandbox,gc}"
