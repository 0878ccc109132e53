//! `change_list`: active changes with task progress, one page at a time.

use serde_json::{Value, json};

use super::OpenSpecTool;
use super::args::opt_u64;
use super::errors::map_err;
use super::views::{live_lease, ms};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `change_list`: active changes with task progress, paged.
pub(super) fn def(opts: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_list",
        "List changes",
        Effect::Reads,
        "Active changes, newest first, with task progress (as `openspec list --json`), one page at a time.",
    )
    .alias("change.list")
    .input(json!({
        "type": "object",
        "properties": {
            "page": {"type": "integer", "minimum": 1, "default": 1, "description": "1-based page number."},
            "pageSize": {"type": "integer", "minimum": 1, "maximum": opts.max_page_size, "default": opts.page_size, "description": "Changes per page."}
        },
        "additionalProperties": false
    }))
    .output(json!({
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
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
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
