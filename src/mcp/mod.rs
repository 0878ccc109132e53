//! The MCP protocol layer: the method table, Streamable HTTP (`/mcp`), legacy HTTP+SSE (`/sse`,
//! `/messages`) and the seed's `{tool, input}` APIs.
//!
//! The server's router calls the handler functions of [`http`], [`legacy`] and [`seed`] after it
//! has done the transport checks that come first (CORS preflight, Origin, Host, authentication,
//! body size). Every handler takes the shared [`McpEnv`], the parsed request head, the body and
//! the authenticated [`Caller`], and returns a [`crate::http::Response`]; a POST's streamed answer
//! carries a [`crate::net::stream::StreamFn`] that its worker runs, and a GET stream a
//! [`crate::net::hub::HeldStream`] that the hub holds without a thread.
//!
//! Metrics and audit records leave through [`McpHooks`], which the server implements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::Response;
use crate::rpc::{ErrorCode, ErrorObject, Id};
use crate::tools::Registry;

pub(crate) mod base64url;
pub(crate) mod client;
pub mod http;
pub mod legacy;
pub(crate) mod methods;
pub(crate) mod prompts;
pub(crate) mod run;
pub mod seed;
pub(crate) mod session;

pub use crate::access::Caller;

pub use crate::config::Sessions;

/// The MCP layer's settings. Every limit has its unit in its name; [`Settings::default`] holds
/// the safe defaults.
#[derive(Clone)]
pub struct Settings {
    /// Interval between keep-alive comments on SSE streams (`HEARTBEAT_MS`).
    pub heartbeat: Duration,
    /// The largest tool result (compact JSON bytes of its structured content) sent back; larger
    /// results become a tool error with a hint (`MAX_RESPONSE_SIZE_KB`).
    pub max_response_bytes: usize,
    /// Long-lived streams (legacy `/sse`, stateful `GET /mcp`, the seed streams) open at once;
    /// beyond it new ones get 503 (`MAX_STREAMS`).
    pub max_streams: usize,
    /// Streamable HTTP session mode (`MCP_SESSIONS`).
    pub sessions: Sessions,
    /// The persistent key stateful session ids are signed with (HMAC-SHA256), so ids minted
    /// before a restart stay valid; unused when stateless.
    pub session_key: [u8; 32],
    /// How long a stateful session id stays valid after it was issued.
    pub session_max_age: Duration,
    /// Messages queued for one stream before progress is dropped (final answers wait).
    pub mailbox_capacity: usize,
    /// A legacy stream older than this is closed; the client reconnects (`MAX_STREAM_AGE_MS`).
    pub max_stream_age: Duration,
    /// Recent events kept per legacy stream for `Last-Event-ID` replay.
    pub replay_events: usize,
    /// How long a closed legacy stream's events stay available for replay.
    pub replay_retention: Duration,
    /// How long a tool waits for the client's answer to a request it sent (sampling,
    /// elicitation) before it fails (`CLIENT_REQUEST_TIMEOUT_MS`).
    pub client_request_timeout: Duration,
    /// Resource subscriptions one session may hold (`MAX_SUBSCRIPTIONS`).
    pub max_subscriptions: usize,
    /// The workspace whose `openspec/` tree is watched for subscribers, from the first
    /// subscription on; `None` watches nothing (subscribers then hear of nothing).
    pub watch_root: Option<std::path::PathBuf>,
}

impl Default for Settings {
    /// The settings table's defaults (`config::SETTINGS`), plus the fixed values below.
    fn default() -> Self {
        let config = crate::config::Config::defaults();
        Self {
            heartbeat: config.heartbeat,
            max_response_bytes: config.max_response_bytes,
            max_streams: config.max_streams,
            sessions: Sessions::Stateless,
            session_key: [0; 32],
            session_max_age: Duration::from_secs(24 * 60 * 60),
            mailbox_capacity: 64,
            max_stream_age: config.max_stream_age,
            replay_events: 64,
            replay_retention: Duration::from_secs(5 * 60),
            client_request_timeout: config.client_request_timeout,
            max_subscriptions: config.max_subscriptions,
            watch_root: None,
        }
    }
}

/// The transport an MCP request came by (a bounded label set for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `POST /mcp`.
    StreamableHttp,
    /// `POST /messages` of a legacy session.
    LegacySse,
}

/// Which kind of stream a hook call is about (a bounded label set for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The SSE answer to one `POST /mcp` request.
    McpResponse,
    /// The stateful standalone `GET /mcp` stream.
    McpGet,
    /// A legacy `GET /sse` stream.
    Legacy,
    /// The seed's `POST /sse {tool,input}` stream.
    SeedSse,
    /// The seed's `POST /mcp {tool,input}` NDJSON stream.
    SeedNdjson,
}

impl StreamKind {
    /// A metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::McpResponse => "mcp_response",
            StreamKind::McpGet => "mcp_get",
            StreamKind::Legacy => "legacy_sse",
            StreamKind::SeedSse => "seed_sse",
            StreamKind::SeedNdjson => "seed_ndjson",
        }
    }
}

pub use crate::security::events::{AuditEvent, RequestScope, request_scope, with_request_scope};

/// What the MCP layer reports to the server (metrics, audit). Every method has an empty default.
pub trait McpHooks: Send + Sync {
    /// A tool call began.
    fn tool_started(&self, _name: &str) {}
    /// A tool call ended, with its error when it failed.
    fn tool_finished(
        &self,
        _name: &str,
        _outcome: Result<(), &crate::tools::ToolError>,
        _elapsed: Duration,
    ) {
    }
    /// A stream opened.
    fn stream_opened(&self, _kind: StreamKind) {}
    /// A stream closed after `lifetime`.
    fn stream_closed(&self, _kind: StreamKind, _lifetime: Duration) {}
    /// A stream's first event went out `after` it opened.
    fn stream_first_event(&self, _kind: StreamKind, _after: Duration) {}
    /// An MCP request was answered (a `tools/call` when its tool finished): its method, the
    /// transport, `Err(fault)` for an error answer, and how long it took.
    fn rpc_finished(
        &self,
        _method: &str,
        _via: Via,
        _outcome: Result<(), crate::tools::Fault>,
        _elapsed: Duration,
    ) {
    }
    /// A stream sent one event or line of `bytes` payload bytes.
    fn stream_sent(&self, _kind: StreamKind, _bytes: usize) {}
    /// An audit record.
    fn audit(&self, _event: &AuditEvent<'_>) {}
}

/// Hooks that do nothing (tests, tools).
pub struct NoHooks;

impl McpHooks for NoHooks {}

/// Everything the MCP handlers share: the registry, the settings, the hooks and the in-memory
/// state (in-flight calls for cancellation, legacy sessions, stateful-session bookkeeping).
pub struct McpEnv {
    /// The tools and resources.
    pub registry: Registry,
    /// The settings.
    pub settings: Settings,
    /// Metrics and audit sink.
    pub hooks: Arc<dyn McpHooks>,
    pub(crate) inflight: Mutex<Inflight>,
    pub(crate) legacy: Mutex<legacy::Sessions>,
    pub(crate) sessions: Mutex<session::State>,
    pub(crate) peers: Mutex<client::Peers>,
    pub(crate) pending: Mutex<client::Pending>,
    /// The workspace watcher, started by the first subscription.
    pub(crate) watcher: Mutex<Option<crate::watch::Watcher>>,
    /// Threads that run streamed tool calls, kept between calls: a thread start per call was
    /// the largest cost of an SSE-answered call.
    pub(crate) tool_threads: crate::net::pool::Pool,
    pub(crate) open_streams: AtomicUsize,
}

impl McpEnv {
    /// The environment for a server.
    pub fn new(registry: Registry, settings: Settings, hooks: Arc<dyn McpHooks>) -> Self {
        Self {
            registry,
            settings,
            hooks,
            inflight: Mutex::new(Inflight::default()),
            legacy: Mutex::new(legacy::Sessions::default()),
            sessions: Mutex::new(session::State::default()),
            peers: Mutex::new(client::Peers::default()),
            pending: Mutex::new(client::Pending::default()),
            watcher: Mutex::new(None),
            tool_threads: crate::net::pool::Pool::new(
                "tool",
                0,
                TOOL_THREADS_KEPT,
                TOOL_THREAD_IDLE_RETIRE,
            ),
            open_streams: AtomicUsize::new(0),
        }
    }

    /// Long-lived streams open right now (legacy, `GET /mcp`, seed streams).
    pub fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Takes one stream slot, or `None` at [`Settings::max_streams`]. The slot is released when
    /// the guard drops, together with the `stream_closed` hook.
    pub(crate) fn claim_stream(self: &Arc<Self>, kind: StreamKind) -> Option<StreamSlot> {
        let prev = self.open_streams.fetch_add(1, Ordering::AcqRel);
        if prev >= self.settings.max_streams {
            self.open_streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.hooks.stream_opened(kind);
        Some(StreamSlot {
            env: Arc::clone(self),
            kind,
            counted: true,
            opened: std::time::Instant::now(),
            first_sent: AtomicBool::new(false),
        })
    }

    /// A slot for a short-lived response stream: reported to the hooks, not counted in the cap.
    pub(crate) fn uncounted_stream(self: &Arc<Self>, kind: StreamKind) -> StreamSlot {
        self.hooks.stream_opened(kind);
        StreamSlot {
            env: Arc::clone(self),
            kind,
            counted: false,
            opened: std::time::Instant::now(),
            first_sent: AtomicBool::new(false),
        }
    }
}

/// An open stream's place in the cap; dropping it closes the books on the stream.
pub(crate) struct StreamSlot {
    env: Arc<McpEnv>,
    kind: StreamKind,
    counted: bool,
    opened: std::time::Instant,
    first_sent: AtomicBool,
}

impl StreamSlot {
    /// Reports `bytes` sent on this stream.
    pub(crate) fn sent(&self, bytes: usize) {
        if !self.first_sent.swap(true, Ordering::Relaxed) {
            self.env
                .hooks
                .stream_first_event(self.kind, self.opened.elapsed());
        }
        self.env.hooks.stream_sent(self.kind, bytes);
    }

    /// Counts `buf` as sent on this stream (a held stream's event) and returns it.
    pub(crate) fn counted(&self, buf: Vec<u8>) -> Vec<u8> {
        self.sent(buf.len());
        buf
    }

    /// Sends `buf` on the stream and counts it; false when the client is gone.
    pub(crate) fn send(&self, ctx: &mut crate::net::stream::StreamCtx<'_>, buf: &[u8]) -> bool {
        match ctx.send(buf) {
            Ok(()) => {
                self.sent(buf.len());
                true
            }
            Err(_) => false,
        }
    }
}

/// Whether a message body may be read as JSON: its `Content-Type` is `application/json`, or
/// absent (tolerated: the body is tried as JSON). Every transport refuses the rest with 415.
pub(crate) fn json_content_type(head: &crate::http::Head) -> bool {
    head.header("content-type")
        .is_none_or(|ct| crate::http::media_essence(ct) == "application/json")
}

/// The JSON-RPC 415 of the MCP transports.
pub(crate) fn unsupported_media_type() -> crate::http::Response {
    rpc_error_response(
        415,
        None,
        ErrorCode::TRANSPORT,
        "Unsupported Media Type: Content-Type must be application/json",
    )
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.counted {
            self.env.open_streams.fetch_sub(1, Ordering::AcqRel);
        }
        self.env
            .hooks
            .stream_closed(self.kind, self.opened.elapsed());
    }
}

/// The protocol versions we speak, newest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version answered when a client asks for one we do not speak.
pub const LATEST_VERSION: &str = "2025-11-25";

/// The version assumed when a request carries no `MCP-Protocol-Version` (spec 2025-06-18).
pub const DEFAULT_NEGOTIATED_VERSION: &str = "2025-03-26";

/// Requests in flight, by (caller identity, scope, request id), so `notifications/cancelled` can
/// set their cancel flags. The scope tells apart legacy sessions of one identity.
#[derive(Default)]
pub(crate) struct Inflight {
    next: u64,
    calls: HashMap<InflightKey, Vec<(u64, Arc<AtomicBool>)>>,
}

/// (caller identity, scope, request id).
type InflightKey = (String, String, Id);

/// Removes its entry from [`Inflight`] when the call ends.
pub(crate) struct InflightGuard {
    env: Arc<McpEnv>,
    key: InflightKey,
    token: u64,
    /// The call's cancel flag.
    pub(crate) cancel: Arc<AtomicBool>,
}

impl Inflight {
    /// Registers a call and returns its cancel flag under a guard.
    pub(crate) fn register(
        env: &Arc<McpEnv>,
        identity: &str,
        scope: &str,
        id: &Id,
    ) -> InflightGuard {
        let cancel = Arc::new(AtomicBool::new(false));
        let key = (identity.to_string(), scope.to_string(), id.clone());
        let mut inflight = lock(&env.inflight);
        inflight.next += 1;
        let token = inflight.next;
        inflight
            .calls
            .entry(key.clone())
            .or_default()
            .push((token, Arc::clone(&cancel)));
        InflightGuard {
            env: Arc::clone(env),
            key,
            token,
            cancel,
        }
    }

    /// Sets the cancel flag of every call matching the key; returns how many were found.
    pub(crate) fn cancel(env: &McpEnv, identity: &str, scope: &str, id: &Id) -> usize {
        let inflight = lock(&env.inflight);
        let key = (identity.to_string(), scope.to_string(), id.clone());
        inflight.calls.get(&key).map_or(0, |calls| {
            for (_, flag) in calls {
                flag.store(true, Ordering::Relaxed);
            }
            calls.len()
        })
    }
}

impl Inflight {
    /// Cancels every call of `identity` under `scope` (a legacy stream that closed).
    pub(crate) fn cancel_scope(env: &McpEnv, identity: &str, scope: &str) {
        let inflight = lock(&env.inflight);
        for ((who, sc, _), calls) in &inflight.calls {
            if who == identity && sc == scope {
                for (_, flag) in calls {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut inflight = lock(&self.env.inflight);
        if let Some(calls) = inflight.calls.get_mut(&self.key) {
            calls.retain(|(t, _)| *t != self.token);
            if calls.is_empty() {
                inflight.calls.remove(&self.key);
            }
        }
    }
}

/// An HTTP-level JSON-RPC error answer: `{"jsonrpc":"2.0","id":…,"error":{code,message}}`.
pub fn rpc_error_response(
    status: u16,
    id: Option<&Id>,
    code: ErrorCode,
    message: &str,
) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.map_or(Value::Null, Id::to_value),
        "error": ErrorObject::new(code, message).to_value(),
    });
    Response::json(status, &body)
}

/// A parsed body that is a message or a batch, or the 400 answer for one that is not JSON
/// (-32700) or not JSON-RPC (-32600, with the id when it could be read).
pub(crate) fn usable(parsed: crate::rpc::Parsed) -> Result<crate::rpc::Parsed, Response> {
    use crate::rpc::Parsed;
    match parsed {
        Parsed::ParseError(why) => Err(rpc_error_response(400, None, ErrorCode::PARSE_ERROR, &why)),
        Parsed::Invalid(inv) => Err(rpc_error_response(
            400,
            inv.id.as_ref(),
            ErrorCode::INVALID_REQUEST,
            &format!("Bad Request: {}", inv.reason),
        )),
        p => Ok(p),
    }
}

/// Whether `caller` may call `tool`; a refusal is audited here, so every transport records it.
pub(crate) fn may_call(env: &McpEnv, caller: &Caller, tool: &crate::tools::ToolDef) -> bool {
    if tool.access <= caller.grants {
        return true;
    }
    env.hooks.audit(&AuditEvent::Forbidden {
        identity: &caller.identity,
        tool: tool.name,
        required: tool.access,
        granted: caller.grants,
    });
    false
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (our state stays valid
/// between statements, so the data is still consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tool threads kept for reuse at most; beyond them (many slow calls at once) a call gets a
/// thread of its own, so this bounds a cache, not how many calls run.
const TOOL_THREADS_KEPT: usize = 64;
/// How long an idle kept tool thread waits for the next call before it ends.
const TOOL_THREAD_IDLE_RETIRE: Duration = Duration::from_secs(30);

/// Spawns a named thread; `false` when the OS refused (out of threads).
pub(crate) fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new().name(name).spawn(f).is_ok()
}
