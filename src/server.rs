//! Start-up, the accept loops, signals and graceful shutdown.
//!
//! `run` prepares the workspace, TLS and tokens, binds, then accepts connections and hands each
//! to the worker pool (the loop and its refusals are in `accept.rs`). SIGTERM/SIGINT start
//! draining: readiness fails, the listener closes, idle connections and streams are woken to end,
//! and in-flight requests get `SHUTDOWN_GRACE_MS` to finish; a second signal exits at once.
//! SIGHUP, or a change of the files on disk, reloads the certificate and `AUTH_TOKENS_FILE`.

use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::app::{App, is_loopback};
use crate::config::Config;
use crate::net::conn::{self};
use crate::net::tls::{self, CertSource, LiveConfig, TlsError};
use crate::net::workers::{Sizing, Workers};
use crate::tools::{self, Registry};

use crate::net::accept::{accept_loop, spawn_refuser};

/// Why the server could not start or run.
#[derive(Debug)]
pub enum ServerError {
    /// A setting is unsafe or unusable (exit code 2).
    Config(String),
    /// TLS material could not be loaded or made.
    Tls(TlsError),
    /// Binding or another I/O step failed.
    Io(String, io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(why) => f.write_str(why),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<TlsError> for ServerError {
    fn from(e: TlsError) -> Self {
        ServerError::Tls(e)
    }
}

/// A started server: its address and a handle to stop it (tests use this).
pub struct Running {
    /// The bound address of the TLS port.
    pub addr: SocketAddr,
    /// The bound address of the metrics port, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state.
    pub app: Arc<App>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts draining and waits until connections end or the grace period passes.
    pub fn shutdown(mut self) {
        drain_and_wait(&self.app, self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Spans of the last requests still go out, but a dead collector cannot hold the exit.
        self.app.tracer.shutdown(TRACE_SHUTDOWN_TIMEOUT);
    }
}

/// Prepares the workspace, TLS material and tokens; refuses unsafe settings.
///
/// Returns the final configuration (tokens filled in), the TLS configuration and the
/// certificate fingerprint when self-signed.
///
/// # Errors
/// [`ServerError::Config`] for a non-loopback bind without certificate and tokens.
pub fn prepare(mut config: Config) -> Result<(Config, LiveConfig, Option<String>), ServerError> {
    let root = fs::canonicalize(&config.root)
        .map_err(|e| ServerError::Io(format!("TASK_MCP_ROOT {}", config.root.display()), e))?;
    config.root = root;
    let state_dir = config.state_dir();
    let public = !is_loopback(config.host);
    let has_tokens = !config.auth_tokens.is_empty() || config.auth_tokens_file.is_some();
    if public && (config.tls_cert.is_none() || !has_tokens) {
        return Err(ServerError::Config(format!(
            "refusing to listen on {} without TLS_CERT/TLS_KEY and AUTH_TOKENS (or AUTH_TOKENS_FILE): \
             the self-signed certificate and generated token are for loopback only",
            config.host
        )));
    }
    crate::fsx::create_private_dir(&state_dir)
        .map_err(|e| ServerError::Io(format!("creating {}", state_dir.display()), e))?;
    let (live, fingerprint) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let src = CertSource {
                cert: cert.clone(),
                key: key.clone(),
                tls13_only: config.tls13_only,
            };
            (LiveConfig::new(src)?, None)
        }
        _ => {
            let (mut src, fp) = tls::ensure_self_signed(&state_dir)?;
            src.tls13_only = config.tls13_only;
            eprintln!(
                "TLS: self-signed certificate {} (SHA-256 {fp})",
                src.cert.display()
            );
            (LiveConfig::new(src)?, Some(fp))
        }
    };
    if !has_tokens {
        let token = ensure_token(&state_dir.join("token"))?;
        eprintln!(
            "Auth: token kept in {} — send `Authorization: Bearer $(cat {})`",
            state_dir.join("token").display(),
            state_dir.join("token").display()
        );
        config.auth_tokens = vec![token];
    }
    Ok((config, live, fingerprint))
}

/// The registry the configuration asks for: the OpenSpec tools and resources over
/// `$TASK_MCP_ROOT`, plus the test tools when enabled. Finishes or rolls back any archive a
/// crash interrupted before anything is served.
///
/// # Errors
/// The workspace cannot be opened or recovered.
pub fn build_registry(config: &Config) -> Result<Registry, ServerError> {
    let mut reg = Registry::new();
    let ws = crate::openspec::Workspace::open(&config.root).map_err(|e| {
        ServerError::Config(format!("TASK_MCP_ROOT {}: {e}", config.root.display()))
    })?;
    match ws.recover() {
        Ok(done) if !done.is_empty() => {
            log::warn!("recovered interrupted archive(s): {}", done.join(", "))
        }
        Ok(_) => {}
        Err(e) => {
            return Err(ServerError::Config(format!(
                "recovering interrupted archives: {e}"
            )));
        }
    }
    let tool_opts = tools::options::ToolOptions {
        // Test-only crash hook, never honoured without the test tools.
        test_crash_at: config
            .enable_test_tools
            .then(crate::openspec::ArchiveStep::test_crash_from_env)
            .flatten(),
        test_crash_unarchive: config
            .enable_test_tools
            .then(|| std::env::var(crate::openspec::archive::TEST_CRASH_ENV).ok())
            .flatten()
            .and_then(|s| crate::openspec::unarchive::UnarchiveStep::parse(&s)),
        ..tools::options::ToolOptions::default()
    };
    tools::openspec::register(&mut reg, Arc::new(ws), tool_opts);
    if config.enable_test_tools {
        reg.add_tool(Arc::new(tools::testing::Echo::new()));
        reg.add_tool(Arc::new(tools::testing::Slow::new()));
        tools::conformance::register(&mut reg);
    }
    Ok(reg)
}

/// Binds and starts serving in background threads.
///
/// # Errors
/// Binding fails.
pub fn start(
    config: Config,
    registry: Registry,
    live: LiveConfig,
    fingerprint: Option<String>,
) -> Result<Running, ServerError> {
    raise_fd_limit();
    crate::security::gate::Security::check(&config)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let config = Arc::new(config);
    let listener = TcpListener::bind((config.host, config.port))
        .map_err(|e| ServerError::Io(format!("binding {}:{}", config.host, config.port), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io("local address".into(), e))?;
    let metrics_listener = if config.enable_prometheus {
        let l =
            TcpListener::bind((config.prometheus_host, config.prometheus_port)).map_err(|e| {
                ServerError::Io(
                    format!(
                        "binding metrics {}:{}",
                        config.prometheus_host, config.prometheus_port
                    ),
                    e,
                )
            })?;
        Some(l)
    } else {
        None
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let app = App::new(Arc::clone(&config), registry, live, fingerprint)
        .map_err(|e| ServerError::Io("state".into(), e))?;
    let workers = Workers::start(
        Arc::clone(&app.idle),
        &app.drain,
        Sizing {
            active: match config.active_workers {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            min: MIN_WORKERS,
            max: config.worker_threads,
            idle_retire: WORKER_IDLE_RETIRE,
        },
    )
    .map_err(|e| ServerError::Io("starting the workers".into(), e))?;
    let _ = app.pool.set(workers.stats());
    app.pool_max.store(workers.max_threads(), Ordering::Relaxed);
    app.start_health()
        .map_err(|e| ServerError::Io("starting the health checks".into(), e))?;
    app.start_metrics_export()
        .map_err(|e| ServerError::Io("starting the OTLP metrics export".into(), e))?;
    if let Err(e) = app.watch_secrets() {
        log::warn!("not watching the certificate and tokens file ({e}): send SIGHUP to reload");
    }
    let refuser = spawn_refuser(Arc::clone(&app));
    if let Some(l) = metrics_listener {
        let app2 = Arc::clone(&app);
        let workers2 = Arc::clone(&workers);
        let first_bytes = config.header_timeout;
        std::thread::Builder::new()
            .name("accept-metrics".into())
            .spawn(move || {
                accept_loop(
                    app2,
                    l,
                    workers2,
                    None,
                    conn::serve_plain,
                    first_bytes,
                    crate::routes::handle_metrics_port,
                )
            })
            .map_err(|e| ServerError::Io("spawning the metrics acceptor".into(), e))?;
    }
    let app2 = Arc::clone(&app);
    let first_bytes = config.handshake_timeout;
    let accept = std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            accept_loop(
                app2,
                listener,
                workers,
                Some(refuser),
                conn::serve_tls,
                first_bytes,
                crate::routes::handle,
            )
        })
        .map_err(|e| ServerError::Io("spawning the acceptor".into(), e))?;
    Ok(Running {
        addr,
        metrics_addr,
        app,
        accept: Some(accept),
    })
}

/// Runs until a signal stops the server; returns the process exit code.
pub fn run(config: Config) -> Result<i32, ServerError> {
    let started = Instant::now();
    let (config, live, fp) = prepare(config)?;
    let registry = build_registry(&config)?;
    let running = start(config, registry, live, fp)?;
    let app = Arc::clone(&running.app);
    eprintln!(
        "task-mcp {} listening on https://{} (root {}, ready in {} ms)",
        env!("CARGO_PKG_VERSION"),
        running.addr,
        app.config.root.display(),
        started.elapsed().as_millis()
    );
    if let Some(m) = running.metrics_addr {
        eprintln!("metrics on http://{m}/metrics");
    }
    if !app.config.root.join("openspec").exists() {
        eprintln!(
            "No openspec/ in {} yet: the tools see an empty workspace, and nothing is written here until a tool writes. Run `openspec init` there, or let the first change_open create openspec/changes/.",
            app.config.root.display()
        );
    }
    log::info!("listening on {}", running.addr);
    for warning in app
        .security
        .warnings(&app.tokens.current(), app.config.allow_query_token)
    {
        log::warn!("{warning}");
    }
    // The last start-up line: what to do next.
    eprintln!("connect a client: task-mcp connect");
    wait_for_signals(&app);
    running.shutdown();
    // The chain's head, kept in the logs, shows later whether lines were cut off the end.
    let _ = app.security.audit.flush();
    let (seq, hash) = app.security.audit.head();
    log::info!("stopped (audit head seq {seq} hash {hash})");
    Ok(0)
}

/// Workers kept alive even when idle (the active ones included), and how long an extra idle
/// worker lives.
const MIN_WORKERS: usize = 4;
const WORKER_IDLE_RETIRE: Duration = Duration::from_secs(30);
/// How long shutdown waits for the trace exporter to send what is queued.
const TRACE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

fn wait_for_signals(app: &Arc<App>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return;
        }
    };
    for sig in signals.forever() {
        match sig {
            SIGHUP => app.reload_secrets("SIGHUP"),
            _ => {
                log::info!("signal {sig}: draining");
                // A second TERM/INT during the drain exits at once.
                let app2 = Arc::clone(app);
                let _ = std::thread::Builder::new()
                    .name("second-signal".into())
                    .spawn(move || {
                        if let Ok(mut again) =
                            signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
                        {
                            if again.forever().next().is_some() {
                                log::warn!("second signal: exiting now");
                                let _ = app2;
                                std::process::exit(1);
                            }
                        }
                    });
                return;
            }
        }
    }
}

fn drain_and_wait(app: &Arc<App>, addr: SocketAddr) {
    app.start_draining();
    // Wake the blocking accept so the loop sees the flag and drops the listener.
    let wake = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(500));
    let deadline = Instant::now() + app.config.shutdown_grace;
    while Instant::now() < deadline {
        let open = app.counters.connections.load(Ordering::Acquire);
        if open == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    log::warn!(
        "shutdown grace passed with {} connection(s) open",
        app.counters.connections.load(Ordering::Acquire)
    );
}

fn ensure_token(path: &Path) -> Result<String, ServerError> {
    if let Ok(t) = fs::read_to_string(path) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let token = crate::random::hex(32).map_err(|e| ServerError::Config(e.to_string()))?;
    crate::fsx::atomic_write_private(path, token.as_bytes())
        .map_err(|e| ServerError::Io(format!("writing {}", path.display()), e))?;
    Ok(token)
}

/// Held streams need one descriptor each: lift the soft limit to the hard.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        if lim.current.is_some_and(|c| c < max) {
            lim.current = Some(max);
            let _ = setrlimit(Resource::Nofile, lim);
        }
    }
}
