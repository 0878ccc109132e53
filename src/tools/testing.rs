//! Tools that exercise the transports: an echo and a slow tool that reports progress.
//!
//! They are registered only when `ENABLE_TEST_TOOLS=true` (the test suite and the benchmarks use
//! them); a production server lists only the OpenSpec tools.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Effect, Progress, Tool, ToolCtx, ToolDef, ToolError};

/// Echoes `text` back. Read-only: the cheapest possible tool, for benchmarks.
pub struct Echo {
    def: ToolDef,
}

impl Echo {
    /// The echo tool.
    pub fn new() -> Self {
        Self {
            def: ToolDef::new(
                "echo",
                "Echo",
                Effect::Reads,
                "Echo the text back (a test tool).",
            )
            .alias("test.echo")
            .input(json!({
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": 65536}},
                "additionalProperties": false
            }))
            .output(json!({
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"]
            })),
        }
    }
}

impl Default for Echo {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for Echo {
    fn def(&self) -> &ToolDef {
        &self.def
    }

    fn call(&self, args: &Value, _ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let text = match args.get("text") {
            None => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(ToolError::new("EBADARGS", "`text` must be a string")
                    .hint("Pass {\"text\": \"...\"}."));
            }
        };
        if let Some(n) = args.get("repeat").and_then(Value::as_u64) {
            return Ok(json!({ "text": text.repeat(n.min(1 << 20) as usize) }));
        }
        Ok(json!({ "text": text }))
    }
}

/// Sleeps `steps` times `step_ms`, reporting progress after each step; stops early when
/// cancelled. Fails on request (`fail: true`) to exercise error paths.
pub struct Slow {
    def: ToolDef,
}

impl Slow {
    /// The slow tool.
    pub fn new() -> Self {
        Self {
            def: ToolDef::new(
                "slow",
                "Slow",
                Effect::Reads,
                "Wait in steps, reporting progress (a test tool).",
            )
            .alias("test.slow")
            .input(json!({
                "type": "object",
                "properties": {
                    "steps": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "step_ms": {"type": "integer", "minimum": 0, "maximum": 60000},
                    "fail": {"type": "boolean"}
                },
                "additionalProperties": false
            }))
            .output(json!({
                "type": "object",
                "properties": {"steps": {"type": "integer"}, "cancelled": {"type": "boolean"}},
                "required": ["steps", "cancelled"]
            }))
            .reports_progress(),
        }
    }
}

impl Default for Slow {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for Slow {
    fn def(&self) -> &ToolDef {
        &self.def
    }

    fn call(&self, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let steps = args
            .get("steps")
            .and_then(Value::as_u64)
            .unwrap_or(3)
            .min(1000);
        let step = Duration::from_millis(
            args.get("step_ms")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .min(60_000),
        );
        let mut done = 0;
        while done < steps {
            if ctx.is_cancelled() {
                return Ok(json!({"steps": done, "cancelled": true}));
            }
            std::thread::sleep(step);
            done += 1;
            ctx.progress(Progress {
                progress: done as f64,
                total: Some(steps as f64),
                message: Some(format!("step {done}")),
            });
        }
        if args.get("fail").and_then(Value::as_bool) == Some(true) {
            return Err(
                ToolError::new("ETEST", "the slow tool failed as asked").hint("Drop `fail`.")
            );
        }
        Ok(json!({"steps": done, "cancelled": false}))
    }
}
