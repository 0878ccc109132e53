//! The single integration-test binary: one `mod` per area, all against the real server over TLS.

mod support;

// HTTP/1.1 framing, limits and deadlines on the TLS port.
mod http1;
// Process-level behaviour: signals, reload, graceful shutdown, the CLI.
mod process;
