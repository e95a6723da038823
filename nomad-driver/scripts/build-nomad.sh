#!/usr/bin/env bash
# Builds the Nomad binary used by the driver's end-to-end test, from the Go
# module proxy, at one pinned version, in a scratch module (Nomad's own
# replace directives do not apply to a dependency, so they are repeated here).
# Usage: build-nomad.sh OUTPUT [VERSION]; the version defaults to the one the
# driver is built against (nomad-driver/go.mod). Nomad is a test tool: it is
# not shipped.
set -euo pipefail
out=${1:?usage: build-nomad.sh OUTPUT [VERSION]}
version=${2:-$(awk '$1 == "github.com/hashicorp/nomad" { print $2 }' "$(dirname "$0")/../go.mod")}
# Nomad builds against the api module of its own commit (a replace to ./api
# in its go.mod); outside its repository that must be required explicitly,
# as the pseudo-version of the release's commit.
case "$version" in
v1.6.1) api=v0.0.0-20230721134942-515895c7690c ;;
*) api=${NOMAD_API_VERSION:?set NOMAD_API_VERSION to the nomad/api pseudo-version of Nomad $version} ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod GOWORK=off
go mod init nomadbuild >/dev/null 2>&1
go mod edit \
	-replace github.com/Microsoft/go-winio=github.com/endocrimes/go-winio@v0.4.13-0.20190628114223-fb47a8b41948 \
	-replace github.com/hashicorp/hcl=github.com/hashicorp/hcl@v1.0.1-0.20201016140508-a07e7d50bbee \
	-replace github.com/armon/go-metrics=github.com/armon/go-metrics@v0.0.0-20230509193637-d9ca9af9f1f9
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/hashicorp/nomad"\n' >tools.go
go get "github.com/hashicorp/nomad@$version" "github.com/hashicorp/nomad/api@$api" 2>&1 | grep -v -e '^go: downloading' -e 'retracted' -e 'to switch to the latest' -e 'go get .*@latest' >&2 || true
mkdir -p "$(dirname "$out")"
go build -trimpath -o "$out.tmp" github.com/hashicorp/nomad
mv "$out.tmp" "$out"
