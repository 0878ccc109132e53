//! `openspec list --json` and `list --specs --json` shapes.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::tasks::{count_tasks, list_status};

/// One active change, as `list --json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    /// The folder name.
    pub name: String,
    /// Done tasks.
    pub completed_tasks: usize,
    /// All tasks.
    pub total_tasks: usize,
    /// Newest mtime of any file inside (ISO 8601, ms, `Z`).
    pub last_modified: String,
    /// `no-tasks`, `complete` or `in-progress`.
    pub status: &'static str,
    /// Same instant, for sorting.
    #[serde(skip)]
    pub modified: SystemTime,
}

/// One main spec, as `list --specs --json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecEntry {
    /// `a` or `a/b`.
    pub id: String,
    /// Requirements the spec parser finds (0 when it does not parse).
    pub requirement_count: usize,
}

/// Every directory under `changes/` but `archive` (dot-dirs included), newest first.
///
/// # Errors
/// I/O failures other than a missing `changes/`.
pub fn changes(changes_dir: &Path) -> io::Result<Vec<ChangeEntry>> {
    let entries = match fs::read_dir(changes_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "archive" {
            continue;
        }
        let dir = entry.path();
        let progress = super::fsx::read_nofollow(&dir.join("tasks.md"))
            .map(|t| count_tasks(&t))
            .unwrap_or_default();
        let modified = newest_mtime(&dir).unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(ChangeEntry {
            name,
            completed_tasks: progress.completed,
            total_tasks: progress.total,
            last_modified: iso_ms(modified),
            status: list_status(progress),
            modified,
        });
    }
    out.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// Every `specs/**/spec.md`, sorted by id.
///
/// # Errors
/// I/O failures other than a missing `specs/`.
pub fn specs(specs_dir: &Path) -> io::Result<Vec<SpecEntry>> {
    let files = super::discover::spec_files(specs_dir)?;
    Ok(files
        .into_iter()
        .map(|f| {
            let count = fs::read_to_string(&f.file)
                .ok()
                .and_then(|c| super::parse::parse_spec(&c).ok())
                .map_or(0, |s| s.requirements.len());
            SpecEntry {
                id: f.id,
                requirement_count: count,
            }
        })
        .collect())
}

/// `Date.toISOString()`: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_ms(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                newest = Some(newest.map_or(m, |n| n.max(m)));
            }
        }
    }
    newest.or_else(|| fs::metadata(dir).and_then(|m| m.modified()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_matches_javascript() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(iso_ms(t), "2023-11-14T22:13:20.123Z");
    }
}
