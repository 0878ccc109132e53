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
#![deny(missing_docs)]

pub mod health;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod openspec;
pub mod rpc;
pub mod security;
pub mod sse;
pub mod stream;
pub mod tools;
pub mod trace;
