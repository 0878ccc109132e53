//! The shared state every handler sees: configuration, the tool registry, counters, and the
//! security, metrics and MCP state. Built once at start and shared as `Arc<App>`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::clock::DateCache;
use crate::config::Config;
use crate::net::pool::PoolStats;
use crate::net::stream::DrainSignal;
use crate::net::tls::LiveConfig;
use crate::observe::health::{HealthRegistry, HealthRunner, HealthStatus, checks};
use crate::observe::trace::{ExporterSettings, Resource, Sampler, Tracer};
use crate::tools::Registry;

/// Live counters of the server itself.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open connections (TLS port).
    pub connections: AtomicUsize,
    /// Open streamed responses.
    pub streams: AtomicUsize,
    /// Requests handled since start.
    pub requests: AtomicU64,
    /// Connections refused at a cap.
    pub refused: AtomicU64,
    /// Next connection id.
    pub next_conn_id: AtomicU64,
}

pub use crate::access::Caller;

/// Everything shared across connections.
pub struct App {
    /// The configuration.
    pub config: Arc<Config>,
    /// Tools and resources.
    pub registry: Registry,
    /// TLS configuration (SIGHUP swaps it).
    pub tls: LiveConfig,
    /// Fired when draining starts; wakes idle connections and streams.
    pub drain: DrainSignal,
    /// True while draining (readiness fails).
    pub draining: AtomicBool,
    /// The HTTP `Date` cache.
    pub dates: DateCache,
    /// Counters.
    pub counters: Counters,
    /// The held streams' hub, started with the first held stream (`None` when it could not be).
    hub: std::sync::OnceLock<Option<crate::net::hub::Hub>>,
    /// The ready set: where connections with nothing to read wait without a thread.
    pub(crate) idle: Arc<crate::net::idle::Parker>,
    /// Connection worker counts (set once the workers exist).
    pub pool: std::sync::OnceLock<Arc<PoolStats>>,
    /// Most workers.
    pub pool_max: AtomicUsize,
    /// When the server started.
    pub started: Instant,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// The certificate fingerprint shown at start.
    pub cert_fingerprint: Option<String>,
    /// A handle to this very `App`, for handlers that move work onto other threads.
    me: std::sync::Weak<App>,
    /// The MCP layer's shared state.
    pub mcp: Arc<crate::mcp::McpEnv>,
    /// The Prometheus exporter.
    pub metrics: Arc<crate::observe::metrics::Metrics>,
    /// The accepted tokens (digests only); SIGHUP or a change of `AUTH_TOKENS_FILE` reloads them.
    pub tokens: crate::security::auth::LiveTokens,
    /// Watches the certificate, key and tokens file for changes (see [`App::watch_secrets`]).
    secrets_watch: Mutex<Option<crate::watch::Watcher>>,
    /// Pushes the metrics to an OTLP collector (see [`App::start_metrics_export`]).
    pub metrics_export: Mutex<Option<crate::observe::trace::metrics_export::MetricsExporter>>,
    /// Named health checks; `/health/ready` follows them.
    pub health: HealthRegistry,
    /// The thread running the health checks (stopped when the `App` drops).
    health_runner: Mutex<Option<HealthRunner>>,
    /// Spans for requests and tool calls; exports them when `OTEL_ENABLED`.
    pub tracer: Arc<Tracer>,
    /// Origin, Host and IP policies, rate limits, connection caps, audit log.
    pub security: Arc<crate::security::gate::Security>,
}

/// Reports the MCP layer's events to the metrics, the tracer and the audit log.
struct MetricsHooks {
    metrics: Arc<crate::observe::metrics::Metrics>,
    tracer: Arc<Tracer>,
    security: Arc<crate::security::gate::Security>,
}

impl MetricsHooks {
    fn transport(kind: crate::mcp::StreamKind) -> crate::observe::metrics::Transport {
        use crate::mcp::StreamKind as K;
        use crate::observe::metrics::Transport as T;
        match kind {
            K::McpResponse => T::Sse,
            K::McpGet => T::McpSse,
            K::Legacy | K::SeedSse => T::LegacySse,
            K::SeedNdjson => T::Ndjson,
        }
    }
}

impl crate::mcp::McpHooks for MetricsHooks {
    fn tool_started(&self, name: &str) {
        self.metrics.tool_started(name);
        self.tracer.start_tool(name, SystemTime::now());
    }

    fn tool_finished(
        &self,
        name: &str,
        outcome: Result<(), &crate::tools::ToolError>,
        elapsed: Duration,
    ) {
        use crate::observe::metrics::ToolOutcome;
        use crate::tools::Fault;
        let measured = match outcome {
            Ok(()) => ToolOutcome::Ok,
            Err(e) if e.fault() == Fault::Client => ToolOutcome::ClientError(&e.code),
            Err(e) => ToolOutcome::ServerError(&e.code),
        };
        self.metrics.tool_finished(name, measured, elapsed);
        let error = outcome.err().map(|e| e.code.as_str());
        self.tracer.finish_tool(error, SystemTime::now());
    }

    fn stream_opened(&self, kind: crate::mcp::StreamKind) {
        self.metrics.stream_opened(Self::transport(kind));
    }

    fn stream_closed(&self, kind: crate::mcp::StreamKind, lifetime: Duration) {
        self.metrics.stream_closed(Self::transport(kind), lifetime);
    }

    fn stream_first_event(&self, kind: crate::mcp::StreamKind, after: Duration) {
        self.metrics
            .stream_first_event(Self::transport(kind), after);
    }

    fn rpc_finished(
        &self,
        method: &str,
        via: crate::mcp::Via,
        outcome: Result<(), crate::tools::Fault>,
        elapsed: Duration,
    ) {
        use crate::observe::metrics::{RpcOutcome, RpcTransport};
        let transport = match via {
            crate::mcp::Via::StreamableHttp => RpcTransport::StreamableHttp,
            crate::mcp::Via::LegacySse => RpcTransport::LegacySse,
        };
        let outcome = match outcome {
            Ok(()) => RpcOutcome::Ok,
            Err(crate::tools::Fault::Client) => RpcOutcome::ClientError,
            Err(crate::tools::Fault::Server) => RpcOutcome::ServerError,
        };
        self.metrics
            .mcp_request(method, transport, outcome, elapsed);
    }

    fn stream_sent(&self, kind: crate::mcp::StreamKind, bytes: usize) {
        self.metrics.stream_sent(Self::transport(kind), bytes);
    }

    fn audit(&self, event: &crate::mcp::AuditEvent<'_>) {
        if let crate::mcp::AuditEvent::Forbidden { .. } = event {
            self.metrics
                .auth(crate::observe::metrics::AuthResult::Forbidden);
        }
        self.security.record_mcp(event, crate::mcp::request_scope());
    }
}

impl App {
    /// Builds the shared state.
    pub fn new(
        config: Arc<Config>,
        registry: Registry,
        tls: LiveConfig,
        cert_fingerprint: Option<String>,
    ) -> std::io::Result<Arc<App>> {
        let drain = DrainSignal::new()?;
        let idle = Arc::new(crate::net::idle::Parker::new(&drain)?);
        let tokens = crate::security::auth::LiveTokens::new(
            config.auth_tokens.join(","),
            config.auth_tokens_file.clone(),
        )
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("AUTH_TOKENS: {e}"),
            )
        })?;
        let tool_names: Vec<&'static str> = registry.tools().iter().map(|t| t.def().name).collect();
        let metrics = Arc::new(crate::observe::metrics::Metrics::new(
            &tool_names,
            crate::routes::table::ROUTES,
        ));
        let tracer = tracer(&config)?;
        metrics.attach_tracer(tracer.stats_handle());
        let session_key = match config.sessions {
            crate::config::Sessions::Stateless => [0; 32],
            crate::config::Sessions::Stateful => {
                session_key(&config.state_dir().join("session-key"))?
            }
        };
        let settings = crate::mcp::Settings {
            heartbeat: config.heartbeat,
            max_response_bytes: config.max_response_bytes,
            max_streams: config.max_streams,
            sessions: config.sessions,
            session_key,
            max_stream_age: config.max_stream_age,
            client_request_timeout: config.client_request_timeout,
            max_subscriptions: config.max_subscriptions,
            watch_root: Some(config.root.clone()),
            ..crate::mcp::Settings::default()
        };
        let security = Arc::new(
            crate::security::gate::Security::from_config(
                &config,
                Instant::now(),
                SystemTime::now(),
            )
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?,
        );
        let hooks: Arc<dyn crate::mcp::McpHooks> = Arc::new(MetricsHooks {
            metrics: Arc::clone(&metrics),
            tracer: Arc::clone(&tracer),
            security: Arc::clone(&security),
        });
        let mcp = Arc::new(crate::mcp::McpEnv::new(registry.clone(), settings, hooks));
        Ok(Arc::new_cyclic(|me| {
            let mut app = App::build(
                config,
                registry,
                tls,
                cert_fingerprint,
                (drain, idle),
                me.clone(),
                mcp,
                metrics,
                security,
            );
            app.tokens = tokens;
            app.tracer = tracer;
            app
        }))
    }

    /// An owning handle to this `App`.
    pub fn self_arc(&self) -> Arc<App> {
        // unwrap: `App` only exists inside the `Arc` made by `App::new`, which outlives `&self`.
        self.me.upgrade().expect("App lives in an Arc")
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        config: Arc<Config>,
        registry: Registry,
        tls: LiveConfig,
        cert_fingerprint: Option<String>,
        (drain, idle): (DrainSignal, Arc<crate::net::idle::Parker>),
        me: std::sync::Weak<App>,
        mcp: Arc<crate::mcp::McpEnv>,
        metrics: Arc<crate::observe::metrics::Metrics>,
        security: Arc<crate::security::gate::Security>,
    ) -> App {
        App {
            config,
            registry,
            tls,
            drain,
            draining: AtomicBool::new(false),
            dates: DateCache::default(),
            counters: Counters::default(),
            pool: std::sync::OnceLock::new(),
            idle,
            hub: std::sync::OnceLock::new(),
            pool_max: AtomicUsize::new(0),
            started: Instant::now(),
            started_at: SystemTime::now(),
            cert_fingerprint,
            me,
            mcp,
            metrics,
            tokens: crate::security::auth::LiveTokens::fixed(Default::default()),
            secrets_watch: Mutex::new(None),
            metrics_export: Mutex::new(None),
            health: HealthRegistry::new(HEALTH_CHECK_TIMEOUT),
            health_runner: Mutex::new(None),
            tracer: Tracer::disabled(),
            security,
        }
    }

    /// Re-reads the certificate and key and `AUTH_TOKENS_FILE` (SIGHUP, or a change on disk). A
    /// refused file is logged and counted; the old one stays in use, and nothing in flight is
    /// touched: connections keep the TLS session they have, requests the identity they were given.
    pub fn reload_secrets(&self, cause: &str) {
        use crate::observe::metrics::Reloaded;
        match self.tls.reload() {
            Ok(()) => {
                self.metrics.reloaded(Reloaded::Tls, true);
                log::info!("certificate reloaded ({cause})");
            }
            Err(e) => {
                self.metrics.reloaded(Reloaded::Tls, false);
                log::error!("certificate reload ({cause}) failed, keeping the old one: {e}");
            }
        }
        if self.tokens.file().is_some() {
            match self.tokens.reload() {
                Ok(n) => {
                    self.metrics.reloaded(Reloaded::Tokens, true);
                    log::info!("tokens reloaded ({cause}): {n} identities");
                }
                Err(e) => {
                    self.metrics.reloaded(Reloaded::Tokens, false);
                    log::error!(
                        "AUTH_TOKENS_FILE reload ({cause}) failed, keeping the old tokens: {e}"
                    );
                }
            }
        }
    }

    /// Starts pushing the metrics as OTLP/HTTP JSON every `OTEL_METRIC_EXPORT_INTERVAL` when an
    /// endpoint is configured (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`).
    ///
    /// # Errors
    /// The endpoint, the CA file or the thread.
    pub fn start_metrics_export(&self) -> std::io::Result<()> {
        let Some(url) = &self.config.otel_metrics_endpoint else {
            return Ok(());
        };
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT {url}: {e}"),
            )
        };
        let endpoint = crate::net::client::Endpoint::parse(url).map_err(|e| invalid(&e))?;
        let transport = crate::net::client::HttpClient::new(
            endpoint,
            self.config.otel_certificate.as_deref(),
            crate::observe::trace::export::ExporterSettings::default().timeouts,
        )
        .map_err(|e| invalid(&e))?;
        let me = self.me.clone();
        let exporter = crate::observe::trace::metrics_export::start(
            transport,
            self.config.otel_metric_interval,
            Resource::new(self.config.otel_service_name.clone()),
            self.started_at,
            move || {
                let app = me.upgrade()?;
                let mut text = String::new();
                app.metrics.render(&mut text);
                Some(text)
            },
        )
        .map_err(|e| invalid(&e))?;
        *self
            .metrics_export
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(exporter);
        Ok(())
    }

    /// Watches the configured certificate, key and `AUTH_TOKENS_FILE` and reloads them when
    /// they change on disk, including a Kubernetes Secret update (its `..data` link swapped).
    ///
    /// # Errors
    /// No inotify instance or thread could be had.
    pub fn watch_secrets(&self) -> std::io::Result<()> {
        let files: Vec<std::path::PathBuf> = [
            self.config.tls_cert.clone(),
            self.config.tls_key.clone(),
            self.config.auth_tokens_file.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if files.is_empty() {
            return Ok(());
        }
        let me = self.me.clone();
        let w = crate::watch::spawn_files(&files, crate::watch::Settings::default(), move || {
            if let Some(app) = me.upgrade() {
                app.reload_secrets("file changed");
            }
        })?;
        *self
            .secrets_watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(w);
        Ok(())
    }

    /// Registers the standard health checks (workspace, disk, memory, worker pool, trace
    /// exporter), runs them once, and starts the runner that repeats each every
    /// `HEALTH_CHECK_INTERVAL_MS`. Call once the pool exists.
    ///
    /// # Errors
    /// The runner thread could not be started.
    pub fn start_health(&self) -> std::io::Result<()> {
        let every = self.config.health_check_interval;
        let root = self.config.root.clone();
        self.health
            .register("workspace", every, checks::workspace_rw(root.clone()));
        self.health.register(
            "disk",
            every,
            checks::disk_free(root, DISK_DEGRADED_BELOW_BYTES, DISK_UNHEALTHY_BELOW_BYTES),
        );
        self.health.register(
            "memory",
            every,
            checks::memory(MEMORY_DEGRADED_RATIO, MEMORY_UNHEALTHY_RATIO),
        );
        let me = self.me.clone();
        self.health.register(
            "worker_pool",
            every,
            checks::pool_saturation(POOL_DEGRADED_RATIO, move || {
                let Some(app) = me.upgrade() else {
                    return (0, 0);
                };
                let busy = app.pool.get().map_or(0, |p| p.busy.load(Ordering::Relaxed));
                (busy, app.pool_max.load(Ordering::Relaxed))
            }),
        );
        self.health.register(
            "trace_exporter",
            every,
            checks::trace_exporter(self.tracer.stats_handle()),
        );
        let metrics = Arc::clone(&self.metrics);
        self.health.set_on_change(move |name, status| {
            if status != HealthStatus::Healthy {
                log::warn!("health check {name} is {status}");
            }
            metrics.set_health(name, status.into());
        });
        self.health.run_all_blocking();
        let runner = self.health.start_runner()?;
        *self
            .health_runner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(runner);
        Ok(())
    }

    /// Starts draining: readiness fails, idle connections and streams are woken to close.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain.fire();
    }

    /// The held streams' hub, started on first use.
    pub(crate) fn hub(&self) -> Option<&crate::net::hub::Hub> {
        self.hub
            .get_or_init(|| {
                let started = self.drain.fd().try_clone_to_owned().and_then(|drain| {
                    crate::net::hub::Hub::start(drain, self.config.write_timeout)
                });
                match started {
                    Ok(h) => Some(h),
                    Err(e) => {
                        log::error!("cannot start the held-stream hub: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// True while draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The bind address is loopback.
    pub fn loopback(&self) -> bool {
        self.config.host.is_loopback()
    }
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The stateful-session signing key, made once (0600) so session ids survive a restart.
fn session_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let key: [u8; 32] = crate::random::bytes().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        crate::fsx::create_private_dir(dir)?;
    }
    crate::fsx::atomic_write_private(path, &key)?;
    Ok(key)
}

/// The trace exporter `OTEL_*` asks for, or one that only makes ids (for logs) when disabled.
fn tracer(config: &Config) -> std::io::Result<Arc<Tracer>> {
    if !config.otel_enabled {
        return Ok(Tracer::disabled());
    }
    let settings = ExporterSettings {
        max_queue_spans: config.otel_queue_spans,
        max_batch_spans: config.otel_batch_spans,
        max_batch_delay: config.otel_batch_delay,
        ..ExporterSettings::default()
    };
    Tracer::start(
        &config.otel_endpoint,
        config.otel_certificate.as_deref(),
        Resource::new(config.otel_service_name.clone()),
        Sampler::with_ratio(config.otel_sample_ratio),
        settings,
    )
    .map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {e}"),
        )
    })
}

/// How long one health check may run before it counts as UNHEALTHY "timed out".
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Free workspace disk below which the `disk` check is DEGRADED.
pub const DISK_DEGRADED_BELOW_BYTES: u64 = 512 * 1024 * 1024;
/// Free workspace disk below which the `disk` check is UNHEALTHY (writes will soon fail).
pub const DISK_UNHEALTHY_BELOW_BYTES: u64 = 64 * 1024 * 1024;
/// Resident memory over its limit at which the `memory` check is DEGRADED.
pub const MEMORY_DEGRADED_RATIO: f64 = 0.85;
/// Resident memory over its limit at which the `memory` check is UNHEALTHY.
pub const MEMORY_UNHEALTHY_RATIO: f64 = 0.95;
/// Busy workers over the most at which the `worker_pool` check is DEGRADED.
pub const POOL_DEGRADED_RATIO: f64 = 0.9;

/// Whether an address is loopback (IPv4-mapped IPv6 included).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("localhost:8443"), "localhost");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    /// Every module default that names a setting equals the settings table's (`config::SETTINGS`),
    /// so a module used on its own behaves as the configured server does.
    #[test]
    fn module_defaults_are_the_settings_tables() {
        let c = Config::defaults();
        let mcp = crate::mcp::Settings::default();
        assert_eq!(
            (mcp.heartbeat, mcp.max_response_bytes, mcp.max_streams),
            (c.heartbeat, c.max_response_bytes, c.max_streams)
        );
        assert_eq!(mcp.max_stream_age, c.max_stream_age);
        let audit = crate::security::audit::AuditConfig::default();
        assert_eq!(audit.max_bytes, c.audit_log_max_bytes);
        let export = crate::observe::trace::ExporterSettings::default();
        assert_eq!(
            (export.max_queue_spans, export.max_batch_spans),
            (c.otel_queue_spans, c.otel_batch_spans)
        );
        assert_eq!(export.max_batch_delay, c.otel_batch_delay);
        let head = crate::http::request::HeadLimits::default();
        assert_eq!(
            (head.max_head_bytes, head.max_headers),
            (c.max_header_bytes, c.max_headers)
        );
    }
}
