#!/usr/bin/env bash
# gofmt, go vet and a tidy go.mod: what every commit must pass.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[[ -z $unformatted ]] || die "gofmt needed: $unformatted"
go vet ./...
(cd hack/bench && go vet ./...)
cp go.mod /tmp/podns-go.mod.$$; cp go.sum /tmp/podns-go.sum.$$
go mod tidy
if ! diff -q go.mod /tmp/podns-go.mod.$$ >/dev/null || ! diff -q go.sum /tmp/podns-go.sum.$$ >/dev/null; then
	mv /tmp/podns-go.mod.$$ go.mod; mv /tmp/podns-go.sum.$$ go.sum
	die "go mod tidy changes go.mod/go.sum"
fi
rm -f /tmp/podns-go.mod.$$ /tmp/podns-go.sum.$$
log "verify ok"
