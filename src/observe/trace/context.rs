//! W3C Trace Context (level 1, with level 2's future-version rules), sans-IO.
//!
//! [`parse_traceparent`] and [`parse_tracestate`] take header values as bytes and never panic; an
//! invalid `tracestate` is dropped by [`extract`] while the `traceparent` is kept, as the spec
//! asks. [`IdGenerator`] draws ids from ring's `SystemRandom` and never yields an all-zero id.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

/// The sampled bit of `trace-flags`.
pub const FLAG_SAMPLED: u8 = 0x01;

/// The identity of one span as propagated between services.
///
/// Invariant: `trace_id` and `span_id` are never all zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// 16 random bytes shared by every span of one trace.
    pub trace_id: [u8; 16],
    /// 8 bytes naming this span (the `parent-id` field when parsed from a header).
    pub span_id: [u8; 8],
    /// `trace-flags`; bit 0 (`FLAG_SAMPLED`) says the caller recorded its span.
    pub flags: u8,
    /// Vendor state carried along unchanged; empty when absent or invalid.
    pub tracestate: TraceState,
    /// True when this context came from another process (a header), not from a local span.
    pub remote: bool,
}

/// A parsed `tracestate`: at most `MAX_TRACESTATE_MEMBERS` `key=value` pairs, keys unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    /// The members in header order; every key and value matches the W3C grammar.
    members: Vec<(String, String)>,
}

/// Why a `traceparent` header was rejected; the caller then starts a new trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceparentError {
    /// Shorter than 55 bytes, or a version 00 header not exactly 55 bytes long.
    WrongLength,
    /// A field is not lowercase hex of the right width (uppercase is invalid by the spec).
    NotLowercaseHex,
    /// A `-` separator is missing where the grammar puts one.
    MissingDash,
    /// Version `ff`, which the spec forbids.
    ForbiddenVersion,
    /// `trace-id` is all zeros.
    ZeroTraceId,
    /// `parent-id` is all zeros.
    ZeroParentId,
}

/// Why a `tracestate` header was rejected (the `traceparent` is still used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TracestateError {
    /// Longer than `MAX_TRACESTATE_BYTES`.
    TooLong,
    /// More than `MAX_TRACESTATE_MEMBERS` list-members.
    TooManyMembers,
    /// A list-member has no `=`.
    MissingEquals,
    /// A key breaks the `simple-key` / `multi-tenant-key` grammar.
    InvalidKey,
    /// A value breaks the `value` grammar (length 1..=256, printable ASCII, no `,` or `=`).
    InvalidValue,
    /// The same key appears twice.
    DuplicateKey,
}

/// Makes trace and span ids from the operating system's CSPRNG.
///
/// Should the CSPRNG fail (it does not on Linux once booted), ids fall back to a mix of the clock
/// and a counter: still unique per process and never zero, though guessable.
#[derive(Debug)]
pub struct IdGenerator {
    /// ring's handle on getrandom(2).
    rng: SystemRandom,
    /// Feeds the fallback path only.
    fallback_counter: AtomicU64,
}

impl SpanContext {
    /// True if the caller sampled (recorded) its span.
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl TraceState {
    /// The members in header order.
    pub fn members(&self) -> &[(String, String)] {
        &self.members
    }

    /// True when there is nothing to propagate.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Appends the header form (`k1=v1,k2=v2`) to `out`.
    pub fn encode(&self, out: &mut String) {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }
}

impl IdGenerator {
    /// A generator backed by `SystemRandom`.
    pub fn new() -> Self {
        Self {
            rng: SystemRandom::new(),
            fallback_counter: AtomicU64::new(0),
        }
    }

    /// A fresh, non-zero 16-byte trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        self.fill_non_zero(&mut id);
        id
    }

    /// A fresh, non-zero 8-byte span id.
    pub fn span_id(&self) -> [u8; 8] {
        let mut id = [0u8; 8];
        self.fill_non_zero(&mut id);
        id
    }

    fn fill_non_zero(&self, out: &mut [u8]) {
        // Two tries make an all-zero draw (2^-64 at worst) practically impossible; the
        // fallback below is non-zero by construction.
        for _ in 0..2 {
            if self.rng.fill(out).is_ok() && out.iter().any(|&b| b != 0) {
                return;
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = self.fallback_counter.fetch_add(1, Ordering::Relaxed);
        fallback_fill(out, nanos, count);
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongLength => "traceparent has the wrong length",
            Self::NotLowercaseHex => "traceparent field is not lowercase hex",
            Self::MissingDash => "traceparent is missing a '-' separator",
            Self::ForbiddenVersion => "traceparent version ff is forbidden",
            Self::ZeroTraceId => "traceparent trace-id is all zeros",
            Self::ZeroParentId => "traceparent parent-id is all zeros",
        })
    }
}

impl std::error::Error for TraceparentError {}

impl fmt::Display for TracestateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "tracestate is too long",
            Self::TooManyMembers => "tracestate has more than 32 members",
            Self::MissingEquals => "tracestate member has no '='",
            Self::InvalidKey => "tracestate key is invalid",
            Self::InvalidValue => "tracestate value is invalid",
            Self::DuplicateKey => "tracestate key appears twice",
        })
    }
}

impl std::error::Error for TracestateError {}

/// Parses one `traceparent` header value.
///
/// Version 00 must be exactly 55 bytes. A higher version (not `ff`) is read by the spec's
/// forward-compatible rules: the first 55 bytes in the version-00 layout, then either the end or
/// a `-` followed by fields we ignore; only the sampled flag is kept from such a header.
/// Surrounding spaces and tabs (HTTP optional whitespace) are ignored.
///
/// # Errors
/// A [`TraceparentError`] naming the first fault found.
pub fn parse_traceparent(value: &[u8]) -> Result<SpanContext, TraceparentError> {
    let v = trim_ows(value);
    if v.len() < TRACEPARENT_V0_BYTES {
        return Err(TraceparentError::WrongLength);
    }
    let version = parse_hex_lower::<1>(&v[0..2])?[0];
    if version == 0xff {
        return Err(TraceparentError::ForbiddenVersion);
    }
    if version == 0 && v.len() != TRACEPARENT_V0_BYTES {
        return Err(TraceparentError::WrongLength);
    }
    if v.len() > TRACEPARENT_V0_BYTES && v[TRACEPARENT_V0_BYTES] != b'-' {
        return Err(TraceparentError::MissingDash);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceparentError::MissingDash);
    }
    let trace_id = parse_hex_lower::<16>(&v[3..35])?;
    let span_id = parse_hex_lower::<8>(&v[36..52])?;
    let mut flags = parse_hex_lower::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] {
        return Err(TraceparentError::ZeroTraceId);
    }
    if span_id == [0; 8] {
        return Err(TraceparentError::ZeroParentId);
    }
    if version != 0 {
        flags &= FLAG_SAMPLED;
    }
    Ok(SpanContext {
        trace_id,
        span_id,
        flags,
        tracestate: TraceState::default(),
        remote: true,
    })
}

/// Parses a `tracestate` header value (several headers should be joined with `,` first).
///
/// Empty list-members (`a=1,,b=2`) are allowed and skipped, as the spec says.
///
/// # Errors
/// A [`TracestateError`]; the whole `tracestate` is then to be dropped.
pub fn parse_tracestate(value: &[u8]) -> Result<TraceState, TracestateError> {
    if value.len() > MAX_TRACESTATE_BYTES {
        return Err(TracestateError::TooLong);
    }
    let mut members: Vec<(String, String)> = Vec::new();
    for raw in value.split(|&b| b == b',') {
        let member = trim_ows(raw);
        if member.is_empty() {
            continue;
        }
        if members.len() == MAX_TRACESTATE_MEMBERS {
            return Err(TracestateError::TooManyMembers);
        }
        let eq = member
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TracestateError::MissingEquals)?;
        let (key, val) = (&member[..eq], &member[eq + 1..]);
        if !valid_tracestate_key(key) {
            return Err(TracestateError::InvalidKey);
        }
        if !valid_tracestate_value(val) {
            return Err(TracestateError::InvalidValue);
        }
        // Both validators admit ASCII only, so these conversions are lossless.
        let key = String::from_utf8_lossy(key).into_owned();
        if members.iter().any(|(k, _)| *k == key) {
            return Err(TracestateError::DuplicateKey);
        }
        members.push((key, String::from_utf8_lossy(val).into_owned()));
    }
    Ok(TraceState { members })
}

/// Builds the incoming context from the two headers: an invalid `traceparent` yields `None`
/// (start a new trace); an invalid `tracestate` is dropped and the `traceparent` kept.
pub fn extract(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<SpanContext> {
    let mut ctx = parse_traceparent(traceparent?).ok()?;
    if let Some(state) = tracestate {
        ctx.tracestate = parse_tracestate(state).unwrap_or_default();
    }
    Some(ctx)
}

/// Appends the version-00 `traceparent` form of `ctx` to `out`.
pub fn format_traceparent(ctx: &SpanContext, out: &mut String) {
    out.push_str("00-");
    push_hex(out, &ctx.trace_id);
    out.push('-');
    push_hex(out, &ctx.span_id);
    out.push('-');
    push_hex(out, &[ctx.flags]);
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

fn fallback_fill(out: &mut [u8], nanos: u64, count: u64) {
    let mixed = (nanos ^ count.rotate_left(32)).to_be_bytes();
    for (i, b) in out.iter_mut().enumerate() {
        *b = mixed[i % 8] ^ (count as u8).wrapping_add(i as u8);
    }
    if let Some(last) = out.last_mut() {
        *last |= 1;
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
}

fn parse_hex_lower<const N: usize>(s: &[u8]) -> Result<[u8; N], TraceparentError> {
    let mut out = [0u8; N];
    if s.len() != N * 2 {
        return Err(TraceparentError::WrongLength);
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Result<u8, TraceparentError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceparentError::NotLowercaseHex),
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn valid_tracestate_key(key: &[u8]) -> bool {
    let key_char = |c: u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    match key.iter().position(|&b| b == b'@') {
        None => {
            // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
            matches!(key.first(), Some(b'a'..=b'z'))
                && key.len() <= 256
                && key.iter().all(|&c| key_char(c))
        }
        Some(at) => {
            // multi-tenant-key = tenant-id "@" system-id
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            matches!(tenant.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
                && tenant.len() <= 241
                && tenant.iter().all(|&c| key_char(c))
                && matches!(system.first(), Some(b'a'..=b'z'))
                && system.len() <= 14
                && system.iter().all(|&c| key_char(c))
        }
    }
}

fn valid_tracestate_value(val: &[u8]) -> bool {
    // value = 0*255(chr) nblk-chr; nblk-chr excludes space, ',' and '='; chr adds space.
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match val.split_last() {
        Some((&last, rest)) => {
            val.len() <= 256 && nblk(last) && rest.iter().all(|&c| c == b' ' || nblk(c))
        }
        None => false,
    }
}

/// The exact length of a version-00 `traceparent`.
const TRACEPARENT_V0_BYTES: usize = 55;
/// The most list-members a `tracestate` may hold (W3C).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The longest `tracestate` we parse; 32 maximal members would be ~16 KiB, real ones are tiny.
pub const MAX_TRACESTATE_BYTES: usize = 8 * 1024;
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_table_accepts_and_rejects_per_spec() {
        use TraceparentError::*;
        let cases: &[(&str, Result<u8, TraceparentError>)] = &[
            (VALID, Ok(1)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Ok(0),
            ),
            (
                "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
                Ok(1),
            ),
            // Unknown flag bits are carried for version 00.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
                Ok(9),
            ),
            // Future version: extra fields after a dash are ignored; only sampled survives.
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future",
                Ok(1),
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Ok(0),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",
                Err(MissingDash),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                Err(WrongLength),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(ForbiddenVersion),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                Err(NotLowercaseHex),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                Err(NotLowercaseHex),
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(NotLowercaseHex),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
                Err(NotLowercaseHex),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                Err(ZeroTraceId),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                Err(ZeroParentId),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                Err(MissingDash),
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(MissingDash),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                Err(WrongLength),
            ),
            ("", Err(WrongLength)),
            ("00", Err(WrongLength)),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(NotLowercaseHex),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\u{e9}",
                Err(NotLowercaseHex),
            ),
        ];
        for (input, want) in cases {
            let got = parse_traceparent(input.as_bytes()).map(|c| c.flags);
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn traceparent_round_trips_through_format() {
        let ctx = parse_traceparent(VALID.as_bytes()).unwrap();
        assert!(ctx.remote && ctx.is_sampled());
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id_hex(), "00f067aa0ba902b7");
        let mut out = String::new();
        format_traceparent(&ctx, &mut out);
        assert_eq!(out, VALID);
    }

    #[test]
    fn hostile_traceparent_bytes_never_panic() {
        let ids = IdGenerator::new();
        let mut buf = VALID.as_bytes().to_vec();
        for i in 0..2_000 {
            let r = ids.span_id();
            let pos = usize::from(r[0]) % buf.len();
            buf[pos] = r[1];
            if i % 7 == 0 {
                buf.truncate(usize::from(r[2]) % 80);
                buf.extend_from_slice(&r);
            }
            let _ = parse_traceparent(&buf);
            let _ = parse_tracestate(&buf);
        }
    }

    #[test]
    fn tracestate_table_accepts_and_rejects_per_spec() {
        use TracestateError::*;
        let cases: &[(&str, Result<usize, TracestateError>)] = &[
            ("", Ok(0)),
            ("rojo=00f067aa0ba902b7", Ok(1)),
            ("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", Ok(2)),
            ("a=1,,  ,b=2", Ok(2)),
            ("tenant1@vendor=x y", Ok(1)),
            ("0tenant@sys=v", Ok(1)),
            ("a/b*c-d_e=v", Ok(1)),
            ("nokey", Err(MissingEquals)),
            ("Upper=1", Err(InvalidKey)),
            ("1abc=1", Err(InvalidKey)),
            ("a@1sys=1", Err(InvalidKey)),
            ("a@systemidtoolong1=1", Err(InvalidKey)),
            ("a@=1", Err(InvalidKey)),
            ("=1", Err(InvalidKey)),
            ("a=", Err(InvalidValue)),
            ("a=x ", Ok(1)), // trailing OWS is trimmed before the value is checked
            ("a=x=y", Err(InvalidValue)),
            ("a=caf\u{e9}", Err(InvalidValue)),
            ("a=1,a=2", Err(DuplicateKey)),
        ];
        for (input, want) in cases {
            let got = parse_tracestate(input.as_bytes()).map(|s| s.members().len());
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn tracestate_limits_are_enforced() {
        let ok: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse_tracestate(ok.join(",").as_bytes()).map(|s| s.members().len()),
            Ok(32)
        );
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse_tracestate(too_many.join(",").as_bytes()),
            Err(TracestateError::TooManyMembers)
        );
        let long_value = format!("a={}", "v".repeat(257));
        assert_eq!(
            parse_tracestate(long_value.as_bytes()),
            Err(TracestateError::InvalidValue)
        );
        let huge = "a=1,".repeat(MAX_TRACESTATE_BYTES);
        assert_eq!(
            parse_tracestate(huge.as_bytes()),
            Err(TracestateError::TooLong)
        );
    }

    #[test]
    fn extract_drops_bad_tracestate_but_keeps_traceparent() {
        let ctx = extract(Some(VALID.as_bytes()), Some(b"BAD KEY=1")).unwrap();
        assert!(ctx.tracestate.is_empty());
        assert_eq!(ctx.span_id_hex(), "00f067aa0ba902b7");
        let ctx = extract(Some(VALID.as_bytes()), Some(b"rojo=1,congo=2")).unwrap();
        assert_eq!(ctx.tracestate.get("congo"), Some("2"));
        let mut s = String::new();
        ctx.tracestate.encode(&mut s);
        assert_eq!(s, "rojo=1,congo=2");
        assert!(extract(Some(b"garbage"), Some(b"rojo=1")).is_none());
        assert!(extract(None, Some(b"rojo=1")).is_none());
    }

    #[test]
    fn generated_ids_are_non_zero_and_distinct() {
        let ids = IdGenerator::new();
        let a = ids.trace_id();
        let b = ids.trace_id();
        assert_ne!(a, [0; 16]);
        assert_ne!(a, b);
        assert_ne!(ids.span_id(), [0; 8]);
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn fallback_ids_are_never_zero() {
        for (nanos, count) in [(0, 0), (u64::MAX, u64::MAX), (0, 1 << 32)] {
            let mut out = [0u8; 16];
            fallback_fill(&mut out, nanos, count);
            assert_ne!(out, [0; 16]);
        }
    }
}
