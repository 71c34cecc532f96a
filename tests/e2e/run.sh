#!/usr/bin/env bash
# End-to-end test of the built collectors: OTLP/gRPC over TLS from the OTel Go SDK exporter,
# kubelet-style rotations, a bad rotation, mTLS with a CA rotation, and a second collector
# exporting through the extension's client side, and a Prometheus server (Debian package
# prometheus) that scrapes a collector with the alert rules of deploy/prometheus. Loopback only.
#
#   bash tests/e2e/run.sh            # or: make e2e (builds the collectors first)
#   COLLECTOR=/path/to/otelcol-certstore bash tests/e2e/run.sh -workdir /tmp/e2e-keep
#
# Without COLLECTOR it runs against both builds of `make collector`, each after an ldd check of
# its link mode: dist/otelcol-certstore must load libcertstore.so.<CERTSTORE_ABI_VERSION> (and find it),
# dist/otelcol-certstore-static must not load any libcertstore.
# Each run stops by itself (internal 4 min deadline, hard 5 min limit) and stops the collectors
# it started; the last line is "e2e: N passed, N failed" over all runs; non-zero exit on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO="${GO:-go}"
if [[ -n "${COLLECTOR:-}" ]]; then
	builds=("any:$COLLECTOR")
else
	builds=("shared:$ROOT/dist/otelcol-certstore" "static:$ROOT/dist/otelcol-certstore-static")
fi

mkdir -p "$ROOT/build/e2e"
(cd "$ROOT/tests/e2e" && "$GO" build -o "$ROOT/build/e2e/certstore-e2e" .)

passed=0 failed=0 rc=0
result() { # result NAME OK [REASON]
	if [[ $2 == 1 ]]; then echo "PASS  $1"; passed=$((passed + 1)); else echo "FAIL  $1: $3"; failed=$((failed + 1)); fi
}
# The SONAME the header's ABI version names.
soname=libcertstore.so.$(sed -n 's/^#define CERTSTORE_ABI_VERSION \([0-9]*\)$/\1/p' "$ROOT/include/certstore.h")
for build in "${builds[@]}"; do
	mode=${build%%:*} bin=${build#*:}
	echo "==> e2e against $bin ($mode link)"
	if [[ ! -x "$bin" ]]; then
		result "$mode: $bin exists" 0 "not found: run 'make collector' first"
		rc=2
		continue
	fi
	libs="$(ldd "$bin")"
	case $mode in
	shared)
		grep -qF "$soname => /" <<<"$libs" && ok=1 || ok=0
		result "shared: ldd shows $soname resolved" $ok "$(grep libcertstore <<<"$libs" || echo 'not linked')"
		;;
	static)
		grep -q libcertstore <<<"$libs" && ok=0 || ok=1
		result "static: ldd shows no libcertstore" $ok "$(grep libcertstore <<<"$libs")"
		;;
	esac
	log="$ROOT/build/e2e/e2e-$mode.log"
	run_rc=0
	timeout --kill-after=10s 300s "$ROOT/build/e2e/certstore-e2e" -collector "$bin" "$@" 2>&1 | tee "$log" || run_rc=${PIPESTATUS[0]}
	if [[ $run_rc -eq 124 || $run_rc -eq 137 ]]; then
		result "$mode: e2e finished" 0 "timed out after 300s"
	fi
	summary="$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)"
	if [[ -n "$summary" ]]; then
		read -r p f < <(sed -E 's/^e2e: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' <<<"$summary")
		passed=$((passed + p)) failed=$((failed + f))
	elif [[ $run_rc -ne 124 && $run_rc -ne 137 ]]; then
		result "$mode: e2e printed its summary" 0 "exit status $run_rc"
	fi
	[[ $run_rc -eq 0 ]] || rc=1
done
((failed == 0)) || rc=1
echo "e2e: $passed passed, $failed failed"
exit $rc
