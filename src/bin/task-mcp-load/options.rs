//! Command-line options: parsed once into types, with every default in [`Options::default`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// MCP `ping` over `POST /mcp`.
    Ping,
    /// MCP `tools/call` over `POST /mcp`.
    Call,
    /// The seed NDJSON API: `POST /mcp` with `{"tool","input"}`.
    SeedNdjson,
    /// The seed SSE API: `POST /sse` with `{"tool","input"}`.
    SeedSse,
    /// Hold many legacy `GET /sse` streams and check their heartbeats.
    Streams,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ping => "ping",
            Mode::Call => "call",
            Mode::SeedNdjson => "seed-ndjson",
            Mode::SeedSse => "seed-sse",
            Mode::Streams => "streams",
        }
    }
}

/// Where to connect and how.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// The host part, for SNI and the `Host` header.
    pub host: String,
    /// Speak TLS (`https://`).
    pub tls: bool,
    /// The path of the URL (`/mcp` when the URL has none).
    pub path: Option<String>,
}

/// Every option of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// What to send.
    pub mode: Mode,
    /// The server.
    pub target: Target,
    /// Keep-alive connections (request modes) or streams (streams mode).
    pub connections: usize,
    /// Client threads; the connections are shared out among them.
    pub threads: usize,
    /// How long to measure (request modes) or hold (streams mode).
    pub duration: Duration,
    /// Stop after this many requests instead of after `duration`.
    pub requests: Option<u64>,
    /// Load sent before measuring starts; its requests are not counted.
    pub warmup: Duration,
    /// A request that takes longer fails as `timeout`.
    pub timeout: Duration,
    /// Bearer token.
    pub token: Option<String>,
    /// PEM file of the CA (or the self-signed certificate) to trust.
    pub ca: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
    /// Ask for SSE answers (`Accept: text/event-stream` only).
    pub sse: bool,
    /// Add `_meta.progressToken` to the request (SSE answers for a tool that reports progress).
    pub progress: bool,
    /// Open a new TLS connection for every request (handshake rate).
    pub new_conn: bool,
    /// The tool for `call` and the seed modes.
    pub tool: String,
    /// The tool's arguments, as JSON.
    pub args: String,
    /// A request body that replaces the one the mode builds.
    pub body: Option<String>,
    /// `MCP-Protocol-Version` header value (empty: none sent).
    pub protocol_version: String,
    /// Extra request headers (`--header "Name: value"`, repeatable).
    pub headers: Vec<(String, String)>,
    /// Print one JSON document instead of text.
    pub json: bool,
    /// Streams mode: the heartbeat interval the server was started with.
    pub heartbeat: Duration,
    /// Streams mode: streams being opened at once.
    pub open_concurrency: usize,
    /// Request modes: connections opened first, each answered once, then held idle.
    pub idle: usize,
    /// Streams mode: MCP GET streams of stateful sessions instead of legacy `GET /sse`.
    pub mcp_get: bool,
    /// Streams mode: read the server's memory from `/proc/PID/status`.
    pub server_pid: Option<u32>,
    /// Streams mode: read `process_resident_memory_bytes` from this URL instead.
    pub metrics_url: Option<String>,
}

/// A command line that cannot be run.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Ping,
            target: Target {
                authority: "127.0.0.1:8443".into(),
                host: "127.0.0.1".into(),
                tls: true,
                path: None,
            },
            connections: 32,
            threads: 1,
            duration: Duration::from_secs(10),
            requests: None,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(10),
            token: None,
            ca: None,
            insecure: false,
            sse: false,
            progress: false,
            new_conn: false,
            tool: "echo".into(),
            args: r#"{"text":"hi"}"#.into(),
            body: None,
            protocol_version: "2025-06-18".into(),
            headers: Vec::new(),
            json: false,
            heartbeat: Duration::from_secs(15),
            open_concurrency: 64,
            idle: 0,
            mcp_get: false,
            server_pid: None,
            metrics_url: None,
        }
    }
}

impl Options {
    /// Parses `args` (without the program name).
    ///
    /// # Errors
    /// An unknown mode or option, a missing or malformed value.
    pub fn parse(args: &[String]) -> Result<Options, UsageError> {
        let mut o = Options::default();
        if let Ok(t) = std::env::var("TASK_MCP_TOKEN")
            && !t.is_empty()
        {
            o.token = Some(t);
        }
        let mut it = args.iter();
        let mode = it
            .next()
            .ok_or_else(|| UsageError("a mode is required".into()))?;
        o.mode = match mode.as_str() {
            "ping" => Mode::Ping,
            "call" => Mode::Call,
            "seed-ndjson" => Mode::SeedNdjson,
            "seed-sse" => Mode::SeedSse,
            "streams" => Mode::Streams,
            other => return Err(UsageError(format!("unknown mode `{other}`"))),
        };
        let mut connections_set = false;
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String, UsageError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| UsageError(format!("{name} needs a value"))),
                }
            };
            match name {
                "--url" | "-u" => o.target = parse_url(&value()?)?,
                "--connections" | "-c" | "--streams" => {
                    o.connections = number(name, &value()?)?;
                    connections_set = true;
                }
                "--threads" | "-t" => o.threads = number(name, &value()?)?.max(1),
                "--duration" | "-d" | "--hold" => o.duration = duration(name, &value()?)?,
                "--requests" | "-n" => o.requests = Some(number(name, &value()?)? as u64),
                "--warmup" => o.warmup = duration(name, &value()?)?,
                "--timeout" => o.timeout = duration(name, &value()?)?,
                "--token" => o.token = Some(value()?),
                "--ca" => o.ca = Some(PathBuf::from(value()?)),
                "--insecure" | "-k" => o.insecure = true,
                "--sse" => o.sse = true,
                "--progress" => o.progress = true,
                "--new-conn" => o.new_conn = true,
                "--tool" => o.tool = value()?,
                "--args" => {
                    let v = value()?;
                    serde_json::from_str::<serde_json::Value>(&v)
                        .map_err(|e| UsageError(format!("--args is not JSON: {e}")))?;
                    o.args = v;
                }
                "--body" => o.body = Some(value()?),
                "--protocol-version" => o.protocol_version = value()?,
                "--header" | "-H" => {
                    let v = value()?;
                    let Some((n, val)) = v.split_once(':') else {
                        return Err(UsageError(format!("--header `{v}`: use \"Name: value\"")));
                    };
                    o.headers
                        .push((n.trim().to_string(), val.trim().to_string()));
                }
                "--json" => o.json = true,
                "--heartbeat" | "--heartbeat-ms" => {
                    let v = value()?;
                    o.heartbeat = if name == "--heartbeat-ms" {
                        Duration::from_millis(number(name, &v)? as u64)
                    } else {
                        duration(name, &v)?
                    };
                }
                "--idle" => o.idle = number(name, &value()?)?,
                "--mcp-get" => o.mcp_get = true,
                "--open-concurrency" => o.open_concurrency = number(name, &value()?)?.max(1),
                "--server-pid" => o.server_pid = Some(number(name, &value()?)? as u32),
                "--metrics-url" => o.metrics_url = Some(value()?),
                other => return Err(UsageError(format!("unknown option `{other}`"))),
            }
        }
        if o.mode == Mode::Streams && !connections_set {
            o.connections = 1000;
        }
        if o.connections == 0 {
            return Err(UsageError("--connections must be at least 1".into()));
        }
        if o.target.tls && o.ca.is_none() && !o.insecure {
            return Err(UsageError(
                "an https:// URL needs --ca FILE (the server's certificate or CA) or --insecure"
                    .into(),
            ));
        }
        Ok(o)
    }

    /// The request path: the URL's, else the one the mode uses.
    pub fn path(&self) -> &str {
        match (&self.target.path, self.mode) {
            (Some(p), _) => p,
            (None, Mode::Streams) if self.mcp_get => "/mcp",
            (None, Mode::SeedSse | Mode::Streams) => "/sse",
            (None, _) => "/mcp",
        }
    }
}

/// `https://host:port/path` (or `http://`) into a [`Target`].
///
/// # Errors
/// Another scheme, or no host.
pub fn parse_url(url: &str) -> Result<Target, UsageError> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(UsageError(format!("{url}: only http:// and https:// URLs")));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let path = path.filter(|p| p != "/");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    if host.is_empty() {
        return Err(UsageError(format!("{url}: no host")));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    Ok(Target {
        authority,
        host,
        tls,
        path,
    })
}

fn number(name: &str, v: &str) -> Result<usize, UsageError> {
    v.replace('_', "")
        .parse()
        .map_err(|_| UsageError(format!("{name}: `{v}` is not a whole number")))
}

/// `10s`, `500ms`, `2m`, or a plain number of seconds.
fn duration(name: &str, v: &str) -> Result<Duration, UsageError> {
    let bad = || UsageError(format!("{name}: `{v}` is not a duration (10s, 500ms, 2m)"));
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn urls_give_authority_host_and_path() {
        let t = parse_url("https://127.0.0.1:8443/mcp").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.host.as_str(), t.tls),
            ("127.0.0.1:8443", "127.0.0.1", true)
        );
        assert_eq!(t.path.as_deref(), Some("/mcp"));
        let t = parse_url("http://localhost").unwrap();
        assert_eq!(t.authority, "localhost:80");
        assert_eq!(t.path, None);
        let t = parse_url("https://[::1]:9/").unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str()), ("[::1]:9", "::1"));
        assert!(parse_url("ftp://x").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("d", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("d", "3").unwrap(), Duration::from_secs(3));
        assert_eq!(duration("d", "2m").unwrap(), Duration::from_secs(120));
        assert!(duration("d", "2h").is_err());
    }

    #[test]
    fn https_without_a_ca_or_insecure_is_refused() {
        assert!(Options::parse(&args("ping --url https://127.0.0.1:1")).is_err());
        let o = Options::parse(&args("ping --url https://127.0.0.1:1 -k -c 4")).unwrap();
        assert_eq!(o.connections, 4);
        assert_eq!(o.path(), "/mcp");
    }

    #[test]
    fn extra_headers_are_name_value_pairs() {
        let mut a = args("call --url http://127.0.0.1:1");
        a.extend(["-H".into(), "X-Forwarded-For: 10.0.0.7".into()]);
        let o = Options::parse(&a).unwrap();
        assert_eq!(
            o.headers,
            vec![("X-Forwarded-For".into(), "10.0.0.7".into())]
        );
        a.extend(["--header".into(), "novalue".into()]);
        assert!(Options::parse(&a).is_err());
    }

    #[test]
    fn streams_mode_defaults_to_a_thousand_streams_on_sse() {
        let o =
            Options::parse(&args("streams --url http://127.0.0.1:1 --heartbeat-ms 200")).unwrap();
        assert_eq!(o.connections, 1000);
        assert_eq!(o.heartbeat, Duration::from_millis(200));
        assert_eq!(o.path(), "/sse");
    }
}
