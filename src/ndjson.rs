//! NDJSON framing: one compact JSON document per `\n`-terminated line.

use serde::Serialize;

/// Appends `value` as one line. Compact JSON never contains a raw newline, so the framing holds.
///
/// # Errors
/// When `value` cannot be serialized (a map with non-string keys, for instance).
pub fn write_line<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, value)?;
    out.push(b'\n');
    Ok(())
}

/// Splits a byte stream into lines, refusing lines longer than a limit. `Ok(None)` = need more.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    max_line_bytes: usize,
}

/// A line exceeded the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NDJSON line too long")
    }
}

impl std::error::Error for LineTooLong {}

impl LineReader {
    /// A reader whose lines may hold at most `max_line_bytes` bytes (newline excluded).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line_bytes,
        }
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line (without `\n`, a trailing `\r` removed), or `Ok(None)`.
    ///
    /// # Errors
    /// [`LineTooLong`] once a line passes the limit; the reader should then be dropped.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineTooLong> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) if i > self.max_line_bytes => Err(LineTooLong),
            Some(i) => {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None if self.buf.len() > self.max_line_bytes => Err(LineTooLong),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut out = Vec::new();
        write_line(&mut out, &serde_json::json!({"type":"start","ts":1})).unwrap();
        write_line(&mut out, &serde_json::json!({"text":"a\nb"})).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        let mut r = LineReader::new(1024);
        r.feed(&out);
        let a = r.next_line().unwrap().unwrap();
        let b = r.next_line().unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()["text"],
            "a\nb"
        );
        assert_eq!(a, br#"{"ts":1,"type":"start"}"#.to_vec());
        assert_eq!(r.next_line(), Ok(None));
    }

    // Found by the `ndjson_framing` fuzz target: serde_json's default float parser is not
    // correctly rounded, so a float read from a client, written as a line and read again could
    // come back one ulp off. The `float_roundtrip` feature makes both reads exact.
    #[test]
    fn a_float_read_written_and_read_again_is_bit_for_bit_equal() {
        let first: serde_json::Value = serde_json::from_str("123456789012345567890").unwrap();
        let mut out = Vec::new();
        write_line(&mut out, &first).unwrap();
        let mut r = LineReader::new(64);
        r.feed(&out);
        let line = r.next_line().unwrap().unwrap();
        let second: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            first.as_f64().map(f64::to_bits),
            second.as_f64().map(f64::to_bits),
            "{first} came back as {second}"
        );
    }

    #[test]
    fn long_lines_are_refused() {
        let mut r = LineReader::new(4);
        r.feed(b"12345");
        assert_eq!(r.next_line(), Err(LineTooLong));
        let mut r = LineReader::new(4);
        r.feed(b"1234\n");
        assert_eq!(r.next_line(), Ok(Some(b"1234".to_vec())));
    }
}
