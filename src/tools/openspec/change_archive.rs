//! `change_archive`: `openspec archive <id> --yes` (or `--skip-specs`), with a receipt and an
//! undo record inside the archived folder; `dryRun` makes every check and returns the plan.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::args::{slug_schema, str_arg};
use super::errors::{archive_err, lock_err, map_err};
use super::views::{already_archived, ms, rel};
use super::{API_VERSION, OPENSPEC_COMPAT, OpenSpecTool, RECEIPT_FILE, log_warnings};
use crate::fsx;
use crate::openspec::lock::{self, DirLock, LockError};
use crate::openspec::validate::Level;
use crate::openspec::{self, ArchiveOptions, ArchiveStep, ChangeState, Workspace, tasks};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, LogLevel, ToolCtx, ToolDef, ToolError};

/// `change_archive`: `openspec archive <id> --yes`, with a receipt inside the archived folder.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_archive",
        "Archive a change",
        Effect::Overwrites,
        "Apply the change's spec deltas to openspec/specs and move it to changes/archive/YYYY-MM-DD-<slug>, exactly as `openspec archive <slug> --yes` does (all or nothing; failures carry the CLI's archive_* code). Writes receipt.json into the archived folder. Archiving an archived change returns alreadyArchived with its receipt. Call it first with dryRun: true to see the plan (per spec file: requirements added, modified, removed, renamed, and a unified diff) and its warnings (incomplete tasks, no deltas, validation warnings) without changing anything. skipSpecs: true only moves the folder and leaves openspec/specs untouched (the CLI's --skip-specs).",
    )
    .alias("change.archive")
    .input(json!({
        "type": "object",
        "properties": {
            "slug": slug_schema(),
            "dryRun": {"type": "boolean", "default": false, "description": "Run every check the archive makes and return the plan; write nothing."},
            "skipSpecs": {"type": "boolean", "default": false, "description": "Move the change to the archive without applying its spec deltas (openspec archive --skip-specs)."}
        },
        "required": ["slug"],
        "additionalProperties": false
    }))
    .output(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "slug": {"type": "string"},
            "archived": {"type": "boolean"},
            "alreadyArchived": {"type": "boolean"},
            "dryRun": {"type": "boolean"},
            "archivedAs": {"type": "string"},
            "target": {"type": "string", "description": "Where the change goes, relative to the repository root."},
            "specsUpdated": {"type": "boolean"},
            "totals": {"type": "object"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "plan": {"type": "object", "properties": {"specs": {"type": "array", "items": {"type": "object", "properties": {
                "path": {"type": "string"}, "capability": {"type": "string"},
                "action": {"type": "string", "enum": ["create", "update", "delete"]},
                "added": {"type": "integer"}, "modified": {"type": "integer"}, "removed": {"type": "integer"}, "renamed": {"type": "integer"},
                "diff": {"type": "string"}}}}}},
            "receipt": {"type": "object"}
        },
        "required": ["apiVersion", "slug", "archived", "alreadyArchived"]
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let dry_run = args.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let skip_specs = args
        .get("skipSpecs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // An archive another process on this root left half done is finished or undone first
    // (a dry run writes nothing, that included).
    if !dry_run {
        t.ws.recover().map_err(map_err)?;
    }
    let dir = match t.ws.locate(slug).map_err(map_err)? {
        ChangeState::Archived(dir) => return Ok(already_archived(slug, &dir)),
        ChangeState::Active(dir) => dir,
    };
    lock::check_lease(&dir, ctx.identity, ms(ctx.now)).map_err(lock_err)?;
    if dry_run {
        let plan = archive_plan(t, slug, &dir, skip_specs, ctx.now)?;
        let warnings: Vec<String> = plan["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(String::from))
            .collect();
        log_warnings(ctx, "change_archive", slug, &warnings);
        return Ok(plan);
    }
    let guard = match DirLock::try_acquire(&dir) {
        Ok(g) if dir.is_dir() => g,
        // The folder moved between `locate` and the lock: an overlapping call archived it.
        Ok(_) => return moved_away(&t.ws, slug),
        Err(LockError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return moved_away(&t.ws, slug);
        }
        Err(e) => return Err(lock_err(e)),
    };
    let (identity, now) = (ctx.identity, ctx.now);
    let root = t.ws.root().to_path_buf();
    let receipt_of = |report: &openspec::ArchiveReport| {
        let mut touched = report.files_touched.clone();
        touched.push(
            report
                .path
                .strip_prefix(&root)
                .unwrap_or(&report.path)
                .to_string_lossy()
                .into_owned(),
        );
        json!({
            "slug": slug,
            "archivedAs": report.archived_as,
            "commits": [],
            "filesTouched": touched,
            "tests": {"added": 0, "updated": 0, "passed": false},
            "archivedAt": crate::openspec::list::iso_ms(now),
            "toolVersions": {
                "taskMcp": env!("CARGO_PKG_VERSION"),
                "openspecCompat": OPENSPEC_COMPAT,
                "change.archive": "1.0.0"
            },
            "actor": {"type": "user", "name": identity, "model": "task-mcp"},
        })
    };
    // The receipt and the lease's removal are part of the archive's journal, so a crash
    // right after the move still ends with them done.
    let settle = |report: &openspec::ArchiveReport| {
        let text = serde_json::to_string_pretty(&receipt_of(report)).unwrap_or_default();
        vec![
            (RECEIPT_FILE.to_string(), Some(text)),
            (lock::LEASE_FILE.to_string(), None),
        ]
    };
    let crash_at = t.opts.test_crash_at;
    let crash = move |s: ArchiveStep| {
        if Some(s) == crash_at {
            std::process::abort();
        }
    };
    let opts = ArchiveOptions {
        now,
        skip_specs,
        keep_undo: true,
        settle: Some(&settle),
        fault: crash_at.is_some().then_some(&crash as &dyn Fn(ArchiveStep)),
        ..ArchiveOptions::yes()
    };
    // Read before the folder moves; the report adds the CLI's own warnings.
    let advisories = advisories(t, slug, &dir, skip_specs);
    let report = t.ws.archive(slug, &opts).map_err(archive_err)?;
    drop(guard);
    let receipt = receipt_of(&report);
    let warnings = [report.warnings.clone(), advisories].concat();
    log_warnings(ctx, "change_archive", slug, &warnings);
    ctx.log(
        LogLevel::Info,
        json!({"tool": "change_archive", "slug": slug, "message": format!("archived as {}", report.archived_as)}),
    );
    Ok(json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "archived": true,
        "alreadyArchived": false,
        "archivedAs": report.archived_as,
        "target": rel(&root, &report.path),
        "specsUpdated": report.specs_updated,
        "totals": report.totals,
        "warnings": warnings,
        "receipt": receipt,
    }))
}

/// `change_archive` with `dryRun`: every check of the real archive, and what it would write.
fn archive_plan(
    t: &OpenSpecTool,
    slug: &str,
    dir: &Path,
    skip_specs: bool,
    now: SystemTime,
) -> Result<Value, ToolError> {
    let opts = ArchiveOptions {
        now,
        skip_specs,
        dry_run: true,
        ..ArchiveOptions::yes()
    };
    let report = t.ws.archive(slug, &opts).map_err(archive_err)?;
    let specs: Vec<Value> = report
        .spec_changes
        .iter()
        .map(|c| {
            let action = match (&c.old, &c.new) {
                (None, _) => "create",
                (_, None) => "delete",
                _ => "update",
            };
            json!({
                "path": c.path,
                "capability": c.capability,
                "action": action,
                "added": c.counts.added,
                "modified": c.counts.modified,
                "removed": c.counts.removed,
                "renamed": c.counts.renamed,
                "diff": openspec::diff::unified(&c.path, c.old.as_deref(), c.new.as_deref()),
            })
        })
        .collect();
    let mut warnings = report.warnings.clone();
    warnings.extend(advisories(t, slug, dir, skip_specs));
    Ok(json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "dryRun": true,
        "archived": false,
        "alreadyArchived": false,
        "archivedAs": report.archived_as,
        "target": rel(t.ws.root(), &report.path),
        "specsUpdated": report.specs_updated,
        "totals": report.totals,
        "warnings": warnings,
        "plan": {"specs": specs},
    }))
}

/// What a person should know before archiving, beyond the CLI's own warnings: unfinished
/// tasks, a change with no deltas, and the warnings of `openspec validate`.
fn advisories(t: &OpenSpecTool, slug: &str, dir: &Path, skip_specs: bool) -> Vec<String> {
    let mut out = Vec::new();
    let p = fsx::read_opt(&dir.join("tasks.md"))
        .ok()
        .flatten()
        .map(|text| tasks::count_tasks(&text))
        .unwrap_or_default();
    if p.total > 0 && p.completed < p.total {
        out.push(format!("{}/{} tasks done", p.completed, p.total));
    }
    let deltas = openspec::discover::spec_files(&dir.join("specs")).unwrap_or_default();
    if !skip_specs && deltas.is_empty() {
        out.push("the change has no spec deltas: archiving only moves its folder".into());
    }
    if let Ok(v) = t.ws.validate_change(slug, false) {
        for i in v.issues.iter().filter(|i| i.level == Level::Warning) {
            out.push(format!("{}: {}", i.path, i.message));
        }
    }
    out
}

/// The answer for a change another call archived while this one was starting.
fn moved_away(ws: &Workspace, slug: &str) -> Result<Value, ToolError> {
    match ws.locate(slug).map_err(map_err)? {
        ChangeState::Archived(dir) => Ok(already_archived(slug, &dir)),
        ChangeState::Active(_) => Err(lock_err(LockError::Held(None))),
    }
}
