//! `prompts/list`, `prompts/get` and `completion/complete`: the protocol side of the registry's
//! prompt providers (`tools::prompts`), and the values prompt arguments and resource template
//! variables can take. Arguments are checked against each prompt's declaration here, so a
//! provider only builds messages.

use serde_json::{Value, json};

use crate::rpc::{ErrorCode, ErrorObject};
use crate::tools::Registry;
use crate::tools::prompts::{Completion, PromptDef};

/// Most completion values returned at once (the MCP limit).
pub const MAX_COMPLETIONS: usize = 100;

/// The `prompts/list` result.
pub fn list(registry: &Registry) -> Value {
    let prompts: Vec<Value> = registry
        .prompts()
        .map(|(_, p)| {
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
/// take, or one that names nothing (a slug of no active change).
pub fn get(registry: &Registry, params: Option<&Value>) -> Result<Value, ErrorObject> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("prompts/get needs a string `name`"))?;
    let (provider, prompt) = find(registry, name)?;
    let empty = serde_json::Map::new();
    let given = match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("`arguments` must be an object of strings")),
    };
    for (k, v) in given {
        if !prompt.arguments.iter().any(|a| a.name == k) {
            let names: Vec<&str> = prompt.arguments.iter().map(|a| a.name).collect();
            let takes = if names.is_empty() {
                "no arguments".to_owned()
            } else {
                names.join(", ")
            };
            return Err(invalid(format!(
                "Prompt {name} takes no argument `{k}` (it takes {takes})"
            )));
        }
        if !v.is_string() {
            return Err(invalid(format!("Argument `{k}` must be a string")));
        }
    }
    for a in prompt.arguments.iter().filter(|a| a.required) {
        let present = given
            .get(a.name)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        if !present {
            return Err(invalid(format!(
                "Prompt {name} needs the argument `{}`: {}",
                a.name, a.description
            )));
        }
    }
    let messages = provider
        .messages(prompt, given, registry)
        .map_err(|e| invalid(e.0))?;
    Ok(json!({"description": prompt.description, "messages": messages}))
}

fn find<'r>(
    registry: &'r Registry,
    name: &str,
) -> Result<
    (
        &'r dyn crate::tools::prompts::PromptProvider,
        &'static PromptDef,
    ),
    ErrorObject,
> {
    registry
        .prompts()
        .find(|(_, p)| p.name == name)
        .ok_or_else(|| invalid(format!("Unknown prompt: {name}")))
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
    let all = match reference["type"].as_str() {
        Some("ref/prompt") => {
            let name = reference["name"].as_str().unwrap_or("");
            let (_, prompt) = find(registry, name)?;
            let arg = prompt
                .arguments
                .iter()
                .find(|a| a.name == argument)
                .ok_or_else(|| invalid(format!("Prompt {name} has no argument `{argument}`")))?;
            match arg.completion {
                Completion::None => Vec::new(),
                Completion::Variable(v) => registry.complete(v, &context),
                Completion::Values(values) => values.iter().map(|v| (*v).to_owned()).collect(),
            }
        }
        Some("ref/resource") => {
            let uri = reference["uri"].as_str().unwrap_or("");
            if !uri.contains(&format!("{{{argument}}}")) {
                return Err(invalid(format!("{uri} has no variable `{argument}`")));
            }
            registry.complete(argument, &context)
        }
        _ => return Err(invalid("`ref.type` must be ref/prompt or ref/resource")),
    };
    let matching: Vec<String> = all.into_iter().filter(|v| v.starts_with(typed)).collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(MAX_COMPLETIONS).collect();
    Ok(
        json!({"completion": {"values": values, "total": total, "hasMore": total > MAX_COMPLETIONS}}),
    )
}

fn invalid(msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(ErrorCode::INVALID_PARAMS, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.add_prompts(std::sync::Arc::new(crate::tools::prompts::OpenSpecPrompts));
        r
    }

    #[test]
    fn every_prompt_describes_its_arguments() {
        let l = list(&registry());
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
        let reg = registry();
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
            &registry(),
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
