//! Running one tool call: inline (JSON answers) or on its own thread (streamed answers), with the
//! cancel flag, progress, the response-size limit, panics contained, hooks and audit.
//!
//! The thread form exists so a stream thread can keep sending heartbeats and notice a hang-up
//! while the tool blocks: the tool reports through a closure (usually a mailbox sender), and the
//! stream thread sets the cancel flag when the client leaves.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::{AuditEvent, InflightGuard, McpEnv, spawn_named};
use crate::stream::{MailSender, SendError};
use crate::tools::{Access, Progress, Tool, ToolCtx, ToolError};

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
    pub(crate) trace: Option<crate::trace::ActiveSpan>,
    /// The request that asked for the call (for audit records on the tool's own thread).
    pub(crate) request: Option<super::RequestScope>,
}

/// What a tool running on its own thread reports.
#[derive(Debug)]
pub enum ToolEvent {
    /// A progress report.
    Progress(Progress),
    /// The call ended.
    Finished(Result<Value, ToolError>),
}

impl ToolJob {
    /// The tool's listed name.
    pub fn tool_name(&self) -> &'static str {
        self.tool.def().name
    }

    /// Sets the cancel flag (client hang-up, `notifications/cancelled`, drain).
    pub fn cancel_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.guard.cancel)
    }

    /// Runs the tool on the current thread.
    pub fn run_inline(self, progress: &mut dyn FnMut(Progress)) -> Result<Value, ToolError> {
        let env = Arc::clone(&self.env);
        let def = self.tool.def();
        let _trace = self.trace.map(crate::trace::ActiveSpan::enter);
        env.hooks.tool_started(def.name);
        let started = Instant::now();
        let mut ctx = ToolCtx {
            identity: &self.identity,
            now: SystemTime::now(),
            cancelled: &self.guard.cancel,
            progress,
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
        env.hooks.tool_finished(def.name, outcome.is_ok(), elapsed);
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

    /// Runs the tool on a new named thread, reporting through `on_event` (progress while it
    /// runs, then exactly one `Finished`). `false` when no thread could be started; the job is
    /// then dropped unrun.
    pub fn spawn(self, mut on_event: impl FnMut(ToolEvent) + Send + 'static) -> bool {
        let name = format!("tool-{}", self.tool.def().name);
        // The audit hook reads the request's address and id from the thread it runs on.
        let scope = self.request.clone();
        spawn_named(name, move || {
            let result = super::with_request_scope(scope, || {
                let mut progress = |p: Progress| on_event(ToolEvent::Progress(p));
                self.run_inline(&mut progress)
            });
            on_event(ToolEvent::Finished(result));
        })
    }
}

/// Forwards tool events into a mailbox: progress is dropped when the mailbox is full (the
/// reader is slow and a later report supersedes it); the final event waits for room.
pub fn forward_to(tx: MailSender<ToolEvent>) -> impl FnMut(ToolEvent) + Send + 'static {
    move |ev| match ev {
        ToolEvent::Progress(_) => {
            let _ = tx.send(ev);
        }
        ToolEvent::Finished(result) => loop {
            // `send` consumes the message, so a retry sends a copy.
            match tx.send(ToolEvent::Finished(result.clone())) {
                Ok(()) | Err(SendError::Closed) => break,
                Err(SendError::Full) => std::thread::sleep(FULL_MAILBOX_RETRY),
            }
        },
    }
}

/// The `tools/call` result for a tool outcome.
pub fn call_result(outcome: &Result<Value, ToolError>) -> Value {
    match outcome {
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
