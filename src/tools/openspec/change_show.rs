//! `change_show`: a change as `openspec show --json` prints it, with task progress and lease.

use serde_json::{Value, json};

use super::OpenSpecTool;
use super::args::{slug_only_schema, str_arg};
use super::errors::map_err;
use super::views::{lease_schema, live_lease, ms, progress, progress_schema};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `change_show`: `openspec show <id> --json` plus task progress and the lease.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_show",
        "Show a change",
        Effect::Reads,
        "The parsed change as `openspec show <slug> --json` prints it (title, deltas with requirements and scenarios), plus task progress and the current lease.",
    )
    .alias("change.show")
    .input(slug_only_schema())
    .output(json!({
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
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let slug = str_arg(args, "slug")?;
    let mut v = t.ws.show_change(slug).map_err(map_err)?;
    let dir = t.ws.active_dir(slug).map_err(map_err)?;
    v["progress"] = progress(&dir);
    if let Some(l) = live_lease(&dir, ms(ctx.now)) {
        v["lock"] = json!(l);
    }
    Ok(v)
}
