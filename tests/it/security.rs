//! Attacks tried against a real server over TLS, and what each got.
//!
//! Each test names an attack in its title and asserts the exact answer: status, headers and
//! body. Tokens come from the `hash-token` subcommand into an `AUTH_TOKENS_FILE`; the audit
//! file is checked by the `audit verify` subcommand; the shared limiter runs on a real
//! redis-server started here.
//!
//! | Attack | Answer |
//! |---|---|
//! | no token; a wrong or near-miss token (one bit, one char more or less, other case) | 401 + `WWW-Authenticate: Bearer realm=…[, error="invalid_token"]` |
//! | empty, spaced or 5 KB token; two different credentials | 400 `error="invalid_request"` |
//! | token in the query string | 401 unless `ALLOW_QUERY_TOKEN=true` |
//! | OAuth discovery probes | JSON 404; the RFC 9728 document when configured, named in 401s |
//! | reader calls a writing tool | JSON-RPC -32003, nothing written, audited |
//! | reader or writer on an admin endpoint | 403 `insufficient_scope`, audited |
//! | a burst past `RATE_LIMIT_BURST` | 429 + `Retry-After` + `RateLimit-*`; -32005 with `retryAfterMs` on `/mcp` |
//! | one identity from many addresses; many identities from one address | 429 from the identity's / address's bucket |
//! | a client that ignores `Retry-After` and resends at once on its connection | its next request is read only after `RATE_LIMIT_HOLD_MS` |
//! | a token with its own low `rateLimit` under a large server-wide burst | its burst is capped at its own rate |
//! | a spoofed `X-Forwarded-For` from an untrusted peer | ignored |
//! | a flood of distinct addresses and token names | buckets stay within `RATE_LIMIT_MAX_KEYS` |
//! | a foreign `Origin` (also `null`, http, look-alike host) | 403, no CORS headers; preflight too; on `/mcp` and `/messages` a JSON-RPC error (-32000) with the request id |
//! | a rebinding `Host` | 403; 400 when not a host |
//! | a denied address (`IP_DENY`, outside `IP_ALLOW`) | closed before the TLS handshake |
//! | a denied client behind a trusted proxy, also with a forged left hop | 403 `IP_DENIED` |
//! | one address opening connections past its cap | 503 `Retry-After: 1` |
//! | requests past `MAX_IN_FLIGHT`; streams past `MAX_STREAMS` | 503 with `Retry-After` |
//! | an edited or deleted audit line | `audit verify` exits 1 naming line 3 |
//! | a replica-hopping client | one bucket shared through Redis; Redis down: 429 (closed) or local (open) |
//! | a bad CIDR in the settings | `check-config` exits 2 naming it |

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use task_mcp::security::ratelimit::{Key, Limiter, Quota};

use crate::support::{Client, Reply, TOKEN, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_task-mcp");
const READER: &str = "reader-token-0123456789abcdef";
const WRITER: &str = "writer-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";

// --- helpers -----------------------------------------------------------------------------

/// One request on a fresh connection: `Host: 127.0.0.1:<port>` (as browsers send it), the given extra header lines, a body.
fn send(s: &TestServer, method: &str, path: &str, headers: &[&str], body: &str) -> Reply {
    let port = s.addr.port();
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    if method == "POST" {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    s.request(&raw)
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// A JSON-RPC request to `/mcp` with the token.
fn rpc(s: &TestServer, token: &str, id: u64, method: &str, params: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    send(
        s,
        "POST",
        "/mcp",
        &[
            &bearer(token),
            "Accept: application/json",
            "MCP-Protocol-Version: 2025-11-25",
        ],
        &body.to_string(),
    )
}

/// A tool call answered over SSE (the tool runs on its own thread), as its final message.
fn call_tool(s: &TestServer, token: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let r = send(
        s,
        "POST",
        "/mcp",
        &[
            &bearer(token),
            "Accept: text/event-stream",
            "MCP-Protocol-Version: 2025-11-25",
        ],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    if r.header("Content-Type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        let text = r.text();
        let last = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("an SSE message");
        serde_json::from_str(last).unwrap()
    } else {
        r.json()
    }
}

/// `task-mcp hash-token` with the token on stdin.
fn hash_token(token: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An AUTH_TOKENS_FILE with a reader, a writer (own rate limit 6000/min) and an admin, hashed
/// by the real `hash-token` subcommand.
fn tokens_file(dir: &Path) -> PathBuf {
    let entries = json!([
        {"name": "rita", "sha256": hash_token(READER), "role": "reader"},
        {"name": "wes", "sha256": hash_token(WRITER), "role": "writer", "rateLimit": 6000},
        {"name": "ada", "sha256": hash_token(ADMIN), "role": "admin"},
    ]);
    let path = dir.join(format!("tokens-{}.json", std::process::id()));
    std::fs::write(&path, entries.to_string()).unwrap();
    path
}

fn with_roles(extra: &[(&str, &str)]) -> TestServer {
    let dir = crate::support::temp_root();
    let file = tokens_file(&dir);
    let file = file.display().to_string();
    let mut env = vec![("AUTH_TOKENS", ""), ("AUTH_TOKENS_FILE", file.as_str())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

fn audit_verify(files: &[&Path]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("audit")
        .arg("verify")
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A TLS handshake with the server: `false` when the server closed the socket instead.
fn handshake_succeeds(s: &TestServer) -> bool {
    let conn = rustls::ClientConnection::new(
        crate::support::client_config(&s.cert),
        rustls::pki_types::ServerName::try_from("127.0.0.1")
            .unwrap()
            .to_owned(),
    )
    .unwrap();
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, &mut sock);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(tls.sock).is_err() {
            return false;
        }
    }
    true
}

// --- authentication -----------------------------------------------------------------------

#[test]
fn missing_wrong_malformed_and_near_miss_tokens_are_refused() {
    let s = TestServer::start(&[]);
    let get = |headers: &[&str]| send(&s, "GET", "/metrics", headers, "");

    let none = get(&[]);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("WWW-Authenticate"),
        Some("Bearer realm=\"task-mcp\"")
    );
    assert_eq!(none.json()["error"]["code"], "UNAUTHORIZED");

    let mut near_misses = vec![
        "not-the-token".to_string(),
        format!("{TOKEN}x"),
        TOKEN[..TOKEN.len() - 1].to_string(),
        TOKEN.to_uppercase(),
    ];
    let mut flipped = TOKEN.as_bytes().to_vec();
    flipped[0] ^= 1;
    near_misses.push(String::from_utf8(flipped).unwrap());
    for t in &near_misses {
        let r = get(&[&bearer(t)]);
        assert_eq!(r.status, 401, "token {t:?}");
        let challenge = r.header("WWW-Authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"task-mcp\", error=\"invalid_token\""),
            "{challenge}"
        );
    }

    for malformed in [
        "Authorization: Bearer".to_string(),
        "Authorization: Bearer a b".to_string(),
        format!("Authorization: Bearer {}", "x".repeat(5000)),
    ] {
        let r = get(&[&malformed]);
        assert_eq!(r.status, 400, "{malformed:.40}");
        assert!(
            r.header("WWW-Authenticate")
                .unwrap()
                .contains("error=\"invalid_request\"")
        );
    }
    // Two different credentials at once: which one is meant is ambiguous.
    let two = get(&[&bearer(TOKEN), "X-API-Key: other-token"]);
    assert_eq!(two.status, 400);
    // Another scheme carries no token of ours.
    assert_eq!(get(&["Authorization: Basic dXNlcjpwYXNz"]).status, 401);

    // The accepted forms.
    assert_eq!(get(&[&bearer(TOKEN)]).status, 200);
    assert_eq!(
        get(&[&format!("Authorization: bearer {TOKEN}")]).status,
        200
    );
    assert_eq!(get(&[&format!("X-API-Key: {TOKEN}")]).status, 200);
    assert_eq!(
        get(&[&format!("Authorization: ApiKey {TOKEN}")]).status,
        200
    );
}

#[test]
fn a_token_in_the_query_is_ignored_unless_allow_query_token_is_set() {
    let s = TestServer::start(&[]);
    let r = send(
        &s,
        "GET",
        &format!("/metrics?access_token={TOKEN}"),
        &[],
        "",
    );
    assert_eq!(r.status, 401);
    let s = TestServer::start(&[("ALLOW_QUERY_TOKEN", "true")]);
    let r = send(
        &s,
        "GET",
        &format!("/metrics?access_token={TOKEN}"),
        &[],
        "",
    );
    assert_eq!(r.status, 200);
    let r = send(&s, "GET", "/metrics?access_token=wrong", &[], "");
    assert_eq!(r.status, 401);
}

#[test]
fn health_and_the_status_page_need_no_token() {
    let s = TestServer::start(&[]);
    for path in [
        "/health/live",
        "/healthz",
        "/health/ready",
        "/readyz",
        "/health/metrics",
        "/",
    ] {
        assert_eq!(send(&s, "GET", path, &[], "").status, 200, "{path}");
    }
    assert_eq!(send(&s, "POST", "/mcp", &[], "{}").status, 401);
    assert_eq!(send(&s, "GET", "/sse", &[], "").status, 401);
}

#[test]
fn oauth_discovery_gets_json_404s_and_the_metadata_when_configured() {
    let s = TestServer::start(&[]);
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/register",
    ] {
        let r = send(&s, "GET", path, &[], "");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["error"]["code"], "NOT_FOUND");
    }
    let url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
    let s = TestServer::start(&[("OAUTH_RESOURCE_METADATA", url)]);
    let r = send(
        &s,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["resource"], "https://mcp.example.com/mcp");
    assert_eq!(r.json()["bearer_methods_supported"], json!(["header"]));
    let r = send(&s, "POST", "/mcp", &[], "{}");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate").unwrap(),
        format!("Bearer realm=\"task-mcp\", resource_metadata=\"{url}\"")
    );
    assert_eq!(
        send(
            &s,
            "GET",
            "/.well-known/oauth-authorization-server",
            &[],
            ""
        )
        .status,
        404
    );
}

// --- roles --------------------------------------------------------------------------------

#[test]
fn each_role_against_each_tool_and_admin_endpoint() {
    let s = with_roles(&[("DEBUG_ENDPOINTS", "true")]);

    // tools/list shows each role only what it may call.
    let names = |token: &str| -> Vec<String> {
        let r = rpc(&s, token, 1, "tools/list", json!({}));
        r.json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let reader_tools = names(READER);
    assert!(reader_tools.contains(&"change_list".to_string()));
    assert!(!reader_tools.contains(&"change_open".to_string()));
    assert!(!reader_tools.contains(&"change_write".to_string()));
    assert!(!reader_tools.contains(&"change_archive".to_string()));
    assert!(names(WRITER).contains(&"change_archive".to_string()));

    // A reader calling a writing tool: JSON-RPC -32003, nothing written.
    for tool in ["change_open", "change_write", "change_archive"] {
        let v = call_tool(&s, READER, tool, json!({"slug": "add-thing"}));
        assert_eq!(v["error"]["code"], -32003, "{tool}: {v}");
        assert_eq!(v["error"]["data"]["tool"], tool);
    }
    assert!(!s.root.join("openspec/changes/add-thing").exists());
    // A reader may read.
    let v = call_tool(&s, READER, "change_list", json!({}));
    assert!(v["result"].is_object(), "{v}");

    // A writer writes.
    let v = call_tool(&s, WRITER, "change_open", json!({"slug": "add-thing"}));
    assert_eq!(v["result"]["isError"], false, "{v}");
    assert!(s.root.join("openspec/changes/add-thing").is_dir());

    // Admin endpoints: reader and writer get 403 with an insufficient_scope challenge.
    let admin_paths = [
        ("GET", "/security/metrics", ""),
        ("GET", "/security/audit", ""),
        ("GET", "/sse/stats", ""),
        ("GET", "/debug/vars", ""),
        (
            "POST",
            "/sse/broadcast",
            r#"{"message":{"jsonrpc":"2.0","method":"x"}}"#,
        ),
    ];
    for token in [READER, WRITER] {
        for (method, path, body) in admin_paths {
            let r = send(&s, method, path, &[&bearer(token)], body);
            assert_eq!(r.status, 403, "{path}");
            assert!(
                r.header("WWW-Authenticate")
                    .unwrap()
                    .contains("error=\"insufficient_scope\", scope=\"mcp:admin\"")
            );
        }
    }
    for (method, path, body) in admin_paths {
        let r = send(&s, method, path, &[&bearer(ADMIN)], body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    // Every refusal and the writing call are in the audit ring, with address and request id.
    let recent = s.running.as_ref().unwrap().app.security.audit.recent(100);
    let forbidden_tools: Vec<_> = recent
        .iter()
        .filter(|r| r.outcome.starts_with("needs") && r.tool.is_some())
        .collect();
    assert_eq!(forbidden_tools.len(), 3);
    assert!(
        forbidden_tools
            .iter()
            .all(|r| r.identity.as_deref() == Some("rita") && r.ip.as_deref() == Some("127.0.0.1"))
    );
    let write = recent
        .iter()
        .find(|r| r.tool.as_deref() == Some("change_open") && r.outcome == "ok")
        .expect("the writing call is audited");
    assert_eq!(write.identity.as_deref(), Some("wes"));
    assert_eq!(write.slug.as_deref(), Some("add-thing"));
    assert!(write.request_id.is_some() && write.duration_ms.is_some());
    let endpoint_refusals = recent
        .iter()
        .filter(|r| r.outcome.ends_with("needs mcp:admin"))
        .count();
    assert_eq!(endpoint_refusals, 10);

    // The same ring over HTTP, for an admin, filtered.
    let r = send(
        &s,
        "GET",
        "/security/audit?identity=wes&event=tool_call",
        &[&bearer(ADMIN)],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["records"][0]["tool"], "change_open");
    assert_eq!(v["records"][0]["slug"], "add-thing");
    assert!(v["head"]["seq"].as_u64().unwrap() >= 11);
    let r = send(
        &s,
        "GET",
        "/security/audit?identity=rita&limit=2",
        &[&bearer(ADMIN)],
        "",
    );
    let v = r.json();
    assert_eq!(v["count"], 2);
    assert!(
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["identity"] == "rita")
    );
    let r = send(
        &s,
        "GET",
        "/security/audit?since=soon",
        &[&bearer(ADMIN)],
        "",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RFC 3339")
    );
}

// --- rate limits --------------------------------------------------------------------------

#[test]
fn rate_limit_is_exact_with_burst_and_refill_under_an_injected_clock() {
    // 60 a minute = one token a second, bucket of 3.
    let t0 = Instant::now();
    let l = Limiter::new(Quota::new(60, 3).unwrap(), 1000, t0);
    let k = Key::Token("ada".into());
    for left in [2, 1, 0] {
        let d = l.check(&k, 1, t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, left);
    }
    let denied = l.check(&k, 1, t0);
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Some(Duration::from_secs(1)));
    assert!(!l.check(&k, 1, t0 + Duration::from_millis(999)).allowed);
    assert!(l.check(&k, 1, t0 + Duration::from_secs(1)).allowed);
    assert!(!l.check(&k, 1, t0 + Duration::from_secs(1)).allowed);
    // Another key has its own bucket.
    assert!(l.check(&Key::Token("bob".into()), 1, t0).allowed);
    // After the full refill time the bucket holds the burst again, never more.
    let later = t0 + Duration::from_secs(3600);
    for _ in 0..3 {
        assert!(l.check(&k, 1, later).allowed);
    }
    assert!(!l.check(&k, 1, later).allowed);
}

#[test]
fn a_flood_past_the_burst_gets_429_with_headers_and_mcp_callers_get_32005() {
    let s = TestServer::start(&[("RATE_LIMIT", "60"), ("RATE_LIMIT_BURST", "3")]);
    for left in ["2", "1", "0"] {
        let r = rpc(&s, TOKEN, 1, "ping", json!({}));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("RateLimit-Limit"), Some("3"));
        assert_eq!(r.header("RateLimit-Remaining"), Some(left));
    }
    let r = rpc(&s, TOKEN, 42, "ping", json!({}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(r.header("RateLimit-Limit"), Some("3"));
    assert_eq!(r.header("RateLimit-Remaining"), Some("0"));
    assert!(r.header("RateLimit-Reset").is_some());
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], 42);
    assert_eq!(v["error"]["code"], -32005);
    let wait = v["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!((1..=1000).contains(&wait), "{wait}");
    // A non-MCP endpoint gets the error JSON.
    let r = send(&s, "GET", "/metrics", &[&bearer(TOKEN)], "");
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "RATE_LIMITED");
    // Health probes are never limited.
    assert_eq!(send(&s, "GET", "/health/live", &[], "").status, 200);
    // The hits are counted for Prometheus and /security/metrics.
    let sec = &s.running.as_ref().unwrap().app.security;
    assert_eq!(sec.metrics.to_json(10)["rateLimit"]["hits"], 2);
}

#[test]
fn a_client_resending_at_once_after_429_waits_on_its_connection() {
    const HOLD_MS: u64 = 400;
    let s = TestServer::start(&[
        ("RATE_LIMIT", "60"),
        ("RATE_LIMIT_BURST", "1"),
        ("RATE_LIMIT_HOLD_MS", &HOLD_MS.to_string()),
    ]);
    let port = s.addr.port();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\r\n\r\n",
        bearer(TOKEN)
    );
    let mut c = s.connect();
    c.send(req.as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 200);
    c.send(req.as_bytes());
    let refused = c.read_reply().unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    // Resent at once, ignoring Retry-After: the server leaves it unread for the hold.
    let sent = Instant::now();
    c.send(req.as_bytes());
    let again = c
        .read_reply()
        .expect("answered after the hold, not dropped");
    let waited = sent.elapsed();
    assert_eq!(
        again.status, 429,
        "one token a second: still empty after 400 ms"
    );
    assert!(
        waited >= Duration::from_millis(HOLD_MS - 50),
        "answered after {waited:?}, before the {HOLD_MS} ms hold"
    );
}

#[test]
fn clients_held_after_429_hold_no_worker() {
    let s = TestServer::start(&[
        ("WORKER_THREADS", "2"),
        ("RATE_LIMIT", "60"),
        ("RATE_LIMIT_BURST", "1"),
        ("RATE_LIMIT_HOLD_MS", "20000"),
    ]);
    let port = s.addr.port();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\r\n\r\n",
        bearer(TOKEN)
    );
    // Four connections refused and resending at once: each is held for 20 s.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = s.connect();
        c.send(req.as_bytes());
        let status = c.read_reply().unwrap().status;
        if status == 429 {
            c.send(req.as_bytes());
            held.push(c);
        }
    }
    assert!(held.len() >= 3, "the burst of one is spent");
    // Two workers, more held clients than that: the health check is answered at once.
    let started = Instant::now();
    assert_eq!(send(&s, "GET", "/health/live", &[], "").status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_token_with_its_own_low_rate_gets_a_burst_no_larger_than_that_rate() {
    // The server-wide burst is huge; the `noisy` token's own rate is 2 a minute.
    let dir = crate::support::temp_root();
    let file = dir.join("tokens.json");
    let noisy = "noisy-0123456789abcdef0123456789abcdef";
    std::fs::write(
        &file,
        json!([{"name": "noisy", "sha256": task_mcp::security::auth::hash_token(noisy),
                "role": "writer", "rateLimit": 2}])
        .to_string(),
    )
    .unwrap();
    let s = TestServer::start(&[
        ("AUTH_TOKENS", ""),
        ("AUTH_TOKENS_FILE", file.to_str().unwrap()),
        ("RATE_LIMIT", "6000000"),
        ("RATE_LIMIT_BURST", "100000"),
    ]);
    let statuses: Vec<u16> = (0..4)
        .map(|_| send(&s, "GET", "/metrics", &[&bearer(noisy)], "").status)
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_identity_is_limited_across_addresses_and_one_address_across_identities() {
    // Behind a trusted proxy each request comes from a new client address, so only the
    // identity's bucket can stop the flood.
    let s = with_roles(&[
        ("RATE_LIMIT", "60"),
        ("RATE_LIMIT_BURST", "3"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ]);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let xff = format!("X-Forwarded-For: 198.51.100.{i}");
        statuses.push(send(&s, "GET", "/metrics", &[&bearer(ADMIN), &xff], "").status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let recent = s.running.as_ref().unwrap().app.security.audit.recent(10);
    let hit = recent.last().unwrap();
    assert_eq!(hit.outcome, "t:ada");
    assert_eq!(hit.identity.as_deref(), Some("ada"));
    assert_eq!(hit.ip.as_deref(), Some("198.51.100.3"));
    // Two identities from one address share that address's bucket: the fourth request is
    // refused whoever sends it. (An identity's own rateLimit is checked with an injected clock
    // in `security::gate::tests::an_identity_with_its_own_rate_gets_its_own_quota`.)
    let mut statuses = Vec::new();
    for token in [READER, WRITER, READER, WRITER] {
        let xff = "X-Forwarded-For: 203.0.113.7";
        statuses.push(send(&s, "GET", "/metrics", &[&bearer(token), xff], "").status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}

#[test]
fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let s = TestServer::start(&[("RATE_LIMIT", "60"), ("RATE_LIMIT_BURST", "2")]);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let xff = format!("X-Forwarded-For: 192.0.2.{i}");
        // Unauthenticated: the address bucket comes first, so token guessing is limited too.
        statuses.push(send(&s, "GET", "/metrics", &[&xff], "").status);
    }
    assert_eq!(statuses, [401, 401, 429]);
    let recent = s.running.as_ref().unwrap().app.security.audit.recent(10);
    assert!(recent.iter().all(|r| r.ip.as_deref() == Some("127.0.0.1")));
}

#[test]
fn a_flood_of_distinct_addresses_and_tokens_keeps_limiter_memory_bounded() {
    let s = TestServer::start(&[
        ("RATE_LIMIT_MAX_KEYS", "64"),
        ("RATE_LIMIT", "60"),
        ("RATE_LIMIT_BURST", "1000"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ]);
    let mut c = s.connect();
    for i in 0..600u32 {
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 10.{}.{}.{}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
        c.send(req.as_bytes());
        assert_eq!(c.read_reply().unwrap().status, 200);
    }
    let sec = &s.running.as_ref().unwrap().app.security;
    let buckets = sec.rate_buckets();
    assert!(buckets > 0 && buckets <= 64, "{buckets} buckets");
    // A flood of token names straight at the limiter (only configured identities reach it
    // over the wire) stays within the bound too.
    let t0 = Instant::now();
    let l = Limiter::new(Quota::new(60, 10).unwrap(), 1024, t0);
    for i in 0..100_000u32 {
        l.check(&Key::Token(format!("id-{i}")), 1, t0);
    }
    assert!(
        l.len() <= l.max_keys() && l.max_keys() <= 1024,
        "{}",
        l.len()
    );
}

// --- browsers: Origin, preflight, Host ----------------------------------------------------

#[test]
fn preflight_origin_and_host_refusals() {
    let good = "https://app.example.com";
    let s = TestServer::start(&[("ALLOWED_ORIGINS", good)]);
    let origin = format!("Origin: {good}");

    let r = send(
        &s,
        "OPTIONS",
        "/mcp",
        &[&origin, "Access-Control-Request-Method: POST"],
        "",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some(good));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    let allowed = r.header("Access-Control-Allow-Headers").unwrap();
    for h in [
        "Authorization",
        "Content-Type",
        "Mcp-Session-Id",
        "MCP-Protocol-Version",
        "Last-Event-ID",
        "X-API-Key",
    ] {
        assert!(allowed.contains(h), "{h} missing from {allowed}");
    }
    assert_eq!(r.header("Vary"), Some("Origin"));

    // An allowed origin can read the session id and the challenge of a real answer.
    for (token, status) in [(TOKEN, 200), ("wrong", 401)] {
        let r = send(&s, "GET", "/metrics", &[&origin, &bearer(token)], "");
        assert_eq!(r.status, status);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some(good));
        let expose = r.header("Access-Control-Expose-Headers").unwrap();
        assert!(
            expose.starts_with("Mcp-Session-Id, WWW-Authenticate"),
            "{expose}"
        );
        assert_eq!(r.header("Vary"), Some("Origin"));
    }
    // Without an Origin there are no CORS headers.
    let r = send(&s, "GET", "/metrics", &[&bearer(TOKEN)], "");
    assert!(r.header("Access-Control-Allow-Origin").is_none());

    // Other origins, even with a valid token, and even for a preflight: 403.
    for evil in [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let o = format!("Origin: {evil}");
        // The MCP endpoint answers in JSON-RPC, the status kept; other paths in the error JSON.
        let r = send(&s, "POST", "/mcp", &[&o, &bearer(TOKEN)], r#"{"id":4}"#);
        assert_eq!(r.status, 403, "{evil}");
        let v = r.json();
        assert_eq!((&v["jsonrpc"], &v["id"]), (&json!("2.0"), &json!(4)), "{v}");
        assert_eq!(v["error"]["code"], -32000, "{v}");
        assert_eq!(v["error"]["data"]["code"], "ORIGIN_NOT_ALLOWED", "{v}");
        let r = send(&s, "GET", "/metrics", &[&o, &bearer(TOKEN)], "");
        assert_eq!(r.status, 403, "{evil}");
        assert_eq!(r.json()["error"]["code"], "ORIGIN_NOT_ALLOWED");
        assert!(r.header("Access-Control-Allow-Origin").is_none());
        assert_eq!(send(&s, "OPTIONS", "/mcp", &[&o], "").status, 403);
    }

    // The server's own pages post with their own origin: same-origin, no CORS headers.
    let own = format!("Origin: https://127.0.0.1:{}", s.addr.port());
    let r = send(&s, "POST", "/mcp", &[&own, &bearer(TOKEN)], "{}");
    assert_ne!(r.status, 403, "{}", r.text());
    assert!(r.header("Access-Control-Allow-Origin").is_none());
    // ... but only over https and on this port.
    let other_port = format!("Origin: https://127.0.0.1:{}", s.addr.port() ^ 1);
    assert_eq!(
        send(&s, "POST", "/mcp", &[&other_port, &bearer(TOKEN)], "{}").status,
        403
    );

    // DNS rebinding: a loopback server answers loopback names only.
    let host = |h: &str| {
        s.request(&format!(
            "GET /metrics HTTP/1.1\r\nHost: {h}\r\n{}\r\nConnection: close\r\n\r\n",
            bearer(TOKEN)
        ))
    };
    assert_eq!(host("attacker.example").status, 403);
    assert_eq!(
        host("attacker.example").json()["error"]["code"],
        "HOST_NOT_ALLOWED"
    );
    assert_eq!(host("127.0.0.1.attacker.example:8443").status, 403);
    assert_eq!(host("a b").status, 400);
    assert_eq!(host("localhost:8443").status, 200);
    assert_eq!(host("[::1]:8443").status, 200);
    let sec = &s.running.as_ref().unwrap().app.security;
    let net = &sec.metrics.to_json(10)["network"];
    assert_eq!(net["originDenied"], 13);
    assert_eq!(net["hostDenied"], 3);
}

// --- network limits -----------------------------------------------------------------------

#[test]
fn a_denied_address_is_closed_before_the_tls_handshake() {
    for env in [
        [("IP_DENY", "127.0.0.1/32"), ("IP_ALLOW", "")],
        [("IP_DENY", ""), ("IP_ALLOW", "10.0.0.0/8, 2001:db8::/32")],
        [("IP_DENY", "127.0.0.0/8"), ("IP_ALLOW", "127.0.0.1/32")],
    ] {
        let s = TestServer::start(&env);
        assert!(!handshake_succeeds(&s), "{env:?}");
    }
    let s = TestServer::start(&[("IP_ALLOW", "127.0.0.0/8")]);
    assert!(handshake_succeeds(&s));
    assert_eq!(s.get("/metrics").status, 200);
}

#[test]
fn a_denied_client_behind_a_trusted_proxy_gets_403() {
    let s = TestServer::start(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("IP_DENY", "203.0.113.0/24"),
    ]);
    let denied = send(
        &s,
        "GET",
        "/metrics",
        &[&bearer(TOKEN), "X-Forwarded-For: 203.0.113.9"],
        "",
    );
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["error"]["code"], "IP_DENIED");
    // The client cannot hide behind a forged hop on the left: the rightmost untrusted wins.
    let forged = send(
        &s,
        "GET",
        "/metrics",
        &[&bearer(TOKEN), "X-Forwarded-For: 198.51.100.1, 203.0.113.9"],
        "",
    );
    assert_eq!(forged.status, 403);
    let ok = send(
        &s,
        "GET",
        "/metrics",
        &[&bearer(TOKEN), "X-Forwarded-For: 198.51.100.1"],
        "",
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn one_address_holding_its_connection_cap_gets_503_for_the_next() {
    let s = TestServer::start(&[("MAX_CONNECTIONS_PER_IP", "2")]);
    let a = s.connect();
    let _b = s.connect();
    let mut c = Client::connect(s.addr, &s.cert);
    let r = c.read_reply().expect("a 503 from the refuser");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    // Closing one frees its slot (the server sees the close asynchronously: bounded poll).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = s.connect();
        d.send(
            format!(
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\nConnection: close\r\n\r\n",
                bearer(TOKEN)
            )
            .as_bytes(),
        );
        let status = d.read_reply().map(|r| r.status);
        if status == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn requests_over_the_in_flight_cap_get_503_with_retry_after() {
    let s = TestServer::start(&[("MAX_IN_FLIGHT", "1")]);
    let mut slow = s.connect();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"steps": 1, "step_ms": 3000}}})
    .to_string();
    slow.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            bearer(TOKEN),
            body.len()
        )
        .as_bytes(),
    );
    // Wait (bounded) until the slow call holds the only slot, then knock.
    let sec = std::sync::Arc::clone(&s.running.as_ref().unwrap().app.security);
    let deadline = Instant::now() + Duration::from_secs(2);
    while sec.in_flight() == 0 {
        assert!(Instant::now() < deadline, "the slow call never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = s.get("/metrics");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "OVERLOADED");
    // Probes still answer.
    assert_eq!(send(&s, "GET", "/health/live", &[], "").status, 200);
    assert_eq!(slow.read_reply().unwrap().status, 200);
    assert_eq!(s.get("/metrics").status, 200);
}

#[test]
fn streams_over_max_streams_get_503() {
    let s = TestServer::start(&[("MAX_STREAMS", "1")]);
    let open = format!(
        "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\nAccept: text/event-stream\r\n\r\n",
        bearer(TOKEN)
    );
    let mut first = s.connect();
    first.send(open.as_bytes());
    assert_eq!(first.read_stream_head().status, 200);
    let mut second = s.connect();
    second.send(open.as_bytes());
    let r = second.read_reply().unwrap();
    assert_eq!(r.status, 503);
    assert!(r.header("Retry-After").is_some());
}

// --- audit ---------------------------------------------------------------------------------

#[test]
fn the_audit_chain_catches_an_edited_line_and_a_deleted_line() {
    let dir = crate::support::temp_root();
    let log = dir.join("audit.log");
    let s = TestServer::start(&[("AUDIT_LOG", log.to_str().unwrap())]);
    for i in 0..5 {
        let r = send(&s, "GET", "/metrics", &[&bearer(&format!("guess-{i}"))], "");
        assert_eq!(r.status, 401);
    }
    s.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["event"], "auth_failure");
    assert_eq!(first["outcome"], "invalid");
    assert_eq!(first["ip"], "127.0.0.1");
    assert!(first["requestId"].is_string());

    let (ok, out) = audit_verify(&[&log]);
    assert!(ok, "{out}");
    assert!(out.contains("5 record(s)"), "{out}");

    let edited = dir.join("edited.log");
    let mut copy: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    copy[2] = copy[2].replace("\"invalid\"", "\"missing\"");
    std::fs::write(&edited, copy.join("\n") + "\n").unwrap();
    let (ok, out) = audit_verify(&[&edited]);
    assert!(!ok);
    assert!(out.contains("line 3"), "{out}");

    let deleted = dir.join("deleted.log");
    let mut copy: Vec<&str> = lines.clone();
    copy.remove(2);
    std::fs::write(&deleted, copy.join("\n") + "\n").unwrap();
    let (ok, out) = audit_verify(&[&deleted]);
    assert!(!ok);
    assert!(out.contains("line 3"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn security_metrics_show_failures_and_top_offenders_to_admins_only() {
    let s = with_roles(&[("TRUSTED_PROXIES", "127.0.0.1/32")]);
    for _ in 0..3 {
        send(
            &s,
            "GET",
            "/metrics",
            &[&bearer("nope"), "X-Forwarded-For: 192.0.2.66"],
            "",
        );
    }
    send(&s, "GET", "/metrics", &[&bearer(READER)], "");
    let r = send(&s, "GET", "/security/metrics", &[&bearer(ADMIN)], "");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["authentication"]["failures"], 3);
    assert_eq!(v["authentication"]["successes"], 2);
    assert_eq!(v["topOffenders"]["byIp"][0]["ip"], "192.0.2.66", "{v}");
    assert_eq!(v["audit"]["lastSeq"], 3);
    let prom = send(&s, "GET", "/metrics", &[&bearer(ADMIN)], "").text();
    assert!(
        prom.contains("auth_attempts_total{result=\"failure\"} 3"),
        "{prom}"
    );
    assert!(prom.contains("rate_limit_hits_total"));
}

// --- shared limits through a real redis-server ---------------------------------------------

/// A redis-server on a free loopback port, killed on drop. Live tier only: a missing binary
/// fails the test with its install command.
#[cfg(feature = "live")]
struct Redis {
    child: std::process::Child,
    port: u16,
}

#[cfg(feature = "live")]
impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server must be installed (apt-get install redis-server): {e}")
            });
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }
}

#[cfg(feature = "live")]
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "live")]
#[test]
fn two_replicas_share_one_bucket_through_redis() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let env = [
        ("RATE_LIMIT", "60"),
        ("RATE_LIMIT_BURST", "3"),
        ("RATE_LIMIT_REDIS_URL", url.as_str()),
        ("RATE_LIMIT_REDIS_FAIL", "closed"),
    ];
    let a = TestServer::start(&env);
    let b = TestServer::start(&env);
    let statuses: Vec<u16> = [&a, &a, &b, &b]
        .iter()
        .map(|s| s.get("/metrics").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = rpc(&a, TOKEN, 5, "ping", json!({}));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], -32005);
    drop(redis);
}

#[test]
fn an_unreachable_redis_fails_closed_or_open_as_configured() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    let closed = TestServer::start(&[
        ("RATE_LIMIT_REDIS_URL", url.as_str()),
        ("RATE_LIMIT_REDIS_FAIL", "closed"),
    ]);
    let r = closed.get("/metrics");
    assert_eq!(r.status, 429);
    assert!(r.header("Retry-After").is_some());
    let open = TestServer::start(&[
        ("RATE_LIMIT_REDIS_URL", url.as_str()),
        ("RATE_LIMIT_REDIS_FAIL", "open"),
    ]);
    assert_eq!(open.get("/metrics").status, 200);
}

#[test]
fn hash_token_output_is_what_auth_tokens_file_accepts() {
    let out = Command::new(BIN)
        .args(["hash-token", "abc"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let s = with_roles(&[]);
    assert_eq!(
        send(&s, "GET", "/metrics", &[&bearer(WRITER)], "").status,
        200
    );
    assert_eq!(
        send(&s, "GET", "/metrics", &[&bearer(&hash_token(WRITER))], "").status,
        401
    );
}

#[test]
fn check_config_refuses_a_bad_cidr_with_exit_code_2() {
    let out = Command::new(BIN)
        .arg("check-config")
        .env("IP_DENY", "10.0.0.0/33")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IP_ALLOW/IP_DENY"), "{err}");
}
