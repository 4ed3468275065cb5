#!/usr/bin/env bash
# Builds etcd and kube-apiserver from Go modules (once, cached) and starts or
# stops them on 127.0.0.1 for podns's multi-node tests.
#
#   hack/kube-apiserver.sh build                  build into $PODNS_CACHE/kube/bin (no-op when cached)
#   hack/kube-apiserver.sh start DIR              start etcd + kube-apiserver with state in DIR (must not exist);
#                                                 writes DIR/kubeconfig, DIR/agent.kubeconfig, DIR/env
#   hack/kube-apiserver.sh restart-apiserver DIR  stop and start kube-apiserver only (same port, same etcd)
#   hack/kube-apiserver.sh stop DIR               stop both and remove DIR
#
# `go install` refuses both modules (their go.mod files carry replace
# directives), so each is built from a scratch module that requires it; for
# kubernetes every staging module it requires at v0.0.0 is replaced by the
# published v0.X.Y that matches the release.
source "$(dirname "$0")/lib.sh"

ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CACHE="${PODNS_CACHE:-/var/cache/podns}/kube"
KBIN="$CACHE/bin"

build_etcd() {
	[[ -x $KBIN/etcd-$ETCD_VERSION ]] && return 0
	local src="$CACHE/src/etcd-$ETCD_VERSION"
	log "building etcd $ETCD_VERSION (cached in $KBIN)"
	rm -rf "$src" && mkdir -p "$src" "$KBIN"
	(
		cd "$src"
		go mod init podns.local/etcd-build >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 15 go build -trimpath -ldflags '-s -w' \
			-o "$KBIN/etcd-$ETCD_VERSION.tmp" go.etcd.io/etcd/server/v3
	)
	mv "$KBIN/etcd-$ETCD_VERSION.tmp" "$KBIN/etcd-$ETCD_VERSION"
}

build_kube() {
	[[ -x $KBIN/kube-apiserver-$KUBE_VERSION ]] && return 0
	local src="$CACHE/src/kubernetes-$KUBE_VERSION" staging="v0.${KUBE_VERSION#v1.}"
	log "building kube-apiserver $KUBE_VERSION with staging modules $staging (cached in $KBIN)"
	rm -rf "$src" && mkdir -p "$src" "$KBIN"
	(
		cd "$src"
		go mod download "k8s.io/kubernetes@$KUBE_VERSION"
		local kmod
		kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
		{
			echo "module podns.local/kube-build"
			echo
			echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
			echo
			echo "require k8s.io/kubernetes $KUBE_VERSION"
			echo
			echo "replace ("
			awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { printf "\t%s => %s '"$staging"'\n", $1, $1 }' "$kmod"
			echo ")"
		} >go.mod
		GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION"
		CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 15 go build -trimpath -ldflags '-s -w' \
			-o "$KBIN/kube-apiserver-$KUBE_VERSION.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	)
	mv "$KBIN/kube-apiserver-$KUBE_VERSION.tmp" "$KBIN/kube-apiserver-$KUBE_VERSION"
}

cmd_build() {
	local t0=$SECONDS
	build_etcd
	build_kube
	log "etcd and kube-apiserver ready in $KBIN ($((SECONDS - t0))s)"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Htln "sport = :$p" | grep . >/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

wait_http() { # url cacert token seconds
	local url=$1 ca=$2 token=$3 n=$(($4 * 10))
	for _ in $(seq 1 "$n"); do
		if curl -fsS --cacert "$ca" ${token:+-H "Authorization: Bearer $token"} "$url" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

start_apiserver() { # dir
	local dir=$1
	# shellcheck disable=SC1091
	source "$dir/env"
	setsid "$KBIN/kube-apiserver-$KUBE_VERSION" \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
		--token-auth-file="$dir/pki/tokens.csv" --authorization-mode=RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
		--service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none \
		--cert-dir="$dir/pki" --enable-priority-and-fairness=false --allow-privileged=true \
		</dev/null >>"$dir/kube-apiserver.log" 2>&1 &
	echo $! >"$dir/kube-apiserver.pid"
	if ! wait_http "https://127.0.0.1:$APISERVER_PORT/readyz" "$dir/pki/apiserver.crt" "$ADMIN_TOKEN" 60; then
		tail -n 30 "$dir/kube-apiserver.log" >&2
		die "kube-apiserver did not become ready (log: $dir/kube-apiserver.log)"
	fi
}

stop_pid() { # pidfile
	[[ -f $1 ]] || return 0
	local pid
	pid=$(cat "$1")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

kubeconfig() { # port ca token
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority: $2
users:
- name: user
  user:
    token: $3
contexts:
- name: local
  context: {cluster: local, user: user}
current-context: local
EOF
}

cmd_start() {
	local dir=${1:?usage: start DIR}
	[[ -e $dir ]] && die "$dir already exists"
	[[ -x $KBIN/etcd-$ETCD_VERSION && -x $KBIN/kube-apiserver-$KUBE_VERSION ]] || cmd_build
	mkdir -p "$dir/pki" "$dir/etcd"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$dir/pki/apiserver.key" -out "$dir/pki/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
	openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
	local admin agent
	admin=$(openssl rand -hex 16)
	agent=$(openssl rand -hex 16)
	# The agent's token maps to the identity the DaemonSet's ServiceAccount has,
	# so the ClusterRole in conf/kind is what the tests exercise.
	printf '%s,admin,admin,"system:masters"\n%s,system:serviceaccount:kube-system:podns-node,podns-node,"system:serviceaccounts,system:serviceaccounts:kube-system"\n' \
		"$admin" "$agent" >"$dir/pki/tokens.csv"
	chmod 600 "$dir/pki/"*
	local etcd_port peer_port api_port
	etcd_port=$(free_port)
	peer_port=$(free_port)
	api_port=$(free_port)
	cat >"$dir/env" <<EOF
ETCD_PORT=$etcd_port
APISERVER_PORT=$api_port
ADMIN_TOKEN=$admin
AGENT_TOKEN=$agent
KUBECONFIG=$dir/kubeconfig
AGENT_KUBECONFIG=$dir/agent.kubeconfig
EOF
	kubeconfig "$api_port" "$dir/pki/apiserver.crt" "$admin" >"$dir/kubeconfig"
	kubeconfig "$api_port" "$dir/pki/apiserver.crt" "$agent" >"$dir/agent.kubeconfig"
	setsid "$KBIN/etcd-$ETCD_VERSION" --name podns-test --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "podns-test=http://127.0.0.1:$peer_port" --log-level warn \
		</dev/null >>"$dir/etcd.log" 2>&1 &
	echo $! >"$dir/etcd.pid"
	local ok=
	for _ in $(seq 1 300); do
		if curl -fsS "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1; then ok=1 && break; fi
		sleep 0.1
	done
	[[ -n $ok ]] || { tail -n 30 "$dir/etcd.log" >&2; cmd_stop "$dir"; die "etcd did not start"; }
	local t0=$SECONDS
	( start_apiserver "$dir" ) || { cmd_stop "$dir"; die "kube-apiserver did not start"; }
	log "kube-apiserver ready on https://127.0.0.1:$api_port in $((SECONDS - t0))s (state: $dir)"
}

cmd_restart_apiserver() {
	local dir=${1:?usage: restart-apiserver DIR}
	stop_pid "$dir/kube-apiserver.pid"
	start_apiserver "$dir"
}

cmd_stop() {
	local dir=${1:?usage: stop DIR}
	[[ -d $dir ]] || return 0
	stop_pid "$dir/kube-apiserver.pid"
	stop_pid "$dir/etcd.pid"
	rm -rf "$dir"
}

case "${1:-}" in
build) cmd_build ;;
start) cmd_start "${2:-}" ;;
restart-apiserver) cmd_restart_apiserver "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
*) die "usage: $0 build | start DIR | restart-apiserver DIR | stop DIR" ;;
esac
