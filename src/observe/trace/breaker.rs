//! A circuit breaker with injected time: Closed → Open after N consecutive failures → HalfOpen
//! after a cooldown → one probe → Closed (success) or Open (failure).
//!
//! ```text
//!            failures >= threshold             cooldown elapsed, next try_acquire
//!   Closed ─────────────────────────▶ Open ─────────────────────────────────▶ HalfOpen
//!     ▲                                ▲                                          │
//!     │ probe succeeded                └──────────── probe failed ────────────────┤
//!     └───────────────────────────────────────────────────────────────────────────┘
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass through.
    Closed,
    /// Calls are refused until the cooldown has elapsed.
    Open,
    /// One probe call is allowed; its outcome decides the next state.
    HalfOpen,
}

/// The breaker. Not thread-safe by itself: one owner (the exporter thread) drives it.
///
/// Invariant: `opened_at` is `Some` iff `state` is `Open` or `HalfOpen`.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: BreakerState,
    consecutive_failures: u32,
    /// Consecutive failures that open the breaker; at least 1.
    failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe through.
    cooldown: Duration,
    opened_at: Option<Instant>,
    /// True while the half-open probe has been handed out and not yet reported.
    probe_in_flight: bool,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `failure_threshold` (min 1) consecutive failures and
    /// probes again after `cooldown`.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            failure_threshold: failure_threshold.max(1),
            cooldown,
            opened_at: None,
            probe_in_flight: false,
        }
    }

    /// The current state (an `Open` breaker past its cooldown still reads `Open` until the next
    /// [`try_acquire`](Self::try_acquire)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Asks to make one call at `now`. True means go ahead and report the outcome with
    /// [`record_success`](Self::record_success) or [`record_failure`](Self::record_failure).
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                let cooled = self
                    .opened_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.cooldown);
                if cooled {
                    self.state = BreakerState::HalfOpen;
                    self.probe_in_flight = true;
                }
                cooled
            }
            BreakerState::HalfOpen => {
                if self.probe_in_flight {
                    false
                } else {
                    self.probe_in_flight = true;
                    true
                }
            }
        }
    }

    /// Reports a successful call: the breaker closes.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed;
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.probe_in_flight = false;
    }

    /// Reports a failed call at `now`: a failed probe reopens at once; in `Closed`, the
    /// threshold-th consecutive failure opens.
    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.probe_in_flight = false;
        let open = match self.state {
            BreakerState::HalfOpen | BreakerState::Open => true,
            BreakerState::Closed => self.consecutive_failures >= self.failure_threshold,
        };
        if open {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
        }
    }
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open: the value of a metrics gauge.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    /// The inverse of [`as_u8`](Self::as_u8); unknown values read as `Open`.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Closed,
            2 => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(30));
        assert!(b.try_acquire(t0));
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_secs(29)));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_allows_exactly_one_probe_then_closes_on_success() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(1, Duration::from_secs(30));
        b.record_failure(t0);
        let t1 = t0 + Duration::from_secs(30);
        assert!(b.try_acquire(t1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(
            !b.try_acquire(t1),
            "a second probe while the first is in flight"
        );
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire(t1));
    }

    #[test]
    fn failed_probe_reopens_and_restarts_the_cooldown() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, Duration::from_secs(10));
        b.record_failure(t0);
        b.record_failure(t0);
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.try_acquire(t1));
        b.record_failure(t1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire(t1 + Duration::from_secs(9)));
        assert!(b.try_acquire(t1 + Duration::from_secs(10)));
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn zero_threshold_is_treated_as_one_and_state_codes_round_trip() {
        let mut b = CircuitBreaker::new(0, Duration::ZERO);
        b.record_failure(Instant::now());
        assert_eq!(b.state(), BreakerState::Open);
        for s in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            assert_eq!(BreakerState::from_u8(s.as_u8()), s);
        }
        assert_eq!(BreakerState::HalfOpen.to_string(), "half_open");
    }
}
