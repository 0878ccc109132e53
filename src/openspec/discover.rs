//! Finding files in a change the way the CLI does: delta specs (`specs/**/spec.md`), stray delta
//! files, and the `.openspec.yaml` markers (`skip_specs`, `retire_capabilities`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::delta::parse_delta;

/// A delta spec: its capability id (`a` or `a/b`) and file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecFile {
    /// Segments joined by `/`.
    pub id: String,
    /// The `spec.md` path.
    pub file: PathBuf,
}

/// A `.md` file under `specs/` other than `spec.md` that carries delta sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadDelta {
    /// Its path relative to `specs/`, `/`-separated.
    pub path: String,
    /// Where it should live: `<cap>/spec.md`.
    pub expected: String,
}

/// A boolean marker of `.openspec.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marker {
    /// The marker is set and honoured.
    pub declared: bool,
    /// Set when the marker is mentioned but cannot be honoured.
    pub invalid_reason: Option<String>,
}

/// Every `spec.md` below `specs_root` (not at its root), dot entries skipped, symlinked dirs not
/// followed, sorted by id in code-point order.
///
/// # Errors
/// I/O errors other than a missing directory.
pub fn spec_files(specs_root: &Path) -> io::Result<Vec<SpecFile>> {
    let mut out = Vec::new();
    walk_specs(specs_root, &mut Vec::new(), &mut out)?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Non-`spec.md` markdown files under `specs/` that hold delta sections, sorted by path.
///
/// # Errors
/// I/O errors other than a missing directory.
pub fn unread_delta_files(specs_root: &Path) -> io::Result<Vec<UnreadDelta>> {
    let mut out = Vec::new();
    walk_unread(specs_root, &mut Vec::new(), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// True when any non-dot file (or symlink) exists below `dir`.
///
/// # Errors
/// I/O errors other than a missing directory.
pub fn has_any_file_under(dir: &Path) -> io::Result<bool> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_file() || ft.is_symlink() {
            return Ok(true);
        }
        if ft.is_dir() && has_any_file_under(&entry.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads a boolean marker (`skip_specs`, `retire_capabilities`) of `<change>/.openspec.yaml`.
///
/// Only the flat `key: value` YAML the CLI writes is understood; anything else that mentions the
/// key is reported as unhonourable, as the CLI does for unparsable metadata.
pub fn marker(change_dir: &Path, key: &str) -> Marker {
    let raw = match super::fsx::read_nofollow(&change_dir.join(METADATA_FILE)) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Marker::default(),
        Err(e) => {
            return Marker {
                declared: false,
                invalid_reason: Some(format!("the metadata file cannot be read ({e})")),
            };
        }
    };
    let meta = parse_flat_yaml(&raw);
    let value = meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let schema = meta
        .iter()
        .find(|(k, _)| k == "schema")
        .map(|(_, v)| v.as_str());
    match value {
        None | Some("false") => Marker::default(),
        Some("true") => match schema {
            Some(s) if s == BUILT_IN_SCHEMA => Marker {
                declared: true,
                invalid_reason: None,
            },
            Some(s) if !s.is_empty() => Marker {
                declared: false,
                invalid_reason: Some(format!("schema: unknown schema '{s}'")),
            },
            _ => Marker {
                declared: false,
                invalid_reason: Some("schema: Required".into()),
            },
        },
        Some(other) => Marker {
            declared: false,
            invalid_reason: Some(format!(
                "{key}: Expected boolean, received {}",
                if other.parse::<f64>().is_ok() {
                    "number"
                } else {
                    "string"
                }
            )),
        },
    }
}

/// `key: value` pairs of a flat YAML mapping, quotes removed, comments dropped.
pub fn parse_flat_yaml(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in raw.lines() {
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.split(" #").next().unwrap_or("").trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        out.push((k.trim().to_string(), v.to_string()));
    }
    out
}

/// The change metadata file name.
pub const METADATA_FILE: &str = ".openspec.yaml";
/// The only schema this server knows, the CLI's built-in one.
pub const BUILT_IN_SCHEMA: &str = "spec-driven";

/// Walks the files below `dir` depth first, skipping dot entries and not following symlinked
/// folders; `visit` gets the folder names from `dir` down, the file's name and its entry. A
/// missing `dir` (or a file where it should be) is an empty tree.
fn walk_files(
    dir: &Path,
    segments: &mut Vec<String>,
    visit: &mut dyn FnMut(&[String], &str, &fs::DirEntry) -> io::Result<()>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            segments.push(name);
            walk_files(&entry.path(), segments, visit)?;
            segments.pop();
        } else {
            visit(segments, &name, &entry)?;
        }
    }
    Ok(())
}

fn walk_specs(dir: &Path, segments: &mut Vec<String>, out: &mut Vec<SpecFile>) -> io::Result<()> {
    walk_files(dir, segments, &mut |segments, name, entry| {
        if name == "spec.md" && !segments.is_empty() && entry.file_type()?.is_file() {
            out.push(SpecFile {
                id: segments.join("/"),
                file: entry.path(),
            });
        }
        Ok(())
    })
}

fn walk_unread(
    dir: &Path,
    segments: &mut Vec<String>,
    out: &mut Vec<UnreadDelta>,
) -> io::Result<()> {
    walk_files(dir, segments, &mut |segments, name, entry| {
        if !entry.file_type()?.is_file()
            || name == "spec.md"
            || !name.to_lowercase().ends_with(".md")
        {
            return Ok(());
        }
        let Ok(content) = fs::read_to_string(entry.path()) else {
            return Ok(());
        };
        if !parse_delta(&content).section_presence.iter().any(|p| *p) {
            return Ok(());
        }
        let capability = if segments.is_empty() {
            name[..name.len() - 3].to_string()
        } else {
            segments.join("/")
        };
        let mut path = segments.to_vec();
        path.push(name.to_owned());
        out.push(UnreadDelta {
            path: path.join("/"),
            expected: format!("{capability}/spec.md"),
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_yaml_reads_keys_and_strips_quotes_and_comments() {
        let y = parse_flat_yaml("schema: \"spec-driven\"\ncreated: 2025-01-01 # x\n  nested: 1\n");
        assert_eq!(
            y,
            [
                ("schema".to_string(), "spec-driven".to_string()),
                ("created".to_string(), "2025-01-01".to_string())
            ]
        );
    }
}
