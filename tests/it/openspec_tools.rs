//! The OpenSpec tools and resources, called directly with a `ToolCtx` (no transport).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use task_mcp::openspec::Workspace;
use task_mcp::tools::openspec::register;
use task_mcp::tools::options::ToolOptions;
use task_mcp::tools::{Access, Registry, ResourceError, ToolError};

use crate::golden::cli;
use crate::openspec_cli::{scratch, workspace};

fn setup() -> (std::path::PathBuf, Registry) {
    let dir = workspace(&[]);
    let ws = Arc::new(Workspace::open(&dir).unwrap());
    let mut reg = Registry::new();
    register(&mut reg, ws, ToolOptions::default());
    (dir, reg)
}

fn call_at(
    reg: &Registry,
    tool: &str,
    who: &str,
    now: SystemTime,
    args: Value,
) -> Result<Value, ToolError> {
    let cancelled = AtomicBool::new(false);
    let mut ctx = task_mcp::tools::ToolCtx {
        identity: who,
        now,
        cancelled: &cancelled,
        client: &mut task_mcp::tools::NoClient,
    };
    reg.find(tool)
        .unwrap_or_else(|| panic!("no tool {tool}"))
        .call(&args, &mut ctx)
}

fn call(reg: &Registry, tool: &str, who: &str, args: Value) -> Result<Value, ToolError> {
    call_at(reg, tool, who, SystemTime::now(), args)
}

#[test]
fn every_tool_is_listed_with_its_alias_schema_and_access() {
    let (_d, reg) = setup();
    let want = [
        ("change_open", "change.open", Access::Write),
        ("change_write", "change.write", Access::Write),
        ("change_validate", "change.validate", Access::Read),
        ("change_show", "change.show", Access::Read),
        ("change_list", "change.list", Access::Read),
        ("change_archive", "change.archive", Access::Write),
        ("change_unarchive", "change.unarchive", Access::Write),
        ("spec_list", "spec.list", Access::Read),
        ("spec_show", "spec.show", Access::Read),
    ];
    assert_eq!(reg.tools().len(), want.len());
    for (name, alias, access) in want {
        let t = reg.find(alias).unwrap();
        let d = t.def();
        assert_eq!(d.name, name);
        assert_eq!(d.access, access, "{name}");
        assert_eq!(
            d.annotations.read_only_hint,
            access == Access::Read,
            "{name}"
        );
        for schema in [&d.input_schema, &d.output_schema] {
            assert_eq!(schema["type"], "object", "{name}");
            for k in ["oneOf", "anyOf", "allOf"] {
                assert!(schema.get(k).is_none(), "{name} has top-level {k}");
            }
        }
    }
}

#[test]
fn a_new_change_from_each_template_passes_the_real_cli_validate() {
    let (dir, reg) = setup();
    for (slug, template) in [
        ("add-feature", "feature"),
        ("fix-bug", "bugfix"),
        ("tidy-up", "chore"),
    ] {
        let out = call(
            &reg,
            "change.open",
            "alice",
            json!({"slug": slug, "title": "Do it", "template": template}),
        )
        .unwrap();
        assert_eq!(out["created"], true);
        assert_eq!(out["locked"], true);
        assert_eq!(out["lock"]["owner"], "alice");
        assert_eq!(out["progress"]["total"], 2);
        assert!(
            out["proposal"]
                .as_str()
                .unwrap()
                .starts_with("# Change: Do it")
        );
        let (rc, v) = cli(
            &format!("tools/template-{template}.validate"),
            &dir,
            &["validate", slug, "--strict", "--json"],
        );
        assert_eq!(rc, 0, "{slug}: {v}");
        let ours = call(&reg, "change_validate", "bob", json!({"slug": slug})).unwrap();
        assert_eq!(ours["valid"], true, "{ours}");
    }
}

#[test]
fn open_is_idempotent_for_the_owner_and_locked_for_others() {
    let (_d, reg) = setup();
    let first = call(
        &reg,
        "change_open",
        "alice",
        json!({"slug": "add-x", "ttl": 60}),
    )
    .unwrap();
    let again = call(&reg, "change_open", "alice", json!({"slug": "add-x"})).unwrap();
    assert_eq!(
        (first["created"].clone(), again["created"].clone()),
        (json!(true), json!(false))
    );
    let err = call(&reg, "change_open", "bob", json!({"slug": "add-x"})).unwrap_err();
    assert_eq!(err.code, "ELOCKED");
    let d = err.details.unwrap();
    assert_eq!(d["owner"], "alice");
    assert!(d["since"].as_u64().unwrap() > 0);
    assert_eq!(d["ttl"], 3600);
    // After the lease expires bob may take it.
    let later = SystemTime::now() + Duration::from_secs(3601);
    assert!(call_at(&reg, "change_open", "bob", later, json!({"slug": "add-x"})).is_ok());
}

#[test]
fn bad_slugs_missing_changes_and_escapes_have_their_codes() {
    let (_d, reg) = setup();
    for slug in ["AB", "a_b", "ab", "a--b", "../etc", "-abc"] {
        assert_eq!(
            call(&reg, "change_open", "a", json!({"slug": slug}))
                .unwrap_err()
                .code,
            "EBADSLUG",
            "{slug}"
        );
    }
    assert_eq!(
        call(&reg, "change_show", "a", json!({"slug": "nope-nope"}))
            .unwrap_err()
            .code,
        "ENOCHANGE"
    );
    call(&reg, "change_open", "a", json!({"slug": "add-y"})).unwrap();
    for file in [
        "../../x.md",
        "specs/../../x/spec.md",
        "notes.md",
        "specs/a%2f/spec.md",
        "specs/a\\b/spec.md",
        "tasks.txt",
    ] {
        let e = call(
            &reg,
            "change_write",
            "a",
            json!({"slug": "add-y", "file": file, "content": "x"}),
        )
        .unwrap_err();
        assert!(
            e.code == "EPATH_ESCAPE" || e.code.starts_with("EBADSHAPE"),
            "{file}: {e}"
        );
    }
    let big = "x".repeat(256 * 1024 + 1);
    assert_eq!(
        call(
            &reg,
            "change_write",
            "a",
            json!({"slug": "add-y", "file": "proposal.md", "content": big})
        )
        .unwrap_err()
        .code,
        "EBADSHAPE_SIZE_EXCEEDED"
    );
}

#[test]
fn write_validate_archive_and_archive_again() {
    let (dir, reg) = setup();
    call(
        &reg,
        "change_open",
        "alice",
        json!({"slug": "add-login", "title": "Add login"}),
    )
    .unwrap();
    let delta = "## ADDED Requirements\n### Requirement: Login\nThe system SHALL let users log in.\n\n#### Scenario: ok\n- **WHEN** valid\n- **THEN** in\n";
    call(
        &reg,
        "change_write",
        "alice",
        json!({"slug": "add-login", "file": "specs/auth/spec.md", "content": delta}),
    )
    .unwrap();
    call(
        &reg,
        "change_write",
        "alice",
        json!({"slug": "add-login", "file": "tasks.md", "content": "## 1. Do\n- [x] 1.1 done\n"}),
    )
    .unwrap();
    assert_eq!(
        call(
            &reg,
            "change_write",
            "bob",
            json!({"slug": "add-login", "file": "tasks.md", "content": "x"})
        )
        .unwrap_err()
        .code,
        "ELOCKED"
    );
    let v = call(&reg, "change_validate", "bob", json!({"slug": "add-login"})).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let (rc, _) = cli(
        "tools/write-validate-archive.validate",
        &dir,
        &["validate", "add-login", "--strict", "--json"],
    );
    assert_eq!(rc, 0);
    let shown = call(&reg, "change_show", "bob", json!({"slug": "add-login"})).unwrap();
    assert_eq!(shown["deltaCount"], 1);
    assert_eq!(shown["title"], "Add login");
    assert_eq!(
        call(&reg, "change_archive", "bob", json!({"slug": "add-login"}))
            .unwrap_err()
            .code,
        "ELOCKED"
    );
    let a = call(
        &reg,
        "change_archive",
        "alice",
        json!({"slug": "add-login"}),
    )
    .unwrap();
    assert_eq!(a["archived"], true);
    assert_eq!(a["alreadyArchived"], false);
    let archived = dir
        .join("openspec/changes/archive")
        .join(a["archivedAs"].as_str().unwrap());
    let receipt: Value =
        serde_json::from_str(&std::fs::read_to_string(archived.join("receipt.json")).unwrap())
            .unwrap();
    assert_eq!(receipt["slug"], "add-login");
    assert_eq!(receipt["actor"]["name"], "alice");
    assert!(
        receipt["filesTouched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "openspec/specs/auth/spec.md")
    );
    assert!(!archived.join(".lock").exists());
    assert!(dir.join("openspec/specs/auth/spec.md").is_file());
    let again = call(
        &reg,
        "change_archive",
        "carol",
        json!({"slug": "add-login"}),
    )
    .unwrap();
    assert_eq!(again["alreadyArchived"], true);
    assert_eq!(again["receipt"], receipt);
    assert_eq!(
        call(
            &reg,
            "change_write",
            "alice",
            json!({"slug": "add-login", "file": "tasks.md", "content": "x"})
        )
        .unwrap_err()
        .code,
        "EARCHIVED"
    );
    let specs = call(&reg, "spec_list", "x", json!({})).unwrap();
    assert_eq!(
        specs["specs"][0],
        json!({"id": "auth", "requirementCount": 1})
    );
    let spec = call(&reg, "spec.show", "x", json!({"id": "auth"})).unwrap();
    assert_eq!(spec["requirementCount"], 1);
}

#[test]
fn archive_failures_carry_the_cli_code_and_change_nothing() {
    let (dir, reg) = setup();
    call(&reg, "change_open", "alice", json!({"slug": "bad-mod"})).unwrap();
    let delta = "## MODIFIED Requirements\n### Requirement: Ghost\nThe system SHALL haunt.\n\n#### Scenario: s\n- a\n";
    call(
        &reg,
        "change_write",
        "alice",
        json!({"slug": "bad-mod", "file": "specs/ghost/spec.md", "content": delta}),
    )
    .unwrap();
    let v = call(&reg, "change_validate", "alice", json!({"slug": "bad-mod"})).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["archive"]["code"], "archive_spec_update_failed");
    let e = call(&reg, "change_archive", "alice", json!({"slug": "bad-mod"})).unwrap_err();
    assert_eq!(e.code, "archive_spec_update_failed");
    assert!(e.message.starts_with("ghost: target spec does not exist"));
    assert_eq!(
        e.hint.as_deref(),
        Some("Fix the change delta specs and rerun. No files were changed.")
    );
    assert!(dir.join("openspec/changes/bad-mod/proposal.md").is_file());
}

#[test]
fn concurrent_openers_of_one_change_get_one_winner() {
    let (_d, reg) = setup();
    let reg = Arc::new(reg);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (reg, barrier) = (reg.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call(
                    &reg,
                    "change_open",
                    &format!("user{i}"),
                    json!({"slug": "race-one"}),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.code == "ELOCKED"),
        "{results:?}"
    );
}

#[test]
fn concurrent_callers_on_different_changes_all_succeed() {
    let (_d, reg) = setup();
    let reg = Arc::new(reg);
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (reg, barrier) = (reg.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let slug = format!("change-{i}");
                call(
                    &reg,
                    "change_open",
                    "u",
                    json!({"slug": slug, "template": "chore"}),
                )?;
                call(
                    &reg,
                    "change_write",
                    "u",
                    json!({"slug": slug, "file": "tasks.md", "content": "- [x] done\n"}),
                )?;
                call(&reg, "change_archive", "u", json!({"slug": slug}))
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.unwrap()["archived"], true);
    }
}

#[test]
fn change_list_pages_with_task_progress() {
    let (_d, reg) = setup();
    for i in 0..5 {
        call(
            &reg,
            "change_open",
            "u",
            json!({"slug": format!("page-{i}")}),
        )
        .unwrap();
    }
    let p1 = call(&reg, "change_list", "u", json!({"pageSize": 2})).unwrap();
    assert_eq!(p1["total"], 5);
    assert_eq!(p1["changes"].as_array().unwrap().len(), 2);
    assert_eq!(p1["hasMore"], true);
    assert_eq!(p1["changes"][0]["totalTasks"], 2);
    let p3 = call(&reg, "change_list", "u", json!({"page": 3, "pageSize": 2})).unwrap();
    assert_eq!(p3["changes"].as_array().unwrap().len(), 1);
    assert_eq!(p3["hasMore"], false);
}

#[test]
fn resources_read_change_files_and_refuse_escapes() {
    let (_d, reg) = setup();
    call(
        &reg,
        "change_open",
        "u",
        json!({"slug": "res-one", "title": "Res"}),
    )
    .unwrap();
    call(&reg, "change_write", "u", json!({"slug": "res-one", "file": "specs/platform/billing/spec.md", "content": "## ADDED Requirements\n"})).unwrap();
    let p = reg.read_resource("change://res-one/proposal").unwrap();
    assert!(p[0].text.as_deref().unwrap().starts_with("# Change: Res"));
    assert_eq!(p[0].mime_type, "text/markdown");
    assert_eq!(
        reg.read_resource("proposal://res-one").unwrap()[0].text,
        p[0].text
    );
    assert!(
        reg.read_resource("task://res-one").unwrap()[0]
            .text
            .as_deref()
            .unwrap()
            .contains("- [ ] 1.1")
    );
    let d: Value = serde_json::from_str(
        reg.read_resource("delta://res-one").unwrap()[0]
            .text
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(d["deltas"][0]["capability"], "platform/billing");
    assert_eq!(
        reg.read_resource("change://res-one/delta/platform/billing")
            .unwrap()[0]
            .text
            .as_deref(),
        Some("## ADDED Requirements\n")
    );
    let a: Value = serde_json::from_str(
        reg.read_resource("changes://active?pageSize=1").unwrap()[0]
            .text
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(a["items"][0]["slug"], "res-one");
    assert!(matches!(
        reg.read_resource("change://res-one/design"),
        Err(ResourceError::NotFound(_))
    ));
    assert!(matches!(
        reg.read_resource("change://nope-nope/proposal"),
        Err(ResourceError::NotFound(_))
    ));
    assert!(matches!(
        reg.read_resource("weird://x"),
        Err(ResourceError::NotFound(_))
    ));
    for bad in [
        "change://res-one/delta/..%2f..",
        "change://../proposal",
        "spec://a/../../x",
        "change://res-one/delta/a\\b",
    ] {
        assert!(
            matches!(reg.read_resource(bad), Err(ResourceError::Invalid(_))),
            "{bad}"
        );
    }
    let (items, _) = reg.resource_providers()[0].list(None).unwrap();
    assert!(items.iter().any(|i| i.uri == "change://res-one/tasks"));
}

#[test]
fn symlinked_change_folders_are_refused() {
    let dir = workspace(&[]);
    let outside = scratch("outside");
    std::fs::create_dir_all(outside.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("evil"), dir.join("openspec/changes/evil-link"))
        .unwrap();
    let ws = Arc::new(Workspace::open(&dir).unwrap());
    let mut reg = Registry::new();
    register(&mut reg, ws, ToolOptions::default());
    let e = call(
        &reg,
        "change_write",
        "a",
        json!({"slug": "evil-link", "file": "proposal.md", "content": "x"}),
    )
    .unwrap_err();
    assert_eq!(e.code, "EPATH_ESCAPE");
    assert!(!outside.join("evil/proposal.md").exists());
}

/// Every schema a tool declares uses only keywords the argument check enforces, and every
/// argument says in words what it is for.
#[test]
fn every_declared_schema_is_enforced_and_every_argument_described() {
    let (_d, mut reg) = setup();
    task_mcp::tools::conformance::register(&mut reg);
    for t in reg.tools() {
        let def = t.def();
        assert_eq!(
            task_mcp::tools::schema::unsupported_keywords(&def.input_schema),
            Vec::<String>::new(),
            "{}",
            def.name
        );
        for (name, prop) in def.input_schema["properties"].as_object().unwrap() {
            assert!(
                prop["description"].as_str().is_some_and(|d| d.len() > 10),
                "{}.{name} has no description",
                def.name
            );
        }
    }
}
