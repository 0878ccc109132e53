//! The whole OpenSpec workflow through the MCP endpoint of a real server (TLS, tokens, roles):
//! open, write, validate, show, archive; then the tree the server leaves is checked by the real
//! `openspec` CLI and compared byte for byte with what `openspec archive <id> --yes` makes of a
//! copy of the same pre-archive tree.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::golden::cli;
use crate::openspec_cli::{copy_tree, relativize, scratch, snapshot};
use crate::support::{Reply, TestServer};

/// Tokens of the three roles (`name:role:token`).
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
pub const ALICE_TOKEN: &str = "alice-token-0123456789abcdef";
pub const BOB_TOKEN: &str = "bobby-token-0123456789abcdef";
pub const READER_TOKEN: &str = "rita-token-0123456789abcdefg";

/// The `AUTH_TOKENS` value naming them.
pub fn tokens() -> String {
    format!(
        "admin:admin:{ADMIN_TOKEN},alice:writer:{ALICE_TOKEN},bob:writer:{BOB_TOKEN},rita:reader:{READER_TOKEN}"
    )
}

/// The main spec the workflow's delta changes: one requirement per delta operation.
pub const AUTH_SPEC: &str = "# auth Specification\n\n## Purpose\nAuthentication for every user of the product, end to end.\n\n## Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: ok\n- **WHEN** valid credentials\n- **THEN** the user is in\n\n### Requirement: Legacy Tokens\nThe system SHALL accept legacy tokens.\n\n#### Scenario: legacy\n- **WHEN** a legacy token\n- **THEN** accepted\n\n### Requirement: Session Timeout\nThe system SHALL end idle sessions.\n\n#### Scenario: idle\n- **WHEN** idle for an hour\n- **THEN** logged out\n";

/// A delta with ADDED, MODIFIED, REMOVED and RENAMED requirements against [`AUTH_SPEC`].
pub const AUTH_DELTA: &str = "## ADDED Requirements\n### Requirement: Two Factor\nThe system SHALL ask for a second factor.\n\n#### Scenario: code\n- **WHEN** a user logs in\n- **THEN** a one-time code is asked for\n\n## MODIFIED Requirements\n### Requirement: Login\nThe system SHALL let users log in with email and password.\n\n#### Scenario: ok\n- **WHEN** valid credentials\n- **THEN** the user is in\n\n## REMOVED Requirements\n### Requirement: Legacy Tokens\n**Reason**: nobody uses them\n**Migration**: log in again\n\n## RENAMED Requirements\n- FROM: `### Requirement: Session Timeout`\n- TO: `### Requirement: Idle Timeout`\n";

/// An MCP client over TLS with one bearer token.
pub struct Mcp<'a> {
    srv: &'a TestServer,
    token: &'a str,
    session: Option<String>,
    next_id: u64,
}

impl<'a> Mcp<'a> {
    pub fn new(srv: &'a TestServer, token: &'a str) -> Self {
        Self {
            srv,
            token,
            session: None,
            next_id: 1,
        }
    }

    /// POSTs `body` to `/mcp` and returns the raw reply.
    pub fn post(&self, body: &str) -> Reply {
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        self.srv.request(&format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        ))
    }

    /// One JSON-RPC request; the whole response object.
    pub fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.post(&body.to_string());
        if let Some(s) = r.header("mcp-session-id") {
            self.session = Some(s.to_string());
        }
        let v = if r
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            r.text()
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|v| v["id"] == id)
                .unwrap_or_else(|| panic!("no response in the stream: {}", r.text()))
        } else {
            r.json()
        };
        assert_eq!(v["id"], id, "{v}");
        v
    }

    /// `initialize` then `notifications/initialized`.
    pub fn initialize(&mut self) -> Value {
        let v = self.rpc(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "workflow-test", "version": "0"}}),
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(self.post(&note.to_string()).status, 202);
        v
    }

    /// `tools/call`: `Ok(structuredContent)` or `Err(the error object of an isError result)`.
    pub fn call(&mut self, tool: &str, args: Value) -> Result<Value, Value> {
        let v = self.rpc("tools/call", json!({"name": tool, "arguments": args}));
        let result = &v["result"];
        assert!(result.is_object(), "tools/call {tool} failed: {v}");
        let text = result["content"][0]["text"].as_str().unwrap_or("");
        let structured = result["structuredContent"].clone();
        assert_eq!(
            serde_json::from_str::<Value>(text).ok(),
            Some(structured.clone()),
            "the text content repeats structuredContent"
        );
        if result["isError"] == true {
            Err(structured.get("error").cloned().unwrap_or(structured))
        } else {
            Ok(structured)
        }
    }

    /// `resources/read` of one URI: its first content's text.
    pub fn read(&mut self, uri: &str) -> Result<String, Value> {
        let v = self.rpc("resources/read", json!({"uri": uri}));
        match v.get("result") {
            Some(r) => Ok(r["contents"][0]["text"].as_str().unwrap().to_string()),
            None => Err(v["error"].clone()),
        }
    }
}

/// Starts a server whose root holds `openspec/specs/auth/spec.md` = [`AUTH_SPEC`].
pub fn seeded_server(extra_env: &[(&str, &str)]) -> TestServer {
    let tokens = tokens();
    let mut env = vec![("AUTH_TOKENS", tokens.as_str())];
    env.extend_from_slice(extra_env);
    let srv = TestServer::start(&env);
    let spec = srv.root.join("openspec/specs/auth/spec.md");
    std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
    std::fs::write(spec, AUTH_SPEC).unwrap();
    srv
}

/// Renames `<date>-<id>` to `DATE-<id>` in every key so trees archived on different days compare.
fn undate(
    tree: BTreeMap<String, Option<Vec<u8>>>,
    archived_as: &str,
) -> BTreeMap<String, Option<Vec<u8>>> {
    let id = &archived_as[11..];
    tree.into_iter()
        .map(|(k, v)| (k.replace(archived_as, &format!("DATE-{id}")), v))
        .collect()
}

/// Fails naming the paths where two snapshots differ.
pub fn assert_same_tree(
    got: &BTreeMap<String, Option<Vec<u8>>>,
    want: &BTreeMap<String, Option<Vec<u8>>>,
    when: &str,
) {
    let differing: Vec<&String> = got
        .keys()
        .chain(want.keys().filter(|k| !got.contains_key(*k)))
        .filter(|k| got.get(*k) != want.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "{when}: the trees differ at {differing:?}"
    );
}

fn error_code(e: &Value) -> &str {
    e["code"].as_str().unwrap_or_default()
}

#[test]
fn the_whole_workflow_through_mcp_ends_in_the_tree_the_cli_would_make() {
    let srv = seeded_server(&[]);
    let root = srv.root.canonicalize().unwrap();
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    let init = alice.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "task-mcp", "{init}");

    // tools/list: portable names and object-rooted schemas.
    let list = alice.rpc("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    let name_ok = regex::Regex::new("^[A-Za-z0-9_-]{1,64}$").unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in [
        "change_open",
        "change_write",
        "change_validate",
        "change_show",
        "change_list",
        "change_archive",
        "spec_list",
        "spec_show",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for t in tools {
        let name = t["name"].as_str().unwrap();
        assert!(name_ok.is_match(name), "{name}");
        for key in ["inputSchema", "outputSchema"] {
            let s = &t[key];
            // Only the conformance fixtures return plain content blocks, without an output schema.
            if key == "outputSchema" && s.is_null() {
                assert!(
                    name.starts_with("test_") || name.starts_with("json_schema"),
                    "{name}"
                );
                continue;
            }
            assert_eq!(s["type"], "object", "{name} {key}");
            for k in ["oneOf", "anyOf", "allOf"] {
                assert!(s.get(k).is_none(), "{name} {key} has top-level {k}");
            }
        }
    }

    // change_open: a new change from the feature template, leased to alice.
    let opened = alice
        .call(
            "change_open",
            json!({"slug": "add-2fa", "title": "Two factor login", "template": "feature", "rationale": "Passwords alone are not enough."}),
        )
        .unwrap();
    assert_eq!(opened["created"], true);
    assert_eq!(opened["lock"]["owner"], "alice");
    assert_eq!(
        opened["resourceUris"]["proposal"],
        "change://add-2fa/proposal"
    );

    // change_write: proposal, tasks, design and the delta.
    let proposal = "# Change: Two factor login\n\n## Why\nPasswords alone are not enough.\n\n## What Changes\n- Add a second factor\n- Reword login, drop legacy tokens, rename the session timeout\n\n## Impact\n- Affected specs: auth\n";
    let tasks =
        "## 1. Implementation\n- [x] 1.1 Add the code prompt\n- [x] 1.2 Remove legacy tokens\n";
    let design = "## Context\nTOTP only.\n\n## Decisions\n- RFC 6238 codes\n";
    for (file, content) in [
        ("proposal.md", proposal),
        ("tasks.md", tasks),
        ("design.md", design),
        ("specs/auth/spec.md", AUTH_DELTA),
    ] {
        let w = alice
            .call(
                "change_write",
                json!({"slug": "add-2fa", "file": file, "content": content}),
            )
            .unwrap();
        assert_eq!(w["bytes"], content.len(), "{file}");
        let on_disk =
            std::fs::read_to_string(root.join("openspec/changes/add-2fa").join(file)).unwrap();
        assert_eq!(on_disk, content, "{file}");
    }

    // Resources read back what was written; spec:// serves the main spec.
    assert_eq!(alice.read("change://add-2fa/proposal").unwrap(), proposal);
    assert_eq!(alice.read("change://add-2fa/tasks").unwrap(), tasks);
    assert_eq!(alice.read("change://add-2fa/design").unwrap(), design);
    assert_eq!(
        alice.read("change://add-2fa/delta/auth").unwrap(),
        AUTH_DELTA
    );
    assert_eq!(alice.read("spec://auth").unwrap(), AUTH_SPEC);
    assert_eq!(alice.read("proposal://add-2fa").unwrap(), proposal);
    let unknown = alice.read("change://add-2fa/nothing").unwrap_err();
    assert_eq!(unknown["code"], -32002, "{unknown}");

    // change_validate agrees with the CLI's strict validate, and the merge dry run passes.
    let v = alice
        .call("change_validate", json!({"slug": "add-2fa"}))
        .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        v["archive"]["totals"],
        json!({"added": 1, "modified": 1, "removed": 1, "renamed": 1})
    );
    let (rc, cli_v) = cli(
        "workflow/whole.validate",
        &root,
        &["validate", "add-2fa", "--strict", "--json"],
    );
    assert_eq!(rc, 0, "{cli_v}");

    // change_show is `openspec show --json` (without `root`) plus progress and the lease.
    let mut shown = alice
        .call("change_show", json!({"slug": "add-2fa"}))
        .unwrap();
    assert_eq!(shown["progress"]["completed"], 2);
    assert_eq!(shown["lock"]["owner"], "alice");
    let obj = shown.as_object_mut().unwrap();
    obj.remove("progress");
    obj.remove("lock");
    let (rc, mut cli_show) = cli("workflow/whole.show", &root, &["show", "add-2fa", "--json"]);
    assert_eq!(rc, 0, "{cli_show}");
    cli_show.as_object_mut().unwrap().remove("root");
    assert_eq!(shown, cli_show);
    assert_eq!(shown["deltaCount"], 4);

    // The CLI archives a copy of the pre-archive tree. The lease file is ours: the server
    // removes it from the archived folder, so it leaves the copy too.
    let cli_root = scratch("cli-archive");
    copy_tree(&root.join("openspec"), &cli_root.join("openspec"));
    std::fs::remove_file(cli_root.join("openspec/changes/add-2fa/.lock")).unwrap();
    let (rc, cli_out) = cli(
        "workflow/whole.archive",
        &cli_root,
        &["archive", "add-2fa", "--yes", "--json"],
    );
    assert_eq!(rc, 0, "{cli_out}");

    let a = alice
        .call("change_archive", json!({"slug": "add-2fa"}))
        .unwrap();
    assert_eq!(a["archived"], true);
    assert_eq!(a["alreadyArchived"], false);
    assert_eq!(
        a["totals"],
        json!({"added": 1, "modified": 1, "removed": 1, "renamed": 1})
    );
    let ours_as = a["archivedAs"].as_str().unwrap().to_string();
    assert!(ours_as.ends_with("-add-2fa") && ours_as.len() == "2026-01-01-add-2fa".len());
    let cli_archive = &cli_out["archive"];
    let cli_as = cli_archive["archivedAs"].as_str().unwrap().to_string();
    assert_eq!(cli_archive["totals"], a["totals"], "{cli_out}");

    // Byte for byte, but for the receipt and the undo record (ours alone) and the date in the
    // folder name.
    let receipt_key = format!("openspec/changes/archive/{ours_as}/receipt.json");
    let mut ours = snapshot(&root);
    assert!(
        ours.remove(&format!(
            "openspec/changes/archive/{ours_as}/.archive-undo.json"
        ))
        .is_some(),
        "the archive keeps its undo record"
    );
    let receipt: Value = serde_json::from_slice(
        ours.remove(&receipt_key)
            .flatten()
            .expect("a receipt in the archived folder")
            .as_slice(),
    )
    .unwrap();
    assert_eq!(receipt, a["receipt"]);
    assert_eq!(receipt["actor"]["name"], "alice");
    let theirs = snapshot(&cli_root);
    let (ours, theirs) = (undate(ours, &ours_as), undate(theirs, &cli_as));
    assert_same_tree(&ours, &theirs, "ours vs the CLI's archive");

    // The CLI accepts what the server left.
    let (rc, all) = cli(
        "workflow/whole.validate-all",
        &root,
        &["validate", "--all", "--strict", "--json"],
    );
    assert_eq!(rc, 0, "{}", relativize(&all, &root));
    let (rc, specs) = cli(
        "workflow/whole.list-specs",
        &root,
        &["list", "--specs", "--json"],
    );
    assert_eq!(rc, 0);
    assert_eq!(
        specs["specs"],
        json!([{"id": "auth", "requirementCount": 3}])
    );

    // Archiving again answers alreadyArchived with the stored receipt; the spec reads back.
    let again = alice
        .call("change.archive", json!({"slug": "add-2fa"}))
        .unwrap();
    assert_eq!(again["alreadyArchived"], true);
    assert_eq!(again["receipt"], receipt);
    let spec_now = std::fs::read_to_string(root.join("openspec/specs/auth/spec.md")).unwrap();
    assert_eq!(alice.read("spec://auth").unwrap(), spec_now);
    let _ = std::fs::remove_dir_all(cli_root);
}

#[test]
fn dotted_aliases_work_in_tools_call_and_the_seed_ndjson_api() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    let opened = alice
        .call(
            "change.open",
            json!({"slug": "via-alias", "template": "chore"}),
        )
        .unwrap();
    assert_eq!(opened["created"], true);
    // The seed API: POST /mcp {"tool","input"} answers NDJSON start, result, end.
    let body = json!({"tool": "change.open", "input": {"slug": "via-seed", "template": "bugfix"}})
        .to_string();
    let r = alice.post(&body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["type"] != "heartbeat")
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["start", "result", "end"], "{lines:?}");
    assert_eq!(lines[1]["result"]["created"], true);
    assert_eq!(lines[1]["result"]["lock"]["owner"], "alice");
    let (rc, v) = cli(
        "workflow/dotted-aliases.validate",
        &srv.root,
        &["validate", "via-seed", "--strict", "--json"],
    );
    assert_eq!(rc, 0, "{v}");
    // A seed call of a writing tool that fails reports its code in an error line.
    let body = json!({"tool": "change.write", "input": {"slug": "via-seed", "file": "../escape.md", "content": "x"}})
        .to_string();
    let text = alice.post(&body).text();
    let error = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "error")
        .unwrap_or_else(|| panic!("no error line: {text}"));
    // The file pattern of change_write's inputSchema refuses it before the tool runs.
    assert_eq!(error["error"]["code"], "EINVALID_ARGUMENTS", "{error}");
    assert_eq!(error["error"]["details"]["pointer"], "/file", "{error}");
}

#[test]
fn a_reader_token_sees_and_reads_but_cannot_write() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    alice.call("change_open", json!({"slug": "add-x"})).unwrap();
    let before = snapshot(&srv.root);
    let mut rita = Mcp::new(&srv, READER_TOKEN);
    rita.initialize();
    let list = rita.rpc("tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for writer in ["change_open", "change_write", "change_archive"] {
        assert!(!names.contains(&writer), "a reader is offered {writer}");
    }
    assert!(names.contains(&"change_show"));
    for (tool, args) in [
        (
            "change_write",
            json!({"slug": "add-x", "file": "tasks.md", "content": "- [x] a\n"}),
        ),
        (
            "change.write",
            json!({"slug": "add-x", "file": "tasks.md", "content": "- [x] a\n"}),
        ),
        ("change_open", json!({"slug": "add-y"})),
        ("change_archive", json!({"slug": "add-x"})),
    ] {
        let v = rita.rpc("tools/call", json!({"name": tool, "arguments": args}));
        let refused = v.get("error").is_some() || v["result"]["isError"] == true;
        assert!(refused, "a reader called {tool}: {v}");
    }
    let seed = json!({"tool": "change.write", "input": {"slug": "add-x", "file": "tasks.md", "content": "x"}});
    assert_eq!(rita.post(&seed.to_string()).status, 403);
    assert_same_tree(&snapshot(&srv.root), &before, "after the reader's calls");
    // Reading is allowed.
    let shown = rita.call("change_show", json!({"slug": "add-x"})).unwrap();
    assert_eq!(shown["lock"]["owner"], "alice");
    assert!(rita.read("change://add-x/proposal").is_ok());
}

#[test]
fn a_second_identity_gets_elocked_with_the_owner() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    let mut bob = Mcp::new(&srv, BOB_TOKEN);
    alice.initialize();
    bob.initialize();
    alice
        .call("change_open", json!({"slug": "add-x", "ttl": 600}))
        .unwrap();
    let tasks = srv.root.join("openspec/changes/add-x/tasks.md");
    let before = std::fs::read(&tasks).unwrap();
    for (tool, args) in [
        ("change_open", json!({"slug": "add-x"})),
        (
            "change_write",
            json!({"slug": "add-x", "file": "tasks.md", "content": "- [x] mine\n"}),
        ),
        ("change_archive", json!({"slug": "add-x"})),
    ] {
        let e = bob.call(tool, args).unwrap_err();
        assert_eq!(error_code(&e), "ELOCKED", "{tool}: {e}");
        assert_eq!(e["details"]["owner"], "alice", "{tool}: {e}");
        assert_eq!(e["details"]["ttl"], 600, "{tool}: {e}");
        assert!(e["details"]["since"].is_u64(), "{tool}: {e}");
    }
    assert_eq!(std::fs::read(&tasks).unwrap(), before);
    // The owner keeps writing.
    alice
        .call(
            "change_write",
            json!({"slug": "add-x", "file": "tasks.md", "content": "- [x] mine\n"}),
        )
        .unwrap();
}

#[test]
fn change_write_paths_that_escape_are_refused_and_write_nothing() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    alice.call("change_open", json!({"slug": "add-x"})).unwrap();
    // A symlinked capability directory inside the change must not be followed.
    let outside = scratch("outside");
    std::os::unix::fs::symlink(
        &outside,
        srv.root.join("openspec/changes/add-x/specs/linked"),
    )
    .unwrap();
    let before = snapshot(&srv.root);
    for file in [
        "../escape.md",
        "../../specs/auth/spec.md",
        "/etc/passwd.md",
        "specs/../../other/proposal.md",
        "specs/auth/../../../x/spec.md",
        "specs\\auth\\spec.md",
        "specs/%2e%2e/spec.md",
        "specs/auth%2fx/spec.md",
        "specs/auth/spec.md\u{0}.md",
        "specs/linked/spec.md",
        ".lock",
        ".openspec.yaml",
        "specs/spec.md",
        "notes/readme.md",
        "./proposal.md",
        "proposal.md/",
    ] {
        let e = alice
            .call(
                "change_write",
                json!({"slug": "add-x", "file": file, "content": "# pwned\n"}),
            )
            .unwrap_err();
        let code = error_code(&e);
        assert!(
            matches!(
                code,
                "EPATH_ESCAPE" | "EBADSHAPE_SECURITY_VIOLATION" | "EBADSLUG" | "EINVALID_ARGUMENTS"
            ),
            "{file:?} answered {e}"
        );
    }
    for slug in ["../add-x", "add-x/..", "archive"] {
        let e = alice
            .call(
                "change_write",
                json!({"slug": slug, "file": "proposal.md", "content": "x"}),
            )
            .unwrap_err();
        assert!(
            matches!(
                error_code(&e),
                "EBADSLUG" | "ENOCHANGE" | "EPATH_ESCAPE" | "EINVALID_ARGUMENTS"
            ),
            "{slug:?} answered {e}"
        );
    }
    assert_same_tree(&snapshot(&srv.root), &before, "after the refused writes");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!srv.root.join("escape.md").exists());
    let _ = std::fs::remove_dir_all(outside);
}

/// `changes/archive` is the archive, not a change: `archive` is a valid slug by the grammar, so
/// without a guard `change_open` would lease it and `change_write` would write into it.
#[test]
fn the_archive_folder_cannot_be_opened_or_written_as_a_change() {
    let srv = seeded_server(&[]);
    std::fs::create_dir_all(srv.root.join("openspec/changes/archive/2025-01-01-old")).unwrap();
    let before = snapshot(&srv.root);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    for (tool, args) in [
        ("change_open", json!({"slug": "archive"})),
        (
            "change_write",
            json!({"slug": "archive", "file": "proposal.md", "content": "# x\n"}),
        ),
        ("change_archive", json!({"slug": "archive"})),
        ("change_show", json!({"slug": "archive"})),
    ] {
        let e = alice.call(tool, args).unwrap_err();
        assert_eq!(error_code(&e), "EBADSLUG", "{tool}: {e}");
    }
    assert_same_tree(&snapshot(&srv.root), &before, "after calls on 'archive'");
}

/// Parsing the system time zone on a 256 KiB pool worker overflowed its stack and aborted the
/// whole process on the first `change_open`; the zone is now read once at start.
#[test]
fn opening_a_change_over_tls_does_not_overflow_a_worker_stack() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    let v = alice
        .call("change_open", json!({"slug": "add-zone"}))
        .unwrap();
    assert_eq!(v["created"], true);
    let meta =
        std::fs::read_to_string(srv.root.join("openspec/changes/add-zone/.openspec.yaml")).unwrap();
    assert!(meta.contains("created: 20"), "{meta}");
}

/// Retries of one archive that overlap (a client timing out and calling again) must each end
/// as "archived" — one archive, the others `alreadyArchived` or ELOCKED while it runs — never
/// an I/O error or `archive_change_not_found` from a folder that moved under them.
#[test]
fn overlapping_archive_calls_by_the_owner_end_archived_once() {
    let srv = seeded_server(&[]);
    for round in 0..4 {
        let slug = format!("race-archive-{round}");
        let mut alice = Mcp::new(&srv, ALICE_TOKEN);
        alice
            .call("change_open", json!({"slug": slug, "template": "chore"}))
            .unwrap();
        alice
            .call(
                "change_write",
                json!({"slug": slug, "file": "tasks.md", "content": "- [x] done\n"}),
            )
            .unwrap();
        let n = 6;
        let barrier = std::sync::Barrier::new(n);
        let results: Vec<Result<Value, Value>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = Mcp::new(&srv, ALICE_TOKEN);
                        barrier.wait();
                        c.call("change_archive", json!({"slug": slug}))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let fresh = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|v| v["alreadyArchived"] == false))
            .count();
        assert_eq!(fresh, 1, "{results:?}");
        for r in &results {
            match r {
                Ok(v) => assert_eq!(v["archived"], true, "{v}"),
                Err(e) => assert_eq!(error_code(e), "ELOCKED", "{results:?}"),
            }
        }
    }
}

/// A repository may hold symlinks (a hostile checkout): no tool or resource may serve the
/// content of a file outside the tree through a symlinked change file.
#[test]
fn symlinked_change_files_never_leak_outside_content() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    alice.call("change_open", json!({"slug": "add-x"})).unwrap();
    let outside = scratch("secret");
    let secret = "- [ ] TOP-SECRET-0123456789\n";
    std::fs::write(outside.join("secret.md"), secret).unwrap();
    let change = srv.root.join("openspec/changes/add-x");
    for f in ["tasks.md", "proposal.md", "design.md"] {
        let _ = std::fs::remove_file(change.join(f));
        std::os::unix::fs::symlink(outside.join("secret.md"), change.join(f)).unwrap();
    }
    std::fs::create_dir_all(change.join("specs/auth")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.md"), change.join("specs/auth/spec.md"))
        .unwrap();
    let mut answers = Vec::new();
    for (tool, args) in [
        ("change_open", json!({"slug": "add-x"})),
        ("change_show", json!({"slug": "add-x"})),
        ("change_list", json!({})),
        ("change_validate", json!({"slug": "add-x"})),
        ("change_archive", json!({"slug": "add-x"})),
    ] {
        answers.push(format!("{tool}: {:?}", alice.call(tool, args)));
    }
    for uri in [
        "change://add-x/tasks",
        "change://add-x/proposal",
        "change://add-x/design",
        "change://add-x/delta",
        "change://add-x/delta/auth",
        "task://add-x",
        "changes://active",
    ] {
        answers.push(format!("{uri}: {:?}", alice.read(uri)));
    }
    for a in &answers {
        assert!(!a.contains("TOP-SECRET"), "leaked: {a}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.md")).unwrap(),
        secret
    );
    let _ = std::fs::remove_dir_all(outside);
}

#[test]
fn change_show_of_each_fresh_template_matches_the_cli_show() {
    let srv = seeded_server(&[]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    alice.initialize();
    for (slug, template) in [
        ("new-feature", "feature"),
        ("new-fix", "bugfix"),
        ("new-chore", "chore"),
    ] {
        alice
            .call(
                "change_open",
                json!({"slug": slug, "template": template, "title": "Do the thing"}),
            )
            .unwrap();
        let mut ours = alice.call("change_show", json!({"slug": slug})).unwrap();
        let obj = ours.as_object_mut().unwrap();
        obj.remove("progress");
        obj.remove("lock");
        let (rc, mut theirs) = cli(
            &format!("workflow/template-{template}.show"),
            &srv.root,
            &["show", slug, "--json"],
        );
        assert_eq!(rc, 0, "{theirs}");
        theirs.as_object_mut().unwrap().remove("root");
        assert_eq!(ours, theirs, "{template}");
    }
}
