//! The observability stack wired into a running server: W3C trace context in and out, spans
//! exported to a tiny collector and checked against the OTLP schema, a dead collector
//! that neither fails nor stalls requests and opens the breaker, readiness following the health
//! checks, `/debug/vars`, and the connection and handshake-failure metrics in a real scrape.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TOKEN, TestServer};

/// A collector that accepts any number of export requests, answers 200, and forwards bodies.
fn collector() -> (u16, mpsc::Receiver<Vec<u8>>) {
    collector_for("/v1/traces")
}

/// A collector accepting POSTs to `path` only.
fn collector_for(path: &'static str) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let tx = tx.clone();
            thread::spawn(move || serve(tcp, path, &tx));
        }
    });
    (port, rx)
}

/// Serves export requests on one connection until the client closes it.
fn serve(mut tcp: TcpStream, path: &str, bodies: &mpsc::Sender<Vec<u8>>) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = req.parse(&buf) {
            assert_eq!(req.path, Some(path));
            let len: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("the exporter sends Content-Length");
            if buf.len() >= head_len + len {
                let body = buf[head_len..head_len + len].to_vec();
                buf.drain(..head_len + len);
                // Forwarded before answering, so a flush that saw the answer finds the body.
                if bodies.send(body).is_err() {
                    return;
                }
                tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    .unwrap();
                continue;
            }
        }
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn get_with(srv: &TestServer, path: &str, extra: &str) -> crate::support::Reply {
    get_trusting(srv, &srv.cert, path, extra)
}

/// A GET trusting the certificate at `cert` (a copy, when the workspace holding it is moved).
fn get_trusting(srv: &TestServer, cert: &Path, path: &str, extra: &str) -> crate::support::Reply {
    let mut c = crate::support::Client::connect(srv.addr, cert);
    c.send(format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{extra}Connection: close\r\n\r\n"
    ).as_bytes());
    c.read_reply().expect("a reply")
}

fn call_echo(srv: &TestServer, extra: &str) -> crate::support::Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}})
    .to_string();
    srv.request(&format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nUser-Agent: it-client/1.0\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Splits a `traceparent` into (trace id, span id, flags).
fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {v}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1].len(), 32);
    assert_eq!(parts[2].len(), 16);
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Every span of every body, as OTLP JSON objects.
fn spans_of(bodies: &[Vec<u8>]) -> Vec<Value> {
    let mut out = Vec::new();
    for b in bodies {
        let doc: Value = serde_json::from_slice(b).unwrap();
        for rs in doc["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn app(srv: &TestServer) -> &task_mcp::app::App {
    &srv.running.as_ref().unwrap().app
}

/// Polls `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn incoming_traceparent_continues_into_exported_request_and_tool_spans() {
    let (port, bodies) = collector();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let srv = TestServer::start(&[
        ("OTEL_ENABLED", "true"),
        ("OTEL_SERVICE_NAME", "task-mcp-it"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
    ]);
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let reply = call_echo(
        &srv,
        &format!(
            "traceparent: 00-{parent_trace}-{parent_span}-01\r\ntracestate: rojo=00f067aa0ba902b7\r\n"
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (trace_id, server_span, flags) = traceparent(reply.header("traceparent").unwrap());
    assert_eq!(trace_id, parent_trace, "the trace continues");
    assert_ne!(server_span, parent_span, "the server span is a new span");
    assert_eq!(flags, "01", "a sampled parent is followed");

    assert!(app(&srv).tracer.flush(Duration::from_secs(10)));
    let got: Vec<Vec<u8>> = bodies.try_iter().collect();
    assert!(
        !got.is_empty(),
        "nothing was exported: {:?}",
        app(&srv).tracer.stats()
    );
    let spans = spans_of(&got);
    let server = spans
        .iter()
        .find(|s| s["spanId"] == server_span)
        .expect("the request's server span is exported");
    assert_eq!(server["traceId"], parent_trace);
    assert_eq!(server["parentSpanId"], parent_span);
    assert_eq!(server["name"], "POST /mcp");
    let tool = spans
        .iter()
        .find(|s| s["name"] == "tools/call echo")
        .expect("the tool span is exported");
    assert_eq!(tool["traceId"], parent_trace);
    assert_eq!(tool["parentSpanId"], server_span.as_str());

    let body = got
        .iter()
        .find(|b| {
            spans_of(&[b.to_vec()])
                .iter()
                .any(|s| s["spanId"] == server_span)
        })
        .unwrap();
    let mut want = vec![json!({
        "name": "POST /mcp",
        "trace_id": parent_trace,
        "span_id": server_span,
        "parent_span_id": parent_span,
        "kind": "SPAN_KIND_SERVER",
        "status_code": "STATUS_CODE_UNSET",
        "attributes": {
            "http.request.method": "POST",
            "http.route": "/mcp",
            "url.path": "/mcp",
            "http.response.status_code": 200,
            "server.address": "127.0.0.1",
            "client.address": "127.0.0.1",
            "user_agent.original": "it-client/1.0",
            "url.scheme": "https",
        },
    })];
    if spans_of(&[body.to_vec()])
        .iter()
        .any(|s| s["name"] == "tools/call echo")
    {
        want.push(json!({
            "name": "tools/call echo",
            "trace_id": parent_trace,
            "span_id": tool["spanId"],
            "parent_span_id": server_span,
            "kind": "SPAN_KIND_INTERNAL",
            "status_code": "STATUS_CODE_OK",
            "attributes": {"mcp.tool.name": "echo", "mcp.method.name": "tools/call"},
        }));
    }
    crate::otlp_check::check(body, &json!({"service_name": "task-mcp-it", "spans": want}));
    srv.stop();
}

#[test]
fn malformed_traceparent_starts_a_new_trace_and_unsampled_roots_are_not_exported() {
    let (port, bodies) = collector();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let srv = TestServer::start(&[
        ("OTEL_ENABLED", "true"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ]);
    for bad in [
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-zzzzzzzzzzzzzzzz-01\r\n",
        "traceparent: garbage\r\n",
    ] {
        let reply = get_with(&srv, "/health/live", bad);
        assert_eq!(reply.status, 200);
        let (trace_id, _, flags) = traceparent(reply.header("traceparent").unwrap());
        assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(trace_id.bytes().any(|b| b != b'0'));
        assert_eq!(flags, "00", "ratio 0 samples no new trace");
    }
    // A sampled parent is followed even at ratio 0 (parent-based sampling).
    let reply = get_with(
        &srv,
        "/health/live",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
    );
    let (_, span, flags) = traceparent(reply.header("traceparent").unwrap());
    assert_eq!(flags, "01");
    assert!(app(&srv).tracer.flush(Duration::from_secs(10)));
    let spans = spans_of(&bodies.try_iter().collect::<Vec<_>>());
    assert_eq!(
        spans.len(),
        1,
        "only the sampled request is exported: {spans:?}"
    );
    assert_eq!(spans[0]["spanId"], span.as_str());
    srv.stop();
}

#[test]
fn dead_collector_neither_fails_nor_stalls_requests_and_opens_the_breaker() {
    // A port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let srv = TestServer::start(&[
        ("OTEL_ENABLED", "true"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ("DEBUG_ENDPOINTS", "true"),
    ]);
    let started = Instant::now();
    for _ in 0..12 {
        let reply = call_echo(&srv, "");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // Generous: the point is "not blocked on the collector", measured properly in benches.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "12 calls took {:?}",
        started.elapsed()
    );
    let opened = eventually(Duration::from_secs(10), || {
        get_with(&srv, "/debug/vars", "").json()["tracer"]["breaker"] == "open"
    });
    assert!(opened, "{}", get_with(&srv, "/debug/vars", "").text());
    let vars = get_with(&srv, "/debug/vars", "").json();
    assert!(
        vars["tracer"]["failedExports"].as_u64().unwrap() >= 5,
        "{vars}"
    );

    app(&srv).health.run_all_blocking();
    let detail = get_with(&srv, "/health/metrics", "");
    assert_eq!(
        detail.status, 200,
        "a lost trace exporter does not fail readiness"
    );
    let detail = detail.json();
    assert_eq!(detail["tracer"]["breaker"], "open");
    let check = detail["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "trace_exporter")
        .unwrap();
    assert_eq!(check["status"], "degraded", "{detail}");
    let metrics = get_with(&srv, "/metrics", "").text();
    assert!(
        metrics.contains("trace_exporter_breaker_state 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("health_check_status{check=\"trace_exporter\"} 0.5\n"));
    assert_eq!(get_with(&srv, "/health/ready", "").status, 200);
    srv.stop();
}

#[test]
fn readiness_follows_the_workspace_check_and_names_it() {
    let srv = TestServer::start(&[("HEALTH_CHECK_INTERVAL_MS", "200")]);
    let ready = get_with(&srv, "/health/ready", "");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let checks: Vec<String> = get_with(&srv, "/health/metrics", "").json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        checks,
        [
            "workspace",
            "disk",
            "memory",
            "worker_pool",
            "trace_exporter"
        ]
    );

    // The workspace disappears: the periodic runner notices within a few intervals.
    let cert_dir = crate::support::temp_root();
    let cert = cert_dir.join("cert.pem");
    std::fs::copy(&srv.cert, &cert).unwrap();
    let moved = srv.root.with_extension("moved");
    std::fs::rename(&srv.root, &moved).unwrap();
    let failed = eventually(Duration::from_secs(10), || {
        get_trusting(&srv, &cert, "/health/ready", "").status == 503
    });
    let reply = get_trusting(&srv, &cert, "/health/ready", "");
    let detail = get_trusting(&srv, &cert, "/health/metrics", "");
    std::fs::rename(&moved, &srv.root).unwrap();
    let _ = std::fs::remove_dir_all(&cert_dir);
    assert!(failed, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["failing"][0]["name"], "workspace", "{body}");
    assert!(
        body["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("workspace unhealthy"))
    );
    assert_eq!(detail.status, 503);
    assert_eq!(detail.json()["status"], "unhealthy");

    // Restored: one immediate run (no waiting for the interval) makes it ready again.
    app(&srv).health.run_all_blocking();
    assert_eq!(get_with(&srv, "/health/ready", "").status, 200);
    let metrics = get_with(&srv, "/metrics", "").text();
    assert!(metrics.contains("health_check_status{check=\"workspace\"} 1\n"));
    srv.stop();
}

#[test]
fn debug_vars_reports_threads_pool_connections_streams_health_and_tracer() {
    let srv = TestServer::start(&[("DEBUG_ENDPOINTS", "true")]);
    // Hold a status stream open so a stream shows up.
    let mut stream = srv.connect();
    stream.send(
        format!(
            "GET /status/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(stream.read_stream_head().status, 200);
    // The stream's thread counts itself as streaming just after the head is sent.
    let mut v = Value::Null;
    assert!(eventually(Duration::from_secs(10), || {
        let vars = get_with(&srv, "/debug/vars", "");
        assert_eq!(vars.status, 200, "{}", vars.text());
        v = vars.json();
        v["connections"]["streaming"].as_u64().unwrap() >= 1
    }));
    assert!(v["threads"].as_u64().unwrap() > 1, "{v}");
    assert!(v["pool"]["workers"].as_u64().unwrap() >= 1);
    assert!(v["pool"]["max"].as_u64().unwrap() >= v["pool"]["workers"].as_u64().unwrap());
    assert!(v["connections"]["open"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["connections"]["streaming"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["streams"]["open"].as_u64().unwrap() >= 1);
    assert!(v["streams"]["byTransport"].is_object());
    assert_eq!(v["health"]["ready"], true);
    assert_eq!(v["tracer"]["enabled"], false);
    assert_eq!(v["tracer"]["breaker"], "closed");
    drop(stream);
    srv.stop();
}

#[test]
fn a_tool_on_its_own_thread_counts_as_active_and_its_span_is_a_child_of_the_request() {
    let (port, bodies) = collector();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let srv = TestServer::start(&[
        ("OTEL_ENABLED", "true"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ("DEBUG_ENDPOINTS", "true"),
    ]);
    // Answered as SSE: the tool runs on a `tool-slow` thread, not the request's.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"steps": 40, "step_ms": 50}}})
    .to_string();
    let mut c = srv.connect();
    c.send(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nAccept: text/event-stream\r\n\
             traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let head = c.read_stream_head();
    assert_eq!(head.status, 200);
    let (_, server_span, _) = traceparent(head.header("traceparent").unwrap());
    let active = eventually(Duration::from_secs(5), || {
        get_with(&srv, "/debug/vars", "").json()["tools"]["active"] == 1
    });
    assert!(active, "{}", get_with(&srv, "/debug/vars", "").text());
    let stats = task_mcp::routes::status_json(app(&srv), 0, 0.0);
    assert_eq!(stats["tools"]["active"], 1, "the status stream sees it too");
    let metrics = get_with(&srv, "/metrics", "").text();
    assert!(metrics.contains("tool_active_executions{tool=\"slow\"} 1\n"));
    let mut seen = Vec::new();
    while let Some(chunk) = c.next_chunk() {
        seen.extend_from_slice(&chunk);
        if String::from_utf8_lossy(&seen).contains("\"result\"") {
            break;
        }
    }
    assert!(eventually(Duration::from_secs(5), || {
        task_mcp::routes::status_json(app(&srv), 0, 0.0)["tools"]["active"] == 0
    }));

    assert!(app(&srv).tracer.flush(Duration::from_secs(10)));
    let spans = spans_of(&bodies.try_iter().collect::<Vec<_>>());
    let tool = spans
        .iter()
        .find(|s| s["name"] == "tools/call slow")
        .expect("the tool span is exported");
    assert_eq!(tool["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(tool["parentSpanId"], server_span.as_str());
    srv.stop();
}

#[test]
fn silent_collector_fills_the_bounded_queue_and_drops_are_counted_not_waited_for() {
    // Accepts connections and never answers: each export hangs until its timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for tcp in listener.incoming().flatten() {
            held.push(tcp);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let srv = TestServer::start(&[
        ("OTEL_ENABLED", "true"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2"),
        ("DEBUG_ENDPOINTS", "true"),
    ]);
    let started = Instant::now();
    for _ in 0..12 {
        assert_eq!(call_echo(&srv, "").status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "12 calls took {:?} behind a silent collector",
        started.elapsed()
    );
    let vars = get_with(&srv, "/debug/vars", "").json();
    assert!(
        vars["tracer"]["droppedQueueFull"].as_u64().unwrap() > 0,
        "{vars}"
    );
    assert!(vars["tracer"]["queued"].as_u64().unwrap() <= 2, "{vars}");
    let metrics = get_with(&srv, "/metrics", "").text();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trace_spans_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 0);
    srv.stop();
}

/// One sample of a scrape, by its full series name (`name{labels}` or `name`).
fn sample(srv: &TestServer, series: &str) -> f64 {
    let text = srv.get("/metrics").text();
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{series} not in the scrape:\n{text}"))
}

/// `http_server_connections_active` counts the connections open now, the scraping one included,
/// and falls back when clients hang up.
#[test]
fn the_active_connections_gauge_follows_clients_opening_and_closing() {
    let srv = TestServer::start(&[]);
    assert_eq!(sample(&srv, "http_server_connections_active"), 1.0);
    let mut clients: Vec<_> = (0..3).map(|_| srv.connect()).collect();
    for c in &mut clients {
        c.send(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(c.read_reply().expect("a reply").status, 200);
    }
    assert_eq!(sample(&srv, "http_server_connections_active"), 4.0);
    drop(clients);
    assert!(
        eventually(Duration::from_secs(10), || {
            sample(&srv, "http_server_connections_active") == 1.0
        }),
        "the gauge did not fall back after the clients hung up"
    );
    srv.stop();
}

/// `tls_handshake_failures_total` counts plain HTTP on the TLS port, a broken ClientHello and a
/// handshake that never finishes; a good handshake and a client that connects and leaves do not.
#[test]
fn tls_handshake_failures_are_counted_in_the_scrape() {
    let srv = TestServer::start(&[("TLS_HANDSHAKE_TIMEOUT_MS", "300")]);
    assert_eq!(sample(&srv, "tls_handshake_failures_total"), 0.0);
    let mut plain = TcpStream::connect(srv.addr).unwrap();
    plain
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let mut broken = TcpStream::connect(srv.addr).unwrap();
    broken
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let _ = broken.read_to_end(&mut Vec::new());
    // A record header that promises more than ever comes: the handshake deadline ends it.
    let mut stalled = TcpStream::connect(srv.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let _ = stalled.read_to_end(&mut Vec::new());
    drop(TcpStream::connect(srv.addr).unwrap());
    assert!(
        eventually(Duration::from_secs(10), || {
            sample(&srv, "tls_handshake_failures_total") == 3.0
        }),
        "want 3 failures, scrape says {}",
        sample(&srv, "tls_handshake_failures_total")
    );
    srv.stop();
}

#[test]
fn a_models_mistake_counts_as_a_client_error_and_spends_no_error_budget() {
    let srv = TestServer::start(&[]);
    let call = |name: &str, args: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": args}})
        .to_string();
        srv.request(&format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    // A slug that names no change, and an argument the tool does not take.
    let r = call("change_show", json!({"slug": "no-such-change"}));
    assert_eq!(r.json()["result"]["isError"], true);
    let r = call("change_show", json!({"slug": "x-y-z", "colour": "red"}));
    assert_eq!(r.json()["result"]["isError"], true);
    let metrics = get_with(&srv, "/metrics", "").text();
    for line in [
        "tool_executions_total{tool=\"change_show\",status=\"client_error\"} 2\n",
        "tool_executions_total{tool=\"change_show\",status=\"server_error\"} 0\n",
        "tool_errors_total{code=\"ENOCHANGE\",fault=\"client\"} 1\n",
        "tool_errors_total{code=\"EINVALID_ARGUMENTS\",fault=\"client\"} 1\n",
        "tool_errors_total{code=\"other\",fault=\"server\"} 0\n",
        "mcp_requests_total{method=\"tools/call\",transport=\"streamable_http\",outcome=\"client_error\"} 2\n",
        "mcp_requests_total{method=\"tools/call\",transport=\"streamable_http\",outcome=\"server_error\"} 0\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[test]
fn metrics_are_pushed_as_otlp_json_to_the_generic_endpoint() {
    let (port, bodies) = collector_for("/v1/metrics");
    let srv = TestServer::start(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ]);
    assert_eq!(call_echo(&srv, "").status, 200);
    // Readings are cumulative: wait for one taken after the call.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let body = bodies.recv_timeout(left).expect("a metrics export");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let text = doc.to_string();
        if text.contains("\"echo\"") && text.contains("\"asInt\":\"1\"") {
            break body;
        }
    };
    crate::otlp_check::check_metrics(
        &body,
        &json!({"service_name": "task-mcp", "metrics": {
            "tool_executions_total": {"kind": "sum", "attributes": {"tool": "echo", "status": "ok"}, "value": "1"},
            "http_server_request_duration_seconds": {"kind": "histogram"},
            "http_server_connections_active": {"kind": "gauge"},
        }}),
    );
}
