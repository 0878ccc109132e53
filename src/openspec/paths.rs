//! Containment under `$ROOT/openspec`: every path the server touches is built from checked
//! segments, and every existing component is `lstat`ed so a symlink anywhere is refused.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug)]
pub enum PathError {
    /// A segment is empty, `.`/`..`, or holds NUL, `/`, `\`, `~` or a percent-encoded byte.
    BadSegment(String),
    /// An existing component is a symbolic link.
    Symlink(PathBuf),
    /// `lstat` failed for another reason than "missing".
    Io(io::Error),
}

/// Checks one path segment supplied by a caller.
///
/// # Errors
/// [`PathError::BadSegment`] naming the segment.
pub fn check_segment(seg: &str) -> Result<(), PathError> {
    let bad = seg.is_empty()
        || seg == "."
        || seg == ".."
        || seg.contains(['\0', '/', '\\', '~', '%'])
        || seg.chars().any(char::is_control);
    if bad {
        return Err(PathError::BadSegment(seg.to_string()));
    }
    Ok(())
}

/// Joins checked `segments` under `base` (itself trusted), refusing any existing symlink on the
/// way. Components that do not exist yet are fine: they will be created as real directories.
///
/// # Errors
/// A bad segment, a symlink, or an I/O error.
pub fn contained(base: &Path, segments: &[&str]) -> Result<PathBuf, PathError> {
    let mut path = base.to_path_buf();
    let mut exists = true;
    for seg in segments {
        check_segment(seg)?;
        path.push(seg);
        if exists {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return Err(PathError::Symlink(path)),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    exists = false;
                }
                Err(e) => return Err(PathError::Io(e)),
            }
        }
    }
    Ok(path)
}

/// Splits a `/`-separated relative path (a capability id like `a/b`) and checks each segment.
///
/// # Errors
/// [`PathError::BadSegment`] for any bad segment.
pub fn split_checked(rel: &str) -> Result<Vec<&str>, PathError> {
    let segs: Vec<&str> = rel.split('/').collect();
    for s in &segs {
        check_segment(s)?;
    }
    Ok(segs)
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSegment(s) => write!(f, "path segment {s:?} is not allowed"),
            Self::Symlink(p) => write!(f, "{} is a symbolic link", p.display()),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PathError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_segments_are_refused() {
        for seg in [
            "", ".", "..", "a/b", "a\\b", "a\0b", "%2e%2e", "a%2Fb", "~root",
        ] {
            assert!(check_segment(seg).is_err(), "{seg:?}");
        }
        for seg in ["spec.md", "add-thing", ".lock"] {
            assert!(check_segment(seg).is_ok(), "{seg:?}");
        }
    }

    #[test]
    fn symlinks_anywhere_are_refused() {
        let dir = std::env::temp_dir().join(format!("paths-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        assert!(matches!(
            contained(&dir, &["link", "x"]),
            Err(PathError::Symlink(_))
        ));
        assert!(contained(&dir, &["real", "new", "deeper"]).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
