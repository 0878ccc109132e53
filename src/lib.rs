//! # task-mcp
//!
//! An MCP server over HTTPS that lets Claude (through Anthropic's MCP connector) and every other
//! MCP client manage OpenSpec changes in a repository.
//!
//! ## Architecture
//!
//! ```text
//!  accept loop (server/accept.rs) ──▶ worker pool (pool.rs) ──▶ conn.rs keep-alive loop
//!        │ IP lists, per-IP and total caps (security/)           │ http::request parses a head
//!        │ TLS handshake (tls.rs)                                │ routes/: pipeline, one `match`
//!        ▼                                                       ▼
//!  signal thread (server/):                          handlers return a Response; a streamed
//!  SIGHUP reloads TLS and tokens, SIGTERM drains     response hands the connection to its own
//!                                                    thread (stream.rs), which owns it to the end
//! ```
//!
//! Layers, roughly lowest first: `access` (who calls, what they may do), `clock`,
//! `random`, `fsx`; the sans-IO cores [`http`], [`sse`], [`ndjson`], [`rpc`], [`openspec`];
//! [`config`], [`security`], [`tools`]; [`stream`] and `watch`; [`mcp`] (the protocol:
//! methods, sessions, talking to the client in `mcp/client.rs`); [`health`], [`metrics`],
//! [`trace`]; [`app`], [`routes`], `conn`, [`server`]. The file-level import graph
//! (`.ci/import-graph.py`, run in CI) has one circle left: `http/response.rs` names the stream body
//! type of [`stream`].
//!
//! Background threads: the over-cap refuser (503s), the metrics port when `ENABLE_PROMETHEUS`,
//! `health-runner` (periodic checks, health.rs), `otlp-exporter` when `OTEL_ENABLED` and
//! `otlp-metrics` with an OTLP metrics endpoint (trace/), `watch-files` (certificate, key and
//! tokens file changed on disk), `watch` (the workspace, for resource subscribers; `watch`).
//!
//! `docs/ARCHITECTURE.md` gives the layers in import order and where to add a tool, a setting
//! or a metric.
//!
//! Sans-IO cores (parsers take bytes and return `Ok(None)` for "need more"): [`http`], [`sse`],
//! [`ndjson`], [`rpc`], [`openspec`], [`trace::otlp_metrics`], [`security::resp`],
//! [`security::audit_query`]. Only `server`, `pool`, `conn`, `stream`, `tls`, `watch` and the
//! background threads above touch sockets or threads.
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
pub(crate) mod conn;
pub(crate) mod connect;
pub(crate) mod fsx;
pub mod health;
pub mod http;
pub mod hub;
pub(crate) mod idle;
pub(crate) mod logging;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod openspec;
pub mod page;
pub(crate) mod pool;
pub(crate) mod random;
pub mod routes;
pub mod rpc;
pub mod security;
pub mod server;
pub mod sse;
pub mod stream;
pub mod tls;
pub mod tools;
pub mod trace;
pub(crate) mod watch;
