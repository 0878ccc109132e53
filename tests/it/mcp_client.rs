//! The server talking to the client: log messages at the session's level, requests to the client
//! (sampling, elicitation) answered by a later POST, and resource subscriptions told of changes
//! on disk, on Streamable HTTP (stateless and stateful) and on legacy SSE.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use task_mcp::http::Response;
use task_mcp::mcp::{self, McpEnv, Sessions, Settings};
use task_mcp::openspec::Workspace;
use task_mcp::tools::Registry;
use task_mcp::tools::options::ToolOptions;

use super::mcp_streams::{Streamed, json_of, open_legacy, post_message, rpc, run};
use super::mcp_wire::{CLIENT, Fixture, Recorder, body_json, head, reader};
use super::openspec_cli::workspace;

const V: &str = "MCP-Protocol-Version: 2025-11-25";

/// A server with the OpenSpec tools over `root` and the conformance fixtures.
fn server(root: &Path, sessions: Sessions, timeout: Duration) -> Fixture {
    let mut reg = Registry::new();
    let ws = Arc::new(Workspace::open(root).unwrap());
    task_mcp::tools::openspec::register(&mut reg, ws, ToolOptions::default());
    task_mcp::tools::conformance::register(&mut reg);
    let hooks = Arc::new(Recorder::default());
    let settings = Settings {
        sessions,
        session_key: [7; 32],
        heartbeat: Duration::from_millis(50),
        client_request_timeout: timeout,
        max_subscriptions: 2,
        watch_root: Some(root.to_path_buf()),
        ..Settings::default()
    };
    Fixture {
        env: Arc::new(McpEnv::new(reg, settings, hooks.clone())),
        hooks,
        saw_cancel: Arc::default(),
    }
}

fn stateless(root: &Path) -> Fixture {
    server(root, Sessions::Stateless, Duration::from_secs(10))
}

fn stateful(root: &Path) -> Fixture {
    server(root, Sessions::Stateful, Duration::from_secs(10))
}

fn root_with_change() -> PathBuf {
    workspace(&[(
        "openspec/changes/add-2fa/proposal.md",
        "# Change: 2FA\n\n## Why\nSafer logins.\n",
    )])
}

fn post(f: &Fixture, headers: &[&str], body: &str) -> Response {
    mcp::http::post(
        &f.env,
        &head("POST", "/mcp", headers),
        body.as_bytes(),
        &reader(),
    )
}

/// `initialize` in stateful mode: the session id.
fn initialize(f: &Fixture, capabilities: Value) -> String {
    let r = post(
        f,
        &CLIENT,
        &rpc(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": capabilities,
                "clientInfo": {"name": "t", "version": "1"}}),
        ),
    );
    assert_eq!(r.status, 200);
    r.header("mcp-session-id")
        .expect("a session id")
        .to_string()
}

/// A POST in a stateful session.
fn post_in(f: &Fixture, sid: &str, body: &str) -> Response {
    let h = format!("Mcp-Session-Id: {sid}");
    post(f, &[CLIENT[0], CLIENT[1], V, &h], body)
}

/// The JSON-RPC messages of a stream (a legacy stream's `endpoint` event is not one).
fn messages(s: &Streamed) -> Vec<Value> {
    s.events
        .iter()
        .filter(|e| e.event == "message")
        .map(json_of)
        .collect()
}

fn msg(e: &task_mcp::sse::Event) -> Value {
    serde_json::from_str(&e.data).unwrap_or(Value::Null)
}

fn logs(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(|m| format!("{} {}", m["params"]["level"], m["params"]["data"]))
        .collect()
}

fn call(id: i64, name: &str, args: Value) -> String {
    rpc(
        json!(id),
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
}

#[test]
fn log_messages_travel_on_the_calls_stream_at_the_sessions_level() {
    let root = root_with_change();
    // Stateless: no session keeps a level, so the default (info) applies.
    let f = stateless(&root);
    let r = post(&f, &CLIENT, &call(1, "test_tool_with_logging", json!({})));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let (events, _) = run(r).finish();
    let msgs: Vec<Value> = events.iter().map(json_of).collect();
    assert_eq!(
        logs(&msgs),
        [
            "\"info\" \"Tool execution started\"",
            "\"info\" \"Tool processing data\"",
            "\"info\" \"Tool execution completed\""
        ]
    );
    assert_eq!(msgs.last().unwrap()["id"], 1);
    assert_eq!(msgs[0]["params"]["logger"], "task-mcp");

    // Stateful: the session's level filters.
    let f = stateful(&root);
    let sid = initialize(&f, json!({}));
    let set = |level: &str| {
        let r = post_in(
            &f,
            &sid,
            &rpc(json!(2), "logging/setLevel", json!({"level": level})),
        );
        body_json(&r)
    };
    assert_eq!(set("warning")["result"], json!({}));
    let (events, _) = run(post_in(
        &f,
        &sid,
        &call(3, "test_tool_with_logging", json!({})),
    ))
    .finish();
    let msgs: Vec<Value> = events.iter().map(json_of).collect();
    assert!(logs(&msgs).is_empty(), "{msgs:?}");
    assert_eq!(msgs.last().unwrap()["id"], 3);
    set("debug");
    let (events, _) = run(post_in(
        &f,
        &sid,
        &call(4, "test_tool_with_logging", json!({})),
    ))
    .finish();
    assert_eq!(
        logs(&events.iter().map(json_of).collect::<Vec<_>>()).len(),
        3
    );
    assert_eq!(set("loud")["error"]["code"], -32602);
    assert_eq!(
        body_json(&post_in(
            &f,
            &sid,
            &rpc(json!(5), "logging/setLevel", json!({}))
        ))["error"]["code"],
        -32602
    );
}

#[test]
fn legacy_sessions_get_log_messages_at_their_level() {
    let root = root_with_change();
    let f = stateless(&root);
    let (mut s, sid) = open_legacy(&f, &[]);
    let init = rpc(
        json!(1),
        "initialize",
        json!({"protocolVersion": "2024-11-05"}),
    );
    post_message(&f, &sid, &init);
    let set = rpc(json!(2), "logging/setLevel", json!({"level": "error"}));
    assert_eq!(post_message(&f, &sid, &set).status, 202);
    post_message(&f, &sid, &call(3, "test_tool_with_logging", json!({})));
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 3));
    assert!(logs(&messages(&s)).is_empty());
    let set = rpc(json!(4), "logging/setLevel", json!({"level": "info"}));
    post_message(&f, &sid, &set);
    post_message(&f, &sid, &call(5, "test_tool_with_logging", json!({})));
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 5));
    assert_eq!(logs(&messages(&s)).len(), 3);
}

/// Reads the stream until the server's request appears; returns its id.
fn await_request(s: &mut Streamed, method: &str) -> (Value, Value) {
    s.until(|evs, _| evs.iter().any(|e| msg(e)["method"] == method));
    let req = messages(s)
        .into_iter()
        .find(|m| m["method"] == method)
        .unwrap();
    (req["id"].clone(), req["params"].clone())
}

#[test]
fn a_sampling_request_goes_out_on_the_calls_stream_and_its_answer_comes_back_by_post() {
    let root = root_with_change();
    let f = stateless(&root);
    let mut s = run(post(
        &f,
        &CLIENT,
        &call(1, "test_sampling", json!({"prompt": "Say hi"})),
    ));
    let (id, params) = await_request(&mut s, "sampling/createMessage");
    assert!(id.as_str().unwrap().starts_with("task-mcp-"), "{id}");
    assert_eq!(params["messages"][0]["content"]["text"], "Say hi");
    assert_eq!(params["maxTokens"], 100);
    // The answer is a JSON-RPC response POSTed like any message: 202, and the tool goes on.
    let answer = json!({"jsonrpc": "2.0", "id": id,
        "result": {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}});
    assert_eq!(post(&f, &CLIENT, &answer.to_string()).status, 202);
    let (events, _) = s.finish();
    let last = json_of(events.last().unwrap());
    assert_eq!(last["id"], 1);
    assert_eq!(last["result"]["isError"], false);
    assert_eq!(last["result"]["content"][0]["text"], "LLM response: hi");
    // A second answer to the same id finds nothing waiting, and is still accepted.
    assert_eq!(post(&f, &CLIENT, &answer.to_string()).status, 202);

    // The client may refuse: its error becomes the tool's error.
    let mut s = run(post(
        &f,
        &CLIENT,
        &call(2, "test_sampling", json!({"prompt": "x"})),
    ));
    let (id, _) = await_request(&mut s, "sampling/createMessage");
    let refusal =
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": "User rejected"}});
    post(&f, &CLIENT, &refusal.to_string());
    let (events, _) = s.finish();
    let last = json_of(events.last().unwrap());
    assert_eq!(last["result"]["isError"], true);
    assert_eq!(
        last["result"]["structuredContent"]["error"]["code"],
        "ECLIENT_REFUSED"
    );
}

#[test]
fn elicitation_needs_the_declared_capability_and_a_stream() {
    let root = root_with_change();
    let f = stateful(&root);
    let error_code = |r: Response| -> Value {
        let last = match r.header("content-type") {
            Some("text/event-stream") => json_of(run(r).finish().0.last().unwrap()),
            _ => body_json(&r),
        };
        assert_eq!(last["result"]["isError"], true, "{last}");
        last["result"]["structuredContent"]["error"]["code"].clone()
    };
    // Declared nothing: refused before anything is sent.
    let sid = initialize(&f, json!({}));
    let r = post_in(
        &f,
        &sid,
        &call(1, "test_elicitation", json!({"message": "m"})),
    );
    assert_eq!(error_code(r), "ECLIENT_CAPABILITY");
    // Declared, but the client accepts only JSON: no stream to carry the request.
    let sid = initialize(&f, json!({"elicitation": {}}));
    let h = format!("Mcp-Session-Id: {sid}");
    let r = post(
        &f,
        &[CLIENT[0], "Accept: application/json", V, &h],
        &call(2, "test_elicitation", json!({"message": "m"})),
    );
    assert_eq!(error_code(r), "ENO_STREAM");
    // Declared and streamed: the round trip works in the session too.
    let mut s = run(post_in(
        &f,
        &sid,
        &call(3, "test_elicitation", json!({"message": "Who?"})),
    ));
    let (id, params) = await_request(&mut s, "elicitation/create");
    assert_eq!(params["message"], "Who?");
    assert_eq!(
        params["requestedSchema"]["required"],
        json!(["username", "email"])
    );
    let answer = json!({"jsonrpc": "2.0", "id": id,
        "result": {"action": "accept", "content": {"username": "u", "email": "e@x"}}});
    assert_eq!(post_in(&f, &sid, &answer.to_string()).status, 202);
    let (events, _) = s.finish();
    let text = json_of(events.last().unwrap())["result"]["content"][0]["text"].clone();
    assert!(text.as_str().unwrap().contains("action=accept"), "{text}");
}

#[test]
fn an_unanswered_request_times_out_with_a_clear_error() {
    let root = root_with_change();
    let f = server(&root, Sessions::Stateless, Duration::from_millis(200));
    let (events, _) = run(post(
        &f,
        &CLIENT,
        &call(1, "test_sampling", json!({"prompt": "x"})),
    ))
    .finish();
    let last = json_of(events.last().unwrap());
    assert_eq!(
        last["result"]["structuredContent"]["error"]["code"],
        "ECLIENT_TIMEOUT"
    );
    // The error says which setting to raise.
    assert!(
        last["result"]["structuredContent"]["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("CLIENT_REQUEST_TIMEOUT_MS"),
        "{last}"
    );
}

#[test]
fn legacy_sessions_carry_requests_and_their_answers() {
    let root = root_with_change();
    let f = stateless(&root);
    let (mut s, sid) = open_legacy(&f, &[]);
    let init = rpc(
        json!(1),
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {"sampling": {}}}),
    );
    post_message(&f, &sid, &init);
    post_message(&f, &sid, &call(2, "test_sampling", json!({"prompt": "p"})));
    let (id, _) = await_request(&mut s, "sampling/createMessage");
    let answer = json!({"jsonrpc": "2.0", "id": id,
        "result": {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}});
    assert_eq!(post_message(&f, &sid, &answer.to_string()).status, 202);
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 2));
    let last = messages(&s).into_iter().find(|m| m["id"] == 2).unwrap();
    assert_eq!(last["result"]["content"][0]["text"], "LLM response: ok");
}

/// Reads until a `notifications/resources/updated` for `uri` arrives.
fn await_update(s: &mut Streamed, uri: &str) {
    s.until(|evs, _| {
        evs.iter().any(|e| {
            let m = msg(e);
            m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri
        })
    });
    assert!(
        messages(s)
            .iter()
            .any(|m| m["params"]["uri"] == uri && m["method"] == "notifications/resources/updated"),
        "no update for {uri}"
    );
}

#[test]
fn a_subscriber_hears_of_a_change_on_disk_and_nothing_after_unsubscribing() {
    let root = root_with_change();
    let f = stateful(&root);
    let sid = initialize(&f, json!({}));
    let init = body_json(&post(
        &f,
        &CLIENT,
        &rpc(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-11-25"}),
        ),
    ));
    assert_eq!(
        init["result"]["capabilities"]["resources"]["subscribe"],
        true
    );
    let h = format!("Mcp-Session-Id: {sid}");
    let get = mcp::http::get(
        &f.env,
        &head("GET", "/mcp", &["Accept: text/event-stream", V, &h]),
        &reader(),
    );
    let mut s = run(get);
    // A call answered as JSON sends its log messages on the session's GET stream.
    let r = post_in(
        &f,
        &sid,
        &call(9, "change_validate", json!({"slug": "add-2fa"})),
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    s.until(|evs, _| {
        evs.iter()
            .any(|e| msg(e)["method"] == "notifications/message")
    });
    let uri = "change://add-2fa/proposal";
    let sub = |method: &str, uri: &str| {
        body_json(&post_in(
            &f,
            &sid,
            &rpc(json!(1), method, json!({"uri": uri})),
        ))
    };
    assert_eq!(sub("resources/subscribe", uri)["result"], json!({}));
    // Written by something else than the server (an editor, the CLI, git).
    std::fs::write(
        root.join("openspec/changes/add-2fa/proposal.md"),
        "# Change: 2FA\n\n## Why\nSafer logins, now.\n",
    )
    .unwrap();
    await_update(&mut s, uri);
    // A new change is a new entry in the list.
    std::fs::create_dir_all(root.join("openspec/changes/add-sso")).unwrap();
    s.until(|evs, _| {
        evs.iter()
            .any(|e| msg(e)["method"] == "notifications/resources/list_changed")
    });
    // Unknown resources and too many subscriptions are refused.
    assert_eq!(
        sub("resources/subscribe", "change://nope/proposal")["error"]["code"],
        -32002
    );
    assert_eq!(
        sub("resources/subscribe", "changes://active")["result"],
        json!({})
    );
    assert_eq!(
        sub("resources/subscribe", "changes://active?pageSize=1")["error"]["code"],
        -32602,
        "MAX_SUBSCRIPTIONS is 2 here"
    );
    assert_eq!(sub("resources/unsubscribe", uri)["result"], json!({}));
    // Ending the session forgets its subscriptions.
    let del = mcp::http::delete(&f.env, &head("DELETE", "/mcp", &[V, &h]), &reader());
    assert_eq!(del.status, 200);
    let Streamed { client, handle, .. } = s;
    drop(client);
    handle.join().unwrap();
}

#[test]
fn a_legacy_subscriber_hears_of_a_change_made_by_the_openspec_cli() {
    let root = workspace(&[
        (
            "openspec/changes/add-2fa/proposal.md",
            "# Change: 2FA\n\n## Why\nSafer logins for every account.\n\n## What Changes\n- Add two-factor login.\n",
        ),
        (
            "openspec/changes/add-2fa/specs/auth/spec.md",
            "## ADDED Requirements\n### Requirement: Two factors\nThe system SHALL ask for a second factor.\n\n#### Scenario: Login\n- **WHEN** a user logs in\n- **THEN** a code is asked for\n",
        ),
    ]);
    let f = stateless(&root);
    let (mut s, sid) = open_legacy(&f, &[]);
    post_message(
        &f,
        &sid,
        &rpc(
            json!(1),
            "initialize",
            json!({"protocolVersion": "2024-11-05"}),
        ),
    );
    // Subscribed to the active change's proposal, which the CLI is about to archive.
    let sub = rpc(
        json!(2),
        "resources/subscribe",
        json!({"uri": "change://add-2fa/proposal"}),
    );
    post_message(&f, &sid, &sub);
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 2));
    assert_eq!(
        messages(&s).into_iter().find(|m| m["id"] == 2).unwrap()["result"],
        json!({})
    );
    let (rc, _) = crate::golden::cli(
        "mcp_client/cli_archive_tells_subscribers",
        &root,
        &["archive", "add-2fa", "--yes", "--json"],
    );
    assert_eq!(rc, 0);
    // Archived: the active change's proposal is gone, which its subscriber hears.
    await_update(&mut s, "change://add-2fa/proposal");
}

#[test]
fn stateless_subscriptions_say_they_are_not_kept() {
    let root = root_with_change();
    let f = stateless(&root);
    let init = body_json(&post(
        &f,
        &CLIENT,
        &rpc(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-11-25"}),
        ),
    ));
    assert_eq!(
        init["result"]["capabilities"]["resources"]["subscribe"],
        false
    );
    assert_eq!(init["result"]["capabilities"]["logging"], json!({}));
    let r = body_json(&post(
        &f,
        &CLIENT,
        &rpc(
            json!(1),
            "resources/subscribe",
            json!({"uri": "change://add-2fa/proposal"}),
        ),
    ));
    assert!(
        r["result"]["_meta"]["task-mcp/subscriptions"]
            .as_str()
            .unwrap()
            .contains("MCP_SESSIONS=stateful")
    );
}

#[test]
fn openspec_tools_log_their_findings_to_a_session_that_listens() {
    let root = root_with_change();
    let f = stateless(&root);
    let (mut s, sid) = open_legacy(&f, &[]);
    post_message(
        &f,
        &sid,
        &rpc(
            json!(1),
            "initialize",
            json!({"protocolVersion": "2024-11-05"}),
        ),
    );
    // A change without deltas fails strict validation: each issue is logged at its level.
    post_message(
        &f,
        &sid,
        &call(2, "change_validate", json!({"slug": "add-2fa"})),
    );
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 2));
    let msgs = messages(&s);
    let result = msgs.iter().find(|m| m["id"] == 2).unwrap();
    assert_eq!(result["result"]["structuredContent"]["valid"], false);
    let logged: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert!(!logged.is_empty(), "{msgs:?}");
    assert!(
        logged
            .iter()
            .all(|m| m["params"]["data"]["tool"] == "change_validate")
    );
    assert!(logged.iter().any(|m| m["params"]["level"] == "error"));
    // At `critical` nothing comes through.
    post_message(
        &f,
        &sid,
        &rpc(json!(3), "logging/setLevel", json!({"level": "critical"})),
    );
    post_message(
        &f,
        &sid,
        &call(4, "change_validate", json!({"slug": "add-2fa"})),
    );
    s.until(|evs, _| evs.iter().skip(1).any(|e| msg(e)["id"] == 4));
    let n = messages(&s)
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .count();
    assert_eq!(n, logged.len());
}
