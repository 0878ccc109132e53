//! What the real `openspec` CLI (npm `@fission-ai/openspec@1.13.2`) did, recorded once per call,
//! so that `cargo test` compares the engine with it on a machine without the CLI.
//!
//! A test calls [`cli`] with a fixture key where it would run the CLI. Each key is one file,
//! `tests/fixtures/openspec/<key>.json`: the argv, the `openspec/` tree before the call, the exit
//! code, the `--json` output and the tree after. The tree is kept as JSON rather than as folders
//! because git drops empty folders, and the folders are part of what is compared.
//!
//! - In `cargo test` (the `it` binary) the fixture stands in for the CLI: the tree the test built
//!   must equal the recorded `before` (else the fixture is stale), the recorded changes are applied
//!   to the folder, and the recorded exit code and output are returned.
//! - In the live tier (the `live` binary, `cargo test --features live --test live`) the real CLI
//!   runs, and its exit code, output and trees must equal the fixture: a stale fixture fails there
//!   with a diff. With `TASK_MCP_RECORD_GOLDEN=1` it writes the fixture instead
//!   (`.ci/record-openspec-golden.sh`).
//!
//! Recorded values are normalised so that a fixture holds on any day and in any folder: the
//! workspace path becomes `<ROOT>`, today's date `{DATE}`, a `.creating-<pid>-` folder name
//! `.creating-{PID}-`, the CLI's `durationMs` 0 and its `lastModified` `{TIME}`. Our own
//! bookkeeping files (names starting with `.`, and `receipt.json`) carry pids, nonces and clock
//! times, so only their presence is compared, never their bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The fixture folder.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openspec")
}

/// Runs `openspec ARGS` in `root`, or replays it from the fixture `key` (see the module docs).
pub fn cli(key: &str, root: &Path, args: &[&str]) -> (i32, Value) {
    let path = dir().join(format!("{key}.json"));
    let before = tree(root);
    if cfg!(feature = "live") {
        let (rc, out) = crate::openspec_cli::run_cli(root, args);
        let after = tree(root);
        let got = json!({
            "argv": args,
            "before": normalize_tree(&before, root),
            "exit": rc,
            "output": normalize_value(&out, root),
            "after": normalize_tree(&after, root),
        });
        if std::env::var_os("TASK_MCP_RECORD_GOLDEN").is_some() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            fs::write(&path, text).unwrap();
        } else {
            let want = load(&path);
            let diff = differences(&want, &got);
            assert!(
                diff.is_empty(),
                "fixture {key} is stale: the real CLI now does otherwise:\n{}\n\
                 re-record with: bash .ci/record-openspec-golden.sh",
                diff.join("\n")
            );
        }
        return (rc, out);
    }
    let want = load(&path);
    assert_eq!(
        want["argv"],
        json!(args),
        "fixture {key} was recorded for other arguments; re-record with \
         bash .ci/record-openspec-golden.sh"
    );
    let now = normalize_tree(&before, root);
    let diff = tree_differences("before", &want["before"], &now);
    assert!(
        diff.is_empty(),
        "fixture {key} is stale: the test now builds another tree than the one recorded:\n{}\n\
         re-record with: bash .ci/record-openspec-golden.sh",
        diff.join("\n")
    );
    apply(root, &before, &want["before"], &want["after"]);
    let rc = want["exit"].as_i64().expect("exit code") as i32;
    (rc, denormalize_value(&want["output"], root))
}

/// One entry of a tree: a file's text, a folder, or a symlink's target.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    File(String),
    Dir,
    Link(String),
}

/// Every entry under `root/openspec`, by path relative to `root` (folders end in `/`).
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let target = fs::read_link(e.path()).unwrap();
                out.insert(rel, Entry::Link(target.to_string_lossy().into_owned()));
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Entry::Dir);
                walk(root, &e.path(), out);
            } else {
                let bytes = fs::read(e.path()).unwrap();
                let text = String::from_utf8(bytes)
                    .unwrap_or_else(|_| panic!("{rel}: fixtures hold UTF-8 text only"));
                out.insert(rel, Entry::File(text));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &root.join("openspec"), &mut out);
    out
}

/// Today's date as the CLI (TZ=UTC) and as this process's local zone write it.
fn todays() -> Vec<String> {
    let utc = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let local = jiff::Zoned::now().date();
    let mut v = vec![utc.to_string(), local.to_string()];
    v.dedup();
    v
}

fn normalize_text(s: &str, root: &Path) -> String {
    let mut s = s.replace(root.to_string_lossy().as_ref(), "<ROOT>");
    for d in todays() {
        s = s.replace(&d, "{DATE}");
    }
    if let Some(i) = s.find(".creating-") {
        let rest = &s[i + ".creating-".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            s = format!("{}.creating-{{PID}}{}", &s[..i], &rest[digits..]);
        }
    }
    s
}

fn denormalize_text(s: &str, root: &Path) -> String {
    // Our engine names archive folders by the local date, so that is what a replay writes.
    s.replace("{DATE}", &jiff::Zoned::now().date().to_string())
        .replace("<ROOT>", root.to_string_lossy().as_ref())
        .replace("{TIME}", &jiff::Timestamp::now().to_string())
}

/// Bookkeeping files whose bytes vary from run to run (see the module docs).
fn volatile(path: &str) -> bool {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    name.starts_with('.') || name == "receipt.json"
}

fn normalize_tree(t: &BTreeMap<String, Entry>, root: &Path) -> Value {
    let mut m = Map::new();
    for (k, e) in t {
        let v = match e {
            Entry::Dir => Value::Null,
            Entry::File(text) => Value::String(normalize_text(text, root)),
            Entry::Link(target) => json!({ "symlink": normalize_text(target, root) }),
        };
        m.insert(normalize_text(k, root), v);
    }
    Value::Object(m)
}

fn normalize_value(v: &Value, root: &Path) -> Value {
    match v {
        Value::String(s) => Value::String(normalize_text(s, root)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize_value(x, root)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| match k.as_str() {
                    // How long the CLI took: a different number every run.
                    "durationMs" => (k.clone(), json!(0)),
                    // A file's modification time, as the clock read it.
                    "lastModified" => (k.clone(), json!("{TIME}")),
                    _ => (k.clone(), normalize_value(x, root)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn denormalize_value(v: &Value, root: &Path) -> Value {
    match v {
        Value::String(s) => Value::String(denormalize_text(s, root)),
        Value::Array(a) => Value::Array(a.iter().map(|x| denormalize_value(x, root)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), denormalize_value(x, root)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn load(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; record it with: bash .ci/record-openspec-golden.sh",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The differences between two normalised trees, one line each; volatile files by presence only.
fn tree_differences(what: &str, want: &Value, got: &Value) -> Vec<String> {
    let (Some(w), Some(g)) = (want.as_object(), got.as_object()) else {
        return vec![format!("{what}: not a tree")];
    };
    let keys: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (w.get(k), g.get(k)) {
            (Some(_), None) => out.push(format!("{what}: {k} recorded, now absent")),
            (None, Some(_)) => out.push(format!("{what}: {k} now present, not recorded")),
            (Some(a), Some(b)) if a != b && !volatile(k) => {
                out.push(format!("{what}: {k}\n  recorded: {a}\n  now:      {b}"))
            }
            _ => {}
        }
    }
    out
}

/// Where a live run differs from the fixture.
fn differences(want: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["argv", "exit", "output"] {
        if want[field] != got[field] {
            out.push(format!(
                "{field}\n  recorded: {}\n  now:      {}",
                want[field], got[field]
            ));
        }
    }
    out.extend(tree_differences("before", &want["before"], &got["before"]));
    out.extend(tree_differences("after", &want["after"], &got["after"]));
    out
}

/// Turns the folder from the recorded `before` into the recorded `after`: files the CLI moved are
/// moved (keeping their real bytes, which matters for volatile ones), the rest written or removed.
fn apply(root: &Path, actual: &BTreeMap<String, Entry>, before: &Value, after: &Value) {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        panic!("fixture trees must be objects");
    };
    if a == b {
        return;
    }
    // The real paths behind the normalised ones of the recorded `before`.
    let real: BTreeMap<String, &String> = actual
        .keys()
        .map(|k| (normalize_text(k, root), k))
        .collect();
    let mut removed: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    for (k, v) in a {
        if b.get(k) == Some(v) {
            continue;
        }
        let dest = root.join(denormalize_text(k, root));
        match v {
            Value::Null => fs::create_dir_all(&dest).unwrap(),
            Value::Object(o) => {
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                let target = denormalize_text(o["symlink"].as_str().unwrap(), root);
                std::os::unix::fs::symlink(target, &dest).unwrap();
            }
            Value::String(text) => {
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                let source = if b.contains_key(k) {
                    None
                } else {
                    moved_from(k, v, &removed, b)
                };
                match source.and_then(|s| real.get(s)) {
                    Some(src) => {
                        fs::copy(root.join(src), &dest).unwrap();
                    }
                    None => fs::write(&dest, denormalize_text(text, root)).unwrap(),
                }
                if let Some(s) = source {
                    removed.retain(|r| *r != s);
                    let src = real.get(s).map(|r| root.join(r));
                    if let Some(src) = src {
                        let _ = fs::remove_file(src);
                    }
                }
            }
            other => panic!("{k}: unexpected fixture entry {other}"),
        }
    }
    // Deepest first, so folders are empty when their turn comes.
    removed.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in removed {
        let Some(path) = real.get(k).map(|r| root.join(r)) else {
            continue;
        };
        if k.ends_with('/') {
            let _ = fs::remove_dir_all(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}

/// The removed file that `added` most likely is: same name and (unless volatile) same text,
/// sharing the longest run of trailing path components.
fn moved_from<'a>(
    added: &str,
    text: &Value,
    removed: &[&'a String],
    before: &Map<String, Value>,
) -> Option<&'a String> {
    let name = |p: &str| p.rsplit('/').next().unwrap_or("").to_owned();
    let shared = |x: &str, y: &str| {
        x.rsplit('/')
            .zip(y.rsplit('/'))
            .take_while(|(a, b)| a == b)
            .count()
    };
    removed
        .iter()
        .filter(|r| !r.ends_with('/') && name(r) == name(added))
        .filter(|r| volatile(r) || before.get(r.as_str()) == Some(text))
        .max_by_key(|r| shared(r, added))
        .copied()
}
