//! The health registry: named checks, each HEALTHY, DEGRADED or UNHEALTHY with detail.
//!
//! Checks are plain closures registered with an interval. A runner thread (`health-runner`)
//! starts each due check on its own short-lived thread and waits for none of them: a check
//! still running after the registry's timeout is reported UNHEALTHY "timed out" and is not
//! started again until it returns, so a hung check neither blocks the others nor piles up
//! threads. [`HealthRegistry::snapshot`] reads the last results; the overall status is the worst
//! of them, and readiness is "no check UNHEALTHY and not draining" (DEGRADED is still ready).
//!
//! Standard checks live in [`checks`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use serde::Serialize;
use serde_json::Value;

pub mod checks;

/// A check's verdict; ordered from best to worst, so the overall status is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but something needs attention (still ready for traffic).
    Degraded,
    /// Not working; the instance should not receive traffic.
    Unhealthy,
}

/// What one run of a check found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// The verdict.
    pub status: HealthStatus,
    /// One human-readable line; never secrets.
    pub detail: String,
    /// Optional numbers behind the verdict (free bytes, ratios…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The checks and their latest results. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

/// The state of every check at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// The worst status of all checks (HEALTHY when there are none).
    pub status: HealthStatus,
    /// One entry per registered check, in registration order.
    pub checks: Vec<CheckSnapshot>,
}

/// One check in a [`HealthSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSnapshot {
    /// The registered name.
    pub name: String,
    /// The last verdict (DEGRADED "not run yet" before the first run ends).
    pub status: HealthStatus,
    /// The last detail line.
    pub detail: String,
    /// The last data, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Milliseconds since the last run ended; `None` before the first.
    pub last_run_ms_ago: Option<u64>,
    /// How long the last run took, in milliseconds; `None` before the first.
    pub duration_ms: Option<u64>,
    /// UNHEALTHY results in a row (a time-out counts as one).
    pub consecutive_failures: u32,
}

/// The running `health-runner` thread; stop it with [`stop`](Self::stop) (dropping also stops
/// it, without waiting).
pub struct HealthRunner {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

type CheckFn = dyn Fn() -> CheckResult + Send + Sync;
type ChangeFn = dyn Fn(&str, HealthStatus) + Send + Sync;

struct Inner {
    /// How long a check may run before it is reported as timed out.
    check_timeout: Duration,
    entries: Mutex<Vec<Entry>>,
    on_change: Mutex<Option<Arc<ChangeFn>>>,
    /// Every check thread reports here, whoever launched it, so a late result of a timed-out
    /// run is never lost; `None` is a bare wake-up for the runner (a new registration).
    results_tx: Sender<Option<Done>>,
    results_rx: Receiver<Option<Done>>,
    runner_active: AtomicBool,
}

/// Invariant: `timed_out` implies `in_flight_since.is_some()`.
struct Entry {
    name: String,
    interval: Duration,
    check: Arc<CheckFn>,
    /// Bumped when the check is replaced, so a late result of the old closure is ignored.
    generation: u64,
    last: Option<CheckResult>,
    last_run_at: Option<Instant>,
    last_duration: Duration,
    consecutive_failures: u32,
    /// `None` means due now.
    next_due: Option<Instant>,
    in_flight_since: Option<Instant>,
    timed_out: bool,
}

/// A finished run, sent from a check thread to whoever waits for it.
struct Done {
    index: usize,
    generation: u64,
    result: CheckResult,
    duration: Duration,
}

impl CheckResult {
    /// A HEALTHY result.
    pub fn healthy(detail: impl Into<String>) -> Self {
        Self::new(HealthStatus::Healthy, detail)
    }

    /// A DEGRADED result.
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self::new(HealthStatus::Degraded, detail)
    }

    /// An UNHEALTHY result.
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        Self::new(HealthStatus::Unhealthy, detail)
    }

    /// A result with `status` and `detail` and no data.
    pub fn new(status: HealthStatus, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            data: None,
        }
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }

    /// 0 healthy, 1 degraded, 2 unhealthy: the value of the `health_check_status` gauge.
    pub fn as_gauge(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Degraded => 1,
            Self::Unhealthy => 2,
        }
    }
}

impl HealthRegistry {
    /// An empty registry whose checks time out after `check_timeout`.
    pub fn new(check_timeout: Duration) -> Self {
        let (results_tx, results_rx) = unbounded();
        Self {
            inner: Arc::new(Inner {
                check_timeout,
                entries: Mutex::new(Vec::new()),
                on_change: Mutex::new(None),
                results_tx,
                results_rx,
                runner_active: AtomicBool::new(false),
            }),
        }
    }

    /// Adds a check run every `interval` (or replaces the one with the same name, resetting its
    /// state). It is due at once.
    pub fn register(
        &self,
        name: impl Into<String>,
        interval: Duration,
        check: Box<dyn Fn() -> CheckResult + Send + Sync>,
    ) {
        let name = name.into();
        let check: Arc<CheckFn> = Arc::from(check);
        {
            let mut entries = lock(&self.inner.entries);
            let generation = match entries.iter().position(|e| e.name == name) {
                Some(i) => entries.remove(i).generation + 1,
                None => 0,
            };
            entries.push(Entry {
                name,
                interval,
                check,
                generation,
                last: None,
                last_run_at: None,
                last_duration: Duration::ZERO,
                consecutive_failures: 0,
                next_due: None,
                in_flight_since: None,
                timed_out: false,
            });
        }
        // Nudge a running runner so the new check does not wait for the next tick.
        if self.inner.runner_active.load(Ordering::Acquire) {
            let _ = self.inner.results_tx.send(None);
        }
    }

    /// Calls `f(name, status)` whenever a check's status differs from its previous one
    /// (including its first result); for the `health_check_status{check}` gauge. Called on the
    /// runner thread, outside the registry's lock.
    pub fn set_on_change(&self, f: impl Fn(&str, HealthStatus) + Send + Sync + 'static) {
        *lock(&self.inner.on_change) = Some(Arc::new(f));
    }

    /// Starts the `health-runner` thread.
    ///
    /// # Errors
    /// The OS refused to create the thread.
    pub fn start_runner(&self) -> std::io::Result<HealthRunner> {
        let (stop_tx, stop_rx) = bounded(1);
        let registry = self.clone();
        self.inner.runner_active.store(true, Ordering::Release);
        let thread = std::thread::Builder::new()
            .name("health-runner".into())
            .spawn(move || registry.run(&stop_rx))
            .inspect_err(|_| self.inner.runner_active.store(false, Ordering::Release))?;
        Ok(HealthRunner {
            stop: stop_tx,
            thread: Some(thread),
        })
    }

    /// Runs every check not already running, now, and waits for them up to the check timeout;
    /// the ones still running are then reported as timed out. For startup (a first snapshot
    /// before serving) and tests.
    pub fn run_all_blocking(&self) {
        // Late results of runs that timed out earlier free their checks to run again.
        while let Ok(msg) = self.inner.results_rx.try_recv() {
            if let Some(done) = msg {
                self.complete(done, Instant::now());
            }
        }
        let started = Instant::now();
        let deadline = started + self.inner.check_timeout;
        self.launch(started, true);
        loop {
            let now = Instant::now();
            if now >= deadline || !self.any_running() {
                break;
            }
            // The runner, if active, may take a result first; a short wait keeps this loop
            // from missing that.
            let wait = deadline.saturating_duration_since(now).min(BLOCKING_POLL);
            if let Ok(Some(done)) = self.inner.results_rx.recv_timeout(wait) {
                self.complete(done, Instant::now());
            }
        }
        self.expire(Instant::now().max(deadline));
    }

    /// The state of every check as of `now`.
    pub fn snapshot(&self, now: Instant) -> HealthSnapshot {
        let entries = lock(&self.inner.entries);
        let checks: Vec<CheckSnapshot> = entries
            .iter()
            .map(|e| {
                let (status, detail, data) = match &e.last {
                    Some(r) => (r.status, r.detail.clone(), r.data.clone()),
                    None => (HealthStatus::Degraded, "not run yet".to_owned(), None),
                };
                CheckSnapshot {
                    name: e.name.clone(),
                    status,
                    detail,
                    data,
                    last_run_ms_ago: e
                        .last_run_at
                        .map(|t| millis(now.saturating_duration_since(t))),
                    duration_ms: e.last_run_at.map(|_| millis(e.last_duration)),
                    consecutive_failures: e.consecutive_failures,
                }
            })
            .collect();
        HealthSnapshot {
            status: checks
                .iter()
                .map(|c| c.status)
                .max()
                .unwrap_or(HealthStatus::Healthy),
            checks,
        }
    }

    /// True iff no check is UNHEALTHY and the server is not `draining`.
    pub fn is_ready(&self, draining: bool, now: Instant) -> bool {
        self.snapshot(now).is_ready(draining)
    }

    /// The runner loop.
    fn run(&self, stop: &Receiver<()>) {
        let results = self.inner.results_rx.clone();
        loop {
            let now = Instant::now();
            self.launch(now, false);
            self.expire(now);
            let wake = self.next_wake(now);
            select! {
                recv(stop) -> _ => break,
                recv(results) -> msg => {
                    if let Ok(Some(done)) = msg {
                        self.complete(done, Instant::now());
                    }
                }
                default(wake.saturating_duration_since(now)) => {}
            }
        }
        self.inner.runner_active.store(false, Ordering::Release);
    }

    /// True while some check has been started and neither returned nor timed out.
    fn any_running(&self) -> bool {
        lock(&self.inner.entries)
            .iter()
            .any(|e| e.in_flight_since.is_some() && !e.timed_out)
    }

    /// Starts every idle check that is due at `now` (or every idle check if `all`).
    fn launch(&self, now: Instant, all: bool) {
        let done = &self.inner.results_tx;
        let mut started = Vec::new();
        {
            let mut entries = lock(&self.inner.entries);
            for (index, e) in entries.iter_mut().enumerate() {
                let due = all || e.next_due.is_none_or(|d| now >= d);
                if e.in_flight_since.is_none() && due {
                    e.in_flight_since = Some(now);
                    e.timed_out = false;
                    started.push((index, e.generation, e.check.clone(), e.name.clone()));
                }
            }
        }
        for (index, generation, check, name) in started {
            let tx = done.clone();
            let spawned = std::thread::Builder::new()
                .name("health-check".into())
                .spawn(move || {
                    let t0 = Instant::now();
                    let result = catch_unwind(AssertUnwindSafe(|| check()))
                        .unwrap_or_else(|_| CheckResult::unhealthy("check panicked"));
                    let _ = tx.send(Some(Done {
                        index,
                        generation,
                        result,
                        duration: t0.elapsed(),
                    }));
                });
            if let Err(e) = spawned {
                let _ = done.send(Some(Done {
                    index,
                    generation,
                    result: CheckResult::unhealthy(format!("cannot start check {name}: {e}")),
                    duration: Duration::ZERO,
                }));
            }
        }
    }

    /// Applies a finished run.
    fn complete(&self, done: Done, now: Instant) {
        let changed = {
            let mut entries = lock(&self.inner.entries);
            let Some(e) = entries.get_mut(done.index) else {
                return;
            };
            if e.generation != done.generation {
                return;
            }
            // A check that already timed out was counted as a failure then.
            let was_timed_out = e.timed_out;
            e.in_flight_since = None;
            e.timed_out = false;
            e.next_due = Some(now + e.interval);
            e.last_duration = done.duration;
            let changed = record(e, done.result, now, !was_timed_out);
            changed.then(|| (e.name.clone(), e.last.as_ref().map(|r| r.status)))
        };
        self.notify(changed);
    }

    /// Marks checks running longer than the timeout as UNHEALTHY "timed out".
    fn expire(&self, now: Instant) {
        let timeout = self.inner.check_timeout;
        let mut changes = Vec::new();
        {
            let mut entries = lock(&self.inner.entries);
            for e in entries.iter_mut() {
                let Some(since) = e.in_flight_since else {
                    continue;
                };
                if e.timed_out || now.saturating_duration_since(since) < timeout {
                    continue;
                }
                e.timed_out = true;
                e.last_duration = now.saturating_duration_since(since);
                let result = CheckResult::unhealthy(format!(
                    "timed out after {} ms",
                    millis(e.last_duration)
                ));
                if record(e, result, now, true) {
                    changes.push((e.name.clone(), Some(HealthStatus::Unhealthy)));
                }
            }
        }
        for c in changes {
            self.notify(Some(c));
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let timeout = self.inner.check_timeout;
        let entries = lock(&self.inner.entries);
        entries
            .iter()
            .filter_map(|e| match (e.in_flight_since, e.timed_out) {
                (Some(since), false) => Some(since + timeout),
                (Some(_), true) => None,
                (None, _) => Some(e.next_due.unwrap_or(now)),
            })
            .min()
            .unwrap_or(now + RUNNER_IDLE_WAKE)
            .min(now + RUNNER_IDLE_WAKE)
    }

    fn notify(&self, change: Option<(String, Option<HealthStatus>)>) {
        let Some((name, Some(status))) = change else {
            return;
        };
        let hook = lock(&self.inner.on_change).clone();
        if let Some(f) = hook {
            f(&name, status);
        }
    }
}

impl HealthSnapshot {
    /// True iff no check is UNHEALTHY and not `draining`.
    pub fn is_ready(&self, draining: bool) -> bool {
        !draining && self.status != HealthStatus::Unhealthy
    }

    /// The `/health/metrics` document: `{"status","ready","draining","checks":[{"name",
    /// "status","detail","data"?,"lastRunMsAgo","durationMs","consecutiveFailures"}]}`.
    pub fn to_json(&self, draining: bool) -> Value {
        serde_json::json!({
            "status": self.status,
            "ready": self.is_ready(draining),
            "draining": draining,
            "checks": self.checks,
        })
    }
}

impl HealthRunner {
    /// Stops the runner and waits for it (check threads still running are left to finish).
    pub fn stop(mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HealthRunner {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
    }
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("check_timeout", &self.inner.check_timeout)
            .field("checks", &lock(&self.inner.entries).len())
            .finish()
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stores `result` in `e` at `now`; `count_failure` says whether an UNHEALTHY result adds to
/// the failure streak. Returns true when the status changed.
fn record(e: &mut Entry, result: CheckResult, now: Instant, count_failure: bool) -> bool {
    let before = e.last.as_ref().map(|r| r.status);
    if result.status == HealthStatus::Unhealthy {
        if count_failure {
            e.consecutive_failures = e.consecutive_failures.saturating_add(1);
        }
    } else {
        e.consecutive_failures = 0;
    }
    let changed = before != Some(result.status);
    e.last = Some(result);
    e.last_run_at = Some(now);
    changed
}

/// The registry's state stays consistent across a panicking hook (every update is a few plain
/// field writes), so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The longest the runner sleeps with nothing due (it is also woken by results and
/// registrations).
const RUNNER_IDLE_WAKE: Duration = Duration::from_secs(60);
/// How often [`HealthRegistry::run_all_blocking`] re-checks state while the runner may be
/// consuming results.
const BLOCKING_POLL: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn registry_with(results: Vec<CheckResult>) -> HealthRegistry {
        let r = HealthRegistry::new(Duration::from_secs(5));
        for (i, res) in results.into_iter().enumerate() {
            r.register(
                format!("c{i}"),
                Duration::from_secs(10),
                Box::new(move || res.clone()),
            );
        }
        r
    }

    #[test]
    fn overall_status_is_the_worst_and_degraded_is_still_ready() {
        let r = registry_with(vec![CheckResult::healthy("a"), CheckResult::degraded("b")]);
        r.run_all_blocking();
        let s = r.snapshot(Instant::now());
        assert_eq!(s.status, HealthStatus::Degraded);
        assert!(s.is_ready(false));
        assert!(!s.is_ready(true), "draining is never ready");
        let r = registry_with(vec![CheckResult::healthy("a"), CheckResult::unhealthy("c")]);
        r.run_all_blocking();
        assert!(!r.is_ready(false, Instant::now()));
        assert_eq!(
            HealthRegistry::new(Duration::ZERO)
                .snapshot(Instant::now())
                .status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn unrun_checks_read_degraded_not_run_yet() {
        let r = registry_with(vec![CheckResult::healthy("a")]);
        let s = r.snapshot(Instant::now());
        assert_eq!(
            (s.checks[0].status, s.checks[0].detail.as_str()),
            (HealthStatus::Degraded, "not run yet")
        );
        assert_eq!(s.checks[0].last_run_ms_ago, None);
    }

    #[test]
    fn failure_streak_counts_unhealthy_runs_and_resets_on_recovery() {
        let r = HealthRegistry::new(Duration::from_secs(5));
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        r.register(
            "flaky",
            Duration::from_secs(1),
            Box::new(move || match c.fetch_add(1, Ordering::SeqCst) {
                0..=2 => CheckResult::unhealthy("down"),
                _ => CheckResult::healthy("up"),
            }),
        );
        for want in [1, 2, 3, 0] {
            r.run_all_blocking();
            assert_eq!(
                r.snapshot(Instant::now()).checks[0].consecutive_failures,
                want
            );
        }
    }

    #[test]
    fn panicking_check_is_unhealthy_not_fatal() {
        let r = HealthRegistry::new(Duration::from_secs(5));
        r.register(
            "boom",
            Duration::from_secs(1),
            Box::new(|| panic!("check bug")),
        );
        r.run_all_blocking();
        let s = r.snapshot(Instant::now());
        assert_eq!(
            (s.checks[0].status, s.checks[0].detail.as_str()),
            (HealthStatus::Unhealthy, "check panicked")
        );
    }

    #[test]
    fn snapshot_ages_use_the_injected_now() {
        let r = registry_with(vec![
            CheckResult::healthy("a").with_data(serde_json::json!({"n": 1})),
        ]);
        r.run_all_blocking();
        let later = Instant::now() + Duration::from_millis(1_500);
        let s = r.snapshot(later);
        assert!(s.checks[0].last_run_ms_ago.unwrap() >= 1_500);
        let j = s.to_json(false);
        assert_eq!(j["checks"][0]["data"]["n"], 1);
        assert_eq!(j["status"], "healthy");
    }
}
