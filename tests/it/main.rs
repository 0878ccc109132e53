//! The single integration-test binary: one `mod` per area, all against real peers.

mod support;

// Health checks against real disks, threads and time.
mod health_checks;
// HTTP/1.1 framing, limits and deadlines on the TLS port.
mod http1;
// Process-level behaviour: signals, reload, graceful shutdown, the CLI.
mod process;
// Our archive and validate against the real openspec CLI on identical workspaces.
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
// OTLP export to a real collector socket, checked by the real protobuf JSON parser.
mod trace_export;
// MCP wire behaviour (brief §2.3 table), streams, sessions, legacy SSE, seed APIs.
mod mcp_harness;
mod mcp_streams;
mod mcp_wire;
// Attacks tried against the security layer, and what each got.
mod security;
// Capacity: a thousand SSE streams held at once, each with every heartbeat (issue 3).
mod capacity;
