//! Running one tool call: inline (JSON answers, and streamed answers of tools that neither talk
//! to the client nor report progress) or on a tool thread, with the cancel flag, progress, the
//! response-size limit, panics contained, hooks and audit.
//!
//! The thread form exists so the stream's worker can keep sending heartbeats and notice a hang-up
//! while a long tool blocks: the tool reports through a closure (usually a mailbox sender), and
//! the worker sets the cancel flag when the client leaves.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::client::{self, PeerView};
use super::{AuditEvent, InflightGuard, McpEnv, spawn_named};
use crate::net::stream::{MailSender, SendError};
use crate::tools::{Access, AskError, ClientLink, LogLevel, Progress, Tool, ToolCtx, ToolError};

/// A tool call ready to run.
pub struct ToolJob {
    pub(crate) env: Arc<McpEnv>,
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) args: Value,
    pub(crate) identity: String,
    /// `params._meta.progressToken`, when the client asked for progress.
    pub(crate) progress_token: Option<Value>,
    /// Holds the call's place in the in-flight table and its cancel flag.
    pub(crate) guard: InflightGuard,
    /// The span current when the call was accepted, so the tool's span has the request's span
    /// as parent even when the tool runs on its own thread.
    pub(crate) trace: Option<crate::observe::trace::ActiveSpan>,
    /// The request that asked for the call (for audit records on the tool's own thread).
    pub(crate) request: Option<super::RequestScope>,
    /// What the call knows of its session: log level, client capabilities, whether it streams.
    pub(crate) peer: PeerView,
    /// For a JSON-RPC `tools/call`: its transport and when it arrived, so the request is counted
    /// when the tool finishes (`McpHooks::rpc_finished`).
    pub(crate) rpc: Option<(super::Via, Instant)>,
}

/// What a tool running on its own thread reports.
#[derive(Debug)]
pub enum ToolEvent {
    /// A progress report.
    Progress(Progress),
    /// A message for the client: a log notification, or a request whose answer the tool awaits.
    Message(Value),
    /// The call ended.
    Finished(Result<Value, ToolError>),
}

impl ToolJob {
    /// Marks the call as answered on a stream the client reads while it runs: only then can the
    /// tool send requests to the client.
    pub(crate) fn streamed(mut self) -> Self {
        self.peer.streamed = true;
        self
    }

    /// Sets the cancel flag (client hang-up, `notifications/cancelled`, drain).
    pub fn cancel_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.guard.cancel)
    }

    /// Runs the tool on the current thread; what it reports goes to `sink`.
    pub fn run_inline(self, sink: &mut dyn FnMut(ToolEvent)) -> Result<Value, ToolError> {
        let env = Arc::clone(&self.env);
        let def = self.tool.def();
        let _trace = self.trace.map(crate::observe::trace::ActiveSpan::enter);
        env.hooks.tool_started(def.name);
        let started = Instant::now();
        let mut link = Link {
            env: &env,
            identity: &self.identity,
            peer: &self.peer,
            cancelled: &self.guard.cancel,
            sink,
        };
        let mut ctx = ToolCtx {
            identity: &self.identity,
            now: SystemTime::now(),
            cancelled: &self.guard.cancel,
            client: &mut link,
        };
        // Every transport comes through here: nothing runs (or writes) before the arguments fit
        // the schema the tool declares.
        let checked = crate::tools::schema::check(&def.input_schema, &self.args);
        let run = || match checked {
            Ok(()) => self.tool.call(&self.args, &mut ctx),
            Err(e) => Err(e.into()),
        };
        let outcome = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
            log::error!("tool {} panicked", def.name);
            Err(ToolError::new("EINTERNAL", "the tool failed unexpectedly")
                .hint("Retry; if it persists, report it to the server operator."))
        });
        let outcome = outcome.and_then(|v| limit_size(v, env.settings.max_response_bytes));
        let elapsed = started.elapsed();
        env.hooks
            .tool_finished(def.name, outcome.as_ref().map(|_| ()), elapsed);
        if let Some((via, arrived)) = self.rpc {
            let ended = outcome.as_ref().map(|_| ()).map_err(ToolError::fault);
            env.hooks
                .rpc_finished("tools/call", via, ended, arrived.elapsed());
        }
        if def.access >= Access::Write {
            env.hooks.audit(&AuditEvent::ToolCall {
                identity: &self.identity,
                tool: def.name,
                arguments: &self.args,
                ok: outcome.is_ok(),
                error_code: outcome.as_ref().err().map(|e| e.code.as_str()),
                elapsed,
            });
        }
        outcome
    }

    /// Runs a streamed call on this (the stream's) thread when its tool neither talks to the
    /// client nor reports progress, as a JSON answer's tool runs on its worker: `on_event`
    /// writes each report (a log message) as it comes and returns false once the client is gone,
    /// which cancels the call. A tool that talks waits for answers that arrive by other
    /// requests, and one that reports progress runs long: either needs the stream's worker free to
    /// send heartbeats and see a hang-up, so it comes back as `Err(job)`, to run with
    /// [`ToolJob::spawn`].
    ///
    /// # Errors
    /// The job itself, when its tool talks or reports progress.
    pub(crate) fn run_here(
        self,
        mut on_event: impl FnMut(ToolEvent) -> bool,
    ) -> Result<Result<Value, ToolError>, Box<ToolJob>> {
        let def = self.tool.def();
        if def.talks || def.progress {
            return Err(Box::new(self));
        }
        let flag = self.cancel_flag();
        // The stream runs after its handler returned: the audit hook needs the request back.
        let scope = self.request.clone();
        let job = self.streamed();
        Ok(super::with_request_scope(scope, || {
            job.run_inline(&mut |ev| {
                if !on_event(ev) {
                    cancel(&flag);
                }
            })
        }))
    }

    /// Runs the tool on a new named thread, reporting through `on_event` (progress while it
    /// runs, then exactly one `Finished`). `false` when no thread could be started; the job is
    /// then dropped unrun.
    pub fn spawn(self, mut on_event: impl FnMut(ToolEvent) + Send + 'static) -> bool {
        let tool = self.tool.def().name;
        let env = Arc::clone(&self.env);
        // The audit hook reads the request's address and id from the thread it runs on.
        let scope = self.request.clone();
        let job: crate::net::pool::Job = Box::new(move || {
            let result = super::with_request_scope(scope, || self.run_inline(&mut on_event));
            on_event(ToolEvent::Finished(result));
        });
        // A kept thread when one is free, else a thread of its own.
        match env.tool_threads.submit(job) {
            Ok(()) => true,
            Err(job) => spawn_named(format!("tool-{tool}"), job),
        }
    }
}

/// The [`ClientLink`] of a running call: filters log messages at the session's level and
/// hands every message to the transport's `sink`.
struct Link<'a> {
    env: &'a McpEnv,
    identity: &'a str,
    peer: &'a PeerView,
    cancelled: &'a std::sync::atomic::AtomicBool,
    sink: &'a mut dyn FnMut(ToolEvent),
}

impl ClientLink for Link<'_> {
    fn progress(&mut self, p: Progress) {
        (self.sink)(ToolEvent::Progress(p));
    }

    fn log(&mut self, level: LogLevel, data: Value) {
        if level >= self.peer.level {
            (self.sink)(ToolEvent::Message(client::log_notification(level, data)));
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, AskError> {
        let sink = &mut *self.sink;
        client::ask(
            self.env,
            self.identity,
            self.peer,
            self.cancelled,
            method,
            params,
            &mut |m| sink(ToolEvent::Message(m)),
        )
    }
}

/// Forwards tool events into a mailbox: progress is dropped when the mailbox is full (the
/// reader is slow and a later report supersedes it); messages and the final event wait for room.
pub fn forward_to(tx: MailSender<ToolEvent>) -> impl FnMut(ToolEvent) + Send + 'static {
    move |ev| match ev {
        ToolEvent::Progress(_) => {
            let _ = tx.send(ev);
        }
        ev => {
            let mut ev = Some(ev);
            while let Some(e) = ev.take() {
                match tx.send_back(e) {
                    Ok(()) | Err((SendError::Closed, _)) => {}
                    Err((SendError::Full, e)) => {
                        ev = Some(e);
                        std::thread::sleep(FULL_MAILBOX_RETRY);
                    }
                }
            }
        }
    }
}

/// The `tools/call` result for a tool outcome. A tool without an output schema returns its
/// content blocks (an array), sent as they are.
pub fn call_result(outcome: &Result<Value, ToolError>) -> Value {
    match outcome {
        Ok(Value::Array(blocks)) => json!({"content": blocks, "isError": false}),
        Ok(v) => {
            let structured = match v {
                Value::Object(_) => v.clone(),
                other => json!({ "value": other }),
            };
            json!({
                "content": [{"type": "text", "text": compact(v)}],
                "structuredContent": structured,
                "isError": false,
            })
        }
        Err(e) => {
            let structured = json!({ "error": error_object(e) });
            json!({
                "content": [{"type": "text", "text": compact(&structured)}],
                "structuredContent": structured,
                "isError": true,
            })
        }
    }
}

/// The error object of a tool error: `{code, message, hint, details}` (hint and details `null`
/// when absent, so every error has the same keys).
pub fn error_object(e: &ToolError) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::String(e.code.clone()));
    m.insert("message".into(), Value::String(e.message.clone()));
    // Absent, not null, when there is none: clients test for presence.
    if let Some(h) = &e.hint {
        m.insert("hint".into(), Value::String(h.clone()));
    }
    if let Some(d) = &e.details {
        m.insert("details".into(), d.clone());
    }
    Value::Object(m)
}

/// A `notifications/progress` message for `token`.
pub fn progress_notification(token: &Value, p: &Progress) -> Value {
    let mut params = Map::new();
    params.insert("progressToken".into(), token.clone());
    params.insert("progress".into(), json!(p.progress));
    if let Some(t) = p.total {
        params.insert("total".into(), json!(t));
    }
    if let Some(m) = &p.message {
        params.insert("message".into(), Value::String(m.clone()));
    }
    json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})
}

fn limit_size(v: Value, max_bytes: usize) -> Result<Value, ToolError> {
    let len = serde_json::to_vec(&v).map_or(0, |b| b.len());
    if len <= max_bytes {
        return Ok(v);
    }
    Err(ToolError::new(
        "ERESPONSE_TOO_LARGE",
        format!("the result is {len} bytes, above the server's limit of {max_bytes} bytes"),
    )
    .hint("Ask for less: read one file or section at a time, or narrow the query.")
    .details(json!({"bytes": len, "limitBytes": max_bytes})))
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// How long a finished tool waits before retrying a full mailbox.
const FULL_MAILBOX_RETRY: Duration = Duration::from_millis(5);

/// Sets a cancel flag (shared helper for stream loops).
pub(crate) fn cancel(flag: &std::sync::atomic::AtomicBool) {
    flag.store(true, Ordering::Relaxed);
}

/// Whether a cancel flag is set. Once a client has cancelled a request it gets nothing more for
/// it (no progress, no response): the MCP SDK clients report a message for a request they have
/// dropped as a transport error.
pub(crate) fn is_cancelled(flag: &std::sync::atomic::AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}
