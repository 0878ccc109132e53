//! The fixtures the official MCP conformance suite (`@modelcontextprotocol/conformance`) calls:
//! tools returning each content type, logging, progress, sampling and elicitation; static,
//! binary and templated resources; prompts with arguments, resources and images.
//!
//! They exist so every scenario of the suite can run against this server (`.ci/conformance.sh`)
//! and are registered only with `ENABLE_TEST_TOOLS=true`; a production server lists none of them.
//! Names, texts and shapes are the suite's.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::prompts::{Completion, PromptArg, PromptDef, PromptError, PromptProvider, text};
use super::{
    Effect, LogLevel, Progress, Registry, ResourceContent, ResourceError, ResourceInfo,
    ResourceProvider, ResourceTemplate, Tool, ToolCtx, ToolDef, ToolError,
};

/// A 1×1 red PNG.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// One millisecond of silence: an 8 kHz, 8-bit mono WAV.
pub const WAV_BASE64: &str =
    "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

type Run = fn(&Value, &mut ToolCtx<'_>) -> Result<Value, ToolError>;

/// A fixture tool: its definition and a plain function. Fixtures declare no output schema and
/// return their content blocks (an array), as [`Tool::call`] allows.
pub struct Fixture {
    def: ToolDef,
    run: Run,
}

impl Tool for Fixture {
    fn def(&self) -> &ToolDef {
        &self.def
    }

    fn call(&self, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        (self.run)(args, ctx)
    }
}

/// The definition helper: a read-only fixture with `input_schema`'s properties (each described).
fn fixture(
    name: &'static str,
    description: &'static str,
    properties: Value,
    required: &[&str],
    progress: bool,
    talks: bool,
    run: Run,
) -> Fixture {
    let mut def = ToolDef::new(name, name, Effect::Reads, description).input(json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }));
    def.output_schema = Value::Null;
    def.progress = progress;
    def.talks = talks;
    Fixture { def, run }
}

fn text_block(s: impl Into<String>) -> Value {
    json!({"type": "text", "text": s.into()})
}

fn image_block() -> Value {
    json!({"type": "image", "data": PNG_BASE64, "mimeType": "image/png"})
}

/// Every fixture tool, in listing order.
pub fn tools() -> Vec<Fixture> {
    let none = || json!({});
    vec![
        fixture(
            "test_simple_text",
            "Returns one text block (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| {
                Ok(json!([text_block(
                    "This is a simple text response for testing."
                )]))
            },
        ),
        fixture(
            "test_image_content",
            "Returns one PNG image block (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| Ok(json!([image_block()])),
        ),
        fixture(
            "test_audio_content",
            "Returns one WAV audio block (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| Ok(json!([{"type": "audio", "data": WAV_BASE64, "mimeType": "audio/wav"}])),
        ),
        fixture(
            "test_embedded_resource",
            "Returns an embedded text resource (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| {
                Ok(json!([{"type": "resource", "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content.",
                }}]))
            },
        ),
        fixture(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| {
                Ok(json!([
                    text_block("Multiple content types test:"),
                    image_block(),
                    {"type": "resource", "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": "{\"test\":\"data\",\"value\":123}",
                    }},
                ]))
            },
        ),
        fixture(
            "test_tool_with_logging",
            "Sends three info log messages 50 ms apart while it runs (conformance fixture).",
            none(),
            &[],
            false,
            true,
            |_, ctx| {
                ctx.log(LogLevel::Info, json!("Tool execution started"));
                pause(ctx, 50);
                ctx.log(LogLevel::Info, json!("Tool processing data"));
                pause(ctx, 50);
                ctx.log(LogLevel::Info, json!("Tool execution completed"));
                Ok(json!([text_block("Logging test completed")]))
            },
        ),
        fixture(
            "test_error_handling",
            "Always fails (conformance fixture).",
            none(),
            &[],
            false,
            false,
            |_, _| {
                Err(ToolError::new(
                    "ETEST",
                    "This tool intentionally returns an error for testing",
                ))
            },
        ),
        fixture(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100, 50 ms apart (conformance fixture).",
            none(),
            &[],
            true,
            false,
            |_, ctx| {
                for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        pause(ctx, 50);
                    }
                    ctx.progress(Progress {
                        progress: p,
                        total: Some(100.0),
                        message: None,
                    });
                }
                Ok(json!([text_block("Progress test completed")]))
            },
        ),
        fixture(
            "test_sampling",
            "Asks the client's model to answer `prompt` (sampling/createMessage; conformance fixture).",
            json!({"prompt": {"type": "string", "description": "The prompt to send to the client's model."}}),
            &["prompt"],
            false,
            true,
            |args, ctx| {
                let prompt = args["prompt"].as_str().unwrap_or_default();
                let answer = ctx.client.request(
                    "sampling/createMessage",
                    json!({
                        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                        "maxTokens": 100,
                    }),
                )?;
                let said = answer["content"]["text"].as_str().unwrap_or_default();
                Ok(json!([text_block(format!("LLM response: {said}"))]))
            },
        ),
        fixture(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create; conformance fixture).",
            json!({"message": {"type": "string", "description": "The message to show the user."}}),
            &["message"],
            false,
            true,
            |args, ctx| {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"},
                    },
                    "required": ["username", "email"],
                });
                elicit(
                    ctx,
                    args["message"].as_str().unwrap_or_default(),
                    schema,
                    "User response",
                )
            },
        ),
        fixture(
            "test_elicitation_sep1034_defaults",
            "Elicits fields of every primitive type with defaults (SEP-1034; conformance fixture).",
            none(),
            &[],
            false,
            true,
            |_, ctx| {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {"type": "string", "description": "User status",
                            "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Verification status", "default": true},
                    },
                    "required": [],
                });
                elicit(
                    ctx,
                    "Test client default value handling - please accept with defaults",
                    schema,
                    "Elicitation completed",
                )
            },
        ),
        fixture(
            "test_elicitation_sep1330_enums",
            "Elicits the five enum variants of SEP-1330 (conformance fixture).",
            none(),
            &[],
            false,
            true,
            |_, ctx| {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"},
                        ]},
                        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array",
                            "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "items": {"anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]}},
                    },
                    "required": [],
                });
                elicit(
                    ctx,
                    "Test enum schema variants",
                    schema,
                    "Elicitation completed",
                )
            },
        ),
        json_schema_2020_12(),
        fixture(
            "test_reconnection",
            "Runs for 100 ms, for the SSE polling scenario (SEP-1699; conformance fixture).",
            none(),
            &[],
            false,
            true,
            |_, ctx| {
                pause(ctx, 100);
                Ok(json!([text_block(
                    "Reconnection test completed successfully"
                )]))
            },
        ),
    ]
}

/// The tool whose input schema uses JSON Schema 2020-12 features (`$schema`, `$defs`, `$ref`).
fn json_schema_2020_12() -> Fixture {
    let mut f = fixture(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features (conformance fixture).",
        json!({}),
        &[],
        false,
        false,
        |args, _| Ok(json!([text_block(format!("Received: {args}"))])),
    );
    f.def.input_schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "description": "A postal address.",
                "properties": {
                    "street": {"type": "string", "description": "Street and number."},
                    "city": {"type": "string", "description": "The city or town."},
                },
            },
        },
        "properties": {
            "name": {"type": "string", "description": "The person's name."},
            "address": {"$ref": "#/$defs/address", "description": "Where the person lives."},
        },
        "additionalProperties": false,
    });
    f
}

fn elicit(
    ctx: &mut ToolCtx<'_>,
    message: &str,
    schema: Value,
    label: &str,
) -> Result<Value, ToolError> {
    let answer = ctx.client.request(
        "elicitation/create",
        json!({"message": message, "requestedSchema": schema}),
    )?;
    let action = answer["action"].as_str().unwrap_or("unknown");
    let content = answer.get("content").cloned().unwrap_or(Value::Null);
    Ok(json!([text_block(format!(
        "{label}: action={action}, content={content}"
    ))]))
}

/// Waits `ms`, unless the call is cancelled.
fn pause(ctx: &ToolCtx<'_>, ms: u64) {
    if !ctx.is_cancelled() {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// The fixture resources: `test://static-text`, `test://static-binary`,
/// `test://watched-resource` and the template `test://template/{id}/data`.
pub struct Resources;

const STATIC_TEXT: &str = "This is the content of the static text resource.";

impl ResourceProvider for Resources {
    fn list(
        &self,
        cursor: Option<&str>,
    ) -> Result<(Vec<ResourceInfo>, Option<String>), ResourceError> {
        if let Some(c) = cursor {
            return Err(ResourceError::Invalid(format!("Invalid cursor {c}")));
        }
        let info = |uri: &str, name: &str, description: &str, mime: &str| ResourceInfo {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: Some(description.into()),
            mime_type: Some(mime.into()),
        };
        Ok((
            vec![
                info(
                    "test://static-text",
                    "static-text",
                    "A static text resource (conformance fixture).",
                    "text/plain",
                ),
                info(
                    "test://static-binary",
                    "static-binary",
                    "A static PNG (conformance fixture).",
                    "image/png",
                ),
                info(
                    "test://watched-resource",
                    "watched-resource",
                    "A resource to subscribe to (conformance fixture).",
                    "text/plain",
                ),
            ],
            None,
        ))
    }

    fn templates(&self) -> Vec<ResourceTemplate> {
        vec![ResourceTemplate {
            uri_template: "test://template/{id}/data".into(),
            name: "template-data".into(),
            description: "JSON naming the id it was read with (conformance fixture).".into(),
            mime_type: "application/json".into(),
        }]
    }

    fn read(&self, uri: &str) -> Result<Option<Vec<ResourceContent>>, ResourceError> {
        let Some(rest) = uri.strip_prefix("test://") else {
            return Ok(None);
        };
        let content = match rest {
            "static-text" => ResourceContent::text(uri, "text/plain", STATIC_TEXT.into()),
            "watched-resource" => {
                ResourceContent::text(uri, "text/plain", "Watched resource content.".into())
            }
            "static-binary" => ResourceContent {
                uri: uri.into(),
                mime_type: "image/png".into(),
                text: None,
                blob: Some(PNG_BASE64.into()),
            },
            _ => {
                let id = rest
                    .strip_prefix("template/")
                    .and_then(|r| r.strip_suffix("/data"))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                    .ok_or_else(|| ResourceError::NotFound(uri.into()))?;
                let body =
                    json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
                ResourceContent::text(uri, "application/json", body.to_string())
            }
        };
        Ok(Some(vec![content]))
    }

    fn complete(&self, variable: &str, _context: &[(String, String)]) -> Vec<String> {
        match variable {
            "id" => vec!["123".into()],
            _ => Vec::new(),
        }
    }
}

/// The fixture prompts.
pub struct Prompts;

const PROMPTS: &[PromptDef] = &[
    PromptDef {
        name: "test_simple_prompt",
        title: "Simple prompt",
        description: "A prompt without arguments (conformance fixture).",
        arguments: &[],
    },
    PromptDef {
        name: "test_prompt_with_arguments",
        title: "Prompt with arguments",
        description: "A prompt that repeats its two arguments (conformance fixture).",
        arguments: &[
            PromptArg {
                name: "arg1",
                description: "First test argument",
                required: true,
                completion: Completion::Values(&["paris", "park", "party", "test", "testing"]),
            },
            PromptArg {
                name: "arg2",
                description: "Second test argument",
                required: true,
                completion: Completion::None,
            },
        ],
    },
    PromptDef {
        name: "test_prompt_with_embedded_resource",
        title: "Prompt with a resource",
        description: "A prompt embedding the resource it is given (conformance fixture).",
        arguments: &[PromptArg {
            name: "resourceUri",
            description: "URI of the resource to embed",
            required: true,
            completion: Completion::None,
        }],
    },
    PromptDef {
        name: "test_prompt_with_image",
        title: "Prompt with an image",
        description: "A prompt with an image (conformance fixture).",
        arguments: &[],
    },
];

impl PromptProvider for Prompts {
    fn prompts(&self) -> &'static [PromptDef] {
        PROMPTS
    }

    fn messages(
        &self,
        prompt: &PromptDef,
        args: &Map<String, Value>,
        _registry: &Registry,
    ) -> Result<Vec<Value>, PromptError> {
        let arg = |n: &str| args.get(n).and_then(Value::as_str).unwrap_or_default();
        Ok(match prompt.name {
            "test_simple_prompt" => vec![text("This is a simple prompt for testing.".into())],
            "test_prompt_with_arguments" => vec![text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg("arg1"),
                arg("arg2")
            ))],
            "test_prompt_with_embedded_resource" => vec![
                json!({"role": "user", "content": {"type": "resource", "resource": {
                    "uri": arg("resourceUri"),
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing.",
                }}}),
                text("Please process the embedded resource above.".into()),
            ],
            _ => vec![
                json!({"role": "user", "content": image_block()}),
                text("Please analyze the image above.".into()),
            ],
        })
    }
}

/// Registers every fixture: tools, resources and prompts.
pub fn register(registry: &mut Registry) {
    for t in tools() {
        registry.add_tool(std::sync::Arc::new(t));
    }
    registry.add_resources(std::sync::Arc::new(Resources));
    registry.add_prompts(std::sync::Arc::new(Prompts));
}
