//! Engine, lock and archive errors as the tool errors a model reads (`EBADSLUG`, `ELOCKED`,
//! the CLI's `archive_*` codes, ...).

use serde_json::json;

use crate::openspec::lock::LockError;
use crate::openspec::{ArchiveError, Error, Workspace};
use crate::tools::ToolError;

/// Maps an engine error to the tool error codes.
pub fn map_err(e: Error) -> ToolError {
    match e {
        Error::BadSlug(m) => ToolError::new("EBADSLUG", m).hint(
            "Use 3-64 characters: lowercase letters, digits and single hyphens (e.g. add-login).",
        ),
        Error::NoChange(id) => ToolError::new("ENOCHANGE", format!("Change '{id}' not found."))
            .hint("Call change_list to see active changes, or change_open to create one."),
        Error::Archived(id) => ToolError::new("EARCHIVED", format!("Change '{id}' is archived."))
            .hint("Archived changes are read-only; open a new change instead."),
        Error::PathEscape(m) => ToolError::new("EPATH_ESCAPE", m),
        Error::BadShape(code, m) => ToolError::new(code, m),
        Error::Exists(m) => ToolError::new("EEXISTS", m),
        Error::Io(e) => ToolError::new("EIO", e.to_string()),
    }
}

/// As [`lock_err`], but a change folder that vanished under the lock (archived by an overlapping
/// call) is reported as what it is now (`EARCHIVED`), not as an I/O error.
pub(super) fn lock_err_at(ws: &Workspace, slug: &str, e: LockError) -> ToolError {
    match e {
        LockError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => match ws.active_dir(slug)
        {
            Err(moved) => map_err(moved),
            Ok(_) => lock_err(LockError::Held(None)),
        },
        e => lock_err(e),
    }
}

pub(super) fn lock_err(e: LockError) -> ToolError {
    match e {
        LockError::Held(Some(l)) => ToolError::new(
            "ELOCKED",
            format!("The change is locked by '{}'.", l.owner),
        )
        .hint("Wait until the lease expires (since + ttl seconds) or ask its owner to finish.")
        .details(json!({"owner": l.owner, "since": l.since, "ttl": l.ttl})),
        LockError::Held(None) => {
            ToolError::new("ELOCKED", "Another call is writing this change right now.")
                .hint("Retry in a moment.")
        }
        LockError::Io(e) => ToolError::new("EIO", e.to_string()),
    }
}

/// An archive refusal keeps the CLI's code; its fix becomes the hint.
pub(super) fn archive_err(e: ArchiveError) -> ToolError {
    let mut t = ToolError::new(e.code, e.message.clone());
    if let Some(f) = &e.fix {
        t = t.hint(f.clone());
    }
    t
}
