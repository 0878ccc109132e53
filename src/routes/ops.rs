//! The operational endpoints: health (live, ready, detail), metrics, the status page and its
//! live stream, security statistics and debug variables.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::app::App;
use crate::clock;
use crate::http::Response;
use crate::observe::health::HealthStatus;

use super::answers::error_response;

/// `GET /security/metrics` (admin): authentication, rate limits, top offenders, audit head.
pub(super) fn security_metrics(app: &App) -> Response {
    let sec = &app.security;
    let mut body = sec
        .metrics
        .to_json(crate::security::secmetrics::DEFAULT_TOP_N);
    let (seq, hash) = sec.audit.head();
    body["audit"] =
        json!({"lastSeq": seq, "lastHash": hash, "writeErrors": sec.audit.write_errors()});
    body["rateLimit"]["buckets"] = json!(sec.rate_buckets());
    body["inFlight"] = json!(sec.in_flight());
    Response::json(200, &body)
}

/// `GET /security/audit` (admin): the audit ring's records, filtered by `identity`, `event`,
/// `since` and `limit`, oldest first, with the chain's head. Without `AUDIT_LOG` this is the only
/// place the records can be read.
pub(super) fn security_audit(app: &App, query: Option<&str>) -> Response {
    use crate::security::audit_query::{AuditQuery, PARAMS};
    let audit = &app.security.audit;
    let q = match AuditQuery::parse(query, audit.ring_size()) {
        Ok(q) => q,
        Err(why) => {
            return error_response(
                400,
                "BAD_QUERY",
                &why,
                &format!("Filter with {}.", PARAMS.join(", ")),
                None,
            );
        }
    };
    let records = q.apply(audit.recent(usize::MAX));
    let (seq, hash) = audit.head();
    Response::json(
        200,
        &json!({
            "count": records.len(),
            "records": records,
            "ringSize": audit.ring_size(),
            "head": {"seq": seq, "hash": hash},
            "file": app.config.audit_log.is_some(),
        }),
    )
}

pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    error_response(
        405,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this path.",
        &format!("Use {allow}."),
        None,
    )
    .with_header("Allow", allow)
}

pub(super) fn live(app: &App) -> Response {
    Response::json(
        200,
        &json!({"status": "ok", "uptimeSeconds": app.started.elapsed().as_secs()}),
    )
}

/// 200 while no health check is UNHEALTHY and the server is not draining, else 503; the body
/// names the checks that fail.
pub(super) fn ready(app: &App) -> Response {
    let draining = app.is_draining();
    let snap = app.health.snapshot(std::time::Instant::now());
    let failing: Vec<Value> = snap
        .checks
        .iter()
        .filter(|c| c.status == HealthStatus::Unhealthy)
        .map(|c| json!({"name": c.name, "detail": c.detail}))
        .collect();
    if snap.is_ready(draining) {
        return Response::json(200, &json!({"status": "ready", "health": snap.status}));
    }
    let mut reasons: Vec<String> = failing
        .iter()
        .filter_map(|c| c["name"].as_str().map(|n| format!("{n} unhealthy")))
        .collect();
    if draining {
        reasons.insert(0, "draining".into());
    }
    Response::json(
        503,
        &json!({"status": "not_ready", "health": snap.status, "reasons": reasons, "failing": failing}),
    )
}

/// Every health check with its detail; 503 when not ready (so a plain HTTP probe can use it).
pub(super) fn health_detail(app: &App) -> Response {
    let draining = app.is_draining();
    let snap = app.health.snapshot(std::time::Instant::now());
    let mut body = snap.to_json(draining);
    let t = app.tracer.stats();
    body["tracer"] = json!({
        "enabled": app.tracer.is_enabled(),
        "breaker": t.breaker.as_str(),
        "queued": app.tracer.queue_len(),
        "exportedSpans": t.exported_spans,
        "droppedSpans": t.dropped_total(),
        "failedExports": t.failed_requests,
    });
    Response::json(if snap.is_ready(draining) { 200 } else { 503 }, &body)
}

pub(super) fn metrics(app: &App) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    app.metrics.render(&mut body);
    Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        body.into_bytes(),
    )
}

/// Live statistics for the status page: an `event: stats` every second until the client leaves,
/// `MAX_STREAM_AGE_MS` passes or the server drains.
pub(super) fn status_stream(app: &App) -> Response {
    // Nothing is ever mailed to this stream: its events are its heartbeats. The sender is kept
    // with the stream so the mailbox stays open.
    let open = app.counters.streams.load(Ordering::Acquire);
    let mailbox = (open < app.config.max_streams)
        .then(|| crate::net::stream::mailbox::<()>(1).ok())
        .flatten();
    let Some((keep_open, mb)) = mailbox else {
        return error_response(
            503,
            "TOO_MANY_STREAMS",
            "Too many open streams.",
            "Retry later (MAX_STREAMS).",
            None,
        )
        .with_header("Retry-After", "5");
    };
    let app = app.self_arc();
    let max_age = app.config.max_stream_age;
    let mut last = (
        std::time::Instant::now(),
        app.counters.requests.load(Ordering::Relaxed),
    );
    let mut stats = move || {
        let now = std::time::Instant::now();
        let total = app.counters.requests.load(Ordering::Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
        let rate = total.saturating_sub(last.1) as f64 / secs;
        last = (now, total);
        let mut buf = Vec::new();
        let json = status_json(&app, total, rate).to_string();
        // unwrap-free: compact JSON has no line breaks; a failure sends nothing.
        let _ = crate::sse::write_event(&mut buf, Some("stats"), None, &json);
        buf
    };
    let first = stats();
    let held = crate::net::stream::held(
        mb,
        |()| Vec::new(),
        stats,
        vec![first],
        std::time::Duration::from_secs(1),
        max_age,
        keep_open,
    );
    crate::net::stream::held_sse(held)
}

/// The statistics object of `/status/stream`.
pub fn status_json(app: &App, total: u64, rate: f64) -> Value {
    let c = &app.counters;
    let health = app.health.snapshot(std::time::Instant::now());
    let m = app.metrics.snapshot();
    let ms = |s: Option<f64>| s.map_or(0.0, |v| (v * 1e6).round() / 1e3);
    let by_transport: serde_json::Map<String, Value> = m
        .open_streams
        .iter()
        .map(|(t, n)| (t.as_str().to_string(), json!(n)))
        .collect();
    json!({
        "ts": clock::unix_millis(SystemTime::now()),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "requests": {"total": total, "ratePerSec": (rate * 10.0).round() / 10.0, "errors4xx": m.client_errors_total, "errors5xx": m.server_errors_total},
        "latencyMs": {"p50": ms(m.latency_p50_seconds), "p90": ms(m.latency_p90_seconds), "p99": ms(m.latency_p99_seconds)},
        "streams": {"open": c.streams.load(Ordering::Relaxed), "byTransport": by_transport},
        "connections": {"open": c.connections.load(Ordering::Relaxed)},
        "tools": {"active": m.tool_active, "total": m.tool_executions_total, "errors": m.tool_errors_total},
        "health": {
            "status": health_word(health.status),
            "checks": health.checks.iter().map(|k| json!({"name": k.name, "status": health_word(k.status), "detail": k.detail})).collect::<Vec<_>>(),
        },
    })
}

/// Live internals for operators (`DEBUG_ENDPOINTS=true`, admin): threads, the worker pool,
/// connections by state, streams by transport, health, and the trace exporter.
pub(super) fn debug_vars(app: &App) -> Response {
    let c = &app.counters;
    let pool = app.pool.get();
    let load =
        |a: Option<&std::sync::atomic::AtomicUsize>| a.map_or(0, |a| a.load(Ordering::Relaxed));
    let workers = load(pool.map(|p| &p.threads));
    let busy = load(pool.map(|p| &p.busy));
    let connections = c.connections.load(Ordering::Relaxed);
    let streams = c.streams.load(Ordering::Relaxed);
    let in_flight = app.security.in_flight();
    let m = app.metrics.snapshot();
    let by_transport: serde_json::Map<String, Value> = m
        .open_streams
        .iter()
        .map(|(t, n)| (t.as_str().to_string(), json!(n)))
        .collect();
    let health = app.health.snapshot(std::time::Instant::now());
    let t = app.tracer.stats();
    let threads = crate::observe::metrics::ProcessStats::read().and_then(|p| p.threads);
    Response::json(
        200,
        &json!({
            "uptimeSeconds": app.started.elapsed().as_secs(),
            "threads": threads,
            "pool": {
                "workers": workers,
                "busy": busy,
                "idle": workers.saturating_sub(busy),
                "max": app.pool_max.load(Ordering::Relaxed),
                "panics": load(pool.map(|p| &p.panics)),
                // Every worker busy and none finishing: new connections get 503.
                "stuck": pool.is_some_and(|p| p.stuck.load(Ordering::Relaxed)),
            },
            "connections": {
                "open": connections,
                "active": in_flight,
                "streaming": streams,
                "idle": connections.saturating_sub(in_flight.max(streams)),
                // Idle ones that left their worker: they cost no thread.
                "parked": app.idle.len(),
                "refusedTotal": c.refused.load(Ordering::Relaxed),
            },
            "streams": {"open": streams, "byTransport": by_transport},
            "requests": {"total": c.requests.load(Ordering::Relaxed), "inFlight": in_flight},
            "tools": {"active": m.tool_active, "total": m.tool_executions_total},
            "health": {
                "status": health.status,
                "ready": health.is_ready(app.is_draining()),
                "checks": health.checks.iter().map(|k| json!({"name": k.name, "status": k.status})).collect::<Vec<_>>(),
            },
            "tracer": {
                "enabled": app.tracer.is_enabled(),
                "queued": app.tracer.queue_len(),
                "breaker": t.breaker.as_str(),
                "exportedSpans": t.exported_spans,
                "droppedQueueFull": t.dropped_queue_full,
                "droppedBreakerOpen": t.dropped_breaker_open,
                "failedSpans": t.failed_spans,
                "exportRequests": t.export_requests,
                "failedExports": t.failed_requests,
            },
        }),
    )
}

/// The status page and its same-origin assets (open: the page asks for a token itself).
pub(super) fn page(path: &str) -> Option<Response> {
    let asset = crate::page::asset(path)?;
    Some(
        Response::bytes(200, asset.content_type, asset.body.to_vec())
            .with_header("Content-Security-Policy", crate::page::CSP)
            .with_header("Cache-Control", "no-cache"),
    )
}

/// The word the status page shows for a health status.
pub(super) fn health_word(s: HealthStatus) -> &'static str {
    match s {
        HealthStatus::Healthy => "HEALTHY",
        HealthStatus::Degraded => "DEGRADED",
        HealthStatus::Unhealthy => "UNHEALTHY",
    }
}
