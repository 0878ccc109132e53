//! Responses: a status, headers and a body, serialized into one buffer.
//!
//! A [`Body::Stream`] response is not serialized here: the connection writes its head with
//! `Transfer-Encoding: chunked` and runs the body, which this layer holds without knowing its
//! type (the connection layer above puts its stream in and takes it out), so `http/` depends
//! on nothing above it.

use std::fmt::Write as _;
use std::io;

use serde_json::Value;

/// A response body.
pub enum Body {
    /// No body (`Content-Length: 0` unless the status forbids a body).
    Empty,
    /// A complete body.
    Bytes(Vec<u8>),
    /// A streamed body (SSE, NDJSON), written chunk by chunk; opaque to this layer.
    Stream(StreamBody),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What a streamed body holds: the type of the layer that runs streams, unknown here.
pub type StreamBody = Box<dyn std::any::Any + Send>;

/// A response about to be written.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in the order they are written; names as they should appear on the wire.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// A response with an empty body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
        }
    }

    /// A response with a body and a content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: Body::Bytes(body),
            close: false,
        }
    }

    /// A JSON response (compact serialization).
    pub fn json(status: u16, value: &Value) -> Self {
        // unwrap-free: serializing a `Value` to a Vec cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self::bytes(status, "application/json", body)
    }

    /// A streamed response (status 200) with a content type.
    pub fn streamed(content_type: &str, body: StreamBody) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type", content_type.to_string())],
            body: Body::Stream(body),
            close: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header in place.
    pub fn set_header(&mut self, name: &'static str, value: impl Into<String>) {
        self.headers.push((name, value.into()));
    }

    /// The first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The length of a complete body (0 for streams, whose length is known only at their end).
    pub fn body_len(&self) -> usize {
        match &self.body {
            Body::Bytes(b) => b.len(),
            _ => 0,
        }
    }

    /// Serializes the status line and headers into `out`, adding framing headers:
    /// `Content-Length` for complete bodies, `Transfer-Encoding: chunked` for streams, and
    /// `Connection: close` when `keep_alive` is false. With `head_only` the body is omitted but
    /// the length still describes it (a HEAD answer).
    pub fn write_head(&self, out: &mut Vec<u8>, keep_alive: bool, date: &str) {
        // Writing into a Vec cannot fail.
        let _ = io::Write::write_fmt(
            out,
            format_args!(
                "HTTP/1.1 {} {}\r\n",
                self.status,
                super::reason(self.status)
            ),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            // Header values come from our own code; strip CR/LF defensively so no caller can
            // split the response.
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                out.extend(value.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
            } else {
                out.extend_from_slice(value.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
        let no_body_status = self.status < 200 || self.status == 204 || self.status == 304;
        match &self.body {
            Body::Stream(_) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            _ if no_body_status => {}
            _ => {
                let _ = io::Write::write_fmt(
                    out,
                    format_args!("Content-Length: {}\r\n", self.body_len()),
                );
            }
        }
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Serializes the whole response (head plus a complete body) into `out`.
    pub fn write_all(&self, out: &mut Vec<u8>, keep_alive: bool, date: &str, head_only: bool) {
        self.write_head(out, keep_alive, date);
        if let (Body::Bytes(b), false) = (&self.body, head_only) {
            out.extend_from_slice(b);
        }
    }
}

/// Frames `data` as one HTTP/1.1 chunk into `out`. Empty data is skipped (it would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(ChunkHeader(out), "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

struct ChunkHeader<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ChunkHeader<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_response_has_length_and_type() {
        let r = Response::json(200, &serde_json::json!({"a": 1}));
        let mut out = Vec::new();
        r.write_all(&mut out, true, "Thu, 01 Jan 1970 00:00:00 GMT", false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: application/json\r\n"));
        assert!(text.contains("Content-Length: 7\r\n"));
        assert!(!text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn head_only_keeps_length_but_drops_body() {
        let r = Response::bytes(200, "text/plain", b"hello".to_vec());
        let mut out = Vec::new();
        r.write_all(&mut out, false, "d", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn no_content_has_no_length() {
        let mut out = Vec::new();
        Response::empty(204).write_all(&mut out, true, "d", false);
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }

    #[test]
    fn header_values_cannot_split_the_response() {
        let r = Response::empty(200).with_header("X-Test", "a\r\nInjected: 1");
        let mut out = Vec::new();
        r.write_all(&mut out, true, "d", false);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("X-Test: aInjected: 1\r\n")
        );
    }

    #[test]
    fn chunks_are_hex_framed() {
        let mut out = Vec::new();
        write_chunk(&mut out, &[b'x'; 26]);
        write_chunk(&mut out, b"");
        assert_eq!(&out[..4], b"1a\r\n");
        assert_eq!(out.len(), 4 + 26 + 2);
    }
}
