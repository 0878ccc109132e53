//! Legacy HTTP+SSE (protocol 2024-11-05, brief §3) with the seed's connection manager on top.
//!
//! `GET /sse` opens a stream whose first event is `endpoint` (`/messages?sessionId=<id>`); each
//! `POST /messages?sessionId=<id>` is answered `202` and its JSON-RPC reply travels on the stream
//! as `event: message`. The session id is also the stream id. Every event on these streams has
//! an `id: <stream>-<seq>`, and the last events of each stream are kept for a while after it
//! closes, so a client reconnecting with `Last-Event-ID` gets the same session back and the events
//! it missed. Admins can list streams (`GET /sse/stats`) and broadcast to them
//! (`POST /sse/broadcast`).
//!
//! Heartbeats are `: keepalive` comments rather than `event: heartbeat`: MCP SDK clients ignore
//! comments, while the Python SDK logs a warning for every unknown event type.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use super::http::{held_sse, unavailable};
use super::methods::finish_call;
use super::methods::{self, Reply};
use super::run::{ToolEvent, is_cancelled, progress_notification};
use super::seed::{self, rfc3339};
use super::session::random_hex;
use super::{Caller, Inflight, McpEnv, StreamKind, client, lock, rpc_error_response};
use crate::http::{Head, Response};
use crate::net::stream::{MailSender, mailbox};
use crate::rpc::{self, ErrorCode, Message, Parsed};
use crate::sse;
use crate::tools::Access;

/// The legacy sessions, connected or kept for replay.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<String, Session>,
    next_generation: u64,
}

struct Session {
    identity: String,
    opened_at: SystemTime,
    /// The live stream's mailbox; `None` once it closed (the session is kept for replay only).
    live: Option<(u64, MailSender<Outbound>)>,
    closed: Option<Instant>,
    /// The last events, oldest first, for `Last-Event-ID` replay.
    ring: VecDeque<Outbound>,
    next_seq: u64,
}

#[derive(Clone, Debug)]
struct Outbound {
    seq: u64,
    event: String,
    data: String,
}

/// The event types an admin may broadcast: the seed's connection-manager types, and `message`
/// for a JSON-RPC notification.
pub const BROADCAST_EVENTS: [&str; 7] = [
    "mcp-notification",
    "mcp-response",
    "mcp-error",
    "heartbeat",
    "tool-result",
    "connection-status",
    "message",
];

/// `GET /sse`: opens a legacy stream, or resumes one named by `Last-Event-ID`.
pub fn open_stream(env: &Arc<McpEnv>, head: &Head, caller: &Caller) -> Response {
    let now = Instant::now();
    reap(env, now);
    let Some(slot) = env.claim_stream(StreamKind::Legacy) else {
        return unavailable();
    };
    let Ok((tx, mb)) = mailbox::<Outbound>(env.settings.mailbox_capacity.max(1)) else {
        return rpc_error_response(
            503,
            None,
            ErrorCode::TRANSPORT,
            "Service Unavailable: out of file descriptors",
        );
    };
    let resume = head.header("last-event-id").and_then(parse_event_id);
    let (sid, generation, replay, last_seq) = {
        let mut sessions = lock(&env.legacy);
        sessions.next_generation += 1;
        let generation = sessions.next_generation;
        let resumable = resume.as_ref().and_then(|(sid, seq)| {
            let s = sessions.map.get_mut(sid)?;
            (s.identity == caller.identity && s.live.is_none()).then_some((sid.clone(), *seq, s))
        });
        match resumable {
            Some((sid, seq, s)) => {
                let replay: Vec<Outbound> =
                    s.ring.iter().filter(|e| e.seq > seq).cloned().collect();
                s.live = Some((generation, tx));
                s.closed = None;
                (sid, generation, replay, seq)
            }
            None => {
                let Ok(sid) = random_hex(16) else {
                    return rpc_error_response(
                        500,
                        None,
                        ErrorCode::INTERNAL_ERROR,
                        "Internal error: no randomness",
                    );
                };
                sessions.map.insert(
                    sid.clone(),
                    Session {
                        identity: caller.identity.clone(),
                        opened_at: SystemTime::now(),
                        live: Some((generation, tx)),
                        closed: None,
                        ring: VecDeque::new(),
                        next_seq: 1,
                    },
                );
                (sid, generation, Vec::new(), 0)
            }
        }
    };
    // Server-started messages (log messages, resource updates) reach the session through its
    // numbered, replayable events.
    let weak = Arc::downgrade(env);
    let sid_out = sid.clone();
    let outlet: client::Outlet = Arc::new(move |m: &Value| {
        weak.upgrade()
            .is_some_and(|env| push(&env, &sid_out, "message", m))
    });
    let attached = client::attach(env, &sid, &caller.identity, outlet);
    // Detaches the session when the stream ends, or when the response is dropped unsent.
    let detach = Detach {
        env: Arc::clone(env),
        sid: sid.clone(),
        generation,
        identity: caller.identity.clone(),
    };
    let mut endpoint = Vec::new();
    let _ = sse::write_event(
        &mut endpoint,
        Some("endpoint"),
        Some(&format!("{sid}-{last_seq}")),
        &format!("/messages?sessionId={sid}"),
    );
    let mut initial = Vec::with_capacity(1 + replay.len());
    initial.push(endpoint);
    initial.extend(replay.iter().map(|e| outbound_bytes(&sid, e)));
    held_sse(
        env,
        slot,
        mb,
        move |e: Outbound| outbound_bytes(&sid, &e),
        initial,
        (attached, detach),
    )
}

/// `POST /messages?sessionId=…`: one JSON-RPC message for a live legacy session → 202; the
/// reply goes out on the session's stream.
pub fn post_message(env: &Arc<McpEnv>, head: &Head, body: &[u8], caller: &Caller) -> Response {
    let Some(sid) = head.query_param("sessionId").filter(|s| !s.is_empty()) else {
        return rpc_error_response(
            400,
            None,
            ErrorCode::TRANSPORT,
            "Bad Request: sessionId query parameter is required",
        );
    };
    let sid = sid.to_string();
    if !super::json_content_type(head) {
        return super::unsupported_media_type();
    }
    {
        let sessions = lock(&env.legacy);
        // Another identity's session answers like an unknown one: ids are not to be probed.
        let usable = sessions
            .map
            .get(&sid)
            .is_some_and(|s| s.identity == caller.identity && s.live.is_some());
        if !usable {
            return rpc_error_response(
                404,
                None,
                ErrorCode::SESSION_NOT_FOUND,
                "Session not found; open a new stream with GET /sse",
            );
        }
    }
    let msg = match super::usable(rpc::parse(body)) {
        Ok(Parsed::Single(m)) => m,
        Err(resp) => return resp,
        Ok(_) => {
            return rpc_error_response(
                400,
                None,
                ErrorCode::INVALID_REQUEST,
                "Bad Request: batches are not supported on the HTTP+SSE transport",
            );
        }
    };
    match msg {
        Message::Request(req) => {
            match methods::request(env, caller, &sid, super::Via::LegacySse, req) {
                Reply::Now(resp) => {
                    push(env, &sid, "message", &resp.to_value());
                }
                Reply::Call(id, job) => {
                    let token = job.progress_token.clone();
                    let flag = job.cancel_flag();
                    let env2 = Arc::clone(env);
                    let sid2 = sid.clone();
                    let mut last = f64::NEG_INFINITY;
                    let started = job.streamed().spawn(move |ev| match ev {
                        // A cancelled request gets nothing more: no progress, no response.
                        _ if is_cancelled(&flag) => {}
                        ToolEvent::Progress(p) => {
                            if let Some(t) = &token
                                && p.progress > last
                            {
                                last = p.progress;
                                push(&env2, &sid2, "message", &progress_notification(t, &p));
                            }
                        }
                        ToolEvent::Message(m) => {
                            push(&env2, &sid2, "message", &m);
                        }
                        ToolEvent::Finished(outcome) => {
                            push(
                                &env2,
                                &sid2,
                                "message",
                                &finish_call(id.clone(), &outcome).to_value(),
                            );
                        }
                    });
                    if !started {
                        return rpc_error_response(
                            503,
                            None,
                            ErrorCode::TRANSPORT,
                            "Service Unavailable: could not start the tool",
                        );
                    }
                }
            }
        }
        Message::Notification(n) => methods::notification(env, caller, &sid, &n),
        Message::Response(r) => {
            client::deliver(env, &caller.identity, r);
        }
    }
    Response::bytes(202, "text/plain; charset=utf-8", b"Accepted".to_vec())
}

/// `GET /sse/stats` (admin): live legacy streams by identity, with ages.
pub fn stats(env: &Arc<McpEnv>, caller: &Caller) -> Response {
    if caller.grants < Access::Admin {
        return forbidden();
    }
    Response::json(200, &stats_at(env, SystemTime::now()))
}

/// `POST /sse/broadcast` (admin): `{"event"?, "message", "filter"?: {"identities": [...]}}` sends
/// one event to every live legacy stream, or to those of the named identities.
pub fn broadcast(env: &Arc<McpEnv>, body: &[u8], caller: &Caller) -> Response {
    if caller.grants < Access::Admin {
        return forbidden();
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return seed::error_response(
            400,
            "BAD_REQUEST",
            "the body must be a JSON object",
            "Send {\"event\":\"mcp-notification\",\"message\":{...}}.",
        );
    };
    let event = match req.get("event") {
        None => "mcp-notification",
        Some(Value::String(e)) if BROADCAST_EVENTS.contains(&e.as_str()) => e.as_str(),
        Some(_) => {
            return seed::error_response(
                400,
                "BAD_EVENT",
                "unknown event type",
                &format!("Use one of: {}.", BROADCAST_EVENTS.join(", ")),
            );
        }
    };
    let Some(message) = req.get("message").or_else(|| req.get("data")) else {
        return seed::error_response(
            400,
            "BAD_REQUEST",
            "`message` is required",
            "Send {\"message\": ...}.",
        );
    };
    if event == "message"
        && !matches!(
            rpc::parse_value(message.clone()),
            Parsed::Single(Message::Notification(_))
        )
    {
        return seed::error_response(
            400,
            "BAD_EVENT",
            "`message` events must carry a JSON-RPC notification",
            "Send {\"jsonrpc\":\"2.0\",\"method\":...} or use mcp-notification.",
        );
    }
    let identities: Option<Vec<String>> = req
        .get("filter")
        .and_then(|f| f.get("identities"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        });
    let targets: Vec<String> = {
        let sessions = lock(&env.legacy);
        sessions
            .map
            .iter()
            .filter(|(_, s)| s.live.is_some())
            .filter(|(_, s)| {
                identities
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&s.identity))
            })
            .map(|(id, _)| id.clone())
            .collect()
    };
    let delivered = targets
        .iter()
        .filter(|sid| push(env, sid, event, message))
        .count();
    Response::json(200, &json!({"delivered": delivered, "event": event}))
}

/// The stats document at `now`.
fn stats_at(env: &McpEnv, now: SystemTime) -> Value {
    let sessions = lock(&env.legacy);
    let mut by_identity: BTreeMap<&str, usize> = BTreeMap::new();
    let mut streams = Vec::new();
    let mut oldest: Option<SystemTime> = None;
    let mut newest: Option<SystemTime> = None;
    let mut retained = 0;
    let mut live: Vec<(&String, &Session)> = sessions
        .map
        .iter()
        .filter(|(_, s)| {
            if s.live.is_none() {
                retained += 1;
            }
            s.live.is_some()
        })
        .collect();
    live.sort_by_key(|(_, s)| s.opened_at);
    for (id, s) in live {
        *by_identity.entry(s.identity.as_str()).or_default() += 1;
        oldest = Some(oldest.map_or(s.opened_at, |o| o.min(s.opened_at)));
        newest = Some(newest.map_or(s.opened_at, |n| n.max(s.opened_at)));
        streams.push(json!({
            "id": id,
            "identity": s.identity,
            "openedAt": rfc3339(s.opened_at),
            "ageSeconds": now.duration_since(s.opened_at).unwrap_or_default().as_secs(),
            "eventsSent": s.next_seq - 1,
        }));
    }
    json!({
        "totalConnections": streams.len(),
        "connectionsByIdentity": by_identity,
        "oldestConnection": oldest.map(rfc3339),
        "newestConnection": newest.map(rfc3339),
        "retainedForReplay": retained,
        "openStreams": env.open_streams(),
        "maxStreams": env.settings.max_streams,
        "streams": streams,
    })
}

/// Queues an event for a session: numbered, kept in its replay ring, sent when it is live.
/// Returns true when it went to a live stream.
fn push(env: &McpEnv, sid: &str, event: &str, data: &Value) -> bool {
    let mut sessions = lock(&env.legacy);
    let Some(s) = sessions.map.get_mut(sid) else {
        return false;
    };
    let out = Outbound {
        seq: s.next_seq,
        event: event.to_string(),
        data: serde_json::to_string(data).unwrap_or_default(),
    };
    s.next_seq += 1;
    if env.settings.replay_events > 0 {
        if s.ring.len() >= env.settings.replay_events {
            s.ring.pop_front();
        }
        s.ring.push_back(out.clone());
    }
    match &s.live {
        Some((_, tx)) => match tx.send(out) {
            Ok(()) => true,
            Err(e) => {
                // A full mailbox means the stream cannot keep up; the event stays in the ring.
                log::warn!("legacy stream {sid}: event not queued ({e:?})");
                false
            }
        },
        None => false,
    }
}

/// A numbered event (`id: <session>-<seq>`); empty when it cannot be written.
fn outbound_bytes(sid: &str, e: &Outbound) -> Vec<u8> {
    let mut buf = Vec::with_capacity(e.data.len() + 64);
    if sse::write_event(
        &mut buf,
        Some(&e.event),
        Some(&format!("{sid}-{}", e.seq)),
        &e.data,
    )
    .is_err()
    {
        return Vec::new();
    }
    buf
}

/// Drops sessions closed longer than the replay retention.
fn reap(env: &McpEnv, now: Instant) {
    let keep = env.settings.replay_retention;
    let mut gone = Vec::new();
    lock(&env.legacy).map.retain(|sid, s| {
        let keep = s
            .closed
            .is_none_or(|c| now.saturating_duration_since(c) < keep);
        if !keep {
            gone.push(sid.clone());
        }
        keep
    });
    for sid in gone {
        client::forget(env, &sid);
    }
}

/// `<session>-<seq>` → its parts.
fn parse_event_id(v: &str) -> Option<(String, u64)> {
    let (sid, seq) = v.trim().rsplit_once('-')?;
    Some((sid.to_string(), seq.parse().ok()?))
}

fn forbidden() -> Response {
    seed::error_response(
        403,
        "FORBIDDEN",
        "this endpoint needs an admin token",
        "Use a token with the admin role.",
    )
}

/// Marks the session closed when its stream ends (unless a newer stream took it over) and
/// cancels the calls still running for it.
struct Detach {
    env: Arc<McpEnv>,
    sid: String,
    generation: u64,
    identity: String,
}

impl Drop for Detach {
    fn drop(&mut self) {
        {
            let mut sessions = lock(&self.env.legacy);
            if let Some(s) = sessions.map.get_mut(&self.sid)
                && s.live.as_ref().is_some_and(|(g, _)| *g == self.generation)
            {
                s.live = None;
                s.closed = Some(Instant::now());
            }
        }
        Inflight::cancel_scope(&self.env, &self.identity, &self.sid);
        reap(&self.env, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_their_stream_and_sequence() {
        assert_eq!(parse_event_id("abc-7"), Some(("abc".into(), 7)));
        assert_eq!(parse_event_id("a-b-0"), Some(("a-b".into(), 0)));
        assert_eq!(parse_event_id("abc"), None);
        assert_eq!(parse_event_id("abc-x"), None);
    }
}
