//! Checks an OTLP/HTTP JSON trace export body, the way a collector's decoder would.
//!
//! In `cargo test` the body is parsed strictly against the protobuf JSON mapping of
//! `ExportTraceServiceRequest` (opentelemetry-proto 1.x, written out below: an unknown field, a
//! wrong type or an unknown enum name is an error), with trace and span ids as OTLP's lowercase
//! hex. The live tier (`--features live`) also hands the body to the real protobuf parser of
//! Python's `opentelemetry-proto` (`tests/otlp/check_otlp.py`). Both then check what the test put
//! into the spans.
//!
//! `expect` is `{"service_name", "spans": [{"name", "trace_id", "span_id", "parent_span_id"?,
//! "kind", "status_code", "attributes": {key: value}}]}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Fails the test when `body` is not a valid export request holding what `expect` lists.
pub fn check(body: &[u8], expect: &Value) {
    let doc: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    if let Err(e) = message(&doc, "ExportTraceServiceRequest", "") {
        panic!("OTLP schema: {e}\nbody: {doc}");
    }
    if let Err(e) = contents(&doc, expect) {
        panic!("OTLP contents: {e}\nbody: {doc}");
    }
    if cfg!(feature = "live") {
        with_python(body, expect);
    }
}

/// Fails the test when `body` is not a valid OTLP metrics export request holding what `expect`
/// lists: `{"service_name", "metrics": {name: {"kind": "sum"|"gauge"|"histogram",
/// "attributes"?: {k: v}, "value"?: asInt string}}}`. Histograms' bucket counts must add up to
/// their count, with one more count than bounds.
pub fn check_metrics(body: &[u8], expect: &Value) {
    let doc: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    if let Err(e) = message(&doc, "ExportMetricsServiceRequest", "") {
        panic!("OTLP schema: {e}\nbody: {doc}");
    }
    let rm = &doc["resourceMetrics"][0];
    let resource = attributes(&rm["resource"]["attributes"]);
    assert_eq!(resource.get("service.name"), Some(&expect["service_name"]));
    let metrics = rm["scopeMetrics"][0]["metrics"]
        .as_array()
        .expect("metrics");
    for m in metrics {
        for p in m["histogram"]["dataPoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let counts: Vec<u128> = p["bucketCounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(int)
                .collect();
            let bounds = p["explicitBounds"].as_array().unwrap().len();
            assert_eq!(counts.len(), bounds + 1, "{}: {p}", m["name"]);
            assert_eq!(
                counts.iter().sum::<u128>(),
                int(&p["count"]),
                "{}: {p}",
                m["name"]
            );
        }
    }
    for (name, want) in expect["metrics"].as_object().unwrap() {
        let m = metrics
            .iter()
            .find(|m| m["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no metric {name}"));
        let kind = want["kind"].as_str().unwrap();
        let points = m[kind]["dataPoints"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not a {kind}: {m}"));
        assert!(!points.is_empty(), "{name} has no data points");
        if let Some(attrs) = want.get("attributes") {
            let p = points
                .iter()
                .find(|p| {
                    let have = attributes(&p["attributes"]);
                    attrs
                        .as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, v)| have.get(k).and_then(Value::as_str) == v.as_str())
                })
                .unwrap_or_else(|| panic!("{name}: no point with {attrs}"));
            if let Some(v) = want.get("value") {
                assert_eq!(&p["asInt"], v, "{name}: {p}");
            }
        }
    }
    if cfg!(feature = "live") {
        with_python_metrics(body);
    }
}

/// Runs `tests/otlp/check_otlp_metrics.py`: the real protobuf JSON parser (live tier).
fn with_python_metrics(body: &[u8]) {
    let dir = crate::support::temp_root();
    let body_path = dir.join("metrics.json");
    std::fs::write(&body_path, body).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/check_otlp_metrics.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&body_path)
        .output()
        .expect("python3 must be installed, with: pip install opentelemetry-proto==1.45.2");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "check_otlp_metrics.py failed (needs: pip install opentelemetry-proto==1.45.2):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The field kinds of the protobuf messages an export request is made of.
#[derive(Clone, Copy)]
enum Kind {
    Message(&'static str),
    Repeated(&'static str),
    Str,
    HexId(usize),
    Base64,
    Bool,
    Int64,
    Uint32,
    Double,
    Int64List,
    DoubleList,
    Enum(&'static [&'static str]),
}

const TEMPORALITIES: &[&str] = &[
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// The fields of `message` as (JSON name, proto name, kind).
fn fields(message: &str) -> &'static [(&'static str, &'static str, Kind)] {
    use Kind::*;
    match message {
        "ExportTraceServiceRequest" => {
            &[("resourceSpans", "resource_spans", Repeated("ResourceSpans"))]
        }
        "ResourceSpans" => &[
            ("resource", "resource", Message("Resource")),
            ("scopeSpans", "scope_spans", Repeated("ScopeSpans")),
            ("schemaUrl", "schema_url", Str),
        ],
        "Resource" => &[
            ("attributes", "attributes", Repeated("KeyValue")),
            ("droppedAttributesCount", "dropped_attributes_count", Uint32),
        ],
        "ScopeSpans" => &[
            ("scope", "scope", Message("InstrumentationScope")),
            ("spans", "spans", Repeated("Span")),
            ("schemaUrl", "schema_url", Str),
        ],
        "InstrumentationScope" => &[
            ("name", "name", Str),
            ("version", "version", Str),
            ("attributes", "attributes", Repeated("KeyValue")),
            ("droppedAttributesCount", "dropped_attributes_count", Uint32),
        ],
        "Span" => &[
            ("traceId", "trace_id", HexId(16)),
            ("spanId", "span_id", HexId(8)),
            ("traceState", "trace_state", Str),
            ("parentSpanId", "parent_span_id", HexId(8)),
            ("flags", "flags", Uint32),
            ("name", "name", Str),
            ("kind", "kind", Enum(SPAN_KINDS)),
            ("startTimeUnixNano", "start_time_unix_nano", Int64),
            ("endTimeUnixNano", "end_time_unix_nano", Int64),
            ("attributes", "attributes", Repeated("KeyValue")),
            ("droppedAttributesCount", "dropped_attributes_count", Uint32),
            ("events", "events", Repeated("Event")),
            ("droppedEventsCount", "dropped_events_count", Uint32),
            ("links", "links", Repeated("Link")),
            ("droppedLinksCount", "dropped_links_count", Uint32),
            ("status", "status", Message("Status")),
        ],
        "Event" => &[
            ("timeUnixNano", "time_unix_nano", Int64),
            ("name", "name", Str),
            ("attributes", "attributes", Repeated("KeyValue")),
            ("droppedAttributesCount", "dropped_attributes_count", Uint32),
        ],
        "Link" => &[
            ("traceId", "trace_id", HexId(16)),
            ("spanId", "span_id", HexId(8)),
            ("traceState", "trace_state", Str),
            ("attributes", "attributes", Repeated("KeyValue")),
            ("droppedAttributesCount", "dropped_attributes_count", Uint32),
            ("flags", "flags", Uint32),
        ],
        "Status" => &[
            ("message", "message", Str),
            ("code", "code", Enum(STATUS_CODES)),
        ],
        "KeyValue" => &[("key", "key", Str), ("value", "value", Message("AnyValue"))],
        "AnyValue" => &[
            ("stringValue", "string_value", Str),
            ("boolValue", "bool_value", Bool),
            ("intValue", "int_value", Int64),
            ("doubleValue", "double_value", Double),
            ("arrayValue", "array_value", Message("ArrayValue")),
            ("kvlistValue", "kvlist_value", Message("KeyValueList")),
            ("bytesValue", "bytes_value", Base64),
        ],
        "ArrayValue" => &[("values", "values", Repeated("AnyValue"))],
        "ExportMetricsServiceRequest" => &[(
            "resourceMetrics",
            "resource_metrics",
            Repeated("ResourceMetrics"),
        )],
        "ResourceMetrics" => &[
            ("resource", "resource", Message("Resource")),
            ("scopeMetrics", "scope_metrics", Repeated("ScopeMetrics")),
            ("schemaUrl", "schema_url", Str),
        ],
        "ScopeMetrics" => &[
            ("scope", "scope", Message("InstrumentationScope")),
            ("metrics", "metrics", Repeated("Metric")),
            ("schemaUrl", "schema_url", Str),
        ],
        "Metric" => &[
            ("name", "name", Str),
            ("description", "description", Str),
            ("unit", "unit", Str),
            ("gauge", "gauge", Message("Gauge")),
            ("sum", "sum", Message("Sum")),
            ("histogram", "histogram", Message("Histogram")),
            ("metadata", "metadata", Repeated("KeyValue")),
        ],
        "Gauge" => &[("dataPoints", "data_points", Repeated("NumberDataPoint"))],
        "Sum" => &[
            ("dataPoints", "data_points", Repeated("NumberDataPoint")),
            (
                "aggregationTemporality",
                "aggregation_temporality",
                Enum(TEMPORALITIES),
            ),
            ("isMonotonic", "is_monotonic", Bool),
        ],
        "Histogram" => &[
            ("dataPoints", "data_points", Repeated("HistogramDataPoint")),
            (
                "aggregationTemporality",
                "aggregation_temporality",
                Enum(TEMPORALITIES),
            ),
        ],
        "NumberDataPoint" => &[
            ("attributes", "attributes", Repeated("KeyValue")),
            ("startTimeUnixNano", "start_time_unix_nano", Int64),
            ("timeUnixNano", "time_unix_nano", Int64),
            ("asDouble", "as_double", Double),
            ("asInt", "as_int", Int64),
            ("flags", "flags", Uint32),
        ],
        "HistogramDataPoint" => &[
            ("attributes", "attributes", Repeated("KeyValue")),
            ("startTimeUnixNano", "start_time_unix_nano", Int64),
            ("timeUnixNano", "time_unix_nano", Int64),
            ("count", "count", Int64),
            ("sum", "sum", Double),
            ("bucketCounts", "bucket_counts", Int64List),
            ("explicitBounds", "explicit_bounds", DoubleList),
            ("flags", "flags", Uint32),
            ("min", "min", Double),
            ("max", "max", Double),
        ],
        "KeyValueList" => &[("values", "values", Repeated("KeyValue"))],
        other => panic!("no schema for {other}"),
    }
}

fn message(v: &Value, name: &str, at: &str) -> Result<(), String> {
    let Value::Object(o) = v else {
        return Err(format!("{at}: {name} must be an object, got {v}"));
    };
    let schema = fields(name);
    for (key, value) in o {
        let Some((json, _, kind)) = schema.iter().find(|(j, p, _)| j == key || p == key) else {
            let known: Vec<&str> = schema.iter().map(|f| f.0).collect();
            return Err(format!(
                "{at}/{key}: no such field in {name} (has {known:?})"
            ));
        };
        if value.is_null() {
            continue;
        }
        field(value, *kind, &format!("{at}/{json}"))?;
    }
    if name == "NumberDataPoint" && o.contains_key("asInt") == o.contains_key("asDouble") {
        return Err(format!(
            "{at}: a data point holds asInt or asDouble, got {o:?}"
        ));
    }
    if name == "Metric"
        && ["gauge", "sum", "histogram"]
            .iter()
            .filter(|k| o.contains_key(**k))
            .count()
            != 1
    {
        return Err(format!(
            "{at}: a metric holds exactly one of gauge, sum, histogram"
        ));
    }
    if name == "AnyValue" && o.len() != 1 {
        return Err(format!(
            "{at}: an AnyValue holds exactly one value, got {o:?}"
        ));
    }
    Ok(())
}

fn field(v: &Value, kind: Kind, at: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("{at}: expected {what}, got {v}"));
    match kind {
        Kind::Message(m) => message(v, m, at),
        Kind::Repeated(m) => match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| message(x, m, &format!("{at}/{i}"))),
            _ => bad("an array"),
        },
        Kind::Str => match v {
            Value::String(_) => Ok(()),
            _ => bad("a string"),
        },
        Kind::HexId(bytes) => match v.as_str() {
            Some(s)
                if s.len() == bytes * 2
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(())
            }
            Some("") => Ok(()),
            _ => bad(&format!("{bytes} bytes as lowercase hex")),
        },
        Kind::Base64 => match v.as_str() {
            Some(s)
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b)) =>
            {
                Ok(())
            }
            _ => bad("base64"),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => bad("true or false"),
        },
        Kind::Int64 => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
            Value::String(s) if s.parse::<i128>().is_ok() => Ok(()),
            _ => bad("a 64-bit integer (number or decimal string)"),
        },
        Kind::Uint32 => match v.as_u64() {
            Some(n) if n <= u64::from(u32::MAX) => Ok(()),
            _ => bad("an unsigned 32-bit integer"),
        },
        Kind::Double => match v {
            Value::Number(_) => Ok(()),
            Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => Ok(()),
            _ => bad("a number"),
        },
        Kind::Int64List => match v {
            Value::Array(items) => items.iter().try_for_each(|x| field(x, Kind::Int64, at)),
            _ => bad("an array of 64-bit integers"),
        },
        Kind::DoubleList => match v {
            Value::Array(items) => items.iter().try_for_each(|x| field(x, Kind::Double, at)),
            _ => bad("an array of numbers"),
        },
        Kind::Enum(names) => match v {
            Value::String(s) if names.contains(&s.as_str()) => Ok(()),
            Value::Number(n) if n.as_u64().is_some_and(|i| (i as usize) < names.len()) => Ok(()),
            _ => bad(&format!("one of {names:?}")),
        },
    }
}

/// An enum field as its name, whether it was sent as a name or a number.
fn enum_name(v: &Value, names: &[&str]) -> String {
    match v {
        Value::Number(n) => names[n.as_u64().unwrap_or(0) as usize].to_owned(),
        Value::String(s) => s.clone(),
        _ => names[0].to_owned(),
    }
}

fn int(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_u64().unwrap_or(0).into(),
    }
}

fn attributes(list: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = kv["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or(Value::Null);
        out.insert(kv["key"].as_str().unwrap_or("").to_owned(), value);
    }
    out
}

/// What `tests/otlp/check_otlp.py` checks after parsing, on the JSON document.
fn contents(doc: &Value, expect: &Value) -> Result<(), String> {
    let resource_spans = doc["resourceSpans"].as_array().cloned().unwrap_or_default();
    if resource_spans.len() != 1 {
        return Err(format!(
            "expected 1 resourceSpans, got {}",
            resource_spans.len()
        ));
    }
    let rs = &resource_spans[0];
    let res = attributes(&rs["resource"]["attributes"]);
    if res.get("service.name") != Some(&expect["service_name"]) {
        return Err(format!("service.name {:?}", res.get("service.name")));
    }
    for key in [
        "service.version",
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
    ] {
        let present = res.get(key).and_then(Value::as_str).unwrap_or("");
        if present.is_empty() {
            return Err(format!("resource attribute {key} missing"));
        }
    }
    let mut spans: Map<String, Value> = Map::new();
    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
        for s in ss["spans"].as_array().into_iter().flatten() {
            spans.insert(s["name"].as_str().unwrap_or("").to_owned(), s.clone());
        }
    }
    for want in expect["spans"].as_array().into_iter().flatten() {
        let name = want["name"].as_str().unwrap_or("");
        let Some(s) = spans.get(name) else {
            return Err(format!("span {name:?} missing; have {:?}", spans.keys()));
        };
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        if text(&s["traceId"]) != text(&want["trace_id"]) || text(&s["traceId"]).len() != 32 {
            return Err(format!("{name}: traceId {}", s["traceId"]));
        }
        if text(&s["spanId"]) != text(&want["span_id"]) || text(&s["spanId"]).len() != 16 {
            return Err(format!("{name}: spanId {}", s["spanId"]));
        }
        if text(&s["parentSpanId"]) != text(&want["parent_span_id"]) {
            return Err(format!("{name}: parentSpanId {}", s["parentSpanId"]));
        }
        if enum_name(&s["kind"], SPAN_KINDS) != text(&want["kind"]) {
            return Err(format!("{name}: kind {}", s["kind"]));
        }
        if enum_name(&s["status"]["code"], STATUS_CODES) != text(&want["status_code"]) {
            return Err(format!("{name}: status {}", s["status"]));
        }
        let (start, end) = (int(&s["startTimeUnixNano"]), int(&s["endTimeUnixNano"]));
        if !(0 < start && start <= end) {
            return Err(format!("{name}: times {start}..{end}"));
        }
        if s["flags"].as_u64().unwrap_or(0) & 0x100 == 0 {
            return Err(format!("{name}: flags {} lack HAS_IS_REMOTE", s["flags"]));
        }
        let attrs = attributes(&s["attributes"]);
        for (key, value) in want["attributes"].as_object().into_iter().flatten() {
            let got = attrs.get(key).map(|v| match v {
                Value::String(s) if value.is_i64() => {
                    s.parse::<i64>().map_or(v.clone(), Value::from)
                }
                _ => v.clone(),
            });
            if got.as_ref() != Some(value) {
                return Err(format!("{name}: attribute {key} = {got:?}, want {value}"));
            }
        }
    }
    Ok(())
}

/// Runs `tests/otlp/check_otlp.py` on the body: the real protobuf JSON parser (live tier).
fn with_python(body: &[u8], expect: &Value) {
    let dir = crate::support::temp_root();
    let body_path = dir.join("body.json");
    let expect_path = dir.join("expect.json");
    std::fs::write(&body_path, body).unwrap();
    std::fs::write(&expect_path, expect.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/check_otlp.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&body_path)
        .arg(&expect_path)
        .output()
        .expect("python3 must be installed, with: pip install opentelemetry-proto==1.45.2");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "check_otlp.py failed (needs: pip install opentelemetry-proto==1.45.2):\n{}\n{}\nbody: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(body),
    );
}

/// The checker must refuse what the real parser refuses; these bodies each break one rule.
#[test]
fn the_schema_check_refuses_what_the_protobuf_parser_refuses() {
    let good = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "x"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "n", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "status": {"code": "STATUS_CODE_OK"}, "flags": 256}]}]}]});
    assert_eq!(message(&good, "ExportTraceServiceRequest", ""), Ok(()));
    let span = "/resourceSpans/0/scopeSpans/0/spans/0";
    for (path, bad) in [
        (format!("{span}/unknownField"), serde_json::json!(1)),
        (
            format!("{span}/traceId"),
            serde_json::json!("0AF7651916CD43DD8448EB211C80319C"),
        ),
        (
            format!("{span}/spanId"),
            serde_json::json!("b7ad6b71692033"),
        ),
        (format!("{span}/kind"), serde_json::json!("SERVER")),
        (
            format!("{span}/startTimeUnixNano"),
            serde_json::json!("soon"),
        ),
        (format!("{span}/flags"), serde_json::json!(-1)),
        (format!("{span}/status/code"), serde_json::json!(7)),
        (
            "/resourceSpans/0/resource/attributes/0/value".to_owned(),
            serde_json::json!({"stringValue": "a", "intValue": 1}),
        ),
    ] {
        let mut doc = good.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = bad;
        assert!(
            message(&doc, "ExportTraceServiceRequest", "").is_err(),
            "{path} was accepted"
        );
    }
}
