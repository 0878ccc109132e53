//! NDJSON framing round trip: any JSON values written with `write_line` come back, one per line
//! and equal, through `LineReader` under any chunking; lines are never longer than the limit,
//! and a longer line is refused instead of returned.
//!
//! Input: byte 0 is the chunk size, byte 1 the limit (`4 * b` bytes), the rest `\x1e`-separated
//! texts, each written as the JSON document it is or else as a JSON string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use task_mcp::ndjson::{self, LineReader, LineTooLong};

fuzz_target!(|input: &[u8]| {
    let [chunk, limit, text @ ..] = input else {
        return;
    };
    let max_line_bytes = 4 * usize::from(*limit);
    let text = String::from_utf8_lossy(text);
    let values: Vec<Value> = text
        .split('\x1e')
        .map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
        .collect();
    let mut wire = Vec::new();
    let mut lines = Vec::new();
    for v in &values {
        let start = wire.len();
        if ndjson::write_line(&mut wire, v).is_err() {
            wire.truncate(start);
            continue;
        }
        let line = &wire[start..];
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(
            !line[..line.len() - 1].contains(&b'\n'),
            "a raw newline inside a line"
        );
        lines.push(v.clone());
    }
    let mut reader = LineReader::new(max_line_bytes);
    let mut got = Vec::new();
    let mut too_long = false;
    'feed: for piece in wire.chunks(usize::from((*chunk).max(1))) {
        reader.feed(piece);
        loop {
            match reader.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= max_line_bytes, "line past the limit");
                    let v: Value = serde_json::from_slice(&line).expect("a written line parses");
                    got.push(v);
                }
                Ok(None) => break,
                Err(LineTooLong) => {
                    too_long = true;
                    break 'feed;
                }
            }
        }
    }
    if too_long {
        // Refused only when a written line really was longer than the limit.
        let longest = wire
            .split(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest > max_line_bytes);
        assert_eq!(got[..], lines[..got.len()]);
    } else {
        assert_eq!(got, lines);
    }
});
