//! RESP2, the Redis protocol, without I/O: [`encode_command`] writes a command as an array of
//! bulk strings, and [`parse_reply`] reads one reply from the bytes so far, `Ok(None)` until it
//! is whole. Limits on size, line length, array items and nesting make hostile replies an error,
//! never a panic or an allocation spike. The client in `redis.rs` does the I/O.

use std::fmt;

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc` or the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2…` or the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

/// A RESP2 framing error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// The first byte of a reply is not `+ - : $ *`.
    BadType(u8),
    /// A length or integer is not a decimal number.
    BadNumber,
    /// A bulk string is not followed by CRLF, or a line holds a bare CR or LF.
    BadFraming,
    /// A length above [`MAX_REPLY_BYTES`] or arrays nested deeper than [`MAX_DEPTH`].
    TooLarge,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            Self::BadNumber => f.write_str("bad RESP number"),
            Self::BadFraming => f.write_str("bad RESP framing"),
            Self::TooLarge => f.write_str("RESP reply too large or too deep"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends a command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// reply and the bytes it used.
///
/// # Errors
/// [`RespError`] for input that no further bytes can make valid.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(usize, Reply)>, RespError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(usize, Reply)>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::TooLarge);
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, next)) = read_line(buf, pos + 1)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    match kind {
        b'+' => Ok(Some((next, Reply::Simple(text())))),
        b'-' => Ok(Some((next, Reply::Error(text())))),
        b':' => Ok(Some((next, Reply::Integer(parse_int(line)?)))),
        b'$' => {
            let len = parse_int(line)?;
            if len == -1 {
                return Ok(Some((next, Reply::Bulk(None))));
            }
            let len = usize::try_from(len).map_err(|_| RespError::BadNumber)?;
            if len > MAX_REPLY_BYTES {
                return Err(RespError::TooLarge);
            }
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::BadFraming);
            }
            Ok(Some((end + 2, Reply::Bulk(Some(buf[next..end].to_vec())))))
        }
        b'*' => {
            let n = parse_int(line)?;
            if n == -1 {
                return Ok(Some((next, Reply::Array(None))));
            }
            let n = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
            if n > MAX_ARRAY_ITEMS {
                return Err(RespError::TooLarge);
            }
            let mut items = Vec::with_capacity(n);
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, depth + 1)? {
                    Some((used, item)) => {
                        items.push(item);
                        at = used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((at, Reply::Array(Some(items)))))
        }
        other => Err(RespError::BadType(other)),
    }
}

/// The line starting at `pos` (without CRLF) and the index after its CRLF.
fn read_line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\n') {
        None if rest.len() > MAX_LINE_BYTES => Err(RespError::TooLarge),
        None => Ok(None),
        Some(i) => {
            if i == 0 || rest[i - 1] != b'\r' || rest[..i - 1].contains(&b'\r') {
                return Err(RespError::BadFraming);
            }
            Ok(Some((&rest[..i - 1], pos + i + 1)))
        }
    }
}

fn parse_int(line: &[u8]) -> Result<i64, RespError> {
    let s = std::str::from_utf8(line).map_err(|_| RespError::BadNumber)?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RespError::BadNumber);
    }
    s.parse().map_err(|_| RespError::BadNumber)
}

/// Largest reply accepted (ours are tens of bytes).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
const MAX_LINE_BYTES: usize = 1024;
const MAX_ARRAY_ITEMS: usize = 1024;
/// Deepest array nesting accepted in a reply.
pub const MAX_DEPTH: usize = 8;

/// Writes `r` as a server would send it: the inverse of [`parse_reply`] (for tests, fuzzing and
/// fakes of a Redis server).
pub fn encode_reply(r: &Reply, out: &mut Vec<u8>) {
    match r {
        Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode_reply(i, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_replies_parse_whole_and_wait_for_more_when_partial() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Simple("OK".into())),
            (b"-ERR bad\r\n", Reply::Error("ERR bad".into())),
            (b":-42\r\n", Reply::Integer(-42)),
            (b"$3\r\nabc\r\n", Reply::Bulk(Some(b"abc".to_vec()))),
            (b"$0\r\n\r\n", Reply::Bulk(Some(Vec::new()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*3\r\n:1\r\n$2\r\n\r\n\r\n*1\r\n+x\r\n",
                Reply::Array(Some(vec![
                    Reply::Integer(1),
                    Reply::Bulk(Some(b"\r\n".to_vec())),
                    Reply::Array(Some(vec![Reply::Simple("x".into())])),
                ])),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                parse_reply(bytes),
                Ok(Some((bytes.len(), want.clone()))),
                "{bytes:?}"
            );
            // Every strict prefix needs more bytes.
            for cut in 0..bytes.len() {
                assert_eq!(parse_reply(&bytes[..cut]), Ok(None), "{bytes:?} cut {cut}");
            }
            // Trailing bytes are left alone.
            let mut more = bytes.to_vec();
            more.extend_from_slice(b"+next\r\n");
            assert_eq!(parse_reply(&more).unwrap().unwrap().0, bytes.len());
        }
    }

    #[test]
    fn resp_garbage_is_an_error_not_a_panic() {
        let cases: &[(&[u8], RespError)] = &[
            (b"?x\r\n", RespError::BadType(b'?')),
            (b":12a\r\n", RespError::BadNumber),
            (b":\r\n", RespError::BadNumber),
            (b"$-2\r\n", RespError::BadNumber),
            (b"$3\r\nabcde", RespError::BadFraming),
            (b"+a\rb\r\n", RespError::BadFraming),
            (b"+ab\n", RespError::BadFraming),
            (b"$999999999\r\n", RespError::TooLarge),
            (b"*99999\r\n", RespError::TooLarge),
            (
                b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
                RespError::TooLarge,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_reply(bytes), Err(want.clone()), "{bytes:?}");
        }
        assert_eq!(parse_reply(&[b'+'; 2000]), Err(RespError::TooLarge));
    }

    #[test]
    fn commands_encode_as_bulk_string_arrays() {
        let mut out = Vec::new();
        encode_command(&[b"SET", b"k", b"a b\r\n"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na b\r\n\r\n");
    }

    fn random_reply(rng: &mut crate::security::TestRng, depth: u32) -> Reply {
        match rng.below(if depth > 3 { 5 } else { 7 }) {
            0 => Reply::Simple("OK".into()),
            1 => Reply::Error("ERR x".into()),
            2 => Reply::Integer(rng.next_u64() as i64),
            3 => Reply::Bulk(None),
            4 => Reply::Bulk(Some(rng.bytes(20, b"\r\n$*+-:ab"))),
            5 => Reply::Array(None),
            _ => Reply::Array(Some(
                (0..rng.below(4))
                    .map(|_| random_reply(rng, depth + 1))
                    .collect(),
            )),
        }
    }

    #[test]
    fn random_replies_round_trip_and_random_bytes_never_panic() {
        let mut rng = crate::security::TestRng(0x5eed_0f4e_d15e_0001);
        for _ in 0..5_000 {
            let r = random_reply(&mut rng, 0);
            let mut bytes = Vec::new();
            encode_reply(&r, &mut bytes);
            assert_eq!(parse_reply(&bytes), Ok(Some((bytes.len(), r))));
            let cut = rng.below(bytes.len() as u64) as usize;
            assert_eq!(parse_reply(&bytes[..cut]), Ok(None));
            let junk = rng.bytes(40, b"\r\n$*+-:0123456789");
            let _ = parse_reply(&junk);
        }
    }
}
