#!/usr/bin/env bash
# Benchmarks behind docs/performance.md (`make bench`):
#   1. go benchmarks of shared/model (Build 10k / 100k, and BuildVsFloor10k: the build's CPU time
#      against a program that only walks, reads and decodes the same files), shared/graph (impact, waves),
#      shared/gitrepo (fetch), shared/api (GET /graph and GET /impact on 10k components) and
#      shared/drift (the drift check of 10,000 components);
#   2. wall time, CPU time and peak resident memory of a real 100,000-component build: model.Build alone
#      (scripts/genrepo -build) and the CLI (karma graph build --params-backend none --no-write);
#   3. the embedded pipeline (cmd/karma): change events from ingest to audit with the no-op
#      Terraform runner (BenchmarkPipeline, BenchmarkRuntimeOverhead: events/s, CPU, SQL
#      statements and write transactions per event, time under the write lock) and the
#      20,000-dependent fan-out (BenchmarkFanOut20k), with the pipeline's floor (shared/embedded
#      BenchmarkPipelineFloor: the rows one event leaves, written by a plain loop of SQL) and the
#      unfinished-set question resolve asks twice per event (BenchmarkChangeSetsUnfinished), and
#      a run of BenchmarkPipeline that prints the statements that took the most time per event
#      (-karma.sqlprofile: shared/embedded/stmtprofile.go).
# Environment: BENCH_N (components for step 2, default 100000), BENCH_SHORT=1 (go test -short:
# skips BenchmarkBuild100k), BENCH_KEEP=1 (keep the temporary folder).
# Timings are measurements, never assertions: this script fails only if something does not run.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_N:-100000}
short=()
if [[ ${BENCH_SHORT:-} == 1 ]]; then short=(-short); fi

echo "== machine"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "go:      $(go version)"
echo "kernel:  $(uname -sr)"

echo
echo "== go benchmarks (go test -run '^\$' -bench . -benchmem -count 1)"
go test -run '^$' -bench . -benchmem -count 1 -timeout 60m "${short[@]}" ./shared/model/ ./shared/graph/ ./shared/gitrepo/ ./shared/api/ ./shared/drift/

echo
echo "== the embedded pipeline (no-op Terraform)"
go test -run '^$' -bench 'Pipeline$|RuntimeOverhead' -benchtime 500x -count 1 -timeout 60m ./cmd/karma/
go test -run '^$' -bench 'FanOut20k' -benchtime 1x -count 2 -timeout 60m ./cmd/karma/
go test -run '^$' -bench 'PipelineFloor' -benchtime 2000x -count 1 -timeout 60m ./shared/embedded/
go test -run '^$' -bench 'ChangeSetsUnfinished' -benchtime 20000x -count 1 -timeout 60m ./shared/embedded/
go test -run '^$' -bench 'Pipeline$' -benchtime 1000x -count 1 -timeout 60m ./cmd/karma/ -karma.sqlprofile 25

if ! command -v /usr/bin/time >/dev/null; then
  echo "installing GNU time for peak resident memory"
  if [[ $(id -u) == 0 ]]; then apt-get install -y time >/dev/null; else sudo apt-get install -y time >/dev/null; fi
fi

tmp=$(mktemp -d)
if [[ ${BENCH_KEEP:-} == 1 ]]; then
  echo "keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

# measure LABEL CMD...: runs CMD under /usr/bin/time -v, prints its last stdout line, wall time,
# CPU time (user + system) and peak RSS.
measure() {
  local label=$1
  shift
  if ! /usr/bin/time -v "$@" >"$tmp/out" 2>"$tmp/time"; then
    echo "$label: FAILED"
    cat "$tmp/out" "$tmp/time" >&2
    return 1
  fi
  local wall rss user sys
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time")
  user=$(sed -n 's/.*User time (seconds): //p' "$tmp/time")
  sys=$(sed -n 's/.*System time (seconds): //p' "$tmp/time")
  grep -v '^\s*$' "$tmp/out" | tail -n 1 | sed 's/^/  /'
  awk -v l="$label:" -v w="$wall" -v r="$rss" -v u="$user" -v s="$sys" \
    'BEGIN { printf "%-30s wall %s   CPU %.2f s (user %s, sys %s)   Maximum resident set size %s kB (%.0f MiB)\n", l, w, u + s, u, s, r, r / 1024 }'
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

echo
echo "== real build of $N components"
go build -o "$tmp/genrepo" ./scripts/genrepo
"$tmp/genrepo" -dir "$tmp/repo" -n "$N"
measure "model.Build (genrepo -build)" "$tmp/genrepo" -dir "$tmp/repo" -build

if go build -o "$tmp/karma" ./cmd/karma 2>"$tmp/build.err"; then
  measure "karma graph build" "$tmp/karma" graph build --repo "$tmp/repo" --state-dir "$tmp/state" \
    --params-backend none --no-write
  echo
  echo "== the HTTP API of karma serve, loaded from a second process (10,000 components)"
  go run ./scripts/apiload -karma "$tmp/karma" -n 10000 -requests 5000 -c 4
else
  echo "cmd/karma does not compile yet; only model.Build was measured:"
  cat "$tmp/build.err"
fi
