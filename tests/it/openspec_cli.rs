//! Our engine against the real `openspec` CLI (npm `@fission-ai/openspec@1.13.2`).
//!
//! Each case builds a workspace, copies it three times, and runs:
//! - `openspec archive c --yes --json` on copy A and `Workspace::archive` on copy B: the trees must
//!   be byte-identical afterwards and the outcome (code, message, fix, or the archive object) equal;
//! - `openspec validate c --strict --json` on copy C and `Workspace::validate_change` on copy B
//!   (before archiving): same verdict and same issues;
//! - and our `change_validate` rule (strict + merge dry run) must never pass a change the CLI then
//!   refuses to archive.
//!
//! In `cargo test` the CLI's side is replayed from fixtures it recorded (`crate::golden`); the live
//! tier runs the real CLI, which must be installed there (`.ci/openspec-cli.sh`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use task_mcp::openspec::{ArchiveOptions, Workspace};

use crate::golden::cli;

/// Builds a scratch directory holding `files`.
pub fn workspace(files: &[(&str, &str)]) -> PathBuf {
    let dir = scratch("ws");
    fs::create_dir_all(dir.join("openspec/changes")).unwrap();
    fs::create_dir_all(dir.join("openspec/specs")).unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

/// A fresh, canonical scratch directory.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "task-mcp-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::canonicalize(dir).unwrap()
}

/// Copies a tree (files, dirs, symlinks).
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let to = dst.join(e.file_name());
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else if ft.is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Every file (with bytes) and directory (None) under `dir`, by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(format!("{rel}/"), None);
                walk(base, &e.path(), out);
            } else if ft.is_symlink() {
                out.insert(
                    rel,
                    Some(
                        fs::read_link(e.path())
                            .unwrap()
                            .to_string_lossy()
                            .as_bytes()
                            .to_vec(),
                    ),
                );
            } else {
                out.insert(rel, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &dir.join("openspec"), &mut out);
    out
}

/// Runs the real CLI in `dir`; panics (fails the test) when it is not installed. Tests call it
/// through [`crate::golden::cli`], which replays a recording outside the live tier.
pub fn run_cli(dir: &Path, args: &[&str]) -> (i32, Value) {
    let home = scratch("home");
    let out = Command::new("openspec")
        .args(args)
        .current_dir(dir)
        .env("OPENSPEC_TELEMETRY", "0")
        .env("DO_NOT_TRACK", "1")
        .env("OPENSPEC_NO_UPDATE_CHECK", "1")
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("TZ", "UTC")
        .env("HOME", &home)
        .output()
        .expect("the openspec CLI must be installed: run .ci/openspec-cli.sh (npm install -g @fission-ai/openspec@1.13.2)");
    let _ = fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "CLI printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// Replaces `root` inside every string of `v` with `<ROOT>`.
pub fn relativize(v: &Value, root: &Path) -> Value {
    let r = root.to_string_lossy();
    match v {
        Value::String(s) => Value::String(s.replace(r.as_ref(), "<ROOT>")),
        Value::Array(a) => Value::Array(a.iter().map(|x| relativize(x, root)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), relativize(x, root)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn diff_trees(
    a: &BTreeMap<String, Option<Vec<u8>>>,
    b: &BTreeMap<String, Option<Vec<u8>>>,
) -> String {
    let mut out = String::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            let show = |v: Option<&Option<Vec<u8>>>| match v {
                None => "<absent>".to_string(),
                Some(None) => "<dir>".to_string(),
                Some(Some(b)) => format!("{:?}", String::from_utf8_lossy(b)),
            };
            out.push_str(&format!("{k}:\n  cli:  {}\n  ours: {}\n", show(x), show(y)));
        }
    }
    out
}

/// Runs one case end to end against the CLI (see the module docs).
pub fn compare(name: &str, files: &[(&str, &str)], change: &str) {
    let base = workspace(files);
    let cli_dir = scratch("cli");
    let our_dir = scratch("ours");
    let val_dir = scratch("val");
    copy_tree(&base, &cli_dir);
    copy_tree(&base, &our_dir);
    copy_tree(&base, &val_dir);

    // Validate first (archive moves the change away).
    let (vrc, vjson) = cli(
        &format!("cli/{name}.validate"),
        &val_dir,
        &["validate", change, "--strict", "--json"],
    );
    let ws = Workspace::open(&our_dir).unwrap();
    let ours_valid = ws.validate_change(change, true);
    let merge_ok = ws.archive_dry_run(change).is_ok();
    if let Some(item) = vjson["items"].get(0) {
        let report = ours_valid
            .as_ref()
            .expect("our validate failed where the CLI ran");
        let ours = json!({"valid": report.valid, "issues": report.issues});
        let theirs = json!({"valid": item["valid"], "issues": item["issues"]});
        assert_eq!(
            relativize(&theirs, &val_dir),
            relativize(&ours, &our_dir),
            "{name}: validate --strict differs"
        );
        assert_eq!(vrc == 0, report.valid, "{name}: validate exit code");
    }

    let (rc, theirs) = cli(
        &format!("cli/{name}.archive"),
        &cli_dir,
        &["archive", change, "--yes", "--json"],
    );
    let ours = match ws.archive(change, &ArchiveOptions::yes()) {
        Ok(r) => json!({"archive": r}),
        Err(e) => json!({"archive": null, "status": [{
            "severity": "error", "code": e.code, "message": e.message, "fix": e.fix,
        }]}),
    };
    let mut theirs = relativize(&theirs, &cli_dir);
    if let Some(o) = theirs.as_object_mut() {
        o.remove("root");
    }
    let mut ours = relativize(&ours, &our_dir);
    if let Some(s) = ours
        .get_mut("status")
        .and_then(|s| s.get_mut(0))
        .and_then(Value::as_object_mut)
        && s["fix"].is_null()
    {
        s.remove("fix");
    }
    assert_eq!(theirs, ours, "{name}: archive outcome differs");
    assert_eq!(rc == 0, !ours["archive"].is_null(), "{name}: exit code");
    let (a, b) = (snapshot(&cli_dir), snapshot(&our_dir));
    assert!(a == b, "{name}: trees differ\n{}", diff_trees(&a, &b));

    // Our change_validate rule never passes what the CLI then refuses.
    if let Ok(report) = ours_valid
        && report.valid
        && merge_ok
    {
        assert_eq!(
            rc, 0,
            "{name}: change_validate passed but the CLI archive failed"
        );
    }
    for d in [base, cli_dir, our_dir, val_dir] {
        let _ = fs::remove_dir_all(d);
    }
}

const AUTH: &str = "# auth Specification\n\n## Purpose\nAuthentication for every user of the product, end to end.\n\n## Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: Valid credentials\n- **WHEN** a user submits valid credentials\n- **THEN** a session is created\n\n### Requirement: Legacy Tokens\nThe system SHALL accept legacy tokens.\n\n#### Scenario: Legacy token\n- **WHEN** a legacy token is presented\n- **THEN** it is accepted\n\n### Requirement: Session Timeout\nThe system SHALL expire sessions after 30 minutes.\n\n#### Scenario: Idle\n- **WHEN** a session is idle for 30 minutes\n- **THEN** it expires\n\n## Notes\nKeep this section verbatim.\n";
const AUTH_PATH: &str = "openspec/specs/auth/spec.md";
const DELTA: &str = "openspec/changes/upd/specs/auth/spec.md";
const TASKS: &str = "openspec/changes/upd/tasks.md";
const PROPOSAL: &str = "openspec/changes/upd/proposal.md";
const PROPOSAL_TEXT: &str = "# Change: Update auth\n\n## Why\nBecause the authentication rules changed and the specs must follow them.\n\n## What Changes\n- auth\n";
const TASKS_DONE: &str = "## 1. Work\n- [x] 1.1 Do it\n";

fn with_auth<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        (AUTH_PATH, AUTH),
        (PROPOSAL, PROPOSAL_TEXT),
        (TASKS, TASKS_DONE),
    ];
    v.extend_from_slice(extra);
    v
}

macro_rules! cli_case {
    ($name:ident, $files:expr) => {
        #[test]
        fn $name() {
            compare(stringify!($name), &$files, "upd");
        }
    };
    ($name:ident, $files:expr, $change:expr) => {
        #[test]
        fn $name() {
            compare(stringify!($name), &$files, $change);
        }
    };
}

cli_case!(
    golden_every_operation_and_a_new_capability,
    with_auth(&[
        (
            DELTA,
            "## ADDED Requirements\n### Requirement: Two-Factor Authentication\nThe system MUST support OTP.\n\n#### Scenario: OTP\n- **WHEN** enabled\n- **THEN** an OTP is required\n\n## MODIFIED Requirements\n### Requirement: Session Timeout\nThe system SHALL expire sessions after 15 minutes.\n\n#### Scenario: Idle\n- **WHEN** a session is idle for 15 minutes\n- **THEN** it expires\n\n### Requirement: User Authentication\nThe system SHALL let users authenticate.\n\n#### Scenario: Valid credentials\n- **WHEN** a user submits valid credentials\n- **THEN** a session is created\n\n## REMOVED Requirements\n### Requirement: Legacy Tokens\n**Reason**: obsolete\n\n## RENAMED Requirements\n- FROM: `### Requirement: Login`\n- TO: `### Requirement: User Authentication`\n"
        ),
        (
            "openspec/changes/upd/specs/notify/spec.md",
            "## ADDED Requirements\n### Requirement: Send OTP\nThe system SHALL send OTP codes.\n\n#### Scenario: Send\n- **WHEN** requested\n- **THEN** sent\n"
        ),
    ])
);
cli_case!(
    modified_unknown_requirement_aborts,
    with_auth(&[(
        DELTA,
        "## MODIFIED Requirements\n### Requirement: Does Not Exist\nThe system SHALL x.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    modified_on_a_new_capability_aborts,
    with_auth(&[(
        "openspec/changes/upd/specs/gamma/spec.md",
        "## MODIFIED Requirements\n### Requirement: G\nThe system SHALL g.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    added_existing_with_other_text_aborts,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Session Timeout\nThe system SHALL do something else.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    added_identical_is_already_in_sync,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: Valid credentials\n- **WHEN** a user submits valid credentials\n- **THEN** a session is created\n"
    )])
);
cli_case!(
    delta_without_headers_has_no_operations,
    with_auth(&[(DELTA, "Just some notes, no delta headers.\n")])
);
cli_case!(
    added_and_removed_same_name_fails_validation,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Session Timeout\nThe system SHALL x.\n\n#### Scenario: s\n- a\n\n## REMOVED Requirements\n### Requirement: Session Timeout\n"
    )])
);
cli_case!(
    skip_specs_marker_moves_the_folder_only,
    with_auth(&[(
        "openspec/changes/upd/.openspec.yaml",
        "schema: spec-driven\ncreated: 2025-01-01\nskip_specs: true\n"
    )])
);
cli_case!(
    crlf_target_keeps_crlf,
    [
        (AUTH_PATH, AUTH.replace('\n', "\r\n").leak() as &str),
        (TASKS, TASKS_DONE),
        (
            DELTA,
            "## ADDED Requirements\n### Requirement: New One\nThe system SHALL be new.\n\n#### Scenario: s\n- a\n"
        ),
    ]
);
cli_case!(
    crlf_delta_into_lf_target,
    with_auth(&[(
        DELTA,
        "## MODIFIED Requirements\r\n### Requirement: Login\r\nThe system SHALL let users log in quickly.\r\n\r\n#### Scenario: Valid credentials\r\n- **WHEN** ok\r\n- **THEN** ok\r\n"
    )])
);
cli_case!(
    fenced_headers_are_not_structure,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Documented Example\nThe system SHALL document this:\n\n```markdown\n## REMOVED Requirements\n### Requirement: Login\n\n\n\nkeep blank runs\n```\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    nested_capability_is_created_with_its_path_title,
    [
        (TASKS, TASKS_DONE),
        (
            "openspec/changes/upd/specs/platform/billing/spec.md",
            "## ADDED Requirements\n### Requirement: Invoices\nThe system SHALL issue invoices.\n\n#### Scenario: s\n- a\n"
        ),
    ]
);
cli_case!(
    incomplete_tasks_continue_with_yes,
    with_auth(&[
        (
            TASKS,
            "## 1. Work\n- [x] 1.1 a\n  - [ ] nested\n* [X] star\n+ [ ] plus\n1. [x] num\n- [~] tilde\n- [] empty\n- [link](url)\n"
        ),
        (
            DELTA,
            "## REMOVED Requirements\n- `### Requirement: Legacy Tokens`\n"
        ),
    ])
);
cli_case!(
    retire_capabilities_deletes_an_emptied_spec,
    [
        (
            "openspec/specs/old/spec.md",
            "# old Specification\n\n## Purpose\nAn old capability that nobody needs any longer at all.\n\n## Requirements\n### Requirement: Old\nThe system SHALL be old.\n\n#### Scenario: s\n- **WHEN** a\n- **THEN** b\n"
        ),
        (
            "openspec/changes/upd/.openspec.yaml",
            "schema: spec-driven\nretire_capabilities: true\n"
        ),
        (
            "openspec/changes/upd/specs/old/spec.md",
            "## REMOVED Requirements\n### Requirement: Old\n"
        ),
    ]
);
cli_case!(
    emptying_a_spec_without_the_marker_is_refused,
    [
        (
            "openspec/specs/old/spec.md",
            "# old Specification\n\n## Purpose\nAn old capability that nobody needs any longer at all.\n\n## Requirements\n### Requirement: Old\nThe system SHALL be old.\n\n#### Scenario: s\n- **WHEN** a\n- **THEN** b\n"
        ),
        (
            "openspec/changes/upd/specs/old/spec.md",
            "## REMOVED Requirements\n### Requirement: Old\n"
        ),
    ]
);
cli_case!(
    unpaired_rename_is_refused,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\n- FROM: `### Requirement: Login`\n- FROM: `### Requirement: Legacy Tokens`\n- TO: `### Requirement: Tokens`\n"
    )])
);
cli_case!(
    near_miss_removed_is_refused,
    with_auth(&[(
        DELTA,
        "## REMOVED Requirements\n### Requirement: legacy  tokens\n"
    )])
);
cli_case!(
    removed_missing_is_a_warned_no_op,
    with_auth(&[(
        DELTA,
        "## REMOVED Requirements\n### Requirement: Never Existed\n\n## ADDED Requirements\n### Requirement: Extra\nThe system SHALL be extra.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    scenario_loss_guard_refuses,
    with_auth(&[(
        DELTA,
        "## MODIFIED Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: Other\n- **WHEN** x\n- **THEN** y\n"
    )])
);
cli_case!(
    new_spec_carries_the_delta_purpose,
    [
        (TASKS, TASKS_DONE),
        (
            "openspec/changes/upd/specs/search/spec.md",
            "## Purpose\nSearch lets users find documents by keyword and filter the results quickly.\n\n## ADDED Requirements\n### Requirement: Keyword Search\nThe system SHALL search.\n\n#### Scenario: s\n- a\n"
        ),
    ]
);
cli_case!(
    short_carried_purpose_warns,
    [(
        "openspec/changes/upd/specs/search/spec.md",
        "## Purpose\nFind things.\n\n## ADDED Requirements\n### Requirement: Keyword Search\nThe system SHALL search.\n\n#### Scenario: s\n- a\n"
    ),]
);
cli_case!(
    dated_ids_are_not_prefixed_twice,
    [(
        "openspec/changes/2025-01-15-fix/specs/x/spec.md",
        "## ADDED Requirements\n### Requirement: X\nThe system SHALL x.\n\n#### Scenario: s\n- a\n"
    ),],
    "2025-01-15-fix"
);
cli_case!(
    rename_to_an_existing_name_fails,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\n- FROM: `### Requirement: Login`\n- TO: `### Requirement: Session Timeout`\n"
    )])
);
cli_case!(
    rename_of_a_missing_source_fails,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\nFROM: ### Requirement: Nope\nTO: ### Requirement: Also Nope\n"
    )])
);
cli_case!(
    rename_already_synced_is_a_no_op,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\n- FROM: `### Requirement: Gone`\n- TO: `### Requirement: Login`\n"
    )])
);
cli_case!(
    renamed_block_keeps_its_slot_and_can_be_modified,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\n- FROM: `### Requirement: Legacy Tokens`\n- TO: `### Requirement: Tokens`\n\n## MODIFIED Requirements\n### Requirement: Tokens\nThe system SHALL accept tokens.\n\n#### Scenario: Legacy token\n- **WHEN** a token is presented\n- **THEN** it is accepted\n"
    )])
);
cli_case!(
    change_without_deltas_archives_unvalidated,
    [(PROPOSAL, PROPOSAL_TEXT), (TASKS, TASKS_DONE)]
);
cli_case!(
    missing_change_lists_the_others,
    [
        ("openspec/changes/other/proposal.md", "# x\n"),
        ("openspec/changes/zeta/tasks.md", "- [ ] a\n")
    ]
);
cli_case!(
    removed_bullets_with_every_marker,
    with_auth(&[(
        DELTA,
        "## REMOVED Requirements\n* `### Requirement: Legacy Tokens`\n+ ### Requirement: Login\n"
    )])
);
cli_case!(
    missing_shall_is_only_a_warning,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Polite\nThe system should be polite.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    target_without_requirements_section,
    [
        (
            "openspec/specs/bare/spec.md",
            "# bare\n\n## Purpose\nA bare spec that has no requirements section yet, oddly.\n"
        ),
        (
            "openspec/changes/upd/specs/bare/spec.md",
            "## ADDED Requirements\n### Requirement: First\nThe system SHALL be first.\n\n#### Scenario: s\n- a\n"
        ),
    ]
);
cli_case!(
    repeated_added_sections_merge,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: One\nThe system SHALL one.\n\n#### Scenario: s\n- a\n\n## Notes\nignored\n\n## Added Requirements\n### Requirement: Two\nThe system SHALL two.\n\n#### Scenario: s\n- b\n"
    )])
);
cli_case!(
    orphan_requirement_is_warned,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: One\nThe system SHALL one.\n\n#### Scenario: s\n- a\n\n## Notes\n### Requirement: Lost\nThe system SHALL be lost.\n"
    )])
);
cli_case!(
    delta_at_specs_root_fails_validation,
    with_auth(&[(
        "openspec/changes/upd/specs/spec.md",
        "## ADDED Requirements\n### Requirement: X\nThe system SHALL x.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    lowercase_headers_are_read,
    with_auth(&[(
        DELTA,
        "## added requirements\n### requirement: Quiet ###\nThe system SHALL be quiet.\n\n#### Scenario: s\n- a\n"
    )])
);
cli_case!(
    preamble_and_blank_runs_are_normalised,
    [
        (
            "openspec/specs/p/spec.md",
            "# p Specification\n\n\n\n## Purpose\nA purpose that is long enough to satisfy the validator here.\n\n\n## Requirements\nSome preamble text.\n\n\n\n### Requirement: A\nThe system SHALL a.\n\n\n#### Scenario: s\n- a\n\n\n\n## Notes\n\n\nend\n\n\n"
        ),
        (
            "openspec/changes/upd/specs/p/spec.md",
            "## ADDED Requirements\n### Requirement: B\nThe system SHALL b.\n\n#### Scenario: s\n- b\n"
        ),
    ]
);
cli_case!(
    modified_identical_is_not_counted,
    with_auth(&[(
        DELTA,
        "## MODIFIED Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: Valid credentials\n- **WHEN** a user submits valid credentials\n- **THEN** a session is created\n"
    )])
);
cli_case!(
    modified_and_rename_old_name_conflict,
    with_auth(&[(
        DELTA,
        "## RENAMED Requirements\n- FROM: `### Requirement: Login`\n- TO: `### Requirement: Sign In`\n\n## MODIFIED Requirements\n### Requirement: Login\nThe system SHALL log in.\n\n#### Scenario: Valid credentials\n- a\n"
    )])
);
cli_case!(
    scenario_without_body_does_not_count,
    with_auth(&[(
        DELTA,
        "## ADDED Requirements\n### Requirement: Empty Scenario\nThe system SHALL x.\n\n#### Scenario: nothing\n\n"
    )])
);
cli_case!(
    skip_specs_with_files_fails_validation,
    with_auth(&[
        (
            "openspec/changes/upd/.openspec.yaml",
            "schema: spec-driven\nskip_specs: true\n"
        ),
        (
            DELTA,
            "## ADDED Requirements\n### Requirement: X\nThe system SHALL x.\n\n#### Scenario: s\n- a\n"
        ),
    ])
);
cli_case!(
    structurally_broken_target_is_refused,
    [
        (
            "openspec/specs/b/spec.md",
            "# b\n\n## Purpose\nA broken spec with a duplicate requirement name inside it.\n\n## Requirements\n### Requirement: A\nThe system SHALL a.\n\n#### Scenario: s\n- a\n\n### Requirement: A\nThe system SHALL a again.\n\n#### Scenario: s\n- a\n"
        ),
        (
            "openspec/changes/upd/specs/b/spec.md",
            "## ADDED Requirements\n### Requirement: C\nThe system SHALL c.\n\n#### Scenario: s\n- a\n"
        ),
    ]
);
cli_case!(
    tasks_lint_warns_under_strict,
    with_auth(&[
        (
            TASKS,
            "## 1. Work\n- [x] 1.1 a\n- [x] 2.1 wrong group\n- [x] 1.1 dup\n"
        ),
        (
            DELTA,
            "## REMOVED Requirements\n### Requirement: Legacy Tokens\n"
        ),
    ])
);

#[test]
fn archive_target_that_exists_is_refused_before_any_write() {
    let date = task_mcp::openspec::archive::local_date(std::time::SystemTime::now());
    let target = format!("openspec/changes/archive/{date}-upd/keep.md");
    compare(
        "target_exists",
        &with_auth(&[
            (
                DELTA,
                "## ADDED Requirements\n### Requirement: X\nThe system SHALL x.\n\n#### Scenario: s\n- a\n",
            ),
            (target.as_str(), "already here\n"),
        ]),
        "upd",
    );
}

#[test]
fn symlinked_change_is_refused() {
    let base = workspace(&[("elsewhere/proposal.md", "# x\n")]);
    std::os::unix::fs::symlink(base.join("elsewhere"), base.join("openspec/changes/c")).unwrap();
    let copy = scratch("sym");
    copy_tree(&base, &copy);
    let (rc, theirs) = cli(
        "cli/symlinked_change_is_refused.archive",
        &base,
        &["archive", "c", "--yes", "--json"],
    );
    let ours = Workspace::open(&copy)
        .unwrap()
        .archive("c", &ArchiveOptions::yes())
        .unwrap_err();
    assert_eq!(rc, 1);
    assert_eq!(theirs["status"][0]["code"], ours.code);
    assert_eq!(theirs["status"][0]["message"], ours.message.as_str());
}
