//! `task-mcp-load`: drives a running task-mcp (or any MCP server) over TLS and reports
//! requests/s, latency percentiles and errors, or holds many SSE streams and checks their
//! heartbeats and the server's memory per stream. Sync threads and `poll(2)`, no async runtime.
//!
//! ```text
//! task-mcp-load MODE [options]
//! ```
//! See [`USAGE`] (or `task-mcp-load --help`) for the modes and options.
#![forbid(unsafe_code)]
#![warn(clippy::all)]

mod client;
mod options;
mod report;
mod requests;
mod streams;

use std::io::Write;
use std::process::ExitCode;

use options::{Mode, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        let _ = std::io::stdout().write_all(USAGE.as_bytes());
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let o = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("task-mcp-load: {e}\n(see task-mcp-load --help)");
            return ExitCode::from(2);
        }
    };
    let wanted = (o.connections + o.idle) as u64 + FDS_SPARE;
    let have = raise_fd_limit();
    if have < wanted {
        eprintln!(
            "task-mcp-load: warning: open-file limit {have} is below the {wanted} this run needs; \
             raise it with `ulimit -n {wanted}` (hard limit) first"
        );
    }
    let result = match o.mode {
        Mode::Streams => streams::run(&o),
        _ => requests::run(&o),
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("task-mcp-load: {e}");
            return ExitCode::from(1);
        }
    };
    let out = if o.json {
        format!("{summary}\n")
    } else {
        report::text(&summary)
    };
    // A closed stdout (`| head`) is not worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// Lifts the soft open-file limit to the hard one (each connection is one descriptor) and
/// returns the limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current.is_some_and(|c| c < max)
    {
        lim.current = Some(max);
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Descriptors beyond one per connection (stdio, the metrics scrape, the allocator's spare).
const FDS_SPARE: u64 = 32;

const USAGE: &str = "\
task-mcp-load MODE [options]: load an MCP server over HTTPS (sync threads, rustls)

Modes:
  ping          MCP ping, POST /mcp (JSON answer unless --sse/--progress)
  call          MCP tools/call of --tool with --args, POST /mcp
  seed-ndjson   the seed NDJSON API: POST /mcp {\"tool\",\"input\"}
  seed-sse      the seed SSE API: POST /sse {\"tool\",\"input\"}
  streams       hold N legacy GET /sse streams (--mcp-get: N stateful sessions' GET /mcp streams);
                check every heartbeat; server memory per stream

Options:
  --url URL              https://host:port[/path] or http://... (default https://127.0.0.1:8443;
                         path defaults to /mcp, or /sse for seed-sse and streams)
  --ca FILE              PEM certificate or CA to trust (the server's .task-mcp/tls-cert.pem)
  --insecure, -k         accept any certificate (signatures are still checked)
  --token T              bearer token (default: $TASK_MCP_TOKEN)
  -c, --connections N    keep-alive connections (default 32); streams mode: streams (default 1000)
  -t, --threads N        client threads sharing the connections (default 1)
  -d, --duration D       measure for D (10s, 500ms, 2m; default 10s); streams mode: hold time
  -n, --requests N       stop after N requests instead of a duration
  --warmup D             load before measuring, not counted (default 0)
  --timeout D            a request slower than this fails as `timeout` (default 10s)
  --sse                  Accept: text/event-stream only (SSE answers)
  --progress             add params._meta.progressToken (SSE answers for tools that report progress)
  --new-conn             a new TCP+TLS connection per request (handshake rate); latency then
                         includes connect and handshake
  --tool NAME            tool for call/seed modes (default echo)
  --args JSON            its arguments (default {\"text\":\"hi\"})
  --body JSON            send this body instead (e.g. for another server's tool)
  --protocol-version V   MCP-Protocol-Version header (default 2025-06-18; empty: none)
  -H, --header 'N: v'    an extra request header (repeatable; e.g. X-Forwarded-For behind
                         TRUSTED_PROXIES, to act as several clients)
  --idle N               request modes: first open N more connections, one request each, and
                         hold them idle through the run (with --server-pid: the server's
                         memory per idle connection and its threads)
  --mcp-get              streams: MCP GET streams (the server runs MCP_SESSIONS=stateful)
  --heartbeat-ms N       streams: the server's HEARTBEAT_MS (default 15000)
  --open-concurrency N   streams: streams being opened at once (default 64)
  --server-pid PID       streams, --idle: read VmRSS/VmHWM/Threads from /proc/PID/status
  --metrics-url URL      streams: read process_resident_memory_bytes from a /metrics URL
  --json                 one JSON document on stdout

Output: requests/s over the measured window, latency p50/p90/p99/max (ms), errors by kind
(connect, tls, io, closed, timeout, bad-framing, bad-body, status-NNN). A 200 counts only when
its body is the expected answer (a JSON-RPC result, an NDJSON or SSE result event).

Open files: one per connection. The tool lifts its soft limit to the hard limit; if that is
still too low, raise the hard limit first (`ulimit -n 20000` as root, or LimitNOFILE=).
";
