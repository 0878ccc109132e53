//! Request bodies: an incremental chunked decoder with a size limit.
//!
//! [`ChunkedDecoder::feed`] consumes as much of `src` as it can, appends the decoded bytes to
//! `out`, and reports how many input bytes it used; feeding the same bytes split at any point
//! gives the same result (a fuzz target checks this).

use super::HttpError;

/// The longest chunk-size line we accept (hex digits, extensions and CRLF).
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// The most trailer bytes we accept after the last chunk.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// Where the decoder is in the chunked framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Reading this many more data bytes.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the zero-size chunk: trailer lines until an empty line.
    Trailer,
    /// The body is complete.
    Done,
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current line (size line or trailer line) seen so far.
    line: Vec<u8>,
    /// Total decoded bytes so far; never above `max_body_bytes`.
    decoded: u64,
    /// Total trailer bytes so far.
    trailer_bytes: usize,
    max_body_bytes: u64,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies larger than `max_body_bytes` once decoded.
    pub fn new(max_body_bytes: u64) -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            decoded: 0,
            trailer_bytes: 0,
            max_body_bytes,
        }
    }

    /// True once the terminating chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `src` into `out`; returns the number of input bytes consumed. Bytes after
    /// the end of the body are left unconsumed (they belong to the next, pipelined request).
    ///
    /// # Errors
    /// [`HttpError::BadChunk`] for broken framing, [`HttpError::BodyTooLarge`] past the limit.
    pub fn feed(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < src.len() {
            match self.state {
                State::Size => {
                    let Some(nl) = src[i..].iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(&src[i..]);
                        if self.line.len() > MAX_CHUNK_LINE_BYTES {
                            return Err(HttpError::BadChunk("chunk-size line too long"));
                        }
                        return Ok(src.len());
                    };
                    self.line.extend_from_slice(&src[i..i + nl]);
                    i += nl + 1;
                    if self.line.len() > MAX_CHUNK_LINE_BYTES {
                        return Err(HttpError::BadChunk("chunk-size line too long"));
                    }
                    let size = parse_size_line(&self.line)?;
                    self.line.clear();
                    if self.decoded.saturating_add(size) > self.max_body_bytes {
                        return Err(HttpError::BodyTooLarge);
                    }
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let take = (src.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&src[i..i + take]);
                    i += take;
                    self.decoded += take as u64;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    // Accept CRLF (and a lone LF, as most servers do); anything else is broken.
                    match (self.line.as_slice(), src[i]) {
                        ([], b'\r') => {
                            self.line.push(b'\r');
                            i += 1;
                        }
                        ([], b'\n') | ([b'\r'], b'\n') => {
                            self.line.clear();
                            i += 1;
                            self.state = State::Size;
                        }
                        _ => return Err(HttpError::BadChunk("missing CRLF after chunk data")),
                    }
                }
                State::Trailer => {
                    let Some(nl) = src[i..].iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(&src[i..]);
                        self.trailer_bytes += src.len() - i;
                        if self.trailer_bytes > MAX_TRAILER_BYTES {
                            return Err(HttpError::BadChunk("trailers too large"));
                        }
                        return Ok(src.len());
                    };
                    self.line.extend_from_slice(&src[i..i + nl]);
                    self.trailer_bytes += nl + 1;
                    i += nl + 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(HttpError::BadChunk("trailers too large"));
                    }
                    let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                    if line.contains(&b'\r') {
                        return Err(HttpError::BadChunk("bare CR in trailer"));
                    }
                    let empty = line.is_empty();
                    self.line.clear();
                    if empty {
                        self.state = State::Done;
                        return Ok(i);
                    }
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }
}

fn parse_size_line(line: &[u8]) -> Result<u64, HttpError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return Err(HttpError::BadChunk("bare CR in chunk-size line"));
    }
    // Chunk extensions (`;name=value`) are allowed and ignored.
    let hex = match line.iter().position(|&b| b == b';') {
        Some(p) => &line[..p],
        None => line,
    };
    let hex = hex.strip_suffix(b" ").unwrap_or(hex);
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::BadChunk("invalid chunk size"));
    }
    let mut n: u64 = 0;
    for &b in hex {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(HttpError::BadChunk("invalid chunk size")),
        };
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(src: &[u8], limit: u64) -> Result<(usize, Vec<u8>, bool), HttpError> {
        let mut d = ChunkedDecoder::new(limit);
        let mut out = Vec::new();
        let n = d.feed(src, &mut out)?;
        Ok((n, out, d.is_done()))
    }

    #[test]
    fn decodes_a_simple_body() {
        let (n, out, done) =
            decode_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", 100).unwrap();
        assert_eq!(out, b"hello world");
        assert!(done);
        assert_eq!(n, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".len());
    }

    #[test]
    fn split_at_every_point_gives_the_same_body() {
        let src =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        let (_, whole, _) = decode_all(src, 1000).unwrap();
        for cut in 0..src.len() {
            let mut d = ChunkedDecoder::new(1000);
            let mut out = Vec::new();
            let a = d.feed(&src[..cut], &mut out).unwrap();
            assert_eq!(a, cut);
            let b = d.feed(&src[cut..], &mut out).unwrap();
            assert_eq!(a + b, src.len());
            assert!(d.is_done());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn body_over_the_limit_is_refused_before_reading_it() {
        assert_eq!(decode_all(b"10\r\n", 15), Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn broken_framing_is_refused() {
        for src in [
            &b"zz\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\rx\n",
            b"\r\n",
            b"1234567890123456\r\n",
        ] {
            assert!(
                matches!(decode_all(src, 1 << 40), Err(HttpError::BadChunk(_))),
                "{src:?}"
            );
        }
    }

    #[test]
    fn endless_size_line_is_refused() {
        let src = vec![b'0'; 2000];
        assert!(matches!(decode_all(&src, 100), Err(HttpError::BadChunk(_))));
    }
}
