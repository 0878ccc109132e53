//! Request modes: each client thread drives its share of the connections with `poll(2)`, one
//! request in flight per connection (closed loop), and times each from the write of the request
//! (or, with `--new-conn`, from the TCP connect) to the last byte of the response.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use serde_json::{Value, json};

use crate::client::{Conn, Fault, ResponseReader, request};
use crate::options::{Mode, Options};
use crate::report::{Tally, requests_json};

/// Runs a request mode and returns its JSON summary.
///
/// # Errors
/// The TLS configuration cannot be built.
pub fn run(o: &Options) -> Result<Value, String> {
    let tls = if o.target.tls {
        Some(crate::client::tls_config(o)?)
    } else {
        None
    };
    let (bytes, check) = build(o);
    let bytes = Arc::new(bytes);
    let idle = (o.idle > 0).then(|| hold_idle(o, tls.as_ref(), &bytes, check));
    let start = Instant::now();
    let measure_from = start + o.warmup;
    let end = o.requests.is_none().then(|| measure_from + o.duration);
    let budget = Arc::new(AtomicI64::new(
        o.requests
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)),
    ));
    let per_thread = split(o.connections, o.threads);
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let o = o.clone();
            let tls = tls.clone();
            let bytes = Arc::clone(&bytes);
            let budget = Arc::clone(&budget);
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    drive(
                        &o,
                        tls.as_ref(),
                        &bytes,
                        check,
                        n,
                        measure_from,
                        end,
                        &budget,
                    )
                })
                .map_err(|e| format!("spawning a client thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Tally::default();
    for h in handles {
        total.merge(
            h.join()
                .map_err(|_| "a client thread panicked".to_string())?,
        );
    }
    let window = match end {
        Some(e) => e.saturating_duration_since(measure_from),
        None => measure_from.elapsed(),
    };
    let mut summary = requests_json(&label(o), total, window);
    if let Some(mut idle) = idle {
        let end = crate::streams::memory(o);
        idle.report["server_threads_at_end"] = json!(end.and_then(|m| m.threads));
        summary["idle"] = idle.report;
        drop(idle.conns);
    }
    Ok(summary)
}

/// Connections held idle through a run, and what they cost the server.
struct Idle {
    conns: Vec<Conn>,
    report: Value,
}

/// Opens `o.idle` connections, one answered request each, and keeps them open; reads the
/// server's memory before and after (once they have had time to leave their workers).
fn hold_idle(o: &Options, tls: Option<&Arc<ClientConfig>>, bytes: &[u8], check: Check) -> Idle {
    let before = crate::streams::memory(o);
    let mut conns = Vec::with_capacity(o.idle);
    let mut answered = 0usize;
    for _ in 0..o.idle {
        let Ok(mut c) = Conn::open(&o.target, tls) else {
            continue;
        };
        c.queue(bytes);
        let mut reader = ResponseReader::new();
        let deadline = Instant::now() + o.timeout;
        let done = loop {
            if c.pump().is_err() {
                break false;
            }
            let eof = c.eof;
            match reader.feed(&mut c.inbuf, eof) {
                Ok(true) => break reader.status == 200 && check.passes(&reader.body),
                Ok(false) if !eof && Instant::now() < deadline => {}
                _ => break false,
            }
            crate::client::ready([(0, &c)], Duration::from_millis(100));
        };
        answered += usize::from(done);
        conns.push(c);
    }
    std::thread::sleep(IDLE_SETTLE);
    let with = crate::streams::memory(o);
    let per_idle = match (&before, &with) {
        (Some(b), Some(w)) if answered > 0 => {
            Some((w.rss_kib.saturating_sub(b.rss_kib)) as f64 / answered as f64)
        }
        _ => None,
    };
    Idle {
        conns,
        report: json!({
            "connections": o.idle,
            "answered": answered,
            "server_rss_kib_before": before.as_ref().map(|m| m.rss_kib),
            "server_rss_kib_with_idle": with.as_ref().map(|m| m.rss_kib),
            "server_kib_per_idle_connection": per_idle.map(|k| (k * 10.0).round() / 10.0),
            "server_threads_with_idle": with.and_then(|m| m.threads),
        }),
    }
}

/// Time given to idle connections to leave their workers before the server's memory is read.
const IDLE_SETTLE: Duration = Duration::from_millis(500);

/// The run's description, as the report's `run` field.
pub fn label(o: &Options) -> Value {
    let variant = match o.mode {
        Mode::Ping | Mode::Call if o.progress => {
            "progressToken (SSE when the tool reports progress)"
        }
        Mode::Ping | Mode::Call if o.sse => "sse (Accept: text/event-stream)",
        Mode::Ping | Mode::Call => "json",
        _ => "",
    };
    json!({
        "mode": o.mode.name(),
        "variant": variant,
        "url": format!("{}://{}{}", if o.target.tls { "https" } else { "http" }, o.target.authority, o.path()),
        "connections": o.connections,
        "threads": o.threads,
        "new_conn": o.new_conn,
        "tool": matches!(o.mode, Mode::Call | Mode::SeedNdjson | Mode::SeedSse).then_some(o.tool.as_str()),
        "warmup_seconds": o.warmup.as_secs_f64(),
    })
}

/// What a correct answer contains: always a result, never an error.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// A JSON-RPC result (JSON or SSE framing) that is not a tool error.
    Rpc,
    /// An NDJSON `result` line.
    NdjsonLine,
    /// An SSE `result` event.
    SseEvent,
}

impl Check {
    fn passes(self, body: &[u8]) -> bool {
        match self {
            Check::Rpc => contains(body, b"\"result\"") && !contains(body, b"\"isError\":true"),
            Check::NdjsonLine => contains(body, b"\"type\":\"result\""),
            Check::SseEvent => contains(body, b"event: result"),
        }
    }
}

/// The request bytes and the answer check for the options.
fn build(o: &Options) -> (Vec<u8>, Check) {
    let args: Value = serde_json::from_str(&o.args).unwrap_or(Value::Null);
    let (body, check) = match o.mode {
        Mode::Ping => {
            let mut b = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
            if o.progress {
                b["params"] = json!({"_meta": {"progressToken": "load"}});
            }
            (b, Check::Rpc)
        }
        Mode::Call => {
            let mut b = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": o.tool, "arguments": args}});
            if o.progress {
                b["params"]["_meta"] = json!({"progressToken": "load"});
            }
            (b, Check::Rpc)
        }
        Mode::SeedNdjson => (json!({"tool": o.tool, "input": args}), Check::NdjsonLine),
        Mode::SeedSse | Mode::Streams => (json!({"tool": o.tool, "input": args}), Check::SseEvent),
    };
    let body = o.body.clone().unwrap_or_else(|| body.to_string());
    let accept = if o.sse {
        "text/event-stream"
    } else {
        "application/json, text/event-stream"
    };
    let auth = o.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json"), ("Accept", accept)];
    if matches!(o.mode, Mode::Ping | Mode::Call) && !o.protocol_version.is_empty() {
        headers.push(("MCP-Protocol-Version", o.protocol_version.as_str()));
    }
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if o.new_conn {
        headers.push(("Connection", "close"));
    }
    headers.extend(o.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    (
        request("POST", &o.target, o.path(), &headers, body.as_bytes()),
        check,
    )
}

/// One connection's state in a client thread.
struct Slot {
    conn: Option<Conn>,
    reader: ResponseReader,
    /// When the request in flight started; `None` when idle.
    started: Option<Instant>,
    /// Do not reconnect before this (after a failed connect).
    retry_at: Instant,
}

/// The loop of one client thread over `n` connections.
#[allow(clippy::too_many_arguments)]
fn drive(
    o: &Options,
    tls: Option<&Arc<ClientConfig>>,
    bytes: &[u8],
    check: Check,
    n: usize,
    measure_from: Instant,
    end: Option<Instant>,
    budget: &AtomicI64,
) -> Tally {
    let mut tally = Tally::default();
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..n)
        .map(|_| Slot {
            conn: None,
            reader: ResponseReader::new(),
            started: None,
            retry_at: now,
        })
        .collect();
    let mut budget_left = true;
    loop {
        let now = Instant::now();
        let stopping = end.is_some_and(|e| now >= e);
        if stopping {
            break;
        }
        for s in slots.iter_mut().filter(|s| s.started.is_none()) {
            if !budget_left || now < s.retry_at {
                continue;
            }
            if budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                budget_left = false;
                continue;
            }
            let t0 = Instant::now();
            if s.conn.is_none() {
                match Conn::open(&o.target, tls) {
                    Ok(c) => {
                        tally.connects += 1;
                        s.conn = Some(c);
                    }
                    Err(f) => {
                        if t0 >= measure_from {
                            tally.error(f.kind());
                        }
                        s.retry_at = t0 + RECONNECT_PAUSE;
                        continue;
                    }
                }
            }
            let started = if o.new_conn { t0 } else { Instant::now() };
            s.started = Some(started);
            s.reader = ResponseReader::new();
            // unwrap: the connection was opened just above when there was none.
            let conn = s.conn.as_mut().expect("connected just above");
            conn.queue(bytes);
            // The answer may arrive while `pump` still reads: read what it already holds, since
            // `poll` will not report those bytes again.
            let fed = conn
                .pump()
                .and_then(|()| s.reader.feed(&mut conn.inbuf, conn.eof));
            match fed {
                Ok(false) => {}
                Ok(true) => finish(s, o.new_conn, check, &mut tally, measure_from),
                Err(f) => fail(s, f, &mut tally, measure_from),
            }
        }
        if slots.iter().all(|s| s.started.is_none()) {
            if !budget_left {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let wait = end.map_or(POLL_SLICE, |e| {
            e.saturating_duration_since(Instant::now()).min(POLL_SLICE)
        });
        let live = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.started.is_some())
            .filter_map(|(i, s)| s.conn.as_ref().map(|c| (i, c)));
        let ready = crate::client::ready(live, wait);
        for i in ready {
            let s = &mut slots[i];
            let Some(conn) = s.conn.as_mut() else {
                continue;
            };
            let fed = conn
                .pump()
                .and_then(|()| s.reader.feed(&mut conn.inbuf, conn.eof));
            match fed {
                Ok(false) => {}
                Ok(true) => finish(s, o.new_conn, check, &mut tally, measure_from),
                Err(f) => fail(s, f, &mut tally, measure_from),
            }
        }
        let now = Instant::now();
        for s in &mut slots {
            if s.started.is_some_and(|t| now.duration_since(t) > o.timeout) {
                fail(s, Fault::Timeout, &mut tally, measure_from);
            }
        }
    }
    tally
}

/// A response is complete: check it, record it, and keep or drop the connection.
fn finish(s: &mut Slot, new_conn: bool, check: Check, tally: &mut Tally, measure_from: Instant) {
    let now = Instant::now();
    let Some(started) = s.started.take() else {
        return;
    };
    let r = &s.reader;
    let counted = now >= measure_from;
    if r.status != 200 {
        if counted {
            tally.error(Fault::Status(r.status).kind());
        }
    } else if !check.passes(&r.body) {
        if counted {
            tally.error(Fault::BadBody.kind());
        }
    } else if counted {
        let us = now.duration_since(started).as_micros();
        tally
            .latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        tally.body_bytes += r.body.len() as u64;
    }
    let eof = s.conn.as_ref().is_none_or(|c| c.eof || !c.inbuf.is_empty());
    if r.close || new_conn || eof {
        s.conn = None;
    }
}

/// A request failed: count it and drop the connection.
fn fail(s: &mut Slot, f: Fault, tally: &mut Tally, measure_from: Instant) {
    s.started = None;
    s.conn = None;
    if Instant::now() >= measure_from {
        tally.error(f.kind());
    }
}

/// `total` shared out among `threads` as evenly as possible (no thread gets none).
pub fn split(total: usize, threads: usize) -> Vec<usize> {
    let threads = threads.clamp(1, total.max(1));
    (0..threads)
        .map(|i| total / threads + usize::from(i < total % threads))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Longest single `poll` wait, so the deadline and timeouts are checked often enough.
const POLL_SLICE: Duration = Duration::from_millis(50);
/// Pause before reconnecting after a failed connect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_out_evenly() {
        assert_eq!(split(32, 1), vec![32]);
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 8), vec![1, 1]);
    }

    #[test]
    fn checks_accept_results_and_refuse_errors() {
        assert!(Check::Rpc.passes(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(!Check::Rpc.passes(br#"{"jsonrpc":"2.0","id":1,"error":{}}"#));
        assert!(!Check::Rpc.passes(br#"{"result":{"isError":true}}"#));
        assert!(Check::NdjsonLine.passes(b"{\"type\":\"start\"}\n{\"type\":\"result\"}\n"));
        assert!(Check::SseEvent.passes(b"event: result\ndata: {}\n\n"));
        assert!(!Check::SseEvent.passes(b"event: error\ndata: {}\n\n"));
    }

    #[test]
    fn a_call_request_carries_the_tool_token_and_progress_token() {
        let o = Options::parse(
            &"call --url http://127.0.0.1:9/mcp --token abc --progress --sse"
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let (bytes, _) = build(&o);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
        assert!(text.contains("Authorization: Bearer abc\r\n"));
        assert!(text.contains("Accept: text/event-stream\r\n"));
        assert!(text.contains(r#""_meta":{"progressToken":"load"}"#));
        assert!(text.contains(r#""name":"echo""#));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
