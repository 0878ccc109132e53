//! # task-mcp
//!
//! An MCP server over HTTPS that lets Claude (through Anthropic's MCP connector) and every other
//! MCP client manage OpenSpec changes in a repository.
//!
//! ## Architecture
//!
//! ```text
//!  accept loop (net/accept.rs) ──▶ ready set (net/idle.rs) ──▶ worker (net/workers.rs):
//!        │ IP lists, per-IP and total caps (security/)   ▲     │ net/conn.rs: TLS handshake
//!        │                                                │     │ (net/tls.rs), http::request
//!        ▼                                                │     ▼ parses a head, routes/ runs
//!  signal thread (server.rs):                             └─ park after the answer; a POST's
//!  SIGHUP reloads TLS and tokens,                            stream runs on its worker
//!  SIGTERM drains                                            (net/stream.rs); a held stream
//!                                                            goes to the hub (net/hub.rs)
//! ```
//!
//! Layers, lowest first (imports point down; `.ci/import-graph.py`, run in CI, finds no circle):
//! `access` (who calls, what they may do), `clock`, `random`, `fsx`, [`config`]; the sans-IO
//! cores [`http`], [`sse`], [`ndjson`], [`rpc`], [`openspec`]; [`security`], [`tools`]; [`net`]
//! (sockets and threads: accept, the ready set and its workers, connections, streams, the hub,
//! TLS, a plain pool for tool calls) and
//! `watch`; [`mcp`] (the protocol: methods, sessions, talking to the client in
//! `mcp/client.rs`); [`observe`] (health, metrics, traces, logs); [`app`], [`routes`],
//! [`server`]; [`cli`] and `connect`.
//!
//! Background threads: the over-cap refuser (503s), `keeper` (parked connections' deadlines,
//! stuck workers),
//! `held-streams` (the hub), `stream-watch` (hang-ups of POST streams that wait), the metrics
//! port when `ENABLE_PROMETHEUS`, `health-runner` (periodic checks), `otlp-exporter` when
//! `OTEL_ENABLED` and `otlp-metrics` with an OTLP metrics endpoint, `watch-files` (certificate,
//! key and tokens file changed on disk), `watch` (the workspace, for resource subscribers).
//!
//! `docs/ARCHITECTURE.md` gives the layers in import order, which thread owns what, and where to
//! add a tool, a setting or a metric.
//!
//! Sans-IO cores (parsers take bytes and return `Ok(None)` for "need more"): [`http`], [`sse`],
//! [`ndjson`], [`rpc`], [`openspec`], `observe::trace::otlp_metrics`, [`security::resp`],
//! `security::audit_query`. Only [`net`], [`server`], `watch` and the background threads above
//! touch sockets or threads.
#![forbid(unsafe_code)]
#![warn(clippy::all)]
// Nested `if let` often reads better than a let-chain, and a few signatures are clearer spelled
// out than behind a one-use alias.
#![allow(clippy::collapsible_if, clippy::type_complexity)]
#![deny(missing_docs)]

// Modules used only inside the crate are `pub(crate)`, so the compiler reports what in them
// goes unused; the rest are the library surface the integration tests, benches and fuzz targets
// use.

pub(crate) mod access;
pub mod app;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod connect;
pub(crate) mod fsx;
pub mod http;
pub mod mcp;
pub mod ndjson;
pub mod net;
pub mod observe;
pub mod openspec;
pub mod page;
pub(crate) mod random;
pub mod routes;
pub mod rpc;
pub mod security;
pub mod server;
pub mod sse;
pub mod tools;
pub(crate) mod watch;
