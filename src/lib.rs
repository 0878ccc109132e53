//! # task-mcp
//!
//! An MCP server over HTTPS that lets Claude (through Anthropic's MCP connector) and every other
//! MCP client manage OpenSpec changes in a repository.
//!
//! ## Architecture
//!
//! ```text
//!  accept loop (server.rs) ──crossbeam──▶ worker pool (pool.rs) ──▶ conn.rs keep-alive loop
//!        │ TLS handshake (tls.rs)                                  │ http::request parses a head
//!        │ per-IP / total connection caps                          │ routes.rs: one `match`
//!        ▼                                                         ▼
//!  signals (shutdown.rs)                              handlers return a Response; a streamed
//!                                                     response hands the connection to its own
//!                                                     thread (stream.rs), which owns it to the end
//! ```
//!
//! Sans-IO cores (parsers take bytes and return `Ok(None)` for "need more"): [`http`], [`sse`],
//! [`ndjson`], [`rpc`], [`openspec`]. Only `server`, `pool`, `conn`, `stream` and `tls` touch
//! sockets or threads.
#![forbid(unsafe_code)]
#![warn(clippy::all)]
// Nested `if let` often reads better than a let-chain, and a few signatures are clearer spelled
// out than behind a one-use alias.
#![allow(clippy::collapsible_if, clippy::type_complexity)]
#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod health;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod openspec;
pub mod page;
pub mod pool;
pub mod routes;
pub mod rpc;
pub mod security;
pub mod server;
pub mod sse;
pub mod stream;
pub mod tls;
pub mod tools;
pub mod trace;
