#!/usr/bin/env python3
"""Exercise deploy/nginx/task-mcp.conf with a real nginx (used by .ci/deploy-check.sh).

    test_proxy.py syntax  --certs DIR            nginx -t on a runnable copy of the config
    test_proxy.py sse     --certs DIR            nginx in front of a stand-in TLS SSE upstream
    test_proxy.py server  --certs DIR --upstream-port N
                                                 nginx in front of a running task-mcp

DIR holds ca.crt, tls.crt and tls.key (deploy/dev-certs.sh makes them); the certificate must be
valid for "localhost", the name nginx verifies the upstream under.

The copy differs from the shipped file only where a test must: certificate paths, listen ports
(free loopback ports instead of 80/443, IPv6 listeners dropped) and the upstream port. Everything
that shapes streaming (buffering, timeouts, headers, limits) is tested as shipped.

The stand-in upstream answers /mcp with an SSE stream that sends one event, then holds the stream
open until the client has received that event: if nginx buffered the stream, the client would
wait in vain and the check fails on its timeout, so no check depends on sleeping.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIXES = []
NGINX_START_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0
HOLD_TIMEOUT_S = 10.0
RATE_LIMIT_PROBE_REQUESTS = 60


class Failure(Exception):
    """A check that did not hold."""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout_s, proc=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Failure(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def prepare(certs, upstream_port):
    """A runnable copy of the shipped config in a temporary prefix; returns (prefix, https, http)."""
    prefix = tempfile.mkdtemp(prefix="task-mcp-nginx-")
    PREFIXES.append(prefix)
    os.makedirs(os.path.join(prefix, "tmp"))
    https_port, http_port = free_port(), free_port()
    shutil.copy(os.path.join(HERE, "nginx.conf"), prefix)
    with open(os.path.join(HERE, "task-mcp.conf"), encoding="utf-8") as f:
        conf = f.read()
    certs = os.path.abspath(certs)
    replacements = [
        ("/etc/nginx/tls/mcp.example.com.crt", os.path.join(certs, "tls.crt")),
        ("/etc/nginx/tls/mcp.example.com.key", os.path.join(certs, "tls.key")),
        ("/etc/nginx/tls/task-mcp-upstream-ca.crt", os.path.join(certs, "ca.crt")),
        ("server 127.0.0.1:8443 ", f"server 127.0.0.1:{upstream_port} "),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
    ]
    for old, new in replacements:
        if old not in conf:
            raise Failure(f"task-mcp.conf no longer contains {old!r}: update test_proxy.py")
        conf = conf.replace(old, new)
    conf = re.sub(r"^\s*listen \[::\]:.*$", "", conf, flags=re.M)
    with open(os.path.join(prefix, "task-mcp.conf"), "w", encoding="utf-8") as f:
        f.write(conf)
    return prefix, https_port, http_port


def nginx_test(prefix):
    res = subprocess.run(
        ["nginx", "-t", "-p", prefix, "-e", "stderr", "-c", "nginx.conf"],
        capture_output=True, text=True, check=False,
    )
    sys.stdout.write(res.stderr)
    if res.returncode != 0:
        raise Failure("nginx -t rejected the configuration")
    if "[warn]" in res.stderr or "[emerg]" in res.stderr:
        raise Failure("nginx -t printed warnings")


class Nginx:
    def __init__(self, prefix, https_port):
        self.prefix, self.port, self.proc = prefix, https_port, None

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.prefix, "-e", "stderr", "-c", "nginx.conf", "-g", "daemon off;"],
            stderr=open(os.path.join(self.prefix, "error.log"), "w"),
        )
        wait_listening(self.port, NGINX_START_TIMEOUT_S, self.proc)
        return self

    def __exit__(self, exc_type, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        with open(os.path.join(self.prefix, "error.log"), encoding="utf-8") as f:
            log = f.read().strip()
        if exc_type is not None and log:
            print("nginx error log (last lines):\n" + "\n".join(log.splitlines()[-20:]))

    def connect(self, certs):
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        return http.client.HTTPSConnection(
            "localhost", self.port, context=ctx, timeout=READ_TIMEOUT_S
        )


# --- the stand-in upstream -----------------------------------------------------------------------


class Upstream:
    """A TLS HTTP/1.1 server that records what nginx sends and streams SSE on /mcp."""

    def __init__(self, certs):
        self.first_event_seen = threading.Event()
        self.connections = set()
        self.requests = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                upstream.connections.add(self.client_address)

            def do_GET(self):
                upstream.requests += 1
                if self.path == "/mcp":
                    self.stream()
                else:
                    self.send_body(200, b'{"status":"ok"}', "application/json")

            def do_POST(self):
                upstream.requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                self.send_body(200, b'{"jsonrpc":"2.0","id":1,"result":{}}', "application/json")

            def send_body(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def stream(self):
                seen = {k.lower(): v for k, v in self.headers.items()}
                seen["_request_version"] = self.request_version
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Mcp-Session-Id", "session-from-upstream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.chunk(b"id: 1\nevent: message\ndata: " + json.dumps(seen).encode() + b"\n\n")
                # Held until the client has the first event: a buffering proxy never lets it.
                upstream.first_event_seen.wait(HOLD_TIMEOUT_S)
                self.chunk(b"id: 2\nevent: message\ndata: {\"done\":true}\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.first_event_seen.set()
        self.httpd.shutdown()


def read_event(resp):
    """Read one SSE event (up to its blank line) from a streamed response."""
    lines = []
    while True:
        line = resp.readline()
        if not line:
            raise Failure("stream ended before a complete event")
        line = line.decode().rstrip("\r\n")
        if line == "":
            if lines:
                return lines
            continue
        lines.append(line)


def check(cond, message):
    if not cond:
        raise Failure(message)
    print(f"  ok  {message}")


def run_sse(certs):
    with Upstream(certs) as up:
        prefix, https_port, _ = prepare(certs, up.port)
        nginx_test(prefix)
        with Nginx(prefix, https_port) as ngx:
            conn = ngx.connect(certs)
            conn.request("GET", "/mcp", headers={
                "Accept": "text/event-stream",
                "Authorization": "Bearer test-token",
                "Mcp-Session-Id": "session-from-client",
                "MCP-Protocol-Version": "2025-06-18",
                "Last-Event-ID": "41",
            })
            resp = conn.getresponse()
            check(resp.status == 200, "GET /mcp through nginx answers 200")
            check(resp.getheader("Content-Type") == "text/event-stream",
                  "the event stream keeps Content-Type text/event-stream")
            try:
                first = read_event(resp)
            except (socket.timeout, TimeoutError) as e:
                raise Failure("first event not delivered while the upstream holds the stream: "
                              "nginx is buffering") from e
            check(not up.first_event_seen.is_set(),
                  "the first event arrives while the upstream still holds the stream (unbuffered)")
            up.first_event_seen.set()
            seen = json.loads(first[-1].split("data: ", 1)[1])
            second = read_event(resp)
            check(any("done" in line for line in second), "the rest of the stream follows")
            resp.read()
            check(seen.get("authorization") == "Bearer test-token", "Authorization is passed")
            check(seen.get("mcp-session-id") == "session-from-client", "Mcp-Session-Id is passed")
            check(seen.get("mcp-protocol-version") == "2025-06-18",
                  "MCP-Protocol-Version is passed")
            check(seen.get("last-event-id") == "41", "Last-Event-ID is passed")
            check("127.0.0.1" in seen.get("x-forwarded-for", ""), "X-Forwarded-For names the client")
            check(seen.get("x-forwarded-proto") == "https", "X-Forwarded-Proto is https")
            check(seen.get("host", "").startswith("localhost"), "the client's Host is passed")
            check(seen.get("_request_version") == "HTTP/1.1", "the upstream request is HTTP/1.1")
            check(seen.get("connection", "").lower() != "close",
                  "the upstream connection is kept alive (no Connection: close)")
            check(resp.getheader("Mcp-Session-Id") == "session-from-upstream",
                  "the server's Mcp-Session-Id reaches the client")
            check(resp.getheader("X-Accel-Buffering") == "no", "X-Accel-Buffering: no is sent")
            check("max-age=" in (resp.getheader("Strict-Transport-Security") or ""),
                  "Strict-Transport-Security is sent")

            conn.request("GET", "/health/live")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 200, "/health/live is proxied")
            check(len(resp.headers.get_all("X-Content-Type-Options") or []) == 1,
                  "a security header the server also sends appears once")

            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 404, "/metrics is not exposed through the proxy")

            conn.request("POST", "/mcp", body=b"x" * (2 * 1024 * 1024),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 413, "a 2 MiB request body is refused with 413")
            conn.close()

            conn = ngx.connect(certs)
            statuses = []
            for _ in range(RATE_LIMIT_PROBE_REQUESTS):
                conn.request("POST", "/mcp", body=b"{}", headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                statuses.append(resp.status)
            check(200 in statuses and 429 in statuses,
                  f"a burst of {RATE_LIMIT_PROBE_REQUESTS} requests is rate limited with 429 "
                  f"({statuses.count(429)} refused)")
            probes = []
            for _ in range(RATE_LIMIT_PROBE_REQUESTS):
                conn.request("GET", "/health/ready")
                resp = conn.getresponse()
                resp.read()
                probes.append(resp.status)
            check(all(s == 200 for s in probes), "health probes are never rate limited")
            conn.close()
            check(len(up.connections) < up.requests,
                  f"nginx reuses upstream connections ({len(up.connections)} for {up.requests} requests)")


def run_server(certs, upstream_port, token):
    prefix, https_port, _ = prepare(certs, upstream_port)
    nginx_test(prefix)
    with Nginx(prefix, https_port) as ngx:
        conn = ngx.connect(certs)
        for path in ("/health/live", "/health/ready"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            check(resp.status == 200,
                  f"task-mcp {path} through nginx (upstream TLS verified) answers 200: {body[:120]!r}")
        if token:
            init = {
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "deploy-check", "version": "0"}},
            }
            conn.request("POST", "/mcp", body=json.dumps(init).encode(), headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            })
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            check(resp.status == 200 and '"protocolVersion"' in body,
                  f"MCP initialize through nginx with the token answers 200 ({resp.status}: {body[:100]!r})")
            conn.request("POST", "/mcp", body=json.dumps(init).encode(), headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            })
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 401, f"without the token the server answers 401 ({resp.status})")
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["syntax", "sse", "server"])
    ap.add_argument("--certs", required=True)
    ap.add_argument("--upstream-port", type=int, default=8443)
    ap.add_argument("--token-file", help="server mode: a bearer token to send an MCP initialize with")
    args = ap.parse_args()
    try:
        if args.mode == "syntax":
            prefix, _, _ = prepare(args.certs, args.upstream_port)
            nginx_test(prefix)
        elif args.mode == "sse":
            run_sse(args.certs)
        else:
            token = None
            if args.token_file:
                with open(args.token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            run_server(args.certs, args.upstream_port, token)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    except (OSError, http.client.HTTPException) as e:
        print(f"FAIL: {type(e).__name__}: {e} (a timeout on the event stream means buffering)")
        return 1
    finally:
        for prefix in PREFIXES:
            shutil.rmtree(prefix, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
