//! Spans, their attributes and status, and the parent-based ratio sampler.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::observe::trace::context::{FLAG_SAMPLED, SpanContext, hex};

/// OpenTelemetry semantic-convention attribute keys used by this server.
pub mod attr {
    /// HTTP method, e.g. `POST`.
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// The request path without the query.
    pub const URL_PATH: &str = "url.path";
    /// `http` or `https`.
    pub const URL_SCHEME: &str = "url.scheme";
    /// The matched route template, e.g. `/mcp`.
    pub const HTTP_ROUTE: &str = "http.route";
    /// The response status code (an int attribute).
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// The server's host name as the client addressed it.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// The peer IP address.
    pub const CLIENT_ADDRESS: &str = "client.address";
    /// The `User-Agent` header.
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// `1.1` for HTTP/1.1.
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// The MCP tool called (MCP semantic conventions).
    pub const MCP_TOOL_NAME: &str = "mcp.tool.name";
    /// The same tool name under the GenAI conventions.
    pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
    /// The JSON-RPC method, e.g. `tools/call`.
    pub const MCP_METHOD_NAME: &str = "mcp.method.name";
    /// The class of error that ended the operation.
    pub const ERROR_TYPE: &str = "error.type";
}

/// What role a span plays; only the two this server produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// Handles one incoming request (OTLP `SPAN_KIND_SERVER` = 2).
    Server,
    /// Work inside a request, such as a tool call (OTLP `SPAN_KIND_INTERNAL` = 1).
    Internal,
}

/// How a span ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpanStatus {
    /// Nothing said (the default; a 4xx on a server span stays unset per the conventions).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a short description.
    Error {
        /// Human-readable reason; never secrets.
        message: String,
    },
}

/// One attribute value, as OTLP's `AnyValue` subset we emit.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `stringValue`.
    String(String),
    /// `intValue` (sent as a decimal string, int64 in protobuf JSON).
    Int(i64),
    /// `boolValue`.
    Bool(bool),
    /// `doubleValue`.
    Double(f64),
}

/// One operation, from start to end.
///
/// Invariants: `context.trace_id`/`span_id` are non-zero; at most `MAX_ATTRIBUTES_PER_SPAN`
/// attributes, each string value at most `MAX_ATTRIBUTE_VALUE_BYTES` long.
#[derive(Clone, Debug)]
pub struct Span {
    /// Operation name, e.g. `POST /mcp` or `tools/call change.open`.
    pub name: String,
    /// Server or internal.
    pub kind: SpanKind,
    /// This span's identity; `flags` carries the sampling decision.
    pub context: SpanContext,
    /// The parent's span id, if any (local or remote).
    pub parent_span_id: Option<[u8; 8]>,
    /// True when the parent came from another process.
    pub parent_is_remote: bool,
    /// Start time in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End time in nanoseconds since the Unix epoch; `None` until ended.
    pub end_unix_nanos: Option<u64>,
    /// Attributes in insertion order; a repeated key overwrites.
    attributes: Vec<(Cow<'static, str>, AttrValue)>,
    /// The final status.
    pub status: SpanStatus,
    /// Attributes refused because the span was full.
    pub dropped_attributes: u32,
}

/// Parent-based sampling with a ratio for root spans (`parentbased_traceidratio`).
///
/// A span with a parent follows the parent's sampled flag. A root span is sampled when the low 56
/// bits of its trace id (the W3C level-2 random part) fall below `ratio * 2^56`, so every service
/// using the same rule agrees on the same trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// In `0.0..=1.0`.
    ratio: f64,
    /// `ratio * 2^56`, precomputed.
    threshold: u64,
}

impl Span {
    /// A span that has not ended, with no attributes.
    pub fn new(
        name: impl Into<String>,
        kind: SpanKind,
        context: SpanContext,
        now: SystemTime,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            context,
            parent_span_id: None,
            parent_is_remote: false,
            start_unix_nanos: unix_nanos(now),
            end_unix_nanos: None,
            attributes: Vec::new(),
            status: SpanStatus::Unset,
            dropped_attributes: 0,
        }
    }

    /// True when this span will be exported.
    pub fn is_sampled(&self) -> bool {
        self.context.is_sampled()
    }

    /// The trace id as 32 lowercase hex digits (for log lines).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.context.trace_id)
    }

    /// The span id as 16 lowercase hex digits (for log lines).
    pub fn span_id_hex(&self) -> String {
        hex(&self.context.span_id)
    }

    /// Sets an attribute, replacing one with the same key. Long strings are cut at a character
    /// boundary to `MAX_ATTRIBUTE_VALUE_BYTES`; past `MAX_ATTRIBUTES_PER_SPAN` new keys are
    /// counted in `dropped_attributes` and ignored.
    pub fn set_attribute(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AttrValue>,
    ) {
        let key = key.into();
        let mut value = value.into();
        if let AttrValue::String(s) = &mut value {
            truncate_at_char(s, MAX_ATTRIBUTE_VALUE_BYTES);
        }
        if let Some(slot) = self.attributes.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else if self.attributes.len() < MAX_ATTRIBUTES_PER_SPAN {
            self.attributes.push((key, value));
        } else {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
        }
    }

    /// The attributes in insertion order.
    pub fn attributes(&self) -> &[(Cow<'static, str>, AttrValue)] {
        &self.attributes
    }

    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Marks the span failed with `error.type` = `error_type` and a status message.
    pub fn set_error(&mut self, error_type: impl Into<String>, message: impl Into<String>) {
        self.set_attribute(attr::ERROR_TYPE, error_type.into());
        let mut message = message.into();
        truncate_at_char(&mut message, MAX_ATTRIBUTE_VALUE_BYTES);
        self.status = SpanStatus::Error { message };
    }

    /// Records the end time; a second call keeps the first.
    pub fn end(&mut self, now: SystemTime) {
        if self.end_unix_nanos.is_none() {
            self.end_unix_nanos = Some(unix_nanos(now).max(self.start_unix_nanos));
        }
    }
}

impl Sampler {
    /// A sampler for root spans with `ratio` clamped into `0.0..=1.0` (NaN means 1.0).
    pub fn with_ratio(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        let threshold = (ratio * TWO_POW_56 as f64) as u64;
        Self { ratio, threshold }
    }

    /// Reads `OTEL_TRACES_SAMPLER_ARG`: a number in `0..=1`; unset or invalid means 1.0, as the
    /// OpenTelemetry environment-variable spec says.
    pub fn from_sampler_arg(arg: Option<&str>) -> Self {
        let ratio = arg
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0);
        Self::with_ratio(ratio)
    }

    /// The configured root ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether a span in trace `trace_id` with optional `parent` is recorded.
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: &[u8; 16]) -> bool {
        if let Some(p) = parent {
            return p.flags & FLAG_SAMPLED != 0;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        let mut low = [0u8; 8];
        low[1..].copy_from_slice(&trace_id[9..]);
        u64::from_be_bytes(low) < self.threshold
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::with_ratio(1.0)
    }
}

impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u16> for AttrValue {
    fn from(v: u16) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        Self::Double(v)
    }
}

/// Nanoseconds since the Unix epoch; 0 for times before it, saturating far in the future.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn truncate_at_char(s: &mut String, max_bytes: usize) {
    if s.len() > max_bytes {
        let mut cut = max_bytes;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The most attributes one span keeps (the OpenTelemetry SDK default).
pub const MAX_ATTRIBUTES_PER_SPAN: usize = 128;
/// The longest string attribute value kept, in bytes; a hostile `User-Agent` cannot bloat spans.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
const TWO_POW_56: u64 = 1 << 56;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observe::trace::context::{IdGenerator, TraceState};

    fn ctx(flags: u8) -> SpanContext {
        SpanContext {
            trace_id: [7; 16],
            span_id: [9; 8],
            flags,
            tracestate: TraceState::default(),
            remote: true,
        }
    }

    #[test]
    fn children_follow_the_parent_sampling_decision() {
        let never = Sampler::with_ratio(0.0);
        let always = Sampler::with_ratio(1.0);
        assert!(never.should_sample(Some(&ctx(1)), &[1; 16]));
        assert!(!always.should_sample(Some(&ctx(0)), &[1; 16]));
        assert!(!never.should_sample(None, &[0xff; 16]));
        assert!(always.should_sample(None, &[0xff; 16]));
    }

    #[test]
    fn root_ratio_samples_about_that_fraction() {
        let ids = IdGenerator::new();
        let sampler = Sampler::with_ratio(0.25);
        let hits = (0..20_000)
            .filter(|_| sampler.should_sample(None, &ids.trace_id()))
            .count();
        // 5000 expected; 6 sigma is about 370.
        assert!((4_600..=5_400).contains(&hits), "hits {hits}");
        assert!(!Sampler::with_ratio(0.0).should_sample(None, &[0; 16]));
    }

    #[test]
    fn sampler_arg_follows_the_otel_env_rules() {
        assert_eq!(Sampler::from_sampler_arg(None).ratio(), 1.0);
        assert_eq!(Sampler::from_sampler_arg(Some("0.5")).ratio(), 0.5);
        assert_eq!(Sampler::from_sampler_arg(Some(" 0 ")).ratio(), 0.0);
        assert_eq!(Sampler::from_sampler_arg(Some("1.5")).ratio(), 1.0);
        assert_eq!(Sampler::from_sampler_arg(Some("-1")).ratio(), 1.0);
        assert_eq!(Sampler::from_sampler_arg(Some("abc")).ratio(), 1.0);
        assert_eq!(Sampler::with_ratio(f64::NAN).ratio(), 1.0);
    }

    #[test]
    fn attributes_are_bounded_and_overwrite_by_key() {
        let t0 = UNIX_EPOCH + Duration::from_secs(10);
        let mut span = Span::new("x", SpanKind::Internal, ctx(1), t0);
        span.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, 200u16);
        span.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, 404u16);
        assert_eq!(
            span.attribute(attr::HTTP_RESPONSE_STATUS_CODE),
            Some(&AttrValue::Int(404))
        );
        span.set_attribute(attr::USER_AGENT_ORIGINAL, "\u{e9}".repeat(2_000));
        match span.attribute(attr::USER_AGENT_ORIGINAL) {
            Some(AttrValue::String(s)) => assert_eq!(s.len(), MAX_ATTRIBUTE_VALUE_BYTES),
            other => panic!("unexpected {other:?}"),
        }
        for i in 0..200 {
            span.set_attribute(format!("k{i}"), i64::from(i));
        }
        assert_eq!(span.attributes().len(), MAX_ATTRIBUTES_PER_SPAN);
        assert_eq!(span.dropped_attributes, 200 - 126);
    }

    #[test]
    fn end_is_recorded_once_and_never_before_start() {
        let t0 = UNIX_EPOCH + Duration::from_secs(10);
        let mut span = Span::new("x", SpanKind::Server, ctx(1), t0);
        span.end(t0 - Duration::from_secs(1));
        assert_eq!(span.end_unix_nanos, Some(10_000_000_000));
        span.end(t0 + Duration::from_secs(5));
        assert_eq!(span.end_unix_nanos, Some(10_000_000_000));
        assert_eq!(unix_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
