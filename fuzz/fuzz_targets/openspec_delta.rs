//! OpenSpec delta parsing and spec rebuilding: no input panics, and restating every requirement
//! of a spec unchanged under `## MODIFIED Requirements` is the identity: nothing counts as
//! changed, the rebuilt spec holds the same requirement blocks in the same order (up to the
//! CLI's normalization, which collapses runs of blank lines), and rebuilding the rebuilt spec the
//! same way gives it back byte for byte.
//!
//! Input: text; the delta is what comes before the first NUL, the current spec what follows.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use task_mcp::openspec::delta::{self, RequirementBlock};
use task_mcp::openspec::spec::build_updated_spec;

const PATH: &str = "openspec/specs/fuzz/spec.md";

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let (delta_text, spec_text) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = delta::parse_delta(delta_text);
    let _ = build_updated_spec("fuzz", delta_text, Some(spec_text), PATH, "fuzz-change");
    let _ = build_updated_spec("fuzz", delta_text, None, PATH, "fuzz-change");

    let Some(blocks) = unique_blocks(spec_text) else {
        return;
    };
    let restated = restate(&blocks);
    let Ok(built) = build_updated_spec("fuzz", &restated, Some(spec_text), PATH, "fuzz-change")
    else {
        return;
    };
    assert_eq!(
        built.counts.total(),
        0,
        "an unchanged restatement counted as a change"
    );
    let after = delta::extract_requirements_section(&built.rebuilt).blocks;
    assert_eq!(
        shape(&after),
        shape(&blocks),
        "rebuilding changed the requirement blocks"
    );
    let again = build_updated_spec("fuzz", &restated, Some(&built.rebuilt), PATH, "fuzz-change")
        .unwrap_or_else(|e| panic!("rebuilt spec no longer accepts the same delta: {e}"));
    assert_eq!(
        again.rebuilt, built.rebuilt,
        "rebuilding a rebuilt spec is not the identity"
    );
});

/// The spec's requirement blocks, when there are some and their names are distinct.
fn unique_blocks(spec: &str) -> Option<Vec<RequirementBlock>> {
    let blocks = delta::extract_requirements_section(spec).blocks;
    let mut seen = HashSet::new();
    let distinct = blocks
        .iter()
        .all(|b| seen.insert(delta::normalize_name(&b.name)));
    (distinct && !blocks.is_empty()).then_some(blocks)
}

/// Each block's name and its lines with blank runs collapsed (the rebuild collapses them).
fn shape(blocks: &[RequirementBlock]) -> Vec<(String, Vec<&str>)> {
    blocks
        .iter()
        .map(|b| {
            let mut lines: Vec<&str> = Vec::new();
            for line in b.raw.split('\n') {
                if !(line.trim().is_empty() && lines.last().is_some_and(|l| l.trim().is_empty())) {
                    lines.push(line);
                }
            }
            (b.name.clone(), lines)
        })
        .collect()
}

fn restate(blocks: &[RequirementBlock]) -> String {
    let mut d = String::from("## MODIFIED Requirements\n\n");
    for b in blocks {
        d.push_str(&b.raw);
        d.push_str("\n\n");
    }
    d
}
