//! Capacity (issue 3): a real server holds 1,000 legacy SSE streams at once and every stream
//! receives every heartbeat. The load tool (`task-mcp-load streams`) opens and reads the streams
//! from its own process over TLS; the test also watches the server's own stream count, so the
//! thousand streams are seen open at the same moment from both sides.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::support::{TOKEN, TestServer};

const STREAMS: usize = 1000;
const HEARTBEAT_MS: u64 = 250;
/// Long enough for several heartbeats per stream, short enough for CI.
const HOLD_MS: u64 = 2000;
/// Descriptors per held stream on the server (its socket) plus the client's one,
/// all in reach of this process's limit, with room for the rest of the suite.
const FDS_PER_STREAM: u64 = 2;
const FDS_SPARE: u64 = 1024;

#[test]
fn a_thousand_sse_streams_are_held_at_once_and_each_gets_every_heartbeat() {
    ensure_fd_limit(STREAMS as u64 * FDS_PER_STREAM + FDS_SPARE);
    let heartbeat = HEARTBEAT_MS.to_string();
    let server = TestServer::start(&[
        ("HEARTBEAT_MS", &heartbeat),
        ("RATE_LIMIT", "0"),
        ("MAX_STREAMS", "2000"),
        // Every stream comes from 127.0.0.1: lift the per-address cap (default 64) above them.
        ("MAX_CONNECTIONS_PER_IP", "2000"),
    ]);
    let app = Arc::clone(&server.running.as_ref().unwrap().app);
    // Watch the server's count of open streams while the tool runs.
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done, app) = (Arc::clone(&peak), Arc::clone(&done), Arc::clone(&app));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                let n = app.counters.streams.load(Ordering::Acquire);
                peak.fetch_max(n, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_task-mcp-load"))
        .args(["streams", "--json", "--url"])
        .arg(format!("https://{}", server.addr))
        .arg("--ca")
        .arg(&server.cert)
        .args(["--token", TOKEN])
        .args(["--streams", &STREAMS.to_string()])
        .args(["--heartbeat-ms", &heartbeat])
        .args(["--hold", &format!("{HOLD_MS}ms")])
        .output()
        .expect("the load tool runs");
    done.store(true, Ordering::Release);
    watcher.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load tool failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
    assert_eq!(v["opened"], STREAMS, "streams opened: {v}");
    assert_eq!(v["early_closed"], 0, "{v}");
    assert_eq!(v["streams_missing_heartbeats"], 0, "{v}");
    let expected = HOLD_MS / HEARTBEAT_MS;
    assert!(
        v["heartbeats_per_stream_min"].as_u64().unwrap() >= expected - 1,
        "every stream sees about HOLD/HEARTBEAT heartbeats: {v}"
    );
    assert!(
        peak.load(Ordering::Acquire) >= STREAMS,
        "the server held {} streams at once, not {STREAMS}",
        peak.load(Ordering::Acquire)
    );
    // The client has gone: every stream thread notices the hang-up and ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.counters.streams.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(app.counters.streams.load(Ordering::Acquire), 0);
    server.stop();
}

/// Lifts this process's open-file limit to `need` (the hard limit too when allowed, as root in
/// CI), or fails with what to run.
fn ensure_fd_limit(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current.is_none_or(|c| c >= need) {
        return;
    }
    let hard = lim.maximum.map(|m| m.max(need));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(need),
            maximum: hard,
        },
    );
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= need,
        "open-file limit {now} is below the {need} this test needs: run `ulimit -n {need}` first"
    );
}

/// A streamed answer to a POST ends by itself, so the connection serves the next request instead
/// of costing a new TLS handshake per SSE-answered tool call.
#[test]
fn a_connection_carries_on_after_an_sse_answer() {
    let server = TestServer::start(&[("RATE_LIMIT", "0")]);
    let mut c = server.connect();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    for round in 0..3 {
        c.send(
            format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nAccept: text/event-stream\r\n\
                 Content-Length: {}\r\n\r\n{call}",
                call.len()
            )
            .as_bytes(),
        );
        let r = c.read_reply().expect("an SSE answer");
        assert_eq!(r.status, 200, "round {round}");
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_ne!(r.header("connection"), Some("close"), "round {round}");
        let text = r.text();
        assert!(
            text.contains("event: message") && text.contains(r#""id":7"#),
            "{text}"
        );
    }
    let ping = r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#;
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\n\r\n{ping}",
            ping.len()
        )
        .as_bytes(),
    );
    let r = c
        .read_reply()
        .expect("the next answer on the same connection");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], 8);
    server.stop();
}

/// Every request mode of the load tool gets only correct answers from a real server, so its
/// figures count real work (a wrong body or status would show up as a failure here).
#[test]
fn every_load_tool_request_mode_gets_correct_answers() {
    let server = TestServer::start(&[("RATE_LIMIT", "0")]);
    for mode in [
        "ping",
        "call",
        "call --sse",
        "call --progress",
        "seed-ndjson",
        "seed-sse",
        "ping --new-conn",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_task-mcp-load"))
            .args(mode.split(' '))
            .args(["--json", "-n", "60", "-c", "4", "--timeout", "10s", "--url"])
            .arg(format!("https://{}", server.addr))
            .arg("--ca")
            .arg(&server.cert)
            .args(["--token", TOKEN])
            .output()
            .expect("the load tool runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {stdout}");
        let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
        assert_eq!(v["failed"], 0, "{mode}: {v}");
        assert_eq!(v["requests"], 60, "{mode}: {v}");
        let opened = v["connections_opened"].as_u64().unwrap();
        if mode.ends_with("--new-conn") {
            assert_eq!(opened, 60, "{mode}: one connection per request");
        } else {
            assert_eq!(opened, 4, "{mode}: keep-alive, SSE answers included: {v}");
        }
    }
    server.stop();
}

#[test]
fn a_held_stream_whose_client_stops_reading_is_cut_off_and_the_server_serves_on() {
    let s = TestServer::start(&[("WRITE_TIMEOUT_MS", "500"), ("RATE_LIMIT", "0")]);
    let app = Arc::clone(&s.running.as_ref().unwrap().app);
    let mut reader = s.connect();
    // A small receive window: the client's side fills after a few broadcasts.
    rustix::net::sockopt::set_socket_recv_buffer_size(&reader.tls.sock, 4096).unwrap();
    reader.send(
        format!(
            "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(reader.read_stream_head().status, 200);
    assert!(reader.next_chunk().is_some(), "the endpoint event");
    assert_eq!(app.counters.streams.load(Ordering::Acquire), 1);
    // The client reads nothing more while the server broadcasts 64 KiB messages.
    let pad = "x".repeat(64 * 1024);
    let body =
        format!(r#"{{"message":{{"jsonrpc":"2.0","method":"x","params":{{"pad":"{pad}"}}}}}}"#);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while app.counters.streams.load(Ordering::Acquire) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream was not cut off after {sent} broadcasts"
        );
        let r = s.request(&format!(
            "POST /sse/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        assert_eq!(r.status, 200, "{}", r.text());
        sent += 1;
    }
    // Cut off: the client sees its connection end; others are served.
    assert_eq!(s.get("/health/live").status, 200);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut reader.tls, &mut rest);
}
