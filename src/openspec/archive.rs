//! `openspec archive <id> --yes --json`, natively, all-or-nothing and crash-safe.
//!
//! The checks, their order, codes and messages are the CLI's (1.13.2 `archive.js`). What the CLI
//! does not have is the journal: before the first spec write, the full plan (old and new text of
//! every spec, the archive name) is written atomically to `openspec/.archive-journal-<id>.json`.
//! A crash at any later point is finished or undone by [`recover`]: if the change folder already
//! moved, the specs are rolled forward to the new text; otherwise they are rolled back.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::discover::{self, spec_files};
use super::lock::{ARCHIVE_CLAIM_FILE, ArchiveClaim, DirLock};
use super::slug::folder_name_problem;
use super::spec::{Counts, build_updated_spec};
use super::tasks::count_tasks;
use super::validate::{self, ChangeCheck, Level};
use crate::fsx;

/// How to archive.
pub struct ArchiveOptions<'a> {
    /// `--skip-specs`: move the folder, leave the specs alone.
    pub skip_specs: bool,
    /// `--no-validate`.
    pub no_validate: bool,
    /// `--yes`: incomplete tasks and spec updates need no confirmation.
    pub yes: bool,
    /// The wall clock; the archive name uses its local date.
    pub now: SystemTime,
    /// Called at each step; tests abort the process here to prove crash safety.
    pub fault: Option<&'a dyn Fn(ArchiveStep)>,
    /// Run every check and build every spec, then stop before the first write.
    pub dry_run: bool,
    /// Files to settle inside the archived folder in the same transaction as the move, given
    /// the report: `(file name, Some(text))` writes one, `(file name, None)` deletes one. The
    /// tools put their receipt here and drop the change lease, so a crash after the move still
    /// ends with the receipt written (the journal replays it).
    pub settle: Option<&'a dyn Fn(&ArchiveReport) -> Vec<(String, Option<String>)>>,
    /// Keep what an undo needs ([`UNDO_FILE`] in the archived folder: every spec file's bytes
    /// before and after), so [`super::unarchive`] can put the change back.
    pub keep_undo: bool,
}

/// The points at which an archive can be interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveStep {
    /// Every spec is rebuilt in memory; nothing written yet.
    Prepared,
    /// The journal is durable.
    JournalWritten,
    /// `changes/archive` exists.
    ArchiveDirReady,
    /// The CLI-compatible claim file exists.
    Claimed,
    /// The n-th (0-based) spec mutation is durable.
    SpecWritten(usize),
    /// The change folder is in the archive.
    Moved,
    /// The [`ArchiveOptions::settle`] files are written or deleted.
    Settled,
    /// The claim is gone.
    Released,
}

/// A successful archive, shaped like the CLI's `archive` JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveReport {
    /// The change id.
    pub change: String,
    /// The archive folder name.
    pub archived_as: String,
    /// Its absolute path.
    pub path: PathBuf,
    /// At least one spec file was written or retired.
    pub specs_updated: bool,
    /// Present iff the change had delta files and specs were not skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
    /// Non-fatal notes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Spec files written or deleted, relative to the project root.
    #[serde(skip)]
    pub files_touched: Vec<String>,
    /// With [`ArchiveOptions::dry_run`]: each spec file the archive would write or delete, with
    /// its text before and after (empty otherwise, to keep a real archive's report small).
    #[serde(skip)]
    pub spec_changes: Vec<SpecChange>,
}

/// One spec file an archive changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecChange {
    /// The capability (`auth`, `platform/billing`).
    pub capability: String,
    /// The file, relative to the project root.
    pub path: String,
    /// Requirements added, modified, removed and renamed in it.
    pub counts: super::spec::Counts,
    /// Its text now; `None` when the archive creates it.
    pub old: Option<String>,
    /// Its text after; `None` when the archive deletes it (a retired capability).
    pub new: Option<String>,
}

/// Summed counts of the written specs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Added.
    pub added: usize,
    /// Modified.
    pub modified: usize,
    /// Removed.
    pub removed: usize,
    /// Renamed.
    pub renamed: usize,
}

/// A refused or failed archive: the CLI's `status[0]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArchiveError {
    /// `archive_*`, verbatim.
    pub code: &'static str,
    /// The CLI's message.
    pub message: String,
    /// The CLI's fix hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The paths an archive works on.
pub struct Layout<'a> {
    /// The project root (parent of `openspec/`).
    pub root: &'a Path,
    /// `openspec/`.
    pub openspec: &'a Path,
}

impl ArchiveOptions<'_> {
    /// `--yes`, validation on, specs applied, now.
    pub fn yes() -> Self {
        Self {
            skip_specs: false,
            no_validate: false,
            yes: true,
            now: SystemTime::now(),
            fault: None,
            dry_run: false,
            settle: None,
            keep_undo: false,
        }
    }

    fn step(&self, s: ArchiveStep) {
        if let Some(f) = self.fault {
            f(s);
        }
    }
}

impl Default for ArchiveOptions<'_> {
    fn default() -> Self {
        Self::yes()
    }
}

impl ArchiveStep {
    /// Parses the `Debug` form (`Prepared`, `SpecWritten(2)`, ...).
    pub fn parse(name: &str) -> Option<Self> {
        let step = match name {
            "Prepared" => Self::Prepared,
            "JournalWritten" => Self::JournalWritten,
            "ArchiveDirReady" => Self::ArchiveDirReady,
            "Claimed" => Self::Claimed,
            "Moved" => Self::Moved,
            "Settled" => Self::Settled,
            "Released" => Self::Released,
            other => Self::SpecWritten(
                other
                    .strip_prefix("SpecWritten(")?
                    .strip_suffix(')')?
                    .parse()
                    .ok()?,
            ),
        };
        Some(step)
    }

    /// The step named by `TASK_MCP_TEST_CRASH_AT`, at which a test server aborts its archive.
    ///
    /// Test-only: the server reads it only when `ENABLE_TEST_TOOLS=true` (see
    /// `tools::options::ToolOptions::test_crash_at`), so that a crash test can kill a real
    /// server process at exactly one step.
    pub fn test_crash_from_env() -> Option<Self> {
        Self::parse(&std::env::var(TEST_CRASH_ENV).ok()?)
    }
}

impl ArchiveError {
    fn new(code: &'static str, message: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fix,
        }
    }

    fn io(e: impl fmt::Display) -> Self {
        Self::new("archive_error", e.to_string(), None)
    }
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ArchiveError {}

/// Archives `id` under `layout` (see the module docs).
///
/// # Errors
/// The CLI's `archive_*` code, message and fix.
pub fn archive(
    layout: &Layout<'_>,
    id: &str,
    opts: &ArchiveOptions<'_>,
) -> Result<ArchiveReport, ArchiveError> {
    let changes = layout.openspec.join("changes");
    let archive_dir = changes.join("archive");
    let specs_dir = layout.openspec.join("specs");
    if let Some(p) = folder_name_problem(id) {
        return Err(ArchiveError::new("archive_change_name_invalid", p, None));
    }
    let change_dir = changes.join(id);
    match fs::symlink_metadata(&change_dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ArchiveError::new(
                "archive_change_symlink",
                format!(
                    "Change '{id}' is a symbolic link. Replace it with a real directory before archiving."
                ),
                None,
            ));
        }
        Ok(m) if m.is_dir() => {}
        _ => {
            let available = active_change_names(&changes);
            let message = if available.is_empty() {
                format!("Change '{id}' not found. No active changes exist in this root.")
            } else {
                format!(
                    "Change '{id}' not found. Available changes: {}",
                    available.join(", ")
                )
            };
            return Err(ArchiveError::new("archive_change_not_found", message, None));
        }
    }
    let change_specs = change_dir.join("specs");
    if !opts.no_validate {
        if needs_delta_validation(&change_dir, &change_specs) {
            let report = validate::validate_change(&change_dir, ChangeCheck::default())
                .map_err(ArchiveError::io)?;
            if report.count(Level::Error) > 0 {
                return Err(ArchiveError::new(
                    "archive_validation_failed",
                    format!("Validation failed for change '{id}'."),
                    Some(format!(
                        "Run openspec validate {id} for details, fix the errors, or rerun with --no-validate."
                    )),
                ));
            }
        }
    } else if !opts.yes {
        return Err(ArchiveError::new(
            "archive_confirmation_required",
            "Skipping validation requires confirmation: rerun with --yes.",
            Some("openspec archive <change-name> --json --no-validate --yes".into()),
        ));
    }
    let tasks = fsx::read_opt(&change_dir.join("tasks.md"))
        .map_err(ArchiveError::io)?
        .map(|t| count_tasks(&t))
        .unwrap_or_default();
    let incomplete = tasks.total.saturating_sub(tasks.completed);
    if incomplete > 0 && !opts.yes {
        return Err(ArchiveError::new(
            "archive_tasks_incomplete",
            format!("{incomplete} incomplete task(s) found for change '{id}'."),
            Some("Complete the tasks or rerun with --yes.".into()),
        ));
    }
    let archive_name = archive_name(id, opts.now);
    let archive_path = archive_dir.join(&archive_name);
    let retire = discover::marker(&change_dir, "retire_capabilities");
    target_available(&archive_path, &archive_name)?;
    let ctx = Ctx {
        layout,
        id,
        opts,
        change_dir: &change_dir,
        change_specs: &change_specs,
        specs_dir: &specs_dir,
        archive_dir: &archive_dir,
        archive_path: &archive_path,
        archive_name,
        retire,
    };
    let result = finish(&ctx);
    if result.is_err() && !opts.dry_run {
        // The CLI creates `changes/archive` right after this point, so every later failure
        // leaves it behind; do the same (a crash, by contrast, leaves the old tree exactly).
        let _ = fs::create_dir_all(&archive_dir);
    }
    result
}

struct Ctx<'a> {
    layout: &'a Layout<'a>,
    id: &'a str,
    opts: &'a ArchiveOptions<'a>,
    change_dir: &'a Path,
    change_specs: &'a Path,
    specs_dir: &'a Path,
    archive_dir: &'a Path,
    archive_path: &'a Path,
    archive_name: String,
    retire: discover::Marker,
}

fn finish(ctx: &Ctx<'_>) -> Result<ArchiveReport, ArchiveError> {
    let Ctx {
        layout,
        id,
        opts,
        change_dir,
        change_specs,
        specs_dir,
        archive_dir,
        archive_path,
        ..
    } = *ctx;
    let archive_name = ctx.archive_name.clone();
    let retire = &ctx.retire;
    let changes = layout.openspec.join("changes");
    let archive_dir_existed = archive_dir.is_dir();
    // Serialise archives of this workspace: two of ours may touch the same spec.
    let _serial = DirLock::acquire(&changes).map_err(ArchiveError::io)?;
    let mut warnings = Vec::new();
    let mut plan: Vec<Mutation> = Vec::new();
    // The counts of each `plan` entry, in order (for a dry run's per-file plan).
    let mut counts: Vec<super::spec::Counts> = Vec::new();
    let mut totals = None;
    if !opts.skip_specs {
        let updates = spec_files(change_specs).map_err(ArchiveError::io)?;
        if !updates.is_empty() {
            let mut prepared = Vec::new();
            for u in &updates {
                let delta = fs::read_to_string(&u.file).map_err(ArchiveError::io)?;
                let target_path = specs_dir.join(&u.id).join("spec.md");
                let target = fsx::read_opt(&target_path).map_err(ArchiveError::io)?;
                let built = build_updated_spec(
                    &u.id,
                    &delta,
                    target.as_deref(),
                    &target_path.to_string_lossy(),
                    id,
                )
                .map_err(|m| {
                    ArchiveError::new(
                        "archive_spec_update_failed",
                        m,
                        Some("Fix the change delta specs and rerun. No files were changed.".into()),
                    )
                })?;
                let outcome = decide(&built, target.is_some(), opts.no_validate, retire.declared);
                warnings.extend(built.warnings.iter().cloned());
                prepared.push((u.id.clone(), target_path, target, built, outcome));
            }
            if !opts.yes {
                return Err(ArchiveError::new(
                    "archive_confirmation_required",
                    format!(
                        "Updating {} spec(s) requires confirmation: rerun with --yes.",
                        updates.len()
                    ),
                    Some("openspec archive <change-name> --json --yes".into()),
                ));
            }
            if !opts.no_validate {
                for (cap, _, target, built, outcome) in &prepared {
                    if *outcome != Outcome::Write {
                        continue;
                    }
                    if validate::validate_spec_content(&built.rebuilt, false).valid {
                        continue;
                    }
                    let emptied = target.is_some()
                        && built.counts.removed > 0
                        && built.no_requirement_blocks
                        && validate::is_retirable(&built.rebuilt);
                    let fix = if retire.declared
                        && !built.unaccounted.is_empty()
                        && validate::is_retirable(&built.rebuilt)
                    {
                        format!(
                            "'{cap}' declares retire_capabilities, but the spec holds content the merge cannot safely account for and deleting the file would take with it: {}. Move it into `## Purpose` or a canonical requirement, or delete the spec by hand.",
                            describe_unaccounted(&built.unaccounted)
                        )
                    } else if !retire.declared && emptied && built.unaccounted.is_empty() {
                        let invalid = retire
                            .invalid_reason
                            .as_ref()
                            .map(|r| format!(" The marker present now cannot be honored ({r})."))
                            .unwrap_or_default();
                        format!(
                            "This change removes the last requirement '{cap}' has. To retire the capability and delete its spec, add `retire_capabilities: true` to the change's .openspec.yaml (alongside its `schema:`, which that file requires), then rerun.{invalid}"
                        )
                    } else if !retire.declared && emptied {
                        let invalid = retire
                            .invalid_reason
                            .as_ref()
                            .map(|r| format!(" The marker present now cannot be honored ({r})."))
                            .unwrap_or_default();
                        format!(
                            "This change removes the last requirement '{cap}' has, so the rebuilt spec has none left and cannot be written. Retiring the capability is what archive does instead, and it is refused while the spec holds content the merge cannot safely account for and deleting the file would take with it: {}. Move it into `## Purpose` or a canonical requirement, or delete the spec by hand, then rerun.{invalid}",
                            describe_unaccounted(&built.unaccounted)
                        )
                    } else {
                        format!("Run openspec validate {cap} after fixing the change deltas.")
                    };
                    return Err(ArchiveError::new(
                        "archive_spec_validation_failed",
                        format!(
                            "Rebuilt spec for '{cap}' failed validation. No files were changed."
                        ),
                        Some(fix),
                    ));
                }
            }
            let mut t = Totals::default();
            for (cap, target_path, old, built, outcome) in prepared {
                let rel = rel_path(layout.root, &target_path);
                match outcome {
                    Outcome::Write if built.counts.total() > 0 => {
                        let new = match &old {
                            Some(o) => super::spec::match_line_ending(&built.rebuilt, o),
                            None => built.rebuilt.clone(),
                        };
                        add(&mut t, built.counts);
                        counts.push(built.counts);
                        plan.push(Mutation {
                            rel,
                            old,
                            new: Some(new),
                            cap,
                        });
                    }
                    Outcome::Retire => {
                        add(&mut t, built.counts);
                        let shown = rel.clone();
                        let recovery = match quote_for_shell(&format!(":(top){shown}")) {
                            Some(q) => format!(
                                "If it was committed, restore it with: git checkout HEAD -- {q}"
                            ),
                            None => format!(
                                "It was deleted from {shown}; if it was committed, restore it from that checkout's history."
                            ),
                        };
                        warnings.push(format!("{cap} - capability retired; deleted the main spec (all requirements removed, declared by retire_capabilities) at {shown}. Its section(s) went with it: Purpose. {recovery}"));
                        counts.push(built.counts);
                        plan.push(Mutation {
                            rel,
                            old,
                            new: None,
                            cap,
                        });
                    }
                    _ => {}
                }
            }
            totals = Some(t);
        }
    }
    opts.step(ArchiveStep::Prepared);
    let report = ArchiveReport {
        change: id.to_string(),
        archived_as: archive_name.clone(),
        path: archive_path.to_path_buf(),
        specs_updated: !plan.is_empty(),
        totals,
        warnings,
        files_touched: plan.iter().map(|m| m.rel.clone()).collect(),
        spec_changes: if opts.dry_run {
            plan.iter()
                .zip(counts)
                .map(|(m, counts)| SpecChange {
                    capability: m.cap.clone(),
                    path: m.rel.clone(),
                    counts,
                    old: m.old.clone(),
                    new: m.new.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    if opts.dry_run {
        return Ok(report);
    }
    let mut settle = Vec::new();
    for (name, text) in opts.settle.map(|f| f(&report)).unwrap_or_default() {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(ArchiveError::io(format!(
                "'{name}' is not a plain file name"
            )));
        }
        settle.push(Mutation {
            rel: rel_path(layout.root, &archive_path.join(&name)),
            old: None,
            new: text,
            cap: String::new(),
        });
    }
    if opts.keep_undo {
        let undo = Undo {
            change: id.to_string(),
            archive_name: archive_name.clone(),
            created_archive_dir: !archive_dir_existed,
            mutations: plan.clone(),
            settled: settle
                .iter()
                .filter(|m| m.new.is_some())
                .filter_map(|m| m.rel.rsplit('/').next().map(str::to_owned))
                .collect(),
        };
        settle.push(Mutation {
            rel: rel_path(layout.root, &archive_path.join(UNDO_FILE)),
            old: None,
            new: Some(serde_json::to_string(&undo).map_err(ArchiveError::io)?),
            cap: String::new(),
        });
    }
    target_available(archive_path, &archive_name)?;
    let nonce = nonce(opts.now);
    let journal = Journal {
        change: id.to_string(),
        archive_name: archive_name.clone(),
        created_archive_dir: !archive_dir_existed,
        nonce: nonce.clone(),
        mutations: plan,
        settle,
    };
    let journal_path = journal_path(layout.openspec, id);
    let bytes = serde_json::to_vec(&journal).map_err(ArchiveError::io)?;
    fsx::atomic_write(&journal_path, &bytes).map_err(ArchiveError::io)?;
    opts.step(ArchiveStep::JournalWritten);
    let result = apply(
        layout,
        &journal,
        archive_dir,
        change_dir,
        archive_path,
        opts,
    );
    match result {
        Ok(()) => {
            fsx::remove_opt(&journal_path).map_err(ArchiveError::io)?;
            let _ = fsx::sync_dir(layout.openspec);
        }
        Err(e) => {
            // A failure (not a crash): undo now rather than at the next start.
            let _ = recover_journal(layout, &journal_path);
            return Err(e);
        }
    }
    Ok(report)
}

/// Finishes or undoes every interrupted archive found in `openspec/`; returns what it did.
///
/// Safe while other processes serve the same root: every archive holds the `changes/` lock from
/// before its journal exists until after it is gone, and the kernel drops the lock of a process
/// that dies, so a journal seen under that lock belongs to a dead archive, never a running one.
///
/// # Errors
/// I/O failures while repairing; the journal is kept so the next start retries.
pub fn recover(layout: &Layout<'_>) -> io::Result<Vec<String>> {
    if journals(layout.openspec, JOURNAL_PREFIX)?.is_empty() {
        return Ok(Vec::new());
    }
    let _serial = DirLock::acquire(&layout.openspec.join("changes"))?;
    let mut done = Vec::new();
    for journal in journals(layout.openspec, JOURNAL_PREFIX)? {
        done.push(recover_journal(layout, &journal)?);
    }
    Ok(done)
}

/// `<local date>-<id>`, or the id itself when it already starts with a date.
pub fn archive_name(id: &str, now: SystemTime) -> String {
    let b = id.as_bytes();
    let dated = b.len() >= 11
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && b[10] == b'-';
    if dated {
        id.to_string()
    } else {
        format!("{}-{id}", local_date(now))
    }
}

/// The process's local date (`TZ`, else `/etc/localtime`, else UTC) as `YYYY-MM-DD`.
pub fn local_date(now: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let zoned = ts.to_zoned(system_zone().clone());
    zoned.date().strftime("%Y-%m-%d").to_string()
}

/// The system time zone, read once per process. Parsing a TZif file takes more stack than a
/// pool worker has (256 KiB), so [`super::Workspace::open`] calls this at start, on the main
/// thread, and workers only ever read the cached value.
pub fn system_zone() -> &'static jiff::tz::TimeZone {
    static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    ZONE.get_or_init(jiff::tz::TimeZone::system)
}

/// Names of the active changes (every directory under `changes/` but `archive`), sorted.
pub fn active_change_names(changes: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(changes)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "archive")
                .collect()
        })
        .unwrap_or_default();
    names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    names
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Write,
    Retire,
    Skip,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Mutation {
    /// Relative to the project root, `/`-separated.
    pub(crate) rel: String,
    /// None: the file did not exist.
    pub(crate) old: Option<String>,
    /// None: delete (retire).
    pub(crate) new: Option<String>,
    pub(crate) cap: String,
}

/// What an archive changed, kept in the archived folder for an undo ([`UNDO_FILE`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Undo {
    pub(crate) change: String,
    pub(crate) archive_name: String,
    /// The archive made `changes/archive/`: an undo removes it again when it is empty.
    pub(crate) created_archive_dir: bool,
    pub(crate) mutations: Vec<Mutation>,
    /// Files the archive wrote into the archived folder (its settle files): an undo removes them.
    pub(crate) settled: Vec<String>,
}

/// The undo record's name inside an archived folder.
pub const UNDO_FILE: &str = ".archive-undo.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    change: String,
    archive_name: String,
    created_archive_dir: bool,
    nonce: String,
    mutations: Vec<Mutation>,
    /// Applied only once the folder moved (`old` is unused).
    #[serde(default)]
    settle: Vec<Mutation>,
}

fn apply(
    layout: &Layout<'_>,
    journal: &Journal,
    archive_dir: &Path,
    change_dir: &Path,
    archive_path: &Path,
    opts: &ArchiveOptions<'_>,
) -> Result<(), ArchiveError> {
    fs::create_dir_all(archive_dir).map_err(ArchiveError::io)?;
    let _ = fsx::sync_dir(layout.openspec.join("changes").as_path());
    opts.step(ArchiveStep::ArchiveDirReady);
    let claim = ArchiveClaim::create(archive_dir, &journal.nonce)
        .map_err(ArchiveError::io)?
        .ok_or_else(|| {
            ArchiveError::new(
                "archive_target_exists",
                format!(
                    "Archive '{}' is already being created. If no archive process is running, remove the stale claim at {} and rerun.",
                    journal.archive_name,
                    archive_dir.join(ARCHIVE_CLAIM_FILE).display()
                ),
                None,
            )
        })?;
    let _ = fsx::sync_dir(archive_dir);
    opts.step(ArchiveStep::Claimed);
    target_available(archive_path, &journal.archive_name)?;
    for (i, m) in journal.mutations.iter().enumerate() {
        let path = layout.root.join(&m.rel);
        match &m.new {
            Some(text) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(ArchiveError::io)?;
                }
                fsx::atomic_write(&path, text.as_bytes()).map_err(ArchiveError::io)?;
            }
            None => {
                fsx::remove_opt(&path).map_err(ArchiveError::io)?;
                if let Some(parent) = path.parent() {
                    fsx::prune_empty_dirs(parent, &layout.openspec.join("specs"));
                }
            }
        }
        opts.step(ArchiveStep::SpecWritten(i));
    }
    fs::rename(change_dir, archive_path).map_err(ArchiveError::io)?;
    let _ = fsx::sync_dir(archive_dir);
    let _ = fsx::sync_dir(layout.openspec.join("changes").as_path());
    opts.step(ArchiveStep::Moved);
    for m in &journal.settle {
        settle_one(layout, m).map_err(ArchiveError::io)?;
    }
    let _ = fsx::sync_dir(archive_path);
    opts.step(ArchiveStep::Settled);
    drop(claim);
    let _ = fsx::sync_dir(archive_dir);
    opts.step(ArchiveStep::Released);
    Ok(())
}

fn recover_journal(layout: &Layout<'_>, journal_path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(journal_path)?;
    let j: Journal = serde_json::from_str(&text).map_err(io::Error::other)?;
    let changes = layout.openspec.join("changes");
    let archive_dir = changes.join("archive");
    let moved = !changes.join(&j.change).exists() && archive_dir.join(&j.archive_name).is_dir();
    for m in &j.mutations {
        let want = if moved { &m.new } else { &m.old };
        put(layout, &m.rel, want.as_deref())?;
    }
    if moved {
        for m in &j.settle {
            settle_one(layout, m)?;
        }
    }
    let claim = archive_dir.join(ARCHIVE_CLAIM_FILE);
    if fs::read_to_string(&claim).is_ok_and(|c| c.contains(&j.nonce)) {
        fsx::remove_opt(&claim)?;
    }
    if !moved && j.created_archive_dir {
        let _ = fs::remove_dir(&archive_dir);
    }
    fsx::remove_opt(journal_path)?;
    let _ = fsx::sync_dir(layout.openspec);
    Ok(format!(
        "{} archive of '{}'",
        if moved { "completed" } else { "rolled back" },
        j.change
    ))
}

/// The archive journals in `openspec/`.
/// The journal files named `<prefix>*.json` in `openspec/`, sorted.
pub(crate) fn journals(openspec: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(openspec) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".json") {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Gives the spec file `rel` exactly `text` (idempotent); `None` deletes it and prunes the spec
/// folders it leaves empty.
pub(crate) fn put(layout: &Layout<'_>, rel: &str, text: Option<&str>) -> io::Result<()> {
    let path = layout.root.join(rel);
    if fsx::read_opt(&path)?.as_deref() == text {
        return Ok(());
    }
    match text {
        Some(t) => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fsx::atomic_write(&path, t.as_bytes())
        }
        None => {
            fsx::remove_opt(&path)?;
            if let Some(parent) = path.parent() {
                fsx::prune_empty_dirs(parent, &layout.openspec.join("specs"));
            }
            Ok(())
        }
    }
}

/// Writes or deletes one settle file of the archived folder (idempotent).
fn settle_one(layout: &Layout<'_>, m: &Mutation) -> io::Result<()> {
    let path = layout.root.join(&m.rel);
    match &m.new {
        Some(text) if fsx::read_opt(&path)?.as_deref() != Some(text.as_str()) => {
            fsx::atomic_write(&path, text.as_bytes())
        }
        Some(_) => Ok(()),
        None => fsx::remove_opt(&path),
    }
}

fn needs_delta_validation(change_dir: &Path, specs: &Path) -> bool {
    if fs::metadata(specs.join("spec.md")).is_ok_and(|m| m.is_file()) {
        return true;
    }
    if discover::unread_delta_files(specs).map_or(true, |u| !u.is_empty()) {
        return true;
    }
    let marker = discover::marker(change_dir, "skip_specs");
    if marker.invalid_reason.is_some() {
        return true;
    }
    if marker.declared {
        return discover::has_any_file_under(specs).unwrap_or(true);
    }
    spec_files(specs).unwrap_or_default().iter().any(|s| {
        fs::read_to_string(&s.file)
            .is_ok_and(|c| c.split(['\n', '\r']).any(|l| DELTA_HEADING.is_match(l)))
    })
}

fn decide(built: &super::spec::Built, exists: bool, no_validate: bool, declared: bool) -> Outcome {
    if !declared {
        return Outcome::Write;
    }
    let retirable = !no_validate
        && built.no_requirement_blocks
        && built.unaccounted.is_empty()
        && validate::is_retirable(&built.rebuilt);
    if !retirable {
        return Outcome::Write;
    }
    if !exists {
        return Outcome::Skip;
    }
    if built.counts.removed > 0 {
        Outcome::Retire
    } else {
        Outcome::Write
    }
}

fn target_available(path: &Path, name: &str) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(ArchiveError::new(
            "archive_target_exists",
            format!("Archive '{name}' already exists."),
            None,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io(e)),
    }
}

fn describe_unaccounted(lines: &[String]) -> String {
    let shown: Vec<String> = lines
        .iter()
        .take(3)
        .map(|l| {
            let safe: Vec<char> = l
                .chars()
                .map(|c| {
                    if (c as u32) < 0x20 || c as u32 == 0x7f {
                        '?'
                    } else {
                        c
                    }
                })
                .collect();
            let clipped: String = safe.iter().take(200).collect();
            if safe.len() > 200 {
                format!("\"{clipped}\u{2026}\"")
            } else {
                format!("\"{clipped}\"")
            }
        })
        .collect();
    let rest = if lines.len() > 3 {
        format!(", and {} more line(s)", lines.len() - 3)
    } else {
        String::new()
    };
    format!("{}{rest}", shown.join(", "))
}

fn quote_for_shell(v: &str) -> Option<String> {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
    {
        return Some(v.to_string());
    }
    if !v.chars().any(|c| "\"\\$`\r\n%!".contains(c)) {
        return Some(format!("\"{v}\""));
    }
    None
}

fn add(t: &mut Totals, c: Counts) {
    t.added += c.added;
    t.modified += c.modified;
    t.removed += c.removed;
    t.renamed += c.renamed;
}

fn rel_path(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn journal_path(openspec: &Path, id: &str) -> PathBuf {
    openspec.join(format!("{JOURNAL_PREFIX}{id}.json"))
}

fn nonce(now: SystemTime) -> String {
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The pid and the clock keep nonces apart even if the random source fails.
    let buf: [u8; 8] = crate::random::bytes().unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        u64::from_le_bytes(buf)
    )
}

const JOURNAL_PREFIX: &str = ".archive-journal-";

/// The test-only crash hook's variable (see [`ArchiveStep::test_crash_from_env`]).
pub const TEST_CRASH_ENV: &str = "TASK_MCP_TEST_CRASH_AT";

static DELTA_HEADING: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    // unwrap: a literal pattern.
    regex::Regex::new(r"(?i)^##\s+(ADDED|MODIFIED|REMOVED|RENAMED)\s+Requirements").unwrap()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_ids_keep_their_name() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(archive_name("2025-01-15-fix", now), "2025-01-15-fix");
        assert!(archive_name("fix", now).ends_with("-fix"));
        assert_eq!(archive_name("fix", now).len(), 14);
    }

    #[test]
    fn every_step_parses_from_its_debug_name() {
        for step in [
            ArchiveStep::Prepared,
            ArchiveStep::JournalWritten,
            ArchiveStep::ArchiveDirReady,
            ArchiveStep::Claimed,
            ArchiveStep::SpecWritten(0),
            ArchiveStep::SpecWritten(12),
            ArchiveStep::Moved,
            ArchiveStep::Settled,
            ArchiveStep::Released,
        ] {
            assert_eq!(ArchiveStep::parse(&format!("{step:?}")), Some(step));
        }
        for bad in [
            "",
            "moved",
            "SpecWritten()",
            "SpecWritten(x)",
            "SpecWritten(1",
            "Moved ",
        ] {
            assert_eq!(ArchiveStep::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shell_quoting_matches_the_cli() {
        assert_eq!(
            quote_for_shell(":(top)openspec/specs/a/spec.md"),
            Some("\":(top)openspec/specs/a/spec.md\"".into())
        );
        assert_eq!(quote_for_shell("a/b.md"), Some("a/b.md".into()));
        assert_eq!(quote_for_shell("a$b"), None);
    }
}
