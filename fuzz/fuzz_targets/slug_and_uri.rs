//! Slugs, path segments and resource URIs: whatever is accepted stays inside the root.
//!
//! - An accepted change slug is 3-64 chars of `[a-z0-9]` joined by single hyphens.
//! - An accepted segment holds no NUL, `/`, `\`, `~`, `%` or control character and is not `.`
//!   or `..`; segments joined with `contained` give a path under the base made only of normal
//!   components.
//! - A resource URI read through the real provider over a fixture workspace never returns the
//!   marker planted outside `openspec/` (reachable only through `..`, encoded separators or the
//!   symlinks the fixture plants), and any URI holding NUL, `\` or `%`, or a `..` path segment,
//!   is refused.
//!
//! Input: byte 0 picks the URI scheme; the rest is text whose first line is checked as a slug
//! and a path, and whose remainder follows `scheme://` as a resource URI.
#![no_main]

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use task_mcp::openspec::{Workspace, paths, slug};
use task_mcp::tools::Registry;
use task_mcp::tools::options::ToolOptions;
use task_mcp::tools::resources::OpenSpecResources;

const SECRET: &str = "OUTSIDE-SECRET";
const SCHEMES: [&str; 6] = ["change", "spec", "delta", "proposal", "task", "changes"];

fuzz_target!(|input: &[u8]| {
    let Some((&scheme, rest)) = input.split_first() else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let (text, tail) = rest.split_once('\n').unwrap_or((&rest, ""));

    if slug::slug_problem(text).is_none() {
        let n = text.chars().count();
        assert!(
            (slug::MIN_SLUG_CHARS..=slug::MAX_SLUG_CHARS).contains(&n),
            "{text:?}"
        );
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!text.starts_with('-') && !text.ends_with('-') && !text.contains("--"));
        assert!(
            paths::check_segment(text).is_ok(),
            "a valid slug is a valid segment"
        );
    }
    if slug::folder_name_problem(text).is_none() {
        assert!(!text.is_empty() && text != "." && text != "..");
        assert!(!text.contains(['/', '\\']));
    }
    if paths::check_segment(text).is_ok() {
        assert!(!text.is_empty() && text != "." && text != "..");
        assert!(!text.contains(['\0', '/', '\\', '~', '%']));
        assert!(!text.chars().any(char::is_control));
    }
    if let Ok(segs) = paths::split_checked(text) {
        let base = Path::new("/nonexistent-task-mcp-fuzz-base");
        if let Ok(joined) = paths::contained(base, &segs) {
            let rest = joined
                .strip_prefix(base)
                .expect("joined path stays under its base");
            assert!(rest.components().all(|c| matches!(c, Component::Normal(_))));
            assert_eq!(rest.components().count(), segs.len(), "{text:?}");
        }
    }

    let uri = format!("{}://{tail}", SCHEMES[usize::from(scheme) % SCHEMES.len()]);
    if let Ok(contents) = registry().read_resource(&uri) {
        let rest = uri.split_once("://").map_or("", |(_, r)| r);
        assert!(!rest.contains(['\\', '\0', '%']), "accepted {uri:?}");
        // A query never names a file: only the part before `?` is a path.
        let path = rest.split_once('?').map_or(rest, |(p, _)| p);
        assert!(!path.split('/').any(|s| s == ".."), "accepted {uri:?}");
        for c in &contents {
            assert!(
                !c.text.as_deref().unwrap_or_default().contains(SECRET),
                "{uri:?} read outside the workspace"
            );
        }
    }
});

/// A workspace with in-tree changes and specs, a secret outside `openspec/`, and symlinks
/// pointing at it from places a URI can name.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("task-mcp-fuzz-uri-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let write = |rel: &str, text: &str| {
            let p: PathBuf = root.join(rel);
            fs::create_dir_all(p.parent().expect("fixture paths have a parent")).expect("mkdir");
            fs::write(p, text).expect("write fixture");
        };
        let secret = format!("# {SECRET}\n\n## Why\n{SECRET}\n\n## Purpose\n{SECRET}\n");
        for f in [
            "proposal.md",
            "tasks.md",
            "design.md",
            "spec.md",
            "specs/auth/spec.md",
        ] {
            write(&format!("outside/{f}"), &secret);
        }
        write(
            "openspec/changes/add-thing/proposal.md",
            "# Add thing\n\n## Why\nInside.\n",
        );
        write("openspec/changes/add-thing/tasks.md", "- [ ] 1.1 Inside\n");
        write(
            "openspec/changes/add-thing/specs/auth/spec.md",
            "## ADDED Requirements\n",
        );
        write(
            "openspec/specs/auth/spec.md",
            "# auth\n\n## Purpose\nInside.\n",
        );
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(root.join(target), root.join(at)).expect("symlink");
        };
        link("outside", "openspec/changes/evil-link");
        link("outside", "openspec/specs/evil");
        link("outside/specs", "openspec/changes/add-thing/specs/esc");
        link(
            "outside/proposal.md",
            "openspec/changes/add-thing/design.md",
        );
        let ws = Arc::new(Workspace::open(&root).expect("fixture workspace opens"));
        let mut reg = Registry::new();
        reg.add_resources(Arc::new(OpenSpecResources::new(ws, ToolOptions::default())));
        reg
    })
}
