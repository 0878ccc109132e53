//! What every answer carries: the error shape, the request id, the security headers, the
//! access-log line and the span's end. The connection layer uses [`refusal`] for what it refuses
//! before routing, so this file imports neither the router nor the connection code.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::app::{App, Caller};
use crate::clock;
use crate::http::{Request, Response};
use crate::observe::logging;
use crate::observe::trace::{Span, attr};

/// What `finish` records of a request besides its answer.
pub(super) struct Served<'a> {
    pub(super) request_id: &'a str,
    pub(super) route: &'static str,
    /// The client as believed (after trusted proxies).
    pub(super) ip: IpAddr,
}

/// The seed's error JSON: `{"apiVersion","error":{code,message,hint},"requestId","timestamp",
/// "correlationId"}`; `requestId` and `correlationId` are filled in by `finish`.
pub fn error_response(
    status: u16,
    code: &str,
    message: &str,
    hint: &str,
    details: Option<Value>,
) -> Response {
    let mut err = json!({"code": code, "message": message, "hint": hint});
    if let Some(d) = details {
        err["details"] = d;
    }
    let mut r = Response::json(
        status,
        &json!({"apiVersion": "1.0.0", "error": err, "timestamp": clock::rfc3339(SystemTime::now())}),
    );
    r.set_header("X-Error-Body", "seed");
    r
}

/// An error answered before a request could be routed (the connection layer's refusals): the
/// error JSON with a fresh request id and the usual headers; the connection closes after it.
pub fn refusal(status: u16, code: &str, message: &str, hint: &str) -> Response {
    let id = fresh_request_id();
    let mut r = Response::json(
        status,
        &json!({"apiVersion": "1.0.0", "error": {"code": code, "message": message, "hint": hint},
                "requestId": id, "timestamp": clock::rfc3339(SystemTime::now()), "correlationId": id}),
    );
    r.set_header("X-Request-Id", id);
    r.set_header("X-Content-Type-Options", "nosniff");
    r.set_header("Cache-Control", "no-store");
    r.close = true;
    r
}

/// Adds the headers every answer carries, fills the error body's ids, logs the access line.
pub(super) fn finish(
    app: &App,
    req: &Request,
    resp: &mut Response,
    served: &Served<'_>,
    caller: Option<&Caller>,
    mut span: Option<Span>,
) {
    let Served {
        request_id, route, ..
    } = *served;
    // Error bodies get the request id; the marker header is internal and removed.
    if let Some(pos) = resp
        .headers
        .iter()
        .position(|(n, v)| *n == "X-Error-Body" && v == "seed")
    {
        resp.headers.remove(pos);
        if let crate::http::Body::Bytes(b) = &mut resp.body {
            if let Ok(mut v) = serde_json::from_slice::<Value>(b) {
                v["requestId"] = Value::String(request_id.to_string());
                v["correlationId"] = Value::String(request_id.to_string());
                *b = serde_json::to_vec(&v).unwrap_or_default();
            }
        }
    }
    resp.set_header("X-Request-Id", request_id);
    resp.set_header("X-Content-Type-Options", "nosniff");
    resp.set_header("Referrer-Policy", "no-referrer");
    if req.tls {
        resp.set_header(
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        );
    }
    let is_html = resp
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/html"));
    let is_sse = resp
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if is_html {
        resp.set_header("X-Frame-Options", "DENY");
    } else if !is_sse && resp.header("Cache-Control").is_none() {
        resp.set_header("Cache-Control", "no-store");
    }
    if resp.header("Content-Security-Policy").is_none() {
        resp.set_header(
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        );
    }
    let elapsed = req.received.elapsed();
    app.metrics
        .request_finished(req.head.method.as_str(), route, resp.status, elapsed);
    if let Some(span) = &mut span {
        let mut traceparent = String::with_capacity(55);
        crate::observe::trace::format_traceparent(&span.context, &mut traceparent);
        resp.set_header("traceparent", traceparent);
        span.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, resp.status);
        if resp.status >= 500 {
            span.set_error(resp.status.to_string(), "server error");
        }
    }
    if let crate::http::Body::Stream(_) = &resp.body {
        // A stream's length is known when it ends: its access line is written then.
        let (request_id, identity) = (request_id.to_string(), caller.map(|c| c.identity.clone()));
        let trace = span.as_ref().map(|s| s.context.clone());
        let method = req.head.method.as_str();
        let peer = served.ip;
        let head_ms = elapsed.as_secs_f64() * 1000.0;
        let status = resp.status;
        let metrics = std::sync::Arc::clone(&app.metrics);
        crate::net::stream::on_end(resp, move |bytes, ran| {
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            metrics.response_sent(route, bytes);
            logging::access(&logging::Access {
                request_id: &request_id,
                method,
                route,
                status,
                bytes,
                duration_ms: head_ms,
                stream_ms: Some(ran.as_secs_f64() * 1000.0),
                peer,
                identity: identity.as_deref(),
                trace: trace.as_ref(),
            });
        });
    } else {
        app.metrics.response_sent(route, resp.body_len());
        logging::access(&logging::Access {
            request_id,
            method: req.head.method.as_str(),
            route,
            status: resp.status,
            bytes: resp.body_len(),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            stream_ms: None,
            // Behind a trusted proxy the log names the client, not the proxy.
            peer: served.ip,
            identity: caller.map(|c| c.identity.as_str()),
            trace: span.as_ref().map(|s| &s.context),
        });
    }
    if let Some(span) = span {
        app.tracer.finish(span);
    }
}

/// The client's X-Request-Id when well-formed, else a fresh one.
pub(super) fn request_id(req: &Request) -> String {
    if let Some(id) = req.head.header("x-request-id") {
        if !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return id.to_string();
        }
    }
    fresh_request_id()
}

/// A new request id: a random per-process prefix and a counter (unique, cheap, not secret).
pub(super) fn fresh_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        // A failed source still gives unique ids within the process (the counter); only the
        // prefix, which tells processes apart, falls back to the pid.
        crate::random::hex(6).unwrap_or_else(|_| format!("{:012x}", std::process::id()))
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
