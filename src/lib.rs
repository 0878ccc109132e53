//! # task-mcp
//!
//! An MCP server over HTTPS that lets Claude (through Anthropic's MCP connector) and every other
//! MCP client manage OpenSpec changes in a repository.
//!
//! ## Architecture
//!
//! ```text
//!  accept loop (server.rs) ──crossbeam──▶ worker pool (pool.rs) ──▶ conn.rs keep-alive loop
//!        │ IP lists, per-IP and total caps (security/)             │ http::request parses a head
//!        │ TLS handshake (tls.rs)                                  │ routes.rs: pipeline, one `match`
//!        ▼                                                         ▼
//!  signal thread (server.rs):                         handlers return a Response; a streamed
//!  SIGHUP reloads TLS, SIGTERM drains                 response hands the connection to its own
//!                                                     thread (stream.rs), which owns it to the end
//! ```
//!
//! Background threads: the over-cap refuser (503s), the metrics port when `ENABLE_PROMETHEUS`,
//! `health-runner` (periodic checks, health.rs), `otlp-exporter` when `OTEL_ENABLED` (trace/).
//!
//! `docs/ARCHITECTURE.md` gives the layers in import order and where to add a tool, a setting
//! or a metric.
//!
//! Sans-IO cores (parsers take bytes and return `Ok(None)` for "need more"): [`http`], [`sse`],
//! [`ndjson`], [`rpc`], [`openspec`]. Only `server`, `pool`, `conn`, `stream`, `tls` and the
//! background threads above touch sockets or threads.
#![forbid(unsafe_code)]
#![warn(clippy::all)]
// Nested `if let` often reads better than a let-chain, and a few signatures are clearer spelled
// out than behind a one-use alias.
#![allow(clippy::collapsible_if, clippy::type_complexity)]
#![deny(missing_docs)]

pub mod access;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod connect;
pub mod fsx;
pub mod health;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod openspec;
pub mod page;
pub mod pool;
pub mod random;
pub mod routes;
pub mod rpc;
pub mod security;
pub mod server;
pub mod sse;
pub mod stream;
pub mod tls;
pub mod tools;
pub mod trace;
pub mod watch;
