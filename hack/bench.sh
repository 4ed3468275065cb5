#!/usr/bin/env bash
# make bench: podns against the reference CNI plugins v1.10.0 (and Debian's
# v1.1.1 where cheap), side by side and interleaved in one run (issue 6).
#
#   hack/bench.sh                 full run (< 15 min on 2 cores)
#   BENCH_QUICK=1 hack/bench.sh   a few minutes: fewer samples, 100 pods at most
#   hack/bench.sh -o json         the report as JSON on stdout (progress stays on stderr)
#   hack/bench.sh -scenarios 1,3  only some scenarios; `-h` lists every flag
#   BENCH_UPDATE_DOCS=1           also refresh docs/benchmarks.md's table and its plot
#
# Results (JSON, markdown, PNG) go to $BENCH_OUT (default /tmp/podns-bench).
# BENCH_PAUSE_AT=1000 stops after the 1000-pod probe (for strace/perf) until
# the file it names is removed.
source "$(dirname "$0")/lib.sh"
require_root
cd "$REPO_ROOT"

bash hack/deps.sh
# Scenario 5 drives containerd with crictl (the version hack/e2e-containerd.sh uses).
if ! command -v crictl >/dev/null; then
	log "go install crictl@v1.37.0"
	nice go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
fi
# The binaries under test: ./bin (make bench builds it), or PODNS_BIN_DIR.
bin=${PODNS_BIN_DIR:-$REPO_ROOT/bin}
[[ -x $bin/podns && -x $bin/podns-ipam ]] || { [[ $bin == "$REPO_ROOT/bin" ]] && hack/build.sh; }

out=${BENCH_OUT:-/tmp/podns-bench}
mkdir -p "$out"
tool=$(mktemp -d /tmp/podns-bench-tool.XXXXXX)
note_nat_tables
cleanup() {
	# The tool cleans up after itself; this catches a run killed with -9.
	[[ -x $tool/bench ]] && "$tool/bench" cleanup || true
	rm -rf "$tool"
	# The reference bridge's ipMasq makes iptables' nat table and leaves it.
	remove_new_nat_tables
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the bench tool (hack/bench)"
(cd hack/bench && CGO_ENABLED=0 go build -o "$tool/bench" .)

mode=full
[[ ${BENCH_QUICK:-0} == 1 ]] && mode=quick
json=$out/bench-$mode.json
args=(-json "$json" -podns "$bin")
[[ $mode == quick ]] && args+=(-quick)
log "bench ($mode), results in $out"
# Exit 1 means a scenario failed (a plugin error): the report of the rest is
# still written and turned into tables and a plot. 130 means interrupted.
rc=0
"$tool/bench" "${args[@]}" "$@" || rc=$?
((rc == 0 || rc == 1)) || exit "$rc"

"$tool/bench" report -in "$json" -md >"$out/bench-$mode.md"
if "$tool/bench" plot -in "$json" -out "$out/bench-latency-vs-pods.png" 2>/dev/null; then
	log "plot: $out/bench-latency-vs-pods.png"
fi
if [[ ${BENCH_UPDATE_DOCS:-0} == 1 ]]; then
	"$tool/bench" doc -in "$json" -md docs/benchmarks.md
	[[ -f $out/bench-latency-vs-pods.png ]] && cp "$out/bench-latency-vs-pods.png" docs/bench-latency-vs-pods.png
	log "docs/benchmarks.md and docs/bench-latency-vs-pods.png updated"
fi
exit "$rc"
