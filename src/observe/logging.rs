//! Logging through `log` + `env_logger`: one JSON object per line (or readable text), with the
//! request fields the access log needs. Tokens and `Authorization` values never reach a log: the
//! access line is built from chosen fields only, never from raw headers.

use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::clock;
use crate::config::LogFormat;

/// The `log` target of access lines; their message is already a JSON object.
pub const ACCESS_TARGET: &str = "access";

/// The format the logger was installed with; access lines are built in it directly.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global logger. Safe to call twice (the second call does nothing).
pub fn init(level: &str, format: LogFormat) {
    let format = *FORMAT.get_or_init(|| format);
    let mut b = env_logger::Builder::new();
    b.parse_filters(level);
    b.target(env_logger::Target::Stderr);
    match format {
        LogFormat::Json => {
            b.format(|buf, record| {
                let line = if record.target() == ACCESS_TARGET {
                    record.args().to_string()
                } else {
                    let mut line = json!({
                        "timestamp": clock::rfc3339(SystemTime::now()),
                        "level": record.level().as_str().to_ascii_lowercase(),
                        "message": record.args().to_string(),
                        "service": "task-mcp",
                        "target": record.target(),
                    });
                    // Lines logged while a request or tool span is current join its trace.
                    if let Some(ids) = crate::observe::trace::current_log_ids() {
                        line["traceId"] = ids.trace_id.into();
                        line["spanId"] = ids.span_id.into();
                    }
                    line.to_string()
                };
                writeln!(buf, "{line}")
            });
        }
        LogFormat::Text => {
            b.format(|buf, record| {
                let line = if record.target() == ACCESS_TARGET {
                    record.args().to_string()
                } else {
                    match crate::observe::trace::current_log_ids() {
                        Some(ids) => {
                            format!(
                                "{} trace={} span={}",
                                record.args(),
                                ids.trace_id,
                                ids.span_id
                            )
                        }
                        None => record.args().to_string(),
                    }
                };
                writeln!(
                    buf,
                    "{} {:5} {line}",
                    clock::rfc3339(SystemTime::now()),
                    record.level(),
                )
            });
        }
    }
    let _ = b.try_init();
}

/// The fields of one access-log line.
pub struct Access<'a> {
    /// Request id (echoed as X-Request-Id).
    pub request_id: &'a str,
    /// Method token.
    pub method: &'a str,
    /// Route template (never the raw path, which may carry tokens in its query).
    pub route: &'a str,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// Time to the response head, in milliseconds.
    pub duration_ms: f64,
    /// For a streamed answer, logged when the stream ended: how long it ran, in milliseconds
    /// (`bytes` is then what the stream sent).
    pub stream_ms: Option<f64>,
    /// Client address as believed (after trusted proxies).
    pub peer: std::net::IpAddr,
    /// Token identity, when authenticated.
    pub identity: Option<&'a str>,
    /// The request's span context, when traced (its ids go into the line).
    pub trace: Option<&'a crate::observe::trace::SpanContext>,
}

/// Logs one access line at info level.
pub fn access(a: &Access<'_>) {
    if !log::log_enabled!(target: ACCESS_TARGET, log::Level::Info) {
        return;
    }
    let line = access_line(a, FORMAT.get().copied().unwrap_or(LogFormat::Json));
    log::info!(target: ACCESS_TARGET, "{line}");
}

/// One access line in `format`: a JSON object, or `METHOD ROUTE STATUS BYTESB MSms peer= id=`.
fn access_line(a: &Access<'_>, format: LogFormat) -> String {
    let ms = (a.duration_ms * 1000.0).round() / 1000.0;
    let ids = a.trace.map(|t| (t.trace_id_hex(), t.span_id_hex()));
    let stream_ms = a.stream_ms.map(|s| (s * 1000.0).round() / 1000.0);
    if format == LogFormat::Text {
        let trace = ids.map_or(String::new(), |(t, s)| format!(" trace={t} span={s}"));
        let stream = stream_ms.map_or(String::new(), |s| format!(" stream={s}ms"));
        return format!(
            "{} {} {} {}B {ms}ms{stream} peer={} id={}{trace}",
            a.method, a.route, a.status, a.bytes, a.peer, a.request_id
        );
    }
    let mut m = Map::new();
    m.insert("timestamp".into(), clock::rfc3339(SystemTime::now()).into());
    m.insert("level".into(), "info".into());
    m.insert("message".into(), "request".into());
    m.insert("service".into(), "task-mcp".into());
    m.insert("requestId".into(), a.request_id.into());
    m.insert("method".into(), a.method.into());
    m.insert("route".into(), a.route.into());
    m.insert("status".into(), a.status.into());
    m.insert("bytes".into(), a.bytes.into());
    m.insert("duration_ms".into(), json!(ms));
    if let Some(s) = stream_ms {
        m.insert("stream_ms".into(), json!(s));
    }
    m.insert("peer".into(), a.peer.to_string().into());
    if let Some(i) = a.identity {
        m.insert("identity".into(), i.into());
    }
    if let Some((t, s)) = ids {
        m.insert("traceId".into(), t.into());
        m.insert("spanId".into(), s.into());
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Access<'static> {
        Access {
            request_id: "ab12-7",
            method: "POST",
            route: "/mcp",
            status: 200,
            bytes: 42,
            duration_ms: 0.512_4,
            stream_ms: None,
            peer: "198.51.100.7".parse().unwrap(),
            identity: Some("alice"),
            trace: None,
        }
    }

    #[test]
    fn the_text_line_carries_the_fields_without_a_json_round_trip() {
        assert_eq!(
            access_line(&sample(), LogFormat::Text),
            "POST /mcp 200 42B 0.512ms peer=198.51.100.7 id=ab12-7"
        );
    }

    #[test]
    fn the_json_line_is_one_object_with_the_chosen_fields() {
        let v: Value = serde_json::from_str(&access_line(&sample(), LogFormat::Json)).unwrap();
        assert_eq!(v["route"], "/mcp");
        assert_eq!(v["peer"], "198.51.100.7");
        assert_eq!(v["identity"], "alice");
        assert_eq!(v["duration_ms"], 0.512);
        assert!(v.get("traceId").is_none());
        assert!(v.get("stream_ms").is_none());
    }

    #[test]
    fn a_streamed_answer_names_its_length_and_duration() {
        let a = Access {
            bytes: 1234,
            stream_ms: Some(2_500.25),
            ..sample()
        };
        assert_eq!(
            access_line(&a, LogFormat::Text),
            "POST /mcp 200 1234B 0.512ms stream=2500.25ms peer=198.51.100.7 id=ab12-7"
        );
        let v: Value = serde_json::from_str(&access_line(&a, LogFormat::Json)).unwrap();
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["stream_ms"], 2500.25);
    }
}
