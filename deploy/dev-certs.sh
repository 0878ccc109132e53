#!/usr/bin/env bash
# Make a throw-away certificate authority, a server certificate for localhost/task-mcp and one
# bearer token, for docker compose or a local test. Not for production: use your CA's certificate.
#
#   deploy/dev-certs.sh [DIR]        # default ./certs
#
# Writes ca.crt (what clients trust), tls.crt + tls.key (TLS_CERT, TLS_KEY), token (the bearer
# token clients send) and tokens.json (AUTH_TOKENS_FILE: the token's SHA-256 only, role admin).
set -euo pipefail

dir=${1:-./certs}
days=${DEV_CERT_DAYS:-30}
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$tmp/ca.key" -out "$dir/ca.crt" -days "$days" -subj "/CN=task-mcp dev CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null

openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$dir/tls.key" -out "$tmp/tls.csr" -subj "/CN=task-mcp" 2>/dev/null
printf '%s\n' \
  'basicConstraints=critical,CA:FALSE' \
  'keyUsage=critical,digitalSignature' \
  'extendedKeyUsage=serverAuth' \
  'subjectAltName=DNS:localhost,DNS:task-mcp,DNS:task-mcp.task-mcp.svc,DNS:task-mcp.task-mcp.svc.cluster.local,IP:127.0.0.1,IP:::1' \
  >"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/tls.csr" -CA "$dir/ca.crt" -CAkey "$tmp/ca.key" -CAserial "$tmp/ca.srl" -CAcreateserial \
  -out "$dir/tls.crt" -days "$days" -extfile "$tmp/ext.cnf" 2>/dev/null

if [ ! -s "$dir/token" ]; then
  openssl rand -hex 32 | tr -d '\n' >"$dir/token"
fi
digest=$(sha256sum <"$dir/token" | cut -d' ' -f1)
printf '[{"name":"dev","sha256":"%s","role":"admin"}]\n' "$digest" >"$dir/tokens.json"
chmod 0644 "$dir/ca.crt" "$dir/tls.crt"
chmod 0600 "$dir/tls.key" "$dir/token" "$dir/tokens.json"
echo "wrote $dir/{ca.crt,tls.crt,tls.key,token,tokens.json}; clients trust $dir/ca.crt and send 'Authorization: Bearer \$(cat $dir/token)'"
