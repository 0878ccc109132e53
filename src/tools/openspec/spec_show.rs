//! `spec_show`: `openspec show <spec> --type spec --json`, plus the markdown.

use serde_json::{Value, json};

use super::OpenSpecTool;
use super::args::str_arg;
use super::errors::map_err;
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `spec_show`: `openspec show <spec> --type spec --json` plus the markdown.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "spec_show",
        "Show a spec",
        Effect::Reads,
        "A main spec parsed as `openspec show <id> --type spec --json` prints it, plus its markdown. Nested ids look like platform/billing.",
    )
    .alias("spec.show")
    .input(json!({
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*$", "maxLength": 200, "description": "The capability: auth, or platform/billing for a nested one."}},
        "required": ["id"],
        "additionalProperties": false
    }))
    .output(json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "overview": {"type": "string"},
            "requirementCount": {"type": "integer"}, "requirements": {"type": "array"},
            "metadata": {"type": "object"}, "markdown": {"type": "string"}
        },
        "required": ["id", "title", "overview", "requirementCount", "requirements", "markdown"]
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    _ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
    let id = str_arg(args, "id")?;
    let (mut v, text) = t.ws.show_spec(id).map_err(map_err)?;
    v["markdown"] = Value::String(text);
    Ok(v)
}
