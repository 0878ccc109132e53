//! The tamper-evident audit log (`AUDIT_LOG`) and its in-memory ring (`AUDIT_RING_SIZE`).
//!
//! Every authentication failure, forbidden call, rate-limit hit and writing tool call becomes
//! one JSON line (members in this order; `?` = omitted when absent):
//!
//! ```text
//! {"ts","seq","event","identity","ip","tool"?,"slug"?,"outcome","durationMs"?,"requestId"?,"prev","hash"}
//! ```
//!
//! ## The hash chain
//! - `body(n)` is record `n` serialized as compact JSON **without** its `hash` member: exactly
//!   the bytes of line `n` up to its `,"hash":"…"}` suffix, followed by `}`.
//! - `hash(n)` = lower-case hex SHA-256 of `body(n)`.
//! - `prev(n)` = `hash(n − 1)`; the first record ever has `seq` 1 and `prev` = 64 zeros.
//! - `seq(n)` = `seq(n − 1) + 1`.
//!
//! Editing a line breaks its own hash; recomputing that hash breaks the next line's `prev`;
//! deleting, inserting or reordering lines breaks `prev` (and `seq`) at the first line out of
//! place. `audit_verify::verify` reports that line. Cutting records off the **end** cannot be seen
//! from the file alone: compare the report's `last_seq` / `last_hash` with a value kept elsewhere
//! (the head is exposed by [`AuditLog::head`] for `/security/metrics` and logged at shutdown).
//!
//! ## Files
//! The file is opened with `O_APPEND` (mode 0600) and each record is one `write` of one whole
//! line. When a line would take the file past `AUDIT_LOG_MAX_BYTES`, the file is synced and
//! renamed to `AUDIT_LOG.1` (older ones shift to `.2` … `.keep`; the oldest is removed), and a
//! new file starts; its first record links to the last record of the old one, so
//! `audit_verify::verify_files` checks the chain across rotations. On start the chain resumes from the last
//! complete line of the current file (or of `.1` when the current one is empty); a torn last
//! line (a crash mid-write) is kept as evidence by rotating that file away first.
//!
//! ## Cost and durability
//! Recording runs on the request path under one mutex: serialize (< 1 KiB: every text field is
//! truncated), one SHA-256, one `write(2)` to the page cache — microseconds. `fdatasync` runs at
//! most once per `fsync_interval` (default 1 s; zero = after every record; `None` = never), on
//! rotation and on [`AuditLog::flush`], so a crash loses at most that interval of records. A
//! failed write is counted ([`AuditLog::write_errors`]) and logged, the record still enters the
//! ring and the chain, and the request goes on: a full disk must not become an outage, and the
//! missing line later shows up in `audit verify` as a broken link.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::security::hex_lower;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request without a valid credential.
    AuthFailure,
    /// An authenticated caller asked for more than its role allows.
    Forbidden,
    /// A request denied by a rate limit.
    RateLimited,
    /// A call of a writing (or admin) tool, whatever its outcome.
    ToolCall,
}

/// An event to record. Text fields are truncated to [`MAX_FIELD_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: EventKind,
    /// The identity name, when authenticated.
    pub identity: Option<String>,
    /// The client address, when known.
    pub ip: Option<IpAddr>,
    /// The tool called.
    pub tool: Option<String>,
    /// The change slug the call touched.
    pub slug: Option<String>,
    /// `ok`, an error code, `invalid`, `missing`, `malformed`, `denied`, …
    pub outcome: String,
    /// How long the call took.
    pub duration_ms: Option<u64>,
    /// The request's `X-Request-Id` / trace id.
    pub request_id: Option<String>,
}

/// One record as written (and as kept in the ring).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// What happened.
    pub event: EventKind,
    /// The identity name, or `null`.
    pub identity: Option<String>,
    /// The client address, or `null`.
    pub ip: Option<String>,
    /// The tool called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The change slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The outcome word.
    pub outcome: String,
    /// Duration in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `hash` of the previous record (64 zeros for the first).
    pub prev: String,
    /// SHA-256 of this record's body (see the module docs).
    pub hash: String,
}

/// Settings of the audit log.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// `AUDIT_LOG`; `None` keeps only the in-memory ring.
    pub path: Option<PathBuf>,
    /// `AUDIT_LOG_MAX_BYTES`: rotate before a line would take the file past this size.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` … `.keep`), at least 1.
    pub keep: usize,
    /// `AUDIT_RING_SIZE`: records kept in memory.
    pub ring_size: usize,
    /// Longest time between `fdatasync`s; zero = every record; `None` = never.
    pub fsync_interval: Option<Duration>,
}

/// The audit log. `Send + Sync`; share it in an `Arc`.
pub struct AuditLog {
    inner: Mutex<Inner>,
    write_errors: AtomicU64,
}

/// Opening the audit log failed.
#[derive(Debug)]
pub enum AuditError {
    /// The file could not be opened, read or rotated.
    Io(io::Error),
    /// The existing file's last line is not an audit record, so the chain cannot resume.
    Corrupt(String),
}

impl AuditEvent {
    /// An event with only its kind and outcome set.
    pub fn new(kind: EventKind, outcome: impl Into<String>) -> Self {
        Self {
            kind,
            identity: None,
            ip: None,
            tool: None,
            slug: None,
            outcome: outcome.into(),
            duration_ms: None,
            request_id: None,
        }
    }

    /// Sets the identity name.
    pub fn identity(mut self, name: impl Into<String>) -> Self {
        self.identity = Some(name.into());
        self
    }

    /// Sets the client address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Sets the tool name.
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the change slug.
    pub fn slug(mut self, slug: impl Into<String>) -> Self {
        self.slug = Some(slug.into());
        self
    }

    /// Sets the duration.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: crate::config::Config::defaults().audit_log_max_bytes,
            keep: DEFAULT_KEEP,
            ring_size: DEFAULT_RING_SIZE,
            fsync_interval: Some(Duration::from_secs(1)),
        }
    }
}

impl AuditLog {
    /// Opens (or creates) the log and resumes its chain.
    ///
    /// # Errors
    /// [`AuditError::Io`] when the file cannot be opened or read, [`AuditError::Corrupt`] when
    /// its last line is not a record (the operator must look before the chain goes on).
    pub fn open(cfg: AuditConfig, now: SystemTime) -> Result<Self, AuditError> {
        let mut inner = Inner {
            cfg,
            file: None,
            size: 0,
            seq: 0,
            head: GENESIS.to_owned(),
            ring: VecDeque::new(),
            last_sync: now,
            dirty: false,
        };
        if let Some(path) = inner.cfg.path.clone() {
            let (resume, torn) = match read_tail(&path)? {
                Tail::Empty => (read_tail(&rotated(&path, 1))?.record(), false),
                Tail::Complete(r) => (Some(r), false),
                Tail::Torn(r) => (r, true),
            };
            if let Some(r) = resume {
                inner.seq = r.seq;
                inner.head = r.hash;
            }
            if torn {
                inner.rotate_files(&path)?;
            }
            inner.open_file(&path)?;
        }
        Ok(Self {
            inner: Mutex::new(inner),
            write_errors: AtomicU64::new(0),
        })
    }

    /// Appends an event to the chain, the file and the ring; returns its `seq`.
    pub fn record(&self, event: AuditEvent, now: SystemTime) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = inner.seq + 1;
        let mut rec = AuditRecord {
            ts: rfc3339_millis(now),
            seq,
            event: event.kind,
            identity: event.identity.as_deref().map(clip),
            ip: event
                .ip
                .map(|ip| crate::security::ipnet::normalize(ip).to_string()),
            tool: event.tool.as_deref().map(clip),
            slug: event.slug.as_deref().map(clip),
            outcome: clip(&event.outcome),
            duration_ms: event.duration_ms,
            request_id: event.request_id.as_deref().map(clip),
            prev: inner.head.clone(),
            hash: String::new(),
        };
        let line = seal(&mut rec);
        inner.seq = seq;
        inner.head = rec.hash.clone();
        if let Err(e) = inner.append(line.as_bytes(), now) {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            log::error!("audit log write failed (record {seq} kept in memory only): {e}");
        }
        let cap = inner.cfg.ring_size;
        if cap > 0 {
            if inner.ring.len() >= cap {
                inner.ring.pop_front();
            }
            inner.ring.push_back(rec);
        }
        seq
    }

    /// The newest `limit` records of the ring, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = inner.ring.len().saturating_sub(limit);
        inner.ring.iter().skip(skip).cloned().collect()
    }

    /// How many records the ring keeps.
    pub fn ring_size(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cfg
            .ring_size
    }

    /// `(seq, hash)` of the last record (`(0, 64 zeros)` before the first).
    pub fn head(&self) -> (u64, String) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.seq, inner.head.clone())
    }

    /// Writes that failed since start.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Syncs the file to disk now (call at shutdown).
    ///
    /// # Errors
    /// The `fdatasync` error.
    pub fn flush(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.sync()
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "audit log: {e}"),
            Self::Corrupt(why) => write!(f, "audit log cannot resume its chain: {why}"),
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Corrupt(_) => None,
        }
    }
}

impl From<io::Error> for AuditError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Formats `t` as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`); times before
/// 1970 print as the epoch.
pub fn rfc3339_millis(t: SystemTime) -> String {
    crate::clock::rfc3339(t)
}

struct Inner {
    cfg: AuditConfig,
    file: Option<File>,
    size: u64,
    seq: u64,
    head: String,
    ring: VecDeque<AuditRecord>,
    last_sync: SystemTime,
    dirty: bool,
}

impl Inner {
    fn append(&mut self, line: &[u8], now: SystemTime) -> io::Result<()> {
        let Some(path) = self.cfg.path.clone() else {
            return Ok(());
        };
        if self.file.is_none() {
            self.open_file(&path)?;
        }
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.cfg.max_bytes {
            self.sync()?;
            self.file = None;
            self.rotate_files(&path)?;
            self.open_file(&path)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::ErrorKind::NotFound.into());
        };
        file.write_all(line)?;
        self.size += len;
        self.dirty = true;
        if let Some(interval) = self.cfg.fsync_interval {
            let elapsed = now.duration_since(self.last_sync).unwrap_or(interval);
            if elapsed >= interval {
                self.sync()?;
                self.last_sync = now;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if let (Some(f), true) = (&self.file, self.dirty) {
            f.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    fn open_file(&mut self, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// `path.(keep-1)` → `path.keep`, …, `path` → `path.1`.
    fn rotate_files(&mut self, path: &Path) -> io::Result<()> {
        let keep = self.cfg.keep.max(1);
        for i in (1..keep).rev() {
            let from = rotated(path, i);
            if from.exists() {
                fs::rename(&from, rotated(path, i + 1))?;
            }
        }
        fs::rename(path, rotated(path, 1))?;
        self.size = 0;
        Ok(())
    }
}

/// The body member set of a record, serialized in line order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    ts: &'a str,
    seq: u64,
    event: EventKind,
    identity: &'a Option<String>,
    ip: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slug: &'a Option<String>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: &'a Option<String>,
    prev: &'a str,
}

enum Tail {
    Empty,
    Complete(AuditRecord),
    Torn(Option<AuditRecord>),
}

impl Tail {
    fn record(self) -> Option<AuditRecord> {
        match self {
            Tail::Empty => None,
            Tail::Complete(r) => Some(r),
            Tail::Torn(r) => r,
        }
    }
}

/// Fills `rec.hash` and returns the line (with its newline).
fn seal(rec: &mut AuditRecord) -> String {
    let body = Body {
        ts: &rec.ts,
        seq: rec.seq,
        event: rec.event,
        identity: &rec.identity,
        ip: &rec.ip,
        tool: &rec.tool,
        slug: &rec.slug,
        outcome: &rec.outcome,
        duration_ms: rec.duration_ms,
        request_id: &rec.request_id,
        prev: &rec.prev,
    };
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_string(&body).unwrap_or_default();
    rec.hash = hex_lower(digest(&SHA256, json.as_bytes()).as_ref());
    let mut line = String::with_capacity(json.len() + HASH_SUFFIX_LEN + 1);
    line.push_str(json.strip_suffix('}').unwrap_or(&json));
    line.push_str(",\"hash\":\"");
    line.push_str(&rec.hash);
    line.push_str("\"}\n");
    line
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyFault {
    /// The file could not be read.
    Io(String),
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// The last line has no newline (a torn write).
    Torn,
    /// The line does not end with a `,"hash":"<64 hex>"}` member.
    NoHash,
    /// The body is not the JSON of an audit record.
    BadRecord(String),
    /// `hash` is not the SHA-256 of the body: the line was edited.
    HashMismatch,
    /// `prev` is not the previous record's `hash`: a line was deleted, inserted or moved.
    BrokenLink {
        /// The previous record's hash.
        expected: String,
        /// This record's `prev`.
        found: String,
    },
    /// `seq` does not follow the previous record's.
    SeqGap {
        /// Previous `seq` + 1.
        expected: u64,
        /// This record's `seq`.
        found: u64,
    },
}

impl fmt::Display for VerifyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read: {e}"),
            Self::TooLong => write!(f, "line longer than {MAX_LINE_BYTES} bytes"),
            Self::Torn => f.write_str("last line has no newline (torn write)"),
            Self::NoHash => f.write_str("no trailing \"hash\" member"),
            Self::BadRecord(e) => write!(f, "not an audit record: {e}"),
            Self::HashMismatch => f.write_str("hash does not match the record (edited)"),
            Self::BrokenLink { expected, found } => write!(
                f,
                "prev {found} is not the previous hash {expected} (line deleted, inserted or moved)"
            ),
            Self::SeqGap { expected, found } => write!(f, "seq {found}, expected {expected}"),
        }
    }
}

/// Checks one line (without its newline): its hash suffix, its body's hash, its JSON.
pub(crate) fn check_line(line: &[u8]) -> Result<AuditRecord, VerifyFault> {
    if line.len() < HASH_SUFFIX_LEN + 2 {
        return Err(VerifyFault::NoHash);
    }
    let (head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(b",\"hash\":\"")
        .and_then(|s| s.strip_suffix(b"\"}"))
        .filter(|h| {
            h.len() == 64
                && h.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
        .ok_or(VerifyFault::NoHash)?;
    let mut body = head.to_vec();
    body.push(b'}');
    let actual = hex_lower(digest(&SHA256, &body).as_ref());
    if actual.as_bytes() != hash {
        return Err(VerifyFault::HashMismatch);
    }
    let rec: AuditRecord =
        serde_json::from_slice(line).map_err(|e| VerifyFault::BadRecord(e.to_string()))?;
    if rec.prev.len() != 64 || !rec.prev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyFault::BadRecord("prev is not 64 hex digits".into()));
    }
    Ok(rec)
}

/// The last complete record of `path` (reading only its tail).
fn read_tail(path: &Path) -> Result<Tail, AuditError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::Empty),
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let start = len.saturating_sub(2 * MAX_LINE_BYTES as u64 + 2);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let torn = tail.last() != Some(&b'\n');
    let complete_end = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => i,
        None if torn => return Ok(Tail::Torn(None)),
        None => return Err(AuditError::Corrupt("no complete line".into())),
    };
    let line_start = tail[..complete_end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if line_start == 0 && start > 0 {
        return Err(AuditError::Corrupt("last line too long".into()));
    }
    let rec = check_line(&tail[line_start..complete_end])
        .map_err(|e| AuditError::Corrupt(format!("{}: {e}", path.display())))?;
    Ok(if torn {
        Tail::Torn(Some(rec))
    } else {
        Tail::Complete(rec)
    })
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Text fields are cut to this many characters.
pub const MAX_FIELD_CHARS: usize = 128;
/// Longest line the chain check accepts.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Number of rotated files kept.
pub const DEFAULT_KEEP: usize = 5;
/// Records kept in the in-memory ring.
pub const DEFAULT_RING_SIZE: usize = 1000;
/// `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

#[cfg(test)]
mod tests {
    use crate::security::audit_verify::{VerifyReport, verify, verify_files, verify_reader};
    use std::time::UNIX_EPOCH;

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "task-mcp-audit-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
    }

    fn cfg(path: &Path) -> AuditConfig {
        AuditConfig {
            path: Some(path.to_owned()),
            fsync_interval: Some(Duration::ZERO),
            ..AuditConfig::default()
        }
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent::new(EventKind::ToolCall, "ok")
            .identity("ci")
            .ip("2001:db8::1".parse().unwrap())
            .tool("change.open")
            .slug(format!("add-thing-{i}"))
            .duration(Duration::from_millis(i))
            .request_id(format!("req-{i}"))
    }

    fn write_log(path: &Path, n: u64) -> Vec<String> {
        let log = AuditLog::open(cfg(path), t(0)).unwrap();
        for i in 0..n {
            log.record(event(i), t(i));
        }
        log.flush().unwrap();
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        let mut s = lines.join("\n");
        s.push('\n');
        fs::write(path, s).unwrap();
    }

    #[test]
    fn records_have_the_documented_shape_and_chain() {
        let dir = TempDir::new("shape");
        let path = dir.0.join("audit.log");
        let lines = write_log(&path, 2);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        let keys: Vec<&str> = first
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 12);
        assert!(lines[0].starts_with(
            "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"seq\":1,\"event\":\"tool_call\",\
             \"identity\":\"ci\",\"ip\":\"2001:db8::1\",\"tool\":\"change.open\",\
             \"slug\":\"add-thing-0\",\"outcome\":\"ok\",\"durationMs\":0,\
             \"requestId\":\"req-0\",\"prev\":\"0000"
        ));
        let body = format!("{}}}", &lines[0][..lines[0].len() - HASH_SUFFIX_LEN]);
        let want = hex_lower(digest(&SHA256, body.as_bytes()).as_ref());
        assert_eq!(first["hash"], want.as_str());
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["prev"], want.as_str());
        assert_eq!(second["seq"], 2);
        let minimal = AuditLog::open(AuditConfig::default(), t(0)).unwrap();
        minimal.record(AuditEvent::new(EventKind::AuthFailure, "invalid"), t(0));
        let r = &minimal.recent(1)[0];
        assert_eq!(r.identity, None);
        assert_eq!(r.ip, None);
        let line = serde_json::to_string(r).unwrap();
        assert!(line.contains("\"identity\":null,\"ip\":null,\"outcome\":\"invalid\""));
        assert!(!line.contains("tool"));
    }

    #[test]
    fn an_untouched_log_verifies() {
        let dir = TempDir::new("ok");
        let path = dir.0.join("audit.log");
        let lines = write_log(&path, 5);
        let report = verify(&path).unwrap();
        let last: AuditRecord = serde_json::from_str(&lines[4]).unwrap();
        assert_eq!(
            report,
            VerifyReport {
                records: 5,
                first_seq: 1,
                first_prev: GENESIS.to_owned(),
                last_seq: 5,
                last_hash: last.hash,
            }
        );
        fs::write(&path, "").unwrap();
        assert_eq!(verify(&path).unwrap().records, 0);
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_the_right_line() {
        let dir = TempDir::new("tamper");
        let path = dir.0.join("audit.log");
        let orig = write_log(&path, 6);
        type Tamper = fn(&mut Vec<String>);
        type Expect = fn(&VerifyFault) -> bool;
        let cases: &[(&str, Tamper, u64, Expect)] = &[
            (
                "edited outcome",
                |l| l[2] = l[2].replace("\"outcome\":\"ok\"", "\"outcome\":\"no\""),
                3,
                |f| *f == VerifyFault::HashMismatch,
            ),
            (
                "edited with hash recomputed",
                |l| {
                    let mut rec: AuditRecord = serde_json::from_str(&l[2]).unwrap();
                    rec.outcome = "denied".into();
                    l[2] = seal(&mut rec).trim_end().to_owned();
                },
                4,
                |f| matches!(f, VerifyFault::BrokenLink { .. }),
            ),
            (
                "deleted line",
                |l| {
                    l.remove(3);
                },
                4,
                |f| matches!(f, VerifyFault::BrokenLink { .. }),
            ),
            (
                "inserted copy",
                |l| {
                    let copy = l[1].clone();
                    l.insert(4, copy);
                },
                5,
                |f| matches!(f, VerifyFault::BrokenLink { .. }),
            ),
            (
                "swapped lines",
                |l| l.swap(1, 2),
                2,
                |f| matches!(f, VerifyFault::BrokenLink { .. }),
            ),
            (
                "deleted first line",
                |l| {
                    l.remove(0);
                },
                0,
                |_| false,
            ),
            (
                "hash removed",
                |l| l[0] = format!("{}}}", &l[0][..l[0].len() - HASH_SUFFIX_LEN]),
                1,
                |f| *f == VerifyFault::NoHash,
            ),
            (
                "garbage line",
                |l| l.insert(2, "hello".into()),
                3,
                |f| *f == VerifyFault::NoHash,
            ),
        ];
        for (name, tamper, line, fault) in cases {
            let mut lines = orig.clone();
            tamper(&mut lines);
            rewrite(&path, &lines);
            match verify(&path) {
                Err(e) => {
                    assert_eq!(e.line, *line, "{name}: {e}");
                    assert!(fault(&e.reason), "{name}: {e}");
                }
                Ok(r) => {
                    // Dropping the first record of a file looks like a file after a rotation;
                    // it shows as a first seq above 1.
                    assert_eq!(*line, 0, "{name} went unnoticed");
                    assert_eq!(r.first_seq, 2, "{name}");
                }
            }
        }
        // A torn last line.
        let mut s = orig.join("\n");
        s.push('\n');
        s.push_str(&orig[0][..40]);
        fs::write(&path, s).unwrap();
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.reason), (7, VerifyFault::Torn));
    }

    #[test]
    fn the_chain_resumes_after_a_restart() {
        let dir = TempDir::new("resume");
        let path = dir.0.join("audit.log");
        write_log(&path, 3);
        let log = AuditLog::open(cfg(&path), t(10)).unwrap();
        assert_eq!(log.head().0, 3);
        assert_eq!(log.record(event(9), t(10)), 4);
        let r = verify(&path).unwrap();
        assert_eq!((r.records, r.last_seq), (4, 4));
        assert_eq!(r.last_hash, log.head().1);
    }

    #[test]
    fn a_torn_tail_is_kept_aside_and_the_chain_continues() {
        let dir = TempDir::new("torn");
        let path = dir.0.join("audit.log");
        write_log(&path, 3);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ts\":\"2026-").unwrap();
        drop(f);
        let log = AuditLog::open(cfg(&path), t(10)).unwrap();
        log.record(event(7), t(10));
        assert_eq!(
            verify(&rotated(&path, 1)).unwrap_err().reason,
            VerifyFault::Torn
        );
        let r = verify(&path).unwrap();
        assert_eq!((r.first_seq, r.records), (4, 1));
    }

    #[test]
    fn a_corrupt_tail_refuses_to_resume() {
        let dir = TempDir::new("corrupt");
        let path = dir.0.join("audit.log");
        fs::write(&path, "not an audit record\n").unwrap();
        assert!(matches!(
            AuditLog::open(cfg(&path), t(0)),
            Err(AuditError::Corrupt(_))
        ));
    }

    #[test]
    fn rotation_keeps_the_chain_across_files() {
        let dir = TempDir::new("rotate");
        let path = dir.0.join("audit.log");
        let mut c = cfg(&path);
        c.max_bytes = 1_000;
        c.keep = 3;
        let log = AuditLog::open(c.clone(), t(0)).unwrap();
        for i in 0..20 {
            log.record(event(i), t(i));
        }
        log.flush().unwrap();
        for f in [
            path.clone(),
            rotated(&path, 1),
            rotated(&path, 2),
            rotated(&path, 3),
        ] {
            assert!(fs::metadata(&f).unwrap().len() <= 1_000, "{}", f.display());
        }
        assert!(!rotated(&path, 4).exists());
        let files = vec![
            rotated(&path, 3),
            rotated(&path, 2),
            rotated(&path, 1),
            path.clone(),
        ];
        let all = verify_files(&files).unwrap();
        assert_eq!(all.last_seq, 20);
        assert_eq!(all.last_hash, log.head().1);
        assert_eq!(all.records, 20 - (all.first_seq - 1));
        // Each rotated-into file verifies on its own, starting after seq 1.
        let cur = verify(&path).unwrap();
        assert!(cur.first_seq > 1);
        // Files out of order break the chain at the first line of the misplaced file.
        let wrong = vec![
            rotated(&path, 2),
            rotated(&path, 3),
            rotated(&path, 1),
            path.clone(),
        ];
        let (file, e) = verify_files(&wrong).unwrap_err();
        assert_eq!((file, e.line), (1, 1));
        // An empty file in the list neither breaks nor starts the chain.
        let empty = dir.0.join("empty.log");
        fs::write(&empty, "").unwrap();
        let with_empty = vec![empty.clone(), rotated(&path, 1), empty, path.clone()];
        let r = verify_files(&with_empty).unwrap();
        assert_eq!(r.first_seq, verify(&rotated(&path, 1)).unwrap().first_seq);
        assert_eq!(r.last_seq, 20);
        // The chain resumes from .1 when the current file is empty.
        drop(log);
        fs::write(&path, "").unwrap();
        let seq_before = verify(&rotated(&path, 1)).unwrap().last_seq;
        let log = AuditLog::open(c, t(30)).unwrap();
        assert_eq!(log.record(event(1), t(30)), seq_before + 1);
    }

    #[test]
    fn the_ring_is_bounded_and_fields_are_clipped() {
        let log = AuditLog::open(
            AuditConfig {
                ring_size: 3,
                ..AuditConfig::default()
            },
            t(0),
        )
        .unwrap();
        for i in 0..10 {
            log.record(event(i), t(i));
        }
        let recent = log.recent(100);
        assert_eq!(
            recent.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(log.recent(1)[0].seq, 10);
        let long = "é".repeat(1000);
        log.record(
            AuditEvent::new(EventKind::Forbidden, long.clone()).request_id(long),
            t(0),
        );
        let r = &log.recent(1)[0];
        assert_eq!(r.outcome.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(
            r.request_id.as_ref().unwrap().chars().count(),
            MAX_FIELD_CHARS
        );
    }

    #[test]
    fn hostile_text_cannot_forge_a_line() {
        let dir = TempDir::new("hostile");
        let path = dir.0.join("audit.log");
        let log = AuditLog::open(cfg(&path), t(0)).unwrap();
        log.record(
            AuditEvent::new(EventKind::AuthFailure, "invalid")
                .request_id("x\"}\n{\"seq\":99,\"hash\":\"00\"}"),
            t(0),
        );
        log.flush().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert_eq!(verify(&path).unwrap().records, 1);
    }

    #[test]
    fn failed_writes_are_counted_and_the_request_goes_on() {
        let dir = TempDir::new("fail");
        let path = dir.0.join("audit.log");
        let mut c = cfg(&path);
        c.max_bytes = 10;
        let log = AuditLog::open(c, t(0)).unwrap();
        log.record(event(0), t(0));
        // The live file vanishes: the rotation before the next line cannot rename it.
        fs::remove_file(&path).unwrap();
        assert_eq!(log.record(event(1), t(1)), 2);
        assert_eq!(log.write_errors(), 1);
        assert_eq!(log.recent(1)[0].seq, 2);
        // The next record starts a new file; the lost record shows as a broken link.
        assert_eq!(log.record(event(2), t(2)), 3);
        assert_eq!(log.write_errors(), 1);
        let r = verify(&path).unwrap();
        assert_eq!((r.first_seq, r.records), (3, 1));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let cases: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
            (1_767_225_599, 999, "2025-12-31T23:59:59.999Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
        ];
        for (secs, ms, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(*secs) + Duration::from_millis(u64::from(*ms));
            assert_eq!(rfc3339_millis(t), *want);
        }
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let dir = TempDir::new("bytes");
        let path = dir.0.join("audit.log");
        write_log(&path, 3);
        let orig = fs::read(&path).unwrap();
        let mut rng = crate::security::TestRng(0x0a0d_17c4_a15e_ed01);
        for pos in 0..orig.len() {
            let mut bytes = orig.clone();
            let flip = 1 + rng.below(255) as u8;
            bytes[pos] ^= flip;
            let res = verify_reader(&bytes[..], None);
            assert!(res.is_err(), "byte {pos} ^ {flip:#x} went unnoticed");
        }
    }
}
