//! Configuration: every setting with its default and meaning in one table, parsed once into
//! typed values.
//!
//! Sources, lowest precedence first: built-in defaults, an optional JSON file (`--config FILE`,
//! an object of `"NAME": value`), environment variables, then flags (`--max-connections 100` sets
//! `MAX_CONNECTIONS`). `task-mcp check-config` prints the effective values with secrets redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// One setting of the table.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The environment variable name.
    pub name: &'static str,
    /// The default, as text ("" = unset).
    pub default: &'static str,
    /// What it means.
    pub help: &'static str,
    /// Never printed.
    pub secret: bool,
}

const fn s(name: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        help,
        secret: false,
    }
}

const fn secret(name: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default,
        help,
        secret: true,
    }
}

/// Every setting, in the order `check-config` and the README list them.
pub const SETTINGS: &[Setting] = &[
    s(
        "HOST",
        "127.0.0.1",
        "Address to listen on. A non-loopback address needs TLS_CERT, TLS_KEY and tokens.",
    ),
    s(
        "PORT",
        "8443",
        "HTTPS port (0 picks a free port and prints it).",
    ),
    s(
        "TASK_MCP_ROOT",
        ".",
        "The repository whose openspec/ folder is served.",
    ),
    s(
        "STATE_DIR",
        "",
        "Where the server keeps what it generates (self-signed certificate, token, session key). Unset: $TASK_MCP_ROOT/.task-mcp when that exists, else $XDG_STATE_HOME/task-mcp/<repo>-<hash> ($HOME/.local/state/...), outside the repository.",
    ),
    s(
        "TLS_CERT",
        "",
        "PEM certificate chain. Unset: a self-signed certificate kept in STATE_DIR.",
    ),
    s("TLS_KEY", "", "PEM private key (PKCS#8, PKCS#1 or SEC1)."),
    s(
        "TLS_CA",
        "",
        "PEM CA bundle `task-mcp healthcheck` verifies the server with (on loopback the only anchor; elsewhere tried before TLS_CERT).",
    ),
    s(
        "TLS_MIN_VERSION",
        "1.2",
        "Lowest TLS version accepted: 1.2 or 1.3.",
    ),
    s(
        "TLS_HANDSHAKE_TIMEOUT_MS",
        "10000",
        "Time allowed for a TLS handshake.",
    ),
    secret(
        "AUTH_TOKENS",
        "",
        "Comma-separated bearer tokens (each `token`, `name:token` or `name:role:token`). Unset: one generated and kept in STATE_DIR/token.",
    ),
    s(
        "AUTH_TOKENS_FILE",
        "",
        "JSON file of tokens: [{\"name\",\"sha256\",\"role\",\"rateLimit\"?}].",
    ),
    s(
        "ALLOW_QUERY_TOKEN",
        "false",
        "Accept ?access_token= in the query (for EventSource; tokens then reach proxy logs).",
    ),
    s(
        "ALLOWED_ORIGINS",
        "",
        "Comma-separated exact origins allowed for CORS; a request with another Origin gets 403.",
    ),
    s(
        "ALLOWED_HOSTS",
        "",
        "Comma-separated Host names accepted (`*` = any). Unset: loopback names when bound to loopback, else any.",
    ),
    s(
        "OAUTH_RESOURCE_METADATA",
        "",
        "RFC 9728 metadata: its URL, or the JSON document itself (with `resource` and `authorization_servers`); when set it is served and named in 401 challenges.",
    ),
    s(
        "RATE_LIMIT",
        "600",
        "Requests per minute per token identity and per client IP (0 disables).",
    ),
    s(
        "RATE_LIMIT_BURST",
        "60",
        "Bucket size: requests allowed at once before the per-minute rate applies.",
    ),
    s(
        "RATE_LIMIT_MAX_KEYS",
        "100000",
        "Most rate-limit buckets kept in memory.",
    ),
    s(
        "RATE_LIMIT_HOLD_MS",
        "1000",
        "After a 429 the connection reads its next request only after min(Retry-After, this); 0 = at once.",
    ),
    s(
        "RATE_LIMIT_REDIS_URL",
        "",
        "redis://host:port/db to share limits across replicas.",
    ),
    s(
        "RATE_LIMIT_REDIS_FAIL",
        "open",
        "When Redis is unreachable: open (allow) or closed (refuse).",
    ),
    s(
        "IP_ALLOW",
        "",
        "Comma-separated CIDRs allowed to connect (empty = all).",
    ),
    s(
        "IP_DENY",
        "",
        "Comma-separated CIDRs refused (wins over IP_ALLOW).",
    ),
    s(
        "TRUSTED_PROXIES",
        "",
        "CIDRs of proxies whose X-Forwarded-For is believed.",
    ),
    s(
        "MAX_CONNECTIONS",
        "12000",
        "Open connections at most; beyond it new ones get 503 and are closed.",
    ),
    s(
        "MAX_CONNECTIONS_PER_IP",
        "64",
        "Open connections per client IP at most (a TRUSTED_PROXIES peer is exempt); beyond it 503.",
    ),
    s(
        "MAX_STREAMS",
        "10000",
        "Open SSE/NDJSON streams at most; beyond it 503.",
    ),
    s(
        "MAX_IN_FLIGHT",
        "1024",
        "Requests being processed at once at most; beyond it 503.",
    ),
    s(
        "WORKER_THREADS",
        "512",
        "Most worker threads (each serves one connection at a time).",
    ),
    s(
        "ACTIVE_WORKERS",
        "0",
        "Worker threads taking ready connections while none is stuck (0: one per CPU the process may use). More join while these are stuck on a slow tool or client, up to WORKER_THREADS.",
    ),
    s(
        "MAX_HEADER_BYTES",
        "16384",
        "Request line plus headers at most (414/431 beyond).",
    ),
    s("MAX_HEADERS", "64", "Header lines at most (431 beyond)."),
    s(
        "MAX_BODY_BYTES",
        "4194304",
        "Request body at most (413 beyond).",
    ),
    s(
        "HEADER_TIMEOUT_MS",
        "10000",
        "Time allowed to receive a request head (408 after).",
    ),
    s(
        "BODY_TIMEOUT_MS",
        "30000",
        "Time allowed to receive a request body (408 after).",
    ),
    s(
        "IDLE_TIMEOUT_MS",
        "60000",
        "A keep-alive connection with no request for this long is closed.",
    ),
    s(
        "WRITE_TIMEOUT_MS",
        "30000",
        "A client that accepts no bytes for this long is dropped.",
    ),
    s(
        "SHUTDOWN_GRACE_MS",
        "10000",
        "On SIGTERM, time allowed for in-flight requests before exit.",
    ),
    s(
        "HEARTBEAT_MS",
        "15000",
        "Keep-alive comment interval on SSE streams.",
    ),
    s(
        "MAX_RESPONSE_SIZE_KB",
        "256",
        "Largest tool result; larger ones are refused with a hint, never cut.",
    ),
    s(
        "MAX_STREAM_AGE_MS",
        "86400000",
        "Legacy SSE streams older than this are closed (clients reconnect).",
    ),
    s(
        "CLIENT_REQUEST_TIMEOUT_MS",
        "60000",
        "How long a tool waits for the client to answer its request (sampling, elicitation).",
    ),
    s(
        "MAX_SUBSCRIPTIONS",
        "64",
        "Resource subscriptions one session may hold.",
    ),
    s(
        "MCP_SESSIONS",
        "stateless",
        "stateless (default) or stateful (signed Mcp-Session-Id, GET stream, DELETE).",
    ),
    s(
        "ENABLE_TEST_TOOLS",
        "false",
        "Also offer the test tools (`echo`, `slow`) and the MCP conformance suite's fixtures.",
    ),
    s(
        "LOG_LEVEL",
        "info",
        "error, warn, info, debug or trace (env_logger filter syntax accepted).",
    ),
    s(
        "LOG_FORMAT",
        "auto",
        "json, text, or auto (json when stderr is not a terminal).",
    ),
    s(
        "AUDIT_LOG",
        "",
        "Append-only, hash-chained JSON-lines audit file (unset: memory ring only).",
    ),
    s(
        "AUDIT_LOG_MAX_BYTES",
        "104857600",
        "Audit file size before rotation.",
    ),
    s(
        "ENABLE_PROMETHEUS",
        "false",
        "Also serve /metrics as plain HTTP on PROMETHEUS_HOST:PROMETHEUS_PORT.",
    ),
    s(
        "PROMETHEUS_HOST",
        "127.0.0.1",
        "Bind address of the plain-HTTP metrics listener.",
    ),
    s(
        "PROMETHEUS_PORT",
        "9464",
        "Port of the plain-HTTP metrics listener.",
    ),
    s(
        "DEBUG_ENDPOINTS",
        "false",
        "Serve /debug/vars (admin): threads, queues, connections, streams.",
    ),
    s("OTEL_ENABLED", "false", "Export traces as OTLP/HTTP JSON."),
    s(
        "OTEL_SERVICE_NAME",
        "task-mcp",
        "service.name of exported spans.",
    ),
    s(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://127.0.0.1:4318/v1/traces",
        "Where traces are POSTed.",
    ),
    s(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "",
        "Where metrics are POSTed as OTLP/HTTP JSON (e.g. http://collector:4318/v1/metrics); unset: OTEL_EXPORTER_OTLP_ENDPOINT's, else no metrics export.",
    ),
    s(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "Base URL of an OTLP/HTTP collector; metrics go to <base>/v1/metrics unless OTEL_EXPORTER_OTLP_METRICS_ENDPOINT says otherwise.",
    ),
    s(
        "OTEL_METRIC_EXPORT_INTERVAL",
        "60000",
        "Interval between OTLP metrics exports, in ms.",
    ),
    s(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "",
        "PEM CA bundle for an https:// collector.",
    ),
    s(
        "OTEL_TRACES_SAMPLER_ARG",
        "1.0",
        "Fraction of root spans sampled (0.0 to 1.0).",
    ),
    s(
        "OTEL_BSP_SCHEDULE_DELAY",
        "5000",
        "Longest a finished span waits before its batch is exported, in ms.",
    ),
    s(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "512",
        "Spans per export request.",
    ),
    s(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "2048",
        "Finished spans waiting for export; beyond it new spans are dropped and counted.",
    ),
    s(
        "HEALTH_CHECK_INTERVAL_MS",
        "10000",
        "How often each health check runs (workspace, disk, memory, pool, trace exporter).",
    ),
];

/// A setting was given a value it cannot take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name (or the flag/file that was wrong).
    pub setting: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Where an effective value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The `--config` file.
    File,
    /// An environment variable.
    Env,
    /// A command-line flag.
    Flag,
}

/// The raw effective values, before typing.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Raw {
    /// Merges defaults, `file` (JSON text), `env` and `flags` (`NAME` → value).
    ///
    /// # Errors
    /// An unknown name in the file or flags, or a file that is not a JSON object.
    pub fn merge(
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &[(String, String)],
    ) -> Result<Raw, ConfigError> {
        let mut values = BTreeMap::new();
        for st in SETTINGS {
            values.insert(st.name, (st.default.to_string(), Origin::Default));
        }
        if let Some(text) = file {
            let v: Value = serde_json::from_str(text).map_err(|e| ConfigError {
                setting: "--config".into(),
                reason: format!("not JSON: {e}"),
            })?;
            let Value::Object(map) = v else {
                return Err(ConfigError {
                    setting: "--config".into(),
                    reason: "must be a JSON object".into(),
                });
            };
            for (k, v) in map {
                let st = lookup(&k).ok_or_else(|| ConfigError {
                    setting: k.clone(),
                    reason: "unknown setting in the config file".into(),
                })?;
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                values.insert(st.name, (text, Origin::File));
            }
        }
        for st in SETTINGS {
            if let Some(v) = env(st.name) {
                values.insert(st.name, (v, Origin::Env));
            }
        }
        for (k, v) in flags {
            let st = lookup(k).ok_or_else(|| ConfigError {
                setting: k.clone(),
                reason: "unknown flag".into(),
            })?;
            values.insert(st.name, (v.clone(), Origin::Flag));
        }
        Ok(Raw { values })
    }

    /// The effective text of a setting.
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |(v, _)| v.as_str())
    }

    /// Where it came from.
    pub fn origin(&self, name: &str) -> Origin {
        self.values.get(name).map_or(Origin::Default, |(_, o)| *o)
    }
}

fn lookup(name: &str) -> Option<&'static Setting> {
    let upper = name
        .trim_start_matches("--")
        .replace('-', "_")
        .to_ascii_uppercase();
    SETTINGS.iter().find(|s| s.name == upper)
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// MCP session handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// No Mcp-Session-Id; every request self-contained.
    Stateless,
    /// Signed session ids, GET stream, DELETE.
    Stateful,
}

/// The typed configuration, parsed once and shared as `Arc<Config>`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub host: IpAddr,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// The repository root.
    pub root: PathBuf,
    /// `STATE_DIR` as set; [`Config::state_dir`] resolves the default.
    pub state_dir_setting: Option<PathBuf>,
    /// Certificate chain path.
    pub tls_cert: Option<PathBuf>,
    /// Private key path.
    pub tls_key: Option<PathBuf>,
    /// CA bundle the `healthcheck` subcommand trusts (`TLS_CA`).
    pub tls_ca: Option<PathBuf>,
    /// Refuse TLS 1.2 when true.
    pub tls13_only: bool,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Raw tokens from AUTH_TOKENS (secret; never logged).
    pub auth_tokens: Vec<String>,
    /// AUTH_TOKENS_FILE.
    pub auth_tokens_file: Option<PathBuf>,
    /// ALLOW_QUERY_TOKEN.
    pub allow_query_token: bool,
    /// ALLOWED_ORIGINS.
    pub allowed_origins: Vec<String>,
    /// ALLOWED_HOSTS (empty = derived from the bind address).
    pub allowed_hosts: Vec<String>,
    /// OAUTH_RESOURCE_METADATA.
    pub oauth_resource_metadata: Option<String>,
    /// Requests per minute (0 = unlimited).
    pub rate_limit_per_min: u32,
    /// Bucket size.
    pub rate_limit_burst: u32,
    /// Most buckets in memory.
    pub rate_limit_max_keys: usize,
    /// `RATE_LIMIT_HOLD_MS`: how long at most a connection that just got a 429 waits before its
    /// next request is read (a client ignoring Retry-After then costs no CPU while it waits).
    pub rate_limit_hold: Duration,
    /// Redis URL for shared limits.
    pub rate_limit_redis_url: Option<String>,
    /// Fail open (true) or closed when Redis is down.
    pub rate_limit_redis_fail_open: bool,
    /// IP_ALLOW CIDRs (text; parsed by the security layer).
    pub ip_allow: Vec<String>,
    /// IP_DENY CIDRs.
    pub ip_deny: Vec<String>,
    /// TRUSTED_PROXIES CIDRs.
    pub trusted_proxies: Vec<String>,
    /// Connection cap.
    pub max_connections: usize,
    /// Per-IP connection cap.
    pub max_connections_per_ip: usize,
    /// Stream cap.
    pub max_streams: usize,
    /// Requests in flight cap.
    pub max_in_flight: usize,
    /// Worker thread cap.
    pub worker_threads: usize,
    /// Workers taking ready connections while none is stuck; 0 for one per CPU.
    pub active_workers: usize,
    /// Head size cap.
    pub max_header_bytes: usize,
    /// Header count cap.
    pub max_headers: usize,
    /// Body size cap.
    pub max_body_bytes: u64,
    /// Head deadline.
    pub header_timeout: Duration,
    /// Body deadline.
    pub body_timeout: Duration,
    /// Keep-alive idle deadline.
    pub idle_timeout: Duration,
    /// Socket write timeout.
    pub write_timeout: Duration,
    /// Drain deadline.
    pub shutdown_grace: Duration,
    /// SSE keep-alive interval.
    pub heartbeat: Duration,
    /// Largest tool result in bytes.
    pub max_response_bytes: usize,
    /// Oldest a legacy stream may get.
    pub max_stream_age: Duration,
    /// `CLIENT_REQUEST_TIMEOUT_MS`: how long a tool waits for the client's answer to a request.
    pub client_request_timeout: Duration,
    /// `MAX_SUBSCRIPTIONS`: resource subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// Session mode.
    pub sessions: Sessions,
    /// Offer the test tools.
    pub enable_test_tools: bool,
    /// Log filter.
    pub log_level: String,
    /// Log format (auto already resolved).
    pub log_format: LogFormat,
    /// Audit file.
    pub audit_log: Option<PathBuf>,
    /// Audit rotation size.
    pub audit_log_max_bytes: u64,
    /// Serve plain-HTTP metrics.
    pub enable_prometheus: bool,
    /// Metrics listener address.
    pub prometheus_host: IpAddr,
    /// Metrics listener port.
    pub prometheus_port: u16,
    /// Serve /debug/vars.
    pub debug_endpoints: bool,
    /// Export traces.
    pub otel_enabled: bool,
    /// service.name.
    pub otel_service_name: String,
    /// OTLP traces endpoint.
    pub otel_endpoint: String,
    /// Where metrics are pushed as OTLP/HTTP JSON (the metrics endpoint, else the generic base
    /// plus `/v1/metrics`); `None`: no push.
    pub otel_metrics_endpoint: Option<String>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub otel_metric_interval: Duration,
    /// CA bundle for the collector.
    pub otel_certificate: Option<PathBuf>,
    /// Root sampling ratio.
    pub otel_sample_ratio: f64,
    /// Longest a finished span waits for its batch.
    pub otel_batch_delay: Duration,
    /// Spans per export request (at least 1).
    pub otel_batch_spans: usize,
    /// Finished spans queued for export (at least 1).
    pub otel_queue_spans: usize,
    /// Period of every health check.
    pub health_check_interval: Duration,
}

impl Config {
    /// Loads the configuration from the `--config` file, the environment and `args` (flags), as
    /// every subcommand does.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn load(args: &[String]) -> Result<(Config, Raw), ConfigError> {
        let (file, flags) = Config::split_flags(args)?;
        let text = match &file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ConfigError {
                setting: "--config".into(),
                reason: format!("{}: {e}", p.display()),
            })?),
            None => None,
        };
        let raw = Raw::merge(text.as_deref(), &|k| std::env::var(k).ok(), &flags)?;
        let cfg = Config::from_raw(&raw, std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
        Ok((cfg, raw))
    }

    /// Where generated state lives (see `STATE_DIR`): the setting, else an existing
    /// `$TASK_MCP_ROOT/.task-mcp`, else a per-repository folder under the user's state directory,
    /// so a first run writes nothing into the repository (where a key or token could be
    /// committed by mistake).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir_with(&|k| std::env::var(k).ok())
    }

    /// [`Config::state_dir`] with the environment given.
    pub fn state_dir_with(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(dir) = &self.state_dir_setting {
            return dir.clone();
        }
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let in_repo = root.join(".task-mcp");
        if in_repo.is_dir() {
            return in_repo;
        }
        let base = match (env("XDG_STATE_HOME"), env("HOME")) {
            (Some(x), _) if !x.is_empty() => PathBuf::from(x),
            (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".local/state"),
            // No home to keep it in: the repository it is.
            _ => return in_repo,
        };
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let digest =
            ring::digest::digest(&ring::digest::SHA256, root.as_os_str().as_encoded_bytes());
        let hash: String = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        base.join("task-mcp").join(format!("{name}-{hash}"))
    }

    /// The built-in defaults of [`SETTINGS`], typed: the one source of every default. Module
    /// `Default` impls read it rather than restating a value.
    pub fn defaults() -> Config {
        // unwrap: the built-in table parses with no sources (tests::defaults_are_valid_and_safe).
        let raw = Raw::merge(None, &|_| None, &[]).unwrap();
        Config::from_raw(&raw, false).unwrap()
    }

    /// Types every raw value.
    ///
    /// # Errors
    /// The first setting whose value is invalid, named, with the reason.
    pub fn from_raw(raw: &Raw, stderr_is_terminal: bool) -> Result<Config, ConfigError> {
        let p = Parser { raw };
        let handshake = p.millis("TLS_HANDSHAKE_TIMEOUT_MS", 1, 600_000)?;
        let tls13_only = match raw.get("TLS_MIN_VERSION") {
            "1.2" => false,
            "1.3" => true,
            other => return Err(p.err("TLS_MIN_VERSION", format!("`{other}` is not 1.2 or 1.3"))),
        };
        let log_format = match raw.get("LOG_FORMAT") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            "auto" | "" => {
                if stderr_is_terminal {
                    LogFormat::Text
                } else {
                    LogFormat::Json
                }
            }
            other => {
                return Err(p.err("LOG_FORMAT", format!("`{other}` is not json, text or auto")));
            }
        };
        let sessions = match raw.get("MCP_SESSIONS") {
            "stateless" | "" => Sessions::Stateless,
            "stateful" => Sessions::Stateful,
            other => {
                return Err(p.err(
                    "MCP_SESSIONS",
                    format!("`{other}` is not stateless or stateful"),
                ));
            }
        };
        let fail_open = match raw.get("RATE_LIMIT_REDIS_FAIL") {
            "open" => true,
            "closed" => false,
            other => {
                return Err(p.err(
                    "RATE_LIMIT_REDIS_FAIL",
                    format!("`{other}` is not open or closed"),
                ));
            }
        };
        let ratio: f64 = raw
            .get("OTEL_TRACES_SAMPLER_ARG")
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                p.err(
                    "OTEL_TRACES_SAMPLER_ARG",
                    "must be a number from 0.0 to 1.0".into(),
                )
            })?;
        let max_response_kb = p.int("MAX_RESPONSE_SIZE_KB", 1, 1 << 20)?;
        let cfg = Config {
            host: p.ip("HOST")?,
            port: p.int("PORT", 0, 65_535)? as u16,
            root: PathBuf::from(p.nonempty("TASK_MCP_ROOT")?),
            state_dir_setting: p.path("STATE_DIR"),
            tls_cert: p.path("TLS_CERT"),
            tls_key: p.path("TLS_KEY"),
            tls_ca: p.path("TLS_CA"),
            tls13_only,
            handshake_timeout: handshake,
            auth_tokens: p.list("AUTH_TOKENS"),
            auth_tokens_file: p.path("AUTH_TOKENS_FILE"),
            allow_query_token: p.bool("ALLOW_QUERY_TOKEN")?,
            allowed_origins: p.list("ALLOWED_ORIGINS"),
            allowed_hosts: p.list("ALLOWED_HOSTS"),
            oauth_resource_metadata: p.opt("OAUTH_RESOURCE_METADATA"),
            rate_limit_per_min: p.int("RATE_LIMIT", 0, 10_000_000)? as u32,
            rate_limit_burst: p.int("RATE_LIMIT_BURST", 1, 10_000_000)? as u32,
            rate_limit_max_keys: p.int("RATE_LIMIT_MAX_KEYS", 16, 100_000_000)? as usize,
            rate_limit_hold: p.millis("RATE_LIMIT_HOLD_MS", 0, 60_000)?,
            rate_limit_redis_url: p.opt("RATE_LIMIT_REDIS_URL"),
            rate_limit_redis_fail_open: fail_open,
            ip_allow: p.list("IP_ALLOW"),
            ip_deny: p.list("IP_DENY"),
            trusted_proxies: p.list("TRUSTED_PROXIES"),
            max_connections: p.int("MAX_CONNECTIONS", 1, 10_000_000)? as usize,
            max_connections_per_ip: p.int("MAX_CONNECTIONS_PER_IP", 1, 10_000_000)? as usize,
            max_streams: p.int("MAX_STREAMS", 0, 10_000_000)? as usize,
            max_in_flight: p.int("MAX_IN_FLIGHT", 1, 10_000_000)? as usize,
            worker_threads: p.int("WORKER_THREADS", 2, 100_000)? as usize,
            active_workers: p.int("ACTIVE_WORKERS", 0, 100_000)? as usize,
            max_header_bytes: p.int("MAX_HEADER_BYTES", 256, 1 << 24)? as usize,
            max_headers: p.int("MAX_HEADERS", 4, 10_000)? as usize,
            max_body_bytes: p.int("MAX_BODY_BYTES", 0, 1 << 40)?,
            header_timeout: p.millis("HEADER_TIMEOUT_MS", 1, 3_600_000)?,
            body_timeout: p.millis("BODY_TIMEOUT_MS", 1, 3_600_000)?,
            idle_timeout: p.millis("IDLE_TIMEOUT_MS", 1, 86_400_000)?,
            write_timeout: p.millis("WRITE_TIMEOUT_MS", 1, 3_600_000)?,
            shutdown_grace: p.millis("SHUTDOWN_GRACE_MS", 0, 3_600_000)?,
            heartbeat: p.millis("HEARTBEAT_MS", 10, 3_600_000)?,
            max_response_bytes: (max_response_kb * 1024) as usize,
            max_stream_age: p.millis("MAX_STREAM_AGE_MS", 1000, u64::MAX / 2)?,
            client_request_timeout: p.millis("CLIENT_REQUEST_TIMEOUT_MS", 100, 3_600_000)?,
            max_subscriptions: p.int("MAX_SUBSCRIPTIONS", 1, 100_000)? as usize,
            sessions,
            enable_test_tools: p.bool("ENABLE_TEST_TOOLS")?,
            log_level: raw.get("LOG_LEVEL").to_string(),
            log_format,
            audit_log: p.path("AUDIT_LOG"),
            audit_log_max_bytes: p.int("AUDIT_LOG_MAX_BYTES", 4096, 1 << 40)?,
            enable_prometheus: p.bool("ENABLE_PROMETHEUS")?,
            prometheus_host: p.ip("PROMETHEUS_HOST")?,
            prometheus_port: p.int("PROMETHEUS_PORT", 0, 65_535)? as u16,
            debug_endpoints: p.bool("DEBUG_ENDPOINTS")?,
            otel_enabled: p.bool("OTEL_ENABLED")?,
            otel_service_name: p.nonempty("OTEL_SERVICE_NAME")?.to_string(),
            otel_endpoint: raw.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").to_string(),
            otel_metrics_endpoint: metrics_endpoint(
                raw.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
                raw.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ),
            otel_metric_interval: p.millis("OTEL_METRIC_EXPORT_INTERVAL", 100, 86_400_000)?,
            otel_certificate: p.path("OTEL_EXPORTER_OTLP_CERTIFICATE"),
            otel_sample_ratio: ratio,
            otel_batch_delay: p.millis("OTEL_BSP_SCHEDULE_DELAY", 1, 3_600_000)?,
            otel_batch_spans: p.int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 1_000_000)? as usize,
            otel_queue_spans: p.int("OTEL_BSP_MAX_QUEUE_SIZE", 1, 10_000_000)? as usize,
            health_check_interval: p.millis("HEALTH_CHECK_INTERVAL_MS", 100, 3_600_000)?,
        };
        if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
            return Err(p.err(
                "TLS_CERT",
                "TLS_CERT and TLS_KEY must be set together".into(),
            ));
        }
        if cfg.otel_enabled
            && !(cfg.otel_endpoint.starts_with("http://")
                || cfg.otel_endpoint.starts_with("https://"))
        {
            return Err(p.err(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "must be an http:// or https:// URL".into(),
            ));
        }
        if let Some(url) = &cfg.otel_metrics_endpoint
            && crate::net::client::Endpoint::parse(url).is_err()
        {
            return Err(p.err(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                format!("{url} is not an http:// or https:// URL"),
            ));
        }
        Ok(cfg)
    }

    /// Parses `argv`-style flags (`--name value` or `--name=value`) into `NAME`/value pairs,
    /// returning the `--config` path separately.
    ///
    /// # Errors
    /// A flag with no value.
    pub fn split_flags(
        args: &[String],
    ) -> Result<(Option<PathBuf>, Vec<(String, String)>), ConfigError> {
        let mut file = None;
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(ConfigError {
                    setting: a.clone(),
                    reason: "unexpected argument".into(),
                });
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| ConfigError {
                        setting: a.clone(),
                        reason: "needs a value".into(),
                    })?;
                    (name.to_string(), v.clone())
                }
            };
            if name == "config" {
                file = Some(PathBuf::from(value));
            } else {
                flags.push((name, value));
            }
        }
        Ok((file, flags))
    }

    /// The effective configuration as `NAME=value (origin)` lines, secrets redacted.
    pub fn describe(raw: &Raw) -> String {
        let mut out = String::new();
        for st in SETTINGS {
            let v = raw.get(st.name);
            let shown = if st.secret && !v.is_empty() {
                "<redacted>".to_string()
            } else {
                v.to_string()
            };
            let origin = match raw.origin(st.name) {
                Origin::Default => "default",
                Origin::File => "file",
                Origin::Env => "env",
                Origin::Flag => "flag",
            };
            out.push_str(&format!("{}={} ({})\n", st.name, shown, origin));
        }
        out
    }
}

struct Parser<'a> {
    raw: &'a Raw,
}

impl Parser<'_> {
    fn err(&self, name: &str, reason: String) -> ConfigError {
        ConfigError {
            setting: name.to_string(),
            reason,
        }
    }

    fn int(&self, name: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let v = self.raw.get(name).trim().replace('_', "");
        let n: u64 = v
            .parse()
            .map_err(|_| self.err(name, format!("`{v}` is not a whole number")))?;
        if n < min || n > max {
            return Err(self.err(name, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    fn millis(&self, name: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.int(name, min, max)?))
    }

    fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.raw.get(name).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            other => Err(self.err(name, format!("`{other}` is not true or false"))),
        }
    }

    fn ip(&self, name: &str) -> Result<IpAddr, ConfigError> {
        let v = self.raw.get(name).trim();
        if v == "localhost" {
            return Ok(IpAddr::from([127, 0, 0, 1]));
        }
        v.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| self.err(name, format!("`{v}` is not an IP address")))
    }

    fn nonempty(&self, name: &str) -> Result<&str, ConfigError> {
        let v = self.raw.get(name);
        if v.trim().is_empty() {
            Err(self.err(name, "must not be empty".into()))
        } else {
            Ok(v)
        }
    }

    fn opt(&self, name: &str) -> Option<String> {
        let v = self.raw.get(name).trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.opt(name).map(PathBuf::from)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.raw
            .get(name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The metrics push URL: the metrics endpoint, else the generic base with `/v1/metrics`.
fn metrics_endpoint(specific: &str, base: &str) -> Option<String> {
    let (specific, base) = (specific.trim(), base.trim());
    if !specific.is_empty() {
        Some(specific.to_owned())
    } else if !base.is_empty() {
        Some(format!("{}/v1/metrics", base.trim_end_matches('/')))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let raw = Raw::merge(
            file,
            &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            &flags,
        )?;
        Config::from_raw(&raw, false)
    }

    #[test]
    fn defaults_are_valid_and_safe() {
        let c = load(None, &[], &[]).unwrap();
        assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.port, 8443);
        assert_eq!(c.sessions, Sessions::Stateless);
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.log_format, LogFormat::Json);
        // One client address cannot hold more than an eighth of the workers.
        assert!(c.max_connections_per_ip * 8 <= c.worker_threads);
    }

    #[test]
    fn flags_override_env_which_overrides_the_file() {
        let c = load(
            Some(r#"{"PORT": 1, "RATE_LIMIT": 5, "HOST": "::1"}"#),
            &[("PORT", "2")],
            &[("port", "3")],
        )
        .unwrap();
        assert_eq!(c.port, 3);
        assert_eq!(c.rate_limit_per_min, 5);
        assert_eq!(c.host, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = load(None, &[("MAX_CONNECTIONS", "lots")], &[]).unwrap_err();
        assert_eq!(e.setting, "MAX_CONNECTIONS");
        let e = load(None, &[("HEARTBEAT_MS", "1")], &[]).unwrap_err();
        assert_eq!(e.setting, "HEARTBEAT_MS");
        let e = load(Some(r#"{"NOPE": 1}"#), &[], &[]).unwrap_err();
        assert_eq!(e.setting, "NOPE");
        let e = load(None, &[("TLS_CERT", "/x")], &[]).unwrap_err();
        assert_eq!(e.setting, "TLS_CERT");
        let e = load(None, &[], &[("max-bodyy", "1")]).unwrap_err();
        assert_eq!(e.setting, "max-bodyy");
    }

    #[test]
    fn secrets_are_redacted_in_the_description() {
        let raw = Raw::merge(
            None,
            &|k| (k == "AUTH_TOKENS").then(|| "s3cret".to_string()),
            &[],
        )
        .unwrap();
        let d = Config::describe(&raw);
        assert!(!d.contains("s3cret"));
        assert!(d.contains("AUTH_TOKENS=<redacted> (env)"));
    }

    #[test]
    fn flags_split_both_forms() {
        let args: Vec<String> = ["--port", "9", "--config=/c.json", "--log-level=debug"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (file, flags) = Config::split_flags(&args).unwrap();
        assert_eq!(file, Some(PathBuf::from("/c.json")));
        assert_eq!(
            flags,
            vec![
                ("port".into(), "9".into()),
                ("log-level".into(), "debug".into())
            ]
        );
    }

    #[test]
    fn every_setting_name_is_unique() {
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
    }
}

#[cfg(test)]
mod readme {
    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for s in super::SETTINGS {
            assert!(
                readme.contains(&format!("| `{}` |", s.name)),
                "README lacks {}",
                s.name
            );
        }
    }
}
