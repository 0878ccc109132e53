//! W3C trace context, spans, and the OTLP/HTTP JSON exporter behind a circuit breaker.
//!
//! ```text
//!  request thread                         exporter thread ("otlp-exporter")
//!  start_request ─▶ Span ─▶ finish ──try_send──▶ Batcher ─▶ Worker ─▶ breaker ─▶ HttpClient
//!                               │ queue full:                 (size or delay)    │ open: drop
//!                               ▼ dropped_queue_full++                           ▼ + count
//! ```
//!
//! `finish()` never blocks: the queue is a bounded crossbeam channel and a full queue drops the
//! span and counts it. The exporter never retries; while the breaker is open, batches are
//! dropped without touching the network, so a dead or slow collector costs nothing on the
//! request path and one attempt per cooldown on the exporter thread.
//!
//! Configuration (read by the caller, passed in as plain values): `OTEL_ENABLED`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, see
//! [`Endpoint::parse_base`]), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER_ARG`
//! ([`Sampler::from_sampler_arg`]), `OTEL_EXPORTER_OTLP_CERTIFICATE` (the CA file, required for
//! `https://`), and the [`ExporterSettings`] limits.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};

pub(crate) mod breaker;
pub(crate) mod context;
pub(crate) mod export;
pub(crate) mod metrics_export;
pub(crate) mod otlp;
pub(crate) mod otlp_metrics;
pub(crate) mod span;

pub use crate::net::client::{ClientError, Endpoint, EndpointError, HttpClient, Timeouts};
pub use breaker::{BreakerState, CircuitBreaker};
pub use context::{
    IdGenerator, SpanContext, TraceState, TraceparentError, TracestateError, extract,
    format_traceparent, parse_traceparent, parse_tracestate,
};
pub use export::{Batcher, ExporterSettings, ExporterStats, Sink, StatsSnapshot, Worker};
pub use otlp::{DEFAULT_SERVICE_NAME, Resource, encode_export_request};
pub use span::{AttrValue, Sampler, Span, SpanKind, SpanStatus, attr};

/// Makes spans and hands finished ones to the exporter thread. Share it as `Arc<Tracer>`.
pub struct Tracer {
    ids: IdGenerator,
    sampler: Sampler,
    stats: Arc<ExporterStats>,
    /// `None` when tracing is disabled: spans still get ids (for logs) but go nowhere.
    pipeline: Option<Pipeline>,
}

/// The trace and span id of the span entered on this thread, as lowercase hex, for log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogIds {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
}

/// The identity of the span current on a thread: enough to stamp log lines and to parent a
/// child span on another thread (a tool running on its own thread). `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveSpan {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The span id (never all zero).
    pub span_id: [u8; 8],
    /// W3C trace flags; bit 0 is the sampling decision.
    pub flags: u8,
}

/// Keeps a span current on this thread (see [`current_log_ids`]) until dropped, then restores
/// the previously current one. Not `Send`: it belongs to the thread that entered.
#[must_use = "the span is current only while the guard lives"]
pub struct Entered {
    previous: Option<ActiveSpan>,
    _not_send: PhantomData<*const ()>,
}

struct Pipeline {
    spans: Sender<Span>,
    control: Sender<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

enum Control {
    /// Export everything queued so far, then acknowledge.
    Flush(Sender<()>),
    /// Export everything queued, acknowledge, and exit.
    Shutdown(Sender<()>),
}

impl Tracer {
    /// A tracer that exports nothing (`OTEL_ENABLED=false`); ids are still made so log lines
    /// correlate.
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self {
            ids: IdGenerator::new(),
            sampler: Sampler::with_ratio(0.0),
            stats: Arc::new(ExporterStats::default()),
            pipeline: None,
        })
    }

    /// Starts the exporter thread (`otlp-exporter`) posting to `endpoint`
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), trusting only `ca_file` for `https://`.
    ///
    /// # Errors
    /// A bad endpoint, https without a CA file, an unreadable CA file, or a failed thread spawn
    /// (as [`ClientError::Connect`]).
    pub fn start(
        endpoint: &str,
        ca_file: Option<&Path>,
        resource: Resource,
        sampler: Sampler,
        settings: ExporterSettings,
    ) -> Result<Arc<Self>, ClientError> {
        let endpoint = Endpoint::parse(endpoint)?;
        let transport = HttpClient::new(endpoint, ca_file, settings.timeouts)?;
        Self::with_sink(transport, resource, sampler, settings)
    }

    /// Like [`start`](Self::start) with any [`Sink`]; for tests and alternative transports.
    ///
    /// # Errors
    /// A failed thread spawn, as [`ClientError::Connect`].
    pub fn with_sink<S: Sink + Send + 'static>(
        sink: S,
        resource: Resource,
        sampler: Sampler,
        settings: ExporterSettings,
    ) -> Result<Arc<Self>, ClientError> {
        let (span_tx, span_rx) = bounded(settings.max_queue_spans.max(1));
        let (control_tx, control_rx) = bounded(CONTROL_QUEUE_LEN);
        let stats = Arc::new(ExporterStats::default());
        let worker = Worker::new(resource, sink, &settings);
        let batcher = Batcher::new(settings.max_batch_spans, settings.max_batch_delay);
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-exporter".into())
            .spawn(move || run_exporter(span_rx, control_rx, batcher, worker, &thread_stats))
            .map_err(ClientError::Connect)?;
        Ok(Arc::new(Self {
            ids: IdGenerator::new(),
            sampler,
            stats,
            pipeline: Some(Pipeline {
                spans: span_tx,
                control: control_tx,
                thread: Mutex::new(Some(thread)),
            }),
        }))
    }

    /// True when spans are exported.
    pub fn is_enabled(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Starts the server span of one request at `now`, continuing `parent` (from
    /// [`extract`]) or starting a new trace. Sampling is parent-based, with the configured ratio
    /// for new traces; an unsampled span still has ids, for logs and propagation.
    pub fn start_request(
        &self,
        parent: Option<SpanContext>,
        name: impl Into<String>,
        now: SystemTime,
    ) -> Span {
        let trace_id = parent
            .as_ref()
            .map_or_else(|| self.ids.trace_id(), |p| p.trace_id);
        let sampled = self.is_enabled() && self.sampler.should_sample(parent.as_ref(), &trace_id);
        let (flags, tracestate, parent_span_id, parent_is_remote) = match parent {
            Some(p) => (p.flags, p.tracestate, Some(p.span_id), p.remote),
            None => (0, TraceState::default(), None, false),
        };
        let context = SpanContext {
            trace_id,
            span_id: self.ids.span_id(),
            flags: set_sampled(flags, sampled),
            tracestate,
            remote: false,
        };
        let mut span = Span::new(name, SpanKind::Server, context, now);
        span.parent_span_id = parent_span_id;
        span.parent_is_remote = parent_is_remote;
        span
    }

    /// Starts an internal child of `parent` at `now` (a tool call, a repository operation);
    /// it shares the parent's trace and sampling decision.
    pub fn child(&self, parent: &Span, name: impl Into<String>, now: SystemTime) -> Span {
        let context = SpanContext {
            trace_id: parent.context.trace_id,
            span_id: self.ids.span_id(),
            flags: parent.context.flags,
            tracestate: parent.context.tracestate.clone(),
            remote: false,
        };
        let mut span = Span::new(name, SpanKind::Internal, context, now);
        span.parent_span_id = Some(parent.context.span_id);
        span
    }

    /// Hands a finished span to the exporter without blocking. An unended span is ended now.
    /// Unsampled spans are discarded; a full queue drops the span and counts it.
    pub fn finish(&self, mut span: Span) {
        let Some(pipeline) = &self.pipeline else {
            return;
        };
        if !span.is_sampled() {
            return;
        }
        span.end(SystemTime::now());
        match pipeline.spans.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.count_queue_full();
            }
        }
    }

    /// Starts an internal child of `parent` (a span current on some thread, see [`current`]).
    pub fn child_of(&self, parent: ActiveSpan, name: impl Into<String>, now: SystemTime) -> Span {
        let context = SpanContext {
            trace_id: parent.trace_id,
            span_id: self.ids.span_id(),
            flags: parent.flags,
            tracestate: TraceState::default(),
            remote: false,
        };
        let mut span = Span::new(name, SpanKind::Internal, context, now);
        span.parent_span_id = Some(parent.span_id);
        span
    }

    /// Starts the span of one tool call as a child of the span current on this thread (a new
    /// trace when there is none), enters it, and keeps it until [`finish_tool`](Self::finish_tool)
    /// on the same thread. Calls nest.
    pub fn start_tool(&self, tool: &str, now: SystemTime) {
        let name = format!("tools/call {tool}");
        let mut span = match current() {
            Some(parent) => self.child_of(parent, name, now),
            None => {
                let mut s = self.start_request(None, name, now);
                s.kind = SpanKind::Internal;
                s
            }
        };
        span.set_attribute(attr::MCP_METHOD_NAME, "tools/call");
        span.set_attribute(attr::MCP_TOOL_NAME, tool.to_owned());
        span.set_attribute(attr::GEN_AI_TOOL_NAME, tool.to_owned());
        let entered = span.enter();
        TOOL_SPANS.with(|t| t.borrow_mut().push((span, entered)));
    }

    /// Ends the innermost tool span started on this thread with its outcome (`error` is the
    /// error type of a failed call) and hands it to the exporter. Does nothing without one.
    pub fn finish_tool(&self, error: Option<&str>, now: SystemTime) {
        let Some((mut span, entered)) = TOOL_SPANS.with(|t| t.borrow_mut().pop()) else {
            return;
        };
        drop(entered);
        match error {
            Some(kind) => span.set_error(kind.to_owned(), "the tool call failed"),
            None => span.status = SpanStatus::Ok,
        }
        span.end(now);
        self.finish(span);
    }

    /// Finished spans waiting for the exporter thread (0 when disabled).
    pub fn queue_len(&self) -> usize {
        self.pipeline.as_ref().map_or(0, |p| p.spans.len())
    }

    /// The exporter counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters, for metrics and the `trace_exporter` health check.
    pub fn stats_handle(&self) -> Arc<ExporterStats> {
        self.stats.clone()
    }

    /// Waits up to `timeout` until every span finished before this call has been exported (or
    /// dropped). Returns false on timeout or when tracing is disabled.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.control(timeout, Control::Flush)
    }

    /// Exports what is queued and stops the exporter thread, waiting up to `timeout`; later
    /// spans are counted as dropped. Returns true if the thread finished in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let done = self.control(timeout, Control::Shutdown);
        if done && let Some(p) = &self.pipeline {
            let handle = p.thread.lock().ok().and_then(|mut t| t.take());
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        done
    }

    fn control(&self, timeout: Duration, make: fn(Sender<()>) -> Control) -> bool {
        let Some(p) = &self.pipeline else {
            return false;
        };
        let (ack_tx, ack_rx) = bounded(1);
        if p.control.send_timeout(make(ack_tx), timeout).is_err() {
            return false;
        }
        ack_rx.recv_timeout(timeout).is_ok()
    }
}

impl Span {
    /// Makes this span the current one on this thread until the guard drops, so that
    /// [`current_log_ids`] can stamp log lines.
    pub fn enter(&self) -> Entered {
        self.active().enter()
    }

    /// This span's identity, to carry to another thread.
    pub fn active(&self) -> ActiveSpan {
        ActiveSpan {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            flags: self.context.flags,
        }
    }
}

impl ActiveSpan {
    /// Makes this span current on this thread until the guard drops (for a thread that runs
    /// work on behalf of a span entered elsewhere).
    pub fn enter(self) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Some(self)));
        Entered {
            previous,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("sampler", &self.sampler)
            .field("enabled", &self.is_enabled())
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}

/// The ids of the span entered on this thread, if any (for JSON log lines).
pub fn current_log_ids() -> Option<LogIds> {
    CURRENT.with(Cell::get).map(|a| LogIds {
        trace_id: context::hex(&a.trace_id),
        span_id: context::hex(&a.span_id),
    })
}

/// The span entered on this thread, if any.
pub fn current() -> Option<ActiveSpan> {
    CURRENT.with(Cell::get)
}

thread_local! {
    static CURRENT: Cell<Option<ActiveSpan>> = const { Cell::new(None) };
    /// Tool spans started on this thread and not yet finished, innermost last.
    static TOOL_SPANS: RefCell<Vec<(Span, Entered)>> = const { RefCell::new(Vec::new()) };
}

fn set_sampled(flags: u8, sampled: bool) -> u8 {
    if sampled {
        flags | context::FLAG_SAMPLED
    } else {
        flags & !context::FLAG_SAMPLED
    }
}

fn run_exporter<S: Sink>(
    spans: Receiver<Span>,
    control: Receiver<Control>,
    mut batcher: Batcher,
    mut worker: Worker<S>,
    stats: &ExporterStats,
) {
    let export = |batch: Vec<Span>, worker: &mut Worker<S>| {
        if let Err(e) = worker.export(&batch, Instant::now(), stats) {
            log::debug!("otlp export of {} spans failed: {e}", batch.len());
        }
    };
    loop {
        let wait = batcher
            .deadline()
            .map_or(IDLE_WAKE, |d| d.saturating_duration_since(Instant::now()));
        select! {
            recv(spans) -> msg => match msg {
                Ok(span) => {
                    if let Some(batch) = batcher.push(span, Instant::now()) {
                        export(batch, &mut worker);
                    }
                }
                Err(_) => break,
            },
            recv(control) -> msg => {
                let (ack, stop) = match msg {
                    Ok(Control::Flush(ack)) => (ack, false),
                    Ok(Control::Shutdown(ack)) => (ack, true),
                    Err(_) => break,
                };
                // Spans sent before the flush request are already in the channel.
                while let Ok(span) = spans.try_recv() {
                    if let Some(batch) = batcher.push(span, Instant::now()) {
                        export(batch, &mut worker);
                    }
                }
                if let Some(batch) = batcher.take_all() {
                    export(batch, &mut worker);
                }
                let _ = ack.send(());
                if stop {
                    return;
                }
            },
            default(wait) => {}
        }
        if let Some(batch) = batcher.take_due(Instant::now()) {
            export(batch, &mut worker);
        }
    }
    if let Some(batch) = batcher.take_all() {
        export(batch, &mut worker);
    }
}

/// Control messages in flight at once (flush/shutdown callers).
const CONTROL_QUEUE_LEN: usize = 16;
/// How long the exporter thread sleeps when it has nothing pending.
const IDLE_WAKE: Duration = Duration::from_secs(3_600);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Clone, Default)]
    struct CountingSink(Arc<AtomicUsize>);

    impl Sink for CountingSink {
        fn post(&mut self, body: &[u8]) -> Result<(), ClientError> {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let n = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .len();
            self.0.fetch_add(n, Ordering::SeqCst);
            Ok(())
        }
    }

    const PARENT: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn request_span_continues_a_remote_parent() {
        let tracer = Tracer::with_sink(
            CountingSink::default(),
            Resource::default(),
            Sampler::with_ratio(0.0),
            ExporterSettings::default(),
        )
        .unwrap();
        let parent = extract(Some(PARENT), Some(b"rojo=1")).unwrap();
        let span = tracer.start_request(Some(parent), "POST /mcp", SystemTime::now());
        assert_eq!(span.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            span.parent_span_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(
            span.parent_is_remote && span.is_sampled(),
            "parent-based beats ratio 0"
        );
        assert_eq!(span.context.tracestate.get("rojo"), Some("1"));
        let child = tracer.child(&span, "tools/call", SystemTime::now());
        assert_eq!(child.context.trace_id, span.context.trace_id);
        assert_eq!(child.parent_span_id, Some(span.context.span_id));
        assert!(!child.parent_is_remote && child.kind == SpanKind::Internal);
        let mut out = String::new();
        format_traceparent(&child.context, &mut out);
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && out.ends_with("-01"));
    }

    #[test]
    fn root_spans_obey_the_ratio_and_unsampled_spans_are_not_exported() {
        let sink = CountingSink::default();
        let count = sink.0.clone();
        let tracer = Tracer::with_sink(
            sink,
            Resource::default(),
            Sampler::with_ratio(0.0),
            ExporterSettings::default(),
        )
        .unwrap();
        let span = tracer.start_request(None, "GET /health/live", SystemTime::now());
        assert!(!span.is_sampled());
        assert!(span.parent_span_id.is_none());
        tracer.finish(span);
        assert!(tracer.flush(Duration::from_secs(5)));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert_eq!(tracer.stats().dropped_total(), 0);
    }

    #[test]
    fn flush_exports_pending_spans_and_shutdown_stops_the_thread() {
        let sink = CountingSink::default();
        let count = sink.0.clone();
        let settings = ExporterSettings {
            max_batch_spans: 4,
            max_batch_delay: Duration::from_secs(3_600),
            ..ExporterSettings::default()
        };
        let tracer =
            Tracer::with_sink(sink, Resource::default(), Sampler::default(), settings).unwrap();
        for i in 0..10 {
            let root = tracer.start_request(None, format!("r{i}"), SystemTime::now());
            tracer.finish(root);
        }
        assert!(tracer.flush(Duration::from_secs(5)));
        assert_eq!(count.load(Ordering::SeqCst), 10);
        let s = tracer.stats();
        assert_eq!((s.exported_spans, s.export_requests), (10, 3));
        assert!(tracer.shutdown(Duration::from_secs(5)));
        tracer.finish(tracer.start_request(None, "late", SystemTime::now()));
        assert_eq!(tracer.stats().dropped_queue_full, 1);
        assert!(!tracer.flush(Duration::from_millis(50)));
    }

    #[test]
    fn disabled_tracer_makes_ids_but_exports_nothing() {
        let tracer = Tracer::disabled();
        let span = tracer.start_request(None, "x", SystemTime::now());
        assert!(!span.is_sampled());
        assert_ne!(span.context.trace_id, [0; 16]);
        tracer.finish(span);
        assert!(!tracer.flush(Duration::from_millis(10)));
        assert_eq!(tracer.stats().dropped_total(), 0);
    }

    #[test]
    fn entered_span_ids_are_visible_to_log_lines_and_restored() {
        let tracer = Tracer::disabled();
        let outer = tracer.start_request(None, "outer", SystemTime::now());
        let inner = tracer.child(&outer, "inner", SystemTime::now());
        assert_eq!(current_log_ids(), None);
        {
            let _g = outer.enter();
            assert_eq!(current_log_ids().unwrap().span_id, outer.span_id_hex());
            {
                let _g2 = inner.enter();
                let ids = current_log_ids().unwrap();
                assert_eq!(ids.span_id, inner.span_id_hex());
                assert_eq!(ids.trace_id, outer.trace_id_hex());
            }
            assert_eq!(current_log_ids().unwrap().span_id, outer.span_id_hex());
        }
        assert_eq!(current_log_ids(), None);
    }

    /// Keeps every span handed to the exporter, for inspection.
    #[derive(Clone, Default)]
    struct KeepingSink(Arc<Mutex<Vec<serde_json::Value>>>);

    impl Sink for KeepingSink {
        fn post(&mut self, body: &[u8]) -> Result<(), ClientError> {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"].clone();
            self.0
                .lock()
                .unwrap()
                .extend(spans.as_array().unwrap().iter().cloned());
            Ok(())
        }
    }

    #[test]
    fn tool_spans_are_children_of_the_span_current_on_another_thread_and_nest() {
        let sink = KeepingSink::default();
        let kept = sink.0.clone();
        let tracer = Tracer::with_sink(
            sink,
            Resource::default(),
            Sampler::with_ratio(1.0),
            ExporterSettings::default(),
        )
        .unwrap();
        let request = tracer.start_request(None, "POST /mcp", SystemTime::now());
        let carried = {
            let _g = request.enter();
            current().unwrap()
        };
        assert_eq!(current(), None, "the guard restores the previous state");
        let t2 = Arc::clone(&tracer);
        std::thread::spawn(move || {
            let _g = carried.enter();
            t2.start_tool("outer", SystemTime::now());
            let outer = current().unwrap();
            assert_ne!(outer, carried, "the tool span is current while it runs");
            t2.start_tool("inner", SystemTime::now());
            t2.finish_tool(Some("tool_error"), SystemTime::now());
            assert_eq!(current(), Some(outer));
            t2.finish_tool(None, SystemTime::now());
            assert_eq!(current(), Some(carried));
            t2.finish_tool(None, SystemTime::now());
        })
        .join()
        .unwrap();
        tracer.finish(request.clone());
        assert!(tracer.flush(Duration::from_secs(10)));
        let spans = kept.lock().unwrap().clone();
        let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap().clone();
        let (outer, inner) = (by_name("tools/call outer"), by_name("tools/call inner"));
        assert_eq!(spans.len(), 3, "an unmatched finish_tool exports nothing");
        assert_eq!(outer["traceId"], request.trace_id_hex());
        assert_eq!(outer["parentSpanId"], request.span_id_hex());
        assert_eq!(inner["parentSpanId"], outer["spanId"]);
        assert_eq!(inner["status"]["code"], 2, "error");
        assert_eq!(outer["status"]["code"], 1, "ok");
    }

    #[test]
    fn a_tool_span_without_a_current_span_starts_its_own_trace() {
        let sink = KeepingSink::default();
        let kept = sink.0.clone();
        let tracer = Tracer::with_sink(
            sink,
            Resource::default(),
            Sampler::with_ratio(1.0),
            ExporterSettings::default(),
        )
        .unwrap();
        tracer.start_tool("echo", SystemTime::now());
        assert!(current().is_some());
        tracer.finish_tool(None, SystemTime::now());
        assert_eq!(current(), None);
        assert!(tracer.flush(Duration::from_secs(10)));
        let spans = kept.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        assert!(spans[0].get("parentSpanId").is_none_or(|p| p == ""));
        assert_eq!(tracer.queue_len(), 0);
    }
}
