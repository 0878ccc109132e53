//! The export pipeline: a [`Batcher`] (sans-IO, injected time), the shared [`ExporterStats`],
//! and the worker that encodes a batch, asks the [`CircuitBreaker`], posts, and counts.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::net::client::ClientError;
use crate::observe::trace::breaker::{BreakerState, CircuitBreaker};
use crate::observe::trace::otlp::{Resource, encode_export_request};
use crate::observe::trace::span::Span;

/// Exporter limits and timings, every one named with its unit; see [`Default`] for values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterSettings {
    /// Finished spans waiting for the exporter thread; a full queue drops new spans.
    /// Default 2048 (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_spans: usize,
    /// Spans per export request. Default 512 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch_spans: usize,
    /// The longest a finished span waits before its batch is sent. Default 5 s
    /// (`OTEL_BSP_SCHEDULE_DELAY`).
    pub max_batch_delay: Duration,
    /// Consecutive failed exports that open the breaker. Default 5.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before one probe export. Default 60 s.
    pub breaker_cooldown: Duration,
    /// Socket timeouts for one export. Default connect 2 s, write 5 s, read 5 s, total 10 s
    /// (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`).
    pub timeouts: crate::net::client::Timeouts,
}

/// Counters shared by the tracer, the exporter thread, metrics and health.
///
/// All counts are of spans unless named `_requests`; they only grow.
#[derive(Debug, Default)]
pub struct ExporterStats {
    exported_spans: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_breaker_open: AtomicU64,
    failed_spans: AtomicU64,
    export_requests: AtomicU64,
    failed_requests: AtomicU64,
    /// [`BreakerState::as_u8`].
    breaker_state: AtomicU8,
}

/// A point-in-time copy of [`ExporterStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Spans the collector accepted (2xx).
    pub exported_spans: u64,
    /// Spans dropped by `finish()` because the queue was full.
    pub dropped_queue_full: u64,
    /// Spans dropped without an attempt because the breaker was open.
    pub dropped_breaker_open: u64,
    /// Spans in export requests that failed (never retried).
    pub failed_spans: u64,
    /// Export requests attempted.
    pub export_requests: u64,
    /// Export requests that failed.
    pub failed_requests: u64,
    /// The breaker's state after the last export decision.
    pub breaker: BreakerState,
}

/// Collects spans into batches: a batch is ready when it holds `max_batch_spans` spans or its
/// oldest span has waited `max_batch_delay`.
///
/// Invariant: `oldest` is `Some` iff `spans` is non-empty; `spans.len() < max_batch_spans`
/// between calls.
#[derive(Debug)]
pub struct Batcher {
    max_batch_spans: usize,
    max_batch_delay: Duration,
    spans: Vec<Span>,
    oldest: Option<Instant>,
}

/// Where a batch goes; the real one is [`crate::net::client::HttpClient`].
pub trait Sink {
    /// Posts one encoded `ExportTraceServiceRequest`.
    ///
    /// # Errors
    /// Whatever made the export fail.
    fn post(&mut self, body: &[u8]) -> Result<(), ClientError>;
}

/// Encodes and sends batches through the breaker, keeping [`ExporterStats`] current.
pub struct Worker<S> {
    resource: Resource,
    breaker: CircuitBreaker,
    sink: S,
    body: Vec<u8>,
}

impl Default for ExporterSettings {
    /// The settings table's defaults (`config::SETTINGS`) for what it names.
    fn default() -> Self {
        let config = crate::config::Config::defaults();
        Self {
            max_queue_spans: config.otel_queue_spans,
            max_batch_spans: config.otel_batch_spans,
            max_batch_delay: config.otel_batch_delay,
            breaker_failure_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            timeouts: crate::net::client::Timeouts::default(),
        }
    }
}

impl ExporterStats {
    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            exported_spans: self.exported_spans.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_breaker_open: self.dropped_breaker_open.load(Ordering::Relaxed),
            failed_spans: self.failed_spans.load(Ordering::Relaxed),
            export_requests: self.export_requests.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
            breaker: self.breaker_state(),
        }
    }

    /// The breaker's state as last published by the exporter thread.
    pub fn breaker_state(&self) -> BreakerState {
        BreakerState::from_u8(self.breaker_state.load(Ordering::Relaxed))
    }

    pub(crate) fn count_queue_full(&self) {
        self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
    }
}

impl StatsSnapshot {
    /// Every span lost for any reason (queue full, breaker open, failed export).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_queue_full + self.dropped_breaker_open + self.failed_spans
    }
}

impl Batcher {
    /// An empty batcher; `max_batch_spans` is at least 1.
    pub fn new(max_batch_spans: usize, max_batch_delay: Duration) -> Self {
        Self {
            max_batch_spans: max_batch_spans.max(1),
            max_batch_delay,
            spans: Vec::new(),
            oldest: None,
        }
    }

    /// Adds a span finished at `now`; returns a full batch when this span completes one.
    pub fn push(&mut self, span: Span, now: Instant) -> Option<Vec<Span>> {
        self.oldest.get_or_insert(now);
        self.spans.push(span);
        (self.spans.len() >= self.max_batch_spans).then(|| self.take())
    }

    /// The batch, if its oldest span has waited `max_batch_delay` by `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<Vec<Span>> {
        let due = self.deadline().is_some_and(|d| now >= d);
        due.then(|| self.take())
    }

    /// Whatever is pending, due or not (flush and shutdown).
    pub fn take_all(&mut self) -> Option<Vec<Span>> {
        (!self.spans.is_empty()).then(|| self.take())
    }

    /// When the pending batch becomes due; `None` when empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.max_batch_delay)
    }

    /// Spans pending.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn take(&mut self) -> Vec<Span> {
        self.oldest = None;
        std::mem::replace(&mut self.spans, Vec::with_capacity(self.max_batch_spans))
    }
}

impl<S: Sink> Worker<S> {
    /// A worker posting to `sink` behind a breaker built from `settings`.
    pub fn new(resource: Resource, sink: S, settings: &ExporterSettings) -> Self {
        Self {
            resource,
            breaker: CircuitBreaker::new(
                settings.breaker_failure_threshold,
                settings.breaker_cooldown,
            ),
            sink,
            body: Vec::new(),
        }
    }

    /// Exports `batch` at `now` unless the breaker refuses, and updates `stats`. Never retries:
    /// a failed batch is counted and dropped, so a dead collector costs one attempt per
    /// cooldown.
    ///
    /// # Errors
    /// The export failure, for the caller to log (it is already counted).
    pub fn export(
        &mut self,
        batch: &[Span],
        now: Instant,
        stats: &ExporterStats,
    ) -> Result<(), ClientError> {
        let n = batch.len() as u64;
        let allowed = self.breaker.try_acquire(now);
        self.publish(stats);
        if !allowed {
            stats.dropped_breaker_open.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        }
        self.body.clear();
        encode_export_request(&self.resource, batch, &mut self.body);
        stats.export_requests.fetch_add(1, Ordering::Relaxed);
        let result = self.sink.post(&self.body);
        match &result {
            Ok(()) => {
                self.breaker.record_success();
                stats.exported_spans.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                if e.is_collector_fault() {
                    self.breaker.record_failure(now);
                } else {
                    self.breaker.record_success();
                }
                stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                stats.failed_spans.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.publish(stats);
        result
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn publish(&self, stats: &ExporterStats) {
        stats
            .breaker_state
            .store(self.breaker.state().as_u8(), Ordering::Relaxed);
    }
}

impl<S> fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("resource", &self.resource)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl Sink for crate::net::client::HttpClient {
    fn post(&mut self, body: &[u8]) -> Result<(), ClientError> {
        self.post_json(body).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::observe::trace::context::{SpanContext, TraceState};
    use crate::observe::trace::span::SpanKind;

    fn span(i: u8) -> Span {
        let ctx = SpanContext {
            trace_id: [i.max(1); 16],
            span_id: [i.max(1); 8],
            flags: 1,
            tracestate: TraceState::default(),
            remote: false,
        };
        Span::new(
            format!("s{i}"),
            SpanKind::Internal,
            ctx,
            SystemTime::UNIX_EPOCH,
        )
    }

    /// Fails while `fail` is set; records every body.
    struct FakeSink {
        fail: Option<fn() -> ClientError>,
        bodies: Vec<Vec<u8>>,
    }

    impl Sink for FakeSink {
        fn post(&mut self, body: &[u8]) -> Result<(), ClientError> {
            self.bodies.push(body.to_vec());
            match self.fail {
                Some(f) => Err(f()),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn batch_is_ready_when_full() {
        let t0 = Instant::now();
        let mut b = Batcher::new(3, Duration::from_secs(5));
        assert!(b.push(span(1), t0).is_none());
        assert!(b.push(span(2), t0).is_none());
        let batch = b.push(span(3), t0).unwrap();
        assert_eq!(batch.len(), 3);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn batch_is_due_after_delay_from_its_oldest_span() {
        let t0 = Instant::now();
        let mut b = Batcher::new(100, Duration::from_secs(5));
        b.push(span(1), t0);
        b.push(span(2), t0 + Duration::from_secs(4));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(b.take_due(t0 + Duration::from_millis(4_999)).is_none());
        assert_eq!(b.take_due(t0 + Duration::from_secs(5)).unwrap().len(), 2);
        assert!(b.take_all().is_none());
        b.push(span(3), t0 + Duration::from_secs(6));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(11)));
        assert_eq!(b.take_all().unwrap().len(), 1);
    }

    #[test]
    fn dead_collector_opens_breaker_and_later_batches_are_dropped_uncontacted() {
        let settings = ExporterSettings {
            breaker_failure_threshold: 2,
            breaker_cooldown: Duration::from_secs(30),
            ..ExporterSettings::default()
        };
        let sink = FakeSink {
            fail: Some(|| ClientError::Deadline),
            bodies: Vec::new(),
        };
        let stats = ExporterStats::default();
        let mut w = Worker::new(Resource::default(), sink, &settings);
        let t0 = Instant::now();
        let batch = vec![span(1), span(2)];
        assert!(w.export(&batch, t0, &stats).is_err());
        assert!(w.export(&batch, t0, &stats).is_err());
        assert_eq!(stats.breaker_state(), BreakerState::Open);
        for i in 0..10 {
            assert!(
                w.export(&batch, t0 + Duration::from_secs(i), &stats)
                    .is_ok()
            );
        }
        assert_eq!(w.sink.bodies.len(), 2, "no attempt while open");
        let s = stats.snapshot();
        assert_eq!(
            (s.failed_spans, s.dropped_breaker_open, s.exported_spans),
            (4, 20, 0)
        );
        assert_eq!((s.export_requests, s.failed_requests), (2, 2));
        assert_eq!(s.dropped_total(), 24);

        // After the cooldown one probe goes out; the collector is back, so the breaker closes.
        w.sink.fail = None;
        let t1 = t0 + Duration::from_secs(30);
        assert!(w.export(&batch, t1, &stats).is_ok());
        assert_eq!(stats.breaker_state(), BreakerState::Closed);
        assert_eq!(stats.snapshot().exported_spans, 2);
        assert_eq!(w.sink.bodies.len(), 3);
    }

    #[test]
    fn client_errors_count_as_failed_but_do_not_open_the_breaker() {
        let settings = ExporterSettings {
            breaker_failure_threshold: 1,
            ..ExporterSettings::default()
        };
        let sink = FakeSink {
            fail: Some(|| ClientError::Status(400)),
            bodies: Vec::new(),
        };
        let stats = ExporterStats::default();
        let mut w = Worker::new(Resource::default(), sink, &settings);
        for _ in 0..3 {
            assert!(w.export(&[span(1)], Instant::now(), &stats).is_err());
        }
        assert_eq!(w.breaker_state(), BreakerState::Closed);
        assert_eq!(stats.snapshot().failed_spans, 3);
    }

    #[test]
    fn worker_body_is_the_otlp_json_of_the_batch() {
        let sink = FakeSink {
            fail: None,
            bodies: Vec::new(),
        };
        let stats = ExporterStats::default();
        let mut w = Worker::new(Resource::new("svc"), sink, &ExporterSettings::default());
        w.export(&[span(1), span(2)], Instant::now(), &stats)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&w.sink.bodies[0]).unwrap();
        let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1]["name"], "s2");
    }
}
