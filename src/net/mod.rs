//! The socket and thread code: everything that owns a connection or a thread that serves one.
//!
//! - `accept`: the accept loop and the over-cap refuser.
//! - `idle`: the ready set, where connections wait between requests without a thread.
//! - `workers`: the connection workers that take ready connections from it, and their keeper.
//! - `conn`: one request on a worker (handshake, request, answer, a POST's streamed answer),
//!   then back to the ready set.
//! - `pool`: a plain thread pool (the tool calls that run beside their connection).
//! - [`stream`]: streamed answers run on their worker, mailboxes, the hang-up watcher.
//! - [`hub`]: held streams (legacy `GET /sse`, MCP `GET /mcp`, the status page) without threads.
//! - [`tls`]: rustls configuration, its live reload, the first-run certificate.
//! - [`client`]: the one outgoing HTTP client (OTLP exports, the health check).
//! - `wait`: waiting on one descriptor with a timeout.

pub(crate) mod accept;
pub mod client;
pub(crate) mod conn;
pub mod hub;
pub(crate) mod idle;
pub(crate) mod pool;
pub mod stream;
pub mod tls;
pub(crate) mod wait;
pub(crate) mod workers;
