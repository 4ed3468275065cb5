#!/usr/bin/env bash
# Multi-node test: builds (once, cached) and starts etcd + kube-apiserver on
# 127.0.0.1, then runs test/multinode: three simulated nodes (network
# namespaces on a shared underlay bridge) each with its own podns-node,
# pods attached through podns, and the checks printed one by one.
#   PODNS_CACHE=/var/cache/podns   where the API server build is cached
#   PODNS_MULTINODE_CNI=reference  use the reference bridge + host-local instead of podns + podns-ipam
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"

t0=$SECONDS
hack/kube-apiserver.sh build
log "API server binaries ready ($((SECONDS - t0))s)"
[[ -x bin/podns-node && -x bin/podns && -x bin/podns-ipam ]] || hack/build.sh

state=$(mktemp -d /tmp/podns-kube.XXXXXX)
rmdir "$state"
trap 'hack/kube-apiserver.sh stop "$state"' EXIT
hack/kube-apiserver.sh start "$state"

export PODNS_KUBE_DIR="$state" PODNS_BIN_DIR="$REPO_ROOT/bin"
t1=$SECONDS
rc=0
go test -count=1 -tags multinode -timeout 10m -v ./test/multinode/ || rc=$?
log "multinode tests took $((SECONDS - t1))s (total $((SECONDS - t0))s)"
exit "$rc"
