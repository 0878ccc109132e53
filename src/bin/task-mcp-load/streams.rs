//! Streams mode: open N legacy `GET /sse` streams (or, with `--mcp-get`, N stateful MCP sessions
//! and their `GET /mcp` streams), hold them all, and check that every stream receives every
//! heartbeat during the hold; read the server's resident memory before and while they are held.
//!
//! A legacy stream counts as open once its `endpoint` event arrives, an MCP GET stream once its
//! 200 head does (after the session's `initialize`, on the same connection). During the hold window, a stream
//! misses a heartbeat when two consecutive points of (window start, each heartbeat, window end)
//! are more than [`GAP_FACTOR`] heartbeat intervals apart: one lost heartbeat makes a gap of two
//! intervals, while scheduling jitter stays well under one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use serde_json::{Value, json};

use crate::client::{Conn, Fault, ResponseReader, request};
use crate::options::Options;
use crate::report::round;

/// The `initialize` request of an MCP GET stream's session.
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"task-mcp-load","version":"1"}}}"#;

/// What one stream saw.
#[derive(Debug, Default)]
struct Record {
    opened: Option<Instant>,
    beats: Vec<Instant>,
    closed: Option<Instant>,
    fault: Option<String>,
}

/// Runs streams mode and returns its JSON summary.
///
/// # Errors
/// The TLS configuration cannot be built, or a client thread cannot start.
pub fn run(o: &Options) -> Result<Value, String> {
    let tls = if o.target.tls {
        Some(crate::client::tls_config(o)?)
    } else {
        None
    };
    let before = memory(o);
    let settled = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let open_started = Instant::now();
    let shares = crate::requests::split(o.connections, o.threads);
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let o = o.clone();
            let tls = tls.clone();
            let settled = Arc::clone(&settled);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("streams-{i}"))
                .spawn(move || hold(&o, tls.as_ref(), n, &settled, &stop))
                .map_err(|e| format!("spawning a client thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let open_deadline = open_started + OPEN_TIME_PER_STREAM * o.connections as u32 + OPEN_TIME_BASE;
    while settled.load(Ordering::Acquire) < o.connections && Instant::now() < open_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let open_seconds = open_started.elapsed().as_secs_f64();
    let hold_start = Instant::now();
    std::thread::sleep(o.duration);
    let held = memory(o);
    let hold_end = Instant::now();
    stop.store(true, Ordering::Release);
    let mut records = Vec::with_capacity(o.connections);
    for h in handles {
        records.extend(
            h.join()
                .map_err(|_| "a client thread panicked".to_string())?,
        );
    }
    Ok(summarize(
        o,
        &records,
        hold_start,
        hold_end,
        open_seconds,
        before,
        held,
    ))
}

/// Judges the records over the hold window.
fn summarize(
    o: &Options,
    records: &[Record],
    hold_start: Instant,
    hold_end: Instant,
    open_seconds: f64,
    before: Option<Memory>,
    held: Option<Memory>,
) -> Value {
    let limit = o.heartbeat.mul_f64(GAP_FACTOR);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut opened, mut early_closed, mut missing, mut total_beats) = (0u64, 0u64, 0u64, 0u64);
    let mut min_beats: Option<usize> = None;
    let mut max_gap = Duration::ZERO;
    for r in records {
        if let Some(f) = &r.fault {
            *errors.entry(f.clone()).or_default() += 1;
        }
        let Some(open_at) = r.opened else { continue };
        opened += 1;
        if r.closed.is_some_and(|c| c < hold_end) {
            early_closed += 1;
            missing += 1;
            continue;
        }
        let start = open_at.max(hold_start);
        let beats: Vec<Instant> = r
            .beats
            .iter()
            .copied()
            .filter(|b| *b >= start && *b <= hold_end)
            .collect();
        total_beats += beats.len() as u64;
        min_beats = Some(min_beats.map_or(beats.len(), |m| m.min(beats.len())));
        let mut prev = start;
        let mut worst = Duration::ZERO;
        for b in beats.iter().copied().chain(std::iter::once(hold_end)) {
            worst = worst.max(b.saturating_duration_since(prev));
            prev = b;
        }
        max_gap = max_gap.max(worst);
        if worst > limit {
            missing += 1;
        }
    }
    let hold = hold_end.duration_since(hold_start);
    let kib_per_stream = match (&before, &held) {
        (Some(b), Some(h)) if opened > 0 => Some(round(
            (h.rss_kib as f64 - b.rss_kib as f64) / opened as f64,
            2,
        )),
        _ => None,
    };
    json!({
        "run": {
            "mode": "streams",
            "variant": if o.mcp_get { "GET /mcp (stateful sessions)" } else { "GET /sse" },
            "url": format!("{}://{}{}", if o.target.tls { "https" } else { "http" }, o.target.authority, o.path()),
            "connections": o.connections,
            "threads": o.threads,
            "heartbeat_ms": o.heartbeat.as_millis() as u64,
        },
        "streams": o.connections,
        "opened": opened,
        "failed": records.len() as u64 - opened,
        "early_closed": early_closed,
        "open_seconds": round(open_seconds, 2),
        "hold_seconds": round(hold.as_secs_f64(), 2),
        "heartbeats": total_beats,
        "heartbeats_per_stream_min": min_beats,
        "heartbeats_expected_per_stream": (hold.as_secs_f64() / o.heartbeat.as_secs_f64()).floor() as u64,
        "streams_missing_heartbeats": missing,
        "max_gap_ms": round(max_gap.as_secs_f64() * 1000.0, 1),
        "gap_limit_ms": round(limit.as_secs_f64() * 1000.0, 1),
        "server_rss_before_kib": before.as_ref().map(|m| m.rss_kib),
        "server_rss_held_kib": held.as_ref().map(|m| m.rss_kib),
        "server_hwm_kib": held.as_ref().and_then(|m| m.hwm_kib),
        "server_threads_held": held.as_ref().and_then(|m| m.threads),
        "kib_per_stream": kib_per_stream,
        "errors": errors,
    })
}

/// One stream in a client thread.
struct Slot {
    conn: Option<Conn>,
    /// MCP GET: the `initialize` answer is awaited (the stream request follows it).
    initializing: bool,
    /// MCP GET: the stream is open at its head (it has no first event).
    open_at_head: bool,
    reader: ResponseReader,
    /// Body bytes after the last complete line.
    partial: Vec<u8>,
    record: Record,
    settled: bool,
}

/// Opens `n` streams (at most `open_concurrency` opening at once) and reads them until `stop`.
fn hold(
    o: &Options,
    tls: Option<&Arc<ClientConfig>>,
    n: usize,
    settled: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<Record> {
    let auth = o.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    headers.extend(o.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let mut init_headers = headers.clone();
    init_headers[0] = ("Accept", "application/json, text/event-stream");
    init_headers.push(("Content-Type", "application/json"));
    let init = request(
        "POST",
        &o.target,
        o.path(),
        &init_headers,
        INITIALIZE.as_bytes(),
    );
    let get = |session: &str| {
        let mut h = headers.clone();
        h.push(("Mcp-Session-Id", session));
        h.push(("MCP-Protocol-Version", "2025-06-18"));
        request("GET", &o.target, o.path(), &h, b"")
    };
    let req = if o.mcp_get {
        init
    } else {
        request("GET", &o.target, o.path(), &headers, b"")
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(n);
    let mut opening = 0usize;
    let concurrency = (o.open_concurrency / o.threads).max(1);
    while !stop.load(Ordering::Acquire) {
        while slots.len() < n && opening < concurrency {
            let mut slot = Slot {
                conn: None,
                initializing: o.mcp_get,
                open_at_head: o.mcp_get,
                reader: ResponseReader::new(),
                partial: Vec::new(),
                record: Record::default(),
                settled: false,
            };
            match Conn::open(&o.target, tls) {
                Ok(mut c) => {
                    c.queue(&req);
                    slot.conn = Some(c);
                    opening += 1;
                    // Whatever the first pump already read must be parsed now: `poll` will
                    // not report it again.
                    if let Err(f) = read_stream(&mut slot, &get) {
                        slot.conn = None;
                        slot.record.fault = Some(f.kind());
                        slot.settled = true;
                    }
                    if slot.settled {
                        opening -= 1;
                        settled.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Err(f) => settle_fault(&mut slot, &f, settled),
            }
            slots.push(slot);
        }
        let live = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.conn.as_ref().map(|c| (i, c)));
        let ready = crate::client::ready(live, POLL_SLICE);
        for i in ready {
            let s = &mut slots[i];
            let was_settled = s.settled;
            if let Err(f) = read_stream(s, &get) {
                if s.record.opened.is_some() {
                    s.record.closed = Some(Instant::now());
                } else {
                    s.record.fault = Some(f.kind());
                }
                s.conn = None;
                s.settled = true;
            }
            if s.settled && !was_settled {
                opening -= 1;
                settled.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    slots.into_iter().map(|s| s.record).collect()
}

/// Reads what arrived on one stream: the `initialize` answer (MCP GET), then the head, then SSE
/// lines. `get` is the stream request for a session.
fn read_stream(s: &mut Slot, get: &dyn Fn(&str) -> Vec<u8>) -> Result<(), Fault> {
    let Some(conn) = s.conn.as_mut() else {
        return Ok(());
    };
    conn.pump()?;
    let mut done = s.reader.feed(&mut conn.inbuf, conn.eof)?;
    if s.reader.has_head() && s.reader.status != 200 {
        return Err(Fault::Status(s.reader.status));
    }
    if s.initializing {
        if !done {
            return Ok(());
        }
        let Some(session) = s.reader.session.take() else {
            return Err(Fault::BadBody);
        };
        s.initializing = false;
        s.reader = ResponseReader::new();
        conn.queue(&get(&session));
        conn.pump()?;
        done = s.reader.feed(&mut conn.inbuf, conn.eof)?;
        if s.reader.has_head() && s.reader.status != 200 {
            return Err(Fault::Status(s.reader.status));
        }
    }
    if s.open_at_head && s.reader.has_head() && s.record.opened.is_none() {
        // An MCP GET stream answers its head and then only heartbeats.
        s.record.opened = Some(Instant::now());
        s.settled = true;
    }
    s.partial.append(&mut s.reader.body);
    let now = Instant::now();
    let mut start = 0;
    while let Some(nl) = s.partial[start..].iter().position(|&b| b == b'\n') {
        let line = &s.partial[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b":") {
            if s.record.opened.is_some() {
                s.record.beats.push(now);
            }
        } else if line == b"event: endpoint" && s.record.opened.is_none() {
            s.record.opened = Some(now);
            s.settled = true;
        }
        start += nl + 1;
    }
    s.partial.drain(..start);
    if done || conn.eof {
        return Err(Fault::Closed);
    }
    Ok(())
}

fn settle_fault(slot: &mut Slot, f: &Fault, settled: &AtomicUsize) {
    slot.record.fault = Some(f.kind());
    slot.settled = true;
    settled.fetch_add(1, Ordering::AcqRel);
}

/// The server's memory at one moment.
#[derive(Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: Option<u64>,
    pub threads: Option<u64>,
}

/// Reads the server's memory from `/proc` or its metrics, when the options say how.
pub fn memory(o: &Options) -> Option<Memory> {
    if let Some(pid) = o.server_pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        return Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:"),
            threads: field("Threads:"),
        });
    }
    let url = o.metrics_url.as_ref()?;
    let text = fetch(o, url).ok()?;
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(Memory {
        rss_kib: (gauge("process_resident_memory_bytes ")? / 1024.0) as u64,
        hwm_kib: None,
        threads: gauge("process_threads ").map(|t| t as u64),
    })
}

/// `GET url` with the token; the body as text.
fn fetch(o: &Options, url: &str) -> Result<String, Fault> {
    let target =
        crate::options::parse_url(url).map_err(|e| Fault::Connect(std::io::Error::other(e.0)))?;
    let tls = if target.tls {
        Some(crate::client::tls_config(o).map_err(|e| Fault::Connect(std::io::Error::other(e)))?)
    } else {
        None
    };
    let mut conn = Conn::open(&target, tls.as_ref())?;
    let auth = o.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Connection", "close")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let path = target.path.clone().unwrap_or_else(|| "/metrics".into());
    conn.queue(&request("GET", &target, &path, &headers, b""));
    let mut reader = ResponseReader::new();
    let deadline = Instant::now() + FETCH_TIMEOUT;
    loop {
        conn.pump()?;
        if reader.feed(&mut conn.inbuf, conn.eof)? {
            break;
        }
        if Instant::now() > deadline {
            return Err(Fault::Timeout);
        }
        crate::client::ready([(0, &conn)], POLL_SLICE);
    }
    if reader.status != 200 {
        return Err(Fault::Status(reader.status));
    }
    Ok(String::from_utf8_lossy(&reader.body).into_owned())
}

/// A gap longer than this many heartbeat intervals means a heartbeat was lost.
const GAP_FACTOR: f64 = 1.75;
/// Time allowed to open the streams: a base plus a share per stream.
const OPEN_TIME_BASE: Duration = Duration::from_secs(10);
const OPEN_TIME_PER_STREAM: Duration = Duration::from_millis(10);
/// Longest single `poll` wait (50 ms).
const POLL_SLICE: Duration = Duration::from_millis(50);
/// Time allowed for a metrics scrape.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(heartbeat_ms: u64) -> Options {
        let mut o = Options::parse(&[
            "streams".into(),
            "--url".into(),
            "http://127.0.0.1:9".into(),
        ])
        .unwrap();
        o.heartbeat = Duration::from_millis(heartbeat_ms);
        o
    }

    fn record(open: Instant, beats_ms: &[u64]) -> Record {
        Record {
            opened: Some(open),
            beats: beats_ms
                .iter()
                .map(|ms| open + Duration::from_millis(*ms))
                .collect(),
            closed: None,
            fault: None,
        }
    }

    #[test]
    fn a_lost_heartbeat_is_counted_and_a_late_one_is_not() {
        let o = opts(100);
        let t0 = Instant::now();
        let steady = record(t0, &[100, 200, 300, 400, 500, 600]);
        let jittery = record(t0, &[100, 230, 300, 420, 500, 600]);
        let lost = record(t0, &[100, 200, 400, 500, 600]);
        let end = t0 + Duration::from_millis(650);
        let v = summarize(&o, &[steady, jittery, lost], t0, end, 0.1, None, None);
        assert_eq!(v["opened"], 3);
        assert_eq!(v["streams_missing_heartbeats"], 1);
        assert_eq!(v["heartbeats_per_stream_min"], 5);
        assert_eq!(v["max_gap_ms"], 200.0);
    }

    #[test]
    fn streams_that_close_or_never_open_are_reported() {
        let o = opts(100);
        let t0 = Instant::now();
        let mut closed = record(t0, &[100]);
        closed.closed = Some(t0 + Duration::from_millis(150));
        let never = Record {
            fault: Some("status-503".into()),
            ..Record::default()
        };
        let end = t0 + Duration::from_millis(300);
        let v = summarize(&o, &[closed, never], t0, end, 0.1, None, None);
        assert_eq!(v["opened"], 1);
        assert_eq!(v["failed"], 1);
        assert_eq!(v["early_closed"], 1);
        assert_eq!(v["streams_missing_heartbeats"], 1);
        assert_eq!(v["errors"]["status-503"], 1);
    }

    #[test]
    fn memory_per_stream_is_the_growth_over_the_streams_opened() {
        let o = opts(100);
        let t0 = Instant::now();
        let recs: Vec<Record> = (0..4).map(|_| record(t0, &[100])).collect();
        let m = |rss_kib| Memory {
            rss_kib,
            hwm_kib: None,
            threads: None,
        };
        let end = t0 + Duration::from_millis(150);
        let v = summarize(&o, &recs, t0, end, 0.1, Some(m(1000)), Some(m(1100)));
        assert_eq!(v["kib_per_stream"], 25.0);
    }
}
