//! `change_open`: create a change from a template, or reopen one, and take its lease.

use serde_json::{Value, json};

use super::OpenSpecTool;
use super::args::{opt_str, slug_schema, str_arg};
use super::errors::{lock_err_at, map_err};
use super::views::{change_view, lease_schema, ms, progress_schema};
use crate::openspec::lock::{self};
use crate::openspec::{ChangeState, Error, NewChange, Template};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `change_open`: create (from a template) or reopen a change and take its lease.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_open",
        "Open a change",
        Effect::Creates,
        "Create an OpenSpec change (proposal.md, tasks.md, specs/) from a template, or reopen an existing one, and take its edit lock. Returns the paths, resource URIs, the current proposal and tasks text, and task progress.",
    )
    .alias("change.open")
    .input(json!({
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
    }))
    .output(json!({
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
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
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
