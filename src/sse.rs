//! Server-Sent Events framing, written by hand.
//!
//! An event is `event:` / `id:` / `data:` lines and a blank line. A value may not contain CR or
//! LF in `event` and `id` (that would forge fields): those are refused with an error rather than
//! a panic. `data` is split on line breaks into several `data:` lines, which a reader joins back
//! with `\n`; a leading space is kept by writing `data:  x` (the reader strips exactly one).

use std::fmt;

/// An event field held a forbidden character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseError {
    /// `event` or `id` contained CR, LF or NUL.
    ForbiddenChar(&'static str),
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::ForbiddenChar(field) => {
                write!(f, "SSE field `{field}` contains CR, LF or NUL")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// Appends one event to `out`.
///
/// # Errors
/// [`SseError::ForbiddenChar`] when `event` or `id` holds CR, LF or NUL.
pub fn write_event(
    out: &mut Vec<u8>,
    event: Option<&str>,
    id: Option<&str>,
    data: &str,
) -> Result<(), SseError> {
    if let Some(e) = event {
        check("event", e)?;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(i) = id {
        check("id", i)?;
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(i.as_bytes());
        out.push(b'\n');
    }
    // A reader splits on CRLF, CR or LF, so every one of them starts a new data line.
    let mut rest = data;
    loop {
        let cut = rest.find(['\r', '\n']);
        let line = &rest[..cut.unwrap_or(rest.len())];
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        match cut {
            None => break,
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Appends a comment line (a keep-alive): `: text\n\n`. CR and LF in `text` become spaces.
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b": ");
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\n\n");
}

fn check(field: &'static str, v: &str) -> Result<(), SseError> {
    if v.contains(['\r', '\n', '\0']) {
        Err(SseError::ForbiddenChar(field))
    } else {
        Ok(())
    }
}

/// A reference reader (used by tests, fuzz targets and the load tool): feeds bytes, yields
/// complete events as `(event, id, data)`; comments are skipped.
#[derive(Default, Debug)]
pub struct Reader {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

/// One event read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event` field (`message` when absent, as browsers do).
    pub event: String,
    /// The `id` field.
    pub id: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
}

impl Reader {
    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR at the very end may be the first half of CRLF: wait for the next byte.
            if self.buf[pos] == b'\r' && pos + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf[pos] == b'\r' && self.buf.get(pos + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..pos + skip).take(pos).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(Event {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        id: self.id.take(),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "event" => self.event = Some(value),
                "id" => self.id = Some(value),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => self.data = Some(value),
                },
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_event_is_framed_exactly() {
        let mut out = Vec::new();
        write_event(
            &mut out,
            Some("message"),
            None,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
        );
    }

    #[test]
    fn multi_line_data_round_trips() {
        for data in ["a\nb", "a\r\nb", "a\rb", "", " leading", "x\n\ny", "\n"] {
            let mut out = Vec::new();
            write_event(&mut out, Some("e"), Some("1"), data).unwrap();
            let evs = Reader::default().feed(&out);
            let want = data.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(
                evs,
                vec![Event {
                    event: "e".into(),
                    id: Some("1".into()),
                    data: want
                }],
                "{data:?}"
            );
        }
    }

    #[test]
    fn forged_fields_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            write_event(&mut out, Some("a\ndata: x"), None, ""),
            Err(SseError::ForbiddenChar("event"))
        );
        assert_eq!(
            write_event(&mut out, None, Some("1\r"), ""),
            Err(SseError::ForbiddenChar("id"))
        );
    }

    #[test]
    fn comments_are_skipped_by_readers() {
        let mut out = Vec::new();
        write_comment(&mut out, "keepalive\n");
        write_event(&mut out, None, None, "x").unwrap();
        let evs = Reader::default().feed(&out);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event, "message");
    }

    #[test]
    fn reader_handles_split_input() {
        let mut out = Vec::new();
        write_event(&mut out, Some("result"), None, "{\"a\":1}").unwrap();
        let mut r = Reader::default();
        let mut got = Vec::new();
        for b in &out {
            got.extend(r.feed(&[*b]));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "{\"a\":1}");
    }
}
