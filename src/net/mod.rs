//! The socket and thread code: everything that owns a connection or a thread that serves one.
//!
//! - `accept`: the accept loop and the over-cap refuser.
//! - `pool`: the worker pool.
//! - `conn`: one connection's keep-alive loop on a worker (handshake, request, answer, a POST's
//!   streamed answer).
//! - `idle`: the idle set, where keep-alive connections wait between requests without a thread.
//! - [`stream`]: streamed answers run on their worker, mailboxes, the hang-up watcher.
//! - [`hub`]: held streams (legacy `GET /sse`, MCP `GET /mcp`, the status page) without threads.
//! - [`tls`]: rustls configuration, its live reload, the first-run certificate.
//! - [`client`]: the one outgoing HTTP client (OTLP exports, the health check).

pub(crate) mod accept;
pub mod client;
pub(crate) mod conn;
pub mod hub;
pub(crate) mod idle;
pub(crate) mod pool;
pub mod stream;
pub mod tls;
