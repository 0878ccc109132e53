//! Undoing an archive: the archived folder goes back to `changes/<id>` and every spec file the
//! archive wrote or deleted gets its exact previous bytes, from the [`UNDO_FILE`] the archive
//! kept (only archives made with [`ArchiveOptions::keep_undo`](super::ArchiveOptions) have one).
//!
//! All or nothing, as the archive: when a spec file changed since the archive, nothing is touched
//! and the error names the files. The steps are journaled in `openspec/.unarchive-journal-<id>.json`
//! before the first write; [`recover`] (run at start and before each archive or undo) finishes an
//! undo whose folder already moved and rolls back one that had not.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::archive::{Layout, UNDO_FILE, Undo, journals, put};
use super::lock::DirLock;
use crate::fsx;

/// The points at which an undo can be interrupted (the crash tests stop the process at each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnarchiveStep {
    /// The journal is durable; nothing else written.
    JournalWritten,
    /// Spec file `n` has its previous bytes back.
    SpecRestored(usize),
    /// The folder is back in `changes/`.
    Moved,
    /// The receipt and the undo record are gone from the change.
    Settled,
}

impl UnarchiveStep {
    /// Every step of an undo restoring `specs` files, in order.
    pub fn all(specs: usize) -> Vec<UnarchiveStep> {
        let mut v = vec![UnarchiveStep::JournalWritten];
        v.extend((0..specs).map(UnarchiveStep::SpecRestored));
        v.extend([UnarchiveStep::Moved, UnarchiveStep::Settled]);
        v
    }

    /// The step a `TASK_MCP_TEST_CRASH_AT` value names (`Unarchive:Moved`,
    /// `Unarchive:SpecRestored(0)`).
    pub fn parse(s: &str) -> Option<UnarchiveStep> {
        let s = s.strip_prefix("Unarchive:")?;
        match s {
            "JournalWritten" => Some(UnarchiveStep::JournalWritten),
            "Moved" => Some(UnarchiveStep::Moved),
            "Settled" => Some(UnarchiveStep::Settled),
            _ => {
                let n = s.strip_prefix("SpecRestored(")?.strip_suffix(')')?;
                n.parse().ok().map(UnarchiveStep::SpecRestored)
            }
        }
    }
}

/// Why an undo was refused or failed (a code the tools pass on, and a message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnarchiveError {
    /// `unarchive_*`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// The spec files that changed since the archive, for `unarchive_specs_changed`.
    pub files: Vec<String>,
}

impl UnarchiveError {
    fn new(code: &'static str, message: String) -> Self {
        Self {
            code,
            message,
            files: Vec::new(),
        }
    }

    fn io(e: impl std::fmt::Display) -> Self {
        Self::new("unarchive_io", format!("The undo failed: {e}"))
    }
}

/// What an undo did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnarchiveReport {
    /// The change id, active again.
    pub change: String,
    /// The archive folder it came from.
    pub archived_as: String,
    /// Spec files given their previous bytes back (or deleted, when the archive created them).
    pub files_restored: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    undo: Undo,
}

/// Puts the change archived in `archived` (a folder under `changes/archive/`) back.
///
/// # Errors
/// `unarchive_no_record` without an undo record, `unarchive_change_exists` when `changes/<id>`
/// exists again, `unarchive_specs_changed` (naming the files) when a spec file is not what the
/// archive left, `unarchive_io` for I/O failures (rolled back).
pub fn unarchive(
    layout: &Layout<'_>,
    archived: &Path,
    fault: Option<&dyn Fn(UnarchiveStep)>,
) -> Result<UnarchiveReport, UnarchiveError> {
    let step = |s| {
        if let Some(f) = fault {
            f(s)
        }
    };
    let record = fsx::read_opt(&archived.join(UNDO_FILE))
        .map_err(UnarchiveError::io)?
        .ok_or_else(|| {
            UnarchiveError::new(
                "unarchive_no_record",
                format!(
                    "{} has no undo record: it was archived by the openspec CLI or before undo records were kept. Move the folder back and restore the specs by hand (e.g. from git).",
                    rel(layout.root, archived)
                ),
            )
        })?;
    let undo: Undo = serde_json::from_str(&record).map_err(UnarchiveError::io)?;
    let changes = layout.openspec.join("changes");
    // One archive or undo at a time per root (the archive takes the same lock).
    let _serial = DirLock::acquire(&changes).map_err(UnarchiveError::io)?;
    let target = changes.join(&undo.change);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(UnarchiveError::new(
            "unarchive_change_exists",
            format!(
                "openspec/changes/{} exists again; rename or remove it first.",
                undo.change
            ),
        ));
    }
    let mut changed = Vec::new();
    for m in &undo.mutations {
        let have = fsx::read_opt(&layout.root.join(&m.rel)).map_err(UnarchiveError::io)?;
        if have != m.new {
            changed.push(m.rel.clone());
        }
    }
    if !changed.is_empty() {
        let mut e = UnarchiveError::new(
            "unarchive_specs_changed",
            format!(
                "These spec files changed since the archive, so undoing it would lose that work: {}. Nothing was changed.",
                changed.join(", ")
            ),
        );
        e.files = changed;
        return Err(e);
    }
    let journal_path = journal_path(layout.openspec, &undo.change);
    let bytes = serde_json::to_vec(&Journal { undo: undo.clone() }).map_err(UnarchiveError::io)?;
    fsx::atomic_write(&journal_path, &bytes).map_err(UnarchiveError::io)?;
    step(UnarchiveStep::JournalWritten);
    let result = apply(layout, &undo, archived, &target, &step);
    match result {
        Ok(()) => {
            fsx::remove_opt(&journal_path).map_err(UnarchiveError::io)?;
            let _ = fsx::sync_dir(layout.openspec);
        }
        Err(e) => {
            let _ = recover_journal(layout, &journal_path);
            return Err(UnarchiveError::io(e));
        }
    }
    Ok(UnarchiveReport {
        change: undo.change.clone(),
        archived_as: undo.archive_name.clone(),
        files_restored: undo.mutations.iter().map(|m| m.rel.clone()).collect(),
    })
}

/// Finishes (folder moved) or rolls back (not moved) every interrupted undo; returns what it did.
///
/// # Errors
/// I/O failures; the journal is kept for the next attempt.
pub fn recover(layout: &Layout<'_>) -> io::Result<Vec<String>> {
    let found = journals(layout.openspec, JOURNAL_PREFIX)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let _serial = DirLock::acquire(&layout.openspec.join("changes"))?;
    found.iter().map(|j| recover_journal(layout, j)).collect()
}

fn apply(
    layout: &Layout<'_>,
    undo: &Undo,
    archived: &Path,
    target: &Path,
    step: &dyn Fn(UnarchiveStep),
) -> io::Result<()> {
    for (i, m) in undo.mutations.iter().enumerate() {
        put(layout, &m.rel, m.old.as_deref())?;
        step(UnarchiveStep::SpecRestored(i));
    }
    fs::rename(archived, target)?;
    let _ = fsx::sync_dir(&layout.openspec.join("changes"));
    step(UnarchiveStep::Moved);
    settle(layout, undo, target)?;
    step(UnarchiveStep::Settled);
    Ok(())
}

/// After the move: the archive's own files leave the change, and an archive folder the archive
/// made goes when it is empty.
fn settle(layout: &Layout<'_>, undo: &Undo, target: &Path) -> io::Result<()> {
    for name in undo.settled.iter().map(String::as_str).chain([UNDO_FILE]) {
        fsx::remove_opt(&target.join(name))?;
    }
    let _ = fsx::sync_dir(target);
    if undo.created_archive_dir {
        // Fails (and is left) when other archives are in it.
        let _ = fs::remove_dir(layout.openspec.join("changes/archive"));
    }
    Ok(())
}

fn recover_journal(layout: &Layout<'_>, journal_path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(journal_path)?;
    let Journal { undo } = serde_json::from_str(&text).map_err(io::Error::other)?;
    let changes = layout.openspec.join("changes");
    let target = changes.join(&undo.change);
    let archived = changes.join("archive").join(&undo.archive_name);
    let moved = target.is_dir() && !archived.exists();
    for m in &undo.mutations {
        let want = if moved { &m.old } else { &m.new };
        put(layout, &m.rel, want.as_deref())?;
    }
    if moved {
        settle(layout, &undo, &target)?;
    }
    fsx::remove_opt(journal_path)?;
    let _ = fsx::sync_dir(layout.openspec);
    Ok(format!(
        "{} undo of the archive of '{}'",
        if moved { "completed" } else { "rolled back" },
        undo.change
    ))
}

fn journal_path(openspec: &Path, id: &str) -> PathBuf {
    openspec.join(format!("{JOURNAL_PREFIX}{id}.json"))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

const JOURNAL_PREFIX: &str = ".unarchive-journal-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_step_names_parse_and_round_trip() {
        for s in UnarchiveStep::all(2) {
            let name = format!("Unarchive:{s:?}");
            assert_eq!(UnarchiveStep::parse(&name), Some(s), "{name}");
        }
        assert_eq!(UnarchiveStep::parse("Moved"), None);
        assert_eq!(UnarchiveStep::parse("Unarchive:SpecRestored(x)"), None);
    }
}
