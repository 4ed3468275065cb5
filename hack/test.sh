#!/usr/bin/env bash
# Runs podns's test suite as root on the real kernel: unit tests and the
# integration tests in test/ (they use the binaries in ./bin).
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"
export PODNS_BIN_DIR="$REPO_ROOT/bin"
go vet ./...
go test -count=1 -timeout 30m "$@" ./...
