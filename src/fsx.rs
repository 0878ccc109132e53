//! Durable file operations: atomic replace (temp file in the same directory, fsync, rename,
//! fsync of the directory), owner-only files and folders for secrets, and helpers that treat
//! "missing" as a value, not an error. Used by the OpenSpec engine and by everything that keeps
//! state (certificates, tokens, session keys).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes` atomically: readers see the old or the new file, never a mix,
/// and after return the new content survives a power cut.
///
/// # Errors
/// Any I/O failure; the temporary file is removed on failure.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, None)
}

/// [`atomic_write`] for secrets: the file is created readable by its owner only (0600), so the
/// secret is never visible under a wider mode, not even in the temporary file.
///
/// # Errors
/// As [`atomic_write`].
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, Some(0o600))
}

/// Creates `dir` and its missing parents, and makes `dir` reachable by its owner only (0700):
/// where the server keeps keys and tokens.
///
/// # Errors
/// Creating the directory or setting its mode failed.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
}

fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(m) = mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, m);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so a rename or unlink inside it is durable.
///
/// # Errors
/// Opening or syncing the directory failed.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a UTF-8 file; `Ok(None)` when it (or a parent) does not exist.
///
/// # Errors
/// Other I/O failures, or invalid UTF-8.
pub fn read_opt(path: &Path) -> io::Result<Option<String>> {
    match read_nofollow(path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads a UTF-8 file that is not a symbolic link: a repository may hold links to files outside
/// it, and their content must never be served or merged. The file opened must be the one whose
/// metadata was checked (same device and inode), so a link swapped in between is refused too.
///
/// # Errors
/// `InvalidInput` for a symbolic link (or a file replaced while opening), else as
/// [`fs::read_to_string`].
pub fn read_nofollow(path: &Path) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    let checked = fs::symlink_metadata(path)?;
    if checked.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link; refusing to follow it",
                path.display()
            ),
        ));
    }
    let mut file = File::open(path)?;
    let opened = file.metadata()?;
    if (opened.dev(), opened.ino()) != (checked.dev(), checked.ino()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} changed while being opened", path.display()),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Removes a file; a missing file is success.
///
/// # Errors
/// Other I/O failures.
pub fn remove_opt(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes empty directories from `start` upward, stopping at (never removing) `boundary`.
pub fn prune_empty_dirs(start: &Path, boundary: &Path) {
    let mut dir = start.to_path_buf();
    while dir.starts_with(boundary) && dir != boundary {
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            _ => return,
        }
        if fs::remove_dir(&dir).is_err() {
            return;
        }
        let _ = dir.parent().map(sync_dir);
        if !dir.pop() {
            return;
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("fsx-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.md");
        atomic_write(&f, b"one").unwrap();
        atomic_write(&f, b"two").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(read_opt(&dir.join("none")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_refuse_symbolic_links() {
        let dir = std::env::temp_dir().join(format!("fsx-link-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("real.md"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.join("real.md"), dir.join("link.md")).unwrap();
        assert_eq!(read_nofollow(&dir.join("real.md")).unwrap(), "secret");
        for r in [
            read_nofollow(&dir.join("link.md")),
            read_opt(&dir.join("link.md")).map(|_| String::new()),
        ] {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
