#!/usr/bin/env bash
# A pod network namespace wired by the INSTALLED podns (make install), driven by cnitool:
# a uniquely named netns, cnitool add with the first conflist in ${CONF_DIR:-/etc/cni/net.d}
# (as a runtime picks it), eth0 with its addresses and routes, ping gateway <-> pod,
# cnitool check / status / del, and the netns is removed again (also on failure or Ctrl-C).
source "$(dirname "$0")/lib.sh"
require_root

CONF_DIR=${CONF_DIR:-/etc/cni/net.d}
CNI_BIN=${PREFIX_BIN:-/opt/cni/bin}
command -v cnitool >/dev/null || die "cnitool is missing (run hack/deps.sh)"
command -v jq >/dev/null || die "jq is missing (run hack/deps.sh)"
[[ -x $CNI_BIN/podns ]] || die "$CNI_BIN/podns is missing (run make install)"

shopt -s nullglob
confs=("$CONF_DIR"/*.conflist)
shopt -u nullglob
((${#confs[@]})) || die "no conflist in $CONF_DIR (run make install)"
conf=${confs[0]}
net=$(jq -r .name "$conf")
version=$(jq -r .cniVersion "$conf")
log "network \"$net\" (cniVersion $version) from $conf, plugins from $CNI_BIN"

ns="podns-demo-$$-$RANDOM"
export NETCONFPATH=$CONF_DIR CNI_PATH=$CNI_BIN CNI_IFNAME=eth0 CNI_CONTAINERID="demo$$$RANDOM"
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$ns"
added=0
cleanup() {
	local rc=$?
	if ((added)); then
		log "cleanup: cnitool del $net /var/run/netns/$ns"
		cnitool del "$net" "/var/run/netns/$ns" || rc=1
	fi
	if ip netns list | grep -w "$ns" >/dev/null; then
		log "cleanup: ip netns del $ns"
		ip netns del "$ns" || rc=1
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "ip netns add $ns"
ip netns add "$ns"

log "cnitool add $net /var/run/netns/$ns"
added=1
result=$(cnitool add "$net" "/var/run/netns/$ns")
echo "$result" | jq -c '{ips: [.ips[] | {address, gateway}], interfaces: [.interfaces[] | .name]}'

log "inside the pod: eth0, its addresses and routes"
ip netns exec "$ns" ip -br addr show dev eth0
ip netns exec "$ns" ip route show
if echo "$result" | jq -e '.ips[] | select(.address | contains(":"))' >/dev/null; then
	ip netns exec "$ns" ip -6 route show
fi

pod_ip=$(echo "$result" | jq -r '[.ips[] | select(.address | contains(":") | not)][0].address // .ips[0].address' | cut -d/ -f1)
gw=$(echo "$result" | jq -r '[.ips[] | select(.address | contains(":") | not)][0].gateway // .ips[0].gateway')
log "pod -> gateway: ping $gw"
ip netns exec "$ns" ping -c 2 -W 2 "$gw"
log "host -> pod: ping $pod_ip"
ping -c 2 -W 2 "$pod_ip"

log "cnitool check $net"
cnitool check "$net" "/var/run/netns/$ns"
if [[ $version == 1.1.0 ]]; then
	log "cnitool status $net"
	cnitool status "$net" "/var/run/netns/$ns"
fi

log "cnitool del $net"
cnitool del "$net" "/var/run/netns/$ns"
added=0
if ip netns exec "$ns" ip link show eth0 >/dev/null 2>&1; then
	die "eth0 is still in $ns after DEL"
fi
log "eth0 is gone from $ns; removing the netns"
