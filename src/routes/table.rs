//! The route templates: the only values the `route` label and the access log ever take, so
//! metrics stay bounded whatever paths clients send. Below the router and the app, which both
//! name them.

use crate::http::Method;

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
    "/security/audit",
    "/debug/vars",
    "/.well-known/*",
    "other",
];

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
