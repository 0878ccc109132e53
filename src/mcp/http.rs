//! Streamable HTTP at `/mcp` (brief §2): the checks of §2.1 steps 5–12, JSON answers by default,
//! SSE answers for progress or SSE-only clients, stateless by default with an opt-in stateful
//! mode (signed session ids, one GET stream per session, DELETE).
//!
//! The server has already done steps 1–4 and 8 (CORS preflight, Origin, Host, auth, body size).
//! A `{"tool", "input"}` body is the seed's NDJSON API and goes to [`super::seed`]: the body
//! decides, a JSON-RPC message is MCP.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::methods::finish_call;
use super::methods::{self, Reply};
use super::run::{ToolEvent, ToolJob, cancel, forward_to, is_cancelled, progress_notification};
use super::session::{self, SessionError};
use super::{
    Caller, DEFAULT_NEGOTIATED_VERSION, McpEnv, SUPPORTED_VERSIONS, Sessions, StreamKind,
    StreamSlot, Via, client, lock, rpc_error_response, seed,
};
use crate::http::{Head, Method, Response, media_essence};
use crate::net::stream::{StreamCtx, Wait, mailbox};
use crate::rpc::{self, ErrorCode, ErrorObject, Id, Message, Parsed};
use crate::sse;

/// Routes a request to `/mcp` by method: POST, GET, DELETE, else 405 with `Allow`.
pub fn handle(env: &Arc<McpEnv>, head: &Head, body: &[u8], caller: &Caller) -> Response {
    match head.method {
        Method::Post => post(env, head, body, caller),
        Method::Get => get(env, head, caller),
        Method::Delete => delete(env, head, caller),
        _ => method_not_allowed(env),
    }
}

/// `POST /mcp`: one JSON-RPC message (or a 2025-03-26 batch), or a seed `{tool, input}` call.
pub fn post(env: &Arc<McpEnv>, head: &Head, body: &[u8], caller: &Caller) -> Response {
    // Step 6: the media type. A missing header is tolerated (we try to parse).
    if !super::json_content_type(head) {
        return super::unsupported_media_type();
    }
    let value: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &value
        && seed::is_seed_call(v)
    {
        return seed::post_ndjson(env, v, caller);
    }
    // Step 7: lenient Accept.
    let accept = Accept::from_head(head);
    if !accept.json && !accept.sse {
        return rpc_error_response(
            406,
            None,
            ErrorCode::TRANSPORT,
            "Not Acceptable: Accept must allow application/json or text/event-stream",
        );
    }
    // Step 9: parse.
    let parsed = match value {
        Some(v) => rpc::parse_value(v),
        None => rpc::parse(body),
    };
    let parsed = match super::usable(parsed) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let is_initialize = matches!(
        &parsed,
        Parsed::Single(Message::Request(r)) if r.method == "initialize"
    );
    let first_id = match &parsed {
        Parsed::Single(Message::Request(r)) => Some(r.id.clone()),
        _ => None,
    };
    // Step 10: the protocol version header (ignored on initialize).
    let header_version = head.header("mcp-protocol-version").map(str::trim);
    if !is_initialize
        && let Some(v) = header_version
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        return rpc_error_response(
            400,
            first_id.as_ref(),
            ErrorCode::INVALID_REQUEST,
            &format!(
                "Unsupported MCP-Protocol-Version {v}; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        );
    }
    // Step 11: sessions (stateful mode only; stateless ignores any incoming id).
    let mut scope = String::new();
    let mut session_version = None;
    if env.settings.sessions == Sessions::Stateful && !is_initialize {
        match check_session(env, head, caller) {
            Ok((id, claims)) => {
                scope = id;
                session_version = Some(claims.version);
            }
            Err(r) => return r,
        }
    }
    let version = header_version
        .and_then(|v| SUPPORTED_VERSIONS.iter().copied().find(|s| *s == v))
        .or(session_version)
        .unwrap_or(DEFAULT_NEGOTIATED_VERSION);
    // Step 12: dispatch.
    match parsed {
        Parsed::Single(Message::Request(req)) => {
            let negotiated = is_initialize.then(|| methods::negotiate(req.params.as_ref()));
            let init_params = is_initialize.then(|| req.params.clone()).flatten();
            let session_header = match (&env.settings.sessions, negotiated) {
                (Sessions::Stateful, Some(v)) => {
                    let key = &env.settings.session_key;
                    match session::mint(key, &caller.identity, v, SystemTime::now()) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            return rpc_error_response(
                                500,
                                first_id.as_ref(),
                                ErrorCode::INTERNAL_ERROR,
                                &format!("Internal error: {e}"),
                            );
                        }
                    }
                }
                _ => None,
            };
            let mut resp = answer(
                env,
                &accept,
                methods::request(env, caller, &scope, Via::StreamableHttp, req),
            );
            if let Some(sid) = session_header {
                client::initialized(env, &sid, &caller.identity, init_params.as_ref());
                resp.set_header("Mcp-Session-Id", sid);
            }
            resp
        }
        Parsed::Single(Message::Notification(n)) => {
            methods::notification(env, caller, &scope, &n);
            Response::empty(202)
        }
        Parsed::Single(Message::Response(r)) => {
            // The answer to a request a tool sent on its stream (sampling, elicitation).
            if !client::deliver(env, &caller.identity, r) {
                log::debug!("a client answer matched no waiting request");
            }
            Response::empty(202)
        }
        Parsed::Batch(items) => batch(env, &accept, caller, &scope, version, items),
        Parsed::ParseError(_) | Parsed::Invalid(_) => {
            // unwrap-free: both were answered above; answer defensively anyway.
            rpc_error_response(400, None, ErrorCode::INVALID_REQUEST, "Bad Request")
        }
    }
}

/// `GET /mcp`: 405 when stateless; in stateful mode the session's standalone stream: log messages
/// of its calls answered as JSON, resource updates and list changes, and keep-alive comments.
pub fn get(env: &Arc<McpEnv>, head: &Head, caller: &Caller) -> Response {
    if env.settings.sessions != Sessions::Stateful {
        return method_not_allowed(env);
    }
    if !Accept::from_head(head).sse {
        return rpc_error_response(
            406,
            None,
            ErrorCode::TRANSPORT,
            "Not Acceptable: Accept must allow text/event-stream",
        );
    }
    let (sid, _) = match check_session(env, head, caller) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !lock(&env.sessions).get_streams.insert(sid.clone()) {
        return rpc_error_response(
            409,
            None,
            ErrorCode::TRANSPORT,
            "Conflict: only one GET stream is allowed per session",
        );
    }
    // From here the entry is removed when the guard drops: when the stream ends, or when the
    // response is dropped unsent.
    let registered = GetStreamGuard {
        env: Arc::clone(env),
        sid,
    };
    let Some(slot) = env.claim_stream(StreamKind::McpGet) else {
        return unavailable();
    };
    let Ok((tx, mb)) = mailbox::<Value>(env.settings.mailbox_capacity.max(1)) else {
        return unavailable();
    };
    let outlet: client::Outlet = Arc::new(move |m: &Value| tx.send(m.clone()).is_ok());
    let attached = client::attach(env, &registered.sid, &caller.identity, outlet);
    held_sse(
        env,
        slot,
        mb,
        |m: Value| message_bytes(&m),
        Vec::new(),
        (registered, attached),
    )
}

/// A transport's held SSE stream: each mailbox message becomes `encode(message)`, `initial`
/// events go first, a keep-alive comment every `HEARTBEAT_MS`, and it ends after
/// `MAX_STREAM_AGE_MS`. Every byte is counted on `slot`, which lives, with `keep`, as long as
/// the stream.
pub(crate) fn held_sse<T: Send + 'static>(
    env: &McpEnv,
    slot: StreamSlot,
    mb: crate::net::stream::Mailbox<T>,
    encode: impl Fn(T) -> Vec<u8> + Send + 'static,
    initial: Vec<Vec<u8>>,
    keep: impl std::any::Any + Send,
) -> Response {
    let slot = Arc::new(slot);
    let initial = initial.into_iter().map(|b| slot.counted(b)).collect();
    let (on_event, on_beat) = (Arc::clone(&slot), Arc::clone(&slot));
    let held = crate::net::stream::held(
        mb,
        move |m| on_event.counted(encode(m)),
        move || on_beat.counted(comment_bytes("keepalive")),
        initial,
        env.settings.heartbeat,
        env.settings.max_stream_age,
        (keep, slot),
    );
    crate::net::stream::held_sse(held)
}

/// `DELETE /mcp`: 405 when stateless; in stateful mode ends the session (200) for good.
pub fn delete(env: &Arc<McpEnv>, head: &Head, caller: &Caller) -> Response {
    if env.settings.sessions != Sessions::Stateful {
        return method_not_allowed(env);
    }
    let (sid, claims) = match check_session(env, head, caller) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = SystemTime::now();
    let expires = UNIX_EPOCH
        + Duration::from_secs(claims.issued_at_secs)
        + env.settings.session_max_age
        + Duration::from_secs(300);
    lock(&env.sessions).delete(&sid, expires, now);
    client::forget(env, &sid);
    Response::empty(200)
}

/// 405 with the `Allow` header of the current mode.
pub fn method_not_allowed(env: &McpEnv) -> Response {
    let allow = match env.settings.sessions {
        Sessions::Stateless => "POST, OPTIONS",
        Sessions::Stateful => "GET, POST, DELETE, OPTIONS",
    };
    rpc_error_response(405, None, ErrorCode::TRANSPORT, "Method not allowed.")
        .with_header("Allow", allow)
}

/// Which answer media types a request's `Accept` allows, leniently (brief §2.1 step 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    /// `application/json`, `application/*`, `*/*` or no header.
    pub json: bool,
    /// `text/event-stream`, `text/*`, `*/*` or no header.
    pub sse: bool,
}

impl Accept {
    /// Reads every `Accept` header of a request.
    pub fn from_head(head: &Head) -> Self {
        let mut seen = false;
        let mut a = Accept {
            json: false,
            sse: false,
        };
        for value in head.headers_named("accept") {
            for item in value.split(',') {
                let essence = media_essence(item);
                if essence.is_empty() {
                    continue;
                }
                seen = true;
                match essence.as_str() {
                    "*/*" => {
                        a.json = true;
                        a.sse = true;
                    }
                    "application/json" | "application/*" => a.json = true,
                    "text/event-stream" | "text/*" => a.sse = true,
                    _ => {}
                }
            }
        }
        if seen {
            a
        } else {
            Accept {
                json: true,
                sse: true,
            }
        }
    }
}

struct GetStreamGuard {
    env: Arc<McpEnv>,
    sid: String,
}

impl Drop for GetStreamGuard {
    fn drop(&mut self) {
        lock(&self.env.sessions).get_streams.remove(&self.sid);
    }
}

/// Validates the `Mcp-Session-Id` of a non-initialize request: 400 when absent, 404 when unknown,
/// expired, deleted or bound to another identity.
fn check_session(
    env: &McpEnv,
    head: &Head,
    caller: &Caller,
) -> Result<(String, session::Claims), Response> {
    let Some(sid) = head.header("mcp-session-id").map(str::trim) else {
        return Err(rpc_error_response(
            400,
            None,
            ErrorCode::TRANSPORT,
            "Bad Request: Mcp-Session-Id header is required (send initialize first)",
        ));
    };
    let verdict = session::verify(
        &env.settings.session_key,
        sid,
        &caller.identity,
        SystemTime::now(),
        env.settings.session_max_age,
    )
    .and_then(|c| {
        if lock(&env.sessions).is_deleted(sid) {
            Err(SessionError::Deleted)
        } else {
            Ok(c)
        }
    });
    match verdict {
        Ok(c) => Ok((sid.to_string(), c)),
        Err(e) => {
            log::debug!("session refused: {e}");
            Err(rpc_error_response(
                404,
                None,
                ErrorCode::SESSION_NOT_FOUND,
                "Session not found",
            ))
        }
    }
}

/// Answers one request: JSON when acceptable and nothing streams; SSE (when acceptable) for calls
/// of a tool that reports progress made with a progress token, or of a tool that talks to the
/// client while it runs; SSE when the client accepts only SSE.
fn answer(env: &Arc<McpEnv>, accept: &Accept, reply: Reply) -> Response {
    match reply {
        Reply::Now(resp) if accept.json => Response::json(200, &resp.to_value()),
        Reply::Now(resp) => sse_messages(env, vec![resp.to_value()]),
        Reply::Call(id, job) => {
            // A progress token only asks for a stream when the tool has progress to report.
            let def = job.tool.def();
            let wants_stream =
                accept.sse && (def.talks || (job.progress_token.is_some() && def.progress));
            if wants_stream || !accept.json {
                return sse_tool_call(env, id, *job);
            }
            let flag = job.cancel_flag();
            let resp = methods::run_now(id, *job);
            if is_cancelled(&flag) && accept.sse {
                // Cancelled while it ran: an SSE answer that ends without a response is the one
                // shape that says "nothing for this request" to a client accepting both.
                sse_messages(env, Vec::new())
            } else {
                Response::json(200, &resp.to_value())
            }
        }
    }
}

/// A 2025-03-26 batch: every request answered (inline), one JSON array (or SSE events).
fn batch(
    env: &Arc<McpEnv>,
    accept: &Accept,
    caller: &Caller,
    scope: &str,
    version: &str,
    items: Vec<Result<Message, rpc::Invalid>>,
) -> Response {
    if version != "2025-03-26" {
        return rpc_error_response(
            400,
            None,
            ErrorCode::INVALID_REQUEST,
            &format!(
                "Bad Request: batches are only allowed with MCP-Protocol-Version 2025-03-26 (this request uses {version}); send one message per POST"
            ),
        );
    }
    let has_initialize = items
        .iter()
        .any(|m| matches!(m, Ok(Message::Request(r)) if r.method == "initialize"));
    if has_initialize {
        return rpc_error_response(
            400,
            None,
            ErrorCode::INVALID_REQUEST,
            "Bad Request: initialize must not be part of a batch",
        );
    }
    let mut out = Vec::new();
    for item in items {
        match item {
            Ok(Message::Request(req)) => {
                let resp = match methods::request(env, caller, scope, Via::StreamableHttp, req) {
                    Reply::Now(r) => r,
                    Reply::Call(id, job) => methods::run_now(id, *job),
                };
                out.push(resp.to_value());
            }
            Ok(Message::Notification(n)) => methods::notification(env, caller, scope, &n),
            Ok(Message::Response(r)) => {
                client::deliver(env, &caller.identity, r);
            }
            Err(inv) => out.push(
                rpc::Response::error(
                    inv.id,
                    ErrorObject::new(ErrorCode::INVALID_REQUEST, inv.reason),
                )
                .to_value(),
            ),
        }
    }
    if out.is_empty() {
        Response::empty(202)
    } else if accept.json {
        Response::json(200, &Value::Array(out))
    } else {
        sse_messages(env, out)
    }
}

/// An SSE answer that carries finished messages and ends.
fn sse_messages(env: &Arc<McpEnv>, messages: Vec<Value>) -> Response {
    let slot = env.uncounted_stream(StreamKind::McpResponse);
    sse_response(Box::new(move |ctx: &mut StreamCtx<'_>| {
        for m in &messages {
            if !send_message(ctx, &slot, m) {
                return;
            }
        }
    }))
}

/// A tool call answered over SSE. A tool that talks to the client or reports progress runs on a
/// kept tool thread while this stream's worker forwards its messages and progress, sends
/// keep-alives while waiting, and cancels the tool when the client leaves; any other runs here,
/// its reports written as they come (a failed write cancels it), as a JSON answer's tool runs.
fn sse_tool_call(env: &Arc<McpEnv>, id: Id, job: ToolJob) -> Response {
    let slot = env.uncounted_stream(StreamKind::McpResponse);
    let capacity = env.settings.mailbox_capacity.max(1);
    let heartbeat = env.settings.heartbeat;
    sse_response(Box::new(move |ctx: &mut StreamCtx<'_>| {
        let token = job.progress_token.clone();
        let flag = job.cancel_flag();
        let fail = |ctx: &mut StreamCtx<'_>, why: &str| {
            let e = ErrorObject::new(ErrorCode::INTERNAL_ERROR, why);
            send_message(
                ctx,
                &slot,
                &rpc::Response::error(Some(id.clone()), e).to_value(),
            );
        };
        let mut last = f64::NEG_INFINITY;
        let ran = job.run_here(|ev| match ev {
            // Progress must strictly increase; a tool repeating a value is skipped.
            ToolEvent::Progress(p) => match &token {
                Some(t) if p.progress > last => {
                    last = p.progress;
                    send_message(ctx, &slot, &progress_notification(t, &p)) && ctx.flush().is_ok()
                }
                _ => true,
            },
            ToolEvent::Message(m) => send_message(ctx, &slot, &m) && ctx.flush().is_ok(),
            ToolEvent::Finished(_) => true,
        });
        let job = match ran {
            Ok(outcome) => {
                // Cancelled (`notifications/cancelled`, or the client left): nothing more.
                if !is_cancelled(&flag) {
                    send_message(ctx, &slot, &finish_call(id.clone(), &outcome).to_value());
                }
                return;
            }
            Err(job) => *job,
        };
        let Ok((tx, mb)) = mailbox::<ToolEvent>(capacity) else {
            return fail(ctx, "Internal error: out of file descriptors");
        };
        if !job.streamed().spawn(forward_to(tx)) {
            return fail(ctx, "Internal error: could not start the tool");
        }
        loop {
            let event = ctx.wait(&mb, heartbeat);
            // Set here only by `notifications/cancelled` (this loop returns right after setting
            // it): end the stream with nothing more, also while a tool ignores the flag.
            if is_cancelled(&flag) {
                return;
            }
            let sent = match event {
                Wait::Message(ToolEvent::Progress(p)) => match &token {
                    // Progress must strictly increase; a tool repeating a value is skipped.
                    Some(t) if p.progress > last => {
                        last = p.progress;
                        send_message(ctx, &slot, &progress_notification(t, &p))
                    }
                    _ => true,
                },
                Wait::Message(ToolEvent::Message(m)) => send_message(ctx, &slot, &m),
                Wait::Message(ToolEvent::Finished(outcome)) => {
                    send_message(ctx, &slot, &finish_call(id.clone(), &outcome).to_value());
                    return;
                }
                Wait::Timeout => send_comment(ctx, &slot, "keepalive"),
                Wait::Hangup => false,
                Wait::Draining => {
                    cancel(&flag);
                    let e = ErrorObject::new(
                        ErrorCode::TRANSPORT,
                        "Server shutting down; the call was cancelled. Retry shortly.",
                    );
                    let resp = rpc::Response::error(Some(id.clone()), e);
                    send_message(ctx, &slot, &resp.to_value());
                    return;
                }
                Wait::Closed => {
                    return fail(ctx, "Internal error: the tool ended without an answer");
                }
            };
            if !sent {
                // The client left: free this thread now and tell the tool to stop.
                cancel(&flag);
                return;
            }
        }
    }))
}

/// A `text/event-stream` response with the headers every SSE answer carries.
fn sse_response(f: crate::net::stream::StreamFn) -> Response {
    crate::net::stream::response("text/event-stream", f)
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Accel-Buffering", "no")
}

/// An `event: message` with compact JSON.
pub(crate) fn message_bytes(msg: &Value) -> Vec<u8> {
    let data = serde_json::to_string(msg).unwrap_or_default();
    let mut buf = Vec::with_capacity(data.len() + 24);
    // unwrap-free: the event name is a constant without CR/LF.
    let _ = sse::write_event(&mut buf, Some("message"), None, &data);
    buf
}

/// A comment line (keep-alive).
pub(crate) fn comment_bytes(text: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16);
    sse::write_comment(&mut buf, text);
    buf
}

/// Sends `event: message` with compact JSON; false once the client is gone.
pub(crate) fn send_message(ctx: &mut StreamCtx<'_>, slot: &StreamSlot, msg: &Value) -> bool {
    slot.send(ctx, &message_bytes(msg))
}

/// Sends a comment line (keep-alive); false once the client is gone.
pub(crate) fn send_comment(ctx: &mut StreamCtx<'_>, slot: &StreamSlot, text: &str) -> bool {
    slot.send(ctx, &comment_bytes(text))
}

/// 503 when the stream cap is reached.
pub(crate) fn unavailable() -> Response {
    rpc_error_response(
        503,
        None,
        ErrorCode::TRANSPORT,
        "Service Unavailable: too many open streams (MAX_STREAMS); retry later",
    )
    .with_header("Retry-After", "5")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{HeadLimits, parse_head};

    fn head(extra: &str) -> Head {
        let raw = format!("POST /mcp HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        parse_head(raw.as_bytes(), &HeadLimits::default())
            .unwrap()
            .unwrap()
            .1
    }

    #[test]
    fn accept_is_lenient() {
        let a = |h: &str| Accept::from_head(&head(h));
        assert_eq!(
            a(""),
            Accept {
                json: true,
                sse: true
            }
        );
        assert_eq!(
            a("Accept: */*\r\n"),
            Accept {
                json: true,
                sse: true
            }
        );
        assert_eq!(
            a("Accept: application/json\r\n"),
            Accept {
                json: true,
                sse: false
            }
        );
        assert_eq!(
            a("Accept: text/event-stream\r\n"),
            Accept {
                json: false,
                sse: true
            }
        );
        assert_eq!(
            a("Accept: application/json;q=0.9, text/event-stream\r\n"),
            Accept {
                json: true,
                sse: true
            }
        );
        assert_eq!(
            a("Accept: text/html\r\n"),
            Accept {
                json: false,
                sse: false
            }
        );
        assert_eq!(
            a("Accept: text/*\r\n"),
            Accept {
                json: false,
                sse: true
            }
        );
        assert_eq!(
            a("Accept: application/*\r\n"),
            Accept {
                json: true,
                sse: false
            }
        );
    }
}
