//! Real server processes on one OpenSpec root: one killed at each step of an archive
//! (`TASK_MCP_TEST_CRASH_AT`, which aborts the process right after that step, as abruptly as
//! `kill -9` for the files), then restarted; and several racing on one change.
//!
//! After each crash and restart the whole tree must equal, byte for byte, either the tree before
//! the archive or the tree a clean archive leaves (receipt included, its timestamp aside); a
//! retried `change_archive` then succeeds or answers `alreadyArchived` with the stored receipt,
//! and the real CLI accepts the result.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::golden::cli;
use crate::openspec_cli::{copy_tree, scratch, snapshot, workspace};
use crate::openspec_crash::archive_steps;
use crate::openspec_workflow::{
    ALICE_TOKEN, AUTH_DELTA, AUTH_SPEC, BOB_TOKEN, assert_same_tree, tokens,
};
use crate::support::Client;

const BIN: &str = env!("CARGO_BIN_EXE_task-mcp");

/// A second capability, so that an archive writes two specs (two `SpecWritten` steps).
const NOTIFY_SPEC: &str = "# notify Specification\n\n## Purpose\nNotifications sent to users about events on their account.\n\n## Requirements\n### Requirement: Email\nThe system SHALL send email.\n\n#### Scenario: sent\n- **WHEN** an event\n- **THEN** an email\n";
const NOTIFY_DELTA: &str = "## ADDED Requirements\n### Requirement: Push\nThe system SHALL send push notifications.\n\n#### Scenario: pushed\n- **WHEN** an event\n- **THEN** a push\n";

/// One server process.
struct Server {
    child: Child,
    addr: SocketAddr,
    cert: PathBuf,
}

impl Server {
    /// Starts `task-mcp serve` on `root` with test settings plus `env`.
    fn start(root: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env_clear()
            .env("PORT", "0")
            .env("TASK_MCP_ROOT", root)
            .env("AUTH_TOKENS", tokens())
            .env("ENABLE_TEST_TOOLS", "true")
            .env("LOG_LEVEL", "warn")
            .env("TZ", "UTC")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on https://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            cert: root.join(".task-mcp/tls-cert.pem"),
        }
    }

    /// `tools/call` as `token`: `Some(Ok(structuredContent))`, `Some(Err(error object))`, or
    /// `None` when the connection ended without an answer (the process died).
    fn call(&self, token: &str, tool: &str, args: Value) -> Option<Result<Value, Value>> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string();
        let mut c = Client::connect(self.addr, &self.cert);
        c.send(format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ).as_bytes());
        let v = c.read_reply()?.json();
        let result = &v["result"];
        assert!(result.is_object(), "{v}");
        let s = result["structuredContent"].clone();
        Some(if result["isError"] == true {
            Err(s.get("error").cloned().unwrap_or(s))
        } else {
            Ok(s)
        })
    }

    /// Waits for the process to exit; its status says whether it was killed.
    fn wait(mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tree with two specs and one ready change `add-2fa` leased to alice.
fn pre_archive_tree() -> PathBuf {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let lease = format!("{{\"owner\":\"alice\",\"since\":{now_ms},\"ttl\":3600}}");
    workspace(&[
        ("openspec/specs/auth/spec.md", AUTH_SPEC),
        ("openspec/specs/notify/spec.md", NOTIFY_SPEC),
        (
            "openspec/changes/add-2fa/.openspec.yaml",
            "schema: spec-driven\ncreated: 2026-01-01\n",
        ),
        (
            "openspec/changes/add-2fa/proposal.md",
            "# Change: Two factor login\n\n## Why\nPasswords alone are not enough.\n\n## What Changes\n- Add a second factor\n\n## Impact\n- Affected specs: auth, notify\n",
        ),
        (
            "openspec/changes/add-2fa/tasks.md",
            "## 1. Implementation\n- [x] 1.1 Do it\n",
        ),
        (
            "openspec/changes/add-2fa/design.md",
            "## Decisions\n- TOTP\n",
        ),
        ("openspec/changes/add-2fa/specs/auth/spec.md", AUTH_DELTA),
        (
            "openspec/changes/add-2fa/specs/notify/spec.md",
            NOTIFY_DELTA,
        ),
        ("openspec/changes/add-2fa/.lock", &lease),
        // Another active change the archive must leave alone.
        (
            "openspec/changes/other-work/.openspec.yaml",
            "schema: spec-driven\ncreated: 2026-01-01\nskip_specs: true\n",
        ),
        (
            "openspec/changes/other-work/proposal.md",
            "# Change: Other work\n\n## Why\nSome unrelated maintenance that must not be touched by the archive.\n\n## What Changes\n- Tidy the build\n",
        ),
        (
            "openspec/changes/other-work/tasks.md",
            "## 1. Work\n- [ ] 1.1 Tidy\n",
        ),
    ])
}

/// The snapshot without the receipt, and the receipt (parsed), if any.
fn split_receipt(
    mut tree: BTreeMap<String, Option<Vec<u8>>>,
) -> (BTreeMap<String, Option<Vec<u8>>>, Option<Value>) {
    let key = tree.keys().find(|k| k.ends_with("/receipt.json")).cloned();
    let receipt = key.and_then(|k| tree.remove(&k)).flatten();
    // The undo record travels with the receipt (written in the same settle step).
    tree.retain(|k, _| !k.ends_with("/.archive-undo.json"));
    (tree, receipt.map(|r| serde_json::from_slice(&r).unwrap()))
}

#[test]
fn a_server_killed_at_each_archive_step_restarts_into_the_old_or_the_new_tree() {
    let started = Instant::now();
    let before_dir = pre_archive_tree();
    let before = snapshot(&before_dir);

    // The reference: a clean archive by a server that is not killed.
    let clean_dir = scratch("clean");
    copy_tree(&before_dir, &clean_dir);
    let srv = Server::start(&clean_dir, &[]);
    let done = srv
        .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
        .unwrap()
        .unwrap();
    assert_eq!(
        done["totals"],
        json!({"added": 2, "modified": 1, "removed": 1, "renamed": 1})
    );
    drop(srv);
    let (after, clean_receipt) = split_receipt(snapshot(&clean_dir));
    let clean_receipt = clean_receipt.expect("a receipt");
    assert_eq!(clean_receipt, done["receipt"]);
    assert!(
        !after.keys().any(|k| k.ends_with("/.lock")),
        "the lease went"
    );
    let (rc, v) = cli(
        "crash/clean.validate-all",
        &clean_dir,
        &["validate", "--all", "--strict", "--json"],
    );
    assert_eq!(rc, 0, "{v}");

    let steps = archive_steps(2);
    for (step, forward) in steps {
        let dir = scratch("proc-crash");
        copy_tree(&before_dir, &dir);
        let srv = Server::start(&dir, &[("TASK_MCP_TEST_CRASH_AT", &step)]);
        let answer = srv.call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}));
        assert!(answer.is_none(), "{step}: the server answered {answer:?}");
        let status = srv.wait(Duration::from_secs(20));
        assert!(!status.success(), "{step}: the server was not killed");

        // Restart without the hook: recovery runs before the server listens.
        let srv = Server::start(&dir, &[]);
        let (got, receipt) = split_receipt(snapshot(&dir));
        let journal = got.keys().find(|k| k.contains(".archive-journal-"));
        assert!(journal.is_none(), "{step}: the journal was not replayed");
        if forward {
            assert_same_tree(&got, &after, &format!("after a crash at {step}"));
            let receipt = receipt.unwrap_or_else(|| panic!("{step}: the receipt was lost"));
            let mut want = clean_receipt.clone();
            want["archivedAt"] = receipt["archivedAt"].clone();
            assert_eq!(receipt, want, "{step}");
            let again = srv
                .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
                .unwrap()
                .unwrap();
            assert_eq!(again["alreadyArchived"], true, "{step}");
            assert_eq!(again["receipt"], receipt, "{step}");
        } else {
            assert_same_tree(&got, &before, &format!("after a crash at {step}"));
            assert!(receipt.is_none(), "{step}");
            let again = srv
                .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
                .unwrap()
                .unwrap_or_else(|e| panic!("{step}: the retry failed: {e}"));
            assert_eq!(again["alreadyArchived"], false, "{step}");
            let (got, receipt) = split_receipt(snapshot(&dir));
            assert_same_tree(&got, &after, &format!("after the retry past {step}"));
            assert!(receipt.is_some(), "{step}");
        }
        drop(srv);
        let (rc, v) = cli(
            &format!("crash/after-{step}.validate-all"),
            &dir,
            &["validate", "--all", "--strict", "--json"],
        );
        assert_eq!(rc, 0, "{step}: the CLI refuses the tree: {v}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&before_dir);
    let _ = std::fs::remove_dir_all(&clean_dir);
    eprintln!("crash matrix took {:?}", started.elapsed());
}

#[test]
fn the_crash_hook_is_ignored_without_the_test_tools() {
    let dir = pre_archive_tree();
    let srv = Server::start(
        &dir,
        &[
            ("ENABLE_TEST_TOOLS", "false"),
            ("TASK_MCP_TEST_CRASH_AT", "Prepared"),
        ],
    );
    let done = srv
        .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
        .expect("the server answered")
        .unwrap();
    assert_eq!(done["archived"], true);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_server_processes_racing_on_one_change_give_one_winner() {
    let dir = workspace(&[]);
    let a = Arc::new(Server::start(&dir, &[]));
    let b = Arc::new(Server::start(&dir, &[]));
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let srv = if i % 2 == 0 { a.clone() } else { b.clone() };
            let barrier = barrier.clone();
            // Two identities, three callers each, spread over both processes.
            let token = if i < n / 2 { ALICE_TOKEN } else { BOB_TOKEN };
            std::thread::spawn(move || {
                barrier.wait();
                let opened = srv
                    .call(token, "change_open", json!({"slug": "race-one"}))
                    .unwrap();
                let wrote = srv
                    .call(
                        token,
                        "change_write",
                        json!({"slug": "race-one", "file": "tasks.md", "content": format!("- [x] by {token}\n")}),
                    )
                    .unwrap();
                (token, opened, wrote)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Whoever holds the lease, the other identity was refused with ELOCKED every time it was
    // refused, and only the holder's writes reached the file.
    let holder = std::fs::read_to_string(dir.join("openspec/changes/race-one/.lock")).unwrap();
    let holder: Value = serde_json::from_str(&holder).unwrap();
    let holder = holder["owner"].as_str().unwrap().to_string();
    let mut winners = std::collections::BTreeSet::new();
    for (token, opened, wrote) in &results {
        for r in [opened, wrote] {
            match r {
                Ok(_) => {
                    winners.insert(*token);
                }
                Err(e) => assert_eq!(e["code"], "ELOCKED", "{e}"),
            }
        }
    }
    assert_eq!(winners.len(), 1, "{results:?}");
    let token = winners.into_iter().next().unwrap();
    let name = if token == ALICE_TOKEN { "alice" } else { "bob" };
    assert_eq!(holder, name);
    let tasks = std::fs::read_to_string(dir.join("openspec/changes/race-one/tasks.md")).unwrap();
    assert!(
        tasks.starts_with("## 1.") || tasks == format!("- [x] by {token}\n"),
        "{tasks}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cli_archive_claim_stops_our_archive_and_changes_nothing() {
    let dir = pre_archive_tree();
    let claim = dir.join("openspec/changes/archive/.openspec-archive.lock");
    std::fs::create_dir_all(claim.parent().unwrap()).unwrap();
    std::fs::write(&claim, "{\"pid\":1,\"nonce\":\"cli\"}").unwrap();
    let before = snapshot(&dir);
    let srv = Server::start(&dir, &[]);
    let e = srv
        .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
        .unwrap()
        .unwrap_err();
    assert_eq!(e["code"], "archive_target_exists", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is already being created"),
        "{e}"
    );
    assert_same_tree(&snapshot(&dir), &before, "after a refused archive");
    // Once the CLI is done (its claim gone), the archive goes through.
    std::fs::remove_file(&claim).unwrap();
    let done = srv
        .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
        .unwrap()
        .unwrap();
    assert_eq!(done["archived"], true);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that dies mid-archive while a sibling process keeps serving the same root: the
/// sibling's next `change_archive` finishes or undoes the orphaned archive first (no restart
/// needed), and a sibling starting up never touches an archive that is still running.
#[test]
fn a_sibling_process_recovers_an_archive_its_peer_died_in() {
    for (step, forward) in [("SpecWritten(0)", false), ("Moved", true)] {
        let dir = pre_archive_tree();
        let survivor = Server::start(&dir, &[]);
        let doomed = Server::start(&dir, &[("TASK_MCP_TEST_CRASH_AT", step)]);
        assert!(
            doomed
                .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
                .is_none()
        );
        assert!(!doomed.wait(Duration::from_secs(20)).success());
        let journal = std::fs::read_dir(dir.join("openspec"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".archive-journal-")
            });
        assert!(journal, "{step}: the dead archive left its journal");
        let done = survivor
            .call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
            .unwrap()
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(done["archived"], true, "{step}");
        assert_eq!(done["alreadyArchived"], forward, "{step}");
        let (tree, receipt) = split_receipt(snapshot(&dir));
        assert!(receipt.is_some(), "{step}: no receipt");
        assert_eq!(done["receipt"], receipt.unwrap(), "{step}");
        assert!(
            !tree.keys().any(|k| k.contains(".archive-journal-")
                || k.ends_with("/.lock")
                || k.ends_with(".openspec-archive.lock")),
            "{step}: {:?}",
            tree.keys()
        );
        drop(survivor);
        let (rc, v) = cli(
            &format!("crash/sibling-{step}.validate-all"),
            &dir,
            &["validate", "--all", "--strict", "--json"],
        );
        assert_eq!(rc, 0, "{step}: {v}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The claim is shared with the CLI both ways: while a killed server's archive is unrecovered,
/// the real `openspec archive` refuses to run over it; once a restart has rolled it back, the
/// CLI archives the change normally.
#[test]
fn the_cli_waits_for_the_claim_of_a_killed_server_until_recovery() {
    let dir = pre_archive_tree();
    std::fs::remove_file(dir.join("openspec/changes/add-2fa/.lock")).unwrap();
    let srv = Server::start(&dir, &[("TASK_MCP_TEST_CRASH_AT", "SpecWritten(0)")]);
    assert!(
        srv.call(ALICE_TOKEN, "change_archive", json!({"slug": "add-2fa"}))
            .is_none()
    );
    assert!(!srv.wait(Duration::from_secs(20)).success());
    let half = snapshot(&dir);
    let (rc, v) = cli(
        "crash/cli-waits.archive-refused",
        &dir,
        &["archive", "add-2fa", "--yes", "--json"],
    );
    assert_eq!(rc, 1, "{v}");
    assert_eq!(v["status"][0]["code"], "archive_target_exists", "{v}");
    assert_same_tree(&snapshot(&dir), &half, "after the refused CLI archive");
    // A restart recovers; then the CLI goes through.
    drop(Server::start(&dir, &[]));
    let (rc, v) = cli(
        "crash/cli-waits.archive",
        &dir,
        &["archive", "add-2fa", "--yes", "--json"],
    );
    assert_eq!(rc, 0, "{v}");
    let (rc, v) = cli(
        "crash/cli-waits.validate-all",
        &dir,
        &["validate", "--all", "--strict", "--json"],
    );
    assert_eq!(rc, 0, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `change_open` builds a new change in a hidden `changes/.<id>.creating-<pid>-<n>` folder and
/// renames it; a process killed in between leaves that folder, which the CLI's `list` shows as a
/// change. A restart removes those of dead processes, and never one a live process is building.
#[test]
fn a_restart_removes_change_creations_left_by_a_dead_process() {
    let dir = workspace(&[]);
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let changes = dir.join("openspec/changes");
    let orphan = changes.join(format!(".add-x.creating-{dead_pid}-0"));
    let live = changes.join(format!(".add-y.creating-{}-0", std::process::id()));
    for d in [&orphan, &live] {
        std::fs::create_dir_all(d.join("specs")).unwrap();
        std::fs::write(d.join("proposal.md"), "# Change: half\n").unwrap();
    }
    let (_, listed) = cli("crash/dead-creation.list", &dir, &["list", "--json"]);
    assert_eq!(listed["changes"].as_array().unwrap().len(), 2, "{listed}");
    let srv = Server::start(&dir, &[]);
    assert!(!orphan.exists(), "the dead creation is still there");
    assert!(live.exists(), "a live process's creation was removed");
    let list = srv
        .call(ALICE_TOKEN, "change_list", json!({}))
        .unwrap()
        .unwrap();
    let names: Vec<&str> = list["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".add-x")), "{names:?}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Undo: an archive and then `change_unarchive` leave the tree of before the archive (the lease
/// aside); a server killed at each step of the undo restarts into the archived tree (and the
/// undo can be retried) or the restored one; a spec edited since the archive refuses the undo,
/// names the file and changes nothing.
#[test]
fn a_server_killed_at_each_unarchive_step_restarts_into_the_archived_or_the_restored_tree() {
    use task_mcp::openspec::unarchive::UnarchiveStep;
    let no_lease = |t: BTreeMap<String, Option<Vec<u8>>>| -> BTreeMap<String, Option<Vec<u8>>> {
        t.into_iter()
            .filter(|(k, _)| !k.ends_with("/.lock"))
            .collect()
    };
    let before_dir = pre_archive_tree();
    let before = no_lease(snapshot(&before_dir));
    let slug = json!({"slug": "add-2fa"});

    // The archived reference, and a clean undo of a copy of it.
    let archived_dir = scratch("archived");
    copy_tree(&before_dir, &archived_dir);
    let srv = Server::start(&archived_dir, &[]);
    srv.call(ALICE_TOKEN, "change_archive", slug.clone())
        .unwrap()
        .unwrap();
    drop(srv);
    let archived = snapshot(&archived_dir);
    let clean_dir = scratch("undone");
    copy_tree(&archived_dir, &clean_dir);
    let srv = Server::start(&clean_dir, &[]);
    let undone = srv
        .call(ALICE_TOKEN, "change_unarchive", slug.clone())
        .unwrap()
        .unwrap();
    assert_eq!(undone["unarchived"], true, "{undone}");
    assert_eq!(
        undone["filesRestored"],
        json!([
            "openspec/specs/auth/spec.md",
            "openspec/specs/notify/spec.md"
        ])
    );
    drop(srv);
    assert_same_tree(&snapshot(&clean_dir), &before, "after archive and undo");

    for step in UnarchiveStep::all(2) {
        let name = format!("Unarchive:{step:?}");
        let dir = scratch("unarchive-crash");
        copy_tree(&archived_dir, &dir);
        let srv = Server::start(&dir, &[("TASK_MCP_TEST_CRASH_AT", &name)]);
        let answer = srv.call(ALICE_TOKEN, "change_unarchive", slug.clone());
        assert!(answer.is_none(), "{name}: the server answered {answer:?}");
        assert!(!srv.wait(Duration::from_secs(20)).success(), "{name}");
        let srv = Server::start(&dir, &[]);
        let got = snapshot(&dir);
        assert!(
            !got.keys().any(|k| k.contains(".unarchive-journal-")),
            "{name}: the journal was not replayed"
        );
        if matches!(step, UnarchiveStep::Moved | UnarchiveStep::Settled) {
            assert_same_tree(&got, &before, &format!("after a crash at {name}"));
        } else {
            assert_same_tree(&got, &archived, &format!("after a crash at {name}"));
            srv.call(ALICE_TOKEN, "change_unarchive", slug.clone())
                .unwrap()
                .unwrap_or_else(|e| panic!("{name}: the retry failed: {e}"));
            assert_same_tree(
                &snapshot(&dir),
                &before,
                &format!("after the retry past {name}"),
            );
        }
        drop(srv);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A spec edited since the archive: refused, named, nothing changed.
    let dir = scratch("unarchive-edited");
    copy_tree(&archived_dir, &dir);
    let auth = dir.join("openspec/specs/auth/spec.md");
    let edited = std::fs::read_to_string(&auth).unwrap() + "\nEdited after the archive.\n";
    std::fs::write(&auth, &edited).unwrap();
    let expected = snapshot(&dir);
    let srv = Server::start(&dir, &[]);
    let e = srv
        .call(ALICE_TOKEN, "change_unarchive", slug.clone())
        .unwrap()
        .unwrap_err();
    assert_eq!(e["code"], "unarchive_specs_changed", "{e}");
    assert_eq!(
        e["details"]["files"],
        json!(["openspec/specs/auth/spec.md"])
    );
    drop(srv);
    assert_same_tree(&snapshot(&dir), &expected, "after the refused undo");
    for d in [before_dir, archived_dir, clean_dir, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
