//! SSE framing round trip: any event name, id and data accepted by `write_event` is read back by
//! the reference `Reader` unchanged (data line breaks normalized to `\n`), whatever the chunking
//! of the stream; comments in between never surface as data; forbidden characters are refused
//! rather than forging fields.
//!
//! Input: byte 0 is the chunk size the stream is read in; the rest is text, one event per
//! `\x1e`-separated record whose `\x1f`-separated fields are data, event, id and a comment
//! written before the event (absent fields are `None`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use task_mcp::sse::{self, Event, Reader};

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, text)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for record in text.split('\x1e') {
        let fields: Vec<&str> = record.split('\x1f').collect();
        let field = |i: usize| fields.get(i).map(|s| s.to_string());
        let (data, event, id, comment) = (fields[0], field(1), field(2), field(3));
        if let Some(c) = &comment {
            sse::write_comment(&mut wire, c);
        }
        let before = wire.len();
        let forbidden =
            |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains(['\r', '\n', '\0']));
        match sse::write_event(&mut wire, event.as_deref(), id.as_deref(), data) {
            Ok(()) => {
                assert!(!forbidden(&event) && !forbidden(&id));
                expected.push(Event {
                    event: event.clone().unwrap_or_else(|| "message".into()),
                    id: id.clone(),
                    data: data.replace("\r\n", "\n").replace('\r', "\n"),
                });
            }
            Err(_) => {
                assert!(forbidden(&event) || forbidden(&id));
                wire.truncate(before);
            }
        }
    }
    let step = usize::from(chunk.max(1));
    let mut reader = Reader::default();
    let mut got = Vec::new();
    for piece in wire.chunks(step) {
        got.extend(reader.feed(piece));
    }
    assert_eq!(got, expected);
});
