//! Routing: one linear pipeline (health, client address, IP lists, in-flight cap, Host, Origin,
//! preflight, OAuth discovery, address rate limit, authentication, identity rate limit) and one
//! visible `match` from (method, path) to a plain handler function. No middleware: every
//! cross-cutting step is a call in `pipeline`, in the order it runs.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use crate::app::{App, Caller};
use crate::clock;
use crate::conn::Request;
use crate::health::HealthStatus;
use crate::http::{Method, Response};
use crate::logging;
use crate::security::auth::Identity;
use crate::security::ratelimit::{Decision, Key};
use crate::tools::Access;
use crate::trace::{Span, attr};

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
    // Believed once (trusted proxies walked once) for the checks, the span and the log.
    let ip = client_ip(app, req);
    let span = request_span(app, req, route, ip);
    let _current = span.enter();
    let mut resp = pipeline(app, req, route, &request_id, ip, &mut caller);
    let served = Served {
        request_id: &request_id,
        route,
        ip,
    };
    finish(app, req, &mut resp, &served, caller.as_ref(), Some(span));
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
    let served = Served {
        request_id: &request_id,
        route,
        ip: client_ip(app, req),
    };
    finish(app, req, &mut resp, &served, None, None);
    resp
}

/// What `finish` records of a request besides its answer.
struct Served<'a> {
    request_id: &'a str,
    route: &'static str,
    /// The client as believed (after trusted proxies).
    ip: IpAddr,
}

/// Every step a request on the TLS port goes through, in the order it runs.
fn pipeline(
    app: &App,
    req: &Request,
    route: &'static str,
    request_id: &str,
    ip: IpAddr,
    caller: &mut Option<Caller>,
) -> Response {
    let head = &req.head;
    let path = head.path.as_str();
    // Health endpoints are open and cheap: probes must not depend on tokens, Host names or load.
    match (&head.method, path) {
        (Method::Get | Method::Head, "/health/live" | "/healthz") => return live(app),
        (Method::Get | Method::Head, "/health/ready" | "/readyz") => return ready(app),
        (Method::Get | Method::Head, "/health/metrics") => return health_detail(app),
        _ => {}
    }
    if let Err(resp) = check_forwarded_ip(app, req, ip) {
        return resp;
    }
    let Some(_in_flight) = app.security.enter() else {
        return error_response(
            503,
            "OVERLOADED",
            "Too many requests in flight.",
            "Retry shortly (MAX_IN_FLIGHT).",
            None,
        )
        .with_header("Retry-After", "1");
    };
    if let Err(resp) = check_host(app, req, ip) {
        return resp;
    }
    let origin = match check_origin(app, req, ip) {
        Ok(origin) => origin,
        Err(resp) => return resp,
    };
    if head.method == Method::Options {
        return preflight(origin);
    }
    let mut resp = 'serve: {
        if let Some(resp) = well_known(app, path) {
            break 'serve resp;
        }
        if matches!(head.method, Method::Get | Method::Head) {
            if let Some(resp) = page(path) {
                break 'serve resp;
            }
        }
        // A POST that does not say how long its body is cannot be a request we serve.
        if head.method == Method::Post
            && head.framing == crate::http::request::Framing::None
            && head.header("content-length").is_none()
        {
            break 'serve error_response(
                411,
                "LENGTH_REQUIRED",
                "A body length is required.",
                "Send Content-Length or chunked.",
                None,
            );
        }
        // The address bucket comes before authentication, so guessing tokens is limited too.
        if let Err(resp) = rate_limit(app, req, &Key::Ip(ip), None, ip, request_id) {
            break 'serve resp;
        }
        let identity = match authenticate(app, req, ip, request_id) {
            Ok(id) => id,
            Err(resp) => break 'serve resp,
        };
        let key = Key::Token(identity.name.clone());
        let decision = match rate_limit(app, req, &key, identity.rate_limit_per_min, ip, request_id)
        {
            Ok(d) => d,
            Err(resp) => break 'serve resp,
        };
        let c = caller_of(&identity);
        *caller = Some(c.clone());
        let scope = crate::mcp::RequestScope {
            ip: Some(ip),
            request_id: Some(request_id.to_string()),
        };
        let mut resp = crate::mcp::with_request_scope(Some(scope), || {
            route_match(app, req, route, &c, ip, request_id)
        });
        for (name, value) in decision.map(|d| d.headers()).unwrap_or_default() {
            resp.set_header(name, value);
        }
        resp
    };
    if let Some(origin) = origin {
        for (name, value) in crate::security::cors::response_headers(&origin) {
            resp.set_header(name, value);
        }
    }
    resp
}

/// The routing table.
fn route_match(
    app: &App,
    req: &Request,
    _route: &'static str,
    caller: &Caller,
    ip: IpAddr,
    request_id: &str,
) -> Response {
    let head = &req.head;
    let admin = |what: &str| require_admin(app, caller, what, ip, request_id);
    match (&head.method, head.path.as_str()) {
        (Method::Get | Method::Head, "/metrics") => metrics(app),
        (Method::Get, "/status/stream") => status_stream(app),
        (_, "/mcp") => crate::mcp::http::handle(&app.mcp, head, &req.body, caller),
        (Method::Get, "/sse") => crate::mcp::legacy::open_stream(&app.mcp, head, caller),
        (Method::Post, "/sse") => crate::mcp::seed::post_sse(&app.mcp, head, &req.body, caller),
        (Method::Post, "/messages") => {
            crate::mcp::legacy::post_message(&app.mcp, head, &req.body, caller)
        }
        (Method::Get, "/sse/stats") => match admin("/sse/stats") {
            Err(resp) => resp,
            Ok(()) => crate::mcp::legacy::stats(&app.mcp, caller),
        },
        (Method::Post, "/sse/broadcast") => match admin("/sse/broadcast") {
            Err(resp) => resp,
            Ok(()) => crate::mcp::legacy::broadcast(&app.mcp, &req.body, caller),
        },
        (Method::Get, "/security/metrics") => match admin("/security/metrics") {
            Err(resp) => resp,
            Ok(()) => security_metrics(app),
        },
        (_, "/sse") => method_not_allowed("GET, POST"),
        (Method::Get, "/debug/vars") if app.config.debug_endpoints => match admin("/debug/vars") {
            Err(resp) => resp,
            Ok(()) => debug_vars(app),
        },
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

/// The client address: the peer, or the rightmost untrusted `X-Forwarded-For` hop when the peer
/// is a trusted proxy (`TRUSTED_PROXIES`).
fn client_ip(app: &App, req: &Request) -> IpAddr {
    let xff: Vec<&str> = req.head.headers_named("x-forwarded-for").collect();
    let xff = (!xff.is_empty()).then(|| xff.join(","));
    app.security.client_ip(req.peer.ip(), xff.as_deref())
}

/// `IP_ALLOW` / `IP_DENY` for a client behind a trusted proxy (other peers were checked when
/// their connection was accepted).
fn check_forwarded_ip(app: &App, req: &Request, ip: IpAddr) -> Result<(), Response> {
    if !app.security.is_trusted_proxy(req.peer.ip()) || app.security.ips.permits(ip) {
        return Ok(());
    }
    app.security.metrics.ip_denied(ip);
    Err(error_response(
        403,
        "IP_DENIED",
        "This client address is not allowed.",
        "Ask the operator (IP_ALLOW / IP_DENY).",
        None,
    ))
}

/// DNS rebinding: only allowlisted `Host` names (`ALLOWED_HOSTS`; loopback names on a loopback
/// bind). An HTTP/1.0 request without `Host` passes: no browser sends one.
fn check_host(app: &App, req: &Request, ip: IpAddr) -> Result<(), Response> {
    use crate::security::cors::HostVerdict;
    let Some(host) = req.head.header("host") else {
        return Ok(());
    };
    match app.security.hosts.check_host(Some(host)) {
        HostVerdict::Allowed => Ok(()),
        HostVerdict::Forbidden => {
            app.security.metrics.host_denied(ip);
            Err(refusal_for(
                req,
                403,
                "HOST_NOT_ALLOWED",
                "This Host is not allowed.",
                "Add it to ALLOWED_HOSTS.",
            ))
        }
        HostVerdict::Malformed => Err(refusal_for(
            req,
            400,
            "BAD_HOST",
            "The Host header is not a host name.",
            "Send Host: name[:port].",
        )),
    }
}

/// A refusal in the shape its endpoint speaks: a JSON-RPC error (code -32000, the status kept, the
/// request's id when its body has one) on the MCP message endpoints, the error JSON elsewhere.
fn refusal_for(req: &Request, status: u16, code: &str, message: &str, hint: &str) -> Response {
    match json_rpc_id(req) {
        Some(id) => Response::json(
            status,
            &json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32000, "message": message, "data": {"code": code, "hint": hint}}}),
        ),
        None => error_response(status, code, message, hint, None),
    }
}

/// For a POST to an MCP message endpoint (`/mcp`, `/messages`): the request's JSON-RPC id, or
/// null when the body has none. `None` for every other request.
fn json_rpc_id(req: &Request) -> Option<Value> {
    let path = req.head.path.as_str();
    if req.head.method != Method::Post || !(path == "/mcp" || path == "/messages") {
        return None;
    }
    Some(
        serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v.get("id").cloned())
            .unwrap_or(Value::Null),
    )
}

/// An `Origin` that is present must be allowlisted (`ALLOWED_ORIGINS`) or be this server's own
/// (same-origin pages); returns an allowlisted one, which unlocks the CORS headers.
fn check_origin(app: &App, req: &Request, ip: IpAddr) -> Result<Option<String>, Response> {
    use crate::security::cors::OriginVerdict;
    let origin = req.head.header("origin");
    match app.security.origins.check_origin(origin) {
        OriginVerdict::Absent => Ok(None),
        OriginVerdict::Allowed => Ok(origin.map(|o| o.trim().to_string())),
        // The status page posting to its own server.
        OriginVerdict::Forbidden
            if origin
                .zip(req.head.header("host"))
                .is_some_and(|(o, h)| crate::security::cors::is_same_origin(o, h)) =>
        {
            Ok(None)
        }
        OriginVerdict::Forbidden => {
            app.security.metrics.origin_denied(ip);
            Err(refusal_for(
                req,
                403,
                "ORIGIN_NOT_ALLOWED",
                "This Origin is not allowed.",
                "Add it to ALLOWED_ORIGINS.",
            ))
        }
    }
}

/// `OPTIONS`: a CORS preflight from an allowed origin gets the headers MCP clients need; without
/// an `Origin` it is a plain `OPTIONS`. Neither needs a token (browsers send none on preflight).
fn preflight(origin: Option<String>) -> Response {
    let mut resp = Response::empty(204).with_header("Allow", crate::security::cors::ALLOW_METHODS);
    if let Some(origin) = origin {
        for (name, value) in crate::security::cors::preflight_headers(&origin) {
            resp.set_header(name, value);
        }
    }
    resp
}

/// OAuth discovery: fast JSON 404s (never HTML, never 401), except the RFC 9728 document when
/// `OAUTH_RESOURCE_METADATA` is set. `None` for every other path.
fn well_known(app: &App, path: &str) -> Option<Response> {
    if !(path.starts_with("/.well-known/") || path == "/register") {
        return None;
    }
    if let Some(meta) = &app.security.resource_metadata {
        if path == "/.well-known/oauth-protected-resource"
            || path == "/.well-known/oauth-protected-resource/mcp"
        {
            return Some(Response::json(200, &meta.document));
        }
    }
    Some(error_response(
        404,
        "NOT_FOUND",
        "OAuth is not configured on this server.",
        "Use a bearer token.",
        None,
    ))
}

/// Checks the credential (`Authorization: Bearer`, `X-API-Key`, `Authorization: ApiKey`; the
/// query only with `ALLOW_QUERY_TOKEN`); failures are counted and audited.
fn authenticate(
    app: &App,
    req: &Request,
    ip: IpAddr,
    request_id: &str,
) -> Result<Identity, Response> {
    use crate::metrics::AuthResult;
    use crate::security::audit::{AuditEvent, EventKind};
    use crate::security::auth::AuthError;
    let headers = req
        .head
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    let err = match app.tokens.authenticate(
        headers,
        req.head.query.as_deref(),
        app.config.allow_query_token,
    ) {
        Ok(id) => {
            app.metrics.auth(AuthResult::Success);
            app.security.metrics.auth_success();
            return Ok(id);
        }
        Err(e) => e,
    };
    app.metrics.auth(match err {
        AuthError::Missing => AuthResult::Missing,
        _ => AuthResult::Failure,
    });
    app.security.metrics.auth_failure(&err, ip);
    app.security.record(
        AuditEvent::new(EventKind::AuthFailure, err.as_str())
            .ip(ip)
            .request_id(request_id),
    );
    let challenge = err.www_authenticate(resource_metadata_url(app));
    let resp = match err {
        AuthError::Malformed(m) => error_response(
            400,
            "MALFORMED_CREDENTIALS",
            &format!("The credentials are malformed: {}", m.description()),
            "Send exactly one Authorization: Bearer <token>.",
            None,
        ),
        _ => error_response(
            401,
            "UNAUTHORIZED",
            "A valid bearer token is required.",
            "Send Authorization: Bearer <token>.",
            None,
        ),
    };
    Err(resp.with_header("WWW-Authenticate", challenge))
}

/// Takes one token from `key`'s bucket (`RATE_LIMIT`, `RATE_LIMIT_BURST`, or the identity's own
/// `rateLimit`). A denial is counted, audited and answered 429 with `Retry-After` and the
/// `RateLimit-*` headers; MCP callers get the JSON-RPC error -32005 with `retryAfterMs`.
/// `Ok(None)` when rate limiting is off.
fn rate_limit(
    app: &App,
    req: &Request,
    key: &Key,
    per_min: Option<u32>,
    ip: IpAddr,
    request_id: &str,
) -> Result<Option<Decision>, Response> {
    use crate::metrics::RateScope;
    use crate::security::audit::{AuditEvent, EventKind};
    let Some(decision) = app.security.rate_check(key, per_min, Instant::now()) else {
        return Ok(None);
    };
    if decision.allowed {
        return Ok(Some(decision));
    }
    let identity = match key {
        Key::Token(name) => Some(name.as_str()),
        Key::Ip(_) => None,
    };
    app.metrics.rate_limited(match key {
        Key::Token(_) => RateScope::Token,
        Key::Ip(_) => RateScope::Ip,
    });
    app.security.metrics.rate_limited(identity, ip);
    let mut event = AuditEvent::new(EventKind::RateLimited, key.render())
        .ip(ip)
        .request_id(request_id);
    if let Some(name) = identity {
        event = event.identity(name);
    }
    app.security.record(event);
    let mut resp = if let Some(id) = json_rpc_id(req) {
        Response::json(
            429,
            &json!({"jsonrpc": "2.0", "id": id, "error": decision.rpc_error()}),
        )
    } else {
        error_response(
            429,
            "RATE_LIMITED",
            "Too many requests.",
            "Wait for Retry-After seconds.",
            decision
                .retry_after_ms()
                .map(|ms| json!({"retryAfterMs": ms})),
        )
    };
    for (name, value) in decision.headers() {
        resp.set_header(name, value);
    }
    Err(resp)
}

/// The admin role, or a 403 (counted and audited).
fn require_admin(
    app: &App,
    caller: &Caller,
    what: &str,
    ip: IpAddr,
    request_id: &str,
) -> Result<(), Response> {
    use crate::security::audit::{AuditEvent, EventKind};
    if caller.grants >= Access::Admin {
        return Ok(());
    }
    app.metrics.auth(crate::metrics::AuthResult::Forbidden);
    app.security.metrics.forbidden(&caller.identity, ip);
    app.security.record(
        AuditEvent::new(EventKind::Forbidden, format!("{what} needs mcp:admin"))
            .identity(caller.identity.as_str())
            .ip(ip)
            .request_id(request_id),
    );
    Err(error_response(
        403,
        "FORBIDDEN",
        "This needs the admin role.",
        "Use a token with that role.",
        None,
    )
    .with_header(
        "WWW-Authenticate",
        crate::security::auth::www_authenticate_forbidden(
            Access::Admin,
            resource_metadata_url(app),
        ),
    ))
}

fn caller_of(id: &Identity) -> Caller {
    Caller {
        identity: id.name.clone(),
        grants: id.role,
    }
}

fn resource_metadata_url(app: &App) -> Option<&str> {
    app.security
        .resource_metadata
        .as_ref()
        .map(|m| m.url.as_str())
}

/// `GET /security/metrics` (admin): authentication, rate limits, top offenders, audit head.
fn security_metrics(app: &App) -> Response {
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

/// 200 while no health check is UNHEALTHY and the server is not draining, else 503; the body
/// names the checks that fail.
fn ready(app: &App) -> Response {
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
fn health_detail(app: &App) -> Response {
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
fn debug_vars(app: &App) -> Response {
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
    let threads = crate::metrics::ProcessStats::read().and_then(|p| p.threads);
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
                // Connections are handed to an idle worker or refused, never queued.
                "queueDepth": 0,
            },
            "connections": {
                "open": connections,
                "active": in_flight,
                "streaming": streams,
                "idle": connections.saturating_sub(in_flight.max(streams)),
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
fn page(path: &str) -> Option<Response> {
    let asset = crate::page::asset(path)?;
    Some(
        Response::bytes(200, asset.content_type, asset.body.to_vec())
            .with_header("Content-Security-Policy", crate::page::CSP)
            .with_header("Cache-Control", "no-cache"),
    )
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
fn finish(
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
        crate::trace::format_traceparent(&span.context, &mut traceparent);
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
        resp.wrap_stream(move |run, ctx| {
            let started = std::time::Instant::now();
            run(ctx);
            logging::access(&logging::Access {
                request_id: &request_id,
                method,
                route,
                status,
                bytes: usize::try_from(ctx.bytes_sent).unwrap_or(usize::MAX),
                duration_ms: head_ms,
                stream_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                peer,
                identity: identity.as_deref(),
                trace: trace.as_ref(),
            });
        });
    } else {
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

/// The server span of one request: continues a valid `traceparent` (with its `tracestate`),
/// else starts a new trace; a malformed header is ignored. Starts when the head was read.
fn request_span(app: &App, req: &Request, route: &'static str, ip: IpAddr) -> Span {
    let head = &req.head;
    let mut parents = head.headers_named("traceparent");
    // Two traceparent headers are invalid (W3C trace context §3.2): start a new trace.
    let parent = match (parents.next(), parents.next()) {
        (Some(tp), None) => {
            let state = head
                .headers_named("tracestate")
                .collect::<Vec<_>>()
                .join(",");
            let state = (!state.is_empty()).then_some(state);
            crate::trace::extract(Some(tp.as_bytes()), state.as_deref().map(str::as_bytes))
        }
        _ => None,
    };
    let started = SystemTime::now()
        .checked_sub(req.received.elapsed())
        .unwrap_or_else(SystemTime::now);
    let method = head.method.as_str();
    let mut span = app
        .tracer
        .start_request(parent, format!("{method} {route}"), started);
    if span.is_sampled() {
        span.set_attribute(attr::HTTP_REQUEST_METHOD, method);
        span.set_attribute(attr::HTTP_ROUTE, route);
        span.set_attribute(attr::URL_PATH, head.path.clone());
        span.set_attribute(attr::URL_SCHEME, if req.tls { "https" } else { "http" });
        span.set_attribute(
            attr::NETWORK_PROTOCOL_VERSION,
            if head.minor_version == 0 {
                "1.0"
            } else {
                "1.1"
            },
        );
        span.set_attribute(attr::CLIENT_ADDRESS, ip.to_string());
        if let Some(host) = head.header("host") {
            span.set_attribute(
                attr::SERVER_ADDRESS,
                crate::app::strip_port(host).to_owned(),
            );
        }
        if let Some(ua) = head.header("user-agent") {
            span.set_attribute(attr::USER_AGENT_ORIGINAL, ua.to_owned());
        }
    }
    span
}

/// The word the status page shows for a health status.
fn health_word(s: HealthStatus) -> &'static str {
    match s {
        HealthStatus::Healthy => "HEALTHY",
        HealthStatus::Degraded => "DEGRADED",
        HealthStatus::Unhealthy => "UNHEALTHY",
    }
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
        // A failed source still gives unique ids within the process (the counter); only the
        // prefix, which tells processes apart, falls back to the pid.
        crate::random::hex(6).unwrap_or_else(|_| format!("{:012x}", std::process::id()))
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
