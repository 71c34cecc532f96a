#!/usr/bin/env bash
# Writes the C harness fixtures into $1: three self-signed P-256 leaves a, b, c with serials
# 1001, 1002, 1003 (cert + key each), and a CA.
set -euo pipefail
out=$1
mkdir -p "$out"
for spec in a:1001 b:1002 c:1003; do
  name=${spec%%:*}; serial=${spec##*:}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" -set_serial "0x$serial" \
    -keyout "$out/$name.key" -out "$out/$name.crt" 2>/dev/null
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=test CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
