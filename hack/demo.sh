#!/usr/bin/env bash
# The main job end to end, on the installed podns (make install ran first):
# a pod network driven by cnitool, then pods with containers through podnsctl.
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"
log "part 1: a pod network namespace wired by the installed podns, driven by cnitool"
hack/demo-cnitool.sh
log "part 2: two pods with two containers each, through podnsctl and podns-sandbox"
hack/demo-pods.sh
log "demo done: everything it created has been removed"
