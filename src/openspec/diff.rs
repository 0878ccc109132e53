//! A unified diff of two texts, line by line, for archive previews (`change_archive` with
//! `dryRun`): what `diff -u` would print, with three lines of context.
//!
//! Lines common to both ends are set aside first; the rest is aligned by a longest common
//! subsequence. When the differing middle is too large for that table
//! ([`MAX_TABLE_CELLS`]), it is shown as removed and added whole: still a correct diff, only a
//! longer one.

use std::fmt::Write as _;

/// Context lines around each change.
pub const CONTEXT_LINES: usize = 3;
/// Largest LCS table (lines of the old middle times lines of the new middle) built.
pub const MAX_TABLE_CELLS: usize = 4_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// The unified diff turning `old` into `new`, headed `--- a/<old_label>` / `+++ b/<new_label>`
/// (`/dev/null` for a side that is `None`). Empty when the texts are equal.
pub fn unified(path: &str, old: Option<&str>, new: Option<&str>) -> String {
    let a: Vec<&str> = old.map(split_lines).unwrap_or_default();
    let b: Vec<&str> = new.map(split_lines).unwrap_or_default();
    if old == new {
        return String::new();
    }
    let ops = align(&a, &b);
    let mut out = String::new();
    let from = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    let to = if new.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".into()
    };
    let _ = writeln!(out, "--- {from}\n+++ {to}");
    // Positions (in `ops`) of changed lines, grouped into hunks with their context.
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i] != Op::Same).collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT_LINES);
        let mut end = changed[i];
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT_LINES + 1 {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT_LINES + 1).min(ops.len());
        hunk(&mut out, &ops, &a, &b, start, end);
    }
    out
}

/// Lines with their endings, so a missing final newline or a CRLF shows.
fn split_lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

fn align(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops = vec![Op::Same; prefix];
    if ma.len().saturating_mul(mb.len()) > MAX_TABLE_CELLS {
        ops.extend(std::iter::repeat_n(Op::Removed, ma.len()));
        ops.extend(std::iter::repeat_n(Op::Added, mb.len()));
    } else {
        ops.extend(lcs(ma, mb));
    }
    ops.extend(std::iter::repeat_n(Op::Same, suffix));
    ops
}

/// The edit script of a longest common subsequence: removals before additions at each step.
fn lcs(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    // len[i][j]: LCS length of a[i..] and b[j..].
    let mut len = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i * (m + 1) + j] = if a[i] == b[j] {
                len[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                len[(i + 1) * (m + 1) + j].max(len[i * (m + 1) + j + 1])
            };
        }
    }
    let mut ops = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same);
            i += 1;
            j += 1;
        } else if j == m || (i < n && len[(i + 1) * (m + 1) + j] >= len[i * (m + 1) + j + 1]) {
            ops.push(Op::Removed);
            i += 1;
        } else {
            ops.push(Op::Added);
            j += 1;
        }
    }
    ops
}

fn hunk(out: &mut String, ops: &[Op], a: &[&str], b: &[&str], start: usize, end: usize) {
    // Line numbers (0-based) in each text where `ops[start]` falls.
    let a0 = ops[..start].iter().filter(|o| **o != Op::Added).count();
    let b0 = ops[..start].iter().filter(|o| **o != Op::Removed).count();
    let a_len = ops[start..end].iter().filter(|o| **o != Op::Added).count();
    let b_len = ops[start..end]
        .iter()
        .filter(|o| **o != Op::Removed)
        .count();
    let at = |first: usize, len: usize| if len == 0 { first } else { first + 1 };
    let _ = writeln!(
        out,
        "@@ -{},{a_len} +{},{b_len} @@",
        at(a0, a_len),
        at(b0, b_len)
    );
    let (mut i, mut j) = (a0, b0);
    for op in &ops[start..end] {
        let (mark, line) = match op {
            Op::Same => {
                i += 1;
                j += 1;
                (' ', a[i - 1])
            }
            Op::Removed => {
                i += 1;
                ('-', a[i - 1])
            }
            Op::Added => {
                j += 1;
                ('+', b[j - 1])
            }
        };
        out.push(mark);
        out.push_str(line.trim_end_matches('\n'));
        out.push('\n');
        if !line.ends_with('\n') {
            out.push_str("\\ No newline at end of file\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a unified diff to `old` (the test's own patcher), to check what `unified` prints.
    fn patch(old: &str, diff: &str) -> String {
        let a: Vec<&str> = split_lines(old);
        let mut out = String::new();
        let mut next = 0;
        // Not `lines()`: it would eat the `\r` of a CRLF line.
        let mut lines = diff
            .split('\n')
            .filter(|l| !l.is_empty())
            .skip(2)
            .peekable();
        while let Some(h) = lines.next() {
            let first: usize = h[4..].split([',', ' ']).next().unwrap().parse().unwrap();
            let start = first.saturating_sub(1);
            for l in &a[next..start] {
                out.push_str(l);
            }
            next = start;
            while let Some(l) = lines.peek() {
                if l.starts_with("@@") {
                    break;
                }
                let l = lines.next().unwrap();
                let eol = if lines.peek() == Some(&"\\ No newline at end of file") {
                    lines.next();
                    ""
                } else {
                    "\n"
                };
                match &l[..1] {
                    " " => {
                        out.push_str(a[next]);
                        next += 1;
                    }
                    "-" => next += 1,
                    _ => {
                        out.push_str(&l[1..]);
                        out.push_str(eol);
                    }
                }
            }
        }
        for l in &a[next..] {
            out.push_str(l);
        }
        out
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("x", Some("a\n"), Some("a\n")), "");
    }

    #[test]
    fn one_changed_line_shows_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
        assert_eq!(
            unified("s.md", Some(old), Some(new)),
            "--- a/s.md\n+++ b/s.md\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn a_new_and_a_deleted_file_diff_against_dev_null() {
        assert_eq!(
            unified("n.md", None, Some("a\nb\n")),
            "--- /dev/null\n+++ b/n.md\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
        assert_eq!(
            unified("n.md", Some("a\n"), None),
            "--- a/n.md\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-a\n"
        );
    }

    #[test]
    fn far_apart_changes_are_separate_hunks_and_every_diff_patches_back() {
        let old: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 3\n", "line three\n")
            .replace("line 30\n", "")
            .replace("line 39\n", "line 39\nline 40")
            + "";
        let d = unified("f", Some(&old), Some(&new));
        assert_eq!(d.matches("@@ -").count(), 3, "{d}");
        assert!(d.contains("\\ No newline at end of file"), "{d}");
        assert_eq!(patch(&old, &d), new);
        for (o, n) in [
            ("a\nb\nc\n", "c\nb\na\n"),
            ("x\n", "x\r\n"),
            ("", "a\n"),
            ("a\nb\n", "a\nc\nb\nd\n"),
        ] {
            assert_eq!(
                patch(o, &unified("f", Some(o), Some(n))),
                n,
                "{o:?} -> {n:?}"
            );
        }
    }

    #[test]
    fn a_middle_too_large_for_the_table_is_replaced_whole() {
        let old: String = (0..2_100).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..2_100).map(|i| format!("b{i}\n")).collect();
        let d = unified("f", Some(&old), Some(&new));
        assert_eq!(patch(&old, &d), new);
    }
}
