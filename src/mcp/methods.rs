//! The MCP method table: one `match` on the method name, the same for every transport.
//!
//! A request either has its answer at once ([`Reply::Now`]) or is a tool call to run
//! ([`Reply::Call`]); the transport decides where it runs (inline for JSON answers, on its own
//! thread for streamed ones) and how the answer travels.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::run::{ToolEvent, ToolJob, call_result};
use super::{
    Caller, Inflight, LATEST_VERSION, McpEnv, SUPPORTED_VERSIONS, Sessions, Via, base64url, client,
};
use crate::rpc::{ErrorCode, ErrorObject, Id, Notification, Request, Response};
use crate::tools::{Fault, LogLevel, ResourceError, Tool, ToolError};

/// What to do with a request.
pub enum Reply {
    /// The response is ready.
    Now(Response),
    /// A tool call to run; its response is [`finish_call`] of the outcome.
    Call(Id, Box<ToolJob>),
}

/// Dispatches one request. `scope` separates in-flight calls of one identity across legacy or
/// stateful sessions (empty in stateless mode).
pub fn request(env: &Arc<McpEnv>, caller: &Caller, scope: &str, via: Via, req: Request) -> Reply {
    let started = std::time::Instant::now();
    let mut reply = dispatch(env, caller, scope, &req);
    match &mut reply {
        Reply::Now(resp) => {
            let outcome = resp
                .outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| fault_of(e.code));
            env.hooks
                .rpc_finished(&req.method, via, outcome, started.elapsed());
        }
        // Reported when the tool finishes, with its outcome (`ToolJob::run_inline`).
        Reply::Call(_, job) => job.rpc = Some((via, started)),
    }
    reply
}

/// Whose fault a JSON-RPC error answer is: the server's only for an internal or transport error.
fn fault_of(code: ErrorCode) -> Fault {
    if code == ErrorCode::INTERNAL_ERROR || code == ErrorCode::TRANSPORT {
        Fault::Server
    } else {
        Fault::Client
    }
}

fn dispatch(env: &Arc<McpEnv>, caller: &Caller, scope: &str, req: &Request) -> Reply {
    let id = req.id.clone();
    let result = match req.method.as_str() {
        "initialize" => {
            client::initialized(env, scope, &caller.identity, req.params.as_ref());
            let sessions = !scope.is_empty() || env.settings.sessions == Sessions::Stateful;
            Ok(initialize_result(negotiate(req.params.as_ref()), sessions))
        }
        "ping" => Ok(json!({})),
        "logging/setLevel" => set_level(env, caller, scope, req.params.as_ref()),
        "tools/list" => tools_list(env, caller, req.params.as_ref()),
        "tools/call" => match tools_call(env, caller, scope, req) {
            Ok(job) => return Reply::Call(id, Box::new(job)),
            Err(e) => Err(e),
        },
        "resources/list" => resources_list(env, req.params.as_ref()),
        "resources/templates/list" => resources_templates(env, req.params.as_ref()),
        "resources/read" => resources_read(env, req.params.as_ref()),
        "resources/subscribe" => subscribe(env, caller, scope, req.params.as_ref()),
        "resources/unsubscribe" => unsubscribe(env, caller, scope, req.params.as_ref()),
        "prompts/list" => {
            reject_cursor(req.params.as_ref()).map(|()| super::prompts::list(&env.registry))
        }
        "prompts/get" => super::prompts::get(&env.registry, req.params.as_ref()),
        "completion/complete" => super::prompts::complete(&env.registry, req.params.as_ref()),
        other => Err(ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    };
    Reply::Now(match result {
        Ok(r) => Response::ok(id, r),
        Err(e) => Response::error(Some(id), e),
    })
}

/// Handles a notification; unknown ones are ignored, as JSON-RPC requires.
pub fn notification(env: &McpEnv, caller: &Caller, scope: &str, n: &Notification) {
    match n.method.as_str() {
        "notifications/initialized" => {}
        "notifications/cancelled" => {
            // `initialize` is never registered as in flight, so it can never be cancelled.
            if let Some(id) = n
                .params
                .as_ref()
                .and_then(|p| p.get("requestId"))
                .and_then(Id::from_value)
            {
                let found = Inflight::cancel(env, &caller.identity, scope, &id);
                log::debug!("cancel {id} by {}: {found} call(s)", caller.identity);
            }
        }
        _ => {}
    }
}

/// Runs a tool call inline and returns its response (the JSON path). Its log messages go to the
/// session's stream when one is open (stateful `GET /mcp`), else nowhere.
pub fn run_now(id: Id, job: ToolJob) -> Response {
    let env = Arc::clone(&job.env);
    let scope = job.peer.scope.clone();
    let outcome = job.run_inline(&mut |ev| {
        if let ToolEvent::Message(m) = ev
            && !scope.is_empty()
        {
            client::notify(&env, &scope, &m);
        }
    });
    finish_call(id, &outcome)
}

/// The response to a finished tool call: tool errors are results with `isError: true`.
pub fn finish_call(id: Id, outcome: &Result<Value, ToolError>) -> Response {
    Response::ok(id, call_result(outcome))
}

/// The version to answer an `initialize` with: the requested one when we speak it, else ours.
pub fn negotiate(params: Option<&Value>) -> &'static str {
    let asked = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    SUPPORTED_VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .copied()
        .unwrap_or(LATEST_VERSION)
}

/// The `InitializeResult` for a negotiated version. Capabilities declare only what is served:
/// tools, resources, prompts, completions and logging; resource subscriptions and list changes
/// when there is a session whose stream can carry them (`sessions`: stateful or legacy).
pub fn initialize_result(version: &str, sessions: bool) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {"subscribe": sessions, "listChanged": sessions},
            "prompts": {"listChanged": false},
            "completions": {},
            "logging": {},
        },
        "serverInfo": {
            "name": "task-mcp",
            "title": "Task MCP",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": INSTRUCTIONS,
    })
}

/// The in-flight request id `params._meta.progressToken`, when present and well-typed.
pub fn progress_token(params: Option<&Value>) -> Option<Value> {
    let t = params?.get("_meta")?.get("progressToken")?;
    (t.is_string() || t.is_i64() || t.is_u64()).then(|| t.clone())
}

/// Lists only the tools the caller's role may call: a model should not be offered tools that
/// can only fail, and the Anthropic connector passes every listed tool to the model.
fn tools_list(env: &McpEnv, caller: &Caller, params: Option<&Value>) -> Result<Value, ErrorObject> {
    reject_cursor(params)?;
    let tools: Vec<Value> = env
        .registry
        .tools()
        .iter()
        .filter(|t| t.def().access <= caller.grants)
        .map(|t| t.def().to_json())
        .collect();
    Ok(json!({ "tools": tools }))
}

fn tools_call(
    env: &Arc<McpEnv>,
    caller: &Caller,
    scope: &str,
    req: &Request,
) -> Result<ToolJob, ErrorObject> {
    let params = req.params_object().ok_or_else(|| {
        invalid_params("tools/call needs params {\"name\": string, \"arguments\"?: object}")
    })?;
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("tools/call needs a string `name`"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(invalid_params("`arguments` must be an object")),
    };
    let tool = env
        .registry
        .find(name)
        .ok_or_else(|| {
            invalid_params(format!("Unknown tool: {name}")).with_data(json!({"tool": name}))
        })?
        .clone();
    let def = tool.def();
    if !super::may_call(env, caller, def) {
        return Err(ErrorObject::new(
            ErrorCode::FORBIDDEN,
            format!(
                "Forbidden: tool {} needs {:?} access; this token grants {:?}",
                def.name, def.access, caller.grants
            ),
        )
        .with_data(json!({"tool": def.name, "required": def.access, "granted": caller.grants})));
    }
    let token = progress_token(req.params.as_ref());
    Ok(job(env, caller, scope, &req.id, tool, args, token))
}

/// A runnable job for a tool the caller may call, registered as in flight under
/// (identity, scope, id) so it can be cancelled.
pub(crate) fn job(
    env: &Arc<McpEnv>,
    caller: &Caller,
    scope: &str,
    id: &Id,
    tool: Arc<dyn Tool>,
    args: Value,
    progress_token: Option<Value>,
) -> ToolJob {
    let guard = Inflight::register(env, &caller.identity, scope, id);
    let peer = client::view(env, scope, &caller.identity);
    ToolJob {
        env: Arc::clone(env),
        tool,
        args,
        identity: caller.identity.clone(),
        progress_token,
        guard,
        trace: crate::observe::trace::current(),
        request: super::request_scope(),
        peer,
        rpc: None,
    }
}

/// `logging/setLevel {level}`: the session's level from now on.
fn set_level(
    env: &McpEnv,
    caller: &Caller,
    scope: &str,
    params: Option<&Value>,
) -> Result<Value, ErrorObject> {
    let name = params
        .and_then(|p| p.get("level"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("logging/setLevel needs a string `level`"))?;
    let level = LogLevel::parse(name).ok_or_else(|| {
        let names: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
        invalid_params(format!(
            "Unknown level {name}; use one of {}",
            names.join(", ")
        ))
    })?;
    client::set_level(env, scope, &caller.identity, level);
    Ok(json!({}))
}

/// The `uri` of a subscribe or unsubscribe.
fn subscription_uri(params: Option<&Value>) -> Result<&str, ErrorObject> {
    params
        .and_then(|p| p.get("uri"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("needs a string `uri`"))
}

/// `resources/subscribe {uri}`: the session hears `notifications/resources/updated` when the
/// resource's content changes. A stateless request has no session and no stream to hear it on:
/// the answer says so in `_meta` rather than pretend.
fn subscribe(
    env: &Arc<McpEnv>,
    caller: &Caller,
    scope: &str,
    params: Option<&Value>,
) -> Result<Value, ErrorObject> {
    let uri = subscription_uri(params)?;
    let contents = env.registry.read_resource(uri).map_err(resource_error)?;
    if scope.is_empty() {
        return Ok(stateless_note());
    }
    let now = serde_json::to_value(contents).unwrap_or_default();
    client::subscribe(env, scope, &caller.identity, uri, &now)
        .map_err(|e| client::subscribe_error(&e))?;
    client::ensure_watcher(env);
    Ok(json!({}))
}

fn unsubscribe(
    env: &McpEnv,
    caller: &Caller,
    scope: &str,
    params: Option<&Value>,
) -> Result<Value, ErrorObject> {
    let uri = subscription_uri(params)?;
    if scope.is_empty() {
        return Ok(stateless_note());
    }
    client::unsubscribe(env, scope, &caller.identity, uri);
    Ok(json!({}))
}

fn stateless_note() -> Value {
    json!({"_meta": {"task-mcp/subscriptions": "not kept: stateless mode has no session and no stream for notifications; use MCP_SESSIONS=stateful or the legacy /sse transport"}})
}

fn resources_list(env: &McpEnv, params: Option<&Value>) -> Result<Value, ErrorObject> {
    let providers = env.registry.resource_providers();
    // Our cursor: `<provider index>:<the provider's cursor or empty>`, base64url-encoded.
    let (mut index, mut inner) = (0usize, None::<String>);
    if let Some(c) = cursor(params)? {
        let bad = || invalid_params("Invalid cursor").with_data(json!({"cursor": c}));
        let raw = base64url::decode(c).ok_or_else(bad)?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (i, rest) = text.split_once(':').ok_or_else(bad)?;
        index = i.parse().map_err(|_| bad())?;
        if index >= providers.len() {
            return Err(bad());
        }
        inner = (!rest.is_empty()).then(|| rest.to_string());
    }
    let mut resources = Vec::new();
    let mut next = None;
    while let Some(p) = providers.get(index) {
        let (items, more) = p.list(inner.as_deref()).map_err(resource_error)?;
        resources.extend(
            items
                .into_iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default()),
        );
        match more {
            Some(c) => {
                next = Some(base64url::encode(format!("{index}:{c}").as_bytes()));
                break;
            }
            None => {
                index += 1;
                inner = None;
            }
        }
    }
    let mut out = json!({ "resources": resources });
    if let Some(n) = next {
        out["nextCursor"] = Value::String(n);
    }
    Ok(out)
}

fn resources_templates(env: &McpEnv, params: Option<&Value>) -> Result<Value, ErrorObject> {
    reject_cursor(params)?;
    let templates: Vec<Value> = env
        .registry
        .resource_providers()
        .iter()
        .flat_map(|p| p.templates())
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .collect();
    Ok(json!({ "resourceTemplates": templates }))
}

fn resources_read(env: &McpEnv, params: Option<&Value>) -> Result<Value, ErrorObject> {
    let uri = params
        .and_then(|p| p.get("uri"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("resources/read needs a string `uri`"))?;
    let contents = env.registry.read_resource(uri).map_err(resource_error)?;
    Ok(json!({ "contents": contents }))
}

fn resource_error(e: ResourceError) -> ErrorObject {
    match e {
        ResourceError::NotFound(uri) => ErrorObject::new(
            ErrorCode::RESOURCE_NOT_FOUND,
            format!("Resource not found: {uri}"),
        )
        .with_data(json!({ "uri": uri })),
        ResourceError::Invalid(why) => invalid_params(why),
        ResourceError::Internal(why) => ErrorObject::new(ErrorCode::INTERNAL_ERROR, why),
    }
}

fn cursor(params: Option<&Value>) -> Result<Option<&str>, ErrorObject> {
    match params.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_params("`cursor` must be a string")),
    }
}

/// Single-page lists issue no cursors, so any cursor is one we did not issue.
fn reject_cursor(params: Option<&Value>) -> Result<(), ErrorObject> {
    match cursor(params)? {
        None => Ok(()),
        Some(c) => Err(invalid_params("Invalid cursor").with_data(json!({"cursor": c}))),
    }
}

fn invalid_params(msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(ErrorCode::INVALID_PARAMS, msg)
}

/// What `initialize` tells the model about using this server.
pub const INSTRUCTIONS: &str = "\
task-mcp manages OpenSpec changes in one repository. A change is a folder \
openspec/changes/<slug>/ holding proposal.md (why and what), tasks.md (a checklist) and \
spec deltas under specs/<capability>/spec.md (## ADDED / MODIFIED / REMOVED / RENAMED \
Requirements, each requirement with at least one #### Scenario:).\n\
Workflow:\n\
1. change_open {slug, title?}: create or reopen a change and take its lock. Slugs are \
kebab-case (a-z, 0-9, -), 3 to 64 characters.\n\
2. change_write: write proposal.md, then tasks.md, then one delta per affected capability. \
Read what exists first (resources/list; change://<slug>/proposal, change://<slug>/tasks, \
change://<slug>/delta/<capability>) so MODIFIED requirements repeat the full text.\n\
3. change_validate {slug}: fix every reported issue and validate again until it passes.\n\
4. change_archive {slug}: merge the deltas into openspec/specs/ and move the change to the \
archive, only after the work is done and validation passes.\n\
Tips: tool results are JSON in structuredContent (mirrored as text). On isError, read \
error.code and error.hint and act on them: ELOCKED means another client holds the lock (wait or \
ask its owner), EBADSLUG means fix the slug, ERESPONSE_TOO_LARGE means ask for less. Tools you \
are not listed are not available to your token.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_a_supported_version_else_answers_the_latest() {
        for v in SUPPORTED_VERSIONS {
            assert_eq!(negotiate(Some(&json!({"protocolVersion": v}))), v);
        }
        assert_eq!(
            negotiate(Some(&json!({"protocolVersion": "2026-07-28"}))),
            LATEST_VERSION
        );
        assert_eq!(
            negotiate(Some(&json!({"protocolVersion": 5}))),
            LATEST_VERSION
        );
        assert_eq!(negotiate(None), LATEST_VERSION);
    }

    #[test]
    fn initialize_declares_what_is_served() {
        let r = initialize_result("2025-06-18", false);
        let caps = r["capabilities"].as_object().unwrap();
        let mut keys: Vec<_> = caps.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["completions", "logging", "prompts", "resources", "tools"]
        );
        assert_eq!(r["capabilities"]["resources"]["subscribe"], false);
        let r = initialize_result("2025-06-18", true);
        assert_eq!(r["capabilities"]["resources"]["subscribe"], true);
        assert_eq!(r["serverInfo"]["name"], "task-mcp");
        assert_eq!(r["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        for step in [
            "change_open",
            "change_write",
            "change_validate",
            "change_archive",
        ] {
            assert!(r["instructions"].as_str().unwrap().contains(step), "{step}");
        }
    }

    #[test]
    fn progress_tokens_must_be_strings_or_integers() {
        let p = |t: Value| progress_token(Some(&json!({"_meta": {"progressToken": t}})));
        assert_eq!(p(json!("a")), Some(json!("a")));
        assert_eq!(p(json!(3)), Some(json!(3)));
        assert_eq!(p(json!(1.5)), None);
        assert_eq!(p(json!(null)), None);
        assert_eq!(progress_token(Some(&json!({}))), None);
    }
}
