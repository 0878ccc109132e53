//! The OTLP exporter against real sockets: a tiny collector on 127.0.0.1 whose captured body is
//! checked by the protobuf JSON parser of `opentelemetry-proto` (tests/otlp/check_otlp.py), over
//! http and https; and dead or silent collectors, which must never block `finish()` and must
//! open the breaker.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use task_mcp::observe::trace::{
    BreakerState, ExporterSettings, Resource, Sampler, Timeouts, Tracer, attr, extract,
};

/// Accepts `n` connections, answers each with `status`, and sends each request body back.
fn collector(
    n: usize,
    status: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..n {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let body = match &tls {
                None => serve_one(tcp, status),
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                    serve_one(rustls::StreamOwned::new(conn, tcp), status)
                }
            };
            tx.send(body).unwrap();
        }
    });
    (port, rx)
}

fn serve_one<S: Read + Write>(mut s: S, status: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, content_length) = loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "client closed before a full request");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = req.parse(&buf).unwrap() {
            assert_eq!(req.method, Some("POST"));
            assert_eq!(req.path, Some("/v1/traces"));
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| std::str::from_utf8(h.value).unwrap().to_owned())
            };
            assert_eq!(header("content-type").as_deref(), Some("application/json"));
            break (
                len,
                header("content-length").unwrap().parse::<usize>().unwrap(),
            );
        }
    };
    while buf.len() < head_len + content_length {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "client closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    s.write_all(response.as_bytes()).unwrap();
    s.flush().unwrap();
    buf[head_len..head_len + content_length].to_vec()
}

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "task-mcp-trace-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn fast_settings() -> ExporterSettings {
    ExporterSettings {
        max_batch_delay: Duration::from_secs(3_600),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            write: Duration::from_secs(2),
            read: Duration::from_millis(300),
            total: Duration::from_secs(2),
        },
        ..ExporterSettings::default()
    }
}

/// Finishes a server span with a remote parent and a tool child; returns what to expect.
fn record_request(tracer: &Tracer) -> serde_json::Value {
    let parent = extract(
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        Some(b"rojo=00f067aa0ba902b7"),
    );
    let now = SystemTime::now();
    let mut server = tracer.start_request(parent, "POST /mcp", now);
    server.set_attribute(attr::HTTP_REQUEST_METHOD, "POST");
    server.set_attribute(attr::URL_PATH, "/mcp");
    server.set_attribute(attr::HTTP_ROUTE, "/mcp");
    server.set_attribute(attr::NETWORK_PROTOCOL_VERSION, "1.1");
    server.set_attribute(attr::CLIENT_ADDRESS, "127.0.0.1");
    server.set_attribute(
        attr::USER_AGENT_ORIGINAL,
        "claude-mcp/1.0 \"quoted\" \u{e9}",
    );
    let mut tool = tracer.child(&server, "tools/call change.open", now);
    tool.set_attribute(attr::MCP_METHOD_NAME, "tools/call");
    tool.set_attribute(attr::MCP_TOOL_NAME, "change.open");
    tool.set_attribute(attr::GEN_AI_TOOL_NAME, "change.open");
    tool.set_error("not_found", "no such change");
    tool.end(now + Duration::from_millis(2));
    server.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, 200u16);
    server.end(now + Duration::from_millis(3));
    let expect = serde_json::json!({
        "service_name": "task-mcp-test",
        "spans": [
            {
                "name": "POST /mcp",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": server.span_id_hex(),
                "parent_span_id": "00f067aa0ba902b7",
                "kind": "SPAN_KIND_SERVER",
                "status_code": "STATUS_CODE_UNSET",
                "attributes": {
                    "http.request.method": "POST",
                    "url.path": "/mcp",
                    "http.route": "/mcp",
                    "http.response.status_code": 200,
                    "user_agent.original": "claude-mcp/1.0 \"quoted\" \u{e9}",
                },
            },
            {
                "name": "tools/call change.open",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": tool.span_id_hex(),
                "parent_span_id": server.span_id_hex(),
                "kind": "SPAN_KIND_INTERNAL",
                "status_code": "STATUS_CODE_ERROR",
                "attributes": {
                    "mcp.tool.name": "change.open",
                    "gen_ai.tool.name": "change.open",
                    "mcp.method.name": "tools/call",
                    "error.type": "not_found",
                },
            },
        ],
    });
    tracer.finish(tool);
    tracer.finish(server);
    expect
}

#[test]
fn exported_batch_parses_with_the_real_otlp_protobuf_schema() {
    let (port, bodies) = collector(1, 200, None);
    let tracer = Tracer::start(
        &format!("http://127.0.0.1:{port}/v1/traces"),
        None,
        Resource::new("task-mcp-test"),
        Sampler::default(),
        fast_settings(),
    )
    .unwrap();
    let expect = record_request(&tracer);
    assert!(tracer.flush(Duration::from_secs(10)));
    let body = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    crate::otlp_check::check(&body, &expect);
    let s = tracer.stats();
    assert_eq!(
        (s.exported_spans, s.export_requests, s.dropped_total()),
        (2, 1, 0)
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert!(tracer.shutdown(Duration::from_secs(5)));
}

#[test]
fn https_export_trusts_exactly_the_configured_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_path = temp_path("ca.pem");
    std::fs::write(&ca_path, certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let server_cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let (port, bodies) = collector(1, 200, Some(Arc::new(server_cfg)));
    let tracer = Tracer::start(
        &format!("https://localhost:{port}/v1/traces"),
        Some(&ca_path),
        Resource::new("task-mcp-test"),
        Sampler::default(),
        fast_settings(),
    )
    .unwrap();
    let expect = record_request(&tracer);
    assert!(tracer.flush(Duration::from_secs(10)));
    let body = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    crate::otlp_check::check(&body, &expect);
    assert_eq!(tracer.stats().exported_spans, 2);

    // The same collector certificate under a CA file that does not contain it is refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_ca = temp_path("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tracer = Tracer::start(
        &format!("https://localhost:{port}/v1/traces"),
        Some(&other_ca),
        Resource::default(),
        Sampler::default(),
        fast_settings(),
    )
    .unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into()),
        )
        .unwrap();
    thread::spawn(move || {
        if let Ok((mut tcp, _)) = listener.accept() {
            let mut conn = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
            let _ = conn.complete_io(&mut tcp);
        }
    });
    tracer.finish(tracer.start_request(None, "x", SystemTime::now()));
    assert!(tracer.flush(Duration::from_secs(10)));
    let s = tracer.stats();
    assert_eq!((s.exported_spans, s.failed_requests), (0, 1));
    for p in [ca_path, other_ca] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}

#[test]
fn dead_collector_never_blocks_finish_and_opens_the_breaker() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = ExporterSettings {
        max_queue_spans: 64,
        max_batch_spans: 1,
        breaker_failure_threshold: 2,
        breaker_cooldown: Duration::from_secs(3_600),
        ..fast_settings()
    };
    let tracer = Tracer::start(
        &format!("http://127.0.0.1:{port}/v1/traces"),
        None,
        Resource::default(),
        Sampler::default(),
        settings,
    )
    .unwrap();
    let spans = 500;
    let started = Instant::now();
    for i in 0..spans {
        tracer.finish(tracer.start_request(None, format!("r{i}"), SystemTime::now()));
    }
    let finishing = started.elapsed();
    assert!(tracer.flush(Duration::from_secs(20)));
    let s = tracer.stats();
    assert_eq!(s.breaker, BreakerState::Open);
    assert_eq!((s.export_requests, s.failed_requests), (2, 2), "{s:?}");
    assert_eq!(s.exported_spans, 0);
    assert_eq!(
        s.dropped_total(),
        spans,
        "every span is accounted for: {s:?}"
    );
    assert!(
        finishing < Duration::from_secs(1),
        "finish() took {finishing:?} for {spans}"
    );
}

#[test]
fn silent_collector_never_blocks_finish_and_opens_the_breaker() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = accepted.clone();
    thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for tcp in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(tcp); // accept, read nothing, answer nothing
        }
    });
    let settings = ExporterSettings {
        max_queue_spans: 16,
        max_batch_spans: 1,
        breaker_failure_threshold: 2,
        breaker_cooldown: Duration::from_secs(3_600),
        ..fast_settings()
    };
    let tracer = Tracer::start(
        &format!("http://127.0.0.1:{port}/v1/traces"),
        None,
        Resource::default(),
        Sampler::default(),
        settings,
    )
    .unwrap();
    let spans = 2_000;
    let started = Instant::now();
    for i in 0..spans {
        tracer.finish(tracer.start_request(None, format!("r{i}"), SystemTime::now()));
    }
    let finishing = started.elapsed();
    // While the exporter waits on the silent collector, the small queue overflows.
    assert!(
        finishing < Duration::from_secs(1),
        "finish() took {finishing:?} for {spans}"
    );
    assert!(tracer.flush(Duration::from_secs(20)));
    let s = tracer.stats();
    assert_eq!(s.breaker, BreakerState::Open);
    assert_eq!((s.export_requests, s.failed_requests), (2, 2), "{s:?}");
    assert!(s.dropped_queue_full > 0, "{s:?}");
    assert_eq!(
        s.dropped_total(),
        spans,
        "every span is accounted for: {s:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
