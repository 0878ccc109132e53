//! Rebuilding one main spec from a delta (`buildUpdatedSpec` of OpenSpec 1.13.2).
//!
//! Pure: the caller reads the delta and the current target and writes the result. The checks run
//! in the CLI's order and every message is the CLI's, byte for byte, because archive failures are
//! reported verbatim to the model.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::delta::{
    self, RequirementBlock, RequirementsSection, crlf_to_lf, describe_scenario_balance,
    diff_scenarios, extract_requirements_section, fence_mask, fold_name, js_trim, js_trim_end,
    normalize_name, parse_delta,
};
use super::parse::parse_spec_overview;

/// Operation counts of one rebuilt spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// ADDED requirements applied.
    pub added: usize,
    /// MODIFIED requirements whose text really changed.
    pub modified: usize,
    /// REMOVED requirements that existed.
    pub removed: usize,
    /// RENAMED requirements applied.
    pub renamed: usize,
}

/// The result of rebuilding one spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The new LF text, ending in exactly one `\n`.
    pub rebuilt: String,
    /// What was applied.
    pub counts: Counts,
    /// Non-fatal notes, in the CLI's wording.
    pub warnings: Vec<String>,
    /// True when no requirement block is left.
    pub no_requirement_blocks: bool,
    /// Lines of the original spec a retirement could not account for.
    pub unaccounted: Vec<String>,
}

impl Counts {
    /// The sum of all four counts.
    pub fn total(&self) -> usize {
        self.added + self.modified + self.removed + self.renamed
    }
}

/// Applies `delta_content` to `target` (None: the spec does not exist yet).
///
/// # Errors
/// The CLI's abort message, verbatim.
pub fn build_updated_spec(
    spec_id: &str,
    delta_content: &str,
    target: Option<&str>,
    target_path: &str,
    change_name: &str,
) -> Result<Built, String> {
    let mut warnings = Vec::new();
    let plan = parse_delta(delta_content);
    if let Some(first) = plan.unpaired_renames.first() {
        let missing = if first.side == "FROM" { "TO" } else { "FROM" };
        return Err(format!(
            "{spec_id} validation failed - RENAMED entry on line {} has no matching {missing}: for header \"### Requirement: {}\". Write each rename as a FROM: line followed immediately by its TO: line.",
            first.line, first.name
        ));
    }
    for o in &plan.orphans {
        let place = match &o.section {
            Some(s) => format!("under \"## {s}\""),
            None => "above the first \"## \" section".to_string(),
        };
        warnings.push(format!(
            "{spec_id} - requirement \"{}\" (line {}) is {place}, which is not a delta section, so it was not applied. Move it under ADDED/MODIFIED/REMOVED/RENAMED Requirements.",
            o.name, o.line
        ));
    }
    let added = unique_names(&plan.added, spec_id, "ADDED")?;
    let modified = unique_names(&plan.modified, spec_id, "MODIFIED")?;
    let mut removed: Vec<String> = Vec::new();
    for r in &plan.removed {
        let n = normalize_name(r);
        if removed.contains(&n) {
            return Err(format!(
                "{spec_id} validation failed - duplicate requirement in REMOVED for header \"### Requirement: {r}\""
            ));
        }
        removed.push(n);
    }
    let mut froms = HashSet::new();
    let mut tos = HashSet::new();
    for r in &plan.renamed {
        if !froms.insert(normalize_name(&r.from)) {
            return Err(format!(
                "{spec_id} validation failed - duplicate FROM in RENAMED for header \"### Requirement: {}\"",
                r.from
            ));
        }
        if !tos.insert(normalize_name(&r.to)) {
            return Err(format!(
                "{spec_id} validation failed - duplicate TO in RENAMED for header \"### Requirement: {}\"",
                r.to
            ));
        }
    }
    let mut conflicts: Vec<(&str, &str, &str)> = Vec::new();
    for n in &modified {
        if removed.contains(n) {
            conflicts.push((n, "MODIFIED", "REMOVED"));
        }
        if added.contains(n) {
            conflicts.push((n, "MODIFIED", "ADDED"));
        }
    }
    for n in &added {
        if removed.contains(n) {
            conflicts.push((n, "ADDED", "REMOVED"));
        }
    }
    for r in &plan.renamed {
        let from = normalize_name(&r.from);
        let to = normalize_name(&r.to);
        if let Some(m) = removed.iter().find(|x| fold_name(x) == fold_name(&from)) {
            let spelled = if *m == from {
                String::new()
            } else {
                format!(" (REMOVED spells it \"{m}\")")
            };
            return Err(format!(
                "{spec_id} validation failed - requirement present in multiple sections (RENAMED and REMOVED) for header \"### Requirement: {}\"{spelled}",
                r.from
            ));
        }
        if modified.contains(&from) {
            return Err(format!(
                "{spec_id} validation failed - when a rename exists, MODIFIED must reference the NEW header \"### Requirement: {}\"",
                r.to
            ));
        }
        if added.contains(&to) {
            return Err(format!(
                "{spec_id} validation failed - RENAMED TO header collides with ADDED for \"### Requirement: {}\"",
                r.to
            ));
        }
    }
    if let Some((n, a, b)) = conflicts.first() {
        return Err(format!(
            "{spec_id} validation failed - requirement present in multiple sections ({a} and {b}) for header \"### Requirement: {n}\""
        ));
    }
    if plan.operation_count() == 0 {
        return Err(format!(
            "Delta parsing found no operations for {spec_id}. Provide ADDED/MODIFIED/REMOVED/RENAMED sections in change spec."
        ));
    }
    let delta_purpose = extract_purpose_section(delta_content);
    let is_new;
    let target_content = match target {
        Some(t) => {
            is_new = false;
            if let Some(dp) = &delta_purpose
                && let Some(existing) = extract_purpose_section(t)
                && &existing != dp
            {
                warnings.push(format!(
                    "{spec_id} - delta Purpose ignored; {spec_id} already has one. Edit {target_path} directly to change it."
                ));
            }
            t.to_string()
        }
        None => {
            is_new = true;
            if !plan.modified.is_empty() || !plan.renamed.is_empty() {
                return Err(format!(
                    "{spec_id}: target spec does not exist; only ADDED requirements are allowed for new specs. MODIFIED and RENAMED operations require an existing spec."
                ));
            }
            if !plan.removed.is_empty() {
                warnings.push(format!(
                    "{spec_id} - {} REMOVED requirement(s) ignored for new spec (nothing to remove).",
                    plan.removed.len()
                ));
            }
            let mut skeleton = spec_skeleton(spec_id, change_name, delta_purpose.as_deref());
            if delta_purpose.is_some() {
                match readable_overview(&skeleton, spec_id) {
                    None => {
                        skeleton = spec_skeleton(spec_id, change_name, None);
                        warnings.push(format!("{spec_id} - delta Purpose ignored (it would leave the new spec unreadable); wrote the placeholder Purpose instead."));
                    }
                    Some(o) if o.chars().count() < MIN_PURPOSE_CHARS => {
                        warnings.push(format!("{spec_id} - carried Purpose is under {MIN_PURPOSE_CHARS} characters; openspec validate --strict reports it as too brief."));
                    }
                    Some(_) => {}
                }
            }
            skeleton
        }
    };
    let issues = structure_issues(&target_content);
    if !issues.is_empty() {
        let details: Vec<String> = issues
            .iter()
            .map(|i| format!("line {}: {}", i.line, i.message))
            .collect();
        return Err(format!(
            "{spec_id}: target spec is structurally invalid and cannot be updated until fixed:\n{}",
            details.join("\n")
        ));
    }
    let parts = extract_requirements_section(&target_content);
    // An ordered map: keys in insertion order, as a JS Map.
    let mut map: Vec<(String, RequirementBlock)> = parts
        .blocks
        .iter()
        .map(|b| (normalize_name(&b.name), b.clone()))
        .collect();
    dedupe_last_wins(&mut map);
    let mut ordered: Vec<String> = parts
        .blocks
        .iter()
        .map(|b| normalize_name(&b.name))
        .collect();
    let mut counts = Counts::default();
    for r in &plan.renamed {
        let from = normalize_name(&r.from);
        let to = normalize_name(&r.to);
        if !has(&map, &from) {
            if has(&map, &to) {
                if let Some(near) = map
                    .iter()
                    .find(|(k, _)| *k != to && fold_name(k) == fold_name(&from))
                {
                    return Err(format!(
                        "{spec_id} RENAMED failed for header \"### Requirement: {}\" - source not found, but \"### Requirement: {}\" exists; fix the header to match it exactly",
                        r.from, near.1.name
                    ));
                }
                continue;
            }
            return Err(format!(
                "{spec_id} RENAMED failed for header \"### Requirement: {}\" - source not found",
                r.from
            ));
        }
        if has(&map, &to) {
            return Err(format!(
                "{spec_id} RENAMED failed for header \"### Requirement: {}\" - target already exists",
                r.to
            ));
        }
        if let Some(near) = map
            .iter()
            .find(|(k, _)| *k != from && fold_name(k) == fold_name(&to))
        {
            return Err(format!(
                "{spec_id} RENAMED failed for header \"### Requirement: {}\" - \"### Requirement: {}\" already exists and differs only in case or spacing; choose a distinct name",
                r.to, near.1.name
            ));
        }
        let pos = map.iter().position(|(k, _)| *k == from).unwrap_or(0);
        let (_, block) = map.remove(pos);
        let header = format!("### Requirement: {to}");
        let mut lines: Vec<&str> = block.raw.split('\n').collect();
        if let Some(first) = lines.first_mut() {
            *first = &header;
        }
        let raw = lines.join("\n");
        map.push((
            to.clone(),
            RequirementBlock {
                header_line: header.clone(),
                name: to.clone(),
                raw,
            },
        ));
        if let Some(slot) = ordered.iter_mut().find(|k| **k == from) {
            *slot = to.clone();
        }
        counts.renamed += 1;
    }
    for name in &plan.removed {
        let key = normalize_name(name);
        if !has(&map, &key) {
            if !is_new {
                if let Some(near) = map.iter().find(|(k, _)| fold_name(k) == fold_name(&key)) {
                    return Err(format!(
                        "{spec_id} REMOVED failed for header \"### Requirement: {name}\" - not found, but \"### Requirement: {}\" exists; fix the header to match it exactly",
                        near.1.name
                    ));
                }
                warnings.push(format!("{spec_id} - REMOVED requirement \"{name}\" is not in the current spec; treating it as already removed."));
            }
            continue;
        }
        map.retain(|(k, _)| *k != key);
        counts.removed += 1;
    }
    for m in &plan.modified {
        let key = normalize_name(&m.name);
        let Some(current) = map.iter().find(|(k, _)| *k == key).map(|x| x.1.clone()) else {
            return Err(format!(
                "{spec_id} MODIFIED failed for header \"### Requirement: {}\" - not found",
                m.name
            ));
        };
        let first = m.raw.split('\n').next().unwrap_or("");
        if delta::requirement_header_name(first).as_deref() != Some(key.as_str()) {
            return Err(format!(
                "{spec_id} MODIFIED failed for header \"### Requirement: {}\" - header mismatch in content",
                m.name
            ));
        }
        let diff = diff_scenarios(&current.raw, &m.raw);
        if !diff.missing.is_empty() {
            let names: Vec<String> = diff.missing.iter().map(|n| format!("\"{n}\"")).collect();
            return Err(format!(
                "{spec_id} MODIFIED failed for header \"### Requirement: {}\" - current spec contains scenario(s) not present in the modified block: {}. {} Refresh the change spec before archiving to avoid dropping scenarios.",
                m.name,
                names.join(", "),
                describe_scenario_balance(&diff)
            ));
        }
        if normalize_block(&current.raw) != normalize_block(&m.raw) {
            counts.modified += 1;
        }
        if let Some(slot) = map.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = m.clone();
        }
    }
    for a in &plan.added {
        let key = normalize_name(&a.name);
        if let Some((_, existing)) = map.iter().find(|(k, _)| *k == key) {
            if normalize_block(&existing.raw) == normalize_block(&a.raw) {
                continue;
            }
            return Err(format!(
                "{spec_id} ADDED failed for header \"### Requirement: {}\" - already exists",
                a.name
            ));
        }
        if let Some(near) = map.iter().find(|(k, _)| fold_name(k) == fold_name(&key)) {
            return Err(format!(
                "{spec_id} ADDED failed for header \"### Requirement: {}\" - \"### Requirement: {}\" already exists and differs only in case or spacing; use MODIFIED with that exact header to change it, or choose a distinct name",
                a.name, near.1.name
            ));
        }
        map.push((key, a.clone()));
        counts.added += 1;
    }
    let mut kept: Vec<&RequirementBlock> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for key in &ordered {
        if let Some((k, b)) = map.iter().find(|(k, _)| k == key) {
            kept.push(b);
            seen.insert(k);
        }
    }
    for (k, b) in &map {
        if !seen.contains(k.as_str()) {
            kept.push(b);
        }
    }
    let mut body_parts: Vec<&str> = Vec::new();
    if !js_trim(&parts.preamble).is_empty() {
        body_parts.push(js_trim_end(&parts.preamble));
    }
    body_parts.extend(kept.iter().map(|b| b.raw.as_str()));
    let body = body_parts.join("\n\n");
    let body = js_trim_end(&body);
    let slices = [
        js_trim_end(&parts.before),
        parts.header_line.as_str(),
        body,
        js_trim(&parts.after),
    ];
    let joined: Vec<&str> = slices.into_iter().filter(|s| !s.is_empty()).collect();
    let collapsed = collapse_blank_runs_outside_fences(&joined.join("\n\n"));
    let rebuilt = format!("{}\n", js_trim_end(&collapsed));
    Ok(Built {
        rebuilt,
        counts,
        warnings,
        no_requirement_blocks: kept.is_empty(),
        unaccounted: unaccounted_content(&parts),
    })
}

/// A structural problem of a main spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructureIssue {
    /// 1-based line.
    pub line: usize,
    /// The CLI's message.
    pub message: String,
}

/// Delta headers, requirements outside `## Requirements`, duplicate names (`spec-structure.js`).
pub fn structure_issues(content: &str) -> Vec<StructureIssue> {
    let normalized = crlf_to_lf(content);
    let raw: Vec<&str> = normalized.split('\n').collect();
    let mask = fence_mask(&raw);
    let lines: Vec<&str> = raw
        .iter()
        .enumerate()
        .map(|(i, l)| if mask[i] { "" } else { *l })
        .collect();
    let header = lines.iter().position(|l| REQS_HEADER.is_match(l));
    let mut end = lines.len();
    if let Some(h) = header {
        for (i, l) in lines.iter().enumerate().skip(h + 1) {
            if TOP.is_match(l) {
                end = i;
                break;
            }
        }
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut issues = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = js_trim(line);
        if trimmed.is_empty() {
            continue;
        }
        if DELTA_HEADER.is_match(line) {
            issues.push(StructureIssue { line: i + 1, message: format!("Main spec contains delta header \"{trimmed}\". Delta headers are only valid inside openspec/changes/<name>/specs/<capability-path>/spec.md and truncate the parsed ## Requirements section.") });
            continue;
        }
        let Some(c) = STRICT_REQ_HEADER.captures(line) else {
            continue;
        };
        let inside = header.is_some_and(|h| i > h && i < end);
        if !inside {
            issues.push(StructureIssue { line: i + 1, message: format!("Requirement header \"{trimmed}\" appears outside the main ## Requirements section. Main specs only parse requirements inside that section, so this requirement is currently invisible to validate, list, and archive.") });
            continue;
        }
        let name = normalize_name(&c[1]);
        if let Some((_, prev)) = seen.iter().find(|(n, _)| *n == name) {
            issues.push(StructureIssue { line: i + 1, message: format!("Requirement header \"{trimmed}\" duplicates the requirement declared on line {prev}. Requirement names must be unique so spec updates cannot discard one block while updating another.") });
        } else {
            seen.push((name, i + 1));
        }
    }
    issues
}

/// Writes `content` (LF) back with the dominant line ending of `original` (CRLF wins ties).
pub fn match_line_ending(content: &str, original: &str) -> String {
    let crlf = original.matches("\r\n").count();
    let lf = original.matches('\n').count() - crlf;
    if crlf == 0 && lf == 0 {
        return content.to_string();
    }
    let normalized = content.replace("\r\n", "\n");
    if crlf >= lf {
        normalized.replace('\n', "\r\n")
    } else {
        normalized
    }
}

/// The skeleton of a new main spec.
pub fn spec_skeleton(spec_id: &str, change_name: &str, purpose: Option<&str>) -> String {
    let body = match purpose.map(js_trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => format!("{PURPOSE_PLACEHOLDER_PREFIX}{change_name}{PURPOSE_PLACEHOLDER_SUFFIX}"),
    };
    format!("# {spec_id} Specification\n\n## Purpose\n{body}\n\n## Requirements\n")
}

/// The body of the first real `## Purpose` section (fences and HTML comments ignored), trimmed.
pub fn extract_purpose_section(content: &str) -> Option<String> {
    let normalized = crlf_to_lf(content);
    let lines: Vec<&str> = normalized.split('\n').collect();
    let masked_text = mask_html_comments(&normalized);
    let masked: Vec<&str> = masked_text.split('\n').collect();
    let fm = fence_mask(&masked);
    let start = masked
        .iter()
        .enumerate()
        .position(|(i, l)| !fm[i] && PURPOSE_HEADER.is_match(l))?;
    let mut end = masked.len();
    for (i, l) in masked.iter().enumerate().skip(start + 1) {
        if !fm[i] && TOP.is_match(l) {
            end = i;
            break;
        }
    }
    let prose: Vec<&str> = (start + 1..end)
        .filter(|i| !fm[*i])
        .map(|i| masked[i])
        .collect();
    if js_trim(&prose.join("\n")).is_empty() {
        return None;
    }
    let body = js_trim(&lines[start + 1..end.min(lines.len())].join("\n")).to_string();
    (!body.is_empty()).then_some(body)
}

/// The Purpose text `.md` placeholder prefix the CLI writes for new specs.
pub const PURPOSE_PLACEHOLDER_PREFIX: &str = "TBD - created by archiving change ";
/// The placeholder suffix.
pub const PURPOSE_PLACEHOLDER_SUFFIX: &str = ". Update Purpose after archive.";
/// Purposes shorter than this draw a warning.
pub const MIN_PURPOSE_CHARS: usize = 50;

fn unique_names(
    blocks: &[RequirementBlock],
    spec_id: &str,
    section: &str,
) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for b in blocks {
        let n = normalize_name(&b.name);
        if names.contains(&n) {
            return Err(format!(
                "{spec_id} validation failed - duplicate requirement in {section} for header \"### Requirement: {}\"",
                b.name
            ));
        }
        names.push(n);
    }
    Ok(names)
}

fn has(map: &[(String, RequirementBlock)], key: &str) -> bool {
    map.iter().any(|(k, _)| k == key)
}

/// A JS Map built from duplicate keys keeps the first slot and the last value.
fn dedupe_last_wins(map: &mut Vec<(String, RequirementBlock)>) {
    let mut out: Vec<(String, RequirementBlock)> = Vec::new();
    for (k, b) in map.drain(..) {
        if let Some(slot) = out.iter_mut().find(|(x, _)| *x == k) {
            slot.1 = b;
        } else {
            out.push((k, b));
        }
    }
    *map = out;
}

fn normalize_block(raw: &str) -> String {
    js_trim(&crlf_to_lf(raw)).to_string()
}

fn collapse_blank_runs_outside_fences(content: &str) -> String {
    let lines: Vec<&str> = content.split('\n').collect();
    let mask = fence_mask(&lines);
    let mut kept = Vec::with_capacity(lines.len());
    let mut run = 0;
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            run = 0;
            kept.push(*line);
            continue;
        }
        if line.is_empty() {
            run += 1;
            if run > 1 {
                continue;
            }
            kept.push(*line);
            continue;
        }
        run = 0;
        kept.push(*line);
    }
    kept.join("\n")
}

fn mask_html_comments(content: &str) -> String {
    let blank = |t: &str| -> String {
        t.chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect()
    };
    let mut out = String::with_capacity(content.len());
    let mut index = 0;
    loop {
        let Some(open) = content[index..].find("<!--").map(|o| o + index) else {
            out.push_str(&content[index..]);
            return out;
        };
        out.push_str(&content[index..open]);
        let rest = &content[open + 4..];
        let close = match (rest.find("-->"), rest.find("--!>")) {
            (Some(a), Some(b)) if b < a => Some(open + 4 + b + 4),
            (Some(a), _) => Some(open + 4 + a + 3),
            (None, Some(b)) => Some(open + 4 + b + 4),
            (None, None) => None,
        };
        let Some(close) = close else {
            out.push_str(&blank(&content[open..]));
            return out;
        };
        out.push_str(&blank(&content[open..close]));
        index = close;
    }
}

fn readable_overview(skeleton: &str, spec_id: &str) -> Option<String> {
    if skeleton.contains("<!--") || !structure_issues(skeleton).is_empty() {
        return None;
    }
    let o = parse_spec_overview(skeleton, spec_id)?;
    let t = js_trim(&o).to_string();
    (!t.is_empty()).then_some(t)
}

fn first_foreign_tail(raw: &str) -> Option<(String, String)> {
    let text = crlf_to_lf(raw);
    let lines: Vec<&str> = text.split('\n').collect();
    let mask = fence_mask(&lines);
    for i in 1..lines.len() {
        if mask[i] {
            continue;
        }
        if FOREIGN_HEADING.is_match(lines[i]) {
            return Some((
                js_trim(lines[i]).to_string(),
                js_trim_end(&lines[i..].join("\n")).to_string(),
            ));
        }
    }
    None
}

fn content_column(prefix: &str) -> usize {
    let mut col = 0;
    for c in prefix.chars() {
        col += if c == '\t' { 4 - (col % 4) } else { 1 };
    }
    col
}

fn drop_indent(line: &str, columns: usize) -> &str {
    let mut col = 0;
    let mut idx = 0;
    for (i, c) in line.char_indices() {
        if col >= columns {
            break;
        }
        match c {
            ' ' => col += 1,
            '\t' => col += 4 - (col % 4),
            _ => break,
        }
        idx = i + c.len_utf8();
    }
    &line[idx..]
}

fn is_heading_line(line: &str) -> bool {
    ATX_HEADING.is_match(line) || HTML_HEADING.is_match(line)
}

/// `contentTheMergeCannotName`: lines a retirement would delete without naming them.
fn unaccounted_content(parts: &RequirementsSection) -> Vec<String> {
    let mut left: Vec<String> = Vec::new();
    let before = crlf_to_lf(
        parts
            .before
            .strip_prefix('\u{feff}')
            .unwrap_or(&parts.before),
    );
    let blines: Vec<&str> = before.split('\n').collect();
    let bmask = fence_mask(&blines);
    let mut in_purpose = false;
    let mut title_seen = false;
    let mut previous = String::new();
    for (i, line) in blines.iter().enumerate() {
        if js_trim(line).is_empty() {
            previous.clear();
            continue;
        }
        if !bmask[i] {
            if let Some(c) = SECTION_LOOSE.captures(line) {
                in_purpose = js_trim(&c[1]).eq_ignore_ascii_case("purpose");
                if !in_purpose {
                    left.push(js_trim(line).to_string());
                }
                previous = (*line).to_string();
                continue;
            }
            let setext = in_purpose && !js_trim(&previous).is_empty() && SETEXT.is_match(line);
            let html = HTML_HEADING_3.is_match(line);
            if setext || html {
                left.push(js_trim(if setext { &previous } else { line }).to_string());
                in_purpose = false;
                previous = (*line).to_string();
                continue;
            }
            if TITLE.is_match(line) {
                if !title_seen && !in_purpose {
                    title_seen = true;
                } else {
                    left.push(js_trim(line).to_string());
                    in_purpose = false;
                }
                previous = (*line).to_string();
                continue;
            }
        }
        previous = (*line).to_string();
        if in_purpose {
            continue;
        }
        left.push(js_trim(line).to_string());
    }
    for slice in [&parts.preamble, &parts.after] {
        for line in slice.split('\n') {
            if !js_trim(line).is_empty() {
                left.push(js_trim(line).to_string());
            }
        }
    }
    for block in &parts.blocks {
        if let Some((heading, _)) = first_foreign_tail(&block.raw) {
            left.push(heading);
        }
        let text = crlf_to_lf(&block.raw);
        let lines: Vec<&str> = text.split('\n').collect();
        let mask = fence_mask(&lines);
        let mut seen_scenario = false;
        let mut in_bullets = false;
        let mut bullets_seen = false;
        let mut list_indent: Option<usize> = None;
        let mut paragraph_open = false;
        for (i, line) in lines.iter().enumerate() {
            if js_trim(line).is_empty() {
                if bullets_seen {
                    in_bullets = false;
                }
                list_indent = None;
                paragraph_open = false;
                continue;
            }
            if i == 0 {
                continue;
            }
            let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
            let indent = content_column(&line[..lead]);
            let inside_item = list_indent.is_some_and(|li| indent >= li);
            let within = match (inside_item, list_indent) {
                (true, Some(li)) => drop_indent(line, li),
                _ => line,
            };
            let lazily = paragraph_open && in_bullets && !INTERRUPTS.is_match(within);
            let continues = (inside_item || lazily) && !is_heading_line(within);
            if mask[i] {
                if !inside_item {
                    list_indent = None;
                }
                paragraph_open = false;
                continue;
            }
            if i > 1 && SETEXT.is_match(within) && !js_trim(lines[i - 1]).is_empty() {
                left.push(js_trim(lines[i - 1]).to_string());
                list_indent = None;
                paragraph_open = false;
                continue;
            }
            if continues {
                paragraph_open = !INTERRUPTS.is_match(within);
                continue;
            }
            let bullet = LIST_ITEM.captures(line);
            list_indent = bullet.as_ref().map(|b| content_column(&b[1]));
            paragraph_open = bullet.is_some();
            if SCENARIO_LINE.is_match(line) {
                seen_scenario = true;
                in_bullets = true;
                bullets_seen = false;
                continue;
            }
            if bullet.is_some() {
                if in_bullets {
                    bullets_seen = true;
                    continue;
                }
                if !seen_scenario {
                    continue;
                }
                left.push(js_trim(line).to_string());
                continue;
            }
            if !seen_scenario && !PIPE_OR_TAG.is_match(line) {
                continue;
            }
            left.push(js_trim(line).to_string());
        }
    }
    let mut uniq: Vec<String> = Vec::new();
    for l in left {
        if !uniq.contains(&l) {
            uniq.push(l);
        }
    }
    uniq
}

fn re(p: &str) -> Regex {
    // unwrap: literal patterns, exercised by the unit tests.
    Regex::new(p).unwrap()
}

static REQS_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^##\s+Requirements\s*$"));
static TOP: LazyLock<Regex> = LazyLock::new(|| re(r"^##\s+"));
static DELTA_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^##\s+(ADDED|MODIFIED|REMOVED|RENAMED)\s+Requirements\s*$"));
static STRICT_REQ_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^###\s+Requirement:\s*(.+)\s*$"));
static PURPOSE_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^##\s+Purpose\s*$"));
static FOREIGN_HEADING: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}#{1,3}(?:[ \t]|$)"));
static ATX_HEADING: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}#{1,6}(?:[ \t]|$)"));
static HTML_HEADING: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^\s*<h[1-6]\b"));
static HTML_HEADING_3: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^ {0,3}<h[1-6]\b"));
static SECTION_LOOSE: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}##\s+(.+?)\s*$"));
static SETEXT: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}(?:=+|-+)\s*$"));
static TITLE: LazyLock<Regex> = LazyLock::new(|| re(r"^ {0,3}#\s+.+$"));
static INTERRUPTS: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^ {0,3}(?:>|(?:[-*_][ \t]*){3,}$|(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)|[<|])")
});
static LIST_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"^(\s*(?:[-*+]|\d{1,9}[.)])\s+)"));
static SCENARIO_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^ {0,3}####\s+Scenario:"));
static PIPE_OR_TAG: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*[|<]"));

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# auth Specification\n\n## Purpose\nAuth things for the whole product, long enough to pass.\n\n## Requirements\n### Requirement: Login\nThe system SHALL log in.\n\n#### Scenario: ok\n- **WHEN** a\n- **THEN** b\n\n### Requirement: Legacy\nThe system SHALL keep legacy.\n\n#### Scenario: l\n- x\n\n## Notes\nkeep me\n";

    #[test]
    fn every_operation_applies_in_cli_order() {
        let delta = "## RENAMED Requirements\n- FROM: `### Requirement: Login`\n- TO: `### Requirement: Sign In`\n\n## REMOVED Requirements\n### Requirement: Legacy\n\n## ADDED Requirements\n### Requirement: New\nThe system SHALL be new.\n\n#### Scenario: n\n- y\n";
        let b = build_updated_spec("auth", delta, Some(BASE), "/t", "c").unwrap();
        assert_eq!(
            b.counts,
            Counts {
                added: 1,
                modified: 0,
                removed: 1,
                renamed: 1
            }
        );
        assert!(
            b.rebuilt
                .contains("### Requirement: Sign In\nThe system SHALL log in.")
        );
        assert!(b.rebuilt.ends_with("## Notes\nkeep me\n"));
        assert!(!b.rebuilt.contains("Legacy"));
    }

    #[test]
    fn failures_carry_the_cli_messages() {
        let cases = [
            (
                "## MODIFIED Requirements\n### Requirement: Nope\nx SHALL\n#### Scenario: s\n- a\n",
                "auth MODIFIED failed for header \"### Requirement: Nope\" - not found",
            ),
            (
                "## ADDED Requirements\n### Requirement: Login\ndifferent SHALL\n#### Scenario: s\n- a\n",
                "auth ADDED failed for header \"### Requirement: Login\" - already exists",
            ),
            (
                "# nothing\n",
                "Delta parsing found no operations for auth. Provide ADDED/MODIFIED/REMOVED/RENAMED sections in change spec.",
            ),
        ];
        for (delta, want) in cases {
            assert_eq!(
                build_updated_spec("auth", delta, Some(BASE), "/t", "c").unwrap_err(),
                want
            );
        }
    }

    #[test]
    fn line_endings_follow_the_original() {
        assert_eq!(match_line_ending("a\nb\n", "x\r\ny\r\n"), "a\r\nb\r\n");
        assert_eq!(match_line_ending("a\nb\n", "x\r\ny\nz\n"), "a\nb\n");
        assert_eq!(match_line_ending("a\n", "no breaks"), "a\n");
    }

    #[test]
    fn purpose_ignores_commented_headers() {
        assert_eq!(
            extract_purpose_section("<!-- ## Purpose -->\n## Purpose\nreal\n## X\n").as_deref(),
            Some("real")
        );
        assert_eq!(extract_purpose_section("## Purpose\n\n## X\n"), None);
    }
}
