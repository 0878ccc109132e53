//! Routing: one linear pipeline (request id, host, origin, auth, rate limit) and one visible
//! `match` from (method, path) to a plain handler function. No middleware: every cross-cutting
//! step is a call in [`handle`], in the order it runs.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::app::{App, Caller};
use crate::clock;
use crate::conn::Request;
use crate::http::{Method, Response};
use crate::logging;
use crate::tools::Access;

/// Route templates, the only values the `route` label and the access log ever take.
pub const ROUTES: &[&str] = &[
    "/",
    "/static/*",
    "/health/live",
    "/health/ready",
    "/health/metrics",
    "/metrics",
    "/mcp",
    "/sse",
    "/sse/stats",
    "/sse/broadcast",
    "/messages",
    "/status/stream",
    "/security/metrics",
    "/debug/vars",
    "/.well-known/*",
    "other",
];

/// Serves one request on the main (TLS) port.
pub fn handle(app: &App, req: &Request) -> Response {
    let request_id = request_id(req);
    let route = route_of(&req.head.method, &req.head.path);
    let mut caller: Option<Caller> = None;
    app.metrics.request_started();
    let mut resp = pipeline(app, req, route, &mut caller);
    finish(app, req, &mut resp, &request_id, route, caller.as_ref());
    resp
}

/// Serves one request on the plain-HTTP metrics port: metrics and health only.
pub fn handle_metrics_port(app: &App, req: &Request) -> Response {
    let request_id = request_id(req);
    app.metrics.request_started();
    let route = route_of(&req.head.method, &req.head.path);
    let mut resp = match (&req.head.method, req.head.path.as_str()) {
        (Method::Get | Method::Head, "/metrics") => metrics(app),
        (Method::Get | Method::Head, "/health/live" | "/healthz") => live(app),
        (Method::Get | Method::Head, "/health/ready" | "/readyz") => ready(app),
        _ => error_response(
            404,
            "NOT_FOUND",
            "No such endpoint on the metrics port.",
            "Use /metrics.",
            None,
        ),
    };
    finish(app, req, &mut resp, &request_id, route, None);
    resp
}

fn pipeline(
    app: &App,
    req: &Request,
    route: &'static str,
    caller: &mut Option<Caller>,
) -> Response {
    let head = &req.head;
    let path = head.path.as_str();
    // Health endpoints are open and cheap: probes must not depend on tokens or Host names.
    match (&head.method, path) {
        (Method::Get | Method::Head, "/health/live" | "/healthz") => return live(app),
        (Method::Get | Method::Head, "/health/ready" | "/readyz") => return ready(app),
        (Method::Get | Method::Head, "/health/metrics") => return health_detail(app),
        _ => {}
    }
    // DNS rebinding: a loopback server answers loopback Host names only.
    if let Some(host) = head.header("host") {
        if !app.host_allowed(host) {
            return error_response(
                403,
                "HOST_NOT_ALLOWED",
                "This Host is not allowed.",
                "Add it to ALLOWED_HOSTS.",
                None,
            );
        }
    }
    // OAuth discovery probes get fast JSON 404s (never HTML, never 401).
    if path.starts_with("/.well-known/") || path == "/register" {
        return error_response(
            404,
            "NOT_FOUND",
            "OAuth is not configured on this server.",
            "Use a bearer token.",
            None,
        );
    }
    if matches!(head.method, Method::Get | Method::Head) {
        if let Some(resp) = page(path) {
            return resp;
        }
    }
    // A POST that does not say how long its body is cannot be a request we serve.
    if head.method == Method::Post
        && head.framing == crate::http::request::Framing::None
        && head.header("content-length").is_none()
    {
        return error_response(
            411,
            "LENGTH_REQUIRED",
            "A body length is required.",
            "Send Content-Length or chunked.",
            None,
        );
    }
    let c = match authenticate(app, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    *caller = Some(c.clone());
    route_match(app, req, route, &c)
}

/// The routing table.
fn route_match(app: &App, req: &Request, _route: &'static str, caller: &Caller) -> Response {
    let head = &req.head;
    match (&head.method, head.path.as_str()) {
        (Method::Get | Method::Head, "/metrics") => metrics(app),
        (Method::Get, "/status/stream") => status_stream(app),
        (_, "/mcp") => crate::mcp::http::handle(&app.mcp, head, &req.body, &mcp_caller(caller)),
        (Method::Get, "/sse") => {
            crate::mcp::legacy::open_stream(&app.mcp, head, &mcp_caller(caller))
        }
        (Method::Post, "/sse") => {
            crate::mcp::seed::post_sse(&app.mcp, head, &req.body, &mcp_caller(caller))
        }
        (Method::Post, "/messages") => {
            crate::mcp::legacy::post_message(&app.mcp, head, &req.body, &mcp_caller(caller))
        }
        (Method::Get, "/sse/stats") => crate::mcp::legacy::stats(&app.mcp, &mcp_caller(caller)),
        (Method::Post, "/sse/broadcast") => {
            crate::mcp::legacy::broadcast(&app.mcp, &req.body, &mcp_caller(caller))
        }
        (_, "/sse") => method_not_allowed("GET, POST"),
        (Method::Get, "/debug/vars") if app.config.debug_endpoints => {
            if caller.grants < Access::Admin {
                return forbidden("admin");
            }
            debug_vars(app)
        }
        (
            _,
            "/metrics" | "/health/live" | "/health/ready" | "/health/metrics" | "/healthz"
            | "/readyz",
        ) => method_not_allowed("GET, HEAD"),
        _ => error_response(
            404,
            "NOT_FOUND",
            &format!("No route for {}.", head.path),
            "See the README for the endpoints.",
            None,
        ),
    }
}

fn mcp_caller(c: &Caller) -> crate::mcp::Caller {
    crate::mcp::Caller {
        identity: c.identity.clone(),
        grants: c.grants,
    }
}

/// Names the route template of a path, for metrics labels and logs.
pub fn route_of(_method: &Method, path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/health/live" | "/healthz" => "/health/live",
        "/health/ready" | "/readyz" => "/health/ready",
        p if p.starts_with("/static/") => "/static/*",
        p if p.starts_with("/.well-known/") => "/.well-known/*",
        p => ROUTES.iter().find(|r| **r == p).copied().unwrap_or("other"),
    }
}

fn authenticate(app: &App, req: &Request) -> Result<Caller, Response> {
    use crate::metrics::AuthResult;
    use crate::security::auth::{AuthError, Role};
    let headers = req
        .head
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    match app.tokens.authenticate(
        headers,
        req.head.query.as_deref(),
        app.config.allow_query_token,
    ) {
        Ok(id) => {
            app.metrics.auth(AuthResult::Success);
            let grants = match id.role {
                Role::Reader => Access::Read,
                Role::Writer => Access::Write,
                Role::Admin => Access::Admin,
            };
            Ok(Caller {
                identity: id.name,
                grants,
            })
        }
        Err(AuthError::Missing) => {
            app.metrics.auth(AuthResult::Missing);
            Err(unauthorized(None))
        }
        Err(AuthError::Malformed(_)) => {
            app.metrics.auth(AuthResult::Failure);
            Err(error_response(
                400,
                "MALFORMED_CREDENTIALS",
                "The credentials are malformed.",
                "Send exactly one Authorization: Bearer <token>.",
                None,
            ))
        }
        Err(_) => {
            app.metrics.auth(AuthResult::Failure);
            Err(unauthorized(Some("invalid_token")))
        }
    }
}

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"task-mcp\", error=\"{e}\""),
        None => "Bearer realm=\"task-mcp\"".to_string(),
    };
    error_response(
        401,
        "UNAUTHORIZED",
        "A valid bearer token is required.",
        "Send Authorization: Bearer <token>.",
        None,
    )
    .with_header("WWW-Authenticate", challenge)
}

fn forbidden(needed: &str) -> Response {
    error_response(
        403,
        "FORBIDDEN",
        &format!("This needs the {needed} role."),
        "Use a token with that role.",
        None,
    )
    .with_header(
        "WWW-Authenticate",
        format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\""),
    )
}

fn method_not_allowed(allow: &'static str) -> Response {
    error_response(
        405,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this path.",
        &format!("Use {allow}."),
        None,
    )
    .with_header("Allow", allow)
}

fn live(app: &App) -> Response {
    Response::json(
        200,
        &json!({"status": "ok", "uptimeSeconds": app.started.elapsed().as_secs()}),
    )
}

fn ready(app: &App) -> Response {
    let mut reasons = Vec::new();
    if app.is_draining() {
        reasons.push("draining");
    }
    if !app.workspace_ready() {
        reasons.push("workspace not readable and writable");
    }
    if reasons.is_empty() {
        Response::json(200, &json!({"status": "ready"}))
    } else {
        Response::json(503, &json!({"status": "not_ready", "reasons": reasons}))
    }
}

fn health_detail(app: &App) -> Response {
    let ws = app.workspace_ready();
    let status = if ws { "HEALTHY" } else { "UNHEALTHY" };
    Response::json(
        if ws { 200 } else { 503 },
        &json!({"status": status, "checks": [{"name": "workspace", "status": status, "detail": app.config.root.display().to_string()}]}),
    )
}

fn metrics(app: &App) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    app.metrics.render(&mut body);
    Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        body.into_bytes(),
    )
}

/// Live statistics for the status page: an `event: stats` every second, keep-alive comments
/// between, until the client leaves or the server drains.
fn status_stream(app: &App) -> Response {
    if app.counters.streams.load(Ordering::Acquire) >= app.config.max_streams {
        return error_response(
            503,
            "TOO_MANY_STREAMS",
            "Too many open streams.",
            "Retry later (MAX_STREAMS).",
            None,
        )
        .with_header("Retry-After", "5");
    }
    let app = app.self_arc();
    Response::stream(
        "text/event-stream",
        Box::new(move |ctx| {
            let mut last = (
                std::time::Instant::now(),
                app.counters.requests.load(Ordering::Relaxed),
            );
            let mut buf = Vec::new();
            loop {
                let now = std::time::Instant::now();
                let total = app.counters.requests.load(Ordering::Relaxed);
                let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
                let rate = (total - last.1) as f64 / secs;
                last = (now, total);
                buf.clear();
                let stats = status_json(&app, total, rate);
                if crate::sse::write_event(&mut buf, Some("stats"), None, &stats.to_string())
                    .is_err()
                    || ctx.send(&buf).is_err()
                {
                    return;
                }
                match ctx.sleep(std::time::Duration::from_secs(1)) {
                    crate::stream::Wait::Timeout => {}
                    _ => return,
                }
            }
        }),
    )
    .with_header("Cache-Control", "no-cache")
    .with_header("X-Accel-Buffering", "no")
}

/// The statistics object of `/status/stream`.
pub fn status_json(app: &App, total: u64, rate: f64) -> Value {
    let c = &app.counters;
    let ws = app.workspace_ready();
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
        "tools": {"total": m.tool_executions_total, "errors": m.tool_errors_total},
        "health": {"status": if ws { "HEALTHY" } else { "UNHEALTHY" }, "checks": [{"name": "workspace", "status": if ws { "HEALTHY" } else { "UNHEALTHY" }, "detail": app.config.root.display().to_string()}]},
    })
}

fn debug_vars(app: &App) -> Response {
    let c = &app.counters;
    let pool = app.pool.get();
    Response::json(
        200,
        &json!({
            "connections": c.connections.load(Ordering::Relaxed),
            "streams": c.streams.load(Ordering::Relaxed),
            "inFlight": c.in_flight.load(Ordering::Relaxed),
            "requests": c.requests.load(Ordering::Relaxed),
            "refused": c.refused.load(Ordering::Relaxed),
            "workers": pool.map(|p| p.threads.load(Ordering::Relaxed)),
            "workersBusy": pool.map(|p| p.busy.load(Ordering::Relaxed)),
            "workerPanics": pool.map(|p| p.panics.load(Ordering::Relaxed)),
            "workersMax": app.pool_max.load(Ordering::Relaxed),
        }),
    )
}

/// The status page and its same-origin assets (open: the page asks for a token itself).
fn page(path: &str) -> Option<Response> {
    let asset = crate::page::asset(path)?;
    Some(
        Response::bytes(200, asset.content_type, asset.body.to_vec())
            .with_header("Content-Security-Policy", crate::page::CSP)
            .with_header("Cache-Control", "no-cache"),
    )
}

/// The seed's error JSON: `{"apiVersion","error":{code,message,hint},"requestId","timestamp",
/// "correlationId"}`; `requestId` and `correlationId` are filled in by [`finish`].
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
fn finish(
    app: &App,
    req: &Request,
    resp: &mut Response,
    request_id: &str,
    route: &'static str,
    caller: Option<&Caller>,
) {
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
    let peer = req.peer.ip().to_string();
    logging::access(&logging::Access {
        request_id,
        method: req.head.method.as_str(),
        route,
        status: resp.status,
        bytes: resp.body_len(),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        peer: &peer,
        identity: caller.map(|c| c.identity.as_str()),
        trace_id: None,
        span_id: None,
    });
}

/// The client's X-Request-Id when well-formed, else a fresh one.
fn request_id(req: &Request) -> String {
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
fn fresh_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 6];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
