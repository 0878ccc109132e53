//! Task counting with the 1.x task regex (`task-progress.js`), and the task-file lint that
//! `validate` reports as warnings.

use std::sync::LazyLock;

use regex::Regex;

/// Task progress of a change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskProgress {
    /// Lines that match the task regex.
    pub total: usize,
    /// Those whose marker, lowercased, is `x`.
    pub completed: usize,
}

/// One task line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLine {
    /// Checked with `x`/`X`.
    pub done: bool,
    /// The text after the checkbox, trimmed.
    pub description: String,
}

/// Parses one line as a task, if it is one.
///
/// The CLI's pattern is
/// `^\s*(?:[-*+]|\d{1,9}[.)])\s*\[(?:\s*([^\]\s]?)\s*\](?![([])|\s+\])\s*(.*)`; the regex crate
/// has no look-ahead, so the `(?![([])` guard is checked by hand after a match.
pub fn parse_task_line(line: &str) -> Option<TaskLine> {
    if let Some(c) = TASK_MARKED.captures(line) {
        let after = c.get(0).map_or("", |m| &line[m.end()..]);
        if !after.starts_with(['(', '[']) {
            let marker = c.get(1).map_or("", |m| m.as_str());
            let rest = after.trim_start_matches(char::is_whitespace);
            return Some(TaskLine {
                done: marker.to_lowercase() == "x",
                description: super::delta::js_trim(rest).to_string(),
            });
        }
    }
    // The second alternative, `\s+\]`, has no look-ahead and no marker.
    TASK_BLANK.captures(line).map(|c| TaskLine {
        done: false,
        description: super::delta::js_trim(c.get(1).map_or("", |m| m.as_str())).to_string(),
    })
}

/// Counts tasks over every line of `content` (fences are not skipped, as in the CLI).
pub fn count_tasks(content: &str) -> TaskProgress {
    let mut p = TaskProgress::default();
    for line in content.split('\n') {
        if let Some(t) = parse_task_line(line) {
            p.total += 1;
            if t.done {
                p.completed += 1;
            }
        }
    }
    p
}

/// `No tasks`, `✓ Complete` or `<c>/<t> tasks`.
pub fn format_status(p: TaskProgress) -> String {
    if p.total == 0 {
        "No tasks".into()
    } else if p.completed == p.total {
        "✓ Complete".into()
    } else {
        format!("{}/{} tasks", p.completed, p.total)
    }
}

/// `no-tasks`, `complete` or `in-progress` (the `list --json` status).
pub fn list_status(p: TaskProgress) -> &'static str {
    if p.total == 0 {
        "no-tasks"
    } else if p.completed == p.total {
        "complete"
    } else {
        "in-progress"
    }
}

/// A task-file warning: `(line, message)`.
pub type TaskLint = (usize, String);

/// The "0 tasks" warning: no checkbox anywhere, but some list item (outside fences, comments and
/// front matter, indented less than four columns).
pub fn missing_checkbox_lint(content: &str) -> Option<TaskLint> {
    if content.split('\n').any(|l| parse_task_line(l).is_some()) {
        return None;
    }
    let lines: Vec<&str> = content.split('\n').collect();
    let mut index = skip_front_matter(&lines);
    let mut open: Option<(char, usize)> = None;
    let mut in_comment = false;
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if in_comment {
            if line.contains("-->") {
                in_comment = false;
            }
            continue;
        }
        if let Some(c) = CHECKBOX_FENCE.captures(line) {
            let run = &c[1];
            let marker = run.chars().next().unwrap_or('`');
            match open {
                None => open = Some((marker, run.len())),
                Some((m, len)) if m == marker && run.len() >= len && c[2].trim().is_empty() => {
                    open = None;
                }
                _ => {}
            }
            continue;
        }
        if open.is_some() {
            continue;
        }
        if line.trim_start().starts_with("<!--") {
            let after = line.find("<!--").map_or(0, |i| i + 4);
            if !line[after..].contains("-->") {
                in_comment = true;
            }
            continue;
        }
        if LIST_ITEM.is_match(line) && indent_columns(line) < 4 {
            return Some((index, ZERO_TASKS.to_string()));
        }
    }
    None
}

/// Task ids under the wrong `## N.` group, and duplicated ids (spec-driven only).
pub fn numbering_lints(content: &str) -> Vec<TaskLint> {
    let lines: Vec<&str> = content.split('\n').collect();
    if !lines.iter().any(|l| NUMBERED_GROUP.is_match(l)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut first: Vec<(String, usize)> = Vec::new();
    let mut group: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        if LEVEL_TWO.is_match(line) && !line.trim_start_matches(' ').starts_with("###") {
            group = NUMBERED_GROUP.captures(line).map(|c| c[1].to_string());
        }
        let Some(current) = &group else { continue };
        let Some(task) = parse_task_line(line) else {
            continue;
        };
        let Some(c) = TASK_ID.captures(&task.description) else {
            continue;
        };
        let id = c[1].to_string();
        let after = &task.description[c[1].len()..];
        if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            continue;
        }
        let task_group = id.split('.').next().unwrap_or("").to_string();
        let strip = |s: &str| {
            let t = s.trim_start_matches('0');
            if t.is_empty() {
                "0".to_string()
            } else {
                t.to_string()
            }
        };
        if strip(&task_group) != strip(current) {
            out.push((i + 1, format!("Task \"{id}\" is under group {current}, but its leading number points to group {task_group}. Move it to group {task_group} or renumber it.")));
        }
        if let Some((_, l)) = first.iter().find(|(x, _)| *x == id) {
            out.push((
                i + 1,
                format!("Task ID \"{id}\" is duplicated; it was first declared on line {l}."),
            ));
        } else {
            first.push((id, i + 1));
        }
    }
    out
}

fn skip_front_matter(lines: &[&str]) -> usize {
    let first = lines
        .first()
        .map(|l| l.trim_start_matches('\u{feff}').trim_end())
        .unwrap_or("");
    if !FRONT_MATTER.is_match(first) {
        return 0;
    }
    for (i, l) in lines.iter().enumerate().skip(1) {
        if FRONT_MATTER.is_match(l.trim_end()) {
            return i + 1;
        }
    }
    0
}

fn indent_columns(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col += 4 - (col % 4),
            _ => break,
        }
    }
    col
}

fn re(p: &str) -> Regex {
    // unwrap: literal patterns, exercised by the unit tests.
    Regex::new(p).unwrap()
}

const ZERO_TASKS: &str = "This change counts as 0 tasks: no line in its tracked task files is a checkbox, so \"openspec list\" and \"openspec status\" report no work and \"openspec archive\" has nothing to flag as incomplete. Write each task as \"- [ ] 1.1 Description\".";

static TASK_MARKED: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*(?:[-*+]|\d{1,9}[.)])\s*\[\s*([^\]\s]?)\s*\]"));
static TASK_BLANK: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*(?:[-*+]|\d{1,9}[.)])\s*\[\s+\]\s*(.*)"));
static LIST_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+\S"));
static CHECKBOX_FENCE: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}(`{3,}|~{3,})(.*)"));
static FRONT_MATTER: LazyLock<Regex> = LazyLock::new(|| re(r"^-{3}\s*$"));
static LEVEL_TWO: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}##(?:[ \t]+|[ \t]*\r?$)"));
static NUMBERED_GROUP: LazyLock<Regex> =
    LazyLock::new(|| re(r"^ {0,3}##[ \t]+(\d+)\.(?:[ \t]|\r?$)"));
static TASK_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d+(?:\.\d+)+(?:[A-Za-z]+)?)"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_case_08a_counts_four_of_eight() {
        let text = "- [x] a\n  - [x] nested\n  - [ ] nested open\n* [X] star\n+ [ ] plus\n1. [x] num\n- [~] tilde\n- [] empty\n- [link](url)\n- [A](u)\n";
        assert_eq!(
            count_tasks(text),
            TaskProgress {
                total: 8,
                completed: 4
            }
        );
    }

    #[test]
    fn task_line_variants() {
        let cases = [
            ("- [ ] a", Some(false)),
            ("- [ x ] a", Some(true)),
            ("1) [x] a", Some(true)),
            ("-[x]a", Some(true)),
            ("- [x](url)", None),
            ("- [ab] a", None),
            ("text [x]", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_task_line(line).map(|t| t.done), want, "{line}");
        }
    }

    #[test]
    fn zero_task_lint_needs_a_list_item_outside_fences() {
        assert!(missing_checkbox_lint("# T\n- item\n").is_some());
        assert!(missing_checkbox_lint("# T\n```\n- item\n```\n").is_none());
        assert!(missing_checkbox_lint("- [ ] ok\n").is_none());
    }

    #[test]
    fn numbering_lint_flags_wrong_group_and_duplicates() {
        let t = "## 1. A\n- [ ] 1.1 x\n- [ ] 2.1 y\n## 2. B\n- [ ] 1.1 z\n";
        let l = numbering_lints(t);
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[2].1,
            "Task ID \"1.1\" is duplicated; it was first declared on line 2."
        );
    }
}
