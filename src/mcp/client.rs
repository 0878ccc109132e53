//! What the server knows of each client session, and the ways back to it: the capabilities it
//! declared, its logging level, its resource subscriptions, the stream that carries messages the
//! server starts (`notifications/message`, `notifications/resources/updated`), and the requests
//! the server sent it (`sampling/createMessage`, `elicitation/create`) that wait for an answer.
//!
//! A session is a *scope*: a stateful `Mcp-Session-Id` or a legacy `/sse` session id. Stateless
//! requests have the empty scope and no state: their messages travel only on the request's own
//! stream. The transports own the streams; they `attach` an outlet for a scope while its stream
//! is open, so this file depends on no transport.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde_json::{Value, json};

use super::{McpEnv, lock};
use crate::rpc::{ErrorCode, ErrorObject, Id};
use crate::tools::{AskError, LogLevel, Registry};

/// The level messages are filtered at before a client sets one (`logging/setLevel`).
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;

/// The client capabilities a server request needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// `sampling`: the client runs `sampling/createMessage`.
    pub sampling: bool,
    /// `elicitation`: the client runs `elicitation/create`.
    pub elicitation: bool,
    /// `roots`: the client answers `roots/list`.
    pub roots: bool,
}

impl ClientCaps {
    /// The capabilities declared in `initialize` params.
    pub fn from_initialize(params: Option<&Value>) -> Self {
        let caps = params.and_then(|p| p.get("capabilities"));
        let has = |k: &str| caps.and_then(|c| c.get(k)).is_some_and(Value::is_object);
        ClientCaps {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }

    fn declares(self, capability: &str) -> bool {
        match capability {
            "sampling" => self.sampling,
            "elicitation" => self.elicitation,
            "roots" => self.roots,
            _ => true,
        }
    }
}

/// The capability a server-to-client request needs.
fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// Sends one message to a session's open stream; false when it could not be queued.
pub(crate) type Outlet = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// One session's state.
struct Peer {
    identity: String,
    caps: Option<ClientCaps>,
    level: Option<LogLevel>,
    /// Subscribed URIs and the hash of the content last seen for each.
    subscriptions: BTreeMap<String, u64>,
    /// The stream open for it now, with a number telling attachments apart.
    outlet: Option<(u64, Outlet)>,
    touched: Instant,
}

/// Every session's state, bounded: past [`Peers::MAX`] the least recently used is forgotten.
#[derive(Default)]
pub(crate) struct Peers {
    map: HashMap<String, Peer>,
    next_attachment: u64,
}

impl Peers {
    /// Sessions remembered at once (each costs a few hundred bytes plus its subscriptions).
    const MAX: usize = 10_000;

    fn entry(&mut self, scope: &str, identity: &str) -> &mut Peer {
        if !self.map.contains_key(scope) && self.map.len() >= Self::MAX {
            let oldest = self
                .map
                .iter()
                .filter(|(_, p)| p.outlet.is_none())
                .min_by_key(|(_, p)| p.touched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        let peer = self.map.entry(scope.to_string()).or_insert_with(|| Peer {
            identity: identity.to_string(),
            caps: None,
            level: None,
            subscriptions: BTreeMap::new(),
            outlet: None,
            touched: Instant::now(),
        });
        peer.touched = Instant::now();
        peer
    }

    fn get(&self, scope: &str, identity: &str) -> Option<&Peer> {
        self.map.get(scope).filter(|p| p.identity == identity)
    }
}

/// Records an `initialize` for a session: its declared capabilities; the level and subscriptions
/// start afresh.
pub(crate) fn initialized(env: &McpEnv, scope: &str, identity: &str, params: Option<&Value>) {
    if scope.is_empty() {
        return;
    }
    let mut peers = lock(&env.peers);
    let peer = peers.entry(scope, identity);
    peer.caps = Some(ClientCaps::from_initialize(params));
    peer.level = None;
    peer.subscriptions.clear();
}

/// Forgets a session (stateful `DELETE`, a legacy session reaped).
pub(crate) fn forget(env: &McpEnv, scope: &str) {
    lock(&env.peers).map.remove(scope);
}

/// `logging/setLevel`: the session's level from now on. Stateless requests have no session to
/// keep it in: their calls' messages are filtered at [`DEFAULT_LOG_LEVEL`].
pub(crate) fn set_level(env: &McpEnv, scope: &str, identity: &str, level: LogLevel) {
    if !scope.is_empty() {
        lock(&env.peers).entry(scope, identity).level = Some(level);
    }
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    /// The session holds [`crate::mcp::Settings::max_subscriptions`] already.
    TooMany(usize),
}

/// Starts the workspace watcher once (see [`crate::watch`]); a failure is logged and leaves
/// subscribers without updates rather than failing the subscription.
pub(crate) fn ensure_watcher(env: &Arc<McpEnv>) {
    let Some(root) = &env.settings.watch_root else {
        return;
    };
    let mut slot = lock(&env.watcher);
    if slot.is_some() {
        return;
    }
    let weak = Arc::downgrade(env);
    let started = crate::watch::spawn(root, crate::watch::Settings::default(), move |c| {
        if let Some(env) = weak.upgrade() {
            resources_changed(&env, &env.registry, c.listed);
        }
    });
    match started {
        Ok(w) => *slot = Some(w),
        Err(e) => log::warn!("no file watcher ({e}): subscribers will not hear of changes"),
    }
}

/// `resources/subscribe` for a session; `content` is what the resource holds now.
pub(crate) fn subscribe(
    env: &McpEnv,
    scope: &str,
    identity: &str,
    uri: &str,
    content: &Value,
) -> Result<(), SubscribeError> {
    let max = env.settings.max_subscriptions;
    let mut peers = lock(&env.peers);
    let peer = peers.entry(scope, identity);
    if !peer.subscriptions.contains_key(uri) && peer.subscriptions.len() >= max {
        return Err(SubscribeError::TooMany(max));
    }
    peer.subscriptions.insert(uri.to_string(), hash(content));
    Ok(())
}

/// `resources/unsubscribe`; true when the session was subscribed.
pub(crate) fn unsubscribe(env: &McpEnv, scope: &str, identity: &str, uri: &str) -> bool {
    let mut peers = lock(&env.peers);
    peers
        .entry(scope, identity)
        .subscriptions
        .remove(uri)
        .is_some()
}

/// Removes its outlet when the stream it belongs to ends.
pub(crate) struct Attachment {
    env: std::sync::Weak<McpEnv>,
    scope: String,
    number: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let Some(env) = self.env.upgrade() else {
            return;
        };
        let mut peers = lock(&env.peers);
        if let Some(p) = peers.map.get_mut(&self.scope)
            && p.outlet.as_ref().is_some_and(|(n, _)| *n == self.number)
        {
            p.outlet = None;
        }
    }
}

/// Makes `outlet` the way to a session's client until the returned guard drops (a newer
/// attachment replaces an older one).
pub(crate) fn attach(env: &Arc<McpEnv>, scope: &str, identity: &str, outlet: Outlet) -> Attachment {
    let mut peers = lock(&env.peers);
    peers.next_attachment += 1;
    let number = peers.next_attachment;
    peers.entry(scope, identity).outlet = Some((number, outlet));
    Attachment {
        env: Arc::downgrade(env),
        scope: scope.to_string(),
        number,
    }
}

/// Sends a message to a session's open stream; false when none is open or it is full.
pub(crate) fn notify(env: &McpEnv, scope: &str, msg: &Value) -> bool {
    let outlet = {
        let peers = lock(&env.peers);
        peers
            .map
            .get(scope)
            .and_then(|p| p.outlet.as_ref().map(|(_, o)| Arc::clone(o)))
    };
    outlet.is_some_and(|o| o(msg))
}

/// What a call knows of its session when it starts.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// The session (empty when stateless).
    pub scope: String,
    /// Messages below this level are not sent.
    pub level: LogLevel,
    /// What the client declared, when the server saw its `initialize`.
    pub caps: Option<ClientCaps>,
    /// The call's answer is a stream the client reads while the call runs, so it can carry
    /// requests to the client (set by the transport).
    pub streamed: bool,
}

/// The view of `scope` for a call by `identity`.
pub(crate) fn view(env: &McpEnv, scope: &str, identity: &str) -> PeerView {
    // Stateless calls have no session to look up: no lock on the way of every call.
    if scope.is_empty() {
        return PeerView {
            scope: String::new(),
            level: DEFAULT_LOG_LEVEL,
            caps: None,
            streamed: false,
        };
    }
    let peers = lock(&env.peers);
    let peer = peers.get(scope, identity);
    PeerView {
        scope: scope.to_string(),
        level: peer.and_then(|p| p.level).unwrap_or(DEFAULT_LOG_LEVEL),
        caps: peer.and_then(|p| p.caps),
        streamed: false,
    }
}

/// A `notifications/message`.
pub fn log_notification(level: LogLevel, data: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": level.as_str(), "logger": "task-mcp", "data": data}})
}

/// Server requests waiting for the client's answer, by (identity, request id).
#[derive(Default)]
pub(crate) struct Pending {
    next: u64,
    waiting: HashMap<(String, Id), Sender<Result<Value, ErrorObject>>>,
}

/// Delivers a client's answer to a server request; false when nothing waits for it (answered
/// twice, too late, or never asked).
pub(crate) fn deliver(env: &McpEnv, identity: &str, resp: crate::rpc::Response) -> bool {
    let Some(id) = resp.id else {
        return false;
    };
    let waiter = lock(&env.pending)
        .waiting
        .remove(&(identity.to_string(), id));
    waiter.is_some_and(|tx| tx.send(resp.outcome).is_ok())
}

/// Removes a pending entry when its request stops waiting.
struct PendingGuard<'a> {
    env: &'a McpEnv,
    key: (String, Id),
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.env.pending).waiting.remove(&self.key);
    }
}

fn register(env: &McpEnv, identity: &str) -> (Id, Receiver<Result<Value, ErrorObject>>) {
    let (tx, rx) = bounded(1);
    let mut pending = lock(&env.pending);
    pending.next += 1;
    // Unguessable, so one identity's sessions cannot answer each other's requests by accident.
    let salt = crate::random::hex(6).unwrap_or_default();
    let id = Id::Str(format!("task-mcp-{}-{salt}", pending.next));
    pending
        .waiting
        .insert((identity.to_string(), id.clone()), tx);
    (id, rx)
}

/// How often a waiting request looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Sends a request to the client of a call through `send` (which puts it on the call's stream)
/// and waits for the answer, the cancel flag or the timeout
/// ([`crate::mcp::Settings::client_request_timeout`]).
///
/// # Errors
/// [`AskError`]: a capability the client did not declare, no stream, a timeout, a cancel, or the
/// client's own error answer.
pub(crate) fn ask(
    env: &McpEnv,
    identity: &str,
    peer: &PeerView,
    cancelled: &AtomicBool,
    method: &str,
    params: Value,
    send: &mut dyn FnMut(Value),
) -> Result<Value, AskError> {
    if let (Some(cap), Some(caps)) = (capability_for(method), peer.caps)
        && !caps.declares(cap)
    {
        return Err(AskError::NotDeclared(cap));
    }
    if !peer.streamed {
        return Err(AskError::NoStream);
    }
    let (id, rx) = register(env, identity);
    let _guard = PendingGuard {
        env,
        key: (identity.to_string(), id.clone()),
    };
    send(json!({"jsonrpc": "2.0", "id": id.to_value(), "method": method, "params": params}));
    let timeout = env.settings.client_request_timeout;
    let deadline = Instant::now() + timeout;
    loop {
        if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(AskError::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AskError::Timeout(timeout));
        }
        match rx.recv_timeout(left.min(CANCEL_POLL)) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => {
                return Err(AskError::Refused {
                    code: e.code.0,
                    message: e.message,
                });
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(AskError::Cancelled),
        }
    }
}

/// The files behind resources changed. Every subscribed resource is read again and its
/// subscribers are told when its content differs from what they last saw; `listed` also tells
/// every session with an open stream that the list of resources may have changed.
/// Returns how many `updated` notifications went out.
pub(crate) fn resources_changed(env: &McpEnv, registry: &Registry, listed: bool) -> usize {
    let uris: Vec<String> = {
        let peers = lock(&env.peers);
        let mut all: Vec<String> = peers
            .map
            .values()
            .flat_map(|p| p.subscriptions.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let now: HashMap<String, u64> = uris
        .into_iter()
        .map(|uri| {
            let h = match registry.read_resource(&uri) {
                Ok(c) => hash(&serde_json::to_value(c).unwrap_or_default()),
                // Gone: a distinct value, so its subscribers hear of it once.
                Err(_) => 0,
            };
            (uri, h)
        })
        .collect();
    let mut sends: Vec<(String, Value)> = Vec::new();
    {
        let mut peers = lock(&env.peers);
        for (scope, peer) in &mut peers.map {
            for (uri, seen) in &mut peer.subscriptions {
                if let Some(h) = now.get(uri)
                    && h != seen
                {
                    *seen = *h;
                    sends.push((scope.clone(), updated_notification(uri)));
                }
            }
            if listed && peer.outlet.is_some() {
                sends.push((
                    scope.clone(),
                    json!({"jsonrpc": "2.0", "method": "notifications/resources/list_changed"}),
                ));
            }
        }
    }
    let mut updated = 0;
    for (scope, msg) in &sends {
        if notify(env, scope, msg) && msg["method"] == "notifications/resources/updated" {
            updated += 1;
        }
    }
    updated
}

fn updated_notification(uri: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
}

/// A content hash for change detection (not for security: collisions only cost a missed update
/// between two equal-hash contents).
fn hash(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    // 0 is reserved for "gone".
    h.finish().max(1)
}

/// The JSON-RPC error of a refused subscription.
pub(crate) fn subscribe_error(e: &SubscribeError) -> ErrorObject {
    match e {
        SubscribeError::TooMany(max) => ErrorObject::new(
            ErrorCode::INVALID_PARAMS,
            format!(
                "This session holds {max} subscriptions already (MAX_SUBSCRIPTIONS); unsubscribe first"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_come_from_initialize() {
        let c = ClientCaps::from_initialize(Some(
            &json!({"capabilities": {"sampling": {}, "roots": {"listChanged": true}}}),
        ));
        assert!(c.sampling && c.roots && !c.elicitation);
        assert_eq!(ClientCaps::from_initialize(None), ClientCaps::default());
        assert!(c.declares("sampling") && !c.declares("elicitation"));
        assert_eq!(capability_for("elicitation/create"), Some("elicitation"));
        assert_eq!(capability_for("ping"), None);
    }
}
