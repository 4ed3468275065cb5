#!/usr/bin/env bash
# Installs podns: the CNI plugins (podns, podns-ipam) into ${PREFIX_BIN:-/opt/cni/bin},
# the other binaries (podnsctl, podns-sandbox, podns-node) into ${PREFIX_SBIN:-/usr/local/bin},
# and conf/10-podns.conflist into ${CONF_DIR:-/etc/cni/net.d} only when that directory holds
# no CNI config yet: a user's file is never overwritten. The default conflist chains the
# portmap plugin; if ${PREFIX_BIN} has none, the v1.10.0 one from hack/deps.sh is copied in.
# Run `make install` (it builds first).
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"

PREFIX_BIN=${PREFIX_BIN:-/opt/cni/bin}
PREFIX_SBIN=${PREFIX_SBIN:-/usr/local/bin}
CONF_DIR=${CONF_DIR:-/etc/cni/net.d}
REF_CNI_DIR=${REF_CNI_DIR:-/usr/local/lib/cni-v1.10.0}

[[ -x bin/podns && -x bin/podns-ipam ]] || die "bin/podns or bin/podns-ipam missing: run make build"

# install -m replaces a file by rename, so a plugin being exec'd meanwhile is never torn.
install -d -m 0755 "$PREFIX_BIN" "$PREFIX_SBIN" "$CONF_DIR"
for b in podns podns-ipam; do
	install -m 0755 "bin/$b" "$PREFIX_BIN/$b"
	log "installed $PREFIX_BIN/$b"
done
for b in podnsctl podns-sandbox podns-node; do
	[[ -x bin/$b ]] || continue
	install -m 0755 "bin/$b" "$PREFIX_SBIN/$b"
	log "installed $PREFIX_SBIN/$b"
done

if [[ ! -x $PREFIX_BIN/portmap ]]; then
	if [[ -x $REF_CNI_DIR/portmap ]]; then
		install -m 0755 "$REF_CNI_DIR/portmap" "$PREFIX_BIN/portmap"
		log "installed $PREFIX_BIN/portmap (reference v1.10.0, chained by the default conflist)"
	else
		log "warning: no portmap in $PREFIX_BIN or $REF_CNI_DIR (run hack/deps.sh); the default conflist chains it"
	fi
fi

shopt -s nullglob
existing=("$CONF_DIR"/*.conf "$CONF_DIR"/*.conflist "$CONF_DIR"/*.json)
shopt -u nullglob
if ((${#existing[@]})); then
	log "kept the CNI config already in $CONF_DIR (${existing[*]}); not installing conf/10-podns.conflist"
else
	install -m 0644 conf/10-podns.conflist "$CONF_DIR/10-podns.conflist"
	log "installed $CONF_DIR/10-podns.conflist (bridge podns0, 10.244.0.0/24, ipMasq, portmap)"
fi
log "podns installed"
