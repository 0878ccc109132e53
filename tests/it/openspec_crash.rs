//! Crash safety of archive: the test binary re-executes itself as a child that aborts
//! (`std::process::abort`, as abrupt as `kill -9` for the files) at one step of an archive;
//! the parent then runs `Workspace::recover()` and asserts the tree equals exactly the state
//! before the archive or the state after it, never a mix.

use std::path::Path;
use std::process::Command;

use task_mcp::openspec::{ArchiveOptions, ArchiveStep, Workspace};

use crate::openspec_cli::{copy_tree, scratch, snapshot, workspace};

const ROOT_ENV: &str = "TASK_MCP_CRASH_ROOT";
const STEP_ENV: &str = "TASK_MCP_CRASH_STEP";

/// Runs only as the re-executed child: archives and aborts at the named step.
#[test]
fn crash_child() {
    let (Ok(root), Ok(step)) = (std::env::var(ROOT_ENV), std::env::var(STEP_ENV)) else {
        return;
    };
    let fault = move |s: ArchiveStep| {
        if format!("{s:?}") == step {
            std::process::abort();
        }
    };
    let ws = Workspace::open(&root).unwrap();
    let opts = ArchiveOptions {
        fault: Some(&fault),
        ..ArchiveOptions::yes()
    };
    let _ = ws.archive("add-auth", &opts);
}

fn case() -> std::path::PathBuf {
    workspace(&[
        (
            "openspec/specs/auth/spec.md",
            "# auth Specification\n\n## Purpose\nAuthentication for every user of the product, end to end.\n\n## Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: ok\n- **WHEN** a\n- **THEN** b\n\n### Requirement: Legacy\nThe system SHALL accept legacy tokens.\n\n#### Scenario: l\n- **WHEN** a\n- **THEN** b\n",
        ),
        (
            "openspec/specs/old/spec.md",
            "# old Specification\n\n## Purpose\nAn old capability nobody needs any longer, retired here.\n\n## Requirements\n### Requirement: Old\nThe system SHALL be old.\n\n#### Scenario: s\n- **WHEN** a\n- **THEN** b\n",
        ),
        (
            "openspec/changes/add-auth/.openspec.yaml",
            "schema: spec-driven\nretire_capabilities: true\n",
        ),
        ("openspec/changes/add-auth/proposal.md", "# Change: Auth\n"),
        ("openspec/changes/add-auth/tasks.md", "- [x] done\n"),
        (
            "openspec/changes/add-auth/specs/auth/spec.md",
            "## REMOVED Requirements\n### Requirement: Legacy\n\n## ADDED Requirements\n### Requirement: Two Factor\nThe system SHALL ask for a second factor.\n\n#### Scenario: s\n- **WHEN** a\n- **THEN** b\n",
        ),
        (
            "openspec/changes/add-auth/specs/notify/spec.md",
            "## ADDED Requirements\n### Requirement: Notify\nThe system SHALL notify.\n\n#### Scenario: s\n- **WHEN** a\n- **THEN** b\n",
        ),
        (
            "openspec/changes/add-auth/specs/old/spec.md",
            "## REMOVED Requirements\n### Requirement: Old\n",
        ),
    ])
}

/// Every step of an archive that writes `spec_writes` specs, in order, each with whether a crash
/// right after it must end in the new tree (`true`: the folder already moved) or the old one.
pub fn archive_steps(spec_writes: usize) -> Vec<(String, bool)> {
    let mut steps: Vec<(String, bool)> =
        ["Prepared", "JournalWritten", "ArchiveDirReady", "Claimed"]
            .iter()
            .map(|s| (s.to_string(), false))
            .collect();
    steps.extend((0..spec_writes).map(|i| (format!("SpecWritten({i})"), false)));
    steps.extend(
        ["Moved", "Settled", "Released"]
            .iter()
            .map(|s| (s.to_string(), true)),
    );
    steps
}

fn crash_at(dir: &Path, step: &str) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "openspec_crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT_ENV, dir)
        .env(STEP_ENV, step)
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "the child did not crash at {step}");
}

#[test]
fn a_crash_at_any_step_recovers_to_the_old_or_the_new_tree() {
    let before_dir = case();
    let before = snapshot(&before_dir);
    let after_dir = scratch("after");
    copy_tree(&before_dir, &after_dir);
    let report = Workspace::open(&after_dir)
        .unwrap()
        .archive("add-auth", &ArchiveOptions::yes())
        .unwrap();
    assert_eq!(
        report.files_touched.len(),
        3,
        "two writes and one retirement"
    );
    let after = snapshot(&after_dir);
    assert_ne!(before, after);
    let steps = archive_steps(3);
    for (step, forward) in steps {
        let dir = scratch("crash");
        copy_tree(&before_dir, &dir);
        crash_at(&dir, &step);
        let ws = Workspace::open(&dir).unwrap();
        let done = ws.recover().unwrap();
        let got = snapshot(&dir);
        let want = if forward { &after } else { &before };
        assert!(
            &got == want,
            "after a crash at {step} and recover() ({done:?}) the tree is neither the old nor the new one: {:#?}",
            got.keys()
                .filter(|k| got.get(*k) != want.get(*k))
                .chain(want.keys().filter(|k| !got.contains_key(*k)))
                .collect::<Vec<_>>()
        );
        // Recovery is idempotent and the workspace works afterwards.
        assert!(ws.recover().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
