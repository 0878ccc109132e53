//! Counting results and printing them (text or JSON).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// `writeln!` into a `String` (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// What one client thread saw during the measured window.
#[derive(Default, Debug)]
pub struct Tally {
    /// Latency of every successful request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Failed requests by [`crate::client::Fault::kind`].
    pub errors: BTreeMap<String, u64>,
    /// TCP+TLS connections opened.
    pub connects: u64,
    /// Response body bytes received.
    pub body_bytes: u64,
}

impl Tally {
    /// Counts one failure.
    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds another thread's counts.
    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.connects += other.connects;
        self.body_bytes += other.body_bytes;
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Nearest-rank percentiles of `us` (sorted in place); `None` when empty.
pub fn percentiles(us: &mut [u32]) -> Option<Percentiles> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let rank = |p: f64| {
        let i = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1;
        f64::from(us[i]) / 1000.0
    };
    Some(Percentiles {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: rank(1.0),
    })
}

/// The summary of a request run as JSON.
pub fn requests_json(label: &Value, mut t: Tally, window: Duration) -> Value {
    let ok = t.latencies_us.len() as u64;
    let failed: u64 = t.errors.values().sum();
    let secs = window.as_secs_f64().max(1e-9);
    let p = percentiles(&mut t.latencies_us);
    json!({
        "run": label,
        "seconds": round(secs, 3),
        "requests": ok,
        "failed": failed,
        "requests_per_second": round(ok as f64 / secs, 1),
        "latency_ms": p.map(|p| json!({"p50": p.p50, "p90": p.p90, "p99": p.p99, "max": p.max})),
        "errors": t.errors,
        "connections_opened": t.connects,
        "body_bytes": t.body_bytes,
    })
}

/// A summary made by [`requests_json`] or the streams mode, as text.
pub fn text(v: &Value) -> String {
    let mut out = String::new();
    let run = &v["run"];
    outln!(
        out,
        "{} {} -> {} ({} connection(s), {} thread(s){})",
        run["mode"].as_str().unwrap_or("?"),
        run["variant"].as_str().unwrap_or(""),
        run["url"].as_str().unwrap_or("?"),
        run["connections"],
        run["threads"],
        if run["new_conn"] == true {
            ", new connection per request"
        } else {
            ""
        },
    );
    if v.get("requests_per_second").is_some() {
        outln!(
            out,
            "  {} ok, {} failed in {} s: {} requests/s",
            v["requests"],
            v["failed"],
            v["seconds"],
            v["requests_per_second"]
        );
        if let Some(l) = v["latency_ms"].as_object() {
            outln!(
                out,
                "  latency ms: p50 {}  p90 {}  p99 {}  max {}",
                l["p50"],
                l["p90"],
                l["p99"],
                l["max"]
            );
        }
        outln!(out, "  connections opened: {}", v["connections_opened"]);
    } else {
        for key in [
            "opened",
            "failed",
            "early_closed",
            "open_seconds",
            "hold_seconds",
            "heartbeats",
            "heartbeats_per_stream_min",
            "heartbeats_expected_per_stream",
            "streams_missing_heartbeats",
            "max_gap_ms",
            "server_rss_before_kib",
            "server_rss_held_kib",
            "server_hwm_kib",
            "server_threads_held",
            "kib_per_stream",
        ] {
            if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
                outln!(out, "  {key}: {x}");
            }
        }
    }
    if let Some(e) = v["errors"].as_object().filter(|e| !e.is_empty()) {
        let list: Vec<String> = e.iter().map(|(k, n)| format!("{k} {n}")).collect();
        outln!(out, "  errors: {}", list.join(", "));
    }
    out
}

/// Rounds to `digits` decimals (for readable JSON).
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut us: Vec<u32> = (1..=100).rev().map(|i| i * 1000).collect();
        let p = percentiles(&mut us).unwrap();
        assert_eq!(
            p,
            Percentiles {
                p50: 50.0,
                p90: 90.0,
                p99: 99.0,
                max: 100.0
            }
        );
        assert_eq!(percentiles(&mut []), None);
        let p = percentiles(&mut [1500]).unwrap();
        assert_eq!((p.p50, p.max), (1.5, 1.5));
    }

    #[test]
    fn merged_tallies_add_up() {
        let mut a = Tally::default();
        a.error("timeout".into());
        a.latencies_us.push(5);
        let mut b = Tally::default();
        b.error("timeout".into());
        b.error("status-503".into());
        b.connects = 2;
        a.merge(b);
        assert_eq!(a.errors["timeout"], 2);
        assert_eq!(a.errors["status-503"], 1);
        assert_eq!((a.connects, a.latencies_us.len()), (2, 1));
    }
}
