//! Logging through `log` + `env_logger`: one JSON object per line (or readable text), with the
//! request fields the access log needs. Tokens and `Authorization` values never reach a log: the
//! access line is built from chosen fields only, never from raw headers.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::clock;
use crate::config::LogFormat;

/// The `log` target of access lines; their message is already a JSON object.
pub const ACCESS_TARGET: &str = "access";

/// Installs the global logger. Safe to call twice (the second call does nothing).
pub fn init(level: &str, format: LogFormat) {
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
                    if let Some(ids) = crate::trace::current_log_ids() {
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
                    access_text(&record.args().to_string())
                } else {
                    match crate::trace::current_log_ids() {
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
    /// Client address as believed (after trusted proxies).
    pub peer: std::net::IpAddr,
    /// Token identity, when authenticated.
    pub identity: Option<&'a str>,
    /// The request's span context, when traced (its ids go into the line).
    pub trace: Option<&'a crate::trace::SpanContext>,
}

/// Logs one access line at info level.
pub fn access(a: &Access<'_>) {
    if !log::log_enabled!(target: ACCESS_TARGET, log::Level::Info) {
        return;
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
    m.insert(
        "duration_ms".into(),
        json!((a.duration_ms * 1000.0).round() / 1000.0),
    );
    m.insert("peer".into(), a.peer.to_string().into());
    if let Some(i) = a.identity {
        m.insert("identity".into(), i.into());
    }
    if let Some(t) = a.trace {
        m.insert("traceId".into(), t.trace_id_hex().into());
        m.insert("spanId".into(), t.span_id_hex().into());
    }
    log::info!(target: ACCESS_TARGET, "{}", Value::Object(m));
}

fn access_text(json_line: &str) -> String {
    let v: Value = serde_json::from_str(json_line).unwrap_or(Value::Null);
    let trace = match (v["traceId"].as_str(), v["spanId"].as_str()) {
        (Some(t), Some(s)) => format!(" trace={t} span={s}"),
        _ => String::new(),
    };
    format!(
        "{} {} {} {}B {}ms peer={} id={}{trace}",
        v["method"].as_str().unwrap_or("-"),
        v["route"].as_str().unwrap_or("-"),
        v["status"],
        v["bytes"],
        v["duration_ms"],
        v["peer"].as_str().unwrap_or("-"),
        v["requestId"].as_str().unwrap_or("-"),
    )
}
