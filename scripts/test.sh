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
echo "== Nomad task driver module (nomad-driver/): vet, unit tests, no BSL code linked" >&2
(cd nomad-driver && export GOWORK=off && go vet ./... && go test -count=1 ./... && scripts/check-licences.sh)
nomad_version=$(awk '$1 == "github.com/hashicorp/nomad" { print $2 }' nomad-driver/go.mod)
nomad_bin=$BANGER_TEST_CACHE/nomad-${nomad_version#v}/nomad
if [ ! -x "$nomad_bin" ]; then
	echo "== building Nomad $nomad_version for the driver's end-to-end test (once; cached in $nomad_bin)" >&2
	nomad-driver/scripts/build-nomad.sh "$nomad_bin" || echo "Nomad could not be built: TestNomadDriver will skip" >&2
fi
echo "== unit and integration tests, then end to end with real VMs" >&2
go test -count=1 -timeout 40m -json ./... | "$report/testreport"
