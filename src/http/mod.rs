//! HTTP/1.1, sans-IO: request heads, bodies and responses as bytes in, values out.
//!
//! Nothing here touches a socket. [`request::parse_head`] takes the bytes read so far and answers
//! `Ok(None)` until a whole head has arrived; [`body::ChunkedDecoder`] decodes chunked bodies
//! incrementally; [`response::Response`] serializes into one buffer so a response leaves in as few
//! writes as possible. Every refusal is an [`HttpError`], which maps to exactly one status code.

use std::fmt;

pub mod body;
pub mod request;
pub(crate) mod response;

pub use request::{Head, Method, Request};
pub use response::{Body, Response};

/// Why a request was refused at the HTTP layer. Each variant maps to one status in
/// [`HttpError::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The head is not valid HTTP/1.x (bad token, bare CR, obs-fold, missing Host, ...).
    Malformed(&'static str),
    /// The request line alone is longer than the head limit.
    UriTooLong,
    /// The head (request line plus headers) exceeds the limit, or has too many headers.
    HeadTooLarge,
    /// The head did not arrive before the header deadline.
    HeaderTimeout,
    /// The body did not arrive before the body deadline.
    BodyTimeout,
    /// A body was sent with neither `Content-Length` nor chunked coding on a method that needs
    /// its length.
    LengthRequired,
    /// The declared or decoded body exceeds the limit.
    BodyTooLarge,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferCoding,
    /// A protocol version other than HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
    /// Both `Content-Length` and `Transfer-Encoding`, or several `Content-Length`s: a request
    /// smuggling shape.
    AmbiguousLength,
    /// The chunked framing is broken.
    BadChunk(&'static str),
}

impl HttpError {
    /// The status code this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::AmbiguousLength | HttpError::BadChunk(_) => 400,
            HttpError::HeaderTimeout | HttpError::BodyTimeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::BodyTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeadTooLarge => 431,
            HttpError::UnsupportedTransferCoding => 501,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// The machine-readable code of the error JSON.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Malformed(_) => "BAD_REQUEST",
            HttpError::UriTooLong => "URI_TOO_LONG",
            HttpError::HeadTooLarge => "HEADERS_TOO_LARGE",
            HttpError::HeaderTimeout => "HEADER_TIMEOUT",
            HttpError::BodyTimeout => "BODY_TIMEOUT",
            HttpError::LengthRequired => "LENGTH_REQUIRED",
            HttpError::BodyTooLarge => "PAYLOAD_TOO_LARGE",
            HttpError::UnsupportedTransferCoding => "UNSUPPORTED_TRANSFER_CODING",
            HttpError::VersionNotSupported => "HTTP_VERSION_NOT_SUPPORTED",
            HttpError::AmbiguousLength => "AMBIGUOUS_LENGTH",
            HttpError::BadChunk(_) => "BAD_CHUNK",
        }
    }

    /// What the client can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            HttpError::Malformed(_) => "Send a well-formed HTTP/1.1 request with a Host header.",
            HttpError::UriTooLong => "Shorten the request target.",
            HttpError::HeadTooLarge => "Send fewer or smaller headers (see MAX_HEADER_BYTES).",
            HttpError::HeaderTimeout => "Send the whole request head promptly (HEADER_TIMEOUT_MS).",
            HttpError::BodyTimeout => "Send the whole body promptly (BODY_TIMEOUT_MS).",
            HttpError::LengthRequired => "Send Content-Length or Transfer-Encoding: chunked.",
            HttpError::BodyTooLarge => "Send a smaller body (see MAX_BODY_BYTES).",
            HttpError::UnsupportedTransferCoding => "Only Transfer-Encoding: chunked is supported.",
            HttpError::VersionNotSupported => "Use HTTP/1.1.",
            HttpError::AmbiguousLength => {
                "Send exactly one of Content-Length or Transfer-Encoding: chunked."
            }
            HttpError::BadChunk(_) => "Fix the chunked framing of the body.",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed request: {why}"),
            HttpError::UriTooLong => f.write_str("request target too long"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::HeaderTimeout => f.write_str("request head not received in time"),
            HttpError::BodyTimeout => f.write_str("request body not received in time"),
            HttpError::LengthRequired => f.write_str("a body length is required"),
            HttpError::BodyTooLarge => f.write_str("request body too large"),
            HttpError::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            HttpError::VersionNotSupported => f.write_str("HTTP version not supported"),
            HttpError::AmbiguousLength => f.write_str("ambiguous message length"),
            HttpError::BadChunk(why) => write!(f, "bad chunked body: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The reason phrase of a status code (the ones this server sends).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Splits a media type into its lowercase essence (`type/subtype`), ignoring parameters.
pub fn media_essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_client_or_server_error_status() {
        let all = [
            HttpError::Malformed("x"),
            HttpError::UriTooLong,
            HttpError::HeadTooLarge,
            HttpError::HeaderTimeout,
            HttpError::BodyTimeout,
            HttpError::LengthRequired,
            HttpError::BodyTooLarge,
            HttpError::UnsupportedTransferCoding,
            HttpError::VersionNotSupported,
            HttpError::AmbiguousLength,
            HttpError::BadChunk("x"),
        ];
        for e in all {
            assert!((400..600).contains(&e.status()), "{e:?}");
            assert_ne!(reason(e.status()), "Unknown", "{e:?}");
        }
    }

    #[test]
    fn media_essence_ignores_parameters_and_case() {
        assert_eq!(
            media_essence("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert_eq!(media_essence(""), "");
    }

    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<HttpError>() <= 24);
    }
}
