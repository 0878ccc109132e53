//! Reading tool arguments, and the argument schemas several tools declare.
//!
//! Every call's arguments were already checked against the tool's `inputSchema` (see
//! `tools::schema`); these readers still refuse a wrong type rather than panic, for a caller
//! that reaches a tool without the transports.

use serde_json::{Value, json};

use crate::openspec;
use crate::tools::ToolError;

pub(super) fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    opt_str(args, key)?.ok_or_else(|| ToolError::new("EBADARGS", format!("`{key}` is required")))
}

pub(super) fn opt_str<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolError::new(
            "EBADARGS",
            format!("`{key}` must be a string"),
        )),
    }
}

pub(super) fn opt_u64(args: &Value, key: &str) -> Result<Option<u64>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ToolError::new("EBADARGS", format!("`{key}` must be a positive integer"))
        }),
    }
}

pub(super) fn slug_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "minLength": openspec::slug::MIN_SLUG_CHARS, "maxLength": openspec::slug::MAX_SLUG_CHARS, "description": "The change id: lowercase words joined by single hyphens, e.g. add-login."})
}

pub(super) fn slug_only_schema() -> Value {
    json!({"type": "object", "properties": {"slug": slug_schema()}, "required": ["slug"], "additionalProperties": false})
}
