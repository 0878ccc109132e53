//! A throwaway plain-HTTP server around the MCP handlers, so the real-client interop scripts in
//! `tests/interop/` can run before the production server (TLS, pool, auth, limits) exists.
//! It is `#[ignore]`d and serves until killed:
//!
//! ```sh
//! MCP_HARNESS_ADDR=127.0.0.1:8099 MCP_TOKEN=test-token \
//!   cargo test --test it mcp_interop_harness -- --ignored --nocapture
//! MCP_URL=http://127.0.0.1:8099/mcp MCP_TOKEN=test-token .ci/interop.sh
//! ```
//!
//! `MCP_SESSIONS=stateful` switches Streamable HTTP to stateful mode.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use task_mcp::http::body::ChunkedDecoder;
use task_mcp::http::request::{Framing, HeadLimits, parse_head};
use task_mcp::http::{Body, Method, Response};
use task_mcp::mcp::{self, Caller, McpEnv, NoHooks, Sessions, Settings};
use task_mcp::net::stream::Streaming;
use task_mcp::net::stream::{DrainSignal, StreamCtx};
use task_mcp::tools::testing::{Echo, Slow};
use task_mcp::tools::{Access, Registry};

#[test]
#[ignore = "serves until killed: the plain-HTTP harness for tests/interop"]
fn mcp_interop_harness() {
    let addr = std::env::var("MCP_HARNESS_ADDR").unwrap_or_else(|_| "127.0.0.1:8099".into());
    let token = std::env::var("MCP_TOKEN").unwrap_or_else(|_| "test-token".into());
    let mut reg = Registry::new();
    reg.add_tool(Arc::new(Echo::new()));
    reg.add_tool(Arc::new(Slow::new()));
    let sessions = match std::env::var("MCP_SESSIONS").as_deref() {
        Ok("stateful") => Sessions::Stateful,
        _ => Sessions::Stateless,
    };
    let settings = Settings {
        sessions,
        session_key: [3; 32],
        heartbeat: Duration::from_millis(1_000),
        ..Settings::default()
    };
    let env = Arc::new(McpEnv::new(reg, settings, Arc::new(NoHooks)));
    let drain = DrainSignal::new().unwrap();
    let listener = TcpListener::bind(&addr).unwrap();
    eprintln!("harness listening on http://{addr}");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (env, drain, token) = (Arc::clone(&env), drain.clone(), token.clone());
        std::thread::spawn(move || serve(conn, &env, &drain, &token));
    }
}

fn serve(mut conn: TcpStream, env: &Arc<McpEnv>, drain: &DrainSignal, token: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(300)));
    let mut buf = Vec::new();
    loop {
        let (head_len, head) = loop {
            match parse_head(&buf, &HeadLimits::default()) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(_) => return,
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..head_len);
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => {
                let n = n as usize;
                while buf.len() < n {
                    let mut chunk = [0u8; 8192];
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                buf.drain(..n).collect()
            }
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::new(4 << 20);
                let mut out = Vec::new();
                loop {
                    let used = match dec.feed(&buf, &mut out) {
                        Ok(u) => u,
                        Err(_) => return,
                    };
                    buf.drain(..used);
                    if dec.is_done() {
                        break;
                    }
                    let mut chunk = [0u8; 8192];
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                out
            }
        };
        eprintln!("{} {}", head.method.as_str(), head.target);
        let authorized = head
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        let caller = Caller {
            identity: "interop".into(),
            grants: Access::Admin,
        };
        let resp = if !authorized {
            Response::json(401, &serde_json::json!({"error": "unauthorized"}))
                .with_header("WWW-Authenticate", "Bearer realm=\"mcp\"")
        } else {
            match (&head.method, head.path.as_str()) {
                (_, "/mcp") => mcp::http::handle(env, &head, &body, &caller),
                (Method::Get, "/sse") => mcp::legacy::open_stream(env, &head, &caller),
                (Method::Post, "/sse") => mcp::seed::post_sse(env, &head, &body, &caller),
                (Method::Post, "/messages") => {
                    mcp::legacy::post_message(env, &head, &body, &caller)
                }
                (Method::Get, "/sse/stats") => mcp::legacy::stats(env, &caller),
                (Method::Post, "/sse/broadcast") => mcp::legacy::broadcast(env, &body, &caller),
                _ => Response::json(404, &serde_json::json!({"error": "not found"})),
            }
        };
        eprintln!("  -> {}", resp.status);
        let Response {
            status,
            headers,
            body,
            close,
        } = resp;
        match body {
            body @ Body::Stream(_) => {
                let mut shell = Response {
                    status,
                    headers,
                    body,
                    close,
                };
                let streaming = task_mcp::net::stream::take(&mut shell).expect("a stream");
                shell.body = Body::Stream(Box::new(()));
                let mut out = Vec::new();
                shell.write_head(&mut out, false, "Thu, 01 Jan 1970 00:00:00 GMT");
                match streaming {
                    Streaming::Run(f) => {
                        let mut ctx = StreamCtx::new(&mut conn, drain, out);
                        f(&mut ctx);
                        ctx.finish();
                    }
                    // A held stream runs in a hub of its own, kept until the stream ends.
                    Streaming::Held(mut h) => {
                        let (done, ended) = std::sync::mpsc::channel();
                        h.on_end.push(Box::new(move |_, _| {
                            let _ = done.send(());
                        }));
                        let hub = task_mcp::net::hub::Hub::start(
                            drain.fd().try_clone_to_owned().unwrap(),
                            std::time::Duration::from_secs(10),
                        )
                        .unwrap();
                        hub.adopt(Box::new(conn), h, out, Box::new(()));
                        let _ = ended.recv();
                    }
                }
                return;
            }
            body => {
                let r = Response {
                    status,
                    headers,
                    body,
                    close,
                };
                let mut out = Vec::new();
                r.write_all(
                    &mut out,
                    head.keep_alive,
                    "Thu, 01 Jan 1970 00:00:00 GMT",
                    false,
                );
                if conn.write_all(&out).is_err() || !head.keep_alive || close {
                    return;
                }
            }
        }
    }
}
