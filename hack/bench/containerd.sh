#!/usr/bin/env bash
# A private containerd for the bench's scenario 5 (crictl runp/stopp/rmp on
# the same CNI chain as podnsctl). Same set-up as hack/e2e-containerd.sh:
# Debian's containerd + runc, conf/containerd/config.toml rendered with our
# paths, podns-sandbox packed as the pause image; everything under WORK.
#
#   containerd.sh start WORK PAUSE_BIN CNI_BIN_DIR CNI_CONF_DIR CGROUP_PARENT
#   containerd.sh stop  WORK CGROUP_PARENT
#
# start leaves WORK/crictl.yaml and WORK/containerd.pid; stop removes every
# pod, the daemon, its shims, mounts and cgroups, and WORK itself.
source "$(dirname "$0")/../lib.sh"
require_root

cmd=${1:-}
WORK=${2:?usage: containerd.sh start|stop WORK ...}
SOCK=$WORK/containerd/containerd.sock
PAUSE_IMAGE=localhost/podns/pause:bench
RUNC_ROOT=$WORK/runc

cri() { crictl --config "$WORK/crictl.yaml" "$@"; }

alive() {
	local pid
	pid=$(cat "$WORK/containerd.pid" 2>/dev/null) || return 1
	[[ -e /proc/$pid ]] && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

start() {
	local pause_bin=${3:?pause binary} cni_bin=${4:?cni bin dir} cni_conf=${5:?cni conf dir}
	for c in containerd runc ctr crictl jq; do
		command -v "$c" >/dev/null || die "$c is missing (hack/deps.sh and hack/e2e-containerd.sh install it)"
	done
	mkdir -p "$WORK"/{containerd,img/pause,tools}
	go build -C "$REPO_ROOT" -o "$WORK/tools/ociimage" ./hack/e2e/ociimage
	cp "$pause_bin" "$WORK/img/pause/pause"
	"$WORK/tools/ociimage" -rootfs "$WORK/img/pause" -name "$PAUSE_IMAGE" \
		-entrypoint '["/pause"]' -user 65535:65535 -o "$WORK/img/pause.tar"
	{
		cat <<EOT
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$WORK/containerd/debug.sock"
[metrics]
  address = ""

EOT
		sed -e '/^[[:space:]]*#/d' -e '/^version/d' \
			-e "s|^\([[:space:]]*sandbox_image = \).*|\1\"$PAUSE_IMAGE\"|" \
			-e "s|^\([[:space:]]*bin_dir = \).*|\1\"$cni_bin\"|" \
			-e "s|^\([[:space:]]*conf_dir = \).*|\1\"$cni_conf\"|" \
			-e "/^\[plugins.\"io.containerd.grpc.v1.cri\"\]/a\\
  restrict_oom_score_adj = true\\
  disable_apparmor = true\\
  enable_selinux = false\\
  netns_mounts_under_state_dir = true\\
  stream_server_address = \"127.0.0.1\"\\
  stream_server_port = \"0\"" \
			"$REPO_ROOT/conf/containerd/config.toml"
		cat <<EOT

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$RUNC_ROOT"

[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/containerd/opt"
EOT
	} >"$WORK/containerd.toml"
	grep -qF "sandbox_image = \"$PAUSE_IMAGE\"" "$WORK/containerd.toml" || die "rendering conf/containerd/config.toml lost sandbox_image"
	cat >"$WORK/crictl.yaml" <<EOT
runtime-endpoint: unix://$SOCK
image-endpoint: unix://$SOCK
timeout: 60
pull-image-on-create: false
EOT
	[[ -e /run/containerd ]] || touch "$WORK/run-containerd.made"
	# A pull must fail at once rather than reach for a registry.
	HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
		http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy= \
		setsid containerd --config "$WORK/containerd.toml" >>"$WORK/containerd.log" 2>&1 </dev/null &
	echo $! >"$WORK/containerd.pid"
	local i
	for ((i = 0; i < 150; i++)); do
		alive || { tail -n 20 "$WORK/containerd.log" >&2; die "containerd exited"; }
		if cri info 2>/dev/null | jq -e '.status.conditions[] | select(.type == "NetworkReady") | select(.status == true)' >/dev/null 2>&1; then
			ctr --address "$SOCK" -n k8s.io images import "$WORK/img/pause.tar" >/dev/null
			return 0
		fi
		sleep 0.2
	done
	tail -n 20 "$WORK/containerd.log" >&2
	die "containerd did not become ready with its network in 30s"
}

stop() {
	local cg=${3:-} pid p id m d
	set +e
	if alive; then
		cri stopp $(cri pods -q 2>/dev/null) >/dev/null 2>&1
		cri rmp -af >/dev/null 2>&1
		pid=$(cat "$WORK/containerd.pid")
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do alive || break; sleep 0.1; done
		alive && kill -KILL "$pid" 2>/dev/null
	fi
	for id in $(runc --root "$RUNC_ROOT/k8s.io" list -q 2>/dev/null); do
		runc --root "$RUNC_ROOT/k8s.io" delete --force "$id" >/dev/null 2>&1
	done
	# Shims outlive containerd: end the ones serving our socket, by PID.
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == *"-address $SOCK"* ]] || continue
		id=$(tr '\0' '\n' <"/proc/$p/cmdline" | sed -n '/^-id$/{n;p}')
		kill -KILL "$p" 2>/dev/null
		[[ -n $id ]] && rm -f "/run/containerd/s/$(printf '%s' "$SOCK/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
	done
	for m in $(findmnt -rn -o TARGET | grep -F "$WORK" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	if [[ -n $cg ]]; then
		for d in /sys/fs/cgroup/*/"${cg#/}" /sys/fs/cgroup/"${cg#/}"; do
			[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	fi
	[[ -f $WORK/run-containerd.made ]] && rmdir /run/containerd/s /run/containerd 2>/dev/null
	rm -rf --one-file-system "$WORK"
	return 0
}

case $cmd in
start) start "$@" ;;
stop) stop "$@" ;;
*) die "usage: containerd.sh start WORK PAUSE_BIN CNI_BIN_DIR CNI_CONF_DIR | stop WORK [CGROUP_PARENT]" ;;
esac
