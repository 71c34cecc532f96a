#!/usr/bin/env bash
# Builds dist/otelcol-certstore with the OpenTelemetry Collector Builder (ocb) from
# examples/collector/builder-config.yaml. Run `make build` first (the Rust static library).
#
#   bash examples/collector/build.sh        # or: make collector
#
# ocb is installed at the pinned version into build/bin/ (not on your PATH) when missing.
set -euo pipefail

OCB_VERSION="${OCB_VERSION:-v0.165.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO="${GO:-go}"
BIN_DIR="$ROOT/build/bin"
OCB="$BIN_DIR/ocb-$OCB_VERSION"
LIB="$ROOT/target/release/libcertstore.a"

if [[ ! -f "$LIB" ]]; then
	echo "build.sh: $LIB is missing: run 'make build' first (or use 'make collector')" >&2
	exit 1
fi
if ! command -v "$GO" >/dev/null; then
	echo "build.sh: Go is not installed (collector $OCB_VERSION needs Go >= 1.26)" >&2
	exit 1
fi

if [[ ! -x "$OCB" ]]; then
	echo "build.sh: installing ocb $OCB_VERSION into $BIN_DIR"
	mkdir -p "$BIN_DIR"
	tmp="$(mktemp -d)"
	GOBIN="$tmp" "$GO" install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
	mv "$tmp/builder" "$OCB"
	rmdir "$tmp"
fi

start=$SECONDS
# ocb resolves the relative paths of builder-config.yaml from the working directory.
mkdir -p "$ROOT/dist"
cd "$ROOT/examples/collector"
CGO_ENABLED=1 "$OCB" --config builder-config.yaml
install -m 0755 "$ROOT/dist/otelcol-certstore-src/otelcol-certstore" "$ROOT/dist/otelcol-certstore"
echo "build.sh: built $ROOT/dist/otelcol-certstore in $((SECONDS - start))s"
"$ROOT/dist/otelcol-certstore" --version
