//! Request heads: `parse_head(bytes) -> Ok(None)` until the blank line arrives, then a [`Head`]
//! with the framing already decided (length, chunked, keep-alive) and every smuggling shape
//! refused.

use std::net::SocketAddr;
use std::time::Instant;

use super::HttpError;

/// The request method. Unknown tokens are kept so the router can answer 405 or 501.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// Any other token.
    Other(String),
}

impl Method {
    fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method's token; `OTHER` for unknown methods, so metrics labels stay bounded.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(_) => "OTHER",
        }
    }
}

/// How the body of a request is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes follow.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One header. Names are lowercased; values are the raw bytes with surrounding whitespace trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Lowercase name.
    pub name: String,
    /// Raw value (may hold obs-text bytes; read it through [`Head::header`] for text).
    pub value: Vec<u8>,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The request target exactly as sent.
    pub target: String,
    /// The path part of the target (origin-form), never empty.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The headers in order.
    pub headers: Vec<Header>,
    /// The body framing.
    pub framing: Framing,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl Head {
    /// The first value of a header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// Every value of a header, as text.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(&h.value).ok())
    }

    /// A query parameter's raw (still percent-encoded) value.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }
}

/// The limits a head must fit in.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Bytes of request line plus headers, terminator included.
    pub max_head_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Parses a request head from the bytes received so far.
///
/// Returns `Ok(None)` while the head is incomplete and within limits, and
/// `Ok(Some((head_len, head)))` once the blank line has arrived; the body starts at `head_len`.
///
/// # Errors
/// An [`HttpError`] for anything that is not a well-formed, unambiguous HTTP/1.x request head.
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<(usize, Head)>, HttpError> {
    // A bare CR anywhere in the head is a smuggling vector (some parsers treat it as a line
    // break); httparse accepts a few shapes of it, so refuse before parsing.
    let scan_end = buf.len().min(limits.max_head_bytes + 4);
    let scan = &buf[..scan_end];
    let head_end = find_head_end(scan);
    let head_bytes = &scan[..head_end.unwrap_or(scan.len())];
    for (i, &b) in head_bytes.iter().enumerate() {
        if b == b'\r' && i + 1 < head_bytes.len() && head_bytes[i + 1] != b'\n' {
            return Err(HttpError::Malformed("bare CR in head"));
        }
    }
    let Some(head_len) = head_end else {
        if buf.len() > limits.max_head_bytes {
            return Err(if !buf[..limits.max_head_bytes].contains(&b'\n') {
                HttpError::UriTooLong
            } else {
                HttpError::HeadTooLarge
            });
        }
        return Ok(None);
    };
    if head_len > limits.max_head_bytes {
        let first_line = buf.iter().position(|&b| b == b'\n').unwrap_or(head_len);
        return Err(if first_line >= limits.max_head_bytes {
            HttpError::UriTooLong
        } else {
            HttpError::HeadTooLarge
        });
    }
    // The usual limit fits on the stack: a 2 KiB heap block per request is measurable.
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let storage: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize(limits.max_headers, httparse::EMPTY_HEADER);
        &mut on_heap
    };
    let mut req = httparse::Request::new(storage);
    let status = req.parse(&buf[..head_len]).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HttpError::HeadTooLarge,
        httparse::Error::Version => HttpError::VersionNotSupported,
        httparse::Error::HeaderName => HttpError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HttpError::Malformed("invalid header value"),
        httparse::Error::NewLine => HttpError::Malformed("invalid line ending"),
        httparse::Error::Token => HttpError::Malformed("invalid method or target"),
        httparse::Error::Status => HttpError::Malformed("invalid request line"),
    })?;
    let n = match status {
        httparse::Status::Complete(n) => n,
        // unwrap-free: the head terminator was found above, so httparse cannot want more; treat
        // a disagreement as malformed rather than waiting forever.
        httparse::Status::Partial => return Err(HttpError::Malformed("incomplete head")),
    };
    // `req` fields are Some after Complete.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed("incomplete request line"));
    };
    if target.is_empty() {
        return Err(HttpError::Malformed("empty request target"));
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.is_empty() {
            return Err(HttpError::Malformed("empty header name"));
        }
        headers.push(Header {
            name: h.name.to_ascii_lowercase(),
            value: trim(h.value).to_vec(),
        });
    }

    let (path, query) = split_target(target)?;
    let method = Method::parse(method);

    // Framing: refuse every ambiguous shape (RFC 9112 §6.3).
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut host_count = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for h in &headers {
        match h.name.as_str() {
            "content-length" => {
                if content_length.is_some() {
                    return Err(HttpError::AmbiguousLength);
                }
                content_length = Some(parse_content_length(&h.value)?);
            }
            "transfer-encoding" => {
                let v = std::str::from_utf8(&h.value)
                    .map_err(|_| HttpError::Malformed("non-ASCII Transfer-Encoding"))?
                    .to_ascii_lowercase();
                match &mut transfer_encoding {
                    Some(prev) => {
                        prev.push_str(", ");
                        prev.push_str(&v);
                    }
                    None => transfer_encoding = Some(v),
                }
            }
            "host" => host_count += 1,
            "connection" => {
                for token in String::from_utf8_lossy(&h.value).split(',') {
                    let t = token.trim();
                    if t.eq_ignore_ascii_case("close") {
                        connection_close = true;
                    } else if t.eq_ignore_ascii_case("keep-alive") {
                        connection_keep_alive = true;
                    }
                }
            }
            "expect" => {
                if h.value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(HttpError::Malformed("unsupported Expect"));
                }
            }
            _ => {}
        }
    }
    if minor == 1 && host_count != 1 {
        return Err(HttpError::Malformed(if host_count == 0 {
            "missing Host header"
        } else {
            "several Host headers"
        }));
    }
    if host_count > 1 {
        return Err(HttpError::Malformed("several Host headers"));
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(HttpError::AmbiguousLength),
        (Some(te), None) => {
            if minor == 0 {
                return Err(HttpError::Malformed("Transfer-Encoding in HTTP/1.0"));
            }
            let codings: Vec<&str> = te.split(',').map(str::trim).collect();
            if codings.len() == 1 && codings[0] == "chunked" {
                Framing::Chunked
            } else if codings.last() != Some(&"chunked") {
                // The body length cannot be known; RFC 9112 §6.3 says 400 for a request.
                return Err(if codings.iter().all(|c| is_token(c)) {
                    HttpError::UnsupportedTransferCoding
                } else {
                    HttpError::Malformed("invalid Transfer-Encoding")
                });
            } else {
                return Err(HttpError::UnsupportedTransferCoding);
            }
        }
        (None, Some(0)) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::None,
    };
    let keep_alive = if minor == 0 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Ok(Some((
        n,
        Head {
            method,
            target: target.to_string(),
            path,
            query,
            minor_version: minor,
            headers,
            framing,
            keep_alive,
            expect_continue,
        },
    )))
}

/// Position just past the `\r\n\r\n` (or `\n\n`) that ends a head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn split_target(target: &str) -> Result<(String, Option<String>), HttpError> {
    if target == "*" {
        return Ok(("*".into(), None));
    }
    let origin_form = if target.starts_with('/') {
        target
    } else if let Some(rest) = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
    {
        // absolute-form: keep only the path and query.
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        return Err(HttpError::Malformed("request target must be origin-form"));
    };
    let (path, query) = match origin_form.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (origin_form, None),
    };
    let path = path.split('#').next().unwrap_or("/");
    Ok((
        if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        },
        query,
    ))
}

fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed("invalid Content-Length"));
    }
    value
        .iter()
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(HttpError::Malformed("invalid Content-Length"))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end.max(start)]
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Header slots parsed on the stack (`MAX_HEADERS` defaults to 64); larger limits use the heap.
const STACK_HEADERS: usize = 64;

/// A complete request, as handlers see it.
#[derive(Debug)]
pub struct Request {
    /// The head.
    pub head: Head,
    /// The whole body (already de-chunked, within MAX_BODY_BYTES).
    pub body: Vec<u8>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// When the whole request (head and body) had arrived.
    pub received: Instant,
    /// Served over TLS.
    pub tls: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(usize, Head)>, HttpError> {
        parse_head(raw.as_bytes(), &HeadLimits::default())
    }

    fn ok(raw: &str) -> Head {
        parse(raw).unwrap().unwrap().1
    }

    #[test]
    fn simple_get_parses_with_keep_alive() {
        let h = ok("GET /health/live?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, "/health/live");
        assert_eq!(h.query.as_deref(), Some("x=1"));
        assert!(h.keep_alive);
        assert_eq!(h.framing, Framing::None);
    }

    #[test]
    fn partial_head_needs_more() {
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse("GE"), Ok(None));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn head_length_points_at_the_body() {
        let raw = "POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
        let (n, h) = parse(raw).unwrap().unwrap();
        assert_eq!(&raw[n..], "{}");
        assert_eq!(h.framing, Framing::Length(2));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::AmbiguousLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                HttpError::AmbiguousLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::AmbiguousLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
                HttpError::Malformed("invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                HttpError::Malformed("invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
                HttpError::Malformed("invalid Content-Length"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
                HttpError::Malformed("bare CR in head"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn obs_fold_is_refused() {
        let r = parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n");
        assert!(matches!(r, Err(HttpError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_not_implemented() {
        let r = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(r, Err(HttpError::UnsupportedTransferCoding));
        let r = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(r, Err(HttpError::UnsupportedTransferCoding));
        let h = ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
    }

    #[test]
    fn versions_other_than_1x_are_refused() {
        assert_eq!(
            parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            Err(HttpError::VersionNotSupported)
        );
        assert_eq!(
            parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            Err(HttpError::VersionNotSupported)
        );
    }

    #[test]
    fn http10_defaults_to_close() {
        let h = ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn host_is_required_once_in_http11() {
        assert!(matches!(
            parse("GET / HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_heads_get_414_or_431() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 4,
        };
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_head(long_line.as_bytes(), &limits),
            Err(HttpError::UriTooLong)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(100));
        assert_eq!(
            parse_head(big.as_bytes(), &limits),
            Err(HttpError::HeadTooLarge)
        );
        let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
        assert_eq!(
            parse_head(many.as_bytes(), &limits),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn header_limits_above_the_stack_slots_are_honoured() {
        let head = |n: usize| {
            let mut h = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
            for i in 1..n {
                h.push_str(&format!("X-{i}: v\r\n"));
            }
            h.push_str("\r\n");
            h
        };
        let limits = HeadLimits {
            max_head_bytes: 64 * 1024,
            max_headers: STACK_HEADERS + 36,
        };
        let (_, parsed) = parse_head(head(STACK_HEADERS + 36).as_bytes(), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.headers.len(), STACK_HEADERS + 36);
        assert_eq!(
            parse_head(head(STACK_HEADERS + 37).as_bytes(), &limits),
            Err(HttpError::HeadTooLarge)
        );
        let stack = HeadLimits {
            max_headers: STACK_HEADERS,
            ..limits
        };
        assert!(parse_head(head(STACK_HEADERS).as_bytes(), &stack).is_ok());
        assert_eq!(
            parse_head(head(STACK_HEADERS + 1).as_bytes(), &stack),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn expect_continue_is_noticed() {
        let h =
            ok("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn connection_close_ends_keep_alive() {
        let h = ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
    }

    #[test]
    fn absolute_form_targets_keep_only_the_path() {
        let h = ok("GET https://example.com/mcp?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(h.path, "/mcp");
        assert_eq!(h.query.as_deref(), Some("a=b"));
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let h = ok("GET / HTTP/1.1\r\nHost: a\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n");
        assert_eq!(h.header("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(h.query_param("x"), None);
    }

    #[test]
    fn garbage_never_panics() {
        for raw in [
            "\r\n\r\n",
            "\n\n",
            "GET\r\n\r\n",
            " / HTTP/1.1\r\n\r\n",
            "GET  HTTP/1.1\r\n\r\n",
            "\u{0}\u{1}\r\n\r\n",
        ] {
            let _ = parse(raw);
        }
    }
}
