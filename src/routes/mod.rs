//! Routing: one linear pipeline (health, client address, IP lists, in-flight cap, Host, Origin,
//! preflight, OAuth discovery, address rate limit, authentication, identity rate limit) and one
//! visible `match` from (method, path) to a plain handler function. No middleware: every
//! cross-cutting step is a call in `pipeline`, in the order it runs.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use crate::app::{App, Caller};
use crate::http::{Method, Request, Response};
use crate::observe::trace::{Span, attr};
use crate::security::auth::Identity;
use crate::security::ratelimit::{Decision, Key};
use crate::tools::Access;

pub(crate) mod answers;
mod ops;
pub(crate) mod table;

pub use answers::{error_response, refusal};
pub use ops::status_json;
pub use table::{ROUTES, route_of};

use answers::{Served, finish, request_id};
use ops::{
    debug_vars, health_detail, live, method_not_allowed, metrics, page, ready, security_audit,
    security_metrics, status_stream,
};

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
        (Method::Get, "/security/audit") => match admin("/security/audit") {
            Err(resp) => resp,
            Ok(()) => security_audit(app, head.query.as_deref()),
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
    use crate::observe::metrics::AuthResult;
    use crate::security::audit::{AuditEvent, EventKind};
    use crate::security::auth::AuthError;
    let headers = req
        .head
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    let err = match app.tokens.current().authenticate(
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
    use crate::observe::metrics::RateScope;
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
    app.metrics
        .auth(crate::observe::metrics::AuthResult::Forbidden);
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
        crate::security::credential::www_authenticate_forbidden(
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
            crate::observe::trace::extract(Some(tp.as_bytes()), state.as_deref().map(str::as_bytes))
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
