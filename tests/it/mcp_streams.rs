//! Streamed MCP answers run for real: the handler's stream function owns one end of a loopback
//! TCP pair (as the server's stream thread would), the test reads the other end, decodes the
//! chunked body and parses SSE or NDJSON with the crate's reference readers.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use task_mcp::http::Response;
use task_mcp::http::body::ChunkedDecoder;
use task_mcp::mcp;
use task_mcp::ndjson::LineReader;
use task_mcp::net::hub::Hub;
use task_mcp::net::stream::Streaming;
use task_mcp::net::stream::{DrainSignal, StreamCtx};
use task_mcp::sse::{Event, Reader};

use super::mcp_wire::{
    CLIENT, Fixture, admin, body_json, fixture, head, post, post_as, reader, stateful,
};

/// A running stream function and the client end of its connection.
pub(crate) struct Streamed {
    pub(crate) client: TcpStream,
    pub(crate) handle: JoinHandle<()>,
    drain: DrainSignal,
    decoder: ChunkedDecoder,
    sse: Reader,
    pub(crate) events: Vec<Event>,
    raw: Vec<u8>,
    eof: bool,
}

pub(crate) fn run(mut resp: Response) -> Streamed {
    let Some(streaming) = task_mcp::net::stream::take(&mut resp) else {
        panic!("not a stream: status {} {:?}", resp.status, resp.body);
    };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut server, _) = l.accept().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let drain = DrainSignal::new().unwrap();
    let d2 = drain.clone();
    let handle = match streaming {
        Streaming::Run(f) => std::thread::spawn(move || {
            let mut ctx = StreamCtx::new(&mut server, &d2, Vec::new());
            f(&mut ctx);
            ctx.finish();
        }),
        // A held stream runs in a hub of its own; the handle ends when the stream does.
        Streaming::Held(mut h) => {
            let (done, ended) = std::sync::mpsc::channel();
            h.on_end.push(Box::new(move |_, _| {
                let _ = done.send(());
            }));
            let hub = Hub::start(
                d2.fd().try_clone_to_owned().unwrap(),
                Duration::from_secs(10),
            )
            .unwrap();
            hub.adopt(Box::new(server), h, Vec::new(), Box::new(()));
            std::thread::spawn(move || {
                let _ = ended.recv();
                drop(hub);
            })
        }
    };
    Streamed {
        client,
        handle,
        drain,
        decoder: ChunkedDecoder::new(1 << 24),
        sse: Reader::default(),
        events: Vec::new(),
        raw: Vec::new(),
        eof: false,
    }
}

impl Streamed {
    /// Reads once; false at end of stream.
    pub(crate) fn read_some(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut buf = [0u8; 8192];
        let n = self.client.read(&mut buf).expect("read (timed out?)");
        if n == 0 {
            self.eof = true;
            return false;
        }
        let mut out = Vec::new();
        self.decoder.feed(&buf[..n], &mut out).unwrap();
        self.raw.extend_from_slice(&out);
        let evs = self.sse.feed(&out);
        self.events.extend(evs);
        true
    }

    /// Reads until `pred` holds for the events so far (or the stream ends).
    pub(crate) fn until(&mut self, pred: impl Fn(&[Event], &[u8]) -> bool) {
        while !pred(&self.events, &self.raw) {
            if !self.read_some() {
                break;
            }
        }
    }

    pub(crate) fn finish(mut self) -> (Vec<Event>, Vec<u8>) {
        while self.read_some() {}
        self.handle.join().unwrap();
        (self.events, self.raw)
    }
}

pub(crate) fn json_of(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

pub(crate) fn rpc(id: Value, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

const V: &str = "MCP-Protocol-Version: 2025-11-25";

#[test]
fn progress_token_streams_progress_heartbeats_and_the_result() {
    let f = fixture();
    let body = rpc(
        json!(7),
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 3, "step_ms": 100}, "_meta": {"progressToken": "p1"}}),
    );
    let r = post(&f, &[CLIENT[0], CLIENT[1], V], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    let (events, raw) = run(r).finish();
    let text = String::from_utf8(raw).unwrap();
    assert!(
        text.contains(": keepalive\n\n"),
        "no heartbeat while the tool ran: {text}"
    );
    assert!(
        !text.contains("\nid:") && !text.starts_with("id:"),
        "no event ids on Streamable HTTP"
    );
    assert!(!text.contains("retry:"));
    assert!(
        events
            .iter()
            .all(|e| e.event == "message" && !e.data.is_empty())
    );
    let msgs: Vec<Value> = events.iter().map(json_of).collect();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3);
    assert_eq!(progress[0]["params"]["progressToken"], "p1");
    assert_eq!(progress[2]["params"]["progress"], 3.0);
    assert_eq!(progress[2]["params"]["total"], 3.0);
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(
        last["result"]["structuredContent"],
        json!({"steps": 3, "cancelled": false})
    );
}

#[test]
fn without_a_progress_token_a_tool_call_is_answered_with_json() {
    let f = fixture();
    let body = rpc(
        json!(1),
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 1, "step_ms": 1}}),
    );
    let r = post(&f, &[CLIENT[0], CLIENT[1], V], &body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(body_json(&r)["result"]["isError"], false);
}

#[test]
fn sse_only_clients_get_sse_for_every_request() {
    let f = fixture();
    let r = post(
        &f,
        &[
            "Content-Type: application/json",
            "Accept: text/event-stream",
            V,
        ],
        &rpc(json!("p"), "ping", json!({})),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let (events, _) = run(r).finish();
    assert_eq!(events.len(), 1);
    assert_eq!(
        json_of(&events[0]),
        json!({"jsonrpc": "2.0", "id": "p", "result": {}})
    );
    let r = post(
        &f,
        &[
            "Content-Type: application/json",
            "Accept: text/event-stream",
            V,
        ],
        &rpc(
            json!(2),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "t"}}),
        ),
    );
    let (events, _) = run(r).finish();
    assert_eq!(
        json_of(events.last().unwrap())["result"]["structuredContent"]["text"],
        "t"
    );
}

#[test]
fn a_client_hang_up_frees_the_stream_thread_at_once_and_cancels_the_tool() {
    let f = fixture();
    let body = rpc(
        json!(1),
        "tools/call",
        json!({"name": "blocker", "_meta": {"progressToken": 1}}),
    );
    let r = post(&f, &[CLIENT[0], CLIENT[1], V], &body);
    let mut s = run(r);
    // Wait for one heartbeat so the tool is surely running.
    s.until(|_, raw| raw.windows(11).any(|w| w == b": keepalive"));
    let Streamed { client, handle, .. } = s;
    let left = Instant::now();
    drop(client);
    handle.join().unwrap();
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "stream thread held {:?}",
        left.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.saw_cancel.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        f.saw_cancel.load(Ordering::SeqCst),
        "the tool never saw its cancel flag"
    );
}

#[test]
fn notifications_cancelled_stops_the_callers_request_and_its_stream_ends_without_a_response() {
    let f = fixture();
    let body = rpc(
        json!("c1"),
        "tools/call",
        json!({"name": "blocker", "_meta": {"progressToken": 1}}),
    );
    let r = post(&f, &[CLIENT[0], CLIENT[1], V], &body);
    let mut s = run(r);
    s.until(|_, raw| raw.windows(11).any(|w| w == b": keepalive"));
    // Another identity cannot cancel it.
    let cancel =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1"}}"#;
    assert_eq!(
        post_as(&f, &[CLIENT[0], CLIENT[1], V], cancel, &admin()).status,
        202
    );
    assert!(!f.saw_cancel.load(Ordering::SeqCst));
    assert_eq!(post(&f, &[CLIENT[0], CLIENT[1], V], cancel).status, 202);
    let (events, _) = s.finish();
    assert!(f.saw_cancel.load(Ordering::SeqCst));
    // The SDK clients drop a cancelled request and report any later message for it as a
    // transport error, so the stream ends with nothing for "c1".
    assert!(
        events.iter().all(|e| json_of(e)["id"] != "c1"),
        "a response after the cancellation: {events:?}"
    );
}

#[test]
fn a_cancelled_stream_ends_at_the_next_heartbeat_while_the_tool_ignores_the_flag() {
    let f = fixture();
    // One 3 s step: `slow` looks at its cancel flag only between steps.
    let body = rpc(
        json!("c3"),
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 1, "step_ms": 3000}, "_meta": {"progressToken": 1}}),
    );
    let mut s = run(post(&f, &[CLIENT[0], CLIENT[1], V], &body));
    s.until(|_, raw| raw.windows(11).any(|w| w == b": keepalive"));
    let cancel =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c3"}}"#;
    let cancelled = Instant::now();
    assert_eq!(post(&f, &[CLIENT[0], CLIENT[1], V], cancel).status, 202);
    let (events, _) = s.finish();
    assert!(
        cancelled.elapsed() < Duration::from_millis(1500),
        "the stream thread was held {:?} by a tool that ignores its flag",
        cancelled.elapsed()
    );
    assert!(
        events.is_empty(),
        "messages for a cancelled request: {events:?}"
    );
}

#[test]
fn a_request_cancelled_on_the_json_path_is_answered_by_an_sse_stream_without_events() {
    let f = fixture();
    let body = rpc(json!(7), "tools/call", json!({"name": "blocker"}));
    let env = std::sync::Arc::clone(&f.env);
    let call = std::thread::spawn(move || {
        let h = head("POST", "/mcp", &[CLIENT[0], CLIENT[1], V]);
        mcp::http::post(&env, &h, body.as_bytes(), &reader())
    });
    // The call registers itself when it starts; repeat the cancellation until the tool sees it.
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.saw_cancel.load(Ordering::SeqCst) && Instant::now() < deadline {
        assert_eq!(post(&f, &[CLIENT[0], CLIENT[1], V], cancel).status, 202);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        f.saw_cancel.load(Ordering::SeqCst),
        "the tool never saw its cancel flag"
    );
    let r = call.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let (events, raw) = run(r).finish();
    assert!(
        events.is_empty(),
        "events for a cancelled request: {events:?}"
    );
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
}

#[test]
fn a_request_cancelled_on_the_json_path_by_a_json_only_client_still_gets_its_json_answer() {
    let f = fixture();
    let body = rpc(json!(8), "tools/call", json!({"name": "blocker"}));
    let env = std::sync::Arc::clone(&f.env);
    let json_only = [CLIENT[0], "Accept: application/json", V];
    let call = std::thread::spawn(move || {
        let h = head("POST", "/mcp", &json_only);
        mcp::http::post(&env, &h, body.as_bytes(), &reader())
    });
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.saw_cancel.load(Ordering::SeqCst) && Instant::now() < deadline {
        assert_eq!(post(&f, &[CLIENT[0], CLIENT[1], V], cancel).status, 202);
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = call.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(body_json(&r)["id"], 8);
}

#[test]
fn draining_cancels_the_tool_and_answers_with_an_error() {
    let f = fixture();
    let body = rpc(
        json!(5),
        "tools/call",
        json!({"name": "blocker", "_meta": {"progressToken": 1}}),
    );
    let mut s = run(post(&f, &[CLIENT[0], CLIENT[1], V], &body));
    s.until(|_, raw| raw.windows(11).any(|w| w == b": keepalive"));
    s.drain.fire();
    let (events, _) = s.finish();
    let last = json_of(events.last().unwrap());
    assert_eq!(last["id"], 5);
    assert_eq!(last["error"]["code"], -32000);
}

#[test]
fn seed_ndjson_streams_start_result_end() {
    let f = fixture();
    let r = post(
        &f,
        &CLIENT,
        r#"{"tool":"test.slow","input":{"steps":2,"step_ms":60}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let (_, raw) = run(r).finish();
    let mut lr = LineReader::new(1 << 20);
    lr.feed(&raw);
    let mut lines = Vec::new();
    while let Some(l) = lr.next_line().unwrap() {
        lines.push(serde_json::from_slice::<Value>(&l).unwrap());
    }
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"start"));
    assert_eq!(&types[types.len() - 2..], ["result", "end"]);
    assert!(types.contains(&"progress"));
    assert!(types.contains(&"heartbeat"), "{types:?}");
    assert_eq!(lines[0]["tool"], "test.slow");
    assert_eq!(lines[0]["apiVersion"], "1.0.0");
    assert!(lines[0]["ts"].is_u64());
    assert_eq!(
        lines[types.len() - 2]["result"],
        json!({"steps": 2, "cancelled": false})
    );
}

#[test]
fn seed_ndjson_failures_send_an_error_line() {
    let f = fixture();
    let r = post(
        &f,
        &CLIENT,
        r#"{"tool":"slow","input":{"steps":0,"fail":true}}"#,
    );
    let (_, raw) = run(r).finish();
    let text = String::from_utf8(raw).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["type"], "error");
    assert_eq!(lines[1]["error"]["code"], "ETEST");
    assert_eq!(lines[2]["type"], "end");
}

#[test]
fn seed_sse_sends_heartbeats_then_a_result_event() {
    let f = fixture();
    let h = head("POST", "/sse", &CLIENT);
    let r = mcp::seed::post_sse(
        &f.env,
        &h,
        br#"{"tool":"slow","input":{"steps":2,"step_ms":60}}"#,
        &reader(),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let (events, raw) = run(r).finish();
    assert!(String::from_utf8(raw).unwrap().contains(": heartbeat\n\n"));
    let result = events
        .iter()
        .find(|e| e.event == "result")
        .expect("a result event");
    assert_eq!(
        json_of(result),
        json!({"apiVersion": "1.0.0", "tool": "slow", "result": {"steps": 2, "cancelled": false}})
    );
    let r = mcp::seed::post_sse(
        &f.env,
        &h,
        br#"{"tool":"slow","input":{"steps":0,"fail":true}}"#,
        &reader(),
    );
    let (events, _) = run(r).finish();
    let e = json_of(events.iter().find(|e| e.event == "error").unwrap());
    assert_eq!(e["apiVersion"], "1.0.0");
    assert_eq!(e["error"]["code"], "ETEST");
    assert_eq!(e["error"]["hint"], "Drop `fail`.");
}

pub(crate) fn open_legacy(f: &Fixture, extra: &[&str]) -> (Streamed, String) {
    let mut headers = vec!["Accept: text/event-stream"];
    headers.extend_from_slice(extra);
    let r = mcp::legacy::open_stream(&f.env, &head("GET", "/sse", &headers), &reader());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let mut s = run(r);
    s.until(|evs, _| !evs.is_empty());
    let ep = s.events[0].clone();
    assert_eq!(ep.event, "endpoint");
    let sid = ep
        .data
        .strip_prefix("/messages?sessionId=")
        .expect("endpoint path")
        .to_string();
    (s, sid)
}

pub(crate) fn post_message(f: &Fixture, sid: &str, body: &str) -> Response {
    let h = head("POST", &format!("/messages?sessionId={sid}"), &CLIENT);
    mcp::legacy::post_message(&f.env, &h, body.as_bytes(), &reader())
}

#[test]
fn legacy_session_round_trip() {
    let f = fixture();
    let (mut s, sid) = open_legacy(&f, &[]);
    assert_eq!(s.events[0].id.as_deref(), Some(format!("{sid}-0").as_str()));
    let r = post_message(
        &f,
        &sid,
        &rpc(
            json!(1),
            "initialize",
            json!({"protocolVersion": "2024-11-05"}),
        ),
    );
    assert_eq!(r.status, 202);
    s.until(|evs, _| evs.len() >= 2);
    let init = json_of(&s.events[1]);
    assert_eq!(s.events[1].event, "message");
    assert_eq!(s.events[1].id.as_deref(), Some(format!("{sid}-1").as_str()));
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        post_message(
            &f,
            &sid,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        )
        .status,
        202
    );
    let call = rpc(
        json!("t"),
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 2, "step_ms": 30}, "_meta": {"progressToken": "q"}}),
    );
    assert_eq!(post_message(&f, &sid, &call).status, 202);
    s.until(|evs, _| evs.iter().skip(1).any(|e| json_of(e)["id"] == "t"));
    let msgs: Vec<Value> = s.events.iter().skip(2).map(json_of).collect();
    assert_eq!(
        msgs.iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count(),
        2
    );
    assert_eq!(
        msgs.last().unwrap()["result"]["structuredContent"]["steps"],
        2
    );
    assert_eq!(
        post_message(&f, &sid, &rpc(json!(9), "ping", json!({}))).status,
        202
    );
    s.until(|evs, _| evs.iter().skip(1).any(|e| json_of(e)["id"] == 9));
    // Bad bodies are refused on the POST, not on the stream.
    assert_eq!(post_message(&f, &sid, "{").status, 400);
    assert_eq!(post_message(&f, &sid, "[]").status, 400);
    let other = mcp::legacy::post_message(
        &f.env,
        &head("POST", &format!("/messages?sessionId={sid}"), &CLIENT),
        rpc(json!(1), "ping", json!({})).as_bytes(),
        &admin(),
    );
    assert_eq!(
        other.status, 404,
        "another identity may not use the session"
    );
    let Streamed { client, handle, .. } = s;
    drop(client);
    handle.join().unwrap();
    assert_eq!(
        post_message(&f, &sid, &rpc(json!(2), "ping", json!({}))).status,
        404
    );
}

#[test]
fn a_cancelled_legacy_request_sends_nothing_more_on_the_session_stream() {
    let f = fixture();
    let (mut s, sid) = open_legacy(&f, &[]);
    let call = rpc(
        json!("c2"),
        "tools/call",
        json!({"name": "blocker", "_meta": {"progressToken": "b"}}),
    );
    assert_eq!(post_message(&f, &sid, &call).status, 202);
    let cancel =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c2"}}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.saw_cancel.load(Ordering::SeqCst) && Instant::now() < deadline {
        assert_eq!(post_message(&f, &sid, cancel).status, 202);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        f.saw_cancel.load(Ordering::SeqCst),
        "the tool never saw its cancel flag"
    );
    // A later call's answer comes after whatever the cancelled one would have sent.
    let later = rpc(
        json!("after"),
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 2, "step_ms": 30}}),
    );
    assert_eq!(post_message(&f, &sid, &later).status, 202);
    s.until(|evs, _| evs.iter().skip(1).any(|e| json_of(e)["id"] == "after"));
    let for_c2: Vec<&Event> = s
        .events
        .iter()
        .skip(1)
        .filter(|e| json_of(e)["id"] == "c2")
        .collect();
    assert!(
        for_c2.is_empty(),
        "a response after the cancellation: {for_c2:?}"
    );
}

#[test]
fn legacy_keepalives_flow_while_idle() {
    let f = fixture();
    let (mut s, _) = open_legacy(&f, &[]);
    s.until(|_, raw| raw.windows(12).filter(|w| w == b": keepalive\n").count() >= 2);
    assert!(!s.eof);
}

#[test]
fn last_event_id_resumes_the_session_and_replays_missed_events() {
    let f = fixture();
    let (mut s, sid) = open_legacy(&f, &[]);
    post_message(&f, &sid, &rpc(json!(1), "ping", json!({})));
    s.until(|evs, _| evs.len() >= 2);
    let seen = s.events[1].id.clone().unwrap();
    let Streamed { client, handle, .. } = s;
    drop(client);
    handle.join().unwrap();
    // Broadcasts reach live streams only: nothing is queued for the closed one.
    let r = mcp::legacy::broadcast(
        &f.env,
        br#"{"event":"mcp-notification","message":{"text":"missed"}}"#,
        &admin(),
    );
    assert_eq!(body_json(&r)["delivered"], 0);
    let last = format!("Last-Event-ID: {seen}");
    let (mut s2, sid2) = open_legacy(&f, &[&last]);
    assert_eq!(sid2, sid, "the same session is resumed");
    s2.until(|evs, _| !evs.is_empty());
    assert_eq!(
        post_message(&f, &sid, &rpc(json!(2), "ping", json!({}))).status,
        202
    );
    s2.until(|evs, _| evs.len() >= 2);
    let e = &s2.events[1];
    assert_eq!(json_of(e)["id"], 2);
    assert_eq!(e.id.as_deref(), Some(format!("{sid}-2").as_str()));
}

#[test]
fn replay_sends_events_queued_after_the_last_seen_id() {
    let f = fixture();
    let (mut s, sid) = open_legacy(&f, &[]);
    for i in 1..=3 {
        post_message(&f, &sid, &rpc(json!(i), "ping", json!({})));
    }
    s.until(|evs, _| evs.len() >= 4);
    let Streamed { client, handle, .. } = s;
    drop(client);
    handle.join().unwrap();
    let last = format!("Last-Event-ID: {sid}-1");
    let (mut s2, sid2) = open_legacy(&f, &[&last]);
    assert_eq!(sid2, sid);
    s2.until(|evs, _| evs.len() >= 3);
    let ids: Vec<Value> = s2.events[1..3]
        .iter()
        .map(|e| json_of(e)["id"].clone())
        .collect();
    assert_eq!(ids, [json!(2), json!(3)]);
    // A foreign or unknown Last-Event-ID opens a fresh session.
    let (_s3, sid3) = open_legacy(&f, &["Last-Event-ID: nope-4"]);
    assert_ne!(sid3, sid);
}

#[test]
fn stats_and_broadcast_see_live_streams_by_identity() {
    let f = fixture();
    let (mut a, sid_a) = open_legacy(&f, &[]);
    let (mut b, _) = open_legacy(&f, &[]);
    let stats = body_json(&mcp::legacy::stats(&f.env, &admin()));
    assert_eq!(stats["totalConnections"], 2);
    assert_eq!(stats["connectionsByIdentity"]["alice"], 2);
    assert!(stats["oldestConnection"].as_str().unwrap().ends_with('Z'));
    assert!(
        stats["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == sid_a.as_str())
    );
    let r = mcp::legacy::broadcast(
        &f.env,
        br#"{"event":"connection-status","message":{"status":"maintenance"},"filter":{"identities":["alice"]}}"#,
        &admin(),
    );
    assert_eq!(body_json(&r)["delivered"], 2);
    for s in [&mut a, &mut b] {
        s.until(|evs, _| evs.iter().any(|e| e.event == "connection-status"));
        let e = s
            .events
            .iter()
            .find(|e| e.event == "connection-status")
            .unwrap();
        assert_eq!(json_of(e), json!({"status": "maintenance"}));
    }
    let r = mcp::legacy::broadcast(
        &f.env,
        br#"{"message":1,"filter":{"identities":["bob"]}}"#,
        &admin(),
    );
    assert_eq!(body_json(&r)["delivered"], 0);
    let r = mcp::legacy::broadcast(
        &f.env,
        br#"{"event":"message","message":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
        &admin(),
    );
    assert_eq!(r.status, 400, "responses may not be injected");
}

#[test]
fn stateful_get_stream_sends_keepalives() {
    let f = stateful();
    let r = post(&f, &CLIENT, &rpc(json!(1), "initialize", json!({})));
    let sid = r.header("mcp-session-id").unwrap().to_string();
    let h = format!("Mcp-Session-Id: {sid}");
    let r = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: text/event-stream", &h]),
        &reader(),
    );
    let mut s = run(r);
    s.until(|_, raw| raw.windows(11).any(|w| w == b": keepalive"));
    assert!(s.events.is_empty());
}

/// The legacy transport checks tool arguments against the declared schema like the others: the
/// answer on the session stream is an isError result naming the unknown argument.
#[test]
fn legacy_tool_calls_with_an_unknown_argument_get_an_input_error() {
    let f = fixture();
    let (mut s, sid) = open_legacy(&f, &[]);
    let call = rpc(
        json!("bad"),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi", "txet": "typo"}}),
    );
    assert_eq!(post_message(&f, &sid, &call).status, 202);
    s.until(|evs, _| evs.iter().skip(1).any(|e| json_of(e)["id"] == "bad"));
    let answer = s
        .events
        .iter()
        .skip(1)
        .map(json_of)
        .find(|m| m["id"] == "bad")
        .unwrap();
    let result = &answer["result"];
    assert_eq!(result["isError"], true, "{answer}");
    let error = &result["structuredContent"]["error"];
    assert_eq!(error["code"], "EINVALID_ARGUMENTS", "{answer}");
    assert_eq!(error["details"]["pointer"], "/txet");
    assert_eq!(error["details"]["allowed"], json!(["text"]));
}
