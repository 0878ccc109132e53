//! Pushes the server's metrics to an OTLP/HTTP collector every `OTEL_METRIC_EXPORT_INTERVAL`,
//! for backends that take OpenTelemetry and do not scrape Prometheus.
//!
//! One thread, the traces' HTTP transport and the same circuit breaker design: a reading is the
//! Prometheus exposition turned into OTLP JSON ([`super::otlp_metrics`]); a dead or slow
//! collector costs this thread one attempt per cooldown and never touches a request. Readings
//! are cumulative, so one that fails is simply superseded by the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, bounded};

use super::breaker::CircuitBreaker;
use super::export::ExporterSettings;
use super::otlp::Resource;
use super::otlp_metrics::encode_metrics;
use crate::net::client::{ClientError, HttpClient};

/// What the exporter did, for tests and `/debug/vars`.
#[derive(Debug, Default)]
pub struct MetricsExportStats {
    /// Readings the collector accepted.
    pub exported: AtomicU64,
    /// Readings that failed (refused, unreachable, or skipped while the breaker was open).
    pub failed: AtomicU64,
}

/// Stops the exporter thread when dropped (after one last reading).
pub struct MetricsExporter {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Its counts.
    pub stats: Arc<MetricsExportStats>,
}

impl Drop for MetricsExporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the exporter: every `interval`, `render()` gives the exposition, which is posted
/// through `transport`.
///
/// # Errors
/// The thread could not be started.
pub fn start(
    transport: HttpClient,
    interval: Duration,
    resource: Resource,
    started_at: SystemTime,
    render: impl Fn() -> Option<String> + Send + 'static,
) -> Result<MetricsExporter, ClientError> {
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let stats = Arc::new(MetricsExportStats::default());
    let stats2 = Arc::clone(&stats);
    let settings = ExporterSettings::default();
    let mut breaker = CircuitBreaker::new(
        settings.breaker_failure_threshold,
        settings.breaker_cooldown,
    );
    let start_nanos = unix_nanos(started_at);
    let thread = std::thread::Builder::new()
        .name("otlp-metrics".into())
        .spawn(move || {
            let mut body = Vec::new();
            loop {
                // A dropped sender (shutdown) ends the wait early; the last reading still goes.
                let stopping = !matches!(
                    stop_rx.recv_timeout(interval),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                );
                if let Some(text) = render() {
                    let now = Instant::now();
                    if breaker.try_acquire(now) {
                        body.clear();
                        encode_metrics(
                            &resource,
                            &text,
                            start_nanos,
                            unix_nanos(SystemTime::now()),
                            &mut body,
                        );
                        match transport.post_json(&body) {
                            Ok(_) => {
                                breaker.record_success();
                                stats2.exported.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                if e.is_collector_fault() {
                                    breaker.record_failure(now);
                                }
                                stats2.failed.fetch_add(1, Ordering::Relaxed);
                                log::warn!("OTLP metrics export failed: {e}");
                            }
                        }
                    } else {
                        stats2.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if stopping {
                    return;
                }
            }
        })
        .map_err(ClientError::Connect)?;
    Ok(MetricsExporter {
        stop: Some(stop_tx),
        thread: Some(thread),
        stats,
    })
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
