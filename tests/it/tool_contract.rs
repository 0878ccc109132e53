//! The tool contract a model relies on, over a real server: arguments are checked against each
//! tool's declared `inputSchema` on every transport before anything runs; `change_archive`'s
//! `skipSpecs` does what the CLI's `--skip-specs` does and `dryRun` shows exactly what the archive
//! then does, writing nothing; results carry no server path.

use serde_json::{Value, json};

use crate::golden::cli;
use crate::openspec_cli::{copy_tree, scratch, snapshot};
use crate::openspec_workflow::{ALICE_TOKEN, AUTH_DELTA, AUTH_SPEC, Mcp, seeded_server};
use crate::support::TestServer;

/// A valid call of each OpenSpec tool, and a field it requires (`None`: nothing required).
fn calls() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        ("change_open", json!({"slug": "add-x"}), Some("slug")),
        (
            "change_write",
            json!({"slug": "add-x", "file": "tasks.md", "content": "- [ ] 1.1 x\n"}),
            Some("content"),
        ),
        ("change_validate", json!({"slug": "add-x"}), Some("slug")),
        ("change_show", json!({"slug": "add-x"}), Some("slug")),
        ("change_list", json!({}), None),
        ("change_archive", json!({"slug": "add-x"}), Some("slug")),
        ("spec_list", json!({}), None),
        ("spec_show", json!({"id": "auth"}), Some("id")),
    ]
}

/// The three faults a careless caller makes, for one valid call.
fn faults(args: &Value, required: Option<&str>) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    let mut unknown = args.clone();
    unknown["bogus"] = json!(1);
    out.push((unknown, "/bogus".to_owned()));
    let mut wrong = args.clone();
    let field = required.unwrap_or("bogus");
    wrong[field] = json!(["not", "a", "string"]);
    out.push((wrong, format!("/{field}")));
    if let Some(field) = required {
        let mut missing = args.clone();
        missing.as_object_mut().unwrap().remove(field);
        out.push((missing, format!("/{field}")));
    }
    out
}

/// The error object of a seed API answer (`POST /mcp` NDJSON or `POST /sse`).
fn seed_error(srv: &TestServer, path: &str, tool: &str, input: &Value) -> Value {
    let body = json!({"tool": tool, "input": input}).to_string();
    let r = srv.request(&format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ALICE_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let text = r.text();
    let lines: Vec<Value> = if path == "/sse" {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    lines
        .into_iter()
        .find(|l| l["error"].is_object())
        .unwrap_or_else(|| panic!("{path} {tool} {input}: no error in {text}"))["error"]
        .clone()
}

#[test]
fn every_tool_refuses_unknown_mistyped_and_missing_arguments_on_every_transport() {
    // About 150 calls in a burst: no rate limit in the way.
    let srv = seeded_server(&[("RATE_LIMIT", "0")]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    alice
        .call("change_open", json!({"slug": "add-x"}))
        .expect("the change opens");
    let before = snapshot(&srv.root);
    for (tool, args, required) in calls() {
        for (bad, pointer) in faults(&args, required) {
            let e = alice.call(tool, bad.clone()).unwrap_err();
            assert_eq!(e["code"], "EINVALID_ARGUMENTS", "{tool} {bad}: {e}");
            assert_eq!(
                e["details"]["pointer"],
                pointer.as_str(),
                "{tool} {bad}: {e}"
            );
            if pointer == "/bogus" {
                let allowed = e["details"]["allowed"].as_array().unwrap();
                assert!(required.is_none_or(|r| allowed.contains(&json!(r))), "{e}");
            }
            for path in ["/mcp", "/sse"] {
                let e = seed_error(&srv, path, tool, &bad);
                assert_eq!(e["code"], "EINVALID_ARGUMENTS", "{path} {tool} {bad}: {e}");
                assert_eq!(e["details"]["pointer"], pointer.as_str(), "{path} {tool}");
            }
        }
    }
    assert!(
        snapshot(&srv.root) == before,
        "a refused call changed the tree"
    );
}

/// A change whose delta touches the auth spec, with its tasks done.
fn with_change(srv: &TestServer, alice: &mut Mcp<'_>) {
    alice.initialize();
    alice
        .call(
            "change_open",
            json!({"slug": "add-2fa", "title": "Two factor"}),
        )
        .unwrap();
    for (file, content) in [
        ("specs/auth/spec.md", AUTH_DELTA),
        (
            "tasks.md",
            "## 1. Work\n- [x] 1.1 Do it\n- [ ] 1.2 Test it\n",
        ),
    ] {
        alice
            .call(
                "change_write",
                json!({"slug": "add-2fa", "file": file, "content": content}),
            )
            .unwrap();
    }
    assert!(srv.root.join("openspec/changes/add-2fa").is_dir());
}

#[test]
fn a_dry_run_writes_nothing_and_its_plan_is_what_the_archive_then_does() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    with_change(&srv, &mut alice);
    let before = snapshot(&srv.root);
    let plan = alice
        .call("change_archive", json!({"slug": "add-2fa", "dryRun": true}))
        .unwrap();
    assert!(snapshot(&srv.root) == before, "the dry run wrote");
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["archived"], false);
    assert!(
        plan["warnings"]
            .as_array()
            .unwrap()
            .contains(&json!("1/2 tasks done")),
        "{plan}"
    );
    let specs = plan["plan"]["specs"].as_array().unwrap();
    assert_eq!(specs.len(), 1, "{plan}");
    assert_eq!(specs[0]["path"], "openspec/specs/auth/spec.md");
    assert_eq!(specs[0]["action"], "update");
    assert_eq!(
        (
            &specs[0]["added"],
            &specs[0]["modified"],
            &specs[0]["removed"],
            &specs[0]["renamed"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1))
    );
    let done = alice
        .call("change_archive", json!({"slug": "add-2fa"}))
        .unwrap();
    assert_eq!(done["archivedAs"], plan["archivedAs"]);
    assert_eq!(done["target"], plan["target"]);
    assert_eq!(done["totals"], plan["totals"]);
    assert_eq!(done["warnings"], plan["warnings"]);
    let after = std::fs::read_to_string(srv.root.join("openspec/specs/auth/spec.md")).unwrap();
    assert_eq!(
        specs[0]["diff"].as_str().unwrap(),
        task_mcp::openspec::diff::unified(
            "openspec/specs/auth/spec.md",
            Some(AUTH_SPEC),
            Some(&after)
        ),
        "the plan's diff is the change the archive made"
    );
    assert!(
        srv.root
            .join(done["target"].as_str().unwrap())
            .join("proposal.md")
            .is_file()
    );
}

#[test]
fn a_dry_run_refusal_has_the_real_archives_code_and_writes_nothing() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    with_change(&srv, &mut alice);
    alice
        .call(
            "change_write",
            json!({"slug": "add-2fa", "file": "specs/auth/spec.md",
                   "content": "## MODIFIED Requirements\n### Requirement: Nowhere\nThe system SHALL x.\n\n#### Scenario: s\n- a\n"}),
        )
        .unwrap();
    let before = snapshot(&srv.root);
    let dry = alice
        .call("change_archive", json!({"slug": "add-2fa", "dryRun": true}))
        .unwrap_err();
    assert!(snapshot(&srv.root) == before, "the dry run wrote");
    let real = alice
        .call("change_archive", json!({"slug": "add-2fa"}))
        .unwrap_err();
    assert_eq!(dry["code"], real["code"], "{dry} vs {real}");
    assert_eq!(dry["message"], real["message"]);
    // The real refusal leaves an empty `changes/archive/`, as `openspec archive` does (recorded
    // in tests/fixtures/openspec/cli/modified_unknown_requirement_aborts.archive.json).
    let now = snapshot(&srv.root);
    let changed: Vec<_> = now
        .keys()
        .chain(before.keys())
        .filter(|k| now.get(*k) != before.get(*k))
        .collect();
    assert_eq!(
        changed,
        ["openspec/changes/archive/"],
        "the refused archive wrote"
    );
}

/// `skipSpecs` leaves every spec byte-identical and moves the folder as
/// `openspec archive --yes --skip-specs` does (the CLI's tree is a recorded fixture).
#[test]
fn skip_specs_moves_the_folder_and_leaves_the_specs_as_the_cli_does() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    with_change(&srv, &mut alice);
    // The CLI archives a copy without our lease file.
    let cli_root = scratch("skip-specs");
    copy_tree(&srv.root.join("openspec"), &cli_root.join("openspec"));
    std::fs::remove_file(cli_root.join("openspec/changes/add-2fa/.lock")).unwrap();
    let (rc, out) = cli(
        "contract/skip-specs.archive",
        &cli_root,
        &["archive", "add-2fa", "--yes", "--skip-specs", "--json"],
    );
    assert_eq!(rc, 0, "{out}");
    let done = alice
        .call(
            "change_archive",
            json!({"slug": "add-2fa", "skipSpecs": true}),
        )
        .unwrap();
    assert_eq!(done["specsUpdated"], false, "{done}");
    assert_eq!(
        std::fs::read_to_string(srv.root.join("openspec/specs/auth/spec.md")).unwrap(),
        AUTH_SPEC
    );
    let ours: std::collections::BTreeMap<_, _> = snapshot(&srv.root)
        .into_iter()
        .filter(|(k, _)| !k.ends_with("/receipt.json") && !k.ends_with("/.archive-undo.json"))
        .collect();
    let theirs = snapshot(&cli_root);
    assert!(
        ours == theirs,
        "trees differ:\nours:   {:?}\ntheirs: {:?}",
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(cli_root);
}

/// Every answer names files relative to the repository root, never by the server's path.
#[test]
fn no_result_carries_the_server_root_path() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    let root = srv.root.to_string_lossy().into_owned();
    let mut answers = Vec::new();
    for (tool, args) in [
        ("change_open", json!({"slug": "add-x", "title": "X"})),
        (
            "change_write",
            json!({"slug": "add-x", "file": "specs/auth/spec.md", "content": AUTH_DELTA}),
        ),
        ("change_validate", json!({"slug": "add-x"})),
        ("change_show", json!({"slug": "add-x"})),
        ("change_list", json!({})),
        ("spec_list", json!({})),
        ("spec_show", json!({"id": "auth"})),
        ("change_show", json!({"slug": "no-such"})),
        ("change_archive", json!({"slug": "add-x", "dryRun": true})),
        ("change_archive", json!({"slug": "add-x"})),
        ("change_open", json!({"slug": "add-x"})),
    ] {
        let v = alice.rpc("tools/call", json!({"name": tool, "arguments": args}));
        answers.push(v.to_string());
    }
    for uri in ["spec://auth", "change://add-x/proposal"] {
        answers.push(alice.rpc("resources/read", json!({"uri": uri})).to_string());
    }
    answers.push(alice.rpc("resources/list", json!({})).to_string());
    for a in &answers {
        assert!(!a.contains(&root), "the root path leaked: {a}");
    }
    assert!(
        answers[0].contains("openspec/changes/add-x/proposal.md"),
        "{}",
        answers[0]
    );
}

/// The seed API's refusals before a stream starts have the one error shape, with the request's
/// id (the `X-Request-Id` header) as `requestId` and `correlationId`; error events inside a stream
/// carry the id and a timestamp, and no null field.
#[test]
fn seed_errors_carry_the_request_id_and_a_timestamp() {
    let srv = seeded_server(&[("RATE_LIMIT", "0")]);
    let post = |path: &str, token: &str, body: &str| {
        srv.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let reader = crate::openspec_workflow::READER_TOKEN;
    for (path, token, body, status) in [
        ("/mcp", ALICE_TOKEN, r#"{"tool":"no_such_tool"}"#, 404),
        ("/sse", ALICE_TOKEN, r#"{"tool":"no_such_tool"}"#, 404),
        (
            "/mcp",
            ALICE_TOKEN,
            r#"{"tool":"change_open","input":[1]}"#,
            400,
        ),
        (
            "/sse",
            reader,
            r#"{"tool":"change_open","input":{"slug":"a-b"}}"#,
            403,
        ),
    ] {
        let r = post(path, token, body);
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        let v = r.json();
        let id = r.header("x-request-id").expect("X-Request-Id").to_owned();
        assert_eq!(v["requestId"], id.as_str(), "{v}");
        assert_eq!(v["correlationId"], id.as_str(), "{v}");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    for path in ["/mcp", "/sse"] {
        let r = post(
            path,
            ALICE_TOKEN,
            r#"{"tool":"change_show","input":{"slug":"no-such"}}"#,
        );
        let id = r.header("x-request-id").expect("X-Request-Id").to_owned();
        let text = r.text();
        let line = text
            .lines()
            .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["error"].is_object())
            .unwrap_or_else(|| panic!("{path}: no error in {text}"));
        assert_eq!(line["requestId"], id.as_str(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(!line.to_string().contains("null"), "{line}");
    }
}
