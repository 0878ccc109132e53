//! The seed's `{"tool", "input"}` APIs: `POST /sse` answers with SSE (`event: result` or
//! `event: error`), `POST /mcp` with NDJSON (`start`, `result` or `error`, `end`). The body
//! decides: an object with `tool` and no `jsonrpc` is a seed call, anything else is MCP.
//!
//! A tool that reports progress (or talks to the client) runs on a tool thread while the
//! stream's worker sends heartbeats (SSE comments, or `{"type":"heartbeat"}` lines) and progress
//! (`event: progress`, `{"type":"progress"}`), and cancels the tool when the client hangs up;
//! any other tool runs on the worker itself, as for a JSON answer. Request faults (bad body, unknown tool, a role
//! that may not call the tool, the stream cap) are answered before streaming with an HTTP status
//! and the seed's error JSON.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::methods;
use super::run::{ToolEvent, ToolJob, cancel, error_object, forward_to, is_cancelled};
use super::session::random_hex;
use super::{Caller, McpEnv, StreamKind, StreamSlot, rpc_error_response};
use crate::http::{Head, Response};
use crate::net::stream::{StreamCtx, Wait, mailbox};
use crate::rpc::{ErrorCode, Id};
use crate::tools::ToolError;
use crate::{ndjson, sse};

/// The seed API's version, in every seed body.
pub const API_VERSION: &str = "1.0.0";

/// True for a seed call body: a JSON object with `tool` and without `jsonrpc`.
pub fn is_seed_call(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.contains_key("tool") && !o.contains_key("jsonrpc"))
}

/// `POST /sse`: a seed `{tool, input}` call gets its SSE answer; anything else (a JSON-RPC
/// `initialize` in particular, or no body) gets `405 Allow: GET`, which makes MCP clients given
/// the `/sse` URL fall back to the legacy transport (brief §2.9).
pub fn post_sse(env: &Arc<McpEnv>, head: &Head, body: &[u8], caller: &Caller) -> Response {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    match value {
        Some(v) if is_seed_call(&v) => {
            if !super::json_content_type(head) {
                return error_response(
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "Content-Type must be application/json",
                    "Send the body as JSON with Content-Type: application/json.",
                );
            }
            start(env, &v, caller, Framing::Sse)
        }
        _ => rpc_error_response(
            405,
            None,
            ErrorCode::TRANSPORT,
            "Method not allowed: POST /sse takes only {\"tool\",\"input\"} calls; MCP clients GET /sse (legacy) or POST /mcp",
        )
        .with_header("Allow", "GET"),
    }
}

/// `POST /mcp` with a seed call (the caller checked [`is_seed_call`]): NDJSON lines.
pub fn post_ndjson(env: &Arc<McpEnv>, body: &Value, caller: &Caller) -> Response {
    start(env, body, caller, Framing::Ndjson)
}

/// The seed's error body, the shape of every HTTP error answer:
/// `{"apiVersion","error":{code,message,hint},"requestId","timestamp","correlationId"}` (the ids
/// are the request's, from the scope the router sets; absent outside a request).
pub fn error_response(status: u16, code: &str, message: &str, hint: &str) -> Response {
    let mut body = json!({
        "apiVersion": API_VERSION,
        "error": {"code": code, "message": message, "hint": hint},
        "timestamp": rfc3339(SystemTime::now()),
    });
    if let Some(id) = super::request_scope().and_then(|s| s.request_id) {
        body["requestId"] = Value::String(id.clone());
        body["correlationId"] = Value::String(id);
    }
    Response::json(status, &body)
}

/// Formats a time as RFC 3339 UTC with milliseconds (`2025-01-01T00:00:00.000Z`).
pub use crate::clock::rfc3339;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Sse,
    Ndjson,
}

fn start(env: &Arc<McpEnv>, body: &Value, caller: &Caller, framing: Framing) -> Response {
    let Some(name) = body.get("tool").and_then(Value::as_str) else {
        return error_response(
            400,
            "BAD_REQUEST",
            "`tool` must be a string",
            "Send {\"tool\": \"change.open\", \"input\": {...}}.",
        );
    };
    let input = match body.get("input") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return error_response(
                400,
                "BAD_REQUEST",
                "`input` must be an object",
                "Send {\"tool\": \"...\", \"input\": {...}}.",
            );
        }
    };
    let Some(tool) = env.registry.find(name).cloned() else {
        return error_response(
            404,
            "TOOL_NOT_FOUND",
            &format!("Unknown tool: {name}"),
            "Use a listed tool name (tools/list) or its dotted alias such as change.open.",
        );
    };
    let def = tool.def();
    if !super::may_call(env, caller, def) {
        return error_response(
            403,
            "FORBIDDEN",
            &format!("tool {} needs {:?} access", def.name, def.access),
            "Use a token whose role may call this tool.",
        );
    }
    let kind = match framing {
        Framing::Sse => StreamKind::SeedSse,
        Framing::Ndjson => StreamKind::SeedNdjson,
    };
    let Some(slot) = env.claim_stream(kind) else {
        return error_response(
            503,
            "TOO_MANY_STREAMS",
            "too many open streams",
            "Retry in a few seconds.",
        )
        .with_header("Retry-After", "5");
    };
    // Seed calls have no JSON-RPC id; a random one keeps the in-flight key unique.
    let id = Id::Str(random_hex(8).unwrap_or_default());
    let job = methods::job(env, caller, "seed", &id, tool, input, None);
    let requested = name.to_string();
    let f =
        Box::new(move |ctx: &mut StreamCtx<'_>| run_stream(ctx, &slot, job, &requested, framing));
    match framing {
        Framing::Sse => crate::net::stream::response("text/event-stream", f)
            .with_header("Cache-Control", "no-cache")
            .with_header("X-Accel-Buffering", "no"),
        Framing::Ndjson => crate::net::stream::response("application/x-ndjson", f)
            .with_header("Cache-Control", "no-cache"),
    }
}

fn run_stream(
    ctx: &mut StreamCtx<'_>,
    slot: &StreamSlot,
    job: ToolJob,
    requested: &str,
    framing: Framing,
) {
    let env = Arc::clone(&job.env);
    let flag = job.cancel_flag();
    let request_id = job.request.as_ref().and_then(|r| r.request_id.clone());
    let out = |ctx: &mut StreamCtx<'_>, frame: Frame<'_>| -> bool {
        let bytes = encode(framing, requested, request_id.as_deref(), frame);
        bytes.is_empty() || slot.send(ctx, &bytes)
    };
    if !out(ctx, Frame::Start) {
        return;
    }
    let finish = |ctx: &mut StreamCtx<'_>, r: &Result<Value, ToolError>| {
        if out(ctx, Frame::Finished(r)) {
            out(ctx, Frame::End);
        }
    };
    let ran = job.run_here(|ev| match ev {
        ToolEvent::Progress(p) => out(ctx, Frame::Progress(&p)) && ctx.flush().is_ok(),
        // The seed frames have no log type, and requests need a JSON-RPC peer.
        ToolEvent::Message(_) | ToolEvent::Finished(_) => true,
    });
    let job = match ran {
        Ok(r) => {
            if !is_cancelled(&flag) {
                finish(ctx, &r);
            }
            return;
        }
        Err(job) => *job,
    };
    let Ok((tx, mb)) = mailbox::<ToolEvent>(env.settings.mailbox_capacity.max(1)) else {
        return finish(
            ctx,
            &Err(ToolError::new("EINTERNAL", "out of file descriptors")),
        );
    };
    if !job.spawn(forward_to(tx)) {
        return finish(
            ctx,
            &Err(ToolError::new("EINTERNAL", "could not start the tool")),
        );
    }
    loop {
        let sent = match ctx.wait(&mb, env.settings.heartbeat) {
            Wait::Message(ToolEvent::Progress(p)) => out(ctx, Frame::Progress(&p)),
            // The seed frames have no log type, and requests need a JSON-RPC peer.
            Wait::Message(ToolEvent::Message(_)) => true,
            Wait::Message(ToolEvent::Finished(r)) => return finish(ctx, &r),
            Wait::Timeout => out(ctx, Frame::Heartbeat),
            Wait::Hangup => false,
            Wait::Draining => {
                cancel(&flag);
                let e = ToolError::new("ESHUTDOWN", "the server is shutting down")
                    .hint("Retry shortly.");
                return finish(ctx, &Err(e));
            }
            Wait::Closed => {
                return finish(
                    ctx,
                    &Err(ToolError::new("EINTERNAL", "the tool gave no answer")),
                );
            }
        };
        if !sent {
            cancel(&flag);
            return;
        }
    }
}

enum Frame<'a> {
    Start,
    Progress(&'a crate::tools::Progress),
    Heartbeat,
    Finished(&'a Result<Value, ToolError>),
    End,
}

fn encode(framing: Framing, tool: &str, request_id: Option<&str>, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    let ts = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let progress = |p: &crate::tools::Progress| {
        let mut v = json!({"progress": p.progress});
        if let Some(t) = p.total {
            v["total"] = json!(t);
        }
        if let Some(m) = &p.message {
            v["message"] = json!(m);
        }
        v
    };
    // Writes cannot fail: every value is a serde_json Value and event names are constants.
    match (framing, frame) {
        (Framing::Sse, Frame::Start | Frame::End) => {}
        (Framing::Sse, Frame::Heartbeat) => sse::write_comment(&mut buf, "heartbeat"),
        (Framing::Sse, Frame::Progress(p)) => {
            let data = json!({"apiVersion": API_VERSION, "tool": tool, "progress": progress(p)});
            let _ = sse::write_event(&mut buf, Some("progress"), None, &data.to_string());
        }
        (Framing::Sse, Frame::Finished(Ok(v))) => {
            let data = json!({"apiVersion": API_VERSION, "tool": tool, "result": v});
            let _ = sse::write_event(&mut buf, Some("result"), None, &data.to_string());
        }
        (Framing::Sse, Frame::Finished(Err(e))) => {
            let mut data = json!({"apiVersion": API_VERSION, "tool": tool, "error": error_object(e),
                                  "timestamp": rfc3339(SystemTime::now())});
            if let Some(id) = request_id {
                data["requestId"] = json!(id);
            }
            let _ = sse::write_event(&mut buf, Some("error"), None, &data.to_string());
        }
        (Framing::Ndjson, Frame::Start) => {
            let line =
                json!({"type": "start", "ts": ts(), "tool": tool, "apiVersion": API_VERSION});
            let _ = ndjson::write_line(&mut buf, &line);
        }
        (Framing::Ndjson, Frame::Heartbeat) => {
            let _ = ndjson::write_line(&mut buf, &json!({"type": "heartbeat", "ts": ts()}));
        }
        (Framing::Ndjson, Frame::Progress(p)) => {
            let line = json!({"type": "progress", "progress": progress(p)});
            let _ = ndjson::write_line(&mut buf, &line);
        }
        (Framing::Ndjson, Frame::Finished(Ok(v))) => {
            let _ = ndjson::write_line(&mut buf, &json!({"type": "result", "result": v}));
        }
        (Framing::Ndjson, Frame::Finished(Err(e))) => {
            let mut line = json!({"type": "error", "error": error_object(e), "ts": ts(),
                                  "timestamp": rfc3339(SystemTime::now())});
            if let Some(id) = request_id {
                line["requestId"] = json!(id);
            }
            let _ = ndjson::write_line(&mut buf, &line);
        }
        (Framing::Ndjson, Frame::End) => {
            let _ = ndjson::write_line(&mut buf, &json!({"type": "end", "ts": ts()}));
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_bodies_are_told_apart_from_json_rpc() {
        assert!(is_seed_call(&json!({"tool": "change.open", "input": {}})));
        assert!(!is_seed_call(
            &json!({"jsonrpc": "2.0", "tool": "x", "id": 1, "method": "m"})
        ));
        assert!(!is_seed_call(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"})
        ));
        assert!(!is_seed_call(&json!([{"tool": "x"}])));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = |s: u64, ms: u32| UNIX_EPOCH + std::time::Duration::new(s, ms * 1_000_000);
        assert_eq!(rfc3339(t(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(t(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(t(1_735_689_599, 999)), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn sse_frames_follow_the_seed_shapes() {
        let ok = encode(
            Framing::Sse,
            "change.open",
            None,
            Frame::Finished(&Ok(json!({"a": 1}))),
        );
        let evs = sse::Reader::default().feed(&ok);
        assert_eq!(evs[0].event, "result");
        let v: Value = serde_json::from_str(&evs[0].data).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "1.0.0", "tool": "change.open", "result": {"a": 1}})
        );
        let err = ToolError::new("EBAD", "bad").hint("fix");
        let e = encode(Framing::Sse, "x", Some("req-1"), Frame::Finished(&Err(err)));
        let evs = sse::Reader::default().feed(&e);
        assert_eq!(evs[0].event, "error");
        let v: Value = serde_json::from_str(&evs[0].data).unwrap();
        assert_eq!(v["error"]["code"], "EBAD");
        assert_eq!(v["error"]["hint"], "fix");
        assert_eq!(v["apiVersion"], "1.0.0");
        assert_eq!(v["requestId"], "req-1");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(!evs[0].data.contains("null"), "{}", evs[0].data);
    }

    #[test]
    fn ndjson_error_and_progress_lines_carry_no_nulls() {
        let err = ToolError::new("EBAD", "bad");
        let line = encode(Framing::Ndjson, "x", Some("r"), Frame::Finished(&Err(err)));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["requestId"].as_str()),
            (Some("error"), Some("r"))
        );
        assert!(v["timestamp"].is_string());
        let p = crate::tools::Progress {
            progress: 1.0,
            total: None,
            message: None,
        };
        let line = encode(Framing::Ndjson, "x", None, Frame::Progress(&p));
        for bytes in [
            &line[..],
            &encode(Framing::Ndjson, "x", Some("r"), Frame::Start),
        ] {
            assert!(!String::from_utf8_lossy(bytes).contains("null"));
        }
    }
}
