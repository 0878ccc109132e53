//! Prompts: the OpenSpec workflow as prompts a person picks from a menu (Claude Code shows them
//! as slash commands). A [`PromptProvider`] declares its prompts and builds their messages; the
//! MCP layer (`mcp::prompts`) checks the arguments against the declaration before it asks.
//!
//! A prompt's messages tell the model which tools to call in which order, and embed the change's
//! current files as resources, read through the same providers as `resources/read`.

use serde_json::{Map, Value, json};

use super::{Registry, ResourceError};

/// Where the values offered by `completion/complete` for a prompt argument come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Free text: nothing to offer.
    None,
    /// The values of a resource template variable (`slug`, `capability`).
    Variable(&'static str),
    /// A fixed list.
    Values(&'static [&'static str]),
}

/// One prompt argument.
#[derive(Clone, Copy, Debug)]
pub struct PromptArg {
    /// Its name.
    pub name: &'static str,
    /// What to put there, for a person and a model.
    pub description: &'static str,
    /// Whether `prompts/get` refuses a call without it.
    pub required: bool,
    /// What completions offer for it.
    pub completion: Completion,
}

/// One prompt.
#[derive(Clone, Copy, Debug)]
pub struct PromptDef {
    /// Its name.
    pub name: &'static str,
    /// A human title.
    pub title: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Its arguments.
    pub arguments: &'static [PromptArg],
}

/// Why a prompt's messages could not be built: answered -32602 with this text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptError(pub String);

/// A set of prompts.
pub trait PromptProvider: Send + Sync {
    /// The prompts it serves, in listing order.
    fn prompts(&self) -> &'static [PromptDef];
    /// The messages of `prompt` for `args`: every required argument is present and non-blank,
    /// and no other is (the caller checked).
    ///
    /// # Errors
    /// [`PromptError`] when the arguments name something that does not exist.
    fn messages(
        &self,
        prompt: &PromptDef,
        args: &Map<String, Value>,
        registry: &Registry,
    ) -> Result<Vec<Value>, PromptError>;
}

const SLUG: PromptArg = PromptArg {
    name: "slug",
    description: "The change id (an active change; completions list them).",
    required: true,
    completion: Completion::Variable("slug"),
};

const OPENSPEC_PROMPTS: &[PromptDef] = &[
    PromptDef {
        name: "proposal",
        title: "Draft an OpenSpec change",
        description: "Turn a request into an OpenSpec change: proposal, tasks and spec deltas, validated.",
        arguments: &[
            PromptArg {
                name: "request",
                description: "What should change, in your words.",
                required: true,
                completion: Completion::None,
            },
            PromptArg {
                name: "slug",
                description: "The change id to use (lowercase words and hyphens); chosen for you when empty.",
                required: false,
                completion: Completion::Variable("slug"),
            },
        ],
    },
    PromptDef {
        name: "apply",
        title: "Work through a change's tasks",
        description: "Implement an OpenSpec change task by task, ticking tasks.md as they are done.",
        arguments: &[SLUG],
    },
    PromptDef {
        name: "archive",
        title: "Check and archive a change",
        description: "Validate a change, preview its archive (spec diffs, warnings), and archive it once confirmed.",
        arguments: &[SLUG],
    },
];

/// The OpenSpec workflow prompts: `proposal`, `apply`, `archive`.
pub struct OpenSpecPrompts;

impl PromptProvider for OpenSpecPrompts {
    fn prompts(&self) -> &'static [PromptDef] {
        OPENSPEC_PROMPTS
    }

    fn messages(
        &self,
        prompt: &PromptDef,
        args: &Map<String, Value>,
        registry: &Registry,
    ) -> Result<Vec<Value>, PromptError> {
        let arg = |n: &str| {
            args.get(n)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        };
        Ok(match prompt.name {
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
        })
    }
}

/// A user message with text content.
pub fn text(s: String) -> Value {
    json!({"role": "user", "content": {"type": "text", "text": s}})
}

/// A user message embedding a resource's contents.
pub fn resource_message(content: &super::ResourceContent) -> Value {
    json!({"role": "user", "content": {"type": "resource", "resource": content}})
}

/// The change's files as embedded resources; a missing optional file (design) is skipped.
fn embedded(registry: &Registry, slug: &str, parts: &[&str]) -> Result<Vec<Value>, PromptError> {
    let mut out = Vec::new();
    for part in parts {
        let uri = format!("change://{slug}/{part}");
        match registry.read_resource(&uri) {
            Ok(contents) => out.extend(contents.iter().map(resource_message)),
            Err(ResourceError::NotFound(_)) if *part == "proposal" => {
                return Err(PromptError(format!(
                    "No active change `{slug}`: change_list shows them"
                )));
            }
            Err(ResourceError::Invalid(why)) => return Err(PromptError(why)),
            Err(_) => {}
        }
    }
    Ok(out)
}
