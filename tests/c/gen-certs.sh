#!/usr/bin/env bash
# Writes the C test fixtures into $1: three self-signed P-256 leaves a, b, c with serials
# 1001, 1002, 1003 (cert + key each), a CA, an RSA-2048 leaf r (1007, key also as PKCS#1),
# an expired leaf e (1004), a not-yet-valid leaf f (1005), an X.509 v1 leaf g (1006); files
# that say the same as a.crt / ca.crt in other bytes (a comment naming a BEGIN line before
# another leaf's body, CRLF line ends, a trailing comment) and, computed by openssl, what the
# library must hand out for them: the canonical PEM of the DER, the SHA-256 of the DER,
# notAfter in unix seconds.
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
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost" -set_serial 0x1007 -keyout "$out/r.key" -out "$out/r.crt" 2>/dev/null
openssl rsa -traditional -in "$out/r.key" -out "$out/r-pkcs1.key" 2>/dev/null   # RSA PRIVATE KEY

# Leaves outside their validity window: `openssl req` takes only a positive -days, `openssl
# ca` takes explicit dates. It writes X.509 v3 only with an extension section: g (1006) is a
# valid-dated X.509 v1 leaf, which rustls cannot use (a certificate problem, not a key one).
ca=$(mktemp -d)
trap 'rm -rf "$ca"' EXIT
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\ndefault_md = sha256\nserial = %s/serial\npolicy = p\n[p]\ncommonName = supplied\n[v3]\nsubjectAltName = DNS:localhost\n' \
  "$ca" "$ca" "$ca" > "$ca/ca.cnf"
for spec in e:1004:20200101000000Z:20200102000000Z:v3 f:1005:20990101000000Z:20990102000000Z:v3 \
            g:1006:20200101000000Z:20990101000000Z:; do
  IFS=: read -r name serial start end ext <<< "$spec"
  : > "$ca/index.txt"; echo "$serial" > "$ca/serial"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$out/$name.key" -out "$ca/$name.csr" 2>/dev/null
  openssl ca -batch -config "$ca/ca.cnf" -selfsign -keyfile "$out/$name.key" -in "$ca/$name.csr" \
    ${ext:+-extensions "$ext"} -startdate "$start" -enddate "$end" -notext -out "$out/$name.crt" 2>/dev/null
done

# The same certificates in other bytes, and what must come out of them.
{ echo '# -----BEGIN CERTIFICATE----- (a comment, then the body of another leaf)'
  grep -v -- '-----' "$out/b.crt"
  echo '-----END CERTIFICATE-----'
  cat "$out/a.crt"; } > "$out/a-comment.crt"
{ cat "$out/a.crt"; echo '# trailing comment'; } | sed 's/$/\r/' > "$out/a-crlf.crt"
sed 's/$/\r/' "$out/ca.crt" > "$out/ca-crlf.crt"
openssl ec -in "$out/a.key" -out "$out/a-sec1.key" 2>/dev/null   # EC PRIVATE KEY
for name in a ca; do
  openssl x509 -in "$out/$name.crt" -outform DER | openssl x509 -inform DER -out "$out/$name.canonical.pem"
  openssl x509 -in "$out/$name.crt" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 > "$out/$name.sha256"
done
openssl pkey -in "$out/a.key" -out "$out/a.key.canonical.pem"
openssl ec -in "$out/a.key" -out "$out/a-sec1.key.canonical.pem" 2>/dev/null
openssl rsa -traditional -in "$out/r.key" -out "$out/r-pkcs1.key.canonical.pem" 2>/dev/null
for name in a c ca; do
  date -d "$(openssl x509 -in "$out/$name.crt" -noout -enddate | cut -d= -f2)" +%s > "$out/$name.notafter"
done
