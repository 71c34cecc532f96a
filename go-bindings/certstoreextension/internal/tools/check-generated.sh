#!/usr/bin/env bash
# Fails when the files mdatagen generates for the certstore extension are stale: regenerates
# them from metadata.yaml in a scratch copy of the package and compares.
#
#   bash check-generated.sh /path/to/mdatagen      # `make lint` runs it
set -euo pipefail

MDATAGEN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# mdatagen names the test package after the directory: keep the name.
copy="$scratch/certstoreextension"
mkdir -p "$copy"
# go list must find the package (its import path names the telemetry scope): doc.go
# is the only Go file it needs.
cp "$PKG/metadata.yaml" "$PKG/go.mod" "$PKG/go.sum" "$PKG/doc.go" "$copy/"
(cd "$copy" && "$MDATAGEN" metadata.yaml)
stale=0
while IFS= read -r -d '' f; do
	rel="${f#"$copy"/}"
	if ! cmp -s "$f" "$PKG/$rel"; then
		echo "check-generated: $rel is stale: run 'make generate' and commit the result" >&2
		stale=1
	fi
done < <(find "$copy" -type f \( -name 'generated_*' -o -name documentation.md \) -print0)
# A generated file that mdatagen no longer writes is stale too.
while IFS= read -r -d '' f; do
	rel="${f#"$PKG"/}"
	if [[ ! -f "$copy/$rel" ]]; then
		echo "check-generated: $rel is no longer generated: delete it" >&2
		stale=1
	fi
done < <(find "$PKG" -path "$PKG/internal/tools" -prune -o -type f \( -name 'generated_*' -o -name documentation.md \) -print0)
exit "$stale"
