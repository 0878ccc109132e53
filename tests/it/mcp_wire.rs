//! Wire tests of the MCP handlers without a server: constructed heads and bodies in, status,
//! headers and bodies out; one test per row of the brief's §2.3 table that this layer answers.
//! Streamed answers are run against a loopback socket pair (see `mcp_streams`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use task_mcp::http::request::{HeadLimits, parse_head};
use task_mcp::http::{Body, Head, Response};
use task_mcp::mcp::{self, AuditEvent, Caller, McpEnv, McpHooks, Sessions, Settings, StreamKind};
use task_mcp::tools::testing::{Echo, Slow};
use task_mcp::tools::{
    Access, Registry, ResourceContent, ResourceError, ResourceInfo, ResourceProvider,
    ResourceTemplate, Tool, ToolCtx, ToolDef, ToolError, empty_object_schema,
};

/// Records what the hooks were told.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<String>>,
}

impl McpHooks for Recorder {
    fn tool_started(&self, name: &str) {
        self.push(format!("started {name}"));
    }
    fn tool_finished(
        &self,
        name: &str,
        outcome: Result<(), &task_mcp::tools::ToolError>,
        _elapsed: Duration,
    ) {
        self.push(format!("finished {name} {}", outcome.is_ok()));
    }
    fn stream_opened(&self, kind: StreamKind) {
        self.push(format!("opened {}", kind.as_str()));
    }
    fn stream_closed(&self, kind: StreamKind, _lifetime: Duration) {
        self.push(format!("closed {}", kind.as_str()));
    }
    fn audit(&self, event: &AuditEvent<'_>) {
        match event {
            AuditEvent::ToolCall { tool, ok, .. } => self.push(format!("audit call {tool} {ok}")),
            AuditEvent::Forbidden { identity, tool, .. } => {
                self.push(format!("audit forbidden {identity} {tool}"))
            }
        }
    }
}

impl Recorder {
    fn push(&self, s: String) {
        self.events.lock().unwrap().push(s);
    }

    pub fn saw(&self, s: &str) -> bool {
        self.events.lock().unwrap().iter().any(|e| e == s)
    }
}

/// A tool that needs write access and returns a result of the requested size.
pub struct Writer {
    def: ToolDef,
}

impl Writer {
    pub fn new() -> Self {
        Self {
            def: ToolDef {
                name: "change_write",
                alias: Some("change.write"),
                title: "Write",
                description: "Writes (a test tool).",
                input_schema: json!({"type": "object", "properties": {"bytes": {"type": "integer"}},
                                     "additionalProperties": false}),
                output_schema: json!({"type": "object"}),
                annotations: Default::default(),
                access: Access::Write,
                progress: false,
                talks: false,
            },
        }
    }
}

impl Tool for Writer {
    fn def(&self) -> &ToolDef {
        &self.def
    }
    fn call(&self, args: &Value, _ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let n = args.get("bytes").and_then(Value::as_u64).unwrap_or(2) as usize;
        Ok(json!({"data": "x".repeat(n)}))
    }
}

/// Blocks until cancelled (at most 20 s), then records that it saw the cancellation.
pub struct Blocker {
    def: ToolDef,
    pub saw_cancel: Arc<AtomicBool>,
}

impl Blocker {
    pub fn new(saw_cancel: Arc<AtomicBool>) -> Self {
        Self {
            def: ToolDef {
                name: "blocker",
                alias: None,
                title: "Blocker",
                description: "Blocks until cancelled (a test tool).",
                input_schema: empty_object_schema(),
                output_schema: json!({"type": "object"}),
                annotations: Default::default(),
                access: Access::Read,
                progress: true,
                talks: false,
            },
            saw_cancel,
        }
    }
}

impl Tool for Blocker {
    fn def(&self) -> &ToolDef {
        &self.def
    }
    fn call(&self, _args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if ctx.is_cancelled() {
                self.saw_cancel.store(true, Ordering::SeqCst);
                return Ok(json!({"cancelled": true}));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(json!({"cancelled": false}))
    }
}

/// Two resources under `mem://`, listed one per page.
pub struct Mem;

impl ResourceProvider for Mem {
    fn list(
        &self,
        cursor: Option<&str>,
    ) -> Result<(Vec<ResourceInfo>, Option<String>), ResourceError> {
        let item = |n: &str| ResourceInfo {
            uri: format!("mem://{n}"),
            name: n.into(),
            title: None,
            description: None,
            mime_type: Some("text/plain".into()),
        };
        match cursor {
            None => Ok((vec![item("a")], Some("page2".into()))),
            Some("page2") => Ok((vec![item("b")], None)),
            Some(_) => Err(ResourceError::Invalid("bad cursor".into())),
        }
    }
    fn templates(&self) -> Vec<ResourceTemplate> {
        vec![ResourceTemplate {
            uri_template: "mem://{name}".into(),
            name: "mem".into(),
            description: "memory".into(),
            mime_type: "text/plain".into(),
        }]
    }
    fn read(&self, uri: &str) -> Result<Option<Vec<ResourceContent>>, ResourceError> {
        let Some(name) = uri.strip_prefix("mem://") else {
            return Ok(None);
        };
        if name == "a" || name == "b" {
            Ok(Some(vec![ResourceContent::text(
                uri,
                "text/plain",
                format!("content {name}"),
            )]))
        } else {
            Err(ResourceError::NotFound(uri.into()))
        }
    }
}

pub struct Fixture {
    pub env: Arc<McpEnv>,
    pub hooks: Arc<Recorder>,
    pub saw_cancel: Arc<AtomicBool>,
}

pub fn fixture_with(settings: Settings) -> Fixture {
    let hooks = Arc::new(Recorder::default());
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let mut reg = Registry::new();
    reg.add_tool(Arc::new(Echo::new()));
    reg.add_tool(Arc::new(Slow::new()));
    reg.add_tool(Arc::new(Writer::new()));
    reg.add_tool(Arc::new(Blocker::new(Arc::clone(&saw_cancel))));
    reg.add_resources(Arc::new(Mem));
    let env = Arc::new(McpEnv::new(reg, settings, hooks.clone()));
    Fixture {
        env,
        hooks,
        saw_cancel,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(Settings {
        heartbeat: Duration::from_millis(40),
        max_response_bytes: 1024,
        ..Settings::default()
    })
}

pub fn stateful() -> Fixture {
    fixture_with(Settings {
        sessions: Sessions::Stateful,
        session_key: [9; 32],
        heartbeat: Duration::from_millis(40),
        ..Settings::default()
    })
}

pub fn reader() -> Caller {
    Caller {
        identity: "alice".into(),
        grants: Access::Read,
    }
}

pub fn admin() -> Caller {
    Caller {
        identity: "root".into(),
        grants: Access::Admin,
    }
}

/// A head with the given method, target and extra header lines (`Name: value`).
pub fn head(method: &str, target: &str, headers: &[&str]) -> Head {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    parse_head(raw.as_bytes(), &HeadLimits::default())
        .unwrap()
        .unwrap()
        .1
}

/// The headers every well-behaved client sends to `/mcp`.
pub const CLIENT: [&str; 2] = [
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
];

pub fn post(f: &Fixture, headers: &[&str], body: &str) -> Response {
    post_as(f, headers, body, &reader())
}

pub fn post_as(f: &Fixture, headers: &[&str], body: &str, caller: &Caller) -> Response {
    let h = head("POST", "/mcp", headers);
    mcp::http::post(&f.env, &h, body.as_bytes(), caller)
}

pub fn body_json(r: &Response) -> Value {
    match &r.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a complete body: {other:?}"),
    }
}

fn rpc(id: Value, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

const V: &str = "MCP-Protocol-Version: 2025-11-25";

fn with_v(extra: &[&'static str]) -> Vec<&'static str> {
    let mut h = CLIENT.to_vec();
    h.push(V);
    h.extend_from_slice(extra);
    h
}

#[test]
fn initialize_answers_json_with_the_requested_version_and_no_session_header() {
    let f = fixture();
    let body = rpc(
        json!(1),
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    let r = post(&f, &CLIENT, &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("mcp-session-id"), None);
    let v = body_json(&r);
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], false);
}

#[test]
fn initialize_with_an_unknown_version_gets_the_latest_and_ignores_the_header() {
    let f = fixture();
    let body = rpc(
        json!("i"),
        "initialize",
        json!({"protocolVersion": "1999-01-01"}),
    );
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], "MCP-Protocol-Version: 2099-01-01"],
        &body,
    );
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(v["id"], "i");
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn ping_keeps_a_string_id_and_accepts_any_accept() {
    let f = fixture();
    for accept in [
        "Accept: */*",
        "Accept: application/json",
        "Accept: application/*",
    ] {
        let r = post(
            &f,
            &["Content-Type: application/json", accept],
            &rpc(json!("a"), "ping", json!({})),
        );
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(
            body_json(&r),
            json!({"jsonrpc": "2.0", "id": "a", "result": {}})
        );
    }
    let r = post(
        &f,
        &["Content-Type: application/json"],
        &rpc(json!(2), "ping", json!({})),
    );
    assert_eq!(body_json(&r)["result"], json!({}));
}

#[test]
fn unacceptable_accept_is_406() {
    let f = fixture();
    let r = post(
        &f,
        &["Content-Type: application/json", "Accept: text/html"],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(r.status, 406);
    assert_eq!(body_json(&r)["error"]["code"], -32000);
}

#[test]
fn non_json_content_type_is_415_but_parameters_are_fine() {
    let f = fixture();
    let r = post(
        &f,
        &["Content-Type: text/plain", CLIENT[1]],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(r.status, 415);
    let r = post(
        &f,
        &["Content-Type: Application/JSON; charset=utf-8", CLIENT[1]],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn invalid_json_is_400_parse_error() {
    let f = fixture();
    let r = post(&f, &CLIENT, "{\"jsonrpc\":");
    assert_eq!(r.status, 400);
    let v = body_json(&r);
    assert_eq!(v["error"]["code"], -32700);
    assert_eq!(v["id"], Value::Null);
}

#[test]
fn json_that_is_not_json_rpc_is_400_invalid_request_with_its_id() {
    let f = fixture();
    let r = post(&f, &CLIENT, r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#);
    assert_eq!(r.status, 400);
    let v = body_json(&r);
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(v["id"], 5);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request")
    );
}

#[test]
fn unsupported_protocol_version_is_400_naming_the_supported_ones() {
    let f = fixture();
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], "MCP-Protocol-Version: 2024-01-01"],
        &rpc(json!(3), "ping", json!({})),
    );
    assert_eq!(r.status, 400);
    let v = body_json(&r);
    assert_eq!(v["error"]["code"], -32600);
    let msg = v["error"]["message"].as_str().unwrap();
    for s in mcp::SUPPORTED_VERSIONS {
        assert!(msg.contains(s), "{msg}");
    }
}

#[test]
fn server_discover_probe_gets_a_quick_400_without_session_header() {
    // See: brief §2.10; dual-era clients fall back to initialize on this answer.
    for sessions in [fixture(), stateful()] {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        let r = post(
            &sessions,
            &[
                CLIENT[0],
                CLIENT[1],
                "MCP-Protocol-Version: 2026-07-28",
                "Mcp-Method: server/discover",
            ],
            &body.to_string(),
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.header("mcp-session-id"), None);
        let v = body_json(&r);
        assert_eq!(v["id"], 0);
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(
            v["error"]["message"],
            "Unsupported MCP-Protocol-Version 2026-07-28; supported: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05"
        );
    }
}

#[test]
fn notifications_and_responses_are_202_with_an_empty_body() {
    let f = fixture();
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/unknown","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":9,"result":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
    ] {
        let r = post(&f, &with_v(&[]), body);
        assert_eq!(r.status, 202, "{body}");
        assert!(matches!(r.body, Body::Empty));
    }
}

#[test]
fn unknown_methods_are_200_method_not_found() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(4), "sampling/createMessage", json!({})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r)["error"]["code"], -32601);
}

#[test]
fn get_delete_and_other_methods_are_405_when_stateless() {
    let f = fixture();
    for m in ["GET", "DELETE", "PUT"] {
        let h = head(
            m,
            "/mcp",
            &["Accept: text/event-stream", "Mcp-Session-Id: whatever"],
        );
        let r = mcp::http::handle(&f.env, &h, b"", &reader());
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
        assert_eq!(body_json(&r)["error"]["message"], "Method not allowed.");
    }
}

#[test]
fn stateless_mode_ignores_an_incoming_session_id() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&["Mcp-Session-Id: stale"]),
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn tools_list_shows_only_what_the_role_may_call_in_a_fixed_order() {
    let f = fixture();
    let names = |c: &Caller| -> Vec<String> {
        let r = post_as(&f, &with_v(&[]), &rpc(json!(1), "tools/list", json!({})), c);
        body_json(&r)["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&reader()), ["echo", "slow", "blocker"]);
    assert_eq!(names(&admin()), ["echo", "slow", "change_write", "blocker"]);
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(1), "tools/list", json!({"cursor": "x"})),
    );
    assert_eq!(body_json(&r)["error"]["code"], -32602);
}

#[test]
fn tools_call_returns_text_and_structured_content() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(
            json!(7),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        ),
    );
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(
        v["result"],
        json!({"content": [{"type": "text", "text": "{\"text\":\"hi\"}"}], "structuredContent": {"text": "hi"}, "isError": false})
    );
    assert!(f.hooks.saw("started echo"));
    assert!(f.hooks.saw("finished echo true"));
}

#[test]
fn dotted_aliases_are_callable() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(7), "tools/call", json!({"name": "test.echo"})),
    );
    assert_eq!(
        body_json(&r)["result"]["structuredContent"],
        json!({"text": ""})
    );
}

#[test]
fn unknown_tools_and_malformed_params_are_invalid_params() {
    let f = fixture();
    for params in [
        json!({"name": "nope"}),
        json!({"arguments": {}}),
        json!({"name": "echo", "arguments": [1]}),
        json!([1]),
    ] {
        let r = post(
            &f,
            &with_v(&[]),
            &rpc(json!(1), "tools/call", params.clone()),
        );
        assert_eq!(r.status, 200);
        assert_eq!(body_json(&r)["error"]["code"], -32602, "{params}");
    }
}

#[test]
fn tool_failures_are_is_error_results_with_the_structured_error() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(
            json!(1),
            "tools/call",
            json!({"name": "slow", "arguments": {"steps": 0, "fail": true}}),
        ),
    );
    let v = body_json(&r);
    assert_eq!(v["result"]["isError"], true);
    let e = &v["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "ETEST");
    assert_eq!(e["hint"], "Drop `fail`.");
    let text: Value =
        serde_json::from_str(v["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text["error"], e);
}

#[test]
fn forbidden_tools_are_a_json_rpc_error_and_are_audited() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(1), "tools/call", json!({"name": "change_write"})),
    );
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(v["error"]["code"], -32003);
    assert_eq!(v["error"]["data"]["required"], "write");
    assert!(f.hooks.saw("audit forbidden alice change_write"));
    assert!(!f.hooks.saw("started change_write"));
}

#[test]
fn writing_calls_are_audited() {
    let f = fixture();
    let r = post_as(
        &f,
        &with_v(&[]),
        &rpc(json!(1), "tools/call", json!({"name": "change.write"})),
        &admin(),
    );
    assert_eq!(body_json(&r)["result"]["isError"], false);
    assert!(f.hooks.saw("audit call change_write true"));
}

#[test]
fn results_over_the_size_limit_become_a_tool_error_with_a_hint() {
    let f = fixture();
    let r = post_as(
        &f,
        &with_v(&[]),
        &rpc(
            json!(1),
            "tools/call",
            json!({"name": "change_write", "arguments": {"bytes": 5000}}),
        ),
        &admin(),
    );
    let v = body_json(&r);
    assert_eq!(v["result"]["isError"], true);
    let e = &v["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "ERESPONSE_TOO_LARGE");
    assert!(e["hint"].as_str().unwrap().contains("less"));
    assert_eq!(e["details"]["limitBytes"], 1024);
}

#[test]
fn batches_are_answered_with_an_array_under_2025_03_26() {
    let f = fixture();
    let body = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}},
        {"id": 3}
    ]);
    // Without the header the version is 2025-03-26.
    let r = post(&f, &CLIENT, &body.to_string());
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["id"], 1);
    assert_eq!(arr[1]["result"]["structuredContent"]["text"], "x");
    assert_eq!(arr[2]["id"], 3);
    assert_eq!(arr[2]["error"]["code"], -32600);
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], "MCP-Protocol-Version: 2025-03-26"],
        r#"[{"jsonrpc":"2.0","method":"n"}]"#,
    );
    assert_eq!(r.status, 202);
}

#[test]
fn batches_are_refused_after_2025_03_26_and_with_initialize_or_empty() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["error"]["code"], -32600);
    let r = post(
        &f,
        &CLIENT,
        r#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        body_json(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
    let r = post(&f, &CLIENT, "[]");
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["error"]["code"], -32600);
}

#[test]
fn resources_list_pages_with_opaque_cursors() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(1), "resources/list", json!({})),
    );
    let v = body_json(&r);
    assert_eq!(v["result"]["resources"][0]["uri"], "mem://a");
    let cursor = v["result"]["nextCursor"].as_str().unwrap().to_string();
    assert!(
        !cursor.contains("page2"),
        "cursor should be opaque: {cursor}"
    );
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(2), "resources/list", json!({"cursor": cursor})),
    );
    let v = body_json(&r);
    assert_eq!(v["result"]["resources"][0]["uri"], "mem://b");
    assert!(v["result"].get("nextCursor").is_none());
    for bad in ["???", "OTpx", "bm9wZQ"] {
        let r = post(
            &f,
            &with_v(&[]),
            &rpc(json!(3), "resources/list", json!({"cursor": bad})),
        );
        assert_eq!(body_json(&r)["error"]["code"], -32602, "{bad}");
    }
}

#[test]
fn resources_read_and_templates() {
    let f = fixture();
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(1), "resources/read", json!({"uri": "mem://a"})),
    );
    assert_eq!(
        body_json(&r)["result"],
        json!({"contents": [{"uri": "mem://a", "mimeType": "text/plain", "text": "content a"}]})
    );
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(2), "resources/read", json!({"uri": "mem://zzz"})),
    );
    let v = body_json(&r);
    assert_eq!(v["error"]["code"], -32002);
    assert_eq!(v["error"]["data"]["uri"], "mem://zzz");
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(3), "resources/read", json!({"uri": "other://x"})),
    );
    assert_eq!(body_json(&r)["error"]["code"], -32002);
    let r = post(
        &f,
        &with_v(&[]),
        &rpc(json!(4), "resources/templates/list", json!({})),
    );
    assert_eq!(
        body_json(&r)["result"]["resourceTemplates"][0]["uriTemplate"],
        "mem://{name}"
    );
}

// --- stateful mode (§2.6) ---

fn init_stateful(f: &Fixture, caller: &Caller) -> String {
    let body = rpc(
        json!(1),
        "initialize",
        json!({"protocolVersion": "2025-06-18"}),
    );
    let r = post_as(f, &CLIENT, &body, caller);
    assert_eq!(r.status, 200);
    r.header("mcp-session-id").expect("session id").to_string()
}

#[test]
fn stateful_initialize_mints_a_session_that_later_requests_use() {
    let f = stateful();
    let sid = init_stateful(&f, &reader());
    let h = format!("Mcp-Session-Id: {sid}");
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], &h],
        &rpc(json!(2), "ping", json!({})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("mcp-session-id"), None);
    // A stale header on initialize is recovered from with a new session.
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], "Mcp-Session-Id: stale"],
        &rpc(json!(1), "initialize", json!({})),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("mcp-session-id").is_some());
}

#[test]
fn stateful_requests_without_a_session_are_400_and_unknown_ones_404() {
    let f = stateful();
    let r = post(&f, &CLIENT, &rpc(json!(2), "ping", json!({})));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("mcp-session-id"), None);
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], "Mcp-Session-Id: forged"],
        &rpc(json!(2), "ping", json!({})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(body_json(&r)["error"]["code"], -32001);
}

#[test]
fn stateful_sessions_are_bound_to_the_token_identity() {
    let f = stateful();
    let sid = init_stateful(&f, &reader());
    let h = format!("Mcp-Session-Id: {sid}");
    let r = post_as(
        &f,
        &[CLIENT[0], CLIENT[1], &h],
        &rpc(json!(2), "ping", json!({})),
        &admin(),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn stateful_delete_ends_the_session_for_good() {
    let f = stateful();
    let sid = init_stateful(&f, &reader());
    let h = format!("Mcp-Session-Id: {sid}");
    let r = mcp::http::delete(&f.env, &head("DELETE", "/mcp", &[&h]), &reader());
    assert_eq!(r.status, 200);
    let r = post(
        &f,
        &[CLIENT[0], CLIENT[1], &h],
        &rpc(json!(2), "ping", json!({})),
    );
    assert_eq!(r.status, 404);
    let r = mcp::http::delete(&f.env, &head("DELETE", "/mcp", &[&h]), &reader());
    assert_eq!(r.status, 404);
    let r = mcp::http::delete(&f.env, &head("DELETE", "/mcp", &[]), &reader());
    assert_eq!(r.status, 400);
}

#[test]
fn stateful_get_needs_sse_accept_and_allows_one_stream_per_session() {
    let f = stateful();
    let sid = init_stateful(&f, &reader());
    let h = format!("Mcp-Session-Id: {sid}");
    let r = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: application/json", &h]),
        &reader(),
    );
    assert_eq!(r.status, 406);
    let first = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: text/event-stream", &h]),
        &reader(),
    );
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("text/event-stream"));
    let second = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: text/event-stream", &h]),
        &reader(),
    );
    assert_eq!(second.status, 409);
    drop(first);
    let again = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: text/event-stream", &h]),
        &reader(),
    );
    assert_eq!(again.status, 200, "a dropped stream frees its place");
    let other = mcp::http::handle(&f.env, &head("PATCH", "/mcp", &[]), b"", &reader());
    assert_eq!(other.header("allow"), Some("GET, POST, DELETE, OPTIONS"));
}

// --- POST /sse, /messages, admin endpoints ---

#[test]
fn post_sse_with_json_rpc_or_nothing_is_405_allow_get() {
    let f = fixture();
    for body in [rpc(json!(1), "initialize", json!({})), String::new()] {
        let r = mcp::seed::post_sse(
            &f.env,
            &head("POST", "/sse", &CLIENT),
            body.as_bytes(),
            &reader(),
        );
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET"));
    }
}

#[test]
fn seed_calls_refuse_unknown_and_forbidden_tools_before_streaming() {
    let f = fixture();
    let r = mcp::seed::post_sse(
        &f.env,
        &head("POST", "/sse", &CLIENT),
        br#"{"tool":"nope","input":{}}"#,
        &reader(),
    );
    assert_eq!(r.status, 404);
    let v = body_json(&r);
    assert_eq!(v["apiVersion"], "1.0.0");
    assert_eq!(v["error"]["code"], "TOOL_NOT_FOUND");
    assert!(v["error"]["hint"].is_string());
    let r = post(&f, &CLIENT, r#"{"tool":"change.write","input":{}}"#);
    assert_eq!(r.status, 403);
    assert!(f.hooks.saw("audit forbidden alice change_write"));
    let r = post(&f, &CLIENT, r#"{"tool":"echo","input":[1]}"#);
    assert_eq!(r.status, 400);
}

#[test]
fn messages_need_a_live_session_of_the_same_identity() {
    let f = fixture();
    let r = mcp::legacy::post_message(
        &f.env,
        &head("POST", "/messages", &CLIENT),
        b"{}",
        &reader(),
    );
    assert_eq!(r.status, 400);
    let r = mcp::legacy::post_message(
        &f.env,
        &head("POST", "/messages?sessionId=unknown", &CLIENT),
        rpc(json!(1), "ping", json!({})).as_bytes(),
        &reader(),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn admin_endpoints_refuse_other_roles() {
    let f = fixture();
    assert_eq!(mcp::legacy::stats(&f.env, &reader()).status, 403);
    assert_eq!(
        mcp::legacy::broadcast(&f.env, b"{\"message\":1}", &reader()).status,
        403
    );
    let r = mcp::legacy::stats(&f.env, &admin());
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r)["totalConnections"], 0);
    let r = mcp::legacy::broadcast(&f.env, br#"{"event":"evil\nx","message":1}"#, &admin());
    assert_eq!(r.status, 400);
}

#[test]
fn the_stream_cap_answers_503() {
    let f = fixture_with(Settings {
        max_streams: 1,
        ..Settings::default()
    });
    let h = head("GET", "/sse", &["Accept: text/event-stream"]);
    let first = mcp::legacy::open_stream(&f.env, &h, &reader());
    assert_eq!(first.status, 200);
    let second = mcp::legacy::open_stream(&f.env, &h, &reader());
    assert_eq!(second.status, 503);
    let seed = post(&f, &CLIENT, r#"{"tool":"echo","input":{}}"#);
    assert_eq!(seed.status, 503);
    drop(first);
    assert_eq!(mcp::legacy::open_stream(&f.env, &h, &reader()).status, 200);
}

/// A progress token streams only where there is progress to send: `echo` (no progress) is
/// answered as JSON to a client that accepts JSON, `slow` (reports progress) as SSE.
#[test]
fn a_progress_token_streams_only_for_a_tool_that_reports_progress() {
    let f = fixture();
    let call = |tool: &str, args: Value| {
        let body = rpc(
            json!(7),
            "tools/call",
            json!({"name": tool, "arguments": args, "_meta": {"progressToken": "p"}}),
        );
        post(&f, &with_v(&[]), &body)
    };
    let r = call("echo", json!({"text": "hi"}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(body_json(&r)["result"]["structuredContent"]["text"], "hi");
    let r = call("slow", json!({"steps": 1, "step_ms": 0}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
}
