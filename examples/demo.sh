#!/usr/bin/env bash
# certstore demo (make demo): a dev CA and certificates, the built collector serving OTLP/gRPC
# with TLS from the certstore extension, spans sent over mTLS, a kubelet-style rotation, and the
# new serial on the wire without a restart. Loopback only; cleans up after itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
BIN="${COLLECTOR:-$ROOT/dist/otelcol-certstore}"
PORT="${DEMO_PORT:-14317}"
ENDPOINT="127.0.0.1:$PORT"
READY_TIMEOUT="${DEMO_READY_TIMEOUT:-30}"   # seconds for the collector to serve TLS
ROTATE_TIMEOUT="${DEMO_ROTATE_TIMEOUT:-10}" # seconds for the rotated serial to be served

for tool in openssl "$GO"; do
	command -v "$tool" >/dev/null || { echo "demo: $tool is required" >&2; exit 1; }
done
[[ -x "$BIN" ]] || { echo "demo: $BIN not found: run 'make collector' (or 'make demo')" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/certstore-demo.XXXXXX")"
COL_PID=""
cleanup() {
	if [[ -n "$COL_PID" ]] && kill -0 "$COL_PID" 2>/dev/null; then
		kill -TERM "$COL_PID" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$COL_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$COL_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# fail prints the reason and the end of the collector log, then exits (cleanup stops the collector).
fail() {
	echo "demo: FAILED: $*" >&2
	if [[ -s "$WORK/collector.log" ]]; then
		echo "----- last lines of the collector log -----" >&2
		tail -n 30 "$WORK/collector.log" >&2
	fi
	exit 1
}

# --- a dev CA, a server certificate and a client certificate (openssl) ---
# 30-day leaves: the example config warns (component status) when the served certificate
# expires within expiry_warning (168h), so short-lived demo certificates would warn from the start.
step "Generating a dev CA, a server certificate (localhost, 127.0.0.1) and a client certificate in $WORK"
PKI="$WORK/pki"
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
	-subj "/CN=certstore demo CA" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
issue() { # name cn
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
		-keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$PKI/ext.cnf"
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -days 30 \
		-extfile "$PKI/ext.cnf" -out "$PKI/$1.crt" 2>/dev/null
}
# Serials are printed the way the collector logs them: lowercase hex without leading zeros
# (openssl prints uppercase, padded to whole bytes, e.g. 0B1E7BEC...; otlpsend prints uppercase).
norm_serial() { tr 'A-F' 'a-f' | sed -e 's/^0*//' -e 's/^$/0/'; }
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2 | norm_serial; }
# strip_resource drops the "resource" attribute (service.instance.id, name, version) from a
# collector log line, whether other fields follow it or not.
strip_resource() { sed -E -e 's/"resource": \{[^}]*\}(, )?//' -e 's/[[:space:]]*\{\}$//'; }
issue server-1 localhost
issue client client
echo "server certificate serial: $(serial_of "$PKI/server-1.crt")"

# --- the volume, written the way the kubelet writes a Secret volume ---
CERTS="$WORK/certs"
mkdir -p "$CERTS"
kubelet_write() { # crt key ca
	local ts="..$(date -u +%Y_%m_%d_%H_%M_%S.%N)" old=""
	mkdir "$CERTS/$ts"
	cp "$1" "$CERTS/$ts/tls.crt"; cp "$2" "$CERTS/$ts/tls.key"; cp "$3" "$CERTS/$ts/ca.crt"
	old="$(readlink "$CERTS/..data" 2>/dev/null || true)"
	ln -sfn "$ts" "$CERTS/..data_tmp"
	mv -T "$CERTS/..data_tmp" "$CERTS/..data"
	for f in tls.crt tls.key ca.crt; do [[ -L "$CERTS/$f" ]] || ln -s "..data/$f" "$CERTS/$f"; done
	[[ -z "$old" ]] || rm -rf "${CERTS:?}/$old"
}
kubelet_write "$PKI/server-1.crt" "$PKI/server-1.key" "$PKI/ca.crt"
ls -la "$CERTS"

# --- the OTLP sender (OTel Go SDK exporter) ---
step "Building the OTLP sender (OTel Go SDK exporter)"
(cd "$ROOT/tests/e2e" && "$GO" build -o "$WORK/otlpsend" ./otlpsend)
SPANS=5
# otlpsend exports each span as it ends (synchronous exporter): SPANS exports, so the collector
# receives SPANS batches of one span each; the debug exporter logs one "Traces" line per batch.
batches_seen=0
send() {
	local out serial
	out="$("$WORK/otlpsend" -endpoint "$ENDPOINT" -ca "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -spans "$SPANS")" ||
		fail "sending spans to $ENDPOINT"
	serial="${out##* }"
	echo "${out% *} $(norm_serial <<<"$serial")"
}
# received waits (up to 5s) for the SPANS batches of the last send in the collector log and
# prints how many batches and spans arrived since the previous call.
received() {
	local total=0 batches=0 spans=0 deadline=$((SECONDS + 5))
	while :; do
		total="$(grep -c '"otelcol.signal": "traces"' "$WORK/collector.log" || true)"
		batches=$((total - batches_seen))
		((batches < SPANS && SECONDS < deadline)) || break
		sleep 0.1
	done
	spans="$(grep '"otelcol.signal": "traces"' "$WORK/collector.log" | tail -n +$((batches_seen + 1)) |
		sed -nE 's/.*"spans": ([0-9]+).*/\1/p' | awk '{s += $1} END {print s + 0}')"
	batches_seen=$total
	echo "collector (debug exporter): $batches batches received, $spans spans in total"
	((spans == SPANS)) || fail "the collector received $spans spans, expected $SPANS"
}
# served_serial prints the serial of the certificate served to a new connection, or nothing
# (never a failing status: it runs in wait loops under set -e).
served_serial() {
	{ openssl s_client -connect "$ENDPOINT" -alpn h2 -servername localhost -CAfile "$PKI/ca.crt" \
		-cert "$PKI/client.crt" -key "$PKI/client.key" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | cut -d= -f2 | norm_serial; } || true
}

# --- the collector ---
step "Starting $BIN with examples/collector/config.yaml (mTLS on $ENDPOINT from the certstore extension)"
CERT_DIR="$CERTS" OTLP_ENDPOINT="$ENDPOINT" "$BIN" --config "$ROOT/examples/collector/config.yaml" \
	--set=service::telemetry::metrics::level=none --set=service::telemetry::logs::sampling::enabled=false >"$WORK/collector.log" 2>&1 &
COL_PID=$!
before=""
deadline=$((SECONDS + READY_TIMEOUT))
while :; do
	before="$(served_serial)"
	[[ -z "$before" ]] || break
	kill -0 "$COL_PID" 2>/dev/null || fail "the collector exited"
	((SECONDS < deadline)) || fail "the collector is not serving TLS on $ENDPOINT after ${READY_TIMEOUT}s"
	sleep 0.2
done
{ grep -m1 "Certificate loaded" "$WORK/collector.log" || true; } | strip_resource
echo "openssl s_client: served serial $before (collector pid $COL_PID)"

step "Sending spans over mTLS"
send
received

step "Rotating the certificate kubelet-style (..<timestamp> dir, ..data_tmp, rename over ..data)"
issue server-2 localhost
want="$(serial_of "$PKI/server-2.crt")"
kubelet_write "$PKI/server-2.crt" "$PKI/server-2.key" "$PKI/ca.crt"
after=""
deadline=$((SECONDS + ROTATE_TIMEOUT))
while :; do
	after="$(served_serial)"
	[[ "$after" != "$want" ]] || break
	kill -0 "$COL_PID" 2>/dev/null || fail "the collector exited"
	((SECONDS < deadline)) || fail "still serving ${after:-nothing} after ${ROTATE_TIMEOUT}s, expected $want"
	sleep 0.1
done
{ grep "Certificate rotated" "$WORK/collector.log" || true; } | tail -1 | strip_resource
echo "openssl s_client: served serial $before -> $after, same collector pid $COL_PID (no restart)"

step "Sending spans again over a new connection"
send
received

step "Stopping the collector"
kill -TERM "$COL_PID"
wait "$COL_PID" 2>/dev/null || true
COL_PID=""
{ grep -m1 "Shutdown complete" "$WORK/collector.log" || true; } | strip_resource
printf '\n\033[1mdemo: OK\033[0m: the collector served serial %s, then %s after a kubelet-style rotation, without a restart.\n' "$before" "$after"
