#!/usr/bin/env bash
# Runs podns's test suite as root on the real kernel: unit tests and the
# integration tests in test/ (they use the binaries in ./bin).
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"
export PODNS_BIN_DIR="$REPO_ROOT/bin"

# The reference portmap (chained in some tests) leaves iptables' nat table
# behind; a run leaves no nftables table (hack/lib.sh).
note_nat_tables
trap remove_new_nat_tables EXIT

go vet ./...
go test -count=1 -timeout 30m "$@" ./...
# The bench tool is its own module (gonum/plot stays out of podns's go.mod);
# its tests need no root and no network.
(cd hack/bench && go test -count=1 ./...)
