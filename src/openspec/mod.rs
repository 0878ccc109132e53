//! The OpenSpec change workflow, natively: parsing deltas, rebuilding specs, archiving, validating.
//!
//! Matches the OpenSpec CLI (npm `@fission-ai/openspec` 1.13.2) byte for byte; no Node at run
//! time. Files, top-down: [`slug`] (ids), [`paths`] (containment) (atomic writes: `fsx`),
//! `tasks`, `delta` (delta parsing), `spec` (rebuilding a spec), `validate`, `show`,
//! `list`, `discover` (finding delta files and markers), `lock`, `archive`.
//! [`Workspace`] ties them to one `$ROOT/openspec` directory.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::fsx;

pub mod archive;
pub mod delta;
pub mod diff;
pub(crate) mod discover;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod parse;
pub mod paths;
pub(crate) mod show;
pub mod slug;
pub mod spec;
pub(crate) mod tasks;
pub mod unarchive;
pub(crate) mod validate;

pub use archive::{ArchiveError, ArchiveOptions, ArchiveReport, ArchiveStep, SpecChange};
pub use validate::Report;

/// One repository's OpenSpec tree. Cheap to share behind an `Arc`; holds no open files.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The canonical project root (parent of `openspec/`).
    root: PathBuf,
    /// `root/openspec`, a real directory (never a symlink).
    openspec: PathBuf,
}

/// Templates for a new change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A new capability.
    Feature,
    /// A fix.
    Bugfix,
    /// Tooling, docs, refactors.
    Chore,
}

/// What `create_change` writes.
#[derive(Clone, Debug)]
pub struct NewChange<'a> {
    /// The proposal title.
    pub title: &'a str,
    /// The `## Why` text, if given.
    pub rationale: Option<&'a str>,
    /// Which template.
    pub template: Template,
    /// Creation time (for `created:`).
    pub now: SystemTime,
}

/// Where a change lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeState {
    /// `changes/<id>`.
    Active(PathBuf),
    /// `changes/archive/<name>`, newest first when several match.
    Archived(PathBuf),
}

/// Why a workspace operation failed.
#[derive(Debug)]
pub enum Error {
    /// The id breaks the slug grammar.
    BadSlug(String),
    /// No such change.
    NoChange(String),
    /// The change is archived.
    Archived(String),
    /// A path left the workspace or crossed a symlink.
    PathEscape(String),
    /// A file of the change has the wrong shape: `(EBADSHAPE_* code, message)`.
    BadShape(&'static str, String),
    /// The change exists already (creation only).
    Exists(String),
    /// The filesystem failed.
    Io(io::Error),
}

impl Workspace {
    /// Opens `root/openspec`, which must exist and be a real directory.
    ///
    /// # Errors
    /// [`Error::PathEscape`] when `openspec` is a symlink, [`Error::Io`] when missing.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        // Resolve the time zone here, at start, not first on a small worker stack.
        let _ = archive::system_zone();
        let root = fs::canonicalize(root.as_ref())?;
        let openspec = root.join("openspec");
        let meta = match fs::symlink_metadata(&openspec) {
            Ok(m) => m,
            // Not an OpenSpec repository yet: readers see it empty, and the first write makes
            // the folders (as `openspec new change` would).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self { root, openspec }),
            Err(e) => return Err(e.into()),
        };
        if meta.file_type().is_symlink() {
            return Err(Error::PathEscape(format!(
                "{} is a symbolic link",
                openspec.display()
            )));
        }
        if !meta.is_dir() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", openspec.display()),
            )));
        }
        for sub in ["changes", "specs"] {
            if fs::symlink_metadata(openspec.join(sub)).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::PathEscape(format!(
                    "openspec/{sub} is a symbolic link"
                )));
            }
        }
        Ok(Self { root, openspec })
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `openspec/`.
    pub fn openspec_dir(&self) -> &Path {
        &self.openspec
    }

    /// `openspec/changes`.
    pub fn changes_dir(&self) -> PathBuf {
        self.openspec.join("changes")
    }

    /// `openspec/specs`.
    pub fn specs_dir(&self) -> PathBuf {
        self.openspec.join("specs")
    }

    /// Finds a change by slug (checked against the tools' grammar).
    ///
    /// # Errors
    /// [`Error::BadSlug`], [`Error::PathEscape`], [`Error::NoChange`].
    pub fn locate(&self, id: &str) -> Result<ChangeState, Error> {
        check_slug(id)?;
        let active = self.contained(&["changes", id])?;
        if active.is_dir() {
            // The files the tools read by name must be the repository's own, not links out.
            for name in CHANGE_FILES {
                if fs::symlink_metadata(active.join(name)).is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(Error::PathEscape(format!(
                        "changes/{id}/{name} is a symbolic link; replace it with a real file"
                    )));
                }
            }
            return Ok(ChangeState::Active(active));
        }
        match self.archived_dir(id)? {
            Some(p) => Ok(ChangeState::Archived(p)),
            None => Err(Error::NoChange(id.to_string())),
        }
    }

    /// The active folder of a change.
    ///
    /// # Errors
    /// [`Error::Archived`] when only an archived copy exists, else as [`Workspace::locate`].
    pub fn active_dir(&self, id: &str) -> Result<PathBuf, Error> {
        match self.locate(id)? {
            ChangeState::Active(p) => Ok(p),
            ChangeState::Archived(_) => Err(Error::Archived(id.to_string())),
        }
    }

    /// The newest `changes/archive/YYYY-MM-DD-<id>` (or `<id>` itself when dated).
    ///
    /// # Errors
    /// I/O or containment failures.
    pub fn archived_dir(&self, id: &str) -> Result<Option<PathBuf>, Error> {
        let dir = self.contained(&["changes", "archive"])?;
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut hits: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n == id
                    || (n.len() == id.len() + 11
                        && n.ends_with(id)
                        && archive::archive_name(n, SystemTime::UNIX_EPOCH) == *n
                        && &n[10..11] == "-")
            })
            .collect();
        hits.sort();
        Ok(hits.pop().map(|n| dir.join(n)))
    }

    /// Joins checked segments under `openspec/`, refusing symlinks.
    ///
    /// # Errors
    /// [`Error::PathEscape`].
    pub fn contained(&self, segments: &[&str]) -> Result<PathBuf, Error> {
        paths::contained(&self.openspec, segments).map_err(|e| Error::PathEscape(e.to_string()))
    }

    /// `openspec archive <id> --json` with these options.
    ///
    /// # Errors
    /// The CLI's archive code, message and fix.
    pub fn archive(
        &self,
        id: &str,
        opts: &ArchiveOptions<'_>,
    ) -> Result<ArchiveReport, ArchiveError> {
        let layout = archive::Layout {
            root: &self.root,
            openspec: &self.openspec,
        };
        archive::archive(&layout, id, opts)
    }

    /// Undoes the archive of `archived` (a folder under `changes/archive/`): see
    /// [`unarchive::unarchive`].
    ///
    /// # Errors
    /// As [`unarchive::unarchive`].
    pub fn unarchive(
        &self,
        archived: &Path,
        fault: Option<&dyn Fn(unarchive::UnarchiveStep)>,
    ) -> Result<unarchive::UnarchiveReport, unarchive::UnarchiveError> {
        let layout = archive::Layout {
            root: &self.root,
            openspec: &self.openspec,
        };
        unarchive::unarchive(&layout, archived, fault)
    }

    /// Finishes or undoes interrupted archives: once at start, before serving, and before each
    /// archive (another process on this root may have died mid-archive; see
    /// [`archive::recover`] for why a running archive is never touched).
    ///
    /// # Errors
    /// I/O failures (the journal stays for the next attempt).
    ///
    /// Also removes the hidden folders of change creations whose process died (see
    /// [`Workspace::create_change`]): the CLI lists dot folders as changes.
    pub fn recover(&self) -> Result<Vec<String>, Error> {
        let layout = archive::Layout {
            root: &self.root,
            openspec: &self.openspec,
        };
        let mut done = archive::recover(&layout)?;
        done.extend(unarchive::recover(&layout)?);
        done.extend(self.remove_dead_creations()?);
        Ok(done)
    }

    /// Removes `changes/.<id>.creating-<pid>-<n>` folders whose process is gone. Only where
    /// `/proc` tells live processes from dead ones; never this process's own.
    fn remove_dead_creations(&self) -> Result<Vec<String>, Error> {
        let proc = Path::new("/proc");
        if !proc.join("self").exists() {
            return Ok(Vec::new());
        }
        let Ok(entries) = fs::read_dir(self.changes_dir()) else {
            return Ok(Vec::new());
        };
        let mut done = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = creation_pid(&name) else {
                continue;
            };
            if pid == std::process::id() || proc.join(pid.to_string()).exists() {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(entry.path())?;
                done.push(format!("removed an unfinished change creation '{name}'"));
            }
        }
        Ok(done)
    }

    /// `openspec validate <id> [--strict]` (delta checks, task lint, scenario loss, merge dry run
    /// as INFO).
    ///
    /// # Errors
    /// Slug, containment, missing change, I/O.
    pub fn validate_change(&self, id: &str, strict: bool) -> Result<Report, Error> {
        let dir = self.active_dir(id)?;
        let specs = self.specs_dir();
        Ok(validate::validate_change(
            &dir,
            validate::ChangeCheck {
                strict,
                main_specs_dir: Some(&specs),
                tasks: true,
            },
        )?)
    }

    /// The archive without writes: every check `openspec archive <id> --yes` makes, every spec
    /// rebuilt and validated in memory. `Ok` means the archive would succeed now.
    ///
    /// # Errors
    /// The archive's refusal, code and message verbatim.
    pub fn archive_dry_run(&self, id: &str) -> Result<ArchiveReport, ArchiveError> {
        let opts = ArchiveOptions {
            dry_run: true,
            ..ArchiveOptions::yes()
        };
        self.archive(id, &opts)
    }

    /// `openspec show <id> --json` without `root`.
    ///
    /// # Errors
    /// [`Error::BadShape`] (`EBADSHAPE_PROPOSAL_MISSING`) when there is no proposal.md.
    pub fn show_change(&self, id: &str) -> Result<Value, Error> {
        let dir = self.active_dir(id)?;
        let Some(proposal) = fsx::read_opt(&dir.join("proposal.md"))? else {
            return Err(Error::BadShape(
                "EBADSHAPE_PROPOSAL_MISSING",
                format!(
                    "Change \"{id}\" has no proposal.md yet. Run \"openspec status --change {id}\" to see which artifact comes next."
                ),
            ));
        };
        let mut deltas = Vec::new();
        for s in discover::spec_files(&dir.join("specs"))? {
            let text = fs::read_to_string(&s.file)?;
            deltas.extend(show::spec_deltas(&s.id, &delta::parse_delta(&text)));
        }
        Ok(json!({
            "id": id,
            "title": show::change_title(&proposal, id),
            "deltaCount": deltas.len(),
            "deltas": deltas,
        }))
    }

    /// `openspec list --json` entries (newest first).
    ///
    /// # Errors
    /// I/O.
    pub fn list_changes(&self) -> Result<Vec<list::ChangeEntry>, Error> {
        Ok(list::changes(&self.changes_dir())?)
    }

    /// `openspec list --specs --json` entries.
    ///
    /// # Errors
    /// I/O.
    pub fn list_specs(&self) -> Result<Vec<list::SpecEntry>, Error> {
        Ok(list::specs(&self.specs_dir())?)
    }

    /// `openspec show <spec> --type spec --json` (without `root`), plus the raw text.
    ///
    /// # Errors
    /// [`Error::NoChange`] reused for a missing spec is avoided: a missing spec is
    /// [`Error::BadShape`] `EBADSHAPE_SPECS_MISSING`.
    pub fn show_spec(&self, id: &str) -> Result<(Value, String), Error> {
        let segs = paths::split_checked(id).map_err(|e| Error::PathEscape(e.to_string()))?;
        let mut all = vec!["specs"];
        all.extend(segs);
        all.push("spec.md");
        let file = self.contained(&all)?;
        let Some(text) = fsx::read_opt(&file)? else {
            return Err(Error::BadShape(
                "EBADSHAPE_SPECS_MISSING",
                format!("Spec '{id}' not found."),
            ));
        };
        let v = show::spec_json(id, &text)
            .map_err(|m| Error::BadShape("EBADSHAPE_SPECS_INVALID", m))?;
        Ok((v, text))
    }

    /// Creates a change the CLI accepts; `Ok(false)` when it already exists (idempotent).
    ///
    /// Writes `.openspec.yaml` (`schema`, `created`, and `skip_specs: true` so a change without
    /// deltas validates; writing a delta through [`Workspace::write_change_file`] removes it),
    /// `proposal.md`, `tasks.md` and an empty `specs/`.
    ///
    /// # Errors
    /// Slug, containment, [`Error::Archived`], I/O.
    pub fn create_change(&self, id: &str, new: &NewChange<'_>) -> Result<bool, Error> {
        match self.locate(id) {
            Ok(ChangeState::Active(_)) => return Ok(false),
            Ok(ChangeState::Archived(_)) => return Err(Error::Archived(id.to_string())),
            Err(Error::NoChange(_)) => {}
            Err(e) => return Err(e),
        }
        let changes = self.contained(&["changes"])?;
        fs::create_dir_all(&changes)?;
        fs::create_dir_all(self.contained(&["specs"])?)?;
        let dir = self.contained(&["changes", id])?;
        // Build in a hidden sibling, then rename: a change appears complete or not at all.
        static CREATING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CREATING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp_name = format!(".{id}.creating-{}-{n}", std::process::id());
        let tmp = self.contained(&["changes", &tmp_name])?;
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("specs"))?;
        let date = archive::local_date(new.now);
        let meta = format!("schema: spec-driven\ncreated: {date}\nskip_specs: true\n");
        fsx::atomic_write(&tmp.join(discover::METADATA_FILE), meta.as_bytes())?;
        fsx::atomic_write(&tmp.join("proposal.md"), proposal_template(new).as_bytes())?;
        fsx::atomic_write(&tmp.join("tasks.md"), tasks_template(new).as_bytes())?;
        match fs::rename(&tmp, &dir) {
            Ok(()) => {}
            Err(_) if dir.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                return Ok(false);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
        }
        fsx::sync_dir(&changes)?;
        Ok(true)
    }

    /// Where `rel` lives inside the active change `id`, after every check
    /// [`Workspace::write_change_file`] makes; touches nothing. Returns the change folder, the
    /// file's path, and whether it is a spec delta.
    ///
    /// # Errors
    /// [`Error::PathEscape`] for a path that is not a writable change file, plus
    /// slug/containment errors.
    pub fn change_file_path(&self, id: &str, rel: &str) -> Result<(PathBuf, PathBuf, bool), Error> {
        let dir = self.active_dir(id)?;
        let segs = paths::split_checked(rel).map_err(|e| Error::PathEscape(e.to_string()))?;
        let is_spec = segs.len() >= 3 && segs[0] == "specs" && segs.last() == Some(&"spec.md");
        let allowed = matches!(
            segs.as_slice(),
            ["proposal.md"] | ["tasks.md"] | ["design.md"]
        ) || is_spec;
        if !allowed {
            return Err(Error::PathEscape(format!(
                "'{rel}' is not a writable change file (proposal.md, tasks.md, design.md, specs/<capability>/spec.md)"
            )));
        }
        if is_spec {
            for s in &segs[1..segs.len() - 1] {
                if !slug::is_kebab(s) {
                    return Err(Error::BadSlug(format!(
                        "capability segment '{s}' must be kebab-case"
                    )));
                }
            }
        }
        let mut all = vec!["changes", id];
        all.extend(segs.iter().copied());
        let path = self.contained(&all)?;
        Ok((dir, path, is_spec))
    }

    /// Atomically replaces one file of an active change: `proposal.md`, `tasks.md`, `design.md`
    /// or `specs/<capability>/spec.md`. Writing a spec drops a `skip_specs` marker.
    ///
    /// # Errors
    /// [`Error::PathEscape`] for any other path, plus slug/containment/I/O errors.
    pub fn write_change_file(&self, id: &str, rel: &str, text: &str) -> Result<PathBuf, Error> {
        let (dir, path, is_spec) = self.change_file_path(id, rel)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fsx::atomic_write(&path, text.as_bytes())?;
        if is_spec {
            let meta_path = dir.join(discover::METADATA_FILE);
            if let Some(meta) = fsx::read_opt(&meta_path)?
                && meta
                    .lines()
                    .any(|l| l.trim_start().starts_with("skip_specs:"))
            {
                let kept: Vec<&str> = meta
                    .lines()
                    .filter(|l| !l.starts_with("skip_specs:"))
                    .collect();
                fsx::atomic_write(&meta_path, format!("{}\n", kept.join("\n")).as_bytes())?;
            }
        }
        Ok(path)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSlug(m) => write!(f, "{m}"),
            Self::NoChange(id) => write!(f, "Change '{id}' not found."),
            Self::Archived(id) => write!(f, "Change '{id}' is archived."),
            Self::PathEscape(m) => write!(f, "{m}"),
            Self::BadShape(_, m) => write!(f, "{m}"),
            Self::Exists(m) => write!(f, "{m}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// The entries of a change folder that the tools read or write by name.
const CHANGE_FILES: [&str; 6] = [
    "proposal.md",
    "tasks.md",
    "design.md",
    "specs",
    discover::METADATA_FILE,
    lock::LEASE_FILE,
];

/// The pid in `.<id>.creating-<pid>-<n>`, the name [`Workspace::create_change`] builds in.
fn creation_pid(name: &str) -> Option<u32> {
    let (_, tail) = name.strip_prefix('.')?.rsplit_once(".creating-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn check_slug(id: &str) -> Result<(), Error> {
    match slug::slug_problem(id) {
        Some(p) => Err(Error::BadSlug(p)),
        None => Ok(()),
    }
}

fn proposal_template(new: &NewChange<'_>) -> String {
    let why = new
        .rationale
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(match new.template {
            Template::Feature => {
                "TODO: explain the problem or opportunity this feature addresses and why now."
            }
            Template::Bugfix => {
                "TODO: describe the bug, how it shows, and why it must be fixed now."
            }
            Template::Chore => "TODO: explain what maintenance is needed and why it matters.",
        });
    let what = match new.template {
        Template::Feature => {
            "- TODO: list the new behaviour (add spec deltas under specs/<capability>/spec.md)"
        }
        Template::Bugfix => {
            "- TODO: describe the corrected behaviour (MODIFIED requirements under specs/<capability>/spec.md)"
        }
        Template::Chore => "- TODO: list the tooling, docs or refactoring work (no spec changes)",
    };
    format!(
        "# Change: {}\n\n## Why\n{why}\n\n## What Changes\n{what}\n\n## Impact\n- Affected specs: TODO\n- Affected code: TODO\n",
        new.title.trim()
    )
}

fn tasks_template(new: &NewChange<'_>) -> String {
    let first = match new.template {
        Template::Feature => "Implement the feature",
        Template::Bugfix => "Reproduce the bug with a failing test",
        Template::Chore => "Do the maintenance work",
    };
    format!("## 1. Implementation\n- [ ] 1.1 {first}\n- [ ] 1.2 Update tests and docs\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_folders_name_their_pid() {
        assert_eq!(creation_pid(".add-x.creating-123-0"), Some(123));
        assert_eq!(creation_pid(".a.b.creating-7-42"), Some(7));
        for other in [
            "add-x",
            ".add-x",
            ".add-x.creating-",
            ".add-x.creating-1",
            "x.creating-1-0",
            ".x.creating-a-0",
            ".x.creating-1-z",
        ] {
            assert_eq!(creation_pid(other), None, "{other}");
        }
    }

    #[test]
    fn templates_have_the_sections_openspec_reads() {
        let n = NewChange {
            title: "Add X",
            rationale: None,
            template: Template::Bugfix,
            now: SystemTime::UNIX_EPOCH,
        };
        let p = proposal_template(&n);
        assert!(p.starts_with("# Change: Add X\n\n## Why\n"));
        assert!(p.contains("## What Changes\n"));
        assert_eq!(tasks::count_tasks(&tasks_template(&n)).total, 2);
    }
}
