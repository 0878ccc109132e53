//! The JSON of `openspec show <id> --json` (change) and `openspec show <spec> --type spec --json`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::delta::{DeltaPlan, RequirementBlock, fence_mask, js_trim, normalize_line_endings};
use super::parse::parse_spec;

/// The `deltas` entries of one delta file, in the CLI's order (ADDED, MODIFIED, REMOVED, RENAMED).
pub fn spec_deltas(spec_id: &str, plan: &DeltaPlan) -> Vec<Value> {
    let mut out = Vec::new();
    for (op, verb, blocks) in [
        ("ADDED", "Add", &plan.added),
        ("MODIFIED", "Modify", &plan.modified),
    ] {
        for req in blocks.iter().filter_map(requirement_json) {
            out.push(delta_entry(spec_id, op, verb, req));
        }
    }
    let mut removed_blocks = plan.removed_blocks.clone();
    for name in &plan.removed {
        let block = match removed_blocks.iter().position(|b| &b.name == name) {
            Some(i) => removed_blocks.remove(i),
            None => {
                let header = format!("### Requirement: {name}");
                RequirementBlock {
                    header_line: header.clone(),
                    name: name.clone(),
                    raw: header,
                }
            }
        };
        if let Some(req) = requirement_json(&block) {
            out.push(delta_entry(spec_id, "REMOVED", "Remove", req));
        }
    }
    for r in &plan.renamed {
        out.push(json!({
            "spec": spec_id,
            "operation": "RENAMED",
            "description": format!("Rename requirement from \"{}\" to \"{}\"", r.from, r.to),
            "rename": {"from": r.from, "to": r.to},
        }));
    }
    out
}

/// The title of a proposal: `# Change: X` / `# X`, else the id; a bare `# Proposal` gives the id.
pub fn change_title(proposal: &str, id: &str) -> String {
    for line in normalize_line_endings(proposal).split('\n') {
        if let Some(c) = TITLE.captures(line) {
            let t = js_trim(&c[1]).to_string();
            if t.eq_ignore_ascii_case("proposal") {
                return id.to_string();
            }
            return t;
        }
    }
    id.to_string()
}

/// `show <spec> --type spec --json` for a main spec.
///
/// # Errors
/// The parse error message when the spec has no Purpose or Requirements section.
pub fn spec_json(id: &str, content: &str) -> Result<Value, String> {
    let spec = parse_spec(content)?;
    let reqs: Vec<Value> = spec
        .requirements
        .iter()
        .map(|r| json!({"text": r.text, "scenarios": r.scenarios.iter().map(|s| json!({"rawText": s})).collect::<Vec<_>>()}))
        .collect();
    Ok(json!({
        "id": id,
        "title": id,
        "overview": spec.overview,
        "requirementCount": reqs.len(),
        "requirements": reqs,
        "metadata": {"version": "1.0.0", "format": "openspec"},
    }))
}

fn delta_entry(spec_id: &str, op: &str, verb: &str, req: Value) -> Value {
    let text = req["text"].as_str().unwrap_or("").to_string();
    json!({
        "spec": spec_id,
        "operation": op,
        "description": format!("{verb} requirement: {text}"),
        "requirement": req.clone(),
        "requirements": [req],
    })
}

/// A block as the change parser reads it: text = body before the first heading (or the header
/// title), scenarios = non-empty `####` children.
fn requirement_json(block: &RequirementBlock) -> Option<Value> {
    let mut lines = block.raw.split('\n');
    let header = lines.next().unwrap_or("");
    let title = js_trim(HASHES.replace(header, "").as_ref()).to_string();
    if !REQ_TITLE.is_match(&title) {
        return None;
    }
    let body: Vec<&str> = lines.collect();
    let text = {
        let b = super::parse::block_text(&block.raw);
        if b.is_empty() { title.clone() } else { b }
    };
    let mask = fence_mask(&body);
    let mut scenarios = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if !mask[i]
            && let Some(c) = HEADING.captures(body[i])
        {
            let level = c[1].len();
            if level == 4 {
                let mut end = i + 1;
                while end < body.len()
                    && (mask[end] || HEADING.captures(body[end]).is_none_or(|h| h[1].len() > 4))
                {
                    end += 1;
                }
                let content = js_trim(&body[i + 1..end].join("\n")).to_string();
                if !content.is_empty() {
                    scenarios.push(json!({"rawText": content}));
                }
                i = end;
                continue;
            }
            if level <= 3 {
                break;
            }
        }
        i += 1;
    }
    Some(json!({"text": text, "scenarios": scenarios}))
}

fn re(p: &str) -> Regex {
    // unwrap: literal patterns, exercised by the unit tests.
    Regex::new(p).unwrap()
}

static TITLE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^#\s+(?:Change:\s+)?(.+)$"));
static HASHES: LazyLock<Regex> = LazyLock::new(|| re(r"^###\s*"));
static REQ_TITLE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^Requirement:\s*\S"));
static HEADING: LazyLock<Regex> = LazyLock::new(|| re(r"^(#{1,6})\s+(.+)$"));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openspec::delta::parse_delta;

    #[test]
    fn titles_fall_back_to_the_id() {
        assert_eq!(change_title("# Change: Add X\n", "id"), "Add X");
        assert_eq!(change_title("# Proposal\n", "id"), "id");
        assert_eq!(change_title("no title", "id"), "id");
    }

    #[test]
    fn deltas_come_out_grouped_by_operation() {
        let plan = parse_delta(
            "## RENAMED Requirements\n- FROM: `### Requirement: A`\n- TO: `### Requirement: B`\n## ADDED Requirements\n### Requirement: C\nThe C SHALL.\n\n#### Scenario: s\n- x\n",
        );
        let d = spec_deltas("cap", &plan);
        assert_eq!(d[0]["operation"], "ADDED");
        assert_eq!(d[0]["description"], "Add requirement: The C SHALL.");
        assert_eq!(d[0]["requirement"]["scenarios"][0]["rawText"], "- x");
        assert_eq!(d[1]["operation"], "RENAMED");
    }
}
