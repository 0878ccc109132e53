//! JSON-RPC parsing and dispatch through the real `POST /mcp` handler (no socket, no TLS), and
//! the OpenSpec delta merge on a generated 1,000-requirement spec.

use std::sync::Arc;

use divan::{Bencher, black_box};
use task_mcp::http::request::{HeadLimits, parse_head};
use task_mcp::http::{Body, Head};
use task_mcp::mcp::{self, Caller, McpEnv, NoHooks, Settings};
use task_mcp::openspec::Workspace;
use task_mcp::openspec::spec::build_updated_spec;
use task_mcp::rpc;
use task_mcp::tools::openspec::register;
use task_mcp::tools::options::ToolOptions;
use task_mcp::tools::testing::Echo;
use task_mcp::tools::{Access, Registry};

fn main() {
    divan::main();
}

const PING: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const TOOLS_LIST: &[u8] = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
const ECHO_CALL: &[u8] =
    br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

#[divan::bench(args = ["ping", "tools_list"])]
fn rpc_parse(bencher: Bencher, name: &str) {
    let body = body(name);
    bencher.bench(|| rpc::parse(black_box(body)));
}

#[divan::bench(args = ["ping", "tools_list", "tools_call_echo"])]
fn mcp_post(bencher: Bencher, name: &str) {
    let body = body(name);
    let (env, head, caller, _dir) = dispatcher();
    bencher.bench(|| {
        let resp = mcp::http::post(&env, &head, black_box(body), &caller);
        assert!(matches!(resp.body, Body::Bytes(_)) && resp.status == 200);
        resp
    });
}

/// 10 MODIFIED, 5 ADDED, 5 REMOVED and 2 RENAMED requirements applied to a 1,000-requirement
/// spec.
#[divan::bench]
fn delta_merge_1000_requirements(bencher: Bencher) {
    let spec = generated_spec(1_000);
    let mut delta = String::from("## ADDED Requirements\n\n");
    for i in 0..5 {
        delta.push_str(&requirement(&format!("New capability {i}"), "added"));
    }
    delta.push_str("## MODIFIED Requirements\n\n");
    for i in (100..1_000).step_by(90) {
        delta.push_str(&requirement(&format!("Capability {i}"), "modified"));
    }
    delta.push_str("## REMOVED Requirements\n\n");
    for i in 0..5 {
        delta.push_str(&format!("### Requirement: Capability {}\n\n", 3 + i * 7));
    }
    delta.push_str("## RENAMED Requirements\n\n");
    for i in [2, 4] {
        delta.push_str(&format!(
            "- FROM: `### Requirement: Capability {i}`\n- TO: `### Requirement: Renamed capability {i}`\n\n"
        ));
    }
    let built = build_updated_spec("bench", &delta, Some(&spec), "specs/bench/spec.md", "bench")
        .expect("the generated delta applies");
    assert_eq!(built.counts.total(), 5 + 10 + 5 + 2);
    bencher.bench(|| {
        build_updated_spec(
            "bench",
            black_box(&delta),
            Some(black_box(&spec)),
            "specs/bench/spec.md",
            "bench",
        )
    });
}

fn body(name: &str) -> &'static [u8] {
    match name {
        "ping" => PING,
        "tools_list" => TOOLS_LIST,
        _ => ECHO_CALL,
    }
}

/// The real dispatcher with the OpenSpec tools over an empty workspace, plus `echo`.
fn dispatcher() -> (Arc<McpEnv>, Head, Caller, TempDir) {
    let dir = TempDir::new("dispatch");
    std::fs::create_dir_all(dir.0.join("openspec/changes")).expect("create workspace");
    let ws = Arc::new(Workspace::open(&dir.0).expect("open workspace"));
    let mut reg = Registry::new();
    register(&mut reg, ws, ToolOptions::default());
    reg.add_tool(Arc::new(Echo::new()));
    let env = Arc::new(McpEnv::new(reg, Settings::default(), Arc::new(NoHooks)));
    let raw = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\n\
                Mcp-Protocol-Version: 2025-06-18\r\n\r\n";
    let (_, head) = parse_head(raw, &HeadLimits::default())
        .ok()
        .flatten()
        .expect("bench head parses");
    let caller = Caller {
        identity: "bench".into(),
        grants: Access::Admin,
    };
    (env, head, caller, dir)
}

fn generated_spec(n: usize) -> String {
    let mut s = String::from(
        "# bench Specification\n\n## Purpose\nA generated spec for the delta merge benchmark.\n\n## Requirements\n",
    );
    for i in 0..n {
        s.push_str(&requirement(&format!("Capability {i}"), "original"));
    }
    s
}

fn requirement(name: &str, flavour: &str) -> String {
    format!(
        "### Requirement: {name}\nThe system SHALL provide {name} ({flavour}).\n\n\
         #### Scenario: {name} works\n- **WHEN** a caller uses {name}\n- **THEN** it succeeds\n\n"
    )
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("task-mcp-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
