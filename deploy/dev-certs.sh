#!/usr/bin/env bash
# Make a throw-away certificate authority, a server certificate for localhost/task-mcp and one
# bearer token, for docker compose or a local test. Not for production: use your CA's certificate.
#
#   deploy/dev-certs.sh [DIR]        # default ./certs; writes ca.crt tls.crt tls.key tokens
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

if [ ! -s "$dir/tokens" ]; then
  openssl rand -hex 32 >"$dir/tokens"
fi
chmod 0644 "$dir/ca.crt" "$dir/tls.crt"
chmod 0600 "$dir/tls.key" "$dir/tokens"
echo "wrote $dir/{ca.crt,tls.crt,tls.key,tokens}; clients trust $dir/ca.crt and send 'Authorization: Bearer <first line of tokens>'"
