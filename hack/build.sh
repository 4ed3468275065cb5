#!/usr/bin/env bash
# Builds every podns binary into ./bin, static and stripped.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/ ./plugins/... ./sandbox/cmd/...
log "built: $(cd bin && echo *)"
