//! The tool registry: what `tools/list` shows and what `tools/call` (and the seed's `{tool,input}`
//! APIs) dispatch to.
//!
//! A tool is a plain value implementing [`Tool`]. The transports know nothing of OpenSpec: they
//! look a tool up by name or alias, check the caller's role against [`ToolDef::access`], and call
//! it with a [`ToolCtx`] that carries the caller's identity, a cancel flag and a [`ClientLink`]
//! (progress, log messages and requests to the client, however the transport carries them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};

pub mod conformance;
pub mod openspec;
pub mod options;
pub(crate) mod prompts;
pub mod resources;
pub mod schema;
pub mod testing;

pub use crate::access::Access;

/// MCP tool annotations (hints for the client; never trusted for security).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    /// The tool does not modify its environment.
    pub read_only_hint: bool,
    /// The tool may perform destructive updates.
    pub destructive_hint: bool,
    /// Calling it again with the same arguments has no further effect.
    pub idempotent_hint: bool,
    /// The tool reaches outside this server (never, for ours).
    pub open_world_hint: bool,
}

/// The static description of a tool.
#[derive(Clone, Debug)]
pub struct ToolDef {
    /// The listed name; matches `^[A-Za-z0-9_-]{1,64}$` so every client accepts it.
    pub name: &'static str,
    /// The seed's dotted name (`change.open`), accepted by `tools/call` and the seed APIs.
    pub alias: Option<&'static str>,
    /// A short human title.
    pub title: &'static str,
    /// What the tool does, written for a model.
    pub description: &'static str,
    /// JSON Schema of the arguments; an object root with no top-level `oneOf/anyOf/allOf`.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`; an object root. `Null` for a tool that returns its
    /// content blocks instead (see [`Tool::call`]).
    pub output_schema: Value,
    /// Hints for clients.
    pub annotations: Annotations,
    /// The role needed to call it.
    pub access: Access,
    /// The tool reports progress. Only then is a call carrying a `progressToken` answered as an
    /// SSE stream; otherwise a client that accepts JSON gets the cheaper JSON answer.
    pub progress: bool,
    /// The tool talks to the client while it runs (log messages it exists to send, or requests
    /// such as `sampling/createMessage`): its calls are answered as SSE whenever the client
    /// accepts it, since the messages need the call's own stream.
    pub talks: bool,
}

/// What a tool does to the repository. It sets both the role a caller needs ([`Access`]) and the
/// hints a client sees ([`Annotations`]), so the two cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads only: any role; `readOnlyHint` and `idempotentHint`.
    Reads,
    /// Creates what is missing and leaves what exists: writers; `idempotentHint`.
    Creates,
    /// Replaces or moves repository files: writers; `destructiveHint` and `idempotentHint`.
    Overwrites,
}

impl ToolDef {
    /// The one way our tools are defined: name, title, what it does to the repository and the
    /// description a model reads. The schemas start as "an object with no arguments" and "an
    /// object"; [`ToolDef::input`] and [`ToolDef::output`] replace them. The input schema given
    /// here is the one `tools/list` shows and every call is checked against.
    pub fn new(
        name: &'static str,
        title: &'static str,
        effect: Effect,
        description: &'static str,
    ) -> Self {
        let (access, annotations) = match effect {
            Effect::Reads => (
                Access::Read,
                Annotations {
                    read_only_hint: true,
                    idempotent_hint: true,
                    ..Annotations::default()
                },
            ),
            Effect::Creates => (
                Access::Write,
                Annotations {
                    idempotent_hint: true,
                    ..Annotations::default()
                },
            ),
            Effect::Overwrites => (
                Access::Write,
                Annotations {
                    destructive_hint: true,
                    idempotent_hint: true,
                    ..Annotations::default()
                },
            ),
        };
        Self {
            name,
            alias: None,
            title,
            description,
            input_schema: empty_object_schema(),
            output_schema: json!({"type": "object"}),
            annotations,
            access,
            progress: false,
            talks: false,
        }
    }

    /// Also answers to `alias` (the seed's dotted name, `change.open`).
    #[must_use]
    pub fn alias(mut self, alias: &'static str) -> Self {
        self.alias = Some(alias);
        self
    }

    /// The arguments' JSON Schema: an object root, in the subset [`schema::check`] knows.
    #[must_use]
    pub fn input(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// The JSON Schema of the result's `structuredContent`.
    #[must_use]
    pub fn output(mut self, schema: Value) -> Self {
        self.output_schema = schema;
        self
    }

    /// The tool reports progress (see [`ToolDef::progress`]).
    #[must_use]
    pub fn reports_progress(mut self) -> Self {
        self.progress = true;
        self
    }

    /// The `Tool` object of `tools/list`.
    pub fn to_json(&self) -> Value {
        let mut annotations = serde_json::to_value(self.annotations).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut annotations {
            map.insert("title".into(), Value::String(self.title.into()));
        }
        let mut tool = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": annotations,
        });
        if !self.output_schema.is_null() {
            tool["outputSchema"] = self.output_schema.clone();
        }
        tool
    }
}

/// A failed tool call, reported to the model as an `isError` result it can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolError {
    /// A machine-readable code: `EBADSLUG`, `ELOCKED`, `archive_target_exists`, ...
    pub code: String,
    /// What went wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Structured detail (lock owner, validation issues, ...).
    pub details: Option<Value>,
}

impl ToolError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            hint: None,
            details: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds structured details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The seed's error object: `{"code","message","hint"?,"details"?}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "code": self.code, "message": self.message });
        if let Some(h) = &self.hint {
            v["hint"] = Value::String(h.clone());
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// Whose fault a failed call is: the caller's (a bad argument, a missing change, a lock held by
/// someone else, a refusal by rule) or the server's (I/O, a bug, shutting down). Only server
/// faults spend the error budget; client faults are the model's mistakes, shown apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The caller can fix it.
    Client,
    /// The server failed.
    Server,
}

/// Every error code the tools emit, with its fault. A code missing here counts as a server
/// fault (a test keeps the list complete).
pub const ERROR_CODES: &[(&str, Fault)] = &[
    ("EBADARGS", Fault::Client),
    ("EBAD", Fault::Client),
    ("EINVALID_ARGUMENTS", Fault::Client),
    ("EBADSLUG", Fault::Client),
    ("ENOCHANGE", Fault::Client),
    ("EARCHIVED", Fault::Client),
    ("ENOTARCHIVED", Fault::Client),
    ("EEXISTS", Fault::Client),
    ("ELOCKED", Fault::Client),
    ("EPATH_ESCAPE", Fault::Client),
    ("EBADSHAPE_PROPOSAL_MISSING", Fault::Client),
    ("EBADSHAPE_SPECS_MISSING", Fault::Client),
    ("EBADSHAPE_SPECS_INVALID", Fault::Client),
    ("EBADSHAPE_SIZE_EXCEEDED", Fault::Client),
    ("EBADSHAPE_SECURITY_VIOLATION", Fault::Client),
    ("EBADSHAPE_CONTENT_BINARY", Fault::Client),
    ("ERESPONSE_TOO_LARGE", Fault::Client),
    ("ECLIENT_CAPABILITY", Fault::Client),
    ("ECLIENT_REFUSED", Fault::Client),
    ("ECLIENT_TIMEOUT", Fault::Client),
    ("ENO_STREAM", Fault::Client),
    ("ECANCELLED", Fault::Client),
    ("ETEST", Fault::Client),
    ("archive_change_not_found", Fault::Client),
    ("archive_change_name_invalid", Fault::Client),
    ("archive_change_symlink", Fault::Client),
    ("archive_confirmation_required", Fault::Client),
    ("archive_target_exists", Fault::Client),
    ("archive_tasks_incomplete", Fault::Client),
    ("archive_validation_failed", Fault::Client),
    ("archive_spec_validation_failed", Fault::Client),
    ("unarchive_specs_changed", Fault::Client),
    ("unarchive_no_record", Fault::Client),
    ("unarchive_change_exists", Fault::Client),
    ("EINTERNAL", Fault::Server),
    ("EIO", Fault::Server),
    ("ESHUTDOWN", Fault::Server),
    ("archive_spec_update_failed", Fault::Server),
    ("archive_error", Fault::Server),
    ("unarchive_io", Fault::Server),
];

impl ToolError {
    /// Whose fault this error is ([`ERROR_CODES`]; an unlisted code is the server's).
    pub fn fault(&self) -> Fault {
        ERROR_CODES
            .iter()
            .find(|(c, _)| *c == self.code)
            .map_or(Fault::Server, |(_, f)| *f)
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ToolError {}

impl From<schema::SchemaError> for ToolError {
    /// Arguments that do not fit the tool's `inputSchema`: the model sees where and why, and
    /// can call again.
    fn from(e: schema::SchemaError) -> Self {
        let mut details = json!({"pointer": e.pointer, "expected": e.expected});
        if let Some(allowed) = &e.allowed {
            details["allowed"] = json!(allowed);
        }
        ToolError::new("EINVALID_ARGUMENTS", e.to_string())
            .hint("Call the tool again with arguments that match its inputSchema.")
            .details(details)
    }
}

/// A progress report from a running tool.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Monotonically increasing progress so far.
    pub progress: f64,
    /// The total, when known.
    pub total: Option<f64>,
    /// A short human message.
    pub message: Option<String>,
}

/// The severity of a log message (RFC 5424 levels, as MCP `logging/setLevel` names them), in
/// increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Something happened.
    Info,
    /// Normal but significant.
    Notice,
    /// Worth a look.
    Warning,
    /// Something failed.
    Error,
    /// A critical condition.
    Critical,
    /// Action must be taken now.
    Alert,
    /// The system is unusable.
    Emergency,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Notice,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Alert,
        LogLevel::Emergency,
    ];

    /// The MCP name (`debug`, `info`, ..., `emergency`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }

    /// Parses an MCP level name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

/// Why a request to the client got no usable answer.
#[derive(Clone, Debug, PartialEq)]
pub enum AskError {
    /// The client did not declare the capability the request needs (`sampling`, `elicitation`).
    NotDeclared(&'static str),
    /// The call has no stream to carry a request (answered as JSON, or a seed API call).
    NoStream,
    /// No answer within the timeout.
    Timeout(std::time::Duration),
    /// The client cancelled the call or went away while it waited.
    Cancelled,
    /// The client answered with a JSON-RPC error.
    Refused {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
}

impl From<AskError> for ToolError {
    fn from(e: AskError) -> Self {
        match e {
            AskError::NotDeclared(cap) => ToolError::new(
                "ECLIENT_CAPABILITY",
                format!("the client did not declare the `{cap}` capability"),
            )
            .hint(format!(
                "Use a client that supports {cap}, and declare it in initialize."
            )),
            AskError::NoStream => ToolError::new(
                "ENO_STREAM",
                "this call has no stream on which to ask the client",
            )
            .hint("Call it with Accept: text/event-stream (or over the legacy SSE transport)."),
            AskError::Timeout(d) => ToolError::new(
                "ECLIENT_TIMEOUT",
                format!("the client did not answer within {} ms", d.as_millis()),
            )
            .hint("Answer the server's request, or raise CLIENT_REQUEST_TIMEOUT_MS."),
            AskError::Cancelled => ToolError::new(
                "ECANCELLED",
                "the call was cancelled while waiting for the client",
            ),
            AskError::Refused { code, message } => ToolError::new(
                "ECLIENT_REFUSED",
                format!("the client answered with error {code}: {message}"),
            )
            .details(json!({"code": code, "message": message})),
        }
    }
}

/// How a running tool reaches the client: the transport implements it (an SSE stream, a legacy
/// session, or nothing at all for a JSON answer).
pub trait ClientLink {
    /// Reports progress; the transport turns it into `notifications/progress` when the client
    /// asked for progress.
    fn progress(&mut self, p: Progress);
    /// Sends `notifications/message` when `level` is at or above the client's level and the call
    /// has somewhere to send it; otherwise drops it. `data` must hold nothing secret.
    fn log(&mut self, level: LogLevel, data: Value);
    /// Sends a request to the client (`sampling/createMessage`, `elicitation/create`) and waits
    /// for its answer.
    ///
    /// # Errors
    /// [`AskError`] when the request cannot be sent or gets no usable answer.
    fn request(&mut self, method: &str, params: Value) -> Result<Value, AskError>;
}

/// A link to nobody: progress and log messages are dropped, requests fail with
/// [`AskError::NoStream`]. For direct calls (tests, the command line).
pub struct NoClient;

impl ClientLink for NoClient {
    fn progress(&mut self, _p: Progress) {}
    fn log(&mut self, _level: LogLevel, _data: Value) {}
    fn request(&mut self, _method: &str, _params: Value) -> Result<Value, AskError> {
        Err(AskError::NoStream)
    }
}

/// Everything a tool may know about the call it serves.
pub struct ToolCtx<'a> {
    /// The caller's token identity (the name of the token, never the token).
    pub identity: &'a str,
    /// When the call started, as wall-clock time (for receipts, locks and dates).
    pub now: SystemTime,
    /// Set when the client cancelled the request or hung up; long tools should check it.
    pub cancelled: &'a AtomicBool,
    /// The way to the client: progress, log messages, requests.
    pub client: &'a mut dyn ClientLink,
}

impl ToolCtx<'_> {
    /// True once the caller cancelled or went away.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Reports progress (see [`ClientLink::progress`]).
    pub fn progress(&mut self, p: Progress) {
        self.client.progress(p);
    }

    /// Sends a log message (see [`ClientLink::log`]).
    pub fn log(&mut self, level: LogLevel, data: Value) {
        self.client.log(level, data);
    }
}

/// A tool. Implementations are plain structs holding what they need (a workspace, limits).
pub trait Tool: Send + Sync {
    /// The static description.
    fn def(&self) -> &ToolDef;
    /// Runs the tool. `args` is the `arguments` object (an empty object when absent). It returns
    /// an object matching its output schema, sent as `structuredContent` and mirrored as text; a
    /// tool without an output schema returns the `content` blocks themselves, as an array.
    ///
    /// # Errors
    /// A [`ToolError`] for any failure the model should see (bad arguments included).
    fn call(&self, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError>;
}

/// A resource's `contents[]` item.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceContent {
    /// The URI that was read (or the canonical one).
    pub uri: String,
    /// `text/markdown`, `application/json`, ...
    pub mime_type: String,
    /// The content, for text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The content, base64-encoded, for binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
}

impl ResourceContent {
    /// A text content.
    pub fn text(uri: &str, mime_type: &str, text: String) -> Self {
        Self {
            uri: uri.to_string(),
            mime_type: mime_type.to_string(),
            text: Some(text),
            blob: None,
        }
    }
}

/// A listed resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// Its URI.
    pub uri: String,
    /// A short name.
    pub name: String,
    /// A human title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// A resource template of `resources/templates/list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// RFC 6570 template, e.g. `change://{slug}/proposal`.
    pub uri_template: String,
    /// A short name.
    pub name: String,
    /// What it resolves to.
    pub description: String,
    /// Its media type.
    pub mime_type: String,
}

/// Why a resource could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum ResourceError {
    /// No such resource (JSON-RPC -32002 with `data.uri`).
    NotFound(String),
    /// The URI is malformed or escapes the workspace (JSON-RPC -32602).
    Invalid(String),
    /// Reading failed (JSON-RPC -32603).
    Internal(String),
}

/// Serves `resources/*`. One provider may own several URI schemes.
pub trait ResourceProvider: Send + Sync {
    /// Concrete resources, one page at a time: `(items, next_cursor)`.
    ///
    /// # Errors
    /// [`ResourceError::Invalid`] for a cursor this provider did not issue.
    fn list(
        &self,
        cursor: Option<&str>,
    ) -> Result<(Vec<ResourceInfo>, Option<String>), ResourceError>;
    /// The URI templates it answers.
    fn templates(&self) -> Vec<ResourceTemplate>;
    /// Reads one URI; `Ok(None)` when the URI is not one of this provider's schemes.
    ///
    /// # Errors
    /// Not found, invalid or internal, as [`ResourceError`] says.
    fn read(&self, uri: &str) -> Result<Option<Vec<ResourceContent>>, ResourceError>;
    /// The values `variable` (a template variable: `slug`, `capability`) can take, for
    /// `completion/complete`; `context` holds the variables already chosen. Empty when the
    /// provider knows none.
    fn complete(&self, variable: &str, context: &[(String, String)]) -> Vec<String> {
        let _ = (variable, context);
        Vec::new()
    }
}

/// The tools and resource providers a server offers, in a fixed order.
#[derive(Clone, Default)]
pub struct Registry {
    tools: Vec<Arc<dyn Tool>>,
    resources: Vec<Arc<dyn ResourceProvider>>,
    prompts: Vec<Arc<dyn prompts::PromptProvider>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool; tools are listed in the order they were added.
    pub fn add_tool(&mut self, tool: Arc<dyn Tool>) {
        self.tools.push(tool);
    }

    /// Adds a resource provider.
    pub fn add_resources(&mut self, provider: Arc<dyn ResourceProvider>) {
        self.resources.push(provider);
    }

    /// Adds a prompt provider; prompts are listed in the order they were added.
    pub fn add_prompts(&mut self, provider: Arc<dyn prompts::PromptProvider>) {
        self.prompts.push(provider);
    }

    /// Every prompt with its provider, in listing order.
    pub fn prompts(
        &self,
    ) -> impl Iterator<Item = (&dyn prompts::PromptProvider, &'static prompts::PromptDef)> {
        self.prompts
            .iter()
            .flat_map(|p| p.prompts().iter().map(move |d| (p.as_ref(), d)))
    }

    /// Every tool, in listing order.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// Every resource provider.
    pub fn resource_providers(&self) -> &[Arc<dyn ResourceProvider>] {
        &self.resources
    }

    /// Finds a tool by its listed name or its dotted alias.
    pub fn find(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools
            .iter()
            .find(|t| t.def().name == name || t.def().alias == Some(name))
    }

    /// Every provider's values for a template variable (see [`ResourceProvider::complete`]),
    /// sorted, without repeats.
    pub fn complete(&self, variable: &str, context: &[(String, String)]) -> Vec<String> {
        let mut all: Vec<String> = self
            .resources
            .iter()
            .flat_map(|p| p.complete(variable, context))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Reads a resource through the first provider that knows its scheme.
    ///
    /// # Errors
    /// [`ResourceError::NotFound`] when no provider knows it.
    pub fn read_resource(&self, uri: &str) -> Result<Vec<ResourceContent>, ResourceError> {
        for p in &self.resources {
            if let Some(c) = p.read(uri)? {
                return Ok(c);
            }
        }
        Err(ResourceError::NotFound(uri.to_string()))
    }
}

/// The no-argument input schema.
pub fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error code written anywhere in the tools, the engine or the MCP layer is classified
    /// explicitly, so a new code cannot quietly count against the error budget (or escape it).
    #[test]
    fn every_error_code_in_the_source_has_a_fault() {
        let code =
            regex::Regex::new(r#""(E[A-Z_]{3,}|archive_[a-z_]+|unarchive_[a-z_]+)""#).unwrap();
        // Strings of that shape that are not tool error codes.
        let not_codes = ["ERROR", "ENEVER_SEEN"];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root.join("tools"), root.join("openspec"), root.join("mcp")];
        let mut missing = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for c in code.captures_iter(&text) {
                        let c = &c[1];
                        if !not_codes.contains(&c) && !ERROR_CODES.iter().any(|(k, _)| *k == c) {
                            missing.push(format!("{c} ({})", p.display()));
                        }
                    }
                }
            }
        }
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "unclassified error codes: {missing:?}");
        assert_eq!(ToolError::new("ENOCHANGE", "x").fault(), Fault::Client);
        assert_eq!(ToolError::new("EIO", "x").fault(), Fault::Server);
        assert_eq!(ToolError::new("ENEVER_SEEN", "x").fault(), Fault::Server);
    }
}
