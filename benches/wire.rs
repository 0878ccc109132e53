//! Wire-format micro-benchmarks: request heads, chunked bodies, SSE and NDJSON framing.
//! Throughput is in input bytes; the allocation profiler counts allocations per iteration.

use divan::counter::BytesCount;
use divan::{AllocProfiler, Bencher, black_box};
use serde_json::json;
use task_mcp::http::body::ChunkedDecoder;
use task_mcp::http::request::{HeadLimits, parse_head};
use task_mcp::ndjson::{self, LineReader};
use task_mcp::sse::{self, Reader};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// A `curl`-sized GET.
const SMALL_GET: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: localhost:8443\r\n\
    User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// What an MCP client sends for a tool call: 9 headers, bearer token, session headers.
const MCP_POST: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\n\
    User-Agent: claude-mcp-connector/1.0\r\nAuthorization: Bearer tmcp_8f3a9c2e71b04d5fa6e1c0b7d9e24f18\r\n\
    Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
    Mcp-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: 1f0e2d3c4b5a69788796a5b4c3d2e1f0\r\n\
    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
    Content-Length: 97\r\n\r\n";

#[divan::bench(args = ["small_get", "mcp_post"])]
fn request_head(bencher: Bencher, name: &str) {
    let head = if name == "small_get" {
        SMALL_GET
    } else {
        MCP_POST
    };
    let limits = HeadLimits::default();
    bencher
        .counter(BytesCount::of_slice(head))
        .bench(|| parse_head(black_box(head), &limits));
}

/// A 64 KiB body sent as 4 KiB chunks, decoded from 1,500-byte reads (one TCP segment each).
#[divan::bench]
fn chunked_decode_64k(bencher: Bencher) {
    let mut wire = Vec::new();
    for _ in 0..16 {
        wire.extend_from_slice(b"1000\r\n");
        wire.extend(std::iter::repeat_n(b'x', 4096));
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    bencher.counter(BytesCount::of_slice(&wire)).bench(|| {
        let mut dec = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::with_capacity(64 * 1024);
        for read in wire.chunks(1500) {
            let _ = dec.feed(black_box(read), &mut out);
        }
        assert!(dec.is_done());
        out
    });
}

/// A progress notification as the SSE answer to a tool call carries it.
#[divan::bench]
fn sse_write_event(bencher: Bencher) {
    let data = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":3,"total":10}}"#;
    let mut out = Vec::with_capacity(256);
    bencher.counter(BytesCount::of_str(data)).bench_local(|| {
        out.clear();
        sse::write_event(&mut out, Some("message"), Some("42"), black_box(data))
    });
}

/// 100 events of multi-line data read back by the reference reader in 512-byte pieces.
#[divan::bench]
fn sse_read_100_events(bencher: Bencher) {
    let mut wire = Vec::new();
    for i in 0..100 {
        let id = i.to_string();
        let _ = sse::write_event(
            &mut wire,
            Some("message"),
            Some(&id),
            "line one\nline two\nline three",
        );
        if i % 10 == 0 {
            sse::write_comment(&mut wire, "keep-alive");
        }
    }
    bencher.counter(BytesCount::of_slice(&wire)).bench(|| {
        let mut reader = Reader::default();
        let mut n = 0;
        for piece in wire.chunks(512) {
            n += reader.feed(black_box(piece)).len();
        }
        assert_eq!(n, 100);
    });
}

/// One NDJSON line of a tool result.
#[divan::bench]
fn ndjson_write_line(bencher: Bencher) {
    let value = json!({"type": "result", "tool": "change_list", "result": {"changes": [
        {"name": "add-auth", "completedTasks": 3, "totalTasks": 7},
        {"name": "fix-stream", "completedTasks": 1, "totalTasks": 2}]}});
    let mut out = Vec::with_capacity(256);
    bencher.bench_local(|| {
        out.clear();
        ndjson::write_line(&mut out, black_box(&value))
    });
}

/// 1,000 short lines split from 4 KiB reads.
#[divan::bench]
fn ndjson_read_1000_lines(bencher: Bencher) {
    let mut wire = Vec::new();
    for i in 0..1000 {
        let _ = ndjson::write_line(&mut wire, &json!({"type": "progress", "progress": i}));
    }
    bencher.counter(BytesCount::of_slice(&wire)).bench(|| {
        let mut reader = LineReader::new(64 * 1024);
        let mut n = 0;
        for piece in wire.chunks(4096) {
            reader.feed(black_box(piece));
            while let Ok(Some(_)) = reader.next_line() {
                n += 1;
            }
        }
        assert_eq!(n, 1000);
    });
}
