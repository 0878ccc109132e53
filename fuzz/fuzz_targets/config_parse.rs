//! Configuration parsing from a JSON config file, an environment map and flags: no input panics,
//! and every error names the setting at fault (a known setting, `--config` for the file itself,
//! or the unknown name exactly as given) with a reason.
//!
//! Input: text, one directive a line: `file <text>` (the config file, verbatim), `set NAME=v`
//! (a file entry; the file is built as a JSON object when no `file` line is given),
//! `env NAME=v`, `flag NAME=v`, `tty` (stderr is a terminal).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use task_mcp::config::{Config, Raw, SETTINGS};

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut raw_file = None;
    let mut entries = Map::new();
    let mut env = HashMap::new();
    let mut flags = Vec::new();
    let mut terminal = false;
    for line in text.split('\n') {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
        match verb {
            "file" => raw_file = Some(rest.to_string()),
            "set" => {
                entries.insert(k.to_string(), Value::String(v.to_string()));
            }
            "env" => {
                env.insert(k.to_string(), v.to_string());
            }
            "flag" => flags.push((k.to_string(), v.to_string())),
            "tty" => terminal = true,
            _ => {}
        }
    }
    let file =
        raw_file.or_else(|| (!entries.is_empty()).then(|| Value::Object(entries).to_string()));
    let known = |s: &str| SETTINGS.iter().any(|st| st.name == s);
    let raw = match Raw::merge(file.as_deref(), &|n| env.get(n).cloned(), &flags) {
        Ok(raw) => raw,
        Err(e) => {
            assert!(!e.reason.is_empty());
            let in_file = file
                .as_deref()
                .and_then(|f| serde_json::from_str::<Map<String, Value>>(f).ok())
                .is_some_and(|m| m.contains_key(&e.setting));
            let in_flags = flags.iter().any(|(n, _)| *n == e.setting);
            assert!(
                e.setting == "--config" || in_file || in_flags,
                "merge error names {:?}, which the input never gave",
                e.setting
            );
            return;
        }
    };
    if let Err(e) = Config::from_raw(&raw, terminal) {
        assert!(
            known(&e.setting),
            "error names {:?}, not a setting",
            e.setting
        );
        assert!(!e.reason.is_empty());
    }
});
