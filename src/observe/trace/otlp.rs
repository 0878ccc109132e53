//! The OTLP/HTTP JSON encoding of `ExportTraceServiceRequest`, sans-IO.
//!
//! Follows the OTLP JSON rules: field names in lowerCamelCase, `traceId`/`spanId` as lowercase
//! hex (not base64, OTLP's one departure from the protobuf JSON mapping), 64-bit integers
//! (`*UnixNano`, `intValue`) as decimal strings, enums as integers.

use serde::Serialize;

use crate::observe::trace::context::hex;
use crate::observe::trace::span::{AttrValue, Span, SpanKind, SpanStatus};

/// The `resource` and instrumentation `scope` every exported span is sent under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// `service.name` (`OTEL_SERVICE_NAME`, default `task-mcp`).
    pub service_name: String,
    /// `service.version` (the crate version by default).
    pub service_version: String,
}

impl Resource {
    /// `service.name` = `service_name`, `service.version` = this crate's version.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

impl Default for Resource {
    fn default() -> Self {
        Self::new(DEFAULT_SERVICE_NAME)
    }
}

/// Appends the JSON `ExportTraceServiceRequest` for `spans` to `out`.
///
/// Spans not yet ended are sent with their start time as end time.
pub fn encode_export_request(resource: &Resource, spans: &[Span], out: &mut Vec<u8>) {
    let request = ExportRequest {
        resource_spans: [ResourceSpans {
            resource: ResourceJson {
                attributes: vec![
                    kv_str("service.name", &resource.service_name),
                    kv_str("service.version", &resource.service_version),
                    kv_str("telemetry.sdk.name", SDK_NAME),
                    kv_str("telemetry.sdk.language", "rust"),
                    kv_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
                ],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: SDK_NAME,
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans: spans.iter().map(span_json).collect(),
            }],
        }],
    };
    // Serializing plain structs of strings and numbers into a Vec cannot fail; the error arm is
    // kept so a future non-serializable field shows up as an empty body, not a panic.
    if serde_json::to_writer(&mut *out, &request).is_err() {
        out.clear();
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: ResourceJson<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct ResourceJson<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    scope: Scope<'a>,
    spans: Vec<SpanJson<'a>>,
}

#[derive(Serialize)]
struct Scope<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanJson<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    flags: u32,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_attributes_count: u32,
    status: StatusJson<'a>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(&'a str),
    #[serde(rename = "intValue")]
    Int(String),
    #[serde(rename = "boolValue")]
    Bool(bool),
    #[serde(rename = "doubleValue")]
    Double(f64),
}

#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    code: u8,
}

fn span_json(span: &Span) -> SpanJson<'_> {
    let trace_state = (!span.context.tracestate.is_empty()).then(|| {
        let mut s = String::new();
        span.context.tracestate.encode(&mut s);
        s
    });
    let mut flags = u32::from(span.context.flags) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
    if span.parent_is_remote {
        flags |= SPAN_FLAGS_CONTEXT_IS_REMOTE;
    }
    let (code, message) = match &span.status {
        SpanStatus::Unset => (0, ""),
        SpanStatus::Ok => (1, ""),
        SpanStatus::Error { message } => (2, message.as_str()),
    };
    SpanJson {
        trace_id: hex(&span.context.trace_id),
        span_id: hex(&span.context.span_id),
        trace_state,
        parent_span_id: span.parent_span_id.map(|p| hex(&p)),
        flags,
        name: &span.name,
        kind: match span.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
        },
        start_time_unix_nano: span.start_unix_nanos.to_string(),
        end_time_unix_nano: span
            .end_unix_nanos
            .unwrap_or(span.start_unix_nanos)
            .to_string(),
        attributes: span
            .attributes()
            .iter()
            .map(|(k, v)| KeyValue {
                key: k,
                value: any_value(v),
            })
            .collect(),
        dropped_attributes_count: span.dropped_attributes,
        status: StatusJson { message, code },
    }
}

fn any_value(v: &AttrValue) -> AnyValue<'_> {
    match v {
        AttrValue::String(s) => AnyValue::String(s),
        AttrValue::Int(i) => AnyValue::Int(i.to_string()),
        AttrValue::Bool(b) => AnyValue::Bool(*b),
        // JSON has no NaN or infinity; serde_json would write null, which protobuf rejects.
        AttrValue::Double(d) if d.is_finite() => AnyValue::Double(*d),
        AttrValue::Double(_) => AnyValue::String("NaN"),
    }
}

fn kv_str<'a>(key: &'a str, value: &'a str) -> KeyValue<'a> {
    KeyValue {
        key,
        value: AnyValue::String(value),
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// `service.name` when `OTEL_SERVICE_NAME` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "task-mcp";
/// `telemetry.sdk.name` and the scope name: we are our own (minimal) SDK.
const SDK_NAME: &str = "task-mcp";
/// OTLP `SpanFlags`: bit 8 says whether bit 9 (parent is remote) is known.
const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_CONTEXT_IS_REMOTE: u32 = 0x200;

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::Value;

    use super::*;
    use crate::observe::trace::context::{SpanContext, parse_tracestate};
    use crate::observe::trace::span::attr;

    fn sample_span() -> Span {
        let ctx = SpanContext {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            flags: 1,
            tracestate: parse_tracestate(b"rojo=1").unwrap(),
            remote: false,
        };
        let t0 = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut span = Span::new("POST /mcp", SpanKind::Server, ctx, t0);
        span.parent_span_id = Some([0x02; 8]);
        span.parent_is_remote = true;
        span.set_attribute(attr::HTTP_REQUEST_METHOD, "POST");
        span.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, 200u16);
        span.set_attribute("flag", true);
        span.set_attribute("ratio", 0.5);
        span.set_attribute("bad", f64::INFINITY);
        span.set_error("timeout", "tool took too long");
        span.end(t0 + Duration::from_millis(3));
        span
    }

    #[test]
    fn json_has_the_otlp_shape() {
        let mut out = Vec::new();
        encode_export_request(&Resource::new("svc"), &[sample_span()], &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let rs = &v["resourceSpans"][0];
        let res_attrs = rs["resource"]["attributes"].as_array().unwrap();
        assert_eq!(res_attrs[0]["key"], "service.name");
        assert_eq!(res_attrs[0]["value"]["stringValue"], "svc");
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "0101010101010101");
        assert_eq!(s["parentSpanId"], "0202020202020202");
        assert_eq!(s["traceState"], "rojo=1");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["flags"], 0x301);
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(s["endTimeUnixNano"], "1700000000126456789");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["status"]["message"], "tool took too long");
        let attrs = s["attributes"].as_array().unwrap();
        let find = |k: &str| attrs.iter().find(|a| a["key"] == k).unwrap()["value"].clone();
        assert_eq!(find("http.request.method")["stringValue"], "POST");
        assert_eq!(find("http.response.status_code")["intValue"], "200");
        assert_eq!(find("flag")["boolValue"], true);
        assert_eq!(find("ratio")["doubleValue"], 0.5);
        assert_eq!(find("bad")["stringValue"], "NaN");
        assert_eq!(find("error.type")["stringValue"], "timeout");
    }

    #[test]
    fn root_internal_span_omits_parent_and_state() {
        let mut span = sample_span();
        span.parent_span_id = None;
        span.parent_is_remote = false;
        span.kind = SpanKind::Internal;
        span.status = SpanStatus::Ok;
        span.context.tracestate = Default::default();
        let mut out = Vec::new();
        encode_export_request(&Resource::default(), &[span], &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(s.get("parentSpanId").is_none());
        assert!(s.get("traceState").is_none());
        assert_eq!(s["kind"], 1);
        assert_eq!(s["flags"], 0x101);
        assert_eq!(s["status"], serde_json::json!({"code": 1}));
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "task-mcp"
        );
    }
}
