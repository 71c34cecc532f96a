#!/usr/bin/env bash
# End-to-end test of the built collector (dist/otelcol-certstore): OTLP/gRPC over TLS from the
# OTel Go SDK exporter, kubelet-style rotations, a bad rotation, mTLS with a CA rotation, and a
# second collector exporting through the extension's client side. Loopback only.
#
#   bash tests/e2e/run.sh            # or: make e2e (builds the collector first)
#   COLLECTOR=/path/to/otelcol-certstore bash tests/e2e/run.sh -workdir /tmp/e2e-keep
#
# Stops by itself (internal 4 min deadline, hard 5 min limit), stops the collectors it started,
# prints "e2e: N passed, N failed" and exits non-zero on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO="${GO:-go}"
BIN="${COLLECTOR:-$ROOT/dist/otelcol-certstore}"
if [[ ! -x "$BIN" ]]; then
	echo "e2e: $BIN not found: run 'make collector' first" >&2
	echo "e2e: 0 passed, 1 failed"
	exit 2
fi

mkdir -p "$ROOT/build/e2e"
(cd "$ROOT/tests/e2e" && "$GO" build -o "$ROOT/build/e2e/certstore-e2e" .)

rc=0
timeout --kill-after=10s 300s "$ROOT/build/e2e/certstore-e2e" -collector "$BIN" "$@" || rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
	echo "e2e: timed out after 300s: 0 passed, 1 failed"
fi
exit $rc
