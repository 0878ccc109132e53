//! `change_write`: replace one markdown file of an open change, under the caller's lease.

use serde_json::{Value, json};

use super::args::{slug_schema, str_arg};
use super::errors::{lock_err_at, map_err};
use super::views::{ms, progress, progress_schema, rel};
use super::{API_VERSION, OpenSpecTool};
use crate::openspec::lock::{self, DirLock};
use crate::tools::options::ToolOptions;
use crate::tools::{Effect, ToolCtx, ToolDef, ToolError};

/// `change_write`: replace proposal.md, tasks.md, design.md or a delta spec, under the lease.
pub(super) fn def(opts: &ToolOptions) -> ToolDef {
    ToolDef::new(
        "change_write",
        "Write a change file",
        Effect::Overwrites,
        "Replace one markdown file of an open change: proposal.md, tasks.md, design.md, or a spec delta at specs/<capability>/spec.md (delta format: ## ADDED/MODIFIED/REMOVED/RENAMED Requirements). Takes or refreshes your lease; fails with ELOCKED when someone else holds it. The write is atomic.",
    )
    .alias("change.write")
    .input(json!({
        "type": "object",
        "properties": {
            "slug": slug_schema(),
            "file": {"type": "string", "pattern": "^(proposal\\.md|tasks\\.md|design\\.md|specs/[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*/spec\\.md)$", "description": "The file inside the change: proposal.md, tasks.md, design.md or specs/<capability>/spec.md."},
            "content": {"type": "string", "maxLength": opts.max_write_bytes, "description": "The whole new text of the file (it is replaced, not appended to)."}
        },
        "required": ["slug", "file", "content"],
        "additionalProperties": false
    }))
    .output(json!({
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
    }))
}

pub(super) fn run(
    t: &OpenSpecTool,
    args: &Value,
    ctx: &mut ToolCtx<'_>,
) -> Result<Value, ToolError> {
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
