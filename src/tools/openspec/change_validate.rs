//! `change_validate`: `openspec validate --strict` plus a dry run of the archive.

use serde_json::{Value, json};

use super::args::{slug_only_schema, str_arg};
use super::errors::map_err;
use super::views::issue_schema;
use super::{API_VERSION, OpenSpecTool};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, LogLevel, ToolCtx, ToolDef, ToolError};

/// `change_validate`: `openspec validate --strict` plus the archive dry run.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_validate",
        "Validate a change",
        Effect::Reads,
        "Run `openspec validate <slug> --strict` and a dry run of the archive merge. `valid` is true only when both pass, so a change that validates here will archive.",
    )
    .alias("change.validate")
    .input(slug_only_schema())
    .output(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "slug": {"type": "string"},
            "valid": {"type": "boolean"},
            "strict": {"type": "object", "properties": {"valid": {"type": "boolean"}, "issues": {"type": "array", "items": issue_schema()}}, "required": ["valid", "issues"]},
            "archive": {"type": "object", "properties": {"ok": {"type": "boolean"}, "code": {"type": "string"}, "message": {"type": "string"}, "fix": {"type": "string"}, "specsUpdated": {"type": "boolean"}, "totals": {"type": "object"}, "warnings": {"type": "array", "items": {"type": "string"}}}, "required": ["ok"]}
        },
        "required": ["apiVersion", "slug", "valid", "strict", "archive"]
    }))
}

pub(super) fn run(
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
    // Each finding also goes to the client's log at its level.
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
