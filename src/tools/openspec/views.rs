//! Pieces of tool results several tools share: a change's view, task progress, the live lease,
//! paths relative to the repository root, and the output schemas that describe them.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{API_VERSION, RECEIPT_FILE};
use crate::fsx;
use crate::openspec::lock::{self, Lease};
use crate::openspec::tasks;

/// What `change_open` answers: the change's files (relative paths and URIs), its text, its task
/// progress and the lease.
pub(super) fn change_view(
    root: &Path,
    slug: &str,
    dir: &Path,
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
pub(super) fn already_archived(slug: &str, dir: &Path) -> Value {
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

pub(super) fn progress(dir: &Path) -> Value {
    let p = fsx::read_opt(&dir.join("tasks.md"))
        .ok()
        .flatten()
        .map(|t| tasks::count_tasks(&t))
        .unwrap_or_default();
    json!({"total": p.total, "completed": p.completed, "status": tasks::format_status(p)})
}

pub(super) fn live_lease(dir: &Path, now_ms: u64) -> Option<Lease> {
    lock::read_lease(dir)
        .ok()
        .flatten()
        .filter(|l| l.is_live(now_ms))
}

pub(super) fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `path` relative to the repository root, as results show every path.
pub(super) fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

pub(super) fn progress_schema() -> Value {
    json!({"type": "object", "properties": {"total": {"type": "integer"}, "completed": {"type": "integer"}, "status": {"type": "string"}}, "required": ["total", "completed"]})
}

pub(super) fn lease_schema() -> Value {
    json!({"type": "object", "properties": {"owner": {"type": "string"}, "since": {"type": "integer", "description": "ms since the Unix epoch"}, "ttl": {"type": "integer", "description": "seconds"}}, "required": ["owner", "since", "ttl"]})
}

pub(super) fn issue_schema() -> Value {
    json!({"type": "object", "properties": {"level": {"type": "string", "enum": ["ERROR", "WARNING", "INFO"]}, "path": {"type": "string"}, "message": {"type": "string"}, "line": {"type": "integer"}}, "required": ["level", "path", "message"]})
}
