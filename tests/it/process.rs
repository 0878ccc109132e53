//! The real binary as a process: graceful shutdown on SIGTERM, certificate reload on SIGHUP,
//! refusal of unsafe settings, the CLI's subcommands.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Client, TOKEN, temp_root};

const BIN: &str = env!("CARGO_BIN_EXE_task-mcp");

struct Proc {
    child: Child,
    addr: SocketAddr,
    /// The server's stderr lines after the "listening" line.
    log: std::sync::mpsc::Receiver<String>,
}

fn spawn(root: &Path, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env_clear()
        .env("PORT", "0")
        .env("TASK_MCP_ROOT", root)
        .env("AUTH_TOKENS", TOKEN)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let line = lines.next().expect("stderr closed").unwrap();
        if let Some(rest) = line.split("listening on https://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe; a test may read the lines.
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Proc { child, addr, log }
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(p.child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(p: &mut Proc, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(st) = p.child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let root = temp_root();
    let mut p = spawn(&root, &[("SHUTDOWN_GRACE_MS", "5000")]);
    let cert = root.join(".task-mcp/tls-cert.pem");
    let mut c = Client::connect(p.addr, &cert);
    // Half a request is in flight when the signal arrives.
    c.send(format!("POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 4\r\n\r\n{{}}").as_bytes());
    std::thread::sleep(Duration::from_millis(100));
    signal(&p, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    c.send(b"  ");
    let r = c.read_reply().expect("the in-flight request is answered");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "draining closes keep-alive"
    );
    assert_eq!(wait_exit(&mut p, Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn sigterm_with_idle_connections_exits_promptly() {
    let root = temp_root();
    let mut p = spawn(
        &root,
        &[("SHUTDOWN_GRACE_MS", "10000"), ("IDLE_TIMEOUT_MS", "60000")],
    );
    let cert = root.join(".task-mcp/tls-cert.pem");
    let mut idle = Client::connect(p.addr, &cert);
    idle.send(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(idle.read_reply().unwrap().status, 200);
    let started = Instant::now();
    signal(&p, "TERM");
    assert_eq!(wait_exit(&mut p, Duration::from_secs(8)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle connections do not hold the drain"
    );
    assert!(idle.closed());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let root = temp_root();
    let (a, fp_a) = task_mcp::net::tls::ensure_self_signed(&root.join("a")).unwrap();
    let (b, fp_b) = task_mcp::net::tls::ensure_self_signed(&root.join("b")).unwrap();
    assert_ne!(fp_a, fp_b);
    let cert = root.join("cert.pem");
    let key = root.join("key.pem");
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let mut p = spawn(
        &root,
        &[
            ("TLS_CERT", cert.to_str().unwrap()),
            ("TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let mut old = Client::connect(p.addr, &a.cert);
    // A bad pair is refused and the old one kept.
    std::fs::write(&cert, "garbage").unwrap();
    signal(&p, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    let _still_a = Client::connect(p.addr, &a.cert);
    // A good new pair is taken by new connections.
    std::fs::copy(&b.cert, &cert).unwrap();
    std::fs::copy(&b.key, &key).unwrap();
    signal(&p, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = std::panic::catch_unwind(|| Client::connect(p.addr, &b.cert)).is_ok();
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection made before the reload still works.
    old.send(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(old.read_reply().unwrap().status, 200);
    signal(&p, "TERM");
    assert_eq!(wait_exit(&mut p, Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_public_bind_without_certificate_and_tokens_is_refused_with_exit_2() {
    let root = temp_root();
    let out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .env("TASK_MCP_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen"));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn check_config_redacts_secrets_and_names_bad_settings() {
    let out = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("AUTH_TOKENS", "supersecret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AUTH_TOKENS=<redacted> (env)"));
    assert!(!text.contains("supersecret"));
    let out = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("MAX_BODY_BYTES", "huge")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_BODY_BYTES"));
}

#[test]
fn healthcheck_exits_zero_against_a_live_server_and_one_against_nothing() {
    let root = temp_root();
    let mut p = spawn(&root, &[]);
    let url = format!("https://{}/health/live", p.addr);
    let st = Command::new(BIN)
        .args(["healthcheck", &url])
        .env_clear()
        .env("TASK_MCP_ROOT", &root)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    // A live server answering something other than 200 (no token: 401): exit 1, naming it.
    let out = Command::new(BIN)
        .args(["healthcheck", &format!("https://{}/no-such-path", p.addr)])
        .env_clear()
        .env("TASK_MCP_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answered 401"), "{err}");
    signal(&p, "TERM");
    assert_eq!(wait_exit(&mut p, Duration::from_secs(10)), Some(0));
    let st = Command::new(BIN)
        .args(["healthcheck", &url])
        .env_clear()
        .env("TASK_MCP_ROOT", &root)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn version_and_help_work() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("task-mcp "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthcheck"));
}

#[test]
fn the_access_log_names_the_client_behind_a_trusted_proxy_not_the_proxy() {
    let root = temp_root();
    let mut p = spawn(
        &root,
        &[
            ("LOG_LEVEL", "info"),
            ("LOG_FORMAT", "json"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    );
    let cert = root.join(".task-mcp/tls-cert.pem");
    let mut c = Client::connect(p.addr, &cert);
    c.send(format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n").as_bytes());
    assert_eq!(c.read_reply().expect("an answer").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let access = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = p.log.recv_timeout(left).expect("an access log line");
        if line.contains("\"route\":\"/metrics\"") {
            break line;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&access).unwrap();
    assert_eq!(v["peer"], "198.51.100.7", "{access}");
    let _ = p.child.kill();
    let _ = p.child.wait();
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_streamed_answer_is_logged_when_it_ends_with_the_bytes_it_sent() {
    let root = temp_root();
    let mut p = spawn(
        &root,
        &[
            ("LOG_LEVEL", "info"),
            ("LOG_FORMAT", "json"),
            ("ENABLE_TEST_TOOLS", "true"),
        ],
    );
    let cert = root.join(".task-mcp/tls-cert.pem");
    let mut c = Client::connect(p.addr, &cert);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"steps":2,"step_ms":20},"_meta":{"progressToken":"p"}}}"#;
    c.send(format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let head = c.read_stream_head();
    assert_eq!(head.status, 200);
    let mut payload = 0;
    while let Some(chunk) = c.next_chunk() {
        payload += chunk.len();
    }
    assert!(payload > 100, "{payload}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let access = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = p.log.recv_timeout(left).expect("an access log line");
        if line.contains("\"route\":\"/mcp\"") {
            break line;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&access).unwrap();
    assert_eq!(v["bytes"], payload, "{access}");
    assert!(v["stream_ms"].as_f64().unwrap() >= 40.0, "{access}");
    let _ = p.child.kill();
    let _ = p.child.wait();
    let _ = std::fs::remove_dir_all(root);
}

/// Waits for a stderr line containing `needle` (the server logs each reload).
fn await_log(p: &Proc, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = p
            .log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn editing_the_tokens_file_takes_effect_without_a_restart_and_a_bad_file_keeps_the_old_one() {
    use task_mcp::security::auth::hash_token;
    let root = temp_root();
    let file = root.join("tokens.json");
    let entry = |name: &str, token: &str| serde_json::json!({"name": name, "sha256": hash_token(token), "role": "reader"});
    let (old_token, new_token) = ("old-token-0123456789abcdef", "new-token-0123456789abcdef");
    std::fs::write(
        &file,
        serde_json::json!([entry("old", old_token)]).to_string(),
    )
    .unwrap();
    let mut p = spawn(
        &root,
        &[
            ("AUTH_TOKENS", ""),
            ("AUTH_TOKENS_FILE", file.to_str().unwrap()),
            ("LOG_LEVEL", "info"),
        ],
    );
    let cert = root.join(".task-mcp/tls-cert.pem");
    let status = |token: &str| {
        let mut c = Client::connect(p.addr, &cert);
        c.send(
            format!(
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        );
        c.read_reply().expect("an answer")
    };
    assert_eq!(status(old_token).status, 200);
    assert_eq!(status(new_token).status, 401);
    // Replaced the way editors and config tools do: a new file renamed over the old one.
    let tmp = root.join("tokens.json.new");
    std::fs::write(
        &tmp,
        serde_json::json!([entry("new", new_token)]).to_string(),
    )
    .unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    await_log(&p, "tokens reloaded (file changed): 1 identities");
    assert_eq!(status(new_token).status, 200);
    assert_eq!(
        status(old_token).status,
        401,
        "a removed token is refused at once"
    );
    // A broken file is refused: the tokens in use stay, and the failure is counted.
    std::fs::write(&file, "[{\"name\": ").unwrap();
    await_log(&p, "AUTH_TOKENS_FILE reload (file changed) failed");
    let metrics = status(new_token);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains("config_reloads_total{what=\"tokens\",outcome=\"error\"} 1"),
        "{text}"
    );
    assert!(text.contains("config_reloads_total{what=\"tokens\",outcome=\"ok\"} 1"));
    // SIGHUP reloads too.
    std::fs::write(
        &file,
        serde_json::json!([entry("old", old_token)]).to_string(),
    )
    .unwrap();
    signal(&p, "HUP");
    await_log(&p, "tokens reloaded");
    assert_eq!(status(old_token).status, 200);
    let _ = p.child.kill();
    let _ = p.child.wait();
    let _ = std::fs::remove_dir_all(root);
}
