#!/usr/bin/env bash
# Two pods with two containers each on the INSTALLED podnsctl and CNI
# config (/opt/cni/bin, /etc/cni/net.d): the namespace table, pod-to-pod
# ping, then everything is removed (also on failure or Ctrl-C).
# Overrides: PODNSCTL (binary), PODNS_CNI_CONF_DIR, PODNS_CNI_BIN_DIR,
# PODNS_STATE_DIR (podnsctl reads them).
source "$(dirname "$0")/lib.sh"
require_root

PODNSCTL="${PODNSCTL:-$(command -v podnsctl || true)}"
[[ -x "$PODNSCTL" ]] || die "podnsctl is not installed (run make install)"
conf_dir="${PODNS_CNI_CONF_DIR:-/etc/cni/net.d}"
compgen -G "$conf_dir/*.conf*" >/dev/null || die "no CNI config in $conf_dir (run make install)"
command -v jq >/dev/null || die "jq is missing (run hack/deps.sh)"

work="$(mktemp -d)"
pods=()
cleanup() {
	local rc=$?
	for p in "${pods[@]}"; do
		"$PODNSCTL" rmp -f "$p" >/dev/null 2>&1 || log "warning: could not remove pod $p"
	done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT INT TERM

ctl() { "$PODNSCTL" "$@"; }

# pod NAME PIDMODE: creates a pod from a crictl-style config, prints its ID.
pod() {
	local name=$1 pid=$2 id
	cat >"$work/$name.yaml" <<-YAML
	metadata: {name: $name, namespace: demo, uid: demo-$name-$$, attempt: 0}
	hostname: $name
	dns_config: {servers: [10.96.0.10], searches: [demo.svc.cluster.local]}
	linux:
	  sysctls: {net.ipv4.ping_group_range: "0 2147483647"}
	  security_context:
	    namespace_options: {network: POD, pid: $pid, ipc: POD}
	YAML
	id="$(ctl runp "$work/$name.yaml" | tail -n1)"
	pods+=("$id")
	echo "$id"
}

log "creating pod 'frontend' (shared PID namespace) and pod 'backend' (one PID namespace per container)"
pod frontend POD >/dev/null
pod backend CONTAINER >/dev/null
for p in frontend backend; do
	mkdir -p "$work/www-$p"
	echo "hello from $p" >"$work/www-$p/index.html"
	ctl run -d --name web "demo/$p" -- busybox httpd -f -p 8080 -h "$work/www-$p" >/dev/null
	ctl run -d --name sidecar "demo/$p" -- sleep 3600 >/dev/null
done

log "pods and containers"
ctl pods
ctl ps

log "namespaces of every process: containers of a pod share uts/ipc/net (and pid in frontend), never mnt; pods share nothing"
ctl ns

frontend_ip="$(ctl inspectp -o json demo/frontend | jq -r '.ips[0]' | cut -d/ -f1)"
backend_ip="$(ctl inspectp -o json demo/backend | jq -r '.ips[0]' | cut -d/ -f1)"
log "frontend is $frontend_ip, backend is $backend_ip"

log "frontend/sidecar -> backend: ping and HTTP across pods"
ctl exec demo/frontend/sidecar -- ping -c 3 -W 2 "$backend_ip"
ctl exec demo/frontend/sidecar -- busybox wget -q -O- "http://$backend_ip:8080/"

log "backend/sidecar -> backend/web on 127.0.0.1 (same pod, same netns)"
ctl exec demo/backend/sidecar -- busybox wget -q -O- http://127.0.0.1:8080/

log "hostname and SysV IPC: a queue made in frontend/web is seen by frontend/sidecar, not by backend"
ctl exec demo/frontend/web -- ipcmk -Q
echo "frontend/sidecar sees $(ctl exec demo/frontend/sidecar -- ipcs -q | grep -c '^0x') queue(s), hostname $(ctl exec demo/frontend/sidecar -- hostname)"
echo "backend/sidecar sees $(ctl exec demo/backend/sidecar -- ipcs -q | grep -c '^0x' || true) queue(s), hostname $(ctl exec demo/backend/sidecar -- hostname)"

log "removing the pods"
for p in "${pods[@]}"; do ctl rmp "$p"; done
pods=()
log "done: no pod, container, netns, veth or mount of this demo is left"
