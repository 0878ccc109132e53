//! `change_unarchive`: undo an archive made by this server.

use serde_json::{Value, json};

use super::args::{slug_only_schema, str_arg};
use super::errors::map_err;
use super::{API_VERSION, OpenSpecTool};
use crate::openspec::ChangeState;
use crate::openspec::unarchive::UnarchiveStep;
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `change_unarchive`: undo an archive made by this server.
pub(super) fn def(_: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_unarchive",
        "Undo an archive",
        Effect::Overwrites,
        "Put an archived change back: its folder returns to openspec/changes/<slug> and every spec file the archive changed gets its exact previous bytes. Refused, with nothing changed, when a spec file was edited since the archive (the error names the files), when openspec/changes/<slug> exists again, or for a change archived by the openspec CLI (no undo record).",
    )
    .alias("change.unarchive")
    .input(slug_only_schema())
    .output(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "slug": {"type": "string"},
            "unarchived": {"type": "boolean"},
            "archivedAs": {"type": "string"},
            "filesRestored": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["apiVersion", "slug", "unarchived"]
    }))
}

pub(super) fn run(
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
