//! Delta spec parsing, as OpenSpec 1.13.2 reads `changes/<id>/specs/<cap>/spec.md`.
//!
//! Every function here is pure: it takes text and returns structure. The grammar (fence mask,
//! `## ` sections merged per title, `### Requirement:` blocks, REMOVED and RENAMED bullet forms,
//! unpaired renames) follows the CLI's `requirement-blocks.js` line for line, because archive and
//! validate must agree with the real tool byte for byte.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// One `### Requirement:` block: its header line, normalized name and raw text (trimEnd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequirementBlock {
    /// The header line exactly as written.
    pub header_line: String,
    /// The name: the capture with a closing `#` run removed, trimmed. Case-sensitive.
    pub name: String,
    /// The header plus its body lines, joined with `\n`, trailing whitespace trimmed.
    pub raw: String,
}

/// A `FROM:`/`TO:` pair of a RENAMED section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rename {
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
}

/// A RENAMED line that never formed a pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpairedRename {
    /// `FROM` or `TO`: the side that was present.
    pub side: &'static str,
    /// The name on that line.
    pub name: String,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A `### Requirement:` outside the four delta sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The requirement name.
    pub name: String,
    /// The `## ` section it sits under, if any.
    pub section: Option<String>,
    /// 1-based line number.
    pub line: usize,
}

/// A non-requirement `### ` heading inside ADDED/MODIFIED (reported as INFO by validate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedHeader {
    /// The heading text after `### `.
    pub header: String,
    /// The section title as the author first spelled it.
    pub section: String,
    /// 1-based line number.
    pub line: usize,
}

/// Everything one delta file says, in document order within each section kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaPlan {
    /// ADDED blocks.
    pub added: Vec<RequirementBlock>,
    /// MODIFIED blocks.
    pub modified: Vec<RequirementBlock>,
    /// REMOVED names (header or bullet form).
    pub removed: Vec<String>,
    /// REMOVED header-form blocks (used by `show`).
    pub removed_blocks: Vec<RequirementBlock>,
    /// RENAMED pairs.
    pub renamed: Vec<Rename>,
    /// RENAMED lines that never paired, sorted by line.
    pub unpaired_renames: Vec<UnpairedRename>,
    /// Requirements outside delta sections.
    pub orphans: Vec<Orphan>,
    /// Non-requirement `###` headings in ADDED/MODIFIED, sorted by line.
    pub skipped_headers: Vec<SkippedHeader>,
    /// Which of ADDED, MODIFIED, REMOVED, RENAMED sections exist.
    pub section_presence: [bool; 4],
}

/// The parts of a main spec around its `## Requirements` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequirementsSection {
    /// Text above the header (see the CLI for its exact trailing newline rules).
    pub before: String,
    /// The header line, verbatim.
    pub header_line: String,
    /// Lines between the header and the first requirement, trimEnd.
    pub preamble: String,
    /// The requirement blocks in order.
    pub blocks: Vec<RequirementBlock>,
    /// Everything from the next `## ` line to EOF (with a leading `\n`).
    pub after: String,
}

impl DeltaPlan {
    /// The number of operations of every kind.
    pub fn operation_count(&self) -> usize {
        self.added.len() + self.modified.len() + self.removed.len() + self.renamed.len()
    }
}

/// Strips a UTF-8 BOM and turns CRLF and CR into LF.
pub fn normalize_line_endings(content: &str) -> String {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    crlf_to_lf(content)
}

/// CRLF and lone CR to LF (no BOM handling).
pub fn crlf_to_lf(content: &str) -> String {
    if !content.contains('\r') {
        return content.to_string();
    }
    content.replace("\r\n", "\n").replace('\r', "\n")
}

/// Marks each line that belongs to a fenced code block, fence lines included.
pub fn fence_mask(lines: &[&str]) -> Vec<bool> {
    let mut mask = vec![false; lines.len()];
    let mut active: Option<(char, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        match active {
            None => {
                if let Some(c) = FENCE_OPEN.captures(line) {
                    let run = &c[1];
                    active = run.chars().next().map(|ch| (ch, run.len()));
                    mask[i] = true;
                }
            }
            Some((ch, len)) => {
                mask[i] = true;
                if let Some(c) = FENCE_CLOSE.captures(line) {
                    let run = &c[1];
                    if run.starts_with(ch) && run.len() >= len {
                        active = None;
                    }
                }
            }
        }
    }
    mask
}

/// A requirement name: the closing `#` run (after a space or tab) removed, then trimmed.
pub fn normalize_name(name: &str) -> String {
    js_trim(&CLOSING_HASHES.replace(name, "")).to_string()
}

/// The typo-detection fold: normalized, lowercased, whitespace runs collapsed to one space.
pub fn fold_name(name: &str) -> String {
    WHITESPACE_RUN
        .replace_all(&normalize_name(name).to_lowercase(), " ")
        .into_owned()
}

/// True when `line` is a `### Requirement:` header (case-insensitive).
pub fn is_requirement_header(line: &str) -> bool {
    REQUIREMENT_HEADER.is_match(line)
}

/// The normalized name of a `### Requirement:` header line.
pub fn requirement_header_name(line: &str) -> Option<String> {
    REQUIREMENT_HEADER
        .captures(line)
        .map(|c| normalize_name(&c[1]))
}

/// Parses a delta file.
pub fn parse_delta(content: &str) -> DeltaPlan {
    let normalized = normalize_line_endings(content);
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mask = fence_mask(&lines);
    let sections = split_sections(&lines, &mask);
    let mut plan = DeltaPlan::default();
    let lookups: Vec<(String, Vec<&Section<'_>>)> = DELTA_TITLES
        .iter()
        .map(|t| {
            let found: Vec<&Section<'_>> = sections
                .iter()
                .filter(|s| s.title.to_lowercase() == t.to_lowercase())
                .collect();
            let title = found
                .first()
                .map(|s| s.title.to_string())
                .unwrap_or_else(|| (*t).to_string());
            (title, found)
        })
        .collect();
    for (i, (_, found)) in lookups.iter().enumerate() {
        plan.section_presence[i] = !found.is_empty();
    }
    let mut skipped = Vec::new();
    for body in &lookups[0].1 {
        let mut sink = (lookups[0].0.as_str(), body.start_line, &mut skipped);
        plan.added
            .extend(blocks_in_section(body.lines, body.mask, Some(&mut sink)));
    }
    for body in &lookups[1].1 {
        let mut sink = (lookups[1].0.as_str(), body.start_line, &mut skipped);
        plan.modified
            .extend(blocks_in_section(body.lines, body.mask, Some(&mut sink)));
    }
    for body in &lookups[2].1 {
        plan.removed.extend(removed_names(body.lines, body.mask));
    }
    for body in &lookups[2].1 {
        plan.removed_blocks
            .extend(blocks_in_section(body.lines, body.mask, None));
    }
    let mut unpaired = Vec::new();
    for body in &lookups[3].1 {
        plan.renamed.extend(renamed_pairs(
            body.lines,
            body.mask,
            body.start_line,
            &mut unpaired,
        ));
    }
    unpaired.sort_by_key(|u| u.line);
    skipped.sort_by_key(|s| s.line);
    plan.unpaired_renames = unpaired;
    plan.skipped_headers = skipped;
    plan.orphans = orphans(&lines, &mask);
    plan
}

/// Splits a main spec at its first non-fenced `## Requirements` heading.
pub fn extract_requirements_section(content: &str) -> RequirementsSection {
    let normalized = normalize_line_endings(content);
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mask = fence_mask(&lines);
    let header = lines
        .iter()
        .enumerate()
        .position(|(i, l)| !mask[i] && REQUIREMENTS_HEADER.is_match(l));
    let Some(header) = header else {
        // The CLI trims the raw (not normalized) content here.
        let before = js_trim_end(content);
        return RequirementsSection {
            before: if before.is_empty() {
                String::new()
            } else {
                format!("{before}\n\n")
            },
            header_line: "## Requirements".into(),
            preamble: String::new(),
            blocks: Vec::new(),
            after: "\n".into(),
        };
    };
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate().skip(header + 1) {
        if !mask[i] && TOP_LEVEL.is_match(line) {
            end = i;
            break;
        }
    }
    let before = lines[..header].join("\n");
    let body = &lines[header + 1..end];
    let body_mask = &mask[header + 1..end];
    let is_req = |i: usize| !body_mask[i] && REQUIREMENT_HEADER.is_match(body[i]);
    let is_top = |i: usize| !body_mask[i] && TOP_LEVEL.is_match(body[i]);
    let mut cursor = 0;
    let mut preamble = Vec::new();
    while cursor < body.len() && !is_req(cursor) {
        preamble.push(body[cursor]);
        cursor += 1;
    }
    let mut blocks = Vec::new();
    while cursor < body.len() {
        if !is_req(cursor) {
            cursor += 1;
            continue;
        }
        let header_line = body[cursor];
        let name = requirement_header_name(header_line).unwrap_or_default();
        cursor += 1;
        let mut buf = vec![header_line];
        while cursor < body.len() && !is_req(cursor) && !is_top(cursor) {
            buf.push(body[cursor]);
            cursor += 1;
        }
        blocks.push(RequirementBlock {
            header_line: header_line.to_string(),
            name,
            raw: js_trim_end(&buf.join("\n")).to_string(),
        });
    }
    let after = lines[end..].join("\n");
    RequirementsSection {
        before: if js_trim_end(&before).is_empty() {
            before
        } else {
            format!("{before}\n")
        },
        header_line: lines[header].to_string(),
        preamble: js_trim_end(&preamble.join("\n")).to_string(),
        blocks,
        after: if after.starts_with('\n') {
            after
        } else {
            format!("\n{after}")
        },
    }
}

/// Scenario names of a block: every non-fenced `#### ` heading, with closing `#`s and a
/// `Scenario:` prefix removed.
pub fn scenario_names(raw: &str) -> Vec<String> {
    let text = crlf_to_lf(raw);
    let lines: Vec<&str> = text.split('\n').collect();
    let mask = fence_mask(&lines);
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| !mask[*i] && SCENARIO_HEADER.is_match(l))
        .map(|(_, l)| {
            let s = SCENARIO_HEADER.replace(l, "");
            let s = CLOSING_HASHES.replace(&s, "");
            let s = SCENARIO_PREFIX.replace(&s, "");
            js_trim(&s).to_string()
        })
        .collect()
}

/// The scenario comparison of a MODIFIED block against the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioDiff {
    /// Current names the incoming block lacks (multiset).
    pub missing: Vec<String>,
    /// Incoming names the current block lacks (multiset).
    pub added: Vec<String>,
    /// Scenario count of the current block.
    pub current_count: usize,
    /// Scenario count of the incoming block.
    pub incoming_count: usize,
}

/// Compares scenario names in both directions, counting duplicates.
pub fn diff_scenarios(current_raw: &str, incoming_raw: &str) -> ScenarioDiff {
    let current = scenario_names(current_raw);
    let incoming = scenario_names(incoming_raw);
    fn unmatched(names: &[String], against: &[String]) -> Vec<String> {
        let mut left: HashMap<&str, usize> = HashMap::new();
        for n in against {
            *left.entry(n).or_default() += 1;
        }
        let mut out = Vec::new();
        for n in names {
            match left.get_mut(n.as_str()) {
                Some(c) if *c > 0 => *c -= 1,
                _ => out.push(n.clone()),
            }
        }
        out
    }
    ScenarioDiff {
        missing: unmatched(&current, &incoming),
        added: unmatched(&incoming, &current),
        current_count: current.len(),
        incoming_count: incoming.len(),
    }
}

/// The sentence archive and validate append when scenarios would be lost.
pub fn describe_scenario_balance(diff: &ScenarioDiff) -> String {
    let count = |n: usize| format!("{n} {}", if n == 1 { "scenario" } else { "scenarios" });
    let scale = format!(
        "The modified block has {}; the current spec has {}.",
        count(diff.incoming_count),
        count(diff.current_count)
    );
    if diff.added.is_empty() {
        return format!("{scale} It adds none.");
    }
    let listed: Vec<String> = diff
        .added
        .iter()
        .take(MAX_LISTED_ADDED_SCENARIOS)
        .map(|n| format!("\"{n}\""))
        .collect();
    let mut names = listed.join(", ");
    if diff.added.len() > MAX_LISTED_ADDED_SCENARIOS {
        names = format!(
            "{names} and {} more",
            diff.added.len() - MAX_LISTED_ADDED_SCENARIOS
        );
    }
    format!(
        "{scale} It adds {} not in the current spec: {names}.",
        count(diff.added.len())
    )
}

/// JS `String.prototype.trim`: Unicode white space plus the BOM.
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// JS `trimEnd`.
pub fn js_trim_end(s: &str) -> &str {
    s.trim_end_matches(is_js_space)
}

/// JS `trimStart`.
pub fn js_trim_start(s: &str) -> &str {
    s.trim_start_matches(is_js_space)
}

struct Section<'a> {
    title: &'a str,
    lines: &'a [&'a str],
    mask: &'a [bool],
    start_line: usize,
}

type SkipSink<'s> = (&'s str, usize, &'s mut Vec<SkippedHeader>);

fn split_sections<'a>(lines: &'a [&'a str], mask: &'a [bool]) -> Vec<Section<'a>> {
    let mut idx: Vec<(&'a str, usize)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if let Some(c) = SECTION.captures(line) {
            let title = c.get(1).map_or("", |m| m.as_str());
            idx.push((js_trim(title), i));
        }
    }
    let mut out = Vec::new();
    for (n, (title, i)) in idx.iter().enumerate() {
        let end = idx.get(n + 1).map_or(lines.len(), |x| x.1);
        out.push(Section {
            title,
            lines: &lines[i + 1..end],
            mask: &mask[i + 1..end],
            start_line: i + 2,
        });
    }
    out
}

fn blocks_in_section(
    lines: &[&str],
    mask: &[bool],
    mut skipped: Option<&mut SkipSink<'_>>,
) -> Vec<RequirementBlock> {
    let is_req = |i: usize| !mask[i] && REQUIREMENT_HEADER.is_match(lines[i]);
    let is_top = |i: usize| !mask[i] && TOP_LEVEL.is_match(lines[i]);
    let mut record = |i: usize| {
        if let Some((section, start, sink)) = skipped.as_mut() {
            if mask[i] {
                return;
            }
            if let Some(c) = H3.captures(lines[i])
                && !REQUIREMENT_HEADER.is_match(lines[i])
            {
                sink.push(SkippedHeader {
                    header: js_trim(&c[1]).to_string(),
                    section: (*section).to_string(),
                    line: *start + i,
                });
            }
        }
    };
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        while i < lines.len() && !is_req(i) {
            record(i);
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let header_line = lines[i];
        let name = requirement_header_name(header_line).unwrap_or_default();
        let mut buf = vec![header_line];
        i += 1;
        while i < lines.len() && !is_req(i) && !is_top(i) {
            record(i);
            buf.push(lines[i]);
            i += 1;
        }
        blocks.push(RequirementBlock {
            header_line: header_line.to_string(),
            name,
            raw: js_trim_end(&buf.join("\n")).to_string(),
        });
    }
    blocks
}

fn removed_names(lines: &[&str], mask: &[bool]) -> Vec<String> {
    let mut names = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if let Some(name) = requirement_header_name(line) {
            names.push(name);
        } else if let Some(c) = REMOVED_BULLET.captures(line) {
            names.push(normalize_name(&c[1]));
        }
    }
    names
}

fn renamed_pairs(
    lines: &[&str],
    mask: &[bool],
    start_line: usize,
    unpaired: &mut Vec<UnpairedRename>,
) -> Vec<Rename> {
    let mut pairs = Vec::new();
    let mut pending: Option<(String, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if let Some(c) = RENAME_FROM.captures(line) {
            if let Some((name, line)) = pending.take() {
                unpaired.push(UnpairedRename {
                    side: "FROM",
                    name,
                    line,
                });
            }
            pending = Some((normalize_name(&c[1]), start_line + i));
        } else if let Some(c) = RENAME_TO.captures(line) {
            let to = normalize_name(&c[1]);
            match pending.take() {
                None => unpaired.push(UnpairedRename {
                    side: "TO",
                    name: to,
                    line: start_line + i,
                }),
                Some((from, _)) => pairs.push(Rename { from, to }),
            }
        }
    }
    if let Some((name, line)) = pending {
        unpaired.push(UnpairedRename {
            side: "FROM",
            name,
            line,
        });
    }
    pairs
}

fn orphans(lines: &[&str], mask: &[bool]) -> Vec<Orphan> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if let Some(c) = SECTION.captures(line) {
            section = Some(js_trim(&c[1]).to_string());
            continue;
        }
        if let Some(s) = &section
            && DELTA_TITLES
                .iter()
                .any(|t| t.to_lowercase() == s.to_lowercase())
        {
            continue;
        }
        if let Some(name) = requirement_header_name(line) {
            out.push(Orphan {
                name,
                section: section.clone(),
                line: i + 1,
            });
        }
    }
    out
}

fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn re(pattern: &str) -> Regex {
    // unwrap: every pattern is a literal in this file, compiled by the unit tests.
    Regex::new(pattern).unwrap()
}

/// The four delta section titles, in ADDED, MODIFIED, REMOVED, RENAMED order.
pub const DELTA_TITLES: [&str; 4] = [
    "ADDED Requirements",
    "MODIFIED Requirements",
    "REMOVED Requirements",
    "RENAMED Requirements",
];
const MAX_LISTED_ADDED_SCENARIOS: usize = 3;

static FENCE_OPEN: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(`{3,}|~{3,})"));
static FENCE_CLOSE: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(`{3,}|~{3,})\s*$"));
static REQUIREMENT_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^###\s*Requirement:\s*(.+)\s*$"));
static CLOSING_HASHES: LazyLock<Regex> = LazyLock::new(|| re(r"[ \t]+#+[ \t]*$"));
static WHITESPACE_RUN: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));
static SECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^##\s+(.+)$"));
static TOP_LEVEL: LazyLock<Regex> = LazyLock::new(|| re(r"^##\s+"));
static REQUIREMENTS_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^##\s+Requirements\s*$"));
static H3: LazyLock<Regex> = LazyLock::new(|| re(r"^###\s+(.+?)\s*$"));
static REMOVED_BULLET: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*[-*+]\s*`?###\s*Requirement:\s*(.+?)`?\s*$"));
static RENAME_FROM: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*[-*+]?\s*FROM:\s*`?###\s*Requirement:\s*(.+?)`?\s*$"));
static RENAME_TO: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*[-*+]?\s*TO:\s*`?###\s*Requirement:\s*(.+?)`?\s*$"));
/// A scenario heading: any `#### ` line.
pub static SCENARIO_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"^####\s+"));
static SCENARIO_PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^Scenario:\s*"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_mask_hides_lines_until_a_long_enough_closer() {
        let lines = ["a", "````", "## x", "```", "````", "b"];
        assert_eq!(
            fence_mask(&lines),
            vec![false, true, true, true, true, false]
        );
    }

    #[test]
    fn names_lose_closing_hash_runs_but_keep_c_sharp() {
        let cases = [
            ("Foo ###", "Foo"),
            ("C#", "C#"),
            ("  Spaced  ", "Spaced"),
            ("Bar\t#", "Bar"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input), want, "{input}");
        }
        assert_eq!(fold_name("Two   Words ##"), "two words");
    }

    #[test]
    fn repeated_sections_merge_in_document_order() {
        let text = "## ADDED Requirements\n### Requirement: A\nx\n## Notes\n## added requirements\n### Requirement: B\ny\n";
        let plan = parse_delta(text);
        let names: Vec<_> = plan.added.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn removed_accepts_headers_and_every_bullet_marker() {
        let text = "## REMOVED Requirements\n### Requirement: A\n- `### Requirement: B`\n* ### Requirement: C\n+ `### Requirement: D`\n```\n### Requirement: E\n```\n";
        assert_eq!(parse_delta(text).removed, ["A", "B", "C", "D"]);
    }

    #[test]
    fn renames_pair_and_report_unpaired_lines() {
        let text = "## RENAMED Requirements\n- FROM: `### Requirement: A`\n- TO: `### Requirement: B`\n- FROM: `### Requirement: C`\n- FROM: `### Requirement: D`\n- TO: `### Requirement: E`\nTO: ### Requirement: F\n";
        let plan = parse_delta(text);
        assert_eq!(
            plan.renamed,
            [
                Rename {
                    from: "A".into(),
                    to: "B".into()
                },
                Rename {
                    from: "D".into(),
                    to: "E".into()
                }
            ]
        );
        let un: Vec<_> = plan
            .unpaired_renames
            .iter()
            .map(|u| (u.side, u.name.as_str(), u.line))
            .collect();
        assert_eq!(un, [("FROM", "C", 4), ("TO", "F", 7)]);
    }

    #[test]
    fn requirements_section_keeps_after_and_preamble() {
        let spec = "# T\n\n## Purpose\nP\n\n## Requirements\npre\n\n### Requirement: A\nbody\n\n## Notes\nn\n";
        let s = extract_requirements_section(spec);
        assert_eq!(s.before, "# T\n\n## Purpose\nP\n\n");
        assert_eq!(s.preamble, "pre");
        assert_eq!(s.blocks.len(), 1);
        assert_eq!(s.blocks[0].raw, "### Requirement: A\nbody");
        assert_eq!(s.after, "\n## Notes\nn\n");
    }

    #[test]
    fn scenario_diff_counts_duplicates() {
        let cur =
            "### Requirement: A\n#### Scenario: X\n- a\n#### Scenario: X\n- b\n#### Y ##\n- c";
        let inc = "### Requirement: A\n#### Scenario: X\n- a\n#### Scenario: Z\n- z";
        let d = diff_scenarios(cur, inc);
        assert_eq!(d.missing, ["X", "Y"]);
        assert_eq!(d.added, ["Z"]);
        assert_eq!(
            describe_scenario_balance(&d),
            "The modified block has 2 scenarios; the current spec has 3 scenarios. It adds 1 scenario not in the current spec: \"Z\"."
        );
    }

    #[test]
    fn orphans_are_found_outside_delta_sections() {
        let text = "### Requirement: Top\n## ADDED Requirements\n### Requirement: In\n## Notes\n### Requirement: Out\n";
        let o = parse_delta(text).orphans;
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].section, None);
        assert_eq!(o[1].section.as_deref(), Some("Notes"));
        assert_eq!(o[1].line, 5);
    }
}
