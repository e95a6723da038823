#!/usr/bin/env bash
# Runs every test: unit tests, then the end-to-end suite that boots real VMs.
set -euo pipefail
cd "$(dirname "$0")/.."
export BANGER_TEST_CACHE=${BANGER_TEST_CACHE:-/var/cache/banger-test}
mkdir -p "$BANGER_TEST_CACHE"
echo "== unit and integration tests" >&2
go test -count=1 -timeout 40m ./...
