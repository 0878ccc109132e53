//! The OpenSpec tools: open, write, validate, show, list and archive changes; list and show specs.
//!
//! Each tool is an [`OpenSpecTool`]: its [`ToolDef`] (built by `<name>_def`) and the function
//! that runs it (`<name>`), over a shared [`Workspace`]. Writers hold the change lease
//! (`<change>/.lock`, owner = the caller's identity) and an exclusive directory lock while they
//! write, so two callers on one change get one winner and `ELOCKED` for the rest, while callers
//! on different changes never wait for each other (archives of one workspace are serialised
//! inside the engine because they may touch the same spec).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::options::ToolOptions;
use super::{Access, Annotations, LogLevel, Registry, Tool, ToolCtx, ToolDef, ToolError};
use crate::fsx;
use crate::openspec::lock::{self, DirLock, Lease, LockError};
use crate::openspec::unarchive::UnarchiveStep;
use crate::openspec::validate::Level;
use crate::openspec::{
    self, ArchiveOptions, ArchiveStep, ChangeState, Error, NewChange, Template, Workspace, tasks,
};

/// One OpenSpec tool: its description, the shared workspace and limits, and the function that
/// runs it. Every tool is one of these, so the registry and the transports see a plain [`Tool`].
pub struct OpenSpecTool {
    def: ToolDef,
    ws: Arc<Workspace>,
    opts: ToolOptions,
    run: Run,
}

/// Registers every OpenSpec tool (in listing order) and the resource provider.
pub fn register(reg: &mut Registry, ws: Arc<Workspace>, opts: ToolOptions) {
    let tools: [(ToolDef, Run); 9] = [
        (change_open_def(&opts), change_open),
        (change_write_def(&opts), change_write),
        (change_validate_def(&opts), change_validate),
        (change_show_def(&opts), change_show),
        (change_list_def(&opts), change_list),
        (change_archive_def(&opts), change_archive),
        (change_unarchive_def(&opts), change_unarchive),
        (spec_list_def(&opts), spec_list),
        (spec_show_def(&opts), spec_show),
    ];
    for (def, run) in tools {
        reg.add_tool(Arc::new(OpenSpecTool {
            def,
            ws: ws.clone(),
            opts,
            run,
        }));
    }
    reg.add_resources(Arc::new(super::resources::OpenSpecResources::new(ws, opts)));
    reg.add_prompts(Arc::new(super::prompts::OpenSpecPrompts));
}

impl Tool for OpenSpecTool {
    fn def(&self) -> &ToolDef {
        &self.def
    }

    fn call(&self, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let out = (self.run)(self, args, ctx);
        if let Err(e) = &out
            && e.code == "ELOCKED"
        {
            // Worth a person's notice: someone else is working on this change.
            ctx.log(
                LogLevel::Notice,
                json!({"tool": self.def.name, "message": e.message, "lease": e.details}),
            );
        }
        out
    }
}

/// Sends each warning as a `warning` log message (the result carries them too; the log reaches
/// a person watching the client's log view).
fn log_warnings(ctx: &mut ToolCtx<'_>, tool: &str, slug: &str, warnings: &[String]) {
    for w in warnings {
        ctx.log(
            LogLevel::Warning,
            json!({"tool": tool, "slug": slug, "message": w}),
        );
    }
}

/// `change_open`: create (from a template) or reopen a change and take its lease.
fn change_open_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_open",
        alias: Some("change.open"),
        title: "Open a change",
        description: "Create an OpenSpec change (proposal.md, tasks.md, specs/) from a template, or reopen an existing one, and take its edit lock. Returns the paths, resource URIs, the current proposal and tasks text, and task progress.",
        input_schema: json!({
            "type": "object",
            "properties": {
                "slug": slug_schema(),
                "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Heading of a new proposal.md (`# Change: <title>`); ignored when the change exists."},
                "rationale": {"type": "string", "maxLength": 4000, "description": "The `## Why` text of a new proposal.md; ignored when the change exists."},
                "template": {"type": "string", "enum": ["feature", "bugfix", "chore"], "default": "feature", "description": "Which skeleton a new change starts from."},
                "ttl": {"type": "integer", "minimum": 60, "maximum": 86400, "description": "Lease length in seconds."}
            },
            "required": ["slug"],
            "additionalProperties": false
        }),
        output_schema: json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "slug": {"type": "string"},
                "created": {"type": "boolean"},
                "locked": {"type": "boolean"},
                "status": {"type": "string", "enum": ["draft", "archived"]},
                "paths": {"type": "object", "properties": {"root": {"type": "string"}, "proposal": {"type": "string"}, "tasks": {"type": "string"}, "delta": {"type": "string"}}, "required": ["root", "proposal", "tasks", "delta"]},
                "resourceUris": {"type": "object", "properties": {"proposal": {"type": "string"}, "tasks": {"type": "string"}, "delta": {"type": "string"}}, "required": ["proposal", "tasks", "delta"]},
                "proposal": {"type": ["string", "null"]},
                "tasks": {"type": ["string", "null"]},
                "progress": progress_schema(),
                "lock": lease_schema()
            },
            "required": ["apiVersion", "slug", "created", "locked", "status", "paths", "resourceUris", "progress"]
        }),
        annotations: Annotations {
            idempotent_hint: true,
            ..Annotations::default()
        },
        access: Access::Write,
        progress: false,
        talks: false,
    }
}

fn change_open(t: &OpenSpecTool, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let title = opt_str(args, "title")?.unwrap_or(slug);
    let rationale = opt_str(args, "rationale")?;
    let template = match opt_str(args, "template")? {
        None | Some("feature") => Template::Feature,
        Some("bugfix") => Template::Bugfix,
        Some("chore") => Template::Chore,
        Some(other) => {
            return Err(
                ToolError::new("EBADARGS", format!("unknown template '{other}'"))
                    .hint("Use feature, bugfix or chore."),
            );
        }
    };
    let ttl = match args.get("ttl") {
        None | Some(Value::Null) => t.opts.default_lock_ttl_s,
        Some(v) => v
            .as_u64()
            .filter(|t| (60..=86_400).contains(t))
            .ok_or_else(|| {
                ToolError::new("EBADARGS", "`ttl` must be an integer from 60 to 86400")
            })?,
    };
    match t.ws.locate(slug) {
        Ok(ChangeState::Archived(dir)) => {
            return Ok(change_view(
                t.ws.root(),
                slug,
                &dir,
                false,
                "archived",
                None,
            ));
        }
        Ok(ChangeState::Active(_)) | Err(Error::NoChange(_)) => {}
        Err(e) => return Err(map_err(e)),
    }
    let created =
        t.ws.create_change(
            slug,
            &NewChange {
                title,
                rationale,
                template,
                now: ctx.now,
            },
        )
        .map_err(map_err)?;
    let dir = t.ws.active_dir(slug).map_err(map_err)?;
    let lease = lock::take_lease(&dir, ctx.identity, ttl, ms(ctx.now))
        .map_err(|e| lock_err_at(&t.ws, slug, e))?;
    Ok(change_view(
        t.ws.root(),
        slug,
        &dir,
        created,
        "draft",
        Some(&lease),
    ))
}

/// `change_write`: replace proposal.md, tasks.md, design.md or a delta spec, under the lease.
fn change_write_def(opts: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_write",
        alias: Some("change.write"),
        title: "Write a change file",
        description: "Replace one markdown file of an open change: proposal.md, tasks.md, design.md, or a spec delta at specs/<capability>/spec.md (delta format: ## ADDED/MODIFIED/REMOVED/RENAMED Requirements). Takes or refreshes your lease; fails with ELOCKED when someone else holds it. The write is atomic.",
        input_schema: json!({
            "type": "object",
            "properties": {
                "slug": slug_schema(),
                "file": {"type": "string", "pattern": "^(proposal\\.md|tasks\\.md|design\\.md|specs/[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*/spec\\.md)$", "description": "The file inside the change: proposal.md, tasks.md, design.md or specs/<capability>/spec.md."},
                "content": {"type": "string", "maxLength": opts.max_write_bytes, "description": "The whole new text of the file (it is replaced, not appended to)."}
            },
            "required": ["slug", "file", "content"],
            "additionalProperties": false
        }),
        output_schema: json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "slug": {"type": "string"},
                "file": {"type": "string"},
                "path": {"type": "string"},
                "bytes": {"type": "integer"},
                "progress": progress_schema()
            },
            "required": ["apiVersion", "slug", "file", "path", "bytes"]
        }),
        annotations: destructive(),
        access: Access::Write,
        progress: false,
        talks: false,
    }
}

fn change_write(t: &OpenSpecTool, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let file = str_arg(args, "file")?;
    let content = str_arg(args, "content")?;
    if !file.ends_with(".md") {
        return Err(ToolError::new(
            "EBADSHAPE_SECURITY_VIOLATION",
            "only markdown files can be written",
        ));
    }
    if content.len() > t.opts.max_write_bytes {
        return Err(ToolError::new(
            "EBADSHAPE_SIZE_EXCEEDED",
            format!(
                "content is {} bytes; the limit is {}",
                content.len(),
                t.opts.max_write_bytes
            ),
        )
        .details(json!({"bytes": content.len(), "maxBytes": t.opts.max_write_bytes})));
    }
    if content.contains('\0') {
        return Err(ToolError::new(
            "EBADSHAPE_CONTENT_BINARY",
            "content holds NUL bytes; only text is accepted",
        ));
    }
    // Every path check comes before the lease: a refused write leaves no trace.
    let (dir, _, _) = t.ws.change_file_path(slug, file).map_err(map_err)?;
    let ttl = lock::read_lease(&dir)
        .ok()
        .flatten()
        .filter(|l| l.owner == ctx.identity)
        .map_or(t.opts.default_lock_ttl_s, |l| l.ttl);
    lock::take_lease(&dir, ctx.identity, ttl, ms(ctx.now))
        .map_err(|e| lock_err_at(&t.ws, slug, e))?;
    let _guard = DirLock::try_acquire(&dir).map_err(|e| lock_err_at(&t.ws, slug, e))?;
    let path =
        t.ws.write_change_file(slug, file, content)
            .map_err(map_err)?;
    Ok(json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "file": file,
        "path": rel(t.ws.root(), &path),
        "bytes": content.len(),
        "progress": progress(&dir),
    }))
}

/// `change_validate`: `openspec validate --strict` plus the archive dry run.
fn change_validate_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_validate",
        alias: Some("change.validate"),
        title: "Validate a change",
        description: "Run `openspec validate <slug> --strict` and a dry run of the archive merge. `valid` is true only when both pass, so a change that validates here will archive.",
        input_schema: slug_only_schema(),
        output_schema: json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "slug": {"type": "string"},
                "valid": {"type": "boolean"},
                "strict": {"type": "object", "properties": {"valid": {"type": "boolean"}, "issues": {"type": "array", "items": issue_schema()}}, "required": ["valid", "issues"]},
                "archive": {"type": "object", "properties": {"ok": {"type": "boolean"}, "code": {"type": "string"}, "message": {"type": "string"}, "fix": {"type": "string"}, "specsUpdated": {"type": "boolean"}, "totals": {"type": "object"}, "warnings": {"type": "array", "items": {"type": "string"}}}, "required": ["ok"]}
            },
            "required": ["apiVersion", "slug", "valid", "strict", "archive"]
        }),
        annotations: read_only(),
        access: Access::Read,
        progress: false,
        talks: false,
    }
}

fn change_validate(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let report = t.ws.validate_change(slug, true).map_err(map_err)?;
    let archive = match t.ws.archive_dry_run(slug) {
        Ok(r) => {
            json!({"ok": true, "specsUpdated": r.specs_updated, "totals": r.totals, "warnings": r.warnings})
        }
        Err(e) => {
            let mut v = json!({"ok": false, "code": e.code, "message": e.message});
            if let Some(f) = e.fix {
                v["fix"] = Value::String(f);
            }
            v
        }
    };
    let result = json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "valid": report.valid && archive["ok"] == true,
        "strict": {"valid": report.valid, "issues": report.issues},
        "archive": archive,
    });
    for issue in result["strict"]["issues"].as_array().into_iter().flatten() {
        let level = match issue["level"].as_str() {
            Some("ERROR") => LogLevel::Error,
            Some("WARNING") => LogLevel::Warning,
            _ => LogLevel::Info,
        };
        ctx.log(
            level,
            json!({"tool": "change_validate", "slug": slug, "path": issue["path"], "message": issue["message"]}),
        );
    }
    if result["archive"]["ok"] == false {
        ctx.log(
            LogLevel::Error,
            json!({"tool": "change_validate", "slug": slug, "message": result["archive"]["message"]}),
        );
    }
    Ok(result)
}

/// `change_show`: `openspec show <id> --json` plus task progress and the lease.
fn change_show_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_show",
        alias: Some("change.show"),
        title: "Show a change",
        description: "The parsed change as `openspec show <slug> --json` prints it (title, deltas with requirements and scenarios), plus task progress and the current lease.",
        input_schema: slug_only_schema(),
        output_schema: json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "deltaCount": {"type": "integer"},
                "deltas": {"type": "array", "items": {"type": "object"}},
                "progress": progress_schema(),
                "lock": lease_schema()
            },
            "required": ["id", "title", "deltaCount", "deltas", "progress"]
        }),
        annotations: read_only(),
        access: Access::Read,
        progress: false,
        talks: false,
    }
}

fn change_show(t: &OpenSpecTool, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let mut v = t.ws.show_change(slug).map_err(map_err)?;
    let dir = t.ws.active_dir(slug).map_err(map_err)?;
    v["progress"] = progress(&dir);
    if let Some(l) = live_lease(&dir, ms(ctx.now)) {
        v["lock"] = json!(l);
    }
    Ok(v)
}

/// `change_list`: active changes with task progress, paged.
fn change_list_def(opts: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_list",
        alias: Some("change.list"),
        title: "List changes",
        description: "Active changes, newest first, with task progress (as `openspec list --json`), one page at a time.",
        input_schema: json!({
            "type": "object",
            "properties": {
                "page": {"type": "integer", "minimum": 1, "default": 1, "description": "1-based page number."},
                "pageSize": {"type": "integer", "minimum": 1, "maximum": opts.max_page_size, "default": opts.page_size, "description": "Changes per page."}
            },
            "additionalProperties": false
        }),
        output_schema: json!({
            "type": "object",
            "properties": {
                "changes": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "completedTasks": {"type": "integer"}, "totalTasks": {"type": "integer"},
                    "lastModified": {"type": "string"}, "status": {"type": "string", "enum": ["no-tasks", "complete", "in-progress"]},
                    "locked": {"type": "boolean"}
                }, "required": ["name", "completedTasks", "totalTasks", "lastModified", "status"]}},
                "page": {"type": "integer"},
                "pageSize": {"type": "integer"},
                "total": {"type": "integer"},
                "hasMore": {"type": "boolean"}
            },
            "required": ["changes", "page", "pageSize", "total", "hasMore"]
        }),
        annotations: read_only(),
        access: Access::Read,
        progress: false,
        talks: false,
    }
}

fn change_list(t: &OpenSpecTool, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let page = opt_u64(args, "page")?.unwrap_or(1).max(1) as usize;
    let size = opt_u64(args, "pageSize")?
        .map_or(t.opts.page_size, |s| s as usize)
        .clamp(1, t.opts.max_page_size);
    let all = t.ws.list_changes().map_err(map_err)?;
    let total = all.len();
    let now = ms(ctx.now);
    let changes: Vec<Value> = all
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|c| {
            let locked = live_lease(&t.ws.changes_dir().join(&c.name), now).is_some();
            let mut v = json!(c);
            v["locked"] = Value::Bool(locked);
            v
        })
        .collect();
    Ok(json!({
        "changes": changes,
        "page": page,
        "pageSize": size,
        "total": total,
        "hasMore": page.saturating_mul(size) < total,
    }))
}

/// `change_archive`: `openspec archive <id> --yes`, with a receipt inside the archived folder.
fn change_archive_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_archive",
        alias: Some("change.archive"),
        title: "Archive a change",
        description: "Apply the change's spec deltas to openspec/specs and move it to changes/archive/YYYY-MM-DD-<slug>, exactly as `openspec archive <slug> --yes` does (all or nothing; failures carry the CLI's archive_* code). Writes receipt.json into the archived folder. Archiving an archived change returns alreadyArchived with its receipt. Call it first with dryRun: true to see the plan (per spec file: requirements added, modified, removed, renamed, and a unified diff) and its warnings (incomplete tasks, no deltas, validation warnings) without changing anything. skipSpecs: true only moves the folder and leaves openspec/specs untouched (the CLI's --skip-specs).",
        input_schema: json!({
            "type": "object",
            "properties": {
                "slug": slug_schema(),
                "dryRun": {"type": "boolean", "default": false, "description": "Run every check the archive makes and return the plan; write nothing."},
                "skipSpecs": {"type": "boolean", "default": false, "description": "Move the change to the archive without applying its spec deltas (openspec archive --skip-specs)."}
            },
            "required": ["slug"],
            "additionalProperties": false
        }),
        output_schema: json!({
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
        }),
        annotations: destructive(),
        access: Access::Write,
        progress: false,
        talks: false,
    }
}

fn change_archive(
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

/// `change_unarchive`: undo an archive made by this server.
fn change_unarchive_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "change_unarchive",
        alias: Some("change.unarchive"),
        title: "Undo an archive",
        description: "Put an archived change back: its folder returns to openspec/changes/<slug> and every spec file the archive changed gets its exact previous bytes. Refused, with nothing changed, when a spec file was edited since the archive (the error names the files), when openspec/changes/<slug> exists again, or for a change archived by the openspec CLI (no undo record).",
        input_schema: slug_only_schema(),
        output_schema: json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "slug": {"type": "string"},
                "unarchived": {"type": "boolean"},
                "archivedAs": {"type": "string"},
                "filesRestored": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["apiVersion", "slug", "unarchived"]
        }),
        annotations: destructive(),
        access: Access::Write,
        progress: false,
        talks: false,
    }
}

fn change_unarchive(
    t: &OpenSpecTool,
    args: &Value,
    _ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    t.ws.recover().map_err(map_err)?;
    let dir = match t.ws.locate(slug).map_err(map_err)? {
        ChangeState::Archived(dir) => dir,
        ChangeState::Active(_) => {
            return Err(ToolError::new(
                "ENOTARCHIVED",
                format!("Change '{slug}' is active, not archived."),
            )
            .hint("Nothing to undo; change_list shows active changes."));
        }
    };
    let crash_at = t.opts.test_crash_unarchive;
    let crash = move |s: UnarchiveStep| {
        if Some(s) == crash_at {
            std::process::abort();
        }
    };
    let fault = crash_at
        .is_some()
        .then_some(&crash as &dyn Fn(UnarchiveStep));
    let report = t.ws.unarchive(&dir, fault).map_err(|e| {
        let mut err = ToolError::new(e.code, e.message);
        if !e.files.is_empty() {
            err = err.details(json!({"files": e.files}));
        }
        err
    })?;
    Ok(json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "unarchived": true,
        "archivedAs": report.archived_as,
        "filesRestored": report.files_restored,
    }))
}

/// `change_archive` with `dryRun`: every check of the real archive, and what it would write.
fn archive_plan(
    t: &OpenSpecTool,
    slug: &str,
    dir: &std::path::Path,
    skip_specs: bool,
    now: std::time::SystemTime,
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
fn advisories(
    t: &OpenSpecTool,
    slug: &str,
    dir: &std::path::Path,
    skip_specs: bool,
) -> Vec<String> {
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

fn archive_err(e: openspec::ArchiveError) -> ToolError {
    let mut t = ToolError::new(e.code, e.message.clone());
    if let Some(f) = &e.fix {
        t = t.hint(f.clone());
    }
    t
}

/// `path` relative to the repository root, as results show every path.
fn rel(root: &std::path::Path, path: &std::path::Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The answer for a change another call archived while this one was starting.
fn moved_away(ws: &Workspace, slug: &str) -> Result<Value, ToolError> {
    match ws.locate(slug).map_err(map_err)? {
        ChangeState::Archived(dir) => Ok(already_archived(slug, &dir)),
        ChangeState::Active(_) => Err(lock_err(LockError::Held(None))),
    }
}

/// `spec_list`: `openspec list --specs --json`.
fn spec_list_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "spec_list",
        alias: Some("spec.list"),
        title: "List specs",
        description: "Main specs under openspec/specs with their requirement counts (as `openspec list --specs --json`).",
        input_schema: super::empty_object_schema(),
        output_schema: json!({
            "type": "object",
            "properties": {"specs": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "requirementCount": {"type": "integer"}}, "required": ["id", "requirementCount"]}}},
            "required": ["specs"]
        }),
        annotations: read_only(),
        access: Access::Read,
        progress: false,
        talks: false,
    }
}

fn spec_list(t: &OpenSpecTool, _args: &Value, _ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let specs = t.ws.list_specs().map_err(map_err)?;
    Ok(json!({ "specs": specs }))
}

/// `spec_show`: `openspec show <spec> --type spec --json` plus the markdown.
fn spec_show_def(_: &ToolOptions) -> ToolDef {
    ToolDef {
        name: "spec_show",
        alias: Some("spec.show"),
        title: "Show a spec",
        description: "A main spec parsed as `openspec show <id> --type spec --json` prints it, plus its markdown. Nested ids look like platform/billing.",
        input_schema: json!({
            "type": "object",
            "properties": {"id": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*$", "maxLength": 200, "description": "The capability: auth, or platform/billing for a nested one."}},
            "required": ["id"],
            "additionalProperties": false
        }),
        output_schema: json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "title": {"type": "string"}, "overview": {"type": "string"},
                "requirementCount": {"type": "integer"}, "requirements": {"type": "array"},
                "metadata": {"type": "object"}, "markdown": {"type": "string"}
            },
            "required": ["id", "title", "overview", "requirementCount", "requirements", "markdown"]
        }),
        annotations: read_only(),
        access: Access::Read,
        progress: false,
        talks: false,
    }
}

fn spec_show(t: &OpenSpecTool, args: &Value, _ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
    let id = str_arg(args, "id")?;
    let (mut v, text) = t.ws.show_spec(id).map_err(map_err)?;
    v["markdown"] = Value::String(text);
    Ok(v)
}

/// Maps an engine error to the tool error codes.
pub fn map_err(e: Error) -> ToolError {
    match e {
        Error::BadSlug(m) => ToolError::new("EBADSLUG", m).hint(
            "Use 3-64 characters: lowercase letters, digits and single hyphens (e.g. add-login).",
        ),
        Error::NoChange(id) => ToolError::new("ENOCHANGE", format!("Change '{id}' not found."))
            .hint("Call change_list to see active changes, or change_open to create one."),
        Error::Archived(id) => ToolError::new("EARCHIVED", format!("Change '{id}' is archived."))
            .hint("Archived changes are read-only; open a new change instead."),
        Error::PathEscape(m) => ToolError::new("EPATH_ESCAPE", m),
        Error::BadShape(code, m) => ToolError::new(code, m),
        Error::Exists(m) => ToolError::new("EEXISTS", m),
        Error::Io(e) => ToolError::new("EIO", e.to_string()),
    }
}

/// As [`lock_err`], but a change folder that vanished under the lock (archived by an overlapping
/// call) is reported as what it is now (`EARCHIVED`), not as an I/O error.
fn lock_err_at(ws: &Workspace, slug: &str, e: LockError) -> ToolError {
    match e {
        LockError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => match ws.active_dir(slug)
        {
            Err(moved) => map_err(moved),
            Ok(_) => lock_err(LockError::Held(None)),
        },
        e => lock_err(e),
    }
}

fn lock_err(e: LockError) -> ToolError {
    match e {
        LockError::Held(Some(l)) => ToolError::new(
            "ELOCKED",
            format!("The change is locked by '{}'.", l.owner),
        )
        .hint("Wait until the lease expires (since + ttl seconds) or ask its owner to finish.")
        .details(json!({"owner": l.owner, "since": l.since, "ttl": l.ttl})),
        LockError::Held(None) => {
            ToolError::new("ELOCKED", "Another call is writing this change right now.")
                .hint("Retry in a moment.")
        }
        LockError::Io(e) => ToolError::new("EIO", e.to_string()),
    }
}

fn change_view(
    root: &std::path::Path,
    slug: &str,
    dir: &std::path::Path,
    created: bool,
    status: &str,
    lease: Option<&Lease>,
) -> Value {
    let proposal = fsx::read_opt(&dir.join("proposal.md")).ok().flatten();
    let task_text = fsx::read_opt(&dir.join("tasks.md")).ok().flatten();
    let mut v = json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "created": created,
        "locked": lease.is_some(),
        "status": status,
        // Relative to the repository root: a client learns nothing of the server's layout.
        "paths": {
            "root": rel(root, dir),
            "proposal": rel(root, &dir.join("proposal.md")),
            "tasks": rel(root, &dir.join("tasks.md")),
            "delta": rel(root, &dir.join("specs")),
        },
        "resourceUris": {
            "proposal": format!("change://{slug}/proposal"),
            "tasks": format!("change://{slug}/tasks"),
            "delta": format!("change://{slug}/delta"),
        },
        "proposal": proposal,
        "tasks": task_text,
        "progress": progress(dir),
    });
    if let Some(l) = lease {
        v["lock"] = json!(l);
    }
    v
}

/// `alreadyArchived` with the receipt stored in `dir` (the archived folder).
fn already_archived(slug: &str, dir: &std::path::Path) -> Value {
    let receipt = fsx::read_opt(&dir.join(RECEIPT_FILE))
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or_else(|| json!({"slug": slug}));
    json!({
        "apiVersion": API_VERSION,
        "slug": slug,
        "archived": true,
        "alreadyArchived": true,
        "archivedAs": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "receipt": receipt,
    })
}

fn progress(dir: &std::path::Path) -> Value {
    let p = fsx::read_opt(&dir.join("tasks.md"))
        .ok()
        .flatten()
        .map(|t| tasks::count_tasks(&t))
        .unwrap_or_default();
    json!({"total": p.total, "completed": p.completed, "status": tasks::format_status(p)})
}

fn live_lease(dir: &std::path::Path, now_ms: u64) -> Option<Lease> {
    lock::read_lease(dir)
        .ok()
        .flatten()
        .filter(|l| l.is_live(now_ms))
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    opt_str(args, key)?.ok_or_else(|| ToolError::new("EBADARGS", format!("`{key}` is required")))
}

fn opt_str<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolError::new(
            "EBADARGS",
            format!("`{key}` must be a string"),
        )),
    }
}

fn opt_u64(args: &Value, key: &str) -> Result<Option<u64>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ToolError::new("EBADARGS", format!("`{key}` must be a positive integer"))
        }),
    }
}

fn slug_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "minLength": openspec::slug::MIN_SLUG_CHARS, "maxLength": openspec::slug::MAX_SLUG_CHARS, "description": "The change id: lowercase words joined by single hyphens, e.g. add-login."})
}

fn slug_only_schema() -> Value {
    json!({"type": "object", "properties": {"slug": slug_schema()}, "required": ["slug"], "additionalProperties": false})
}

fn progress_schema() -> Value {
    json!({"type": "object", "properties": {"total": {"type": "integer"}, "completed": {"type": "integer"}, "status": {"type": "string"}}, "required": ["total", "completed"]})
}

fn lease_schema() -> Value {
    json!({"type": "object", "properties": {"owner": {"type": "string"}, "since": {"type": "integer", "description": "ms since the Unix epoch"}, "ttl": {"type": "integer", "description": "seconds"}}, "required": ["owner", "since", "ttl"]})
}

fn issue_schema() -> Value {
    json!({"type": "object", "properties": {"level": {"type": "string", "enum": ["ERROR", "WARNING", "INFO"]}, "path": {"type": "string"}, "message": {"type": "string"}, "line": {"type": "integer"}}, "required": ["level", "path", "message"]})
}

fn destructive() -> Annotations {
    Annotations {
        destructive_hint: true,
        idempotent_hint: true,
        ..Annotations::default()
    }
}

fn read_only() -> Annotations {
    Annotations {
        read_only_hint: true,
        idempotent_hint: true,
        ..Annotations::default()
    }
}

type Run = fn(&OpenSpecTool, &Value, &mut ToolCtx<'_>) -> Result<Value, ToolError>;

/// The `apiVersion` of every tool result.
pub const API_VERSION: &str = "1.0";
/// The OpenSpec CLI version whose behaviour the engine matches.
pub const OPENSPEC_COMPAT: &str = "1.13.2";
/// The receipt written inside an archived change.
pub const RECEIPT_FILE: &str = "receipt.json";
