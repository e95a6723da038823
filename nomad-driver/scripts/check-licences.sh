#!/usr/bin/env bash
# Fails when anything linked into banger-nomad-driver is under the Business
# Source License: every module's licence file and every linked package's
# SPDX headers are checked (Nomad marks BSL files "BUSL-1.1").
set -euo pipefail
cd "$(dirname "$0")/.."
mods=$(go list -deps -f '{{with .Module}}{{.Dir}}{{end}}' ./cmd/banger-nomad-driver | sort -u)
pkgs=$(go list -deps -f '{{.ImportPath}} {{.Dir}} {{join .GoFiles " "}}' ./cmd/banger-nomad-driver)
bad=0
for dir in $mods; do
	if grep -lqs -e 'Business Source License' -e 'BUSL-1.1' "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null; then
		echo "BSL licence file in module at $dir" >&2
		bad=1
	fi
done
while read -r pkg dir files; do
	for f in $files; do
		if grep -qs 'SPDX-License-Identifier: BUSL' "$dir/$f"; then
			echo "BSL source linked: $pkg/$f" >&2
			bad=1
		fi
	done
done <<<"$pkgs"
[ "$bad" = 0 ] && echo "no BSL code linked into banger-nomad-driver"
exit "$bad"
