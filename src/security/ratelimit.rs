//! In-process rate limiting: one token bucket per token identity and per client address.
//!
//! ## Algorithm
//! A token bucket of capacity `burst` (`RATE_LIMIT_BURST`) refilled at `per_min`
//! (`RATE_LIMIT`) tokens a minute, stored in its GCRA form: per key only the instant at which the
//! bucket will be full again (the "theoretical arrival time", TAT). A request of `cost` tokens
//! at `now` is allowed when `max(TAT, now) + cost·T − now ≤ burst·T`, where `T` is the refill
//! interval of one token (`60 s / per_min`, rounded up to the nanosecond, so rounding can only make
//! the limit stricter by under a nanosecond a token). Integer nanoseconds make every decision
//! exact and reproducible with an injected clock. A denied request consumes nothing.
//!
//! ## Memory
//! A bucket whose TAT is not after `now` is full: dropping it changes nothing, because an absent
//! key is treated as a full bucket. Keys live in [`SHARDS`] mutex-guarded maps (low contention),
//! each holding at most `max_keys / SHARDS` buckets (`RATE_LIMIT_MAX_KEYS`). A full shard first
//! drops its full buckets; if it is still above 7/8 of its share, it drops the buckets closest to
//! full (smallest TAT) down to 7/8. A flood of fresh keys therefore evicts other fresh keys first,
//! while a key that has spent its burst (the one worth limiting) survives longest. Eviction runs
//! once per `max_keys / 8 / SHARDS` inserts, so its cost is amortized to O(1) per request.
//!
//! IPv6 clients are keyed by their `/64` and IPv4-mapped addresses by their IPv4 form
//! (`crate::security::ipnet::limit_key`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::security::ipnet::limit_key;

/// A rate: `per_min` tokens a minute into a bucket of `burst` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    per_min: NonZeroU32,
    burst: NonZeroU32,
}

/// What is limited.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A token identity name (never the token).
    Token(String),
    /// A client address (grouped by `/64` for IPv6).
    Ip(IpAddr),
}

/// The verdict on one request, with what the rate-limit headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The request may proceed (its cost was taken from the bucket).
    pub allowed: bool,
    /// The bucket capacity (`burst`).
    pub limit: u32,
    /// Whole tokens left after this decision.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// For a denial: time until the same request would be allowed. `None` when allowed, and also
    /// on a denial whose cost exceeds the burst (it can never be allowed).
    pub retry_after: Option<Duration>,
}

/// A sharded, memory-bounded set of token buckets. `Send + Sync`; share it in an `Arc`.
pub struct Limiter {
    quota: Quota,
    epoch: Instant,
    hasher: RandomState,
    shard_cap: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl Quota {
    /// `per_min` tokens a minute, bucket of `burst` tokens; `None` when either is zero.
    pub fn new(per_min: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_min: NonZeroU32::new(per_min)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    /// Tokens added per minute.
    pub fn per_min(&self) -> u32 {
        self.per_min.get()
    }

    /// Bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// Nanoseconds to refill one token: `ceil(60 s / per_min)`.
    pub fn interval_ns(&self) -> u64 {
        NANOS_PER_MINUTE.div_ceil(u64::from(self.per_min.get()))
    }
}

impl Key {
    /// The key as text (for logs, metrics and the shared Redis limiter): `t:<name>` or
    /// `ip:<addr>` with IPv6 reduced to its `/64` network address.
    pub fn render(&self) -> String {
        match self {
            Key::Token(name) => format!("t:{name}"),
            Key::Ip(ip) => format!("ip:{}", limit_key(*ip)),
        }
    }
}

impl Decision {
    /// The response headers: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
    /// (seconds, rounded up; draft-ietf-httpapi-ratelimit-headers) and, on a denial that can
    /// succeed later, `Retry-After` (seconds, rounded up, at least 1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            ("RateLimit-Reset", ceil_secs(self.reset_after).to_string()),
        ];
        if let Some(secs) = self.retry_after_secs() {
            h.push(("Retry-After", secs.to_string()));
        }
        h
    }

    /// `Retry-After` in whole seconds, rounded up (at least 1); `None` when not applicable.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| ceil_secs(d).max(1))
    }

    /// The wait in milliseconds, rounded up (at least 1); `None` when not applicable.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            u64::try_from(d.as_nanos().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1)
        })
    }

    /// The JSON-RPC error object for a denial:
    /// `{"code":-32005,"message":"Rate limit exceeded","data":{"retryAfterMs"?,"limit","remaining","resetMs"}}`.
    pub fn rpc_error(&self) -> Value {
        let reset_ms =
            u64::try_from(self.reset_after.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let mut data = json!({
            "limit": self.limit,
            "remaining": self.remaining,
            "resetMs": reset_ms,
        });
        if let Some(ms) = self.retry_after_ms() {
            data["retryAfterMs"] = json!(ms);
        }
        json!({ "code": RATE_LIMITED_CODE, "message": "Rate limit exceeded", "data": data })
    }
}

impl Limiter {
    /// A limiter applying `quota` by default, holding at most `max_keys` buckets (at least one
    /// per shard). `epoch` is any instant not after the first `now` passed in (times before it
    /// count as `epoch`).
    pub fn new(quota: Quota, max_keys: usize, epoch: Instant) -> Self {
        let shard_count = SHARDS.min(max_keys.max(1));
        let shard_cap = (max_keys / shard_count).max(1);
        let shards = (0..shard_count)
            .map(|_| Mutex::new(Shard::default()))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            quota,
            epoch,
            hasher: RandomState::new(),
            shard_cap,
            shards,
        }
    }

    /// The default quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The quota for an identity with its own `rateLimit` (per minute): that rate with the
    /// default burst; the default quota when it has none.
    pub fn quota_for(&self, per_min: Option<u32>) -> Quota {
        own_quota(self.quota, per_min)
    }

    /// Takes `cost` tokens from `key`'s bucket under the default quota.
    pub fn check(&self, key: &Key, cost: u32, now: Instant) -> Decision {
        self.check_with(key, self.quota, cost, now)
    }

    /// Takes `cost` tokens from `key`'s bucket under `quota` (a key should always be checked
    /// with the same quota). `cost == 0` peeks without taking anything.
    pub fn check_with(&self, key: &Key, quota: Quota, cost: u32, now: Instant) -> Decision {
        let t = u128::from(self.nanos(now));
        let slot = SlotKey::from(key);
        let shard_index = self.shard_of(&slot);
        let mut shard = self.shards[shard_index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stored = shard.map.get(&slot).copied();
        let tat = stored.map_or(t, |v| u128::from(v).max(t));
        let (decision, new_tat) = gcra(quota, tat, t, cost);
        if let Some(new_tat) = new_tat.filter(|&n| n > t) {
            let new_tat = u64::try_from(new_tat).unwrap_or(u64::MAX);
            if stored.is_none() && shard.map.len() >= self.shard_cap {
                shard.evict(self.shard_cap, t);
            }
            shard.map.insert(slot, new_tat);
        }
        decision
    }

    /// Buckets currently held (every one of them not full).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most buckets ever held at once: `max_keys` rounded down to a multiple of the shard
    /// count (at least one per shard).
    pub fn max_keys(&self) -> usize {
        self.shard_cap * self.shards.len()
    }

    /// An upper estimate of the heap bytes the buckets use (table slots and key text).
    pub fn memory_estimate_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(SlotKey, u64)>() + 1;
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                let names: usize = s
                    .map
                    .keys()
                    .map(|k| match k {
                        SlotKey::Token(n) => n.len(),
                        _ => 0,
                    })
                    .sum();
                s.map.capacity() * slot + names + std::mem::size_of::<Mutex<Shard>>()
            })
            .sum()
    }

    /// Drops every full bucket (optional housekeeping; lookups never need it).
    pub fn sweep(&self, now: Instant) {
        let t = self.nanos(now);
        for s in self.shards.iter() {
            s.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .map
                .retain(|_, tat| *tat > t);
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard_of(&self, slot: &SlotKey) -> usize {
        // Keyed SipHash: a client cannot aim many keys at one shard.
        let h = self.hasher.hash_one(slot);
        usize::try_from(h % self.shards.len() as u64).unwrap_or(0)
    }
}

/// Whole seconds, rounded up (header values never promise a retry too early).
fn ceil_secs(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// The decision for a bucket whose TAT is `tat` (already `max(stored, t)`), and the new TAT to
/// store when allowed. All values are nanoseconds since the epoch.
fn gcra(quota: Quota, tat: u128, t: u128, cost: u32) -> (Decision, Option<u128>) {
    let interval = u128::from(quota.interval_ns());
    let tau = interval * u128::from(quota.burst());
    let remaining = |tat: u128| {
        let used = tat.saturating_sub(t);
        u32::try_from(tau.saturating_sub(used) / interval).unwrap_or(u32::MAX)
    };
    let as_duration = |ns: u128| Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
    let new_tat = tat + u128::from(cost) * interval;
    if new_tat - t <= tau {
        let d = Decision {
            allowed: true,
            limit: quota.burst(),
            remaining: remaining(new_tat),
            reset_after: as_duration(new_tat - t),
            retry_after: None,
        };
        return (d, Some(new_tat));
    }
    let retry_after = if cost > quota.burst() {
        None
    } else {
        Some(as_duration(new_tat - tau - t))
    };
    let d = Decision {
        allowed: false,
        limit: quota.burst(),
        remaining: remaining(tat),
        reset_after: as_duration(tat - t),
        retry_after,
    };
    (d, None)
}

/// A key as stored: compact, with addresses already reduced to their limit unit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum SlotKey {
    Token(Box<str>),
    V4(u32),
    V6(u64),
}

#[derive(Default)]
struct Shard {
    /// Key → TAT in nanoseconds since the epoch; only buckets that are not full.
    map: HashMap<SlotKey, u64>,
}

impl Shard {
    /// Makes room: drops full buckets, then the fullest ones down to 7/8 of `cap`.
    fn evict(&mut self, cap: usize, t: u128) {
        let t = u64::try_from(t).unwrap_or(u64::MAX);
        self.map.retain(|_, tat| *tat > t);
        let target = cap - cap / 8 - 1;
        if self.map.len() <= target {
            return;
        }
        let excess = self.map.len() - target;
        let mut tats: Vec<u64> = self.map.values().copied().collect();
        let (_, &mut threshold, _) = tats.select_nth_unstable(excess - 1);
        // Drop exactly `excess` buckets: all below the threshold, then ties in map order.
        let below = tats.iter().filter(|&&v| v < threshold).count();
        let mut ties_to_drop = excess - below;
        self.map.retain(|_, tat| {
            if *tat < threshold {
                false
            } else if *tat == threshold && ties_to_drop > 0 {
                ties_to_drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

impl From<&Key> for SlotKey {
    fn from(k: &Key) -> Self {
        match k {
            Key::Token(name) => SlotKey::Token(name.as_str().into()),
            Key::Ip(ip) => match limit_key(*ip) {
                IpAddr::V4(v4) => SlotKey::V4(u32::from(v4)),
                IpAddr::V6(v6) => SlotKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The JSON-RPC error code for a rate-limited request.
pub const RATE_LIMITED_CODE: i64 = -32005;
/// Number of independently locked shards.
pub const SHARDS: usize = 16;
const NANOS_PER_MINUTE: u64 = 60_000_000_000;

/// The quota of an identity with its own per-minute rate: that rate, and a burst no larger than
/// it (a token limited to 60 a minute never gets the server-wide burst of thousands at once).
pub fn own_quota(default: Quota, per_min: Option<u32>) -> Quota {
    per_min
        .and_then(|r| Quota::new(r, default.burst().min(r.max(1))))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn q(per_min: u32, burst: u32) -> Quota {
        Quota::new(per_min, burst).unwrap()
    }

    fn tok(s: &str) -> Key {
        Key::Token(s.into())
    }

    #[test]
    fn a_full_bucket_allows_exactly_the_burst_then_denies() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 10), 1000, t0);
        for i in 0..10 {
            let d = l.check(&tok("a"), 1, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            assert_eq!(d.limit, 10);
            assert_eq!(d.reset_after, Duration::from_secs(u64::from(i) + 1));
            assert_eq!(d.retry_after, None);
        }
        let d = l.check(&tok("a"), 1, t0);
        assert_eq!(
            d,
            Decision {
                allowed: false,
                limit: 10,
                remaining: 0,
                reset_after: Duration::from_secs(10),
                retry_after: Some(Duration::from_secs(1)),
            }
        );
    }

    #[test]
    fn refill_is_exact_to_the_nanosecond_for_a_fractional_interval() {
        let t0 = Instant::now();
        // 7 a minute: one token every ceil(60e9 / 7) = 8_571_428_572 ns.
        let quota = q(7, 2);
        assert_eq!(quota.interval_ns(), 8_571_428_572);
        let l = Limiter::new(quota, 1000, t0);
        assert!(l.check(&tok("a"), 1, t0).allowed);
        assert!(l.check(&tok("a"), 1, t0).allowed);
        let early = l.check(&tok("a"), 1, t0 + Duration::from_nanos(8_571_428_571));
        assert!(!early.allowed);
        assert_eq!(early.retry_after, Some(Duration::from_nanos(1)));
        assert_eq!(early.retry_after_secs(), Some(1));
        assert_eq!(early.retry_after_ms(), Some(1));
        let on_time = l.check(&tok("a"), 1, t0 + Duration::from_nanos(8_571_428_572));
        assert!(on_time.allowed);
        assert_eq!(on_time.remaining, 0);
    }

    #[test]
    fn partial_refill_reports_time_to_the_next_token() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 3), 1000, t0);
        for _ in 0..3 {
            assert!(l.check(&tok("a"), 1, t0).allowed);
        }
        let cases: &[(u64, bool, u32, u64)] = &[
            // (ms after t0, allowed, remaining, retry ms)
            (250, false, 0, 750),
            (999, false, 0, 1),
            (1_000, true, 0, 0),
            (1_500, false, 0, 500),
            (5_000, true, 2, 0),
        ];
        for (ms, allowed, remaining, retry_ms) in cases {
            let d = l.check(&tok("a"), 1, t0 + Duration::from_millis(*ms));
            assert_eq!(d.allowed, *allowed, "at {ms} ms");
            assert_eq!(d.remaining, *remaining, "at {ms} ms");
            let want = (!allowed).then(|| Duration::from_millis(*retry_ms));
            assert_eq!(d.retry_after, want, "at {ms} ms");
        }
    }

    #[test]
    fn a_long_idle_period_never_fills_beyond_the_burst() {
        let t0 = Instant::now();
        let l = Limiter::new(q(600, 5), 1000, t0);
        assert!(l.check(&tok("a"), 1, t0).allowed);
        let later = t0 + Duration::from_secs(3600);
        let allowed = (0..20)
            .filter(|_| l.check(&tok("a"), 1, later).allowed)
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn costs_above_one_and_zero_are_handled() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 5), 1000, t0);
        let d = l.check(&tok("a"), 3, t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        let d = l.check(&tok("a"), 3, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        let peek = l.check(&tok("a"), 0, t0);
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 2);
        let never = l.check(&tok("b"), 6, t0);
        assert!(!never.allowed);
        assert_eq!(never.retry_after, None);
        assert_eq!(never.remaining, 5);
        // A denial of an absent key stores nothing.
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn keys_are_isolated_and_ipv6_is_grouped_by_slash_64() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 2), 1000, t0);
        let ip = |s: &str| Key::Ip(s.parse().unwrap());
        assert!(l.check(&tok("a"), 2, t0).allowed);
        assert!(!l.check(&tok("a"), 1, t0).allowed);
        assert!(l.check(&tok("b"), 1, t0).allowed);
        assert!(l.check(&ip("192.0.2.1"), 2, t0).allowed);
        assert!(!l.check(&ip("::ffff:192.0.2.1"), 1, t0).allowed);
        assert!(l.check(&ip("192.0.2.2"), 1, t0).allowed);
        assert!(l.check(&ip("2001:db8:0:1::1"), 2, t0).allowed);
        assert!(!l.check(&ip("2001:db8:0:1:ffff::9"), 1, t0).allowed);
        assert!(l.check(&ip("2001:db8:0:2::1"), 1, t0).allowed);
        // A token named like an address is still a different key.
        assert!(l.check(&tok("192.0.2.1"), 1, t0).allowed);
        assert_eq!(tok("x").render(), "t:x");
        assert_eq!(ip("2001:db8:0:1::5").render(), "ip:2001:db8:0:1::");
    }

    #[test]
    fn identity_quotas_override_the_rate_but_keep_the_burst() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 2), 1000, t0);
        let fast = l.quota_for(Some(6000));
        assert_eq!((fast.per_min(), fast.burst()), (6000, 2));
        assert_eq!(l.quota_for(None), l.quota());
        assert_eq!(l.quota_for(Some(0)), l.quota());
        for _ in 0..2 {
            assert!(l.check_with(&tok("bot"), fast, 1, t0).allowed);
        }
        let d = l.check_with(&tok("bot"), fast, 1, t0);
        assert_eq!(d.retry_after, Some(Duration::from_millis(10)));
    }

    #[test]
    fn headers_and_rpc_error_round_up() {
        let d = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_after: Duration::from_millis(9_200),
            retry_after: Some(Duration::from_micros(1_000_001)),
        };
        assert_eq!(
            d.headers(),
            vec![
                ("RateLimit-Limit", "10".to_owned()),
                ("RateLimit-Remaining", "0".to_owned()),
                ("RateLimit-Reset", "10".to_owned()),
                ("Retry-After", "2".to_owned()),
            ]
        );
        assert_eq!(
            d.rpc_error(),
            json!({"code": -32005, "message": "Rate limit exceeded",
                   "data": {"retryAfterMs": 1001, "limit": 10, "remaining": 0, "resetMs": 9200}})
        );
        let ok = Decision {
            allowed: true,
            limit: 10,
            remaining: 9,
            reset_after: Duration::from_secs(1),
            retry_after: None,
        };
        assert_eq!(ok.headers().len(), 3);
        assert_eq!(ok.retry_after_ms(), None);
    }

    #[test]
    fn full_buckets_are_dropped_without_changing_decisions() {
        let t0 = Instant::now();
        let l = Limiter::new(q(60, 2), 1000, t0);
        assert!(l.check(&tok("a"), 1, t0).allowed);
        assert_eq!(l.len(), 1);
        l.sweep(t0 + Duration::from_millis(999));
        assert_eq!(l.len(), 1);
        l.sweep(t0 + Duration::from_secs(1));
        assert!(l.is_empty());
        let d = l.check(&tok("a"), 1, t0 + Duration::from_secs(1));
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_bucket_cap() {
        let t0 = Instant::now();
        let cap = 16_000;
        let l = Limiter::new(q(60, 10), cap, t0);
        // A victim spends its whole burst first; the flood must not reset it.
        for _ in 0..10 {
            assert!(l.check(&tok("victim"), 1, t0).allowed);
        }
        for i in 0..1_000_000u32 {
            let key = Key::Ip(IpAddr::V4(i.into()));
            assert!(l.check(&key, 1, t0).allowed);
        }
        assert!(l.len() <= cap, "{} buckets", l.len());
        assert!(l.len() >= cap / 2, "eviction too eager: {}", l.len());
        // Table slots are at most about twice the cap: ~64 bytes a bucket here.
        let bytes = l.memory_estimate_bytes();
        assert!(bytes <= cap * 2 * 33 + 4096, "{bytes} bytes");
        assert!(!l.check(&tok("victim"), 1, t0).allowed);
    }

    #[test]
    fn concurrent_checks_never_allow_more_than_the_burst() {
        let t0 = Instant::now();
        let l = Arc::new(Limiter::new(q(1, 50), 1000, t0));
        let allowed = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let l = Arc::clone(&l);
                let allowed = Arc::clone(&allowed);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if l.check(&tok("shared"), 1, t0).allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn limiter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Limiter>();
    }

    #[test]
    fn zero_rates_are_not_quotas() {
        assert!(Quota::new(0, 1).is_none());
        assert!(Quota::new(1, 0).is_none());
    }
}
