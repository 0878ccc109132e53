//! The Prometheus exporter: counters, gauges and histograms on atomics, rendered by hand in the
//! text exposition format 0.0.4.
//!
//! Recording is lock-free and allocation-free. Every label value the request path can produce
//! comes from a bounded set fixed in [`Metrics::new`]: HTTP methods, the server's routes, a table
//! of status codes, the tool names, and the [`Transport`], [`AuthResult`] and [`RateScope`]
//! enums. Each combination owns a preallocated atomic, so a record call is a lookup and a relaxed
//! `fetch_add`. A value outside its set collapses into a bucket of its own (`other` for methods,
//! routes and tools; `1xx`…`5xx` for unlisted status codes, so `status=~"5.."` still selects
//! every server error), and the series count stays bounded whatever clients send.
//!
//! Only [`Metrics::set_health`] and rendering take a lock (health checks are few, named at run
//! time, and set off the request path).
//!
//! `http_server_requests_total` and `http_server_request_duration_seconds` are written sparsely
//! (a label combination appears once it has been seen) because their cross product is large and
//! mostly empty; every other family is written densely, zeros included.
//!
//! `health_check_status` is 1 for healthy, 0.5 for degraded and 0 for unhealthy.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::observe::health::HealthStatus;
use crate::observe::trace::ExporterStats;

mod exposition;
mod histogram;
pub mod process;

use exposition::{Kind, Value, header, sample};
use histogram::{
    BYTES_BUCKETS, HTTP_BUCKETS, Histogram, HistogramSnapshot, STREAM_BUCKETS, TOOL_BUCKETS,
};
pub use process::ProcessStats;

/// The streaming transports, each a `transport` label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// MCP Streamable HTTP answered as an SSE stream.
    Sse,
    /// The standalone MCP GET SSE stream for server-initiated messages.
    McpSse,
    /// The seed's legacy `POST /sse` API.
    LegacySse,
    /// The seed's NDJSON API (`POST /mcp` with `{tool,input}`).
    Ndjson,
}

/// The outcome of authenticating one request: the `result` label of `auth_attempts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthResult {
    /// A valid token allowed to do what it asked.
    Success,
    /// A token was presented and is not valid.
    Failure,
    /// No credentials were presented.
    Missing,
    /// A valid token whose role does not allow the request.
    Forbidden,
}

/// What a rate limit was keyed on: the `scope` label of `rate_limit_hits_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// The per-token bucket.
    Token,
    /// The per-client-IP bucket.
    Ip,
}

/// A health check's state, exported as `health_check_status` 1 / 0.5 / 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    /// Working: 1.
    Healthy,
    /// Working with reduced capacity or margin: 0.5.
    Degraded,
    /// Not working: 0.
    Unhealthy,
}

/// All metrics of the server. `Send + Sync`; share it as `Arc<Metrics>`.
pub struct Metrics {
    /// Known routes; slot `routes.len()` is `other`.
    routes: Box<[&'static str]>,
    /// Known tools; slot `tools.len()` is `other`.
    tools: Box<[&'static str]>,
    /// `http_server_requests_total`, indexed by [`Metrics::request_slot`].
    requests: Box<[AtomicU64]>,
    /// `http_server_request_duration_seconds`, indexed by `method * route_slots + route`.
    request_durations: Box<[Histogram]>,
    /// `http_server_response_body_bytes`, by route (streams counted when they end).
    response_sizes: Box<[Histogram]>,
    /// `http_server_active_requests`.
    active_requests: AtomicI64,
    /// `http_server_connections_active`.
    connections_active: AtomicI64,
    /// `tls_handshake_failures_total`.
    tls_handshake_failures: AtomicU64,
    /// `config_reloads_total`, by [`Reloaded`] × (ok, error).
    reloads: [AtomicU64; 4],
    /// `tool_executions_total`, indexed by `tool * 2 + (0 ok | 1 error)`.
    tool_runs: Box<[AtomicU64]>,
    /// `mcp_requests_total`, by method × transport × outcome.
    mcp_requests: Box<[AtomicU64]>,
    /// `mcp_request_duration_seconds`, by method.
    mcp_durations: Box<[Histogram]>,
    /// `streaming_duration_seconds`, by transport: how long streams stayed open.
    stream_lifetimes: Box<[Histogram]>,
    /// `streaming_first_event_seconds`, by transport: time from opening to the first event.
    stream_first_event: Box<[Histogram]>,
    /// `tool_errors_total`, by the code's index in `tools::ERROR_CODES` (the last: any other).
    tool_error_codes: Box<[AtomicU64]>,
    /// `tool_execution_duration_seconds`, one per tool slot.
    tool_durations: Box<[Histogram]>,
    /// `tool_active_executions`, one per tool slot.
    tool_active: Box<[AtomicI64]>,
    /// `streaming_active_connections`, by [`Transport`] index.
    streams_open: [AtomicI64; TRANSPORTS.len()],
    /// `streaming_messages_total`, by [`Transport`] index.
    stream_messages: [AtomicU64; TRANSPORTS.len()],
    /// `streaming_bytes_transferred_total`, by [`Transport`] index.
    stream_bytes: [AtomicU64; TRANSPORTS.len()],
    /// `auth_attempts_total`, by [`AuthResult`] index.
    auth: [AtomicU64; AUTH_RESULTS.len()],
    /// `rate_limit_hits_total`, by [`RateScope`] index.
    rate_limited: [AtomicU64; RATE_SCOPES.len()],
    /// `health_check_status`: at most [`MAX_HEALTH_CHECKS`] names, then `other`.
    health: Mutex<BTreeMap<String, HealthLevel>>,
    /// `trace_spans_dropped_total`.
    spans_dropped: AtomicU64,
    /// `trace_export_failures_total`.
    export_failures: AtomicU64,
    /// The trace exporter's own counters, once attached; added to the two above.
    tracer: OnceLock<Arc<ExporterStats>>,
}

/// Totals for a status page, read from the live counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// Requests finished.
    pub requests_total: u64,
    /// Requests finished with a 4xx status.
    pub client_errors_total: u64,
    /// Requests finished with a 5xx status.
    pub server_errors_total: u64,
    /// Requests in flight.
    pub active_requests: i64,
    /// Open streams by transport, in [`Transport::ALL`] order.
    pub open_streams: Vec<(Transport, i64)>,
    /// Tool executions running now.
    pub tool_active: i64,
    /// Tool executions finished.
    pub tool_executions_total: u64,
    /// Tool executions that failed.
    pub tool_errors_total: u64,
    /// Median request latency in seconds, estimated from the histogram; `None` before any.
    pub latency_p50_seconds: Option<f64>,
    /// 90th percentile request latency in seconds, estimated from the histogram.
    pub latency_p90_seconds: Option<f64>,
    /// 99th percentile request latency in seconds, estimated from the histogram.
    pub latency_p99_seconds: Option<f64>,
}

impl From<HealthStatus> for HealthLevel {
    fn from(s: HealthStatus) -> Self {
        match s {
            HealthStatus::Healthy => HealthLevel::Healthy,
            HealthStatus::Degraded => HealthLevel::Degraded,
            HealthStatus::Unhealthy => HealthLevel::Unhealthy,
        }
    }
}

impl Transport {
    /// Every transport, in label order.
    pub const ALL: [Transport; 4] = TRANSPORTS;

    /// The `transport` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::McpSse => "mcp_sse",
            Transport::LegacySse => "legacy_sse",
            Transport::Ndjson => "ndjson",
        }
    }
}

impl AuthResult {
    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Success => "success",
            AuthResult::Failure => "failure",
            AuthResult::Missing => "missing",
            AuthResult::Forbidden => "forbidden",
        }
    }
}

impl RateScope {
    /// The `scope` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RateScope::Token => "token",
            RateScope::Ip => "ip",
        }
    }
}

impl HealthLevel {
    /// The exported value: 1 healthy, 0.5 degraded, 0 unhealthy.
    pub fn value(self) -> f64 {
        match self {
            HealthLevel::Healthy => 1.0,
            HealthLevel::Degraded => 0.5,
            HealthLevel::Unhealthy => 0.0,
        }
    }
}

/// How a tool call ended, with its error code when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolOutcome<'a> {
    /// It succeeded.
    Ok,
    /// The caller's mistake (`tools::Fault::Client`): a bad argument, a missing change, a lock.
    ClientError(&'a str),
    /// The server failed (`tools::Fault::Server`): only these spend the error budget.
    ServerError(&'a str),
}

/// MCP request methods with a label of their own; any other is `other` (bounded labels).
pub const MCP_METHODS: [&str; 14] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "other",
];

/// The transport an MCP request arrived on: the `transport` label of `mcp_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcTransport {
    /// `POST /mcp`.
    StreamableHttp = 0,
    /// `POST /messages` of a legacy `/sse` session.
    LegacySse = 1,
}

const RPC_TRANSPORTS: [&str; 2] = ["streamable_http", "legacy_sse"];

/// How an MCP request ended: the `outcome` label of `mcp_requests_total` (a JSON-RPC error is the
/// caller's fault unless it is an internal error; a `tools/call` takes its tool's outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcOutcome {
    /// Answered with a result.
    Ok = 0,
    /// The caller's mistake (unknown method, bad params, refused).
    ClientError = 1,
    /// The server failed.
    ServerError = 2,
}

const RPC_OUTCOMES: [&str; 3] = ["ok", "client_error", "server_error"];

/// The `status` label values of `tool_executions_total`, in slot order.
const TOOL_STATUSES: [&str; 3] = ["ok", "client_error", "server_error"];

/// What a reload was of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The certificate and key.
    Tls = 0,
    /// `AUTH_TOKENS_FILE`.
    Tokens = 1,
}

impl Metrics {
    /// All series for these tools and routes, zeroed. Names outside the lists are counted under
    /// `other`; a duplicate name is harmless (the first slot wins).
    pub fn new(tool_names: &[&'static str], routes: &[&'static str]) -> Metrics {
        let route_slots = routes.len() + 1;
        let tool_slots = tool_names.len() + 1;
        Metrics {
            routes: routes.into(),
            tools: tool_names.into(),
            requests: atomics(METHODS.len() * route_slots * STATUS_SLOTS),
            response_sizes: (0..route_slots)
                .map(|_| Histogram::new(BYTES_BUCKETS))
                .collect(),
            request_durations: (0..METHODS.len() * route_slots)
                .map(|_| Histogram::new(HTTP_BUCKETS))
                .collect(),
            active_requests: AtomicI64::new(0),
            connections_active: AtomicI64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            reloads: Default::default(),
            tool_runs: atomics(tool_slots * 3),
            tool_error_codes: atomics(crate::tools::ERROR_CODES.len() + 1),
            mcp_requests: atomics(MCP_METHODS.len() * RPC_TRANSPORTS.len() * RPC_OUTCOMES.len()),
            mcp_durations: MCP_METHODS
                .iter()
                .map(|_| Histogram::new(HTTP_BUCKETS))
                .collect(),
            stream_lifetimes: TRANSPORTS
                .iter()
                .map(|_| Histogram::new(STREAM_BUCKETS))
                .collect(),
            stream_first_event: TRANSPORTS
                .iter()
                .map(|_| Histogram::new(HTTP_BUCKETS))
                .collect(),
            tool_durations: (0..tool_slots)
                .map(|_| Histogram::new(TOOL_BUCKETS))
                .collect(),
            tool_active: (0..tool_slots).map(|_| AtomicI64::new(0)).collect(),
            streams_open: Default::default(),
            stream_messages: Default::default(),
            stream_bytes: Default::default(),
            auth: Default::default(),
            rate_limited: Default::default(),
            health: Mutex::new(BTreeMap::new()),
            spans_dropped: AtomicU64::new(0),
            export_failures: AtomicU64::new(0),
            tracer: OnceLock::new(),
        }
    }

    /// Reads the trace exporter's counters at render time (spans exported and dropped, failed
    /// exports, breaker state). Only the first call counts.
    pub fn attach_tracer(&self, stats: Arc<ExporterStats>) {
        let _ = self.tracer.set(stats);
    }

    /// A request's head was read: `http_server_active_requests += 1`.
    pub fn request_started(&self) {
        self.active_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A response body of `bytes` went out on `route` (a stream's when it ended).
    pub fn response_sent(&self, route: &'static str, bytes: usize) {
        self.response_sizes[self.route_slot(route)]
            .observe_units(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// A request was answered: the active gauge drops, its counter and latency are recorded.
    /// For a streamed response, call this when the head is sent so stream lifetimes stay out of
    /// the latency SLO.
    pub fn request_finished(
        &self,
        method: &str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.active_requests.fetch_sub(1, Ordering::Relaxed);
        let method = method_slot(method);
        let route = self.route_slot(route);
        self.requests[self.request_slot(method, route, status_slot(status))]
            .fetch_add(1, Ordering::Relaxed);
        self.request_durations[method * self.route_slots() + route].observe(elapsed);
    }

    /// A tool call began: its `tool_active_executions` rises.
    pub fn tool_started(&self, tool: &str) {
        self.tool_active[self.tool_slot(tool)].fetch_add(1, Ordering::Relaxed);
    }

    /// A tool call ended: the active gauge drops, the outcome and duration are recorded.
    pub fn tool_finished(&self, tool: &str, outcome: ToolOutcome<'_>, elapsed: Duration) {
        let slot = self.tool_slot(tool);
        self.tool_active[slot].fetch_sub(1, Ordering::Relaxed);
        let (status, code) = match outcome {
            ToolOutcome::Ok => (0, None),
            ToolOutcome::ClientError(c) => (1, Some(c)),
            ToolOutcome::ServerError(c) => (2, Some(c)),
        };
        self.tool_runs[slot * 3 + status].fetch_add(1, Ordering::Relaxed);
        if let Some(code) = code {
            let codes = crate::tools::ERROR_CODES;
            let i = codes
                .iter()
                .position(|(c, _)| *c == code)
                .unwrap_or(codes.len());
            self.tool_error_codes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.tool_durations[slot].observe(elapsed);
    }

    /// One MCP request answered (for `tools/call`: when its tool finished).
    pub fn mcp_request(
        &self,
        method: &str,
        transport: RpcTransport,
        outcome: RpcOutcome,
        elapsed: Duration,
    ) {
        let m = MCP_METHODS
            .iter()
            .position(|k| *k == method)
            .unwrap_or(MCP_METHODS.len() - 1);
        let i =
            (m * RPC_TRANSPORTS.len() + transport as usize) * RPC_OUTCOMES.len() + outcome as usize;
        self.mcp_requests[i].fetch_add(1, Ordering::Relaxed);
        self.mcp_durations[m].observe(elapsed);
    }

    /// A stream's first event went out `after` its opening.
    pub fn stream_first_event(&self, t: Transport, after: Duration) {
        self.stream_first_event[t as usize].observe(after);
    }

    /// A stream of transport `t` opened.
    pub fn stream_opened(&self, t: Transport) {
        self.streams_open[t as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A stream of transport `t` closed.
    pub fn stream_closed(&self, t: Transport, lifetime: Duration) {
        self.stream_lifetimes[t as usize].observe(lifetime);
        self.streams_open[t as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// One message of `bytes` bytes (framing included) was written on a stream of transport `t`.
    pub fn stream_sent(&self, t: Transport, bytes: usize) {
        self.stream_messages[t as usize].fetch_add(1, Ordering::Relaxed);
        self.stream_bytes[t as usize].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A client connection was accepted (TLS handshake included in its life).
    pub fn connection_opened(&self) {
        self.connections_active.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection was closed.
    pub fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Ordering::Relaxed);
    }

    /// A TLS handshake failed (bad client hello, timeout, plaintext on the TLS port...).
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A reload of the certificate or the tokens file: `ok` false when the new one was refused
    /// (the old one stays in use).
    pub fn reloaded(&self, what: Reloaded, ok: bool) {
        self.reloads[what as usize * 2 + usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// One authentication decision.
    pub fn auth(&self, r: AuthResult) {
        self.auth[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One request refused by the rate limiter keyed on `scope`.
    pub fn rate_limited(&self, scope: RateScope) {
        self.rate_limited[scope as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a health check's state. Takes a lock: call it from the health checker, not from the
    /// request path. Past [`MAX_HEALTH_CHECKS`] distinct names, new names share the `other` series.
    pub fn set_health(&self, check: &str, status: HealthLevel) {
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(level) = health.get_mut(check) {
            *level = status;
        } else if health.len() < MAX_HEALTH_CHECKS {
            health.insert(check.to_owned(), status);
        } else {
            health.insert(OTHER.to_owned(), status);
        }
    }

    /// The trace exporter dropped a span (queue full or breaker open).
    pub fn span_dropped(&self) {
        self.spans_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An OTLP export attempt failed.
    pub fn export_failed(&self) {
        self.export_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the whole exposition, process metrics from `/proc` included, to `out`.
    pub fn render(&self, out: &mut String) {
        let process = ProcessStats::read();
        // A `String` sink cannot fail, so neither can encoding into one.
        let _ = self.encode(out, process.as_ref());
    }

    /// Writes the whole exposition with the given process reading (`None` leaves the process
    /// families out): the I/O-free core of [`Metrics::render`].
    pub fn encode(&self, out: &mut dyn Write, process: Option<&ProcessStats>) -> fmt::Result {
        header(
            out,
            "build_info",
            Kind::Gauge,
            "Build of the running server; always 1.",
        )?;
        sample(
            out,
            "build_info",
            &[("version", VERSION)],
            Value::Unsigned(1),
        )?;
        self.encode_http(out)?;
        self.encode_tools(out)?;
        self.encode_streaming(out)?;
        self.encode_security(out)?;
        self.encode_health_and_tracing(out)?;
        match process {
            Some(process) => process.render(out),
            None => Ok(()),
        }
    }

    /// Totals for a status page.
    pub fn snapshot(&self) -> Snapshot {
        let mut requests_total = 0;
        let mut client_errors_total = 0;
        let mut server_errors_total = 0;
        for (slot, counter) in self.requests.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            requests_total += n;
            match STATUS_LABELS[slot % STATUS_SLOTS].as_bytes().first() {
                Some(b'4') => client_errors_total += n,
                Some(b'5') => server_errors_total += n,
                _ => {}
            }
        }
        let mut latency = HistogramSnapshot::empty(HTTP_BUCKETS);
        for h in self.request_durations.iter() {
            latency.merge(&h.snapshot());
        }
        let tool_runs = |outcome: usize| -> u64 {
            self.tool_runs
                .iter()
                .skip(outcome)
                .step_by(3)
                .map(|c| c.load(Ordering::Relaxed))
                .sum()
        };
        let tool_errors_total = tool_runs(1) + tool_runs(2);
        Snapshot {
            requests_total,
            client_errors_total,
            server_errors_total,
            active_requests: self.active_requests.load(Ordering::Relaxed),
            open_streams: TRANSPORTS
                .iter()
                .map(|&t| (t, self.streams_open[t as usize].load(Ordering::Relaxed)))
                .collect(),
            tool_active: self
                .tool_active
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .sum(),
            tool_executions_total: tool_runs(0) + tool_errors_total,
            tool_errors_total,
            latency_p50_seconds: latency.quantile(HTTP_BUCKETS, 0.5),
            latency_p90_seconds: latency.quantile(HTTP_BUCKETS, 0.9),
            latency_p99_seconds: latency.quantile(HTTP_BUCKETS, 0.99),
        }
    }

    /// The HTTP families.
    fn encode_http(&self, out: &mut dyn Write) -> fmt::Result {
        let name = "http_server_requests_total";
        header(
            out,
            name,
            Kind::Counter,
            "HTTP requests answered, by method, route and status.",
        )?;
        for (method, method_label) in METHODS.iter().enumerate() {
            for route in 0..self.route_slots() {
                for (status, status_label) in STATUS_LABELS.iter().enumerate() {
                    let n = self.requests[self.request_slot(method, route, status)]
                        .load(Ordering::Relaxed);
                    if n > 0 {
                        let labels = [
                            ("method", *method_label),
                            ("route", self.route_label(route)),
                            ("status", *status_label),
                        ];
                        sample(out, name, &labels, Value::Unsigned(n))?;
                    }
                }
            }
        }
        let name = "http_server_request_duration_seconds";
        header(
            out,
            name,
            Kind::Histogram,
            "HTTP request latency from head read to response head sent, in seconds.",
        )?;
        for (method, method_label) in METHODS.iter().enumerate() {
            for route in 0..self.route_slots() {
                let h = &self.request_durations[method * self.route_slots() + route];
                if h.count() > 0 {
                    let labels = [
                        ("method", *method_label),
                        ("route", self.route_label(route)),
                    ];
                    exposition::histogram(out, name, &labels, h.bounds(), &h.snapshot())?;
                }
            }
        }
        let name = "http_server_response_body_bytes";
        header(
            out,
            name,
            Kind::Histogram,
            "Response body sizes by route, in bytes (a stream counted when it ends).",
        )?;
        for route in 0..self.route_slots() {
            let h = &self.response_sizes[route];
            if h.count() > 0 {
                let labels = [("route", self.route_label(route))];
                exposition::histogram_units(out, name, &labels, h.bounds(), &h.snapshot())?;
            }
        }
        gauge(
            out,
            "http_server_active_requests",
            "HTTP requests being handled.",
            &self.active_requests,
        )?;
        gauge(
            out,
            "http_server_connections_active",
            "Client connections open.",
            &self.connections_active,
        )?;
        let name = "tls_handshake_failures_total";
        header(out, name, Kind::Counter, "TLS handshakes that failed.")?;
        sample(
            out,
            name,
            &[],
            Value::Unsigned(self.tls_handshake_failures.load(Ordering::Relaxed)),
        )?;
        let name = "config_reloads_total";
        header(
            out,
            name,
            Kind::Counter,
            "Reloads of the certificate and the tokens file (SIGHUP or a change on disk), by outcome; on error the old one stays in use.",
        )?;
        for (i, what) in ["tls", "tokens"].into_iter().enumerate() {
            for (j, outcome) in ["ok", "error"].into_iter().enumerate() {
                sample(
                    out,
                    name,
                    &[("what", what), ("outcome", outcome)],
                    Value::Unsigned(self.reloads[i * 2 + j].load(Ordering::Relaxed)),
                )?;
            }
        }
        Ok(())
    }

    /// The tool families.
    fn encode_tools(&self, out: &mut dyn Write) -> fmt::Result {
        let name = "tool_executions_total";
        header(
            out,
            name,
            Kind::Counter,
            "Tool executions finished, by tool and status (ok, client_error: the caller's mistake, server_error: the server failed).",
        )?;
        for slot in 0..self.tool_slots() {
            for (outcome, status) in TOOL_STATUSES.into_iter().enumerate() {
                let n = self.tool_runs[slot * 3 + outcome].load(Ordering::Relaxed);
                sample(
                    out,
                    name,
                    &[("tool", self.tool_label(slot)), ("status", status)],
                    Value::Unsigned(n),
                )?;
            }
        }
        let name = "tool_errors_total";
        header(
            out,
            name,
            Kind::Counter,
            "Failed tool executions, by error code and fault (client or server); codes outside the known list are `other`.",
        )?;
        let codes = crate::tools::ERROR_CODES;
        for (i, n) in self.tool_error_codes.iter().enumerate() {
            let (code, fault) = codes.get(i).map_or(("other", "server"), |(c, f)| {
                (
                    *c,
                    if *f == crate::tools::Fault::Client {
                        "client"
                    } else {
                        "server"
                    },
                )
            });
            sample(
                out,
                name,
                &[("code", code), ("fault", fault)],
                Value::Unsigned(n.load(Ordering::Relaxed)),
            )?;
        }
        let name = "tool_execution_duration_seconds";
        header(
            out,
            name,
            Kind::Histogram,
            "Tool execution time, in seconds.",
        )?;
        for (slot, h) in self.tool_durations.iter().enumerate() {
            exposition::histogram(
                out,
                name,
                &[("tool", self.tool_label(slot))],
                h.bounds(),
                &h.snapshot(),
            )?;
        }
        let name = "tool_active_executions";
        header(
            out,
            name,
            Kind::Gauge,
            "Tool executions in progress, by tool.",
        )?;
        for (slot, active) in self.tool_active.iter().enumerate() {
            sample(
                out,
                name,
                &[("tool", self.tool_label(slot))],
                Value::Signed(active.load(Ordering::Relaxed)),
            )?;
        }
        Ok(())
    }

    /// The streaming families.
    fn encode_streaming(&self, out: &mut dyn Write) -> fmt::Result {
        for (name, help, hists) in [
            (
                "streaming_duration_seconds",
                "How long streams stayed open, by transport, in seconds.",
                &self.stream_lifetimes,
            ),
            (
                "streaming_first_event_seconds",
                "Time from a stream's opening to its first event, by transport, in seconds.",
                &self.stream_first_event,
            ),
        ] {
            header(out, name, Kind::Histogram, help)?;
            for (t, h) in TRANSPORTS.iter().zip(hists.iter()) {
                exposition::histogram(
                    out,
                    name,
                    &[("transport", t.as_str())],
                    h.bounds(),
                    &h.snapshot(),
                )?;
            }
        }
        let name = "mcp_requests_total";
        header(
            out,
            name,
            Kind::Counter,
            "MCP requests answered, by method (unknown ones `other`), transport and outcome (ok, client_error, server_error).",
        )?;
        for (m, method) in MCP_METHODS.iter().enumerate() {
            for (t, transport) in RPC_TRANSPORTS.iter().enumerate() {
                for (o, outcome) in RPC_OUTCOMES.iter().enumerate() {
                    let i = (m * RPC_TRANSPORTS.len() + t) * RPC_OUTCOMES.len() + o;
                    sample(
                        out,
                        name,
                        &[
                            ("method", method),
                            ("transport", transport),
                            ("outcome", outcome),
                        ],
                        Value::Unsigned(self.mcp_requests[i].load(Ordering::Relaxed)),
                    )?;
                }
            }
        }
        let name = "mcp_request_duration_seconds";
        header(
            out,
            name,
            Kind::Histogram,
            "MCP request time by method, in seconds (tools/call: until its tool finished).",
        )?;
        for (method, h) in MCP_METHODS.iter().zip(self.mcp_durations.iter()) {
            exposition::histogram(out, name, &[("method", method)], h.bounds(), &h.snapshot())?;
        }
        let name = "streaming_active_connections";
        header(out, name, Kind::Gauge, "Streams open, by transport.")?;
        for t in TRANSPORTS {
            let v = self.streams_open[t as usize].load(Ordering::Relaxed);
            sample(out, name, &[("transport", t.as_str())], Value::Signed(v))?;
        }
        for (name, help, counters) in [
            (
                "streaming_messages_total",
                "Messages written on streams, by transport.",
                &self.stream_messages,
            ),
            (
                "streaming_bytes_transferred_total",
                "Bytes written on streams, framing included, by transport.",
                &self.stream_bytes,
            ),
        ] {
            header(out, name, Kind::Counter, help)?;
            for t in TRANSPORTS {
                let v = counters[t as usize].load(Ordering::Relaxed);
                sample(out, name, &[("transport", t.as_str())], Value::Unsigned(v))?;
            }
        }
        Ok(())
    }

    /// The authentication and rate-limit families.
    fn encode_security(&self, out: &mut dyn Write) -> fmt::Result {
        let name = "auth_attempts_total";
        header(
            out,
            name,
            Kind::Counter,
            "Authentication decisions, by result (success, failure, missing, forbidden).",
        )?;
        for r in AUTH_RESULTS {
            let v = self.auth[r as usize].load(Ordering::Relaxed);
            sample(out, name, &[("result", r.as_str())], Value::Unsigned(v))?;
        }
        let name = "rate_limit_hits_total";
        header(
            out,
            name,
            Kind::Counter,
            "Requests refused by the rate limiter, by scope (token or ip).",
        )?;
        for s in RATE_SCOPES {
            let v = self.rate_limited[s as usize].load(Ordering::Relaxed);
            sample(out, name, &[("scope", s.as_str())], Value::Unsigned(v))?;
        }
        Ok(())
    }

    /// Health checks and the trace exporter's losses.
    fn encode_health_and_tracing(&self, out: &mut dyn Write) -> fmt::Result {
        let name = "health_check_status";
        header(
            out,
            name,
            Kind::Gauge,
            "Health check state: 1 healthy, 0.5 degraded, 0 unhealthy.",
        )?;
        {
            let health = self
                .health
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (check, level) in health.iter() {
                sample(out, name, &[("check", check)], Value::Float(level.value()))?;
            }
        }
        let exporter = self.tracer.get().map(|t| t.snapshot());
        for (name, help, counter, from_exporter) in [
            (
                "trace_spans_dropped_total",
                "Spans dropped before export (queue full or exporter breaker open).",
                &self.spans_dropped,
                exporter.map_or(0, |s| s.dropped_total()),
            ),
            (
                "trace_export_failures_total",
                "OTLP trace export attempts that failed.",
                &self.export_failures,
                exporter.map_or(0, |s| s.failed_requests),
            ),
        ] {
            header(out, name, Kind::Counter, help)?;
            let n = counter.load(Ordering::Relaxed) + from_exporter;
            sample(out, name, &[], Value::Unsigned(n))?;
        }
        let Some(s) = exporter else {
            return Ok(());
        };
        let name = "trace_spans_exported_total";
        header(
            out,
            name,
            Kind::Counter,
            "Spans the OTLP collector accepted.",
        )?;
        sample(out, name, &[], Value::Unsigned(s.exported_spans))?;
        let name = "trace_exporter_breaker_state";
        header(
            out,
            name,
            Kind::Gauge,
            "OTLP exporter circuit breaker: 0 closed, 1 open, 2 half-open.",
        )?;
        sample(
            out,
            name,
            &[],
            Value::Unsigned(u64::from(s.breaker.as_u8())),
        )
    }

    fn route_slots(&self) -> usize {
        self.routes.len() + 1
    }

    fn tool_slots(&self) -> usize {
        self.tools.len() + 1
    }

    /// The route's slot; `other` (the last) for an unlisted route. Routes are `&'static str`
    /// from the router's table, so pointer equality settles most lookups before comparing text.
    fn route_slot(&self, route: &'static str) -> usize {
        self.routes
            .iter()
            .position(|r| std::ptr::eq(*r, route))
            .or_else(|| self.routes.iter().position(|r| *r == route))
            .unwrap_or(self.routes.len())
    }

    fn tool_slot(&self, tool: &str) -> usize {
        self.tools
            .iter()
            .position(|t| *t == tool)
            .unwrap_or(self.tools.len())
    }

    fn route_label(&self, slot: usize) -> &'static str {
        self.routes.get(slot).copied().unwrap_or(OTHER)
    }

    fn tool_label(&self, slot: usize) -> &'static str {
        self.tools.get(slot).copied().unwrap_or(OTHER)
    }

    fn request_slot(&self, method: usize, route: usize, status: usize) -> usize {
        (method * self.route_slots() + route) * STATUS_SLOTS + status
    }
}

/// The method's slot in [`METHODS`]; `other` for anything else (methods are case-sensitive).
fn method_slot(method: &str) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The status's slot in [`STATUS_LABELS`]: its own for a listed code, its class for another code
/// in 100..=599, `other` beyond.
fn status_slot(status: u16) -> usize {
    if let Ok(i) = KNOWN_STATUSES.binary_search(&status) {
        return i;
    }
    match status {
        100..=599 => KNOWN_STATUSES.len() + usize::from(status / 100 - 1),
        _ => STATUS_SLOTS - 1,
    }
}

fn atomics(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn gauge(out: &mut dyn Write, name: &str, help: &str, value: &AtomicI64) -> fmt::Result {
    header(out, name, Kind::Gauge, help)?;
    sample(out, name, &[], Value::Signed(value.load(Ordering::Relaxed)))
}

/// Distinct health check names kept before new ones share the `other` series.
pub const MAX_HEALTH_CHECKS: usize = 32;

/// The label value for anything outside a bounded set.
const OTHER: &str = "other";

/// The `version` label of `build_info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

const TRANSPORTS: [Transport; 4] = [
    Transport::Sse,
    Transport::McpSse,
    Transport::LegacySse,
    Transport::Ndjson,
];

const AUTH_RESULTS: [AuthResult; 4] = [
    AuthResult::Success,
    AuthResult::Failure,
    AuthResult::Missing,
    AuthResult::Forbidden,
];

const RATE_SCOPES: [RateScope; 2] = [RateScope::Token, RateScope::Ip];

/// Method label values; the last is the catch-all.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", OTHER,
];

/// Status codes with a series of their own, sorted for binary search.
const KNOWN_STATUSES: [u16; 38] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410,
    411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505,
];

/// Known statuses, then the five classes, then `other`.
const STATUS_SLOTS: usize = KNOWN_STATUSES.len() + 5 + 1;

/// The `status` label of each slot; [`status_labels_match_their_codes`] checks the table.
const STATUS_LABELS: [&str; STATUS_SLOTS] = [
    "200", "201", "202", "204", "206", "301", "302", "304", "307", "308", "400", "401", "403",
    "404", "405", "406", "408", "409", "410", "411", "412", "413", "414", "415", "416", "417",
    "421", "422", "426", "428", "429", "431", "500", "501", "502", "503", "504", "505", "1xx",
    "2xx", "3xx", "4xx", "5xx", OTHER,
];

#[cfg(test)]
mod tests;
