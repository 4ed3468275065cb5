#!/usr/bin/env bash
# Runs every podns fuzz target for FUZZTIME each (go test -fuzz takes one
# target per invocation). Seed corpora live in each package's testdata/fuzz
# and in f.Add calls; plain `go test ./...` replays them.
#   FUZZTIME=60s       time per target (go test -fuzztime syntax)
#   FUZZ_JOBS=1        targets fuzzed at once
#   FUZZ_PARALLEL=1    workers per target (-parallel)
#   FUZZ_TARGETS="pkg:Func ..."  a subset
#   FUZZ_LOG_DIR=dir   keep each target's output (default: a temp dir)
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

FUZZTIME=${FUZZTIME:-60s}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
TARGETS=(${FUZZ_TARGETS:-
	./pkg/netconf:FuzzParse
	./pkg/netconf:FuzzParseArgs
	./pkg/netconf:FuzzDecodeMatchesUnmarshal
	./pkg/ipam:FuzzLoadConfig
	./pkg/ipam:FuzzDecodeMatchesUnmarshal
	./pkg/cniplugin:FuzzResultConversion
	./pkg/cniresult:FuzzEquivalence
	./pkg/jsonstr:FuzzAppend
	./sandbox/spec:FuzzParsePod
	./sandbox/spec:FuzzParseContainer
	./sandbox/spec:FuzzDNSSubdomain
	./sandbox/spec/cri:FuzzDecodeSame
	./sandbox/state:FuzzDecodePod
	./sandbox/state:FuzzEncodePod
})

logdir=${FUZZ_LOG_DIR:-}
if [[ -z $logdir ]]; then
	logdir=$(mktemp -d /tmp/podns-fuzz.XXXXXX)
	trap 'rm -rf "$logdir"' EXIT
fi
mkdir -p "$logdir"

fuzz_one() {
	local pkg=${1%%:*} fn=${1##*:} out="$logdir/${1//[\/:.]/_}.log" start rc
	start=$(date +%s)
	set +e
	nice go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZ_PARALLEL" "$pkg" >"$out" 2>&1
	rc=$?
	set -e
	local execs
	execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
	printf '%s %s %s rc=%d seconds=%d execs=%s\n' "$(date -u +%FT%TZ)" "$pkg" "$fn" "$rc" "$(($(date +%s) - start))" "${execs:-?}"
	if ((rc != 0)); then
		tail -n 40 "$out" >&2
		return 1
	fi
}

log "fuzzing ${#TARGETS[@]} targets for $FUZZTIME each, $FUZZ_JOBS at a time (logs: $logdir)"
pass=0 fail=0
results="$logdir/results"
: >"$results"
running=0
for t in "${TARGETS[@]}"; do
	( if fuzz_one "$t"; then echo ok >>"$results"; else echo fail >>"$results"; fi ) &
	running=$((running + 1))
	if ((running >= FUZZ_JOBS)); then
		wait -n || true
		running=$((running - 1))
	fi
done
wait
pass=$(grep -c '^ok' "$results" || true)
fail=$(grep -c '^fail' "$results" || true)
echo "fuzz: $pass passed, $fail failed"
((fail == 0)) || die "a fuzzer found a failing input (go test wrote it under the package's testdata/fuzz/)"
