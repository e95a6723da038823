#!/usr/bin/env bash
# Runs the benchmarks (B1..B7, docs/performance.md): builds the runner, runs
# it against bin/ with its own daemon, bridge (bgb0) and subnet
# (10.251.0.0/24), prints the table, writes bench/results/*.json and
# latest.md, and puts the table into docs/performance.md
# (BENCH_UPDATE_DOCS=0 to skip). Settings: `go run ./bench/runner --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (bangerd manages bridges and taps); try: sudo make bench" >&2; exit 1; }
runner=$(mktemp -d)/banger-bench
trap 'rm -rf "$(dirname "$runner")"' EXIT
go build -o "$runner" ./bench/runner
export BENCH_BIN=${BENCH_BIN:-$PWD/bin} BENCH_OUT=${BENCH_OUT:-$PWD/bench/results}
"$runner"
doc=docs/performance.md
if [ "${BENCH_UPDATE_DOCS:-1}" = 1 ] && [ -f "$doc" ] && grep -q '<!-- bench:begin -->' "$doc"; then
  awk -v table="$BENCH_OUT/latest.md" '
    /<!-- bench:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
  echo "bench: table written to $doc" >&2
fi
