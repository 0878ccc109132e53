//! Locks that hold across processes.
//!
//! - The change lease `<change>/.lock` = `{"owner","since"(ms),"ttl"(s)}`: who is editing a change.
//!   It is read, checked and replaced under an exclusive `flock` of the change directory, so two
//!   processes can never both believe they took it.
//! - [`DirLock`]: an exclusive `flock` on a directory, held for the length of a write or an archive.
//! - The CLI's archive claim `changes/archive/.openspec-archive.lock` (`O_EXCL`, `{"pid","nonce"}`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fsx;

/// A change lease as stored in `<change>/.lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (the caller's identity).
    pub owner: String,
    /// When it was taken, in ms since the Unix epoch.
    pub since: u64,
    /// How long it lasts, in seconds.
    pub ttl: u64,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Someone else holds it; `lease` says who when known.
    Held(Option<Lease>),
    /// The filesystem failed.
    Io(io::Error),
}

/// An exclusive `flock` on a directory, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

/// The CLI-compatible archive claim file, removed on drop.
#[derive(Debug)]
pub struct ArchiveClaim {
    path: PathBuf,
    contents: String,
}

impl Lease {
    /// True while `now_ms` is inside the lease.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.since.saturating_add(self.ttl.saturating_mul(1000))
    }
}

impl DirLock {
    /// Takes the lock without waiting.
    ///
    /// # Errors
    /// [`LockError::Held`] when another holder has it.
    pub fn try_acquire(dir: &Path) -> Result<Self, LockError> {
        let file = File::open(dir).map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(None)),
            Err(TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }

    /// Takes the lock, waiting for other holders.
    ///
    /// # Errors
    /// Opening or locking failed.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        let file = File::open(dir)?;
        file.lock()?;
        Ok(Self { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl ArchiveClaim {
    /// Creates the claim with `O_EXCL`; `Ok(None)` when one already exists (another archive).
    ///
    /// # Errors
    /// I/O failures other than "exists".
    pub fn create(archive_dir: &Path, nonce: &str) -> io::Result<Option<Self>> {
        let path = archive_dir.join(ARCHIVE_CLAIM_FILE);
        let contents = serde_json::json!({"pid": std::process::id(), "nonce": nonce}).to_string();
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        };
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        Ok(Some(Self { path, contents }))
    }
}

impl Drop for ArchiveClaim {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|c| c == self.contents) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads the lease of a change; accepts `since` as ms or as an ISO string (a fork wrote both).
///
/// # Errors
/// I/O failures other than a missing file.
pub fn read_lease(change_dir: &Path) -> io::Result<Option<Lease>> {
    let Some(text) = fsx::read_opt(&change_dir.join(LEASE_FILE))? else {
        return Ok(None);
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Ok(None);
    };
    let owner = v
        .get("owner")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let since = match v.get("since") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.fZ", s)
            .or_else(|_| s.parse::<jiff::Timestamp>())
            .map(|t| t.as_millisecond().max(0) as u64)
            .unwrap_or(0),
        _ => 0,
    };
    let ttl = v.get("ttl").and_then(Value::as_u64).unwrap_or(0);
    Ok(Some(Lease { owner, since, ttl }))
}

/// Takes or refreshes the lease for `owner`: allowed when there is none, it expired, or `owner`
/// already holds it.
///
/// # Errors
/// [`LockError::Held`] with the current lease when another owner holds a live one.
pub fn take_lease(
    change_dir: &Path,
    owner: &str,
    ttl_s: u64,
    now_ms: u64,
) -> Result<Lease, LockError> {
    let _guard = DirLock::try_acquire(change_dir)?;
    if let Some(cur) = read_lease(change_dir).map_err(LockError::Io)?
        && cur.owner != owner
        && cur.is_live(now_ms)
    {
        return Err(LockError::Held(Some(cur)));
    }
    let lease = Lease {
        owner: owner.to_string(),
        since: now_ms,
        ttl: ttl_s,
    };
    let bytes = serde_json::to_vec(&lease).map_err(|e| LockError::Io(io::Error::other(e)))?;
    fsx::atomic_write(&change_dir.join(LEASE_FILE), &bytes).map_err(LockError::Io)?;
    Ok(lease)
}

/// Fails with the lease when another owner holds a live one (a read-only check).
///
/// # Errors
/// [`LockError::Held`] or I/O.
pub fn check_lease(change_dir: &Path, owner: &str, now_ms: u64) -> Result<(), LockError> {
    match read_lease(change_dir).map_err(LockError::Io)? {
        Some(cur) if cur.owner != owner && cur.is_live(now_ms) => Err(LockError::Held(Some(cur))),
        _ => Ok(()),
    }
}

/// The lease file inside a change.
pub const LEASE_FILE: &str = ".lock";
/// The CLI's archive claim file inside `changes/archive`.
pub const ARCHIVE_CLAIM_FILE: &str = ".openspec-archive.lock";

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lease_is_exclusive_until_it_expires() {
        let d = scratch("lease");
        take_lease(&d, "alice", 60, 1_000).unwrap();
        take_lease(&d, "alice", 60, 2_000).unwrap();
        match take_lease(&d, "bob", 60, 3_000) {
            Err(LockError::Held(Some(l))) => {
                assert_eq!((l.owner.as_str(), l.since, l.ttl), ("alice", 2_000, 60))
            }
            other => panic!("{other:?}"),
        }
        take_lease(&d, "bob", 60, 62_000).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dir_lock_excludes_a_second_holder() {
        let d = scratch("dir");
        let a = DirLock::try_acquire(&d).unwrap();
        assert!(matches!(
            DirLock::try_acquire(&d),
            Err(LockError::Held(None))
        ));
        drop(a);
        assert!(DirLock::try_acquire(&d).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn archive_claim_is_o_excl_and_removed_on_drop() {
        let d = scratch("claim");
        let c = ArchiveClaim::create(&d, "n1").unwrap().unwrap();
        assert!(ArchiveClaim::create(&d, "n2").unwrap().is_none());
        drop(c);
        assert!(!d.join(ARCHIVE_CLAIM_FILE).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
