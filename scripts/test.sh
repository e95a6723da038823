#!/usr/bin/env bash
# Runs every test: unit tests, then the end-to-end suite that boots real VMs.
# The report at the end lists the optional suites and every skipped test with
# its reason, so a green run that skipped something says so.
set -euo pipefail
cd "$(dirname "$0")/.."
export BANGER_TEST_CACHE=${BANGER_TEST_CACHE:-/var/cache/banger-test}
mkdir -p "$BANGER_TEST_CACHE"
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT
go build -o "$report/testreport" ./scripts/testreport
echo "== unit and integration tests, then end to end with real VMs" >&2
go test -count=1 -timeout 40m -json ./... | "$report/testreport"
