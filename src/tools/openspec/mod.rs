//! The OpenSpec tools: open, write, validate, show, list, archive and unarchive changes; list
//! and show specs.
//!
//! Each tool has its own file here with two functions: `def`, its [`ToolDef`] (built once, by
//! [`ToolDef::new`]; the input schema it declares is what `tools/list` shows and what every call
//! is checked against), and `run`, which serves a call over the shared [`Workspace`]. What several
//! tools share lives below them: argument readers and schemas (`args`), pieces of results
//! (`views`) and the mapping of engine errors to tool errors (`errors`).
//!
//! Writers hold the change lease (`<change>/.lock`, owner = the caller's identity) and an
//! exclusive directory lock while they write, so two callers on one change get one winner and
//! `ELOCKED` for the rest, while callers on different changes never wait for each other
//! (archives of one workspace are serialised inside the engine because they may touch the same
//! spec).

use std::sync::Arc;

use serde_json::{Value, json};

use super::options::ToolOptions;
use super::{LogLevel, Registry, Tool, ToolCtx, ToolDef, ToolError};
use crate::openspec::Workspace;

mod args;
mod change_archive;
mod change_list;
mod change_open;
mod change_show;
mod change_unarchive;
mod change_validate;
mod change_write;
mod errors;
mod spec_list;
mod spec_show;
mod views;

pub use errors::map_err;

/// One OpenSpec tool: its description, the shared workspace and limits, and the function that
/// runs it. Every tool is one of these, so the registry and the transports see a plain [`Tool`].
pub struct OpenSpecTool {
    def: ToolDef,
    ws: Arc<Workspace>,
    opts: ToolOptions,
    run: Run,
}

type Run = fn(&OpenSpecTool, &Value, &mut ToolCtx<'_>) -> Result<Value, ToolError>;

/// Registers every OpenSpec tool (in listing order) and the resource provider.
pub fn register(reg: &mut Registry, ws: Arc<Workspace>, opts: ToolOptions) {
    let tools: [(ToolDef, Run); 9] = [
        (change_open::def(&opts), change_open::run),
        (change_write::def(&opts), change_write::run),
        (change_validate::def(&opts), change_validate::run),
        (change_show::def(&opts), change_show::run),
        (change_list::def(&opts), change_list::run),
        (change_archive::def(&opts), change_archive::run),
        (change_unarchive::def(&opts), change_unarchive::run),
        (spec_list::def(&opts), spec_list::run),
        (spec_show::def(&opts), spec_show::run),
    ];
    for (def, run) in tools {
        reg.add_tool(Arc::new(OpenSpecTool {
            def,
            ws: ws.clone(),
            opts,
            run,
        }));
    }
    reg.add_resources(Arc::new(super::resources::OpenSpecResources::new(ws, opts)));
    reg.add_prompts(Arc::new(super::prompts::OpenSpecPrompts));
}

impl Tool for OpenSpecTool {
    fn def(&self) -> &ToolDef {
        &self.def
    }

    fn call(&self, args: &Value, ctx: &mut ToolCtx<'_>) -> Result<Value, ToolError> {
        let out = (self.run)(self, args, ctx);
        if let Err(e) = &out
            && e.code == "ELOCKED"
        {
            // Worth a person's notice: someone else is working on this change.
            ctx.log(
                LogLevel::Notice,
                json!({"tool": self.def.name, "message": e.message, "lease": e.details}),
            );
        }
        out
    }
}

/// Sends each warning as a `warning` log message (the result carries them too; the log reaches
/// a person watching the client's log view).
fn log_warnings(ctx: &mut ToolCtx<'_>, tool: &str, slug: &str, warnings: &[String]) {
    for w in warnings {
        ctx.log(
            LogLevel::Warning,
            json!({"tool": tool, "slug": slug, "message": w}),
        );
    }
}

/// The `apiVersion` of every tool result.
pub const API_VERSION: &str = "1.0";
/// The OpenSpec CLI version whose behaviour the engine matches.
pub const OPENSPEC_COMPAT: &str = "1.13.2";
/// The receipt written inside an archived change.
pub const RECEIPT_FILE: &str = "receipt.json";
