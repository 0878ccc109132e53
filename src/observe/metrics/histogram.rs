//! A fixed-bucket histogram of durations on atomics: one counter per bucket and a sum in
//! nanoseconds, so an observation is two relaxed `fetch_add`s and no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One bucket's upper bound, inclusive as Prometheus requires (`value <= le`).
///
/// The label is written by hand next to the nanoseconds so the exposition never depends on float
/// formatting; `buckets_are_sorted_and_labels_match_their_bounds` keeps the two in step.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// The upper bound in nanoseconds.
    pub nanos: u64,
    /// The `le` label value: the bound in seconds.
    pub label: &'static str,
}

/// A histogram over durations with fixed, strictly increasing bounds and an implicit `+Inf`.
#[derive(Debug)]
pub struct Histogram {
    /// The finite bounds, strictly increasing.
    bounds: &'static [Bound],
    /// Non-cumulative counts: `counts[i]` holds observations in `(bounds[i-1], bounds[i]]`, and
    /// the last slot (index `bounds.len()`) those above every bound. Cumulating at read time
    /// keeps every read of the buckets monotonic, whatever writers do meanwhile.
    counts: Box<[AtomicU64]>,
    /// The sum of all observations in nanoseconds (wraps after 584 years of observed time).
    sum_nanos: AtomicU64,
}

/// A copy of a histogram's state, cumulated as the exposition needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `cumulative[i]` = observations `<= bounds[i]`; the last entry is the `+Inf` bucket,
    /// which is also the count.
    pub cumulative: Vec<u64>,
    /// The sum of observations in nanoseconds.
    pub sum_nanos: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [Bound]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = self
            .bounds
            .iter()
            .position(|b| nanos <= b.nanos)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records one observation of a size (bytes, counts) on a histogram built over a
    /// unit-free bounds table such as [`BYTES_BUCKETS`].
    pub fn observe_units(&self, units: u64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| units <= b.nanos)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(units, Ordering::Relaxed);
    }

    /// The bounds this histogram was built with.
    pub fn bounds(&self) -> &'static [Bound] {
        self.bounds
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Reads the buckets, cumulated.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                running = running.saturating_add(c.load(Ordering::Relaxed));
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// An empty snapshot shaped for `bounds`, to merge others into.
    pub fn empty(bounds: &[Bound]) -> Self {
        HistogramSnapshot {
            cumulative: vec![0; bounds.len() + 1],
            sum_nanos: 0,
        }
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Adds `other` (taken over the same bounds) into `self`.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.cumulative.iter_mut().zip(&other.cumulative) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum_nanos = self.sum_nanos.wrapping_add(other.sum_nanos);
    }

    /// Estimates the `q` quantile in seconds the way PromQL's `histogram_quantile` does: linear
    /// interpolation inside the bucket holding rank `q * count`, the lowest bucket starting at 0,
    /// and the highest finite bound when the rank falls in `+Inf`. `None` with no observations or
    /// `q` outside `[0, 1]`.
    pub fn quantile(&self, bounds: &[Bound], q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let slot = self
            .cumulative
            .iter()
            .position(|&c| c as f64 >= rank)
            .unwrap_or(bounds.len());
        let Some(upper) = bounds.get(slot) else {
            return bounds.last().map(|b| seconds(b.nanos));
        };
        let (lower, below) = match slot.checked_sub(1) {
            Some(prev) => (seconds(bounds[prev].nanos), self.cumulative[prev]),
            None => (0.0, 0),
        };
        let in_bucket = self.cumulative[slot] - below;
        if in_bucket == 0 {
            return Some(seconds(upper.nanos));
        }
        let fraction = (rank - below as f64) / in_bucket as f64;
        Some(lower + (seconds(upper.nanos) - lower) * fraction)
    }
}

/// A bound, for the tables below.
const fn bound(nanos: u64, label: &'static str) -> Bound {
    Bound { nanos, label }
}

/// Nanoseconds to seconds, for exposition and estimates.
pub fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Buckets for HTTP request latency: sub-millisecond to 10 s, with bounds at the SLO targets
/// (p95 < 200 ms, p99 < 500 ms) and their alert multiples (1.5 × 200 ms = 300 ms,
/// 2 × 500 ms = 1 s) so the latency SLIs and alerts read exact buckets, not interpolations.
pub const HTTP_BUCKETS: &[Bound] = &[
    bound(500_000, "0.0005"),
    bound(1_000_000, "0.001"),
    bound(2_500_000, "0.0025"),
    bound(5_000_000, "0.005"),
    bound(10_000_000, "0.01"),
    bound(25_000_000, "0.025"),
    bound(50_000_000, "0.05"),
    bound(100_000_000, "0.1"),
    bound(200_000_000, "0.2"),
    bound(300_000_000, "0.3"),
    bound(500_000_000, "0.5"),
    bound(1_000_000_000, "1"),
    bound(2_500_000_000, "2.5"),
    bound(5_000_000_000, "5"),
    bound(10_000_000_000, "10"),
];

/// Buckets for tool execution time: 1 ms to 30 s, with bounds at the tool SLO targets
/// (p95 < 500 ms, p99 < 2 s) and their alert multiples (750 ms, 4 s).
/// Bounds for stream lifetimes, in seconds: a stream lives from milliseconds (an SSE answer) to
/// a day (`MAX_STREAM_AGE_MS`).
pub const STREAM_BUCKETS: &[Bound] = &[
    bound(100_000_000, "0.1"),
    bound(1_000_000_000, "1"),
    bound(10_000_000_000, "10"),
    bound(60_000_000_000, "60"),
    bound(300_000_000_000, "300"),
    bound(1_800_000_000_000, "1800"),
    bound(3_600_000_000_000, "3600"),
    bound(21_600_000_000_000, "21600"),
    bound(86_400_000_000_000, "86400"),
];

/// Bounds for sizes in bytes (a `Bound`'s `nanos` holds the byte count here): 256 B to 4 MiB,
/// `MAX_BODY_BYTES`' default.
pub const BYTES_BUCKETS: &[Bound] = &[
    bound(256, "256"),
    bound(1_024, "1024"),
    bound(4_096, "4096"),
    bound(16_384, "16384"),
    bound(65_536, "65536"),
    bound(262_144, "262144"),
    bound(1_048_576, "1048576"),
    bound(4_194_304, "4194304"),
];

pub const TOOL_BUCKETS: &[Bound] = &[
    bound(1_000_000, "0.001"),
    bound(2_500_000, "0.0025"),
    bound(5_000_000, "0.005"),
    bound(10_000_000, "0.01"),
    bound(25_000_000, "0.025"),
    bound(50_000_000, "0.05"),
    bound(100_000_000, "0.1"),
    bound(250_000_000, "0.25"),
    bound(500_000_000, "0.5"),
    bound(750_000_000, "0.75"),
    bound(1_000_000_000, "1"),
    bound(2_000_000_000, "2"),
    bound(4_000_000_000, "4"),
    bound(10_000_000_000, "10"),
    bound(30_000_000_000, "30"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_sorted_and_labels_match_their_bounds() {
        for buckets in [HTTP_BUCKETS, TOOL_BUCKETS, STREAM_BUCKETS] {
            for pair in buckets.windows(2) {
                assert!(pair[0].nanos < pair[1].nanos, "{pair:?}");
            }
            for b in buckets {
                let parsed: f64 = b.label.parse().unwrap();
                assert_eq!((parsed * 1e9).round() as u64, b.nanos, "{b:?}");
            }
        }
        // Size bounds are plain counts: the label is the number itself.
        for pair in BYTES_BUCKETS.windows(2) {
            assert!(pair[0].nanos < pair[1].nanos, "{pair:?}");
        }
        for b in BYTES_BUCKETS {
            assert_eq!(b.label.parse::<u64>().unwrap(), b.nanos, "{b:?}");
        }
    }

    #[test]
    fn an_observation_on_a_bound_lands_in_that_bucket() {
        let h = Histogram::new(HTTP_BUCKETS);
        h.observe(Duration::from_millis(200));
        let s = h.snapshot();
        let at_200ms = HTTP_BUCKETS.iter().position(|b| b.label == "0.2").unwrap();
        assert_eq!(s.cumulative[at_200ms - 1], 0);
        assert_eq!(s.cumulative[at_200ms], 1);
    }

    #[test]
    fn snapshot_buckets_are_cumulative_and_end_at_the_count() {
        let h = Histogram::new(HTTP_BUCKETS);
        for ms in [0u64, 1, 3, 3, 40, 250, 700, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.count(), 8);
        assert_eq!(h.count(), 8);
        // 20 s is above every bound: only +Inf holds it.
        assert_eq!(s.cumulative[HTTP_BUCKETS.len() - 1], 7);
        assert_eq!(
            s.sum_nanos,
            (1 + 3 + 3 + 40 + 250 + 700 + 20_000) * 1_000_000
        );
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket_like_promql() {
        let h = Histogram::new(HTTP_BUCKETS);
        // 10 observations between 100 ms and 200 ms: the median is halfway through that bucket.
        for _ in 0..10 {
            h.observe(Duration::from_millis(150));
        }
        let q = h.snapshot().quantile(HTTP_BUCKETS, 0.5).unwrap();
        assert!((q - 0.15).abs() < 1e-9, "{q}");
        let p100 = h.snapshot().quantile(HTTP_BUCKETS, 1.0).unwrap();
        assert!((p100 - 0.2).abs() < 1e-9, "{p100}");
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_bound_and_empty_is_none() {
        let h = Histogram::new(HTTP_BUCKETS);
        assert_eq!(h.snapshot().quantile(HTTP_BUCKETS, 0.5), None);
        h.observe(Duration::from_secs(60));
        assert_eq!(h.snapshot().quantile(HTTP_BUCKETS, 0.99), Some(10.0));
        assert_eq!(h.snapshot().quantile(HTTP_BUCKETS, 1.5), None);
    }
}
