//! Security counters for `/security/metrics` (admin only): authentication successes and
//! failures, forbidden calls, rate-limit hits, network refusals, and the top offenders by client
//! address and by identity.
//!
//! Counters are relaxed atomics (no lock on the request path). Top offenders use the
//! Space-Saving algorithm (Metwally et al., 2005) over a fixed number of slots: memory is
//! bounded whatever the number of distinct offenders, every offender with more than
//! `1 / tracked` of all offenses is guaranteed a slot, and each reported count over-estimates
//! the true one by at most its `maxOvercount`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use crate::security::auth::AuthError;
use crate::security::ipnet::limit_key;

/// The counters. `Send + Sync`; share it in an `Arc`.
pub struct SecurityMetrics {
    auth_successes: AtomicU64,
    auth_missing: AtomicU64,
    auth_invalid: AtomicU64,
    auth_malformed: AtomicU64,
    forbidden: AtomicU64,
    rate_limited: AtomicU64,
    origin_denied: AtomicU64,
    host_denied: AtomicU64,
    ip_denied: AtomicU64,
    connection_limited: AtomicU64,
    by_ip: Mutex<TopK<IpAddr>>,
    by_identity: Mutex<TopK<String>>,
}

/// One top-offender entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offender<K> {
    /// The address unit (IPv4, or an IPv6 `/64` network address) or identity name.
    pub key: K,
    /// Offenses counted (an over-estimate by at most `max_overcount`).
    pub count: u64,
    /// The most `count` can exceed the true number.
    pub max_overcount: u64,
}

impl SecurityMetrics {
    /// Counters with `tracked` top-offender slots per dimension (at least 1).
    pub fn new(tracked: usize) -> Self {
        Self {
            auth_successes: AtomicU64::new(0),
            auth_missing: AtomicU64::new(0),
            auth_invalid: AtomicU64::new(0),
            auth_malformed: AtomicU64::new(0),
            forbidden: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            origin_denied: AtomicU64::new(0),
            host_denied: AtomicU64::new(0),
            ip_denied: AtomicU64::new(0),
            connection_limited: AtomicU64::new(0),
            by_ip: Mutex::new(TopK::new(tracked)),
            by_identity: Mutex::new(TopK::new(tracked)),
        }
    }

    /// A request authenticated.
    pub fn auth_success(&self) {
        bump(&self.auth_successes);
    }

    /// A request failed authentication (an offense of `ip`).
    pub fn auth_failure(&self, err: &AuthError, ip: IpAddr) {
        bump(match err {
            AuthError::Missing => &self.auth_missing,
            AuthError::Invalid => &self.auth_invalid,
            AuthError::Malformed(_) => &self.auth_malformed,
        });
        self.offense(ip, None);
    }

    /// An authenticated caller was refused for its role.
    pub fn forbidden(&self, identity: &str, ip: IpAddr) {
        bump(&self.forbidden);
        self.offense(ip, Some(identity));
    }

    /// A request hit a rate limit (`identity` when it was authenticated).
    pub fn rate_limited(&self, identity: Option<&str>, ip: IpAddr) {
        bump(&self.rate_limited);
        self.offense(ip, identity);
    }

    /// A request with a forbidden `Origin`.
    pub fn origin_denied(&self, ip: IpAddr) {
        bump(&self.origin_denied);
        self.offense(ip, None);
    }

    /// A request with a forbidden or malformed `Host`.
    pub fn host_denied(&self, ip: IpAddr) {
        bump(&self.host_denied);
        self.offense(ip, None);
    }

    /// A connection from a denied network.
    pub fn ip_denied(&self, ip: IpAddr) {
        bump(&self.ip_denied);
        self.offense(ip, None);
    }

    /// A connection refused by the per-address cap.
    pub fn connection_limited(&self, ip: IpAddr) {
        bump(&self.connection_limited);
        self.offense(ip, None);
    }

    /// Every counter by its Prometheus-style name (`…_total`), for the metrics exporter.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("auth_successes_total", load(&self.auth_successes)),
            ("auth_failures_missing_total", load(&self.auth_missing)),
            ("auth_failures_invalid_total", load(&self.auth_invalid)),
            ("auth_failures_malformed_total", load(&self.auth_malformed)),
            ("forbidden_total", load(&self.forbidden)),
            ("rate_limit_hits_total", load(&self.rate_limited)),
            ("origin_denied_total", load(&self.origin_denied)),
            ("host_denied_total", load(&self.host_denied)),
            ("ip_denied_total", load(&self.ip_denied)),
            ("connection_limited_total", load(&self.connection_limited)),
        ]
    }

    /// The `n` worst client address units, worst first.
    pub fn top_ips(&self, n: usize) -> Vec<Offender<IpAddr>> {
        self.by_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .top(n)
    }

    /// The `n` worst identities, worst first.
    pub fn top_identities(&self, n: usize) -> Vec<Offender<String>> {
        self.by_identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .top(n)
    }

    /// The `/security/metrics` document, with `top_n` offenders per dimension.
    pub fn to_json(&self, top_n: usize) -> Value {
        let missing = load(&self.auth_missing);
        let invalid = load(&self.auth_invalid);
        let malformed = load(&self.auth_malformed);
        let ips: Vec<Value> = self
            .top_ips(top_n)
            .into_iter()
            .map(|o| {
                let ip = match o.key {
                    IpAddr::V6(v6) => format!("{v6}/64"),
                    v4 => v4.to_string(),
                };
                json!({"ip": ip, "count": o.count, "maxOvercount": o.max_overcount})
            })
            .collect();
        let ids: Vec<Value> = self
            .top_identities(top_n)
            .into_iter()
            .map(|o| json!({"identity": o.key, "count": o.count, "maxOvercount": o.max_overcount}))
            .collect();
        json!({
            "authentication": {
                "successes": load(&self.auth_successes),
                "failures": missing + invalid + malformed,
                "failuresByReason": {"missing": missing, "invalid": invalid, "malformed": malformed},
            },
            "authorization": {"forbidden": load(&self.forbidden)},
            "rateLimit": {"hits": load(&self.rate_limited)},
            "network": {
                "originDenied": load(&self.origin_denied),
                "hostDenied": load(&self.host_denied),
                "ipDenied": load(&self.ip_denied),
                "connectionLimited": load(&self.connection_limited),
            },
            "topOffenders": {"byIp": ips, "byIdentity": ids},
        })
    }

    fn offense(&self, ip: IpAddr, identity: Option<&str>) {
        self.by_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(limit_key(ip));
        if let Some(name) = identity {
            let mut ids = self
                .by_identity
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            ids.add_by(|k| k.as_str() == name, || name.to_owned());
        }
    }
}

impl Default for SecurityMetrics {
    fn default() -> Self {
        Self::new(DEFAULT_TRACKED)
    }
}

/// Space-Saving summary: `cap` slots of (key, count, max over-count).
struct TopK<K> {
    cap: usize,
    slots: Vec<Offender<K>>,
}

impl<K: Clone + PartialEq> TopK<K> {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            slots: Vec::new(),
        }
    }

    fn add(&mut self, key: K) {
        self.add_by(|s| *s == key, || key.clone());
    }

    /// Counts one offense of the key matched by `is_key` (built by `make` only when new).
    fn add_by(&mut self, is_key: impl Fn(&K) -> bool, make: impl FnOnce() -> K) {
        if let Some(slot) = self.slots.iter_mut().find(|s| is_key(&s.key)) {
            slot.count += 1;
            return;
        }
        if self.slots.len() < self.cap {
            self.slots.push(Offender {
                key: make(),
                count: 1,
                max_overcount: 0,
            });
            return;
        }
        // Replace the smallest slot; the newcomer inherits its count as possible over-count.
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.count) {
            let floor = min.count;
            *min = Offender {
                key: make(),
                count: floor + 1,
                max_overcount: floor,
            };
        }
    }

    fn top(&self, n: usize) -> Vec<Offender<K>> {
        let mut v = self.slots.clone();
        v.sort_by_key(|o| std::cmp::Reverse(o.count));
        v.truncate(n);
        v
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Default top-offender slots per dimension.
pub const DEFAULT_TRACKED: usize = 64;
/// Default number of offenders shown per dimension.
pub const DEFAULT_TOP_N: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::auth::Malformed;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counters_add_up_by_kind() {
        let m = SecurityMetrics::default();
        let a = ip("192.0.2.1");
        m.auth_success();
        m.auth_success();
        m.auth_failure(&AuthError::Missing, a);
        m.auth_failure(&AuthError::Invalid, a);
        m.auth_failure(&AuthError::Invalid, a);
        m.auth_failure(&AuthError::Malformed(Malformed::EmptyToken), a);
        m.forbidden("reader-bot", a);
        m.rate_limited(Some("ci"), a);
        m.rate_limited(None, a);
        m.origin_denied(a);
        m.host_denied(a);
        m.ip_denied(a);
        m.connection_limited(a);
        let j = m.to_json(10);
        assert_eq!(j["authentication"]["successes"], 2);
        assert_eq!(j["authentication"]["failures"], 4);
        assert_eq!(
            j["authentication"]["failuresByReason"],
            json!({"missing": 1, "invalid": 2, "malformed": 1})
        );
        assert_eq!(j["authorization"]["forbidden"], 1);
        assert_eq!(j["rateLimit"]["hits"], 2);
        assert_eq!(
            j["network"],
            json!({"originDenied": 1, "hostDenied": 1, "ipDenied": 1, "connectionLimited": 1})
        );
        assert_eq!(
            j["topOffenders"]["byIp"],
            json!([{"ip": "192.0.2.1", "count": 11, "maxOvercount": 0}])
        );
        let ids = &j["topOffenders"]["byIdentity"];
        assert_eq!(ids.as_array().unwrap().len(), 2);
        let total: u64 = m.counters().iter().map(|(_, v)| v).sum();
        assert_eq!(total, 13);
    }

    #[test]
    fn offenders_are_ranked_and_ipv6_is_grouped() {
        let m = SecurityMetrics::new(8);
        for _ in 0..5 {
            m.auth_failure(&AuthError::Invalid, ip("2001:db8:1:1::1"));
        }
        for _ in 0..3 {
            m.auth_failure(&AuthError::Invalid, ip("2001:db8:1:1::ffff"));
        }
        for _ in 0..4 {
            m.auth_failure(&AuthError::Invalid, ip("::ffff:198.51.100.9"));
        }
        let top = m.top_ips(2);
        assert_eq!(top[0].key, ip("2001:db8:1:1::"));
        assert_eq!(top[0].count, 8);
        assert_eq!(top[1].key, ip("198.51.100.9"));
        assert_eq!(
            m.to_json(1)["topOffenders"]["byIp"][0]["ip"],
            "2001:db8:1:1::/64"
        );
    }

    #[test]
    fn a_flood_of_distinct_offenders_keeps_memory_bounded_and_the_heavy_hitter() {
        let m = SecurityMetrics::new(16);
        let attacker = ip("203.0.113.66");
        for i in 0..100_000u32 {
            m.auth_failure(&AuthError::Invalid, IpAddr::V4((0x0a00_0000 + i).into()));
            if i % 4 == 0 {
                m.auth_failure(&AuthError::Invalid, attacker);
            }
        }
        assert!(m.by_ip.lock().unwrap().slots.len() <= 16);
        let top = m.top_ips(1);
        assert_eq!(top[0].key, attacker);
        // The true count (25,000) lies within the reported bound.
        assert!(top[0].count >= 25_000);
        assert!(top[0].count - top[0].max_overcount <= 25_000);
    }

    #[test]
    fn identities_are_tracked_separately_from_addresses() {
        let m = SecurityMetrics::new(4);
        for i in 0..10 {
            m.rate_limited(Some("ci"), IpAddr::V4((i as u32).into()));
        }
        m.forbidden("viewer", ip("192.0.2.1"));
        let ids = m.top_identities(10);
        assert_eq!(ids[0].key, "ci");
        assert_eq!(ids[0].count, 10);
        assert_eq!(ids[1].key, "viewer");
        assert_eq!(m.top_ips(10).len(), 4);
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SecurityMetrics>();
    }
}
