//! The single integration-test binary: one `mod` per area.
//!
//! `cargo test` needs nothing but the Rust toolchain: where a test compares with an outside
//! program, it replays what that program did (`golden`, for the `openspec` CLI) or checks the same
//! schema in Rust (`otlp_check`). With `--features live` (`.ci/live-tests.sh`) the same tests run
//! the real programs too (the CLI, `redis-server`, Python's `opentelemetry-proto`, `promtool`), and
//! a missing one fails with its install command.

mod support;

// The openspec CLI's recorded answers, replayed (or re-checked live).
mod golden;
// OTLP trace bodies checked against the protobuf JSON mapping (and the real parser, live).
mod otlp_check;

// Health checks against real disks, threads and time.
mod health_checks;
// HTTP/1.1 framing, limits and deadlines on the TLS port.
mod http1;
// Process-level behaviour: signals, reload, graceful shutdown, the CLI.
mod process;
// Our archive and validate against the openspec CLI on identical workspaces.
mod openspec_cli;
// Crash-safety of archive: a child killed at every step, then recovered.
mod openspec_crash;
// The OpenSpec tools called as MCP tools.
mod openspec_tools;
// Tracing, health and /debug/vars wired into a running server.
mod observability;
// The whole workflow through the MCP endpoint of a real server, checked by the real CLI.
mod openspec_workflow;
// Real server processes killed at each archive step and restarted; processes racing on one root.
mod openspec_process_crash;
// OTLP export to a real collector socket, checked by the OTLP schema.
mod trace_export;
// MCP wire behaviour (brief §2.3 table), streams, sessions, legacy SSE, seed APIs.
mod mcp_client;
mod mcp_harness;
// Prompts and completions against a real workspace.
mod mcp_prompts;
mod mcp_streams;
mod mcp_wire;
// The tool contract: schema-checked arguments on every transport, archive preview, no paths.
mod tool_contract;
// A new user's first run: an empty folder stays empty, `task-mcp connect` names what was made.
mod first_run;
// Attacks tried against the security layer, and what each got.
mod security;
// Capacity: a thousand SSE streams held at once, each with every heartbeat (issue 3).
mod capacity;
