//! Reading a main spec as the CLI's `MarkdownParser.parseSpec` does: its Purpose, its
//! requirements and their scenarios. Both the spec rebuild (`spec`) and validation (`validate`)
//! read specs through it, so neither depends on the other for it.

use std::sync::LazyLock;

use regex::Regex;

use super::delta::{fence_mask, js_trim, normalize_line_endings};

/// A main spec as `MarkdownParser.parseSpec` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedSpec {
    /// The Purpose text, trimmed.
    pub overview: String,
    /// Each `###` child of `## Requirements`.
    pub requirements: Vec<ParsedRequirement>,
}

/// One requirement of a parsed main spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequirement {
    /// The requirement text (body, or the heading when the body is empty).
    pub text: String,
    /// Raw text of each non-empty `####` child.
    pub scenarios: Vec<String>,
}

/// Parses a main spec; the error is the CLI's thrown message.
///
/// # Errors
/// `Spec must have a Purpose section` / `Spec must have a Requirements section`.
pub fn parse_spec(content: &str) -> Result<ParsedSpec, String> {
    let normalized = normalize_line_endings(content);
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mask = fence_mask(&lines);
    let mut headers: Vec<(usize, usize, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if let Some(c) = HEADER.captures(line) {
            headers.push((i, c[1].len(), js_trim(&c[2]).to_string()));
        }
    }
    let content_of = |start: usize, level: usize| -> String {
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate().skip(start) {
            if !mask[i]
                && let Some(c) = HEADER_PREFIX.captures(line)
                && c[1].len() <= level
            {
                break;
            }
            out.push(*line);
        }
        js_trim(&out.join("\n")).to_string()
    };
    // Depth-first, document order: the first header whose title matches.
    let find = |title: &str| headers.iter().position(|h| h.2.to_lowercase() == title);
    let purpose = find("purpose")
        .map(|p| content_of(headers[p].0 + 1, headers[p].1))
        .unwrap_or_default();
    if purpose.is_empty() {
        return Err("Spec must have a Purpose section".into());
    }
    let Some(req) = find("requirements") else {
        return Err("Spec must have a Requirements section".into());
    };
    // The parser's tree: a header's parent is the nearest earlier header of a lower level.
    let parent: Vec<Option<usize>> = (0..headers.len())
        .map(|h| (0..h).rev().find(|&p| headers[p].1 < headers[h].1))
        .collect();
    let parent = &parent;
    let children = |p: usize| (p + 1..headers.len()).filter(move |&c| parent[c] == Some(p));
    let mut requirements = Vec::new();
    for child in children(req) {
        let (line, level, title) = &headers[child];
        let child_content = content_of(line + 1, *level);
        let body_lines: Vec<&str> = child_content.split('\n').collect();
        let body = requirement_body(&body_lines);
        let text = if body.is_empty() {
            js_trim(title).to_string()
        } else {
            body
        };
        let scenarios = children(child)
            .map(|s| content_of(headers[s].0 + 1, headers[s].1))
            .filter(|c| !js_trim(c).is_empty())
            .collect();
        requirements.push(ParsedRequirement { text, scenarios });
    }
    Ok(ParsedSpec {
        overview: js_trim(&purpose).to_string(),
        requirements,
    })
}

/// The overview a spec would have, or None when it does not parse.
pub fn parse_spec_overview(content: &str, _name: &str) -> Option<String> {
    parse_spec(content).ok().map(|s| s.overview)
}

/// The requirement text of a block: body lines before the first heading, fences, blanks and
/// `**Key**:` lines skipped (unless only such lines exist).
pub fn block_text(raw: &str) -> String {
    let body: Vec<&str> = raw.split('\n').skip(1).collect();
    requirement_body(&body)
}

pub(crate) fn requirement_body(lines: &[&str]) -> String {
    let mask = fence_mask(lines);
    let mut captured = Vec::new();
    let mut metadata = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if mask[i] {
            continue;
        }
        if HEADER_LINE.is_match(line) {
            break;
        }
        let t = js_trim(line);
        if t.is_empty() {
            continue;
        }
        if METADATA_LINE.is_match(t) {
            metadata.push(t);
            continue;
        }
        captured.push(t);
    }
    if captured.is_empty() {
        metadata.join("\n")
    } else {
        captured.join("\n")
    }
}

fn re(p: &str) -> Regex {
    // unwrap: literal patterns, exercised by the unit tests.
    Regex::new(p).unwrap()
}

static HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"^(#{1,6})\s+(.+)$"));
static HEADER_PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"^(#{1,6})\s+"));
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"^#{1,6}\s"));
static METADATA_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"^\*\*[^*]+\*\*:"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_spec_reads_purpose_requirements_and_scenarios() {
        let s = parse_spec("# T\n\n## Purpose\nWhy.\n\n## Requirements\n### Requirement: A\nThe x SHALL y.\n\n#### Scenario: s\n- a\n\n#### Scenario: empty\n\n### B\n").unwrap();
        assert_eq!(s.overview, "Why.");
        assert_eq!(s.requirements.len(), 2);
        assert_eq!(s.requirements[0].text, "The x SHALL y.");
        assert_eq!(s.requirements[0].scenarios, ["- a"]);
        assert_eq!(s.requirements[1].text, "B");
    }

    #[test]
    fn spec_without_sections_is_an_error() {
        assert_eq!(
            parse_spec("# T\n").unwrap_err(),
            "Spec must have a Purpose section"
        );
        assert_eq!(
            parse_spec("## Purpose\nx\n").unwrap_err(),
            "Spec must have a Requirements section"
        );
    }
}
