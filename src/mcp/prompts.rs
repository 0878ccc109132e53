//! Prompts (`prompts/list`, `prompts/get`) and completions (`completion/complete`): the OpenSpec
//! workflow as prompts a person picks from a menu (Claude Code shows them as slash commands), and
//! the values their arguments and the resource templates' variables can take.
//!
//! A prompt's messages tell the model which tools to call in which order, and embed the change's
//! current files as resources, read through the same providers as `resources/read`.

use serde_json::{Value, json};

use crate::rpc::{ErrorCode, ErrorObject};
use crate::tools::{Registry, ResourceError};

/// One prompt argument.
struct Arg {
    name: &'static str,
    description: &'static str,
    required: bool,
}

/// One prompt.
struct Prompt {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    arguments: &'static [Arg],
}

const SLUG: Arg = Arg {
    name: "slug",
    description: "The change id (an active change; completions list them).",
    required: true,
};

const PROMPTS: &[Prompt] = &[
    Prompt {
        name: "proposal",
        title: "Draft an OpenSpec change",
        description: "Turn a request into an OpenSpec change: proposal, tasks and spec deltas, validated.",
        arguments: &[
            Arg {
                name: "request",
                description: "What should change, in your words.",
                required: true,
            },
            Arg {
                name: "slug",
                description: "The change id to use (lowercase words and hyphens); chosen for you when empty.",
                required: false,
            },
        ],
    },
    Prompt {
        name: "apply",
        title: "Work through a change's tasks",
        description: "Implement an OpenSpec change task by task, ticking tasks.md as they are done.",
        arguments: &[SLUG],
    },
    Prompt {
        name: "archive",
        title: "Check and archive a change",
        description: "Validate a change, preview its archive (spec diffs, warnings), and archive it once confirmed.",
        arguments: &[SLUG],
    },
];

/// Most completion values returned at once (the MCP limit).
pub const MAX_COMPLETIONS: usize = 100;

/// The `prompts/list` result.
pub fn list() -> Value {
    let prompts: Vec<Value> = PROMPTS
        .iter()
        .map(|p| {
            let args: Vec<Value> = p
                .arguments
                .iter()
                .map(|a| json!({"name": a.name, "description": a.description, "required": a.required}))
                .collect();
            json!({"name": p.name, "title": p.title, "description": p.description, "arguments": args})
        })
        .collect();
    json!({ "prompts": prompts })
}

/// The `prompts/get` result for `params` (`name`, `arguments`).
///
/// # Errors
/// -32602 for an unknown prompt, a missing or ill-typed argument, an argument the prompt does not
/// take, or a slug that names no active change.
pub fn get(registry: &Registry, params: Option<&Value>) -> Result<Value, ErrorObject> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("prompts/get needs a string `name`"))?;
    let prompt = PROMPTS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| invalid(format!("Unknown prompt: {name}")))?;
    let empty = serde_json::Map::new();
    let given = match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("`arguments` must be an object of strings")),
    };
    for (k, v) in given {
        if !prompt.arguments.iter().any(|a| a.name == k) {
            let names: Vec<&str> = prompt.arguments.iter().map(|a| a.name).collect();
            return Err(invalid(format!(
                "Prompt {name} takes no argument `{k}` (it takes {})",
                names.join(", ")
            )));
        }
        if !v.is_string() {
            return Err(invalid(format!("Argument `{k}` must be a string")));
        }
    }
    let arg = |n: &str| {
        given
            .get(n)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    for a in prompt.arguments.iter().filter(|a| a.required) {
        if arg(a.name).is_none() {
            return Err(invalid(format!(
                "Prompt {name} needs the argument `{}`: {}",
                a.name, a.description
            )));
        }
    }
    let messages = match prompt.name {
        "proposal" => {
            let request = arg("request").unwrap_or_default();
            let slug = arg("slug").map_or_else(
                || "a short kebab-case id you choose (e.g. add-login)".to_owned(),
                |s| format!("`{s}`"),
            );
            vec![text(format!(
                "Draft an OpenSpec change for this request:\n\n{request}\n\nSteps:\n\
                 1. Read the relevant main specs (resources spec://<capability>, or spec_list and spec_show).\n\
                 2. Call change_open with slug {slug} and a title.\n\
                 3. change_write proposal.md (## Why, ## What Changes, ## Impact), tasks.md (numbered `- [ ]` tasks) and one delta per affected capability at specs/<capability>/spec.md, under `## ADDED|MODIFIED|REMOVED|RENAMED Requirements`; every requirement says SHALL or MUST and has at least one `#### Scenario:` with WHEN/THEN bullets.\n\
                 4. Call change_validate and fix every issue until `valid` is true.\n\
                 Do not archive: the change is a proposal for review."
            ))]
        }
        "apply" => {
            let slug = arg("slug").unwrap_or_default();
            let mut m = vec![text(format!(
                "Implement the OpenSpec change `{slug}`, task by task. Its proposal, tasks and deltas follow.\n\
                 For each unchecked task in tasks.md: do the work, then tick it (`- [x]`) with change_write on tasks.md.\n\
                 When the work shows the spec deltas are wrong, fix them with change_write and run change_validate.\n\
                 Stop when every task is ticked and change_validate is valid; do not archive."
            ))];
            m.extend(embedded(
                registry,
                slug,
                &["proposal", "tasks", "design", "delta"],
            )?);
            m
        }
        _ => {
            let slug = arg("slug").unwrap_or_default();
            let mut m = vec![text(format!(
                "Archive the OpenSpec change `{slug}` safely:\n\
                 1. Call change_validate; if it is not valid, report the issues and stop.\n\
                 2. Call change_archive with {{\"slug\": \"{slug}\", \"dryRun\": true}} and show me the plan: each spec file's added/modified/removed/renamed requirements, the diff, and every warning (unfinished tasks above all).\n\
                 3. Only after I confirm, call change_archive with {{\"slug\": \"{slug}\"}}. If it was a mistake, change_unarchive puts it back while no spec was edited since."
            ))];
            m.extend(embedded(registry, slug, &["proposal", "tasks"])?);
            m
        }
    };
    Ok(json!({"description": prompt.description, "messages": messages}))
}

/// The `completion/complete` result.
///
/// # Errors
/// -32602 for a malformed request or an unknown prompt.
pub fn complete(registry: &Registry, params: Option<&Value>) -> Result<Value, ErrorObject> {
    let p = params.ok_or_else(|| invalid("completion/complete needs params"))?;
    let reference = &p["ref"];
    let argument = p["argument"]["name"]
        .as_str()
        .ok_or_else(|| invalid("completion/complete needs `argument.name`"))?;
    let typed = p["argument"]["value"].as_str().unwrap_or("");
    let context: Vec<(String, String)> = p["context"]["arguments"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    let variable = match reference["type"].as_str() {
        Some("ref/prompt") => {
            let name = reference["name"].as_str().unwrap_or("");
            let prompt = PROMPTS
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| invalid(format!("Unknown prompt: {name}")))?;
            if !prompt.arguments.iter().any(|a| a.name == argument) {
                return Err(invalid(format!(
                    "Prompt {name} has no argument `{argument}`"
                )));
            }
            argument
        }
        Some("ref/resource") => {
            let uri = reference["uri"].as_str().unwrap_or("");
            if !uri.contains(&format!("{{{argument}}}")) {
                return Err(invalid(format!("{uri} has no variable `{argument}`")));
            }
            argument
        }
        _ => return Err(invalid("`ref.type` must be ref/prompt or ref/resource")),
    };
    // Free-text arguments have nothing to offer.
    let all = match variable {
        "slug" | "capability" => registry.complete(variable, &context),
        _ => Vec::new(),
    };
    let matching: Vec<String> = all.into_iter().filter(|v| v.starts_with(typed)).collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(MAX_COMPLETIONS).collect();
    Ok(
        json!({"completion": {"values": values, "total": total, "hasMore": total > MAX_COMPLETIONS}}),
    )
}

fn text(s: String) -> Value {
    json!({"role": "user", "content": {"type": "text", "text": s}})
}

/// The change's files as embedded resources; a missing optional file (design) is skipped.
fn embedded(registry: &Registry, slug: &str, parts: &[&str]) -> Result<Vec<Value>, ErrorObject> {
    let mut out = Vec::new();
    for part in parts {
        let uri = format!("change://{slug}/{part}");
        match registry.read_resource(&uri) {
            Ok(contents) => {
                for c in contents {
                    out.push(
                        json!({"role": "user", "content": {"type": "resource", "resource": {
                        "uri": c.uri, "mimeType": c.mime_type, "text": c.text}}}),
                    );
                }
            }
            Err(ResourceError::NotFound(_)) if *part == "proposal" => {
                return Err(invalid(format!(
                    "No active change `{slug}`: change_list shows them"
                )));
            }
            Err(ResourceError::Invalid(why)) => return Err(invalid(why)),
            Err(_) => {}
        }
    }
    Ok(out)
}

fn invalid(msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(ErrorCode::INVALID_PARAMS, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_describes_its_arguments() {
        let l = list();
        let names: Vec<&str> = l["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["proposal", "apply", "archive"]);
        for p in l["prompts"].as_array().unwrap() {
            for a in p["arguments"].as_array().unwrap() {
                assert!(a["description"].as_str().unwrap().len() > 10, "{a}");
            }
        }
    }

    #[test]
    fn bad_prompt_requests_are_invalid_params() {
        let reg = Registry::new();
        for params in [
            json!({}),
            json!({"name": "nope"}),
            json!({"name": "apply"}),
            json!({"name": "apply", "arguments": {"slug": 3}}),
            json!({"name": "apply", "arguments": {"slug": "x", "extra": "y"}}),
            json!({"name": "proposal", "arguments": {"request": "  "}}),
        ] {
            let e = get(&reg, Some(&params)).unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{params}");
        }
        // A slug that names no change: its proposal is not found.
        assert!(
            get(
                &reg,
                Some(&json!({"name": "archive", "arguments": {"slug": "a-b"}}))
            )
            .is_err()
        );
    }

    #[test]
    fn a_proposal_needs_no_change_and_names_the_tools_in_order() {
        let r = get(
            &Registry::new(),
            Some(&json!({"name": "proposal", "arguments": {"request": "Add 2FA"}})),
        )
        .unwrap();
        let t = r["messages"][0]["content"]["text"].as_str().unwrap();
        let at = |s: &str| t.find(s).unwrap();
        assert!(
            at("change_open") < at("change_write") && at("change_write") < at("change_validate")
        );
        assert!(t.contains("Add 2FA"));
    }
}
