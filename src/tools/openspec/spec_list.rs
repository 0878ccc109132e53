//! `spec_list`: `openspec list --specs --json`.

use serde_json::{Value, json};

use super::OpenSpecTool;
use super::errors::map_err;
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `spec_list`: `openspec list --specs --json`.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "spec_list",
        "List specs",
        Effect::Reads,
        "Main specs under openspec/specs with their requirement counts (as `openspec list --specs --json`).",
    )
    .alias("spec.list")
    .output(json!({
        "type": "object",
        "properties": {"specs": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "requirementCount": {"type": "integer"}}, "required": ["id", "requirementCount"]}}},
        "required": ["specs"]
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    _args: &Value,
    _ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let specs = t.ws.list_specs().map_err(map_err)?;
    Ok(json!({ "specs": specs }))
}
