//! `tools::schema::check` against the input schemas the real tools declare: no panic on any
//! arguments; a refusal's pointer names a place in the input (or, for a missing field, a place
//! whose parent is in the input); an accepted object holds only declared properties when the
//! schema closes it, and every required one.
//!
//! Input: byte 0 picks the tool (modulo the number of tools), the rest is the JSON arguments.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use task_mcp::tools::schema::check;
use task_mcp::tools::{Registry, openspec};

fn schemas() -> &'static Vec<Value> {
    static SCHEMAS: OnceLock<Vec<Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fuzz-tool-arguments-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("openspec/changes")).unwrap();
        let ws = Arc::new(task_mcp::openspec::Workspace::open(&dir).unwrap());
        let mut reg = Registry::new();
        openspec::register(
            &mut reg,
            ws,
            task_mcp::tools::options::ToolOptions::default(),
        );
        reg.add_tool(Arc::new(task_mcp::tools::testing::Echo::new()));
        reg.add_tool(Arc::new(task_mcp::tools::testing::Slow::new()));
        reg.tools()
            .iter()
            .map(|t| t.def().input_schema.clone())
            .collect()
    })
}

fuzz_target!(|input: &[u8]| {
    let [pick, json @ ..] = input else {
        return;
    };
    let Ok(args) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let schemas = schemas();
    let schema = &schemas[usize::from(*pick) % schemas.len()];
    match check(schema, &args) {
        Err(e) => {
            let here = args.pointer(&e.pointer).is_some();
            let parent = e
                .pointer
                .rsplit_once('/')
                .is_some_and(|(p, _)| args.pointer(p).is_some());
            assert!(
                here || (e.message == "is required" && parent),
                "pointer {} does not resolve in {args}: {e}",
                e.pointer
            );
            if let Some(allowed) = &e.allowed {
                let name = e.pointer.rsplit('/').next().unwrap_or("");
                assert!(!allowed.iter().any(|a| a == name), "{e}");
            }
        }
        Ok(()) => {
            let obj = args.as_object().expect("the tool schemas take objects");
            let props = schema["properties"].as_object().unwrap();
            if schema["additionalProperties"] == false {
                assert!(obj.keys().all(|k| props.contains_key(k)), "{args}");
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                assert!(obj.contains_key(r.as_str().unwrap()), "{args}");
            }
        }
    }
});
