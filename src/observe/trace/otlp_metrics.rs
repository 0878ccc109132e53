//! The OTLP/HTTP JSON encoding of `ExportMetricsServiceRequest`, sans-IO, made from the server's
//! own Prometheus exposition: one source for both, so an OTel-only backend gets exactly the
//! families, labels and values a Prometheus scrape gets.
//!
//! Counters become cumulative monotonic sums, gauges gauges, histograms explicit-bucket
//! histograms (Prometheus' cumulative `le` buckets turned into per-bucket counts); labels become
//! string attributes. 64-bit integers travel as decimal strings, enums as integers, as the OTLP
//! JSON rules say.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::observe::trace::otlp::Resource;

/// OTLP `AggregationTemporality`: values since a fixed start.
const CUMULATIVE: u8 = 2;

/// One sample line.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A family as the exposition declares it.
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// Appends the JSON `ExportMetricsServiceRequest` for `exposition` (Prometheus text format as
/// [`crate::observe::metrics::Metrics::render`] writes it) to `out`; returns how many data points it holds.
/// `start_unix_nanos` is when the counters started (the process start), `now_unix_nanos` the
/// reading's time.
pub fn encode_metrics(
    resource: &Resource,
    exposition: &str,
    start_unix_nanos: u64,
    now_unix_nanos: u64,
    out: &mut Vec<u8>,
) -> usize {
    let families = parse(exposition);
    let (start, now) = (start_unix_nanos.to_string(), now_unix_nanos.to_string());
    let mut points = 0;
    let metrics: Vec<Value> = families
        .iter()
        .filter_map(|(name, f)| {
            let data = match f.kind.as_str() {
                "counter" => {
                    let dp = number_points(&f.samples, name, &start, &now);
                    points += dp.len();
                    json!({"sum": {"dataPoints": dp, "aggregationTemporality": CUMULATIVE, "isMonotonic": true}})
                }
                "gauge" => {
                    let dp = number_points(&f.samples, name, &start, &now);
                    points += dp.len();
                    json!({"gauge": {"dataPoints": dp}})
                }
                "histogram" => {
                    let dp = histogram_points(&f.samples, name, &start, &now);
                    points += dp.len();
                    json!({"histogram": {"dataPoints": dp, "aggregationTemporality": CUMULATIVE}})
                }
                _ => return None,
            };
            let mut m = json!({"name": name, "description": f.help});
            if name.ends_with("_seconds") {
                m["unit"] = json!("s");
            } else if name.ends_with("_bytes") {
                m["unit"] = json!("By");
            }
            if let (Value::Object(m), Value::Object(d)) = (&mut m, data) {
                m.extend(d);
            }
            Some(m)
        })
        .collect();
    let request = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            kv("service.name", &resource.service_name),
            kv("service.version", &resource.service_version),
            kv("telemetry.sdk.name", "task-mcp"),
            kv("telemetry.sdk.language", "rust"),
            kv("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ]},
        "scopeMetrics": [{
            "scope": {"name": "task-mcp", "version": env!("CARGO_PKG_VERSION")},
            "metrics": metrics,
        }],
    }]});
    if serde_json::to_writer(&mut *out, &request).is_err() {
        out.clear();
        return 0;
    }
    points
}

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn attributes(labels: &[(String, String)]) -> Vec<Value> {
    labels.iter().map(|(k, v)| kv(k, v)).collect()
}

/// A JSON number for an integral value (as a decimal string, OTLP's `asInt`) or a double.
fn number_point(value: f64) -> (&'static str, Value) {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        ("asInt", json!((value as i64).to_string()))
    } else if value.is_finite() {
        ("asDouble", json!(value))
    } else if value.is_nan() {
        ("asDouble", json!("NaN"))
    } else if value > 0.0 {
        ("asDouble", json!("Infinity"))
    } else {
        ("asDouble", json!("-Infinity"))
    }
}

fn number_points(samples: &[Sample], name: &str, start: &str, now: &str) -> Vec<Value> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let (key, v) = number_point(s.value);
            let mut p = json!({
                "attributes": attributes(&s.labels),
                "startTimeUnixNano": start,
                "timeUnixNano": now,
            });
            p[key] = v;
            p
        })
        .collect()
}

fn histogram_points(samples: &[Sample], name: &str, start: &str, now: &str) -> Vec<Value> {
    // Series by their labels without `le`: (cumulative buckets, sum, count).
    type Series = (Vec<(f64, f64)>, f64, f64);
    let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for s in samples {
        let Some(suffix) = s.name.strip_prefix(name) else {
            continue;
        };
        let mut labels = s.labels.clone();
        let le = labels
            .iter()
            .position(|(k, _)| k == "le")
            .map(|i| labels.remove(i).1);
        let entry = series.entry(labels).or_default();
        match (suffix, le) {
            ("_bucket", Some(le)) => {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                entry.0.push((bound, s.value));
            }
            ("_sum", _) => entry.1 = s.value,
            ("_count", _) => entry.2 = s.value,
            _ => {}
        }
    }
    series
        .into_iter()
        .map(|(labels, (mut buckets, sum, count))| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let bounds: Vec<f64> = buckets
                .iter()
                .map(|b| b.0)
                .filter(|b| b.is_finite())
                .collect();
            let mut counts = Vec::with_capacity(buckets.len());
            let mut below = 0.0;
            for (_, cumulative) in &buckets {
                counts.push(((cumulative - below).max(0.0) as u64).to_string());
                below = *cumulative;
            }
            // A histogram written without its `+Inf` bucket still needs the overflow count.
            if buckets.last().is_none_or(|b| b.0.is_finite()) {
                counts.push(((count - below).max(0.0) as u64).to_string());
            }
            json!({
                "attributes": attributes(&labels),
                "startTimeUnixNano": start,
                "timeUnixNano": now,
                "count": (count as u64).to_string(),
                "sum": sum,
                "bucketCounts": counts,
                "explicitBounds": bounds,
            })
        })
        .collect()
}

/// Reads the exposition into families, in order. Lines it does not understand are skipped: the
/// input is our own encoder's output.
fn parse(text: &str) -> Vec<(String, Family)> {
    let mut families: Vec<(String, Family)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut families, name).help = help.replace("\\n", "\n").replace("\\\\", "\\");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut families, name).kind = kind.to_owned();
        } else if !line.starts_with('#')
            && !line.is_empty()
            && let Some(sample) = parse_sample(line)
            // Samples follow their family's HELP and TYPE lines.
            && let Some((_, f)) = families.last_mut()
        {
            f.samples.push(sample);
        }
    }
    families
}

fn family<'a>(families: &'a mut Vec<(String, Family)>, name: &str) -> &'a mut Family {
    if let Some(i) = families.iter().position(|(n, _)| n == name) {
        return &mut families[i].1;
    }
    families.push((
        name.to_owned(),
        Family {
            kind: String::new(),
            help: String::new(),
            samples: Vec::new(),
        },
    ));
    let last = families.len() - 1;
    &mut families[last].1
}

/// `name{a="x",b="y"} value` (label values with `\\`, `\"` and `\n` escapes).
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = Vec::new();
    let mut rest = rest;
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    let (_, q) = chars.next()?;
                    if q != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
    }
    let value = match rest.trim() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP requests_total Requests, by route.
# TYPE requests_total counter
requests_total{route=\"/mcp\",status=\"200\"} 7
requests_total{route=\"we\\\"ird\\\\\",status=\"500\"} 0
# HELP up_ratio A gauge.
# TYPE up_ratio gauge
up_ratio 0.5
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{route=\"/mcp\",le=\"0.1\"} 2
latency_seconds_bucket{route=\"/mcp\",le=\"1\"} 5
latency_seconds_bucket{route=\"/mcp\",le=\"+Inf\"} 6
latency_seconds_sum{route=\"/mcp\"} 3.25
latency_seconds_count{route=\"/mcp\"} 6
";

    fn encoded() -> (usize, Value) {
        let mut out = Vec::new();
        let n = encode_metrics(&Resource::new("svc"), TEXT, 100, 200, &mut out);
        (n, serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn counters_gauges_and_histograms_keep_their_values_and_labels() {
        let (n, doc) = encoded();
        assert_eq!(n, 4);
        let metrics = &doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
        assert_eq!(metrics[0]["name"], "requests_total");
        let sum = &metrics[0]["sum"];
        assert_eq!(sum["isMonotonic"], true);
        assert_eq!(sum["aggregationTemporality"], 2);
        assert_eq!(sum["dataPoints"][0]["asInt"], "7");
        assert_eq!(sum["dataPoints"][0]["startTimeUnixNano"], "100");
        assert_eq!(sum["dataPoints"][0]["timeUnixNano"], "200");
        assert_eq!(
            sum["dataPoints"][1]["attributes"][0],
            json!({"key": "route", "value": {"stringValue": "we\"ird\\"}})
        );
        assert_eq!(metrics[1]["gauge"]["dataPoints"][0]["asDouble"], 0.5);
        let h = &metrics[2];
        assert_eq!(h["unit"], "s");
        let p = &h["histogram"]["dataPoints"][0];
        assert_eq!(p["explicitBounds"], json!([0.1, 1.0]));
        assert_eq!(p["bucketCounts"], json!(["2", "3", "1"]));
        assert_eq!(p["count"], "6");
        assert_eq!(p["sum"], 3.25);
        assert_eq!(
            p["attributes"],
            json!([{"key": "route", "value": {"stringValue": "/mcp"}}])
        );
        assert_eq!(
            doc["resourceMetrics"][0]["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "svc"}})
        );
    }

    #[test]
    fn the_servers_own_exposition_converts_whole() {
        let m = crate::observe::metrics::Metrics::new(&["echo"], &["/mcp"]);
        m.request_finished("POST", "/mcp", 200, std::time::Duration::from_millis(3));
        let mut text = String::new();
        m.encode(&mut text, None).unwrap();
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let mut out = Vec::new();
        let points = encode_metrics(&Resource::default(), &text, 1, 2, &mut out);
        let doc: Value = serde_json::from_slice(&out).unwrap();
        let metrics = doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
            .as_array()
            .unwrap();
        assert_eq!(metrics.len(), families);
        assert!(points > 100, "{points}");
        let req = metrics
            .iter()
            .find(|m| m["name"] == "http_server_requests_total")
            .unwrap();
        assert!(
            req["sum"]["dataPoints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["asInt"] == "1")
        );
    }
}
