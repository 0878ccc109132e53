//! `openspec validate` as 1.13.2 runs it: delta-spec checks for a change, spec checks for a main
//! spec (also used on every rebuilt spec before an archive writes it), and the archive dry run
//! whose refusals the CLI reports only as INFO.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::delta::{
    self, describe_scenario_balance, diff_scenarios, extract_requirements_section, fence_mask,
    fold_name, js_trim, normalize_name, parse_delta,
};
use super::discover::{self, METADATA_FILE};
use super::parse::{block_text, parse_spec};
use super::spec::{
    MIN_PURPOSE_CHARS, PURPOSE_PLACEHOLDER_PREFIX, PURPOSE_PLACEHOLDER_SUFFIX, build_updated_spec,
    structure_issues,
};
use super::tasks;
use crate::fsx;

/// Severity of a validation issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Level {
    /// Blocks validity.
    #[serde(rename = "ERROR")]
    Error,
    /// Blocks validity under `--strict`.
    #[serde(rename = "WARNING")]
    Warning,
    /// Never changes the verdict.
    #[serde(rename = "INFO")]
    Info,
}

/// One issue, shaped like the CLI's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Severity.
    pub level: Level,
    /// `<cap>/spec.md`, `file`, `.openspec.yaml`, `tasks.md`, ...
    pub path: String,
    /// The CLI's message.
    pub message: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A validation verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No ERROR (and, when strict, no WARNING).
    pub valid: bool,
    /// Every issue, in the CLI's order.
    pub issues: Vec<Issue>,
}

/// Options of a change validation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChangeCheck<'a> {
    /// Warnings fail too.
    pub strict: bool,
    /// Run the scenario-loss check and the archive dry run against these main specs.
    pub main_specs_dir: Option<&'a Path>,
    /// Lint the task files (what `validate` does, and archive does not).
    pub tasks: bool,
}

impl Report {
    /// A report from issues.
    pub fn new(issues: Vec<Issue>, strict: bool) -> Self {
        let errors = issues.iter().any(|i| i.level == Level::Error);
        let warnings = issues.iter().any(|i| i.level == Level::Warning);
        Self {
            valid: !(errors || (strict && warnings)),
            issues,
        }
    }

    /// The number of issues at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.issues.iter().filter(|i| i.level == level).count()
    }
}

/// `validateSpecContent`: the checks every rebuilt spec must pass before archive writes it.
pub fn validate_spec_content(content: &str, strict: bool) -> Report {
    let mut issues = Vec::new();
    match parse_spec(content) {
        Err(msg) => issues.push(issue(
            Level::Error,
            "file",
            format!("{msg}. {GUIDE_MISSING_SPEC_SECTIONS}"),
            None,
        )),
        Ok(spec) => {
            if spec.requirements.is_empty() {
                issues.push(issue(
                    Level::Error,
                    "requirements",
                    SPEC_NO_REQUIREMENTS.into(),
                    None,
                ));
            }
            for (i, r) in spec.requirements.iter().enumerate() {
                if r.scenarios.is_empty() {
                    issues.push(issue(
                        Level::Error,
                        &format!("requirements.{i}.scenarios"),
                        "Requirement must have at least one scenario".into(),
                        None,
                    ));
                }
            }
            for s in structure_issues(content) {
                issues.push(issue(Level::Error, "file", s.message, Some(s.line)));
            }
            if is_placeholder_purpose(&spec.overview) {
                issues.push(issue(
                    Level::Warning,
                    "overview",
                    PURPOSE_IS_PLACEHOLDER.into(),
                    None,
                ));
            } else if spec.overview.encode_utf16().count() < MIN_PURPOSE_CHARS {
                issues.push(issue(
                    Level::Warning,
                    "overview",
                    format!(
                        "Purpose section is too brief (less than {MIN_PURPOSE_CHARS} characters)"
                    ),
                    None,
                ));
            }
            for (i, r) in spec.requirements.iter().enumerate() {
                if r.text.encode_utf16().count() > 500 {
                    issues.push(issue(
                        Level::Info,
                        &format!("requirements[{i}]"),
                        "Requirement text is very long (>500 characters). Consider breaking it down.".into(),
                        None,
                    ));
                }
                if r.scenarios.is_empty() {
                    issues.push(issue(
                        Level::Warning,
                        &format!("requirements[{i}].scenarios"),
                        format!(
                            "Requirement must have at least one scenario. {GUIDE_SCENARIO_FORMAT}"
                        ),
                        None,
                    ));
                }
            }
            for (i, b) in extract_requirements_section(content)
                .blocks
                .iter()
                .enumerate()
            {
                let text = block_text(&b.raw);
                let prefix = format!("Requirement \"{}\"", b.name);
                if text.is_empty() {
                    issues.push(issue(
                        Level::Error,
                        &format!("requirements[{i}]"),
                        shall_message(&prefix, &b.name, false),
                        None,
                    ));
                } else if !has_shall_or_must(&text) {
                    issues.push(issue(
                        Level::Warning,
                        &format!("requirements[{i}]"),
                        shall_message(&prefix, &b.name, true),
                        None,
                    ));
                }
            }
        }
    }
    Report::new(issues, strict)
}

/// True when the only ERROR of a rebuilt spec is "no requirements" (the retirement case).
pub fn is_retirable(content: &str) -> bool {
    let r = validate_spec_content(content, false);
    let errors: Vec<&Issue> = r
        .issues
        .iter()
        .filter(|i| i.level == Level::Error)
        .collect();
    !r.valid && !errors.is_empty() && errors.iter().all(|i| i.message == SPEC_NO_REQUIREMENTS)
}

/// `validateChangeDeltaSpecs`: every check `openspec validate <change>` runs.
///
/// # Errors
/// I/O failures reading the change.
pub fn validate_change(change_dir: &Path, check: ChangeCheck<'_>) -> io::Result<Report> {
    let mut issues = Vec::new();
    let specs_dir = change_dir.join("specs");
    let mut total = 0usize;
    let mut missing_headers: Vec<String> = Vec::new();
    let mut empty_sections: Vec<(String, Vec<&str>)> = Vec::new();
    let discovered = discover::spec_files(&specs_dir)?;
    let root_spec = fs::metadata(specs_dir.join("spec.md")).is_ok_and(|m| m.is_file());
    if root_spec {
        issues.push(issue(Level::Error, "spec.md", "Delta spec found at specs/spec.md. Delta specs must live under a capability path (e.g. specs/<capability-path>/spec.md) — a file at the specs/ root is ignored when the change is applied or archived.".into(), None));
    }
    for spec in &discovered {
        let Ok(content) = fs::read_to_string(&spec.file) else {
            continue;
        };
        let plan = parse_delta(&content);
        let entry = format!("{}/spec.md", spec.id);
        for s in &plan.skipped_headers {
            let nameless = NAMELESS.is_match(&s.header);
            let msg = if nameless {
                format!(
                    "Header \"### {}\" in {} is missing a requirement name and is ignored by validation. Add a name, e.g. \"### Requirement: <name>\".",
                    s.header, s.section
                )
            } else {
                format!(
                    "Header \"### {}\" in {} is not a \"### Requirement:\" header and is ignored by validation. Use \"### Requirement: {}\" if it should be validated as a requirement.",
                    s.header, s.section, s.header
                )
            };
            issues.push(issue(Level::Info, &entry, msg, Some(s.line)));
        }
        for u in &plan.unpaired_renames {
            let missing = if u.side == "FROM" { "TO" } else { "FROM" };
            issues.push(issue(Level::Error, &entry, format!("RENAMED {}: \"{}\" has no matching {missing}: line. Write each rename as a FROM: line followed immediately by its TO: line.", u.side, u.name), Some(u.line)));
        }
        for o in &plan.orphans {
            let place = match &o.section {
                Some(s) => format!("under \"## {s}\""),
                None => "above the first \"## \" section".into(),
            };
            issues.push(issue(Level::Warning, &entry, format!("Requirement \"{}\" is {place}, which is not a delta section, so it is ignored. Move it under \"## ADDED Requirements\", \"## MODIFIED Requirements\", \"## REMOVED Requirements\", or \"## RENAMED Requirements\".", o.name), Some(o.line)));
        }
        let names: Vec<&str> = SECTION_LABELS
            .iter()
            .zip(plan.section_presence)
            .filter(|(_, p)| *p)
            .map(|(n, _)| *n)
            .collect();
        if plan.operation_count() == 0 {
            if names.is_empty() {
                missing_headers.push(entry.clone());
            } else {
                empty_sections.push((entry.clone(), names));
            }
        }
        let mut added: Vec<String> = Vec::new();
        let mut modified: Vec<String> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut from: Vec<String> = Vec::new();
        let mut to: Vec<String> = Vec::new();
        for (op, blocks, set) in [
            ("ADDED", &plan.added, &mut added),
            ("MODIFIED", &plan.modified, &mut modified),
        ] {
            for b in blocks {
                total += 1;
                let key = normalize_name(&b.name);
                if set.contains(&key) {
                    issues.push(issue(
                        Level::Error,
                        &entry,
                        format!("Duplicate requirement in {op}: \"{}\"", b.name),
                        None,
                    ));
                } else {
                    set.push(key);
                }
                let text = block_text(&b.raw);
                let prefix = format!("{op} \"{}\"", b.name);
                if text.is_empty() {
                    let msg = if has_shall_or_must(&b.name) {
                        shall_message(&prefix, &b.name, false)
                    } else {
                        format!("{prefix} is missing requirement text")
                    };
                    issues.push(issue(Level::Error, &entry, msg, None));
                } else if !has_shall_or_must(&text) {
                    issues.push(issue(
                        Level::Warning,
                        &entry,
                        shall_message(&prefix, &b.name, true),
                        None,
                    ));
                }
                let body: Vec<&str> = b.raw.split('\n').skip(1).collect();
                let (full, empty) = scenario_bodies(&body);
                if full < 1 {
                    let hint = if empty > 0 {
                        " (a scenario header with no body under it does not count; add its steps, e.g. \"- **WHEN** ...\" and \"- **THEN** ...\")"
                    } else {
                        ""
                    };
                    issues.push(issue(
                        Level::Error,
                        &entry,
                        format!("{prefix} must include at least one scenario{hint}"),
                        None,
                    ));
                }
            }
            if op == "MODIFIED"
                && let Some(main) = check.main_specs_dir
                && !plan.modified.is_empty()
            {
                issues.extend(scenario_loss(
                    &plan,
                    &main.join(&spec.id).join("spec.md"),
                    &entry,
                ));
            }
        }
        for n in &plan.removed {
            total += 1;
            let key = normalize_name(n);
            if removed.contains(&key) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Duplicate requirement in REMOVED: \"{n}\""),
                    None,
                ));
            } else {
                removed.push(key);
            }
        }
        for r in &plan.renamed {
            total += 1;
            let f = normalize_name(&r.from);
            let t = normalize_name(&r.to);
            if from.contains(&f) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Duplicate FROM in RENAMED: \"{}\"", r.from),
                    None,
                ));
            } else {
                from.push(f);
            }
            if to.contains(&t) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Duplicate TO in RENAMED: \"{}\"", r.to),
                    None,
                ));
            } else {
                to.push(t);
            }
        }
        for n in &modified {
            if removed.contains(n) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Requirement present in both MODIFIED and REMOVED: \"{n}\""),
                    None,
                ));
            }
            if added.contains(n) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Requirement present in both MODIFIED and ADDED: \"{n}\""),
                    None,
                ));
            }
        }
        for n in &added {
            if removed.contains(n) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("Requirement present in both ADDED and REMOVED: \"{n}\""),
                    None,
                ));
            }
        }
        for r in &plan.renamed {
            let f = normalize_name(&r.from);
            let t = normalize_name(&r.to);
            if modified.contains(&f) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!(
                        "MODIFIED references old name from RENAMED. Use new header for \"{}\"",
                        r.to
                    ),
                    None,
                ));
            }
            if added.contains(&t) {
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!("RENAMED TO collides with ADDED for \"{}\"", r.to),
                    None,
                ));
            }
            if let Some(m) = removed.iter().find(|x| fold_name(x) == fold_name(&f)) {
                let spelled = if *m == f {
                    String::new()
                } else {
                    format!(" (REMOVED spells it \"{m}\")")
                };
                issues.push(issue(
                    Level::Error,
                    &entry,
                    format!(
                        "Requirement present in both RENAMED and REMOVED: \"{}\"{spelled}",
                        r.from
                    ),
                    None,
                ));
            }
        }
    }
    if let Some(main) = check.main_specs_dir {
        let mut reported: Vec<String> = issues
            .iter()
            .filter(|i| i.level == Level::Error)
            .map(|i| i.path.clone())
            .collect();
        reported.extend(missing_headers.iter().cloned());
        reported.extend(empty_sections.iter().map(|(p, _)| p.clone()));
        let change_name = change_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for spec in &discovered {
            let entry = format!("{}/spec.md", spec.id);
            if reported.contains(&entry) {
                continue;
            }
            if let Err(msg) = dry_run_one(spec, main, &change_name) {
                issues.push(issue(
                    Level::Info,
                    &entry,
                    format!("Archive would refuse this delta: {msg}"),
                    None,
                ));
            }
        }
    }
    for u in discover::unread_delta_files(&specs_dir)? {
        issues.push(issue(Level::Error, &u.path, format!("Delta spec found at specs/{}. Delta specs must be a spec.md inside a capability folder — this file is ignored when the change is applied or archived. Move its requirements into specs/{}.", u.path, u.expected), None));
    }
    for (path, sections) in &empty_sections {
        issues.push(issue(Level::Error, path, format!("Delta sections {} were found, but no requirement entries parsed. Ensure each section includes at least one \"### Requirement:\" block (REMOVED may use bullet list syntax).", section_list(sections)), None));
    }
    for path in &missing_headers {
        issues.push(issue(Level::Error, path, "No delta sections found. Add headers such as \"## ADDED Requirements\" or move non-delta notes outside specs/.".into(), None));
    }
    let marker = discover::marker(change_dir, "skip_specs");
    if let Some(reason) = &marker.invalid_reason {
        issues.push(issue(
            Level::Error,
            METADATA_FILE,
            format!("{SKIP_SPECS_INVALID} ({reason})"),
            None,
        ));
    }
    let mut specs_has_files = false;
    if marker.declared {
        specs_has_files = discover::has_any_file_under(&specs_dir).unwrap_or(true);
    }
    if marker.declared && specs_has_files {
        issues.push(issue(
            Level::Error,
            "file",
            SKIP_SPECS_CONFLICT.into(),
            None,
        ));
    }
    let unread = discover::unread_delta_files(&specs_dir)?.len();
    if total == 0 && !root_spec && unread == 0 {
        if marker.declared && !specs_has_files {
            issues.push(issue(Level::Info, "file", SKIP_SPECS_ACCEPTED.into(), None));
        } else if !marker.declared {
            issues.push(issue(
                Level::Error,
                "file",
                format!("Change must have at least one delta. {GUIDE_NO_DELTAS}"),
                None,
            ));
        }
    }
    if check.tasks {
        issues.extend(task_issues(change_dir));
    }
    Ok(Report::new(issues, check.strict))
}

/// Runs the merge for one delta without writing: `Err` is the archive's refusal.
pub fn dry_run_one(
    spec: &discover::SpecFile,
    main_specs_dir: &Path,
    change_name: &str,
) -> Result<(), String> {
    let delta = fs::read_to_string(&spec.file).map_err(|e| e.to_string())?;
    let target_path = main_specs_dir.join(&spec.id).join("spec.md");
    let target = match fsx::read_nofollow(&target_path) {
        Ok(t) => Some(t),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            None
        }
        Err(e) => return Err(e.to_string()),
    };
    build_updated_spec(
        &spec.id,
        &delta,
        target.as_deref(),
        &target_path.to_string_lossy(),
        change_name,
    )
    .map(|_| ())
}

/// `\b(SHALL|MUST)\b`.
pub fn has_shall_or_must(text: &str) -> bool {
    SHALL_MUST.is_match(text)
}

fn scenario_bodies(lines: &[&str]) -> (usize, usize) {
    let mask = fence_mask(lines);
    let (mut full, mut empty) = (0, 0);
    for i in 0..lines.len() {
        if mask[i] || !delta::SCENARIO_HEADER.is_match(lines[i]) {
            continue;
        }
        let mut end = i + 1;
        while end < lines.len() && (mask[end] || !SCENARIO_BODY_END.is_match(lines[end])) {
            end += 1;
        }
        if js_trim(&lines[i + 1..end].join("\n")).is_empty() {
            empty += 1;
        } else {
            full += 1;
        }
    }
    (full, empty)
}

fn scenario_loss(plan: &delta::DeltaPlan, main_file: &Path, entry: &str) -> Vec<Issue> {
    let Ok(main) = fsx::read_nofollow(main_file) else {
        return Vec::new();
    };
    let blocks = extract_requirements_section(&main).blocks;
    let mut current: Vec<(String, &delta::RequirementBlock)> = Vec::new();
    for b in &blocks {
        let k = normalize_name(&b.name);
        if let Some(slot) = current.iter_mut().find(|(x, _)| *x == k) {
            slot.1 = b;
        } else {
            current.push((k, b));
        }
    }
    let renamed_from: Vec<(String, String)> = plan
        .renamed
        .iter()
        .map(|r| (normalize_name(&r.to), normalize_name(&r.from)))
        .collect();
    let renamed_away: Vec<String> = plan
        .renamed
        .iter()
        .map(|r| normalize_name(&r.from))
        .collect();
    let mut out = Vec::new();
    for m in &plan.modified {
        let key = normalize_name(&m.name);
        if renamed_away.contains(&key) {
            continue;
        }
        let mut visited: Vec<String> = Vec::new();
        let mut k = Some(key);
        let mut found = None;
        while let Some(cur) = k {
            if visited.contains(&cur) {
                break;
            }
            if let Some((_, b)) = current.iter().find(|(x, _)| *x == cur) {
                found = Some(*b);
                break;
            }
            k = renamed_from
                .iter()
                .find(|(t, _)| *t == cur)
                .map(|(_, f)| f.clone());
            visited.push(cur);
        }
        let Some(cur) = found else { continue };
        let diff = diff_scenarios(&cur.raw, &m.raw);
        if diff.missing.is_empty() {
            continue;
        }
        let names: Vec<String> = diff.missing.iter().map(|n| format!("\"{n}\"")).collect();
        out.push(issue(Level::Error, entry, format!("MODIFIED \"{}\" omits scenario(s) the current spec still has: {}. {} Copy the omitted scenarios into the MODIFIED block (a MODIFIED requirement replaces the whole block, so archive refuses to drop them).", m.name, names.join(", "), describe_scenario_balance(&diff)), None));
    }
    out
}

fn task_issues(change_dir: &Path) -> Vec<Issue> {
    let Ok(content) = fsx::read_nofollow(&change_dir.join("tasks.md")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some((line, msg)) = tasks::missing_checkbox_lint(&content) {
        out.push(issue(Level::Warning, "tasks.md", msg, Some(line)));
    }
    for (line, msg) in tasks::numbering_lints(&content) {
        out.push(issue(Level::Warning, "tasks.md", msg, Some(line)));
    }
    out
}

fn is_placeholder_purpose(overview: &str) -> bool {
    let text = crate::openspec::delta::crlf_to_lf(overview);
    let lines: Vec<&str> = text.split('\n').collect();
    let mask = fence_mask(&lines);
    let prose: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !mask[*i])
        .map(|(_, l)| *l)
        .collect();
    let prose = prose.join("\n");
    let prose = js_trim(&prose);
    let leading = leading_marker(prose);
    if leading {
        return true;
    }
    let mut from = 0;
    while let Some(at) = prose[from..].find(PURPOSE_PLACEHOLDER_SUFFIX) {
        let suffix_at = from + at;
        if prose[..suffix_at
            + PURPOSE_PLACEHOLDER_PREFIX
                .len()
                .min(prose.len() - suffix_at)]
            .contains(PURPOSE_PLACEHOLDER_PREFIX)
        {
            return true;
        }
        from = suffix_at + 1;
    }
    false
}

/// `^(?:TBD|TODO)` not followed by a letter/number/mark/underscore, and either shouted or
/// followed by end or punctuation.
fn leading_marker(prose: &str) -> bool {
    for word in ["TBD", "TODO"] {
        let Some(head) = prose.get(..word.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(word) {
            continue;
        }
        let rest = &prose[word.len()..];
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        if head == word {
            return true;
        }
        let after = rest.trim_start_matches([' ', '\t']);
        if after.is_empty()
            || after.starts_with(|c: char| "\n:-\u{2013}\u{2014}.,;()[]{}".contains(c))
        {
            return true;
        }
    }
    false
}

fn shall_message(prefix: &str, name: &str, guidance: bool) -> String {
    let base = format!(
        "{prefix} {} contain SHALL or MUST",
        if guidance { "should" } else { "must" }
    );
    let suffix = if guidance {
        " (RFC 2119 best practice for English specs)"
    } else {
        ""
    };
    if has_shall_or_must(name) {
        return format!(
            "{base} in the requirement body, not only in the header. Move the SHALL/MUST statement to the line immediately after the \"### Requirement: ...\" header.{suffix}"
        );
    }
    format!("{base}{suffix}")
}

fn section_list(sections: &[&str]) -> String {
    match sections {
        [] => String::new(),
        [one] => (*one).to_string(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    }
}

fn issue(level: Level, path: &str, message: String, line: Option<usize>) -> Issue {
    Issue {
        level,
        path: path.to_string(),
        message,
        line,
    }
}

fn re(p: &str) -> Regex {
    // unwrap: literal patterns, exercised by the unit tests.
    Regex::new(p).unwrap()
}

/// The zod message for a spec without requirements.
pub const SPEC_NO_REQUIREMENTS: &str = "Spec must have at least one requirement";
const SECTION_LABELS: [&str; 4] = [
    "## ADDED Requirements",
    "## MODIFIED Requirements",
    "## REMOVED Requirements",
    "## RENAMED Requirements",
];
const SKIP_SPECS_CONFLICT: &str = "skip_specs is set in .openspec.yaml but spec files exist under specs/. Remove skip_specs or delete the delta spec files";
const SKIP_SPECS_ACCEPTED: &str = "skip_specs is set in .openspec.yaml: change declares no spec-level behavior changes, zero deltas accepted";
const SKIP_SPECS_INVALID: &str = "skip_specs is set but .openspec.yaml is not valid change metadata, so the marker is not honored. Fix the metadata";
const PURPOSE_IS_PLACEHOLDER: &str = "Purpose section is still a placeholder rather than a Purpose anyone wrote (the sentence `openspec archive` writes for a new capability, or a `TBD`/`TODO` marker left in its place). Replace it with what this capability is for, editing the main spec directly: a `## Purpose` in a delta is read only when the capability is created, so it cannot replace this one.";
const GUIDE_NO_DELTAS: &str = "No deltas found. Ensure your change has a specs/ directory with capability folders (e.g. specs/http-server/spec.md) containing .md files that use delta headers (## ADDED/MODIFIED/REMOVED/RENAMED Requirements) and that each requirement includes at least one \"#### Scenario:\" block. If this change intentionally modifies no specs (pure refactor, tooling, docs), set \"skip_specs: true\" in the change's .openspec.yaml instead. Tip: run \"openspec change show <change-id> --json --deltas-only\" to inspect parsed deltas.";
const GUIDE_MISSING_SPEC_SECTIONS: &str = "Missing required sections. Expected headers: \"## Purpose\" and \"## Requirements\". Example:\n## Purpose\n[brief purpose]\n\n## Requirements\n### Requirement: Clear requirement statement\nUsers SHALL ...\n\n#### Scenario: Descriptive name\n- **WHEN** ...\n- **THEN** ...";
const GUIDE_SCENARIO_FORMAT: &str = "Scenarios must use level-4 headers. Convert bullet lists into:\n#### Scenario: Short name\n- **WHEN** ...\n- **THEN** ...\n- **AND** ...";

static SCENARIO_BODY_END: LazyLock<Regex> = LazyLock::new(|| re(r"^#{1,4}\s"));
static SHALL_MUST: LazyLock<Regex> = LazyLock::new(|| re(r"\b(SHALL|MUST)\b"));
static NAMELESS: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^requirement:?$"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_purposes_are_detected() {
        let cases = [
            (
                "TBD - created by archiving change x. Update Purpose after archive.",
                true,
            ),
            ("TODO", true),
            ("todo: later", true),
            ("Todos are great", false),
            ("A real purpose", false),
        ];
        for (p, want) in cases {
            assert_eq!(is_placeholder_purpose(p), want, "{p}");
        }
    }

    #[test]
    fn empty_spec_is_retirable_only_for_missing_requirements() {
        assert!(is_retirable(
            "# T\n\n## Purpose\nA purpose.\n\n## Requirements\n"
        ));
        assert!(!is_retirable("# T\n\n## Requirements\n"));
    }
}
