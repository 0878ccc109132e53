//! HTTP/1.1 on the TLS port: every status the limits produce, keep-alive, pipelining,
//! deadlines and caps. After each refusal the server must still serve.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Client, TOKEN, TestServer};

const H: &str = "Host: 127.0.0.1\r\n";

fn still_serves(s: &TestServer) {
    let r = s.request(&format!(
        "GET /health/live HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn health_answers_with_request_id_and_security_headers() {
    let s = TestServer::start(&[]);
    let r = s.request(&format!(
        "GET /health/live HTTP/1.1\r\n{H}X-Request-Id: abc-123\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("strict-transport-security").is_some());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for alias in ["/healthz", "/readyz", "/health/ready"] {
        assert_eq!(
            s.request(&format!("GET {alias} HTTP/1.1\r\n{H}\r\n"))
                .status,
            200,
            "{alias}"
        );
    }
}

#[test]
fn a_malformed_request_id_is_replaced() {
    let s = TestServer::start(&[]);
    let r = s.request(&format!(
        "GET /health/live HTTP/1.1\r\n{H}X-Request-Id: bad id<>\r\n\r\n"
    ));
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "bad id<>");
    assert!(!id.is_empty());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    for _ in 0..5 {
        c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
        let r = c.read_reply().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.header("connection").is_none());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    let one = format!("GET /health/live HTTP/1.1\r\n{H}X-Request-Id: r1\r\n\r\n");
    let two = format!("GET /health/ready HTTP/1.1\r\n{H}X-Request-Id: r2\r\n\r\n");
    let three = format!(
        "GET /nope HTTP/1.1\r\n{H}X-Request-Id: r3\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    c.send(format!("{one}{two}{three}").as_bytes());
    let ids: Vec<String> = (0..3)
        .map(|_| {
            c.read_reply()
                .unwrap()
                .header("x-request-id")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["r1", "r2", "r3"]);
}

#[test]
fn head_gets_the_length_but_no_body() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    c.send(format!("HEAD /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    // The reader would wait for Content-Length bytes: read the raw head instead.
    let mut raw = Vec::new();
    let mut b = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.tls.read(&mut b).unwrap();
        raw.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"));
    assert!(text.contains("Content-Length: "));
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after a HEAD answer: {text:?}"
    );
    // The connection stays usable.
    c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 200);
}

#[test]
fn refusals_get_the_right_status_and_the_error_json() {
    let s = TestServer::start(&[("MAX_HEADER_BYTES", "1024"), ("MAX_BODY_BYTES", "100")]);
    let long_target = format!("GET /{} HTTP/1.1\r\n{H}\r\n", "a".repeat(2000));
    let big_header = format!("GET / HTTP/1.1\r\n{H}X-Big: {}\r\n\r\n", "b".repeat(2000));
    let cases: Vec<(String, u16, &str)> = vec![
        ("GARBAGE\r\n\r\n".into(), 400, "BAD_REQUEST"),
        ("GET / HTTP/1.1\r\n\r\n".to_string(), 400, "BAD_REQUEST"),
        (
            format!("GET / HTTP/1.1\r\n{H}X: a\rb\r\n\r\n"),
            400,
            "BAD_REQUEST",
        ),
        (
            format!("GET / HTTP/1.1\r\n{H}X-A: one\r\n two\r\n\r\n"),
            400,
            "BAD_REQUEST",
        ),
        (
            format!(
                "POST /mcp HTTP/1.1\r\n{H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            400,
            "AMBIGUOUS_LENGTH",
        ),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400,
            "AMBIGUOUS_LENGTH",
        ),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Authorization: Bearer {TOKEN}\r\n\r\n"),
            411,
            "LENGTH_REQUIRED",
        ),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Content-Length: 1000\r\n\r\n"),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n200\r\n"),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (long_target, 414, "URI_TOO_LONG"),
        (big_header, 431, "HEADERS_TOO_LARGE"),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"),
            501,
            "UNSUPPORTED_TRANSFER_CODING",
        ),
        (
            format!("GET / HTTP/2.0\r\n{H}\r\n"),
            505,
            "HTTP_VERSION_NOT_SUPPORTED",
        ),
        (
            format!("POST /mcp HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
            400,
            "BAD_CHUNK",
        ),
    ];
    for (raw, status, code) in cases {
        let r = s.request(&raw);
        assert_eq!(r.status, status, "{raw:?}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{raw:?}");
        assert_eq!(v["apiVersion"], "1.0.0");
        assert!(v["error"]["hint"].is_string());
        assert!(v["requestId"].is_string());
        assert!(v["timestamp"].is_string());
        still_serves(&s);
    }
}

#[test]
fn unknown_paths_get_404_and_wrong_methods_405() {
    let s = TestServer::start(&[]);
    let r = s.get("/no/such/path");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND");
    let r = s.request(&format!(
        "DELETE /metrics HTTP/1.1\r\n{H}Authorization: Bearer {TOKEN}\r\n\r\n"
    ));
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    c.send(format!("POST /nowhere HTTP/1.1\r\n{H}Authorization: Bearer {TOKEN}\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 100);
    c.send(b"{}");
    assert_eq!(c.read_reply().unwrap().status, 404);
}

#[test]
fn chunked_bodies_are_read_and_the_connection_reused() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    c.send(format!("POST /nowhere HTTP/1.1\r\n{H}Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 404);
    c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 200);
}

#[test]
fn connection_close_is_honoured() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    c.send(format!("GET /health/live HTTP/1.1\r\n{H}Connection: close\r\n\r\n").as_bytes());
    let r = c.read_reply().unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn a_byte_a_second_client_is_cut_off_by_the_header_deadline() {
    let s = TestServer::start(&[("HEADER_TIMEOUT_MS", "600")]);
    let mut c = s.connect();
    let started = Instant::now();
    let raw =
        format!("GET /health/live HTTP/1.1\r\n{H}X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n");
    let mut got = None;
    for b in raw.bytes() {
        let failed = c.tls.write_all(&[b]).and_then(|()| c.tls.flush()).is_err();
        std::thread::sleep(Duration::from_millis(100));
        if failed || started.elapsed() > Duration::from_millis(900) {
            got = c.read_reply();
            break;
        }
    }
    let r = got.expect("a 408 before the head completed");
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    still_serves(&s);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = TestServer::start(&[("IDLE_TIMEOUT_MS", "300")]);
    let mut c = s.connect();
    c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 200);
    let started = Instant::now();
    assert!(c.closed(), "the server closes an idle connection");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn idle_connections_leave_their_workers_and_are_served_when_they_speak_again() {
    // Two workers, parking at once: six keep-alive connections that idle between requests
    // would be refused with worker-held connections; parked, they cost no worker.
    let s = TestServer::start(&[("WORKER_THREADS", "2")]);
    let mut clients: Vec<_> = (0..6).map(|_| s.connect()).collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
            let r = c.read_reply().expect("an answer");
            assert_eq!(r.status, 200, "connection {i}, round {round}");
        }
    }
    // A parked connection whose client hangs up leaves the set; the rest still work.
    drop(clients.pop());
    let r = s.get("/health/live");
    assert_eq!(r.status, 200);
    // Draining closes the parked ones.
    let mut parked = clients.pop().unwrap();
    s.stop();
    assert!(parked.closed(), "a parked connection is closed on shutdown");
}

#[test]
fn a_parked_connection_is_closed_at_its_idle_deadline() {
    let s = TestServer::start(&[("IDLE_TIMEOUT_MS", "300")]);
    let mut c = s.connect();
    c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    assert_eq!(c.read_reply().unwrap().status, 200);
    let started = Instant::now();
    assert!(c.closed(), "the server closes an idle connection");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_silent_new_connection_is_closed_at_the_header_deadline() {
    let s = TestServer::start(&[("HEADER_TIMEOUT_MS", "300")]);
    let mut c = s.connect();
    let started = Instant::now();
    assert!(c.closed());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn connections_that_are_silent_or_between_handshake_flights_hold_no_worker() {
    let s = TestServer::start(&[("WORKER_THREADS", "2"), ("MAX_CONNECTIONS_PER_IP", "64")]);
    // Silent: connected, not a byte sent.
    let silent: Vec<_> = (0..8)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    // Mid-handshake: a ClientHello sent, the server's answer never read or answered.
    let mut shaking = Vec::new();
    for _ in 0..8 {
        let mut conn = rustls::ClientConnection::new(
            crate::support::client_config(&s.cert),
            "127.0.0.1".try_into().unwrap(),
        )
        .unwrap();
        let mut sock = TcpStream::connect(s.addr).unwrap();
        conn.write_tls(&mut sock).unwrap();
        shaking.push((conn, sock));
    }
    // Two workers, sixteen such connections: a real client is still served at once.
    let started = Instant::now();
    let r = s.get("/health/live");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    drop((silent, shaking));
}

#[test]
fn a_worker_stuck_on_a_slow_client_does_not_stall_the_others() {
    // One active worker: a client that sends half a head holds it until the header deadline.
    let s = TestServer::start(&[("ACTIVE_WORKERS", "1"), ("HEADER_TIMEOUT_MS", "20000")]);
    let mut slow = s.connect();
    slow.send(b"GET /health/live HTTP/1.1\r\n");
    // The keeper sees ready connections and no worker taking them, and brings in a spare.
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(s.get("/health/live").status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "served long before the slow client's 20 s deadline"
        );
    }
}

#[test]
fn the_connection_cap_answers_503_then_closes() {
    let s = TestServer::start(&[("MAX_CONNECTIONS", "2")]);
    let mut a = s.connect();
    let mut b = s.connect();
    a.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    b.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
    assert_eq!(a.read_reply().unwrap().status, 200);
    assert_eq!(b.read_reply().unwrap().status, 200);
    let mut c = s.connect();
    let r = c.read_reply().expect("a 503 on the third connection");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "OVERLOADED");
    assert!(c.closed());
    drop(a);
    // Once a slot frees up, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = s.connect();
        d.send(format!("GET /health/live HTTP/1.1\r\n{H}Connection: close\r\n\r\n").as_bytes());
        if d.read_reply().map(|r| r.status) == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn when_every_worker_holds_a_connection_the_next_gets_503_not_a_bare_close() {
    let s = TestServer::start(&[
        ("WORKER_THREADS", "2"),
        ("MAX_CONNECTIONS", "10"),
        ("MAX_CONNECTIONS_PER_IP", "10"),
    ]);
    // Idle keep-alive connections hold no worker: these two are served and then wait.
    let mut idle: Vec<_> = (0..2).map(|_| s.connect()).collect();
    for c in &mut idle {
        c.send(format!("GET /health/live HTTP/1.1\r\n{H}\r\n").as_bytes());
        assert_eq!(c.read_reply().unwrap().status, 200);
    }
    // Two slow clients each hold a worker: a head that never ends is read until its deadline.
    let mut slow: Vec<_> = (0..2).map(|_| s.connect()).collect();
    for c in &mut slow {
        c.send(b"GET /health/live HTTP/1.1\r\n");
    }
    // Once the keeper sees both workers stuck on their slow client, a new connection is
    // refused with a 503.
    let stuck = &s.running.as_ref().unwrap().app.pool.get().unwrap().stuck;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stuck.load(std::sync::atomic::Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "the slow clients hold the workers"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut c = s.connect();
    let r = c.read_reply().expect("a 503, not a bare close");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "OVERLOADED");
    drop((idle, slow));
}

#[test]
fn plain_http_on_the_tls_port_gets_a_clear_answer() {
    let s = TestServer::start(&[]);
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = sock.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("TLS_REQUIRED"));
}

#[test]
fn garbage_instead_of_a_handshake_is_dropped_without_a_hang() {
    let s = TestServer::start(&[("TLS_HANDSHAKE_TIMEOUT_MS", "500")]);
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 64];
    let _ = sock.read(&mut b);
    assert!(started.elapsed() < Duration::from_secs(5));
    still_serves(&s);
}

#[test]
fn tokens_are_required_outside_health() {
    let s = TestServer::start(&[]);
    let r = s.request(&format!("GET /metrics HTTP/1.1\r\n{H}\r\n"));
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = s.request(&format!(
        "GET /metrics HTTP/1.1\r\n{H}Authorization: Bearer wrong\r\n\r\n"
    ));
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(s.get("/metrics").status, 200);
}

#[test]
fn a_foreign_host_is_refused_on_a_loopback_server() {
    let s = TestServer::start(&[]);
    let r = s.request(&format!(
        "GET /metrics HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    ));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "HOST_NOT_ALLOWED");
}

#[test]
fn oauth_discovery_probes_get_json_404() {
    let s = TestServer::start(&[]);
    for p in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/register",
    ] {
        let r = s.request(&format!("GET {p} HTTP/1.1\r\n{H}\r\n"));
        assert_eq!(r.status, 404, "{p}");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
}

#[test]
fn every_http_test_client_sees_the_server_alive_at_the_end() {
    let s = TestServer::start(&[]);
    let mut c: Client = s.connect();
    c.send(b"\x00\x01\x02\r\n\r\n");
    let r = c.read_reply().unwrap();
    assert_eq!(r.status, 400);
    still_serves(&s);
    s.stop();
}

#[test]
fn the_status_stream_sends_stats_until_the_client_leaves() {
    let s = TestServer::start(&[]);
    let mut c = s.connect();
    c.send(
        format!("GET /status/stream HTTP/1.1\r\n{H}Authorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    let head = c.read_stream_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut reader = task_mcp::sse::Reader::default();
    let mut events = Vec::new();
    while events.len() < 2 {
        let chunk = c.next_chunk().expect("a stats event");
        events.extend(reader.feed(&chunk));
    }
    assert_eq!(events[0].event, "stats");
    let v: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert!(v["requests"]["total"].as_u64().unwrap() >= 1);
    assert_eq!(v["connections"]["open"], 1);
    drop(c);
    // The stream thread notices the hang-up and the connection count returns to zero.
    let app = std::sync::Arc::clone(&s.running.as_ref().unwrap().app);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app
        .counters
        .streams
        .load(std::sync::atomic::Ordering::Acquire)
        != 0
    {
        assert!(Instant::now() < deadline, "the stream thread ended");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_status_page_is_served_with_a_strict_csp() {
    let s = TestServer::start(&[]);
    let r = s.request(&format!("GET / HTTP/1.1\r\n{H}\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(
        r.header("content-security-policy"),
        Some(task_mcp::page::CSP)
    );
    let r = s.request(&format!("GET /static/app.js HTTP/1.1\r\n{H}\r\n"));
    assert_eq!(r.status, 200);
}

#[test]
fn what_the_server_says_after_the_handshake_is_sent_before_the_client_speaks() {
    // TLS 1.3 session tickets follow the client's Finished. Held back until the request came,
    // they would leave the client's first request waiting on a delayed acknowledgement.
    let s = TestServer::start(&[]);
    let mut conn = rustls::ClientConnection::new(
        crate::support::client_config(&s.cert),
        "127.0.0.1".try_into().unwrap(),
    )
    .unwrap();
    let mut sock = TcpStream::connect(s.addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = conn
        .read_tls(&mut sock)
        .expect("the server's tickets, unasked");
    assert!(n > 0);
}
