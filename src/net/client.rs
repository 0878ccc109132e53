//! The server's one outgoing HTTP/1.1 client, for one-shot requests: the OTLP exporters' POSTs
//! and the `healthcheck` command's GET. A sans-IO core (endpoint parsing, request encoding,
//! response-head parsing) and a thin blocking shell over `TcpStream`, with rustls for
//! `https://`. (The load tool drives many connections without blocking, so it keeps its own
//! loop, over the same chunked decoder from `crate::http::body`.)
//!
//! TLS policy: `https://` needs an explicit CA bundle (for OTLP `OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! a PEM file) or a client configuration its caller built (the health check's); without one,
//! [`HttpClient::new`] refuses the endpoint rather than trusting nothing or everything. Plain
//! `http://` needs no CA and is meant for a collector on localhost or a sidecar.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS via rustls.
    Https,
}

/// A parsed collector URL.
///
/// Invariants: `host` is non-empty (IPv6 literals without brackets); `path` starts with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The scheme.
    pub scheme: Scheme,
    /// Host name or IP literal.
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path and query, e.g. `/v1/traces`.
    pub path: String,
}

/// Socket timeouts for one export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Per address tried.
    pub connect: Duration,
    /// Per `write` call.
    pub write: Duration,
    /// Per `read` call.
    pub read: Duration,
    /// The whole exchange, from connect to status line; a collector dribbling bytes is cut off.
    pub total: Duration,
}

/// Posts bodies to one endpoint, a fresh connection each time (`Connection: close`): exports are
/// batched seconds apart, so keep-alive would save little and add a stale-connection state.
#[derive(Clone)]
pub struct HttpClient {
    endpoint: Endpoint,
    /// Present iff the scheme is https.
    tls: Option<Arc<ClientConfig>>,
    timeouts: Timeouts,
}

/// Why an endpoint URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// Neither `http://` nor `https://`.
    UnsupportedScheme,
    /// No host, or a malformed IPv6 literal.
    MissingHost,
    /// `user:pass@host` is not accepted (secrets do not belong in URLs).
    UserInfo,
    /// The port is not a number in 1..=65535.
    InvalidPort,
    /// Whitespace or control characters in the URL.
    InvalidCharacter,
}

/// Why one export failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint URL is invalid.
    Endpoint(EndpointError),
    /// `https://` without a CA file.
    TlsNeedsCaFile,
    /// The CA file could not be read or held no certificate.
    CaFile(String),
    /// rustls refused the configuration or the handshake.
    Tls(rustls::Error),
    /// Name resolution failed or gave no address.
    Resolve(io::Error),
    /// No address accepted a connection.
    Connect(io::Error),
    /// Writing the request failed (including write timeouts).
    Write(io::Error),
    /// Reading the response failed (including read timeouts).
    Read(io::Error),
    /// The whole exchange took longer than [`Timeouts::total`].
    Deadline,
    /// The peer closed before a full response head.
    ClosedEarly,
    /// The response head exceeded `MAX_RESPONSE_HEAD_BYTES`.
    ResponseHeadTooLarge,
    /// The response head is not valid HTTP/1.x.
    MalformedResponse,
    /// The collector answered with a non-2xx status.
    Status(u16),
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/path]`, e.g. the value of
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as-is; an empty path becomes `/`).
    ///
    /// # Errors
    /// An [`EndpointError`] naming the fault.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let url = url.trim();
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(EndpointError::InvalidCharacter);
        }
        let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (Scheme::Https, rest)
        } else {
            return Err(EndpointError::UnsupportedScheme);
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(EndpointError::UserInfo);
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let close = v6.find(']').ok_or(EndpointError::MissingHost)?;
            (&v6[..close], &v6[close + 1..])
        } else {
            match authority.rfind(':') {
                Some(i) => (&authority[..i], &authority[i..]),
                None => (authority, ""),
            }
        };
        let port = match port {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or(EndpointError::InvalidPort)?,
        };
        if host.is_empty() {
            return Err(EndpointError::MissingHost);
        }
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// Parses a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`) and appends `v1/traces` to its path, as
    /// the OTLP exporter spec says for the non-signal-specific variable.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_base(url: &str) -> Result<Self, EndpointError> {
        Self::parse_base_for(url, "traces")
    }

    /// The endpoint of one signal (`traces`, `metrics`) under a base URL
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`): `<base>/v1/<signal>`.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_base_for(url: &str, signal: &str) -> Result<Self, EndpointError> {
        let mut e = Self::parse(url)?;
        if !e.path.ends_with('/') {
            e.path.push('/');
        }
        e.path.push_str("v1/");
        e.path.push_str(signal);
        Ok(e)
    }

    /// The `Host` header value: brackets around IPv6, the port only when not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = matches!(
            (self.scheme, self.port),
            (Scheme::Http, 80) | (Scheme::Https, 443)
        );
        if default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            write: Duration::from_secs(5),
            read: Duration::from_secs(5),
            total: Duration::from_secs(10),
        }
    }
}

impl HttpClient {
    /// A transport for `endpoint`. For `https://`, `ca_file` (PEM, one or more certificates) is
    /// the only trust anchor set.
    ///
    /// # Errors
    /// [`ClientError::TlsNeedsCaFile`] for https without a CA; [`ClientError::CaFile`] if the
    /// file is unreadable or holds no certificate; [`ClientError::Tls`] if rustls refuses it.
    pub fn new(
        endpoint: Endpoint,
        ca_file: Option<&Path>,
        timeouts: Timeouts,
    ) -> Result<Self, ClientError> {
        let tls = match endpoint.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let path = ca_file.ok_or(ClientError::TlsNeedsCaFile)?;
                Some(Arc::new(client_config(path)?))
            }
        };
        Ok(Self {
            endpoint,
            tls,
            timeouts,
        })
    }

    /// A client for `endpoint` trusting what `tls` (its caller's rustls configuration) trusts;
    /// `None` is refused for `https://`.
    ///
    /// # Errors
    /// [`ClientError::TlsNeedsCaFile`] for https without a configuration.
    pub fn with_tls(
        endpoint: Endpoint,
        tls: Option<Arc<ClientConfig>>,
        timeouts: Timeouts,
    ) -> Result<Self, ClientError> {
        let tls = match endpoint.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(tls.ok_or(ClientError::TlsNeedsCaFile)?),
        };
        Ok(Self {
            endpoint,
            tls,
            timeouts,
        })
    }

    /// The endpoint posted to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// POSTs `body` as `application/json` and returns the 2xx status.
    ///
    /// # Errors
    /// Any [`ClientError`] but the configuration ones; a non-2xx answer is
    /// [`ClientError::Status`].
    pub fn post_json(&self, body: &[u8]) -> Result<u16, ClientError> {
        let mut head = Vec::with_capacity(256);
        encode_request_head(&self.endpoint, body.len(), &mut head);
        let status = self.exchange(&head, body)?;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(ClientError::Status(status))
        }
    }

    /// GETs the endpoint and returns the status, whatever it is.
    ///
    /// # Errors
    /// Any [`ClientError`] but the configuration ones and [`ClientError::Status`].
    pub fn get(&self) -> Result<u16, ClientError> {
        let mut head = Vec::with_capacity(128);
        encode_bodyless_head("GET", &self.endpoint, &mut head);
        self.exchange(&head, &[])
    }

    /// Sends `head` and `body` on a fresh connection and reads the answer's status.
    fn exchange(&self, head: &[u8], body: &[u8]) -> Result<u16, ClientError> {
        let started = Instant::now();
        let tcp = self.connect()?;
        match &self.tls {
            None => exchange(tcp, head, body, started, &self.timeouts),
            Some(config) => {
                let name = ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|_| ClientError::Endpoint(EndpointError::MissingHost))?;
                let conn = ClientConnection::new(config.clone(), name).map_err(ClientError::Tls)?;
                exchange(
                    StreamOwned::new(conn, tcp),
                    head,
                    body,
                    started,
                    &self.timeouts,
                )
            }
        }
    }

    fn connect(&self) -> Result<TcpStream, ClientError> {
        let addrs = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()
            .map_err(ClientError::Resolve)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for collector host");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeouts.connect) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeouts.read))
                        .and_then(|()| s.set_write_timeout(Some(self.timeouts.write)))
                        .map_err(ClientError::Connect)?;
                    // Latency of the one request matters more than packet count here.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(ClientError::Connect(last))
    }
}

impl ClientError {
    /// True when the failure says the collector is down or unreachable (and so should count
    /// towards opening the breaker); a 4xx other than 408/429 means it is up but refused us.
    pub fn is_collector_fault(&self) -> bool {
        match self {
            Self::Status(s) => !(400..500).contains(s) || *s == 408 || *s == 429,
            _ => true,
        }
    }

    /// A short, stable label for metrics and logs (`connect`, `status_503`…).
    pub fn kind(&self) -> String {
        match self {
            Self::Endpoint(_) => "endpoint".into(),
            Self::TlsNeedsCaFile => "tls_needs_ca_file".into(),
            Self::CaFile(_) => "ca_file".into(),
            Self::Tls(_) => "tls".into(),
            Self::Resolve(_) => "resolve".into(),
            Self::Connect(_) => "connect".into(),
            Self::Write(_) => "write".into(),
            Self::Read(_) => "read".into(),
            Self::Deadline => "deadline".into(),
            Self::ClosedEarly => "closed_early".into(),
            Self::ResponseHeadTooLarge => "response_head_too_large".into(),
            Self::MalformedResponse => "malformed_response".into(),
            Self::Status(s) => format!("status_{s}"),
        }
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnsupportedScheme => "endpoint must start with http:// or https://",
            Self::MissingHost => "endpoint has no host",
            Self::UserInfo => "endpoint must not contain user info",
            Self::InvalidPort => "endpoint port is invalid",
            Self::InvalidCharacter => "endpoint contains whitespace or control characters",
        })
    }
}

impl std::error::Error for EndpointError {}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(e) => write!(f, "invalid OTLP endpoint: {e}"),
            Self::TlsNeedsCaFile => {
                f.write_str("https OTLP endpoint needs a CA file (OTEL_EXPORTER_OTLP_CERTIFICATE)")
            }
            Self::CaFile(e) => write!(f, "OTLP CA file: {e}"),
            Self::Tls(e) => write!(f, "OTLP TLS: {e}"),
            Self::Resolve(e) => write!(f, "resolving OTLP collector: {e}"),
            Self::Connect(e) => write!(f, "connecting to OTLP collector: {e}"),
            Self::Write(e) => write!(f, "sending to OTLP collector: {e}"),
            Self::Read(e) => write!(f, "reading OTLP collector response: {e}"),
            Self::Deadline => f.write_str("OTLP export exceeded its total timeout"),
            Self::ClosedEarly => f.write_str("OTLP collector closed before responding"),
            Self::ResponseHeadTooLarge => f.write_str("OTLP collector response head too large"),
            Self::MalformedResponse => f.write_str("OTLP collector sent a malformed response"),
            Self::Status(s) => write!(f, "OTLP collector answered HTTP {s}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Endpoint(e) => Some(e),
            Self::Tls(e) => Some(e),
            Self::Resolve(e) | Self::Connect(e) | Self::Write(e) | Self::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EndpointError> for ClientError {
    fn from(e: EndpointError) -> Self {
        Self::Endpoint(e)
    }
}

/// Appends the request line and headers of a JSON POST with a `body_len`-byte body.
pub fn encode_request_head(endpoint: &Endpoint, body_len: usize, out: &mut Vec<u8>) {
    // `write!` into a Vec cannot fail.
    let _ = write!(
        out,
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: task-mcp/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION"),
        body_len,
    );
}

/// Appends the request line and headers of a body-less request (`Connection: close`).
pub fn encode_bodyless_head(method: &str, endpoint: &Endpoint, out: &mut Vec<u8>) {
    // `write!` into a Vec cannot fail.
    let _ = write!(
        out,
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: task-mcp/{}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
}

/// Parses a response head from the start of `buf`: `Ok(None)` needs more bytes,
/// `Ok(Some((head_len, status)))` when complete.
///
/// # Errors
/// [`ClientError::MalformedResponse`] when the bytes are not an HTTP/1.x response head.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, u16)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            // unwrap-free: a complete parse always sets the code, but stay defensive.
            resp.code
                .map(|c| Some((n, c)))
                .ok_or(ClientError::MalformedResponse)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ClientError::MalformedResponse),
    }
}

fn exchange<S: Read + Write>(
    mut stream: S,
    head: &[u8],
    body: &[u8],
    started: Instant,
    timeouts: &Timeouts,
) -> Result<u16, ClientError> {
    stream
        .write_all(head)
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(ClientError::Write)?;
    if started.elapsed() > timeouts.total {
        return Err(ClientError::Deadline);
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((_, status)) = parse_response_head(&buf)? {
            return Ok(status);
        }
        if buf.len() >= MAX_RESPONSE_HEAD_BYTES {
            return Err(ClientError::ResponseHeadTooLarge);
        }
        if started.elapsed() > timeouts.total {
            return Err(ClientError::Deadline);
        }
        let room = (MAX_RESPONSE_HEAD_BYTES - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(ClientError::ClosedEarly),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Read(e)),
        }
    }
}

fn client_config(ca_file: &Path) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ClientError::CaFile(format!("{}: {e}", ca_file.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| ClientError::CaFile(format!("{}: {e}", ca_file.display())))?;
        roots.add(cert).map_err(ClientError::Tls)?;
    }
    if roots.is_empty() {
        return Err(ClientError::CaFile(format!(
            "{}: no certificate found",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The longest response head read before giving up, in bytes.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;
/// Headers parsed in a response head; more is treated as malformed.
const MAX_RESPONSE_HEADERS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_per_table() {
        let ok = |url: &str, scheme, host: &str, port, path: &str| {
            let e = Endpoint::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(
                (e.scheme, e.host.as_str(), e.port, e.path.as_str()),
                (scheme, host, port, path),
                "{url}"
            );
        };
        ok(
            "http://otel-collector:4318/v1/traces",
            Scheme::Http,
            "otel-collector",
            4318,
            "/v1/traces",
        );
        ok(
            "HTTPS://collector.example",
            Scheme::Https,
            "collector.example",
            443,
            "/",
        );
        ok("http://127.0.0.1", Scheme::Http, "127.0.0.1", 80, "/");
        ok(
            "http://[::1]:4318/v1/traces?x=1#frag",
            Scheme::Http,
            "::1",
            4318,
            "/v1/traces?x=1",
        );
        ok("http://h?x=1", Scheme::Http, "h", 80, "/?x=1");
        let err = |url: &str, want| assert_eq!(Endpoint::parse(url), Err(want), "{url}");
        err("ftp://h/", EndpointError::UnsupportedScheme);
        err("localhost:4318", EndpointError::UnsupportedScheme);
        err("http://", EndpointError::MissingHost);
        err("http://:4318/", EndpointError::MissingHost);
        err("http://[::1/", EndpointError::MissingHost);
        err("http://u:p@h/", EndpointError::UserInfo);
        err("http://h:0/", EndpointError::InvalidPort);
        err("http://h:99999/", EndpointError::InvalidPort);
        err("http://h:x/", EndpointError::InvalidPort);
        err("http://h/a b", EndpointError::InvalidCharacter);
        err("http://h/\r\nX: y", EndpointError::InvalidCharacter);
        err("", EndpointError::UnsupportedScheme);
    }

    #[test]
    fn base_endpoint_gets_the_signal_path() {
        assert_eq!(
            Endpoint::parse_base("http://c:4318").unwrap().path,
            "/v1/traces"
        );
        assert_eq!(
            Endpoint::parse_base("http://c:4318/otlp/").unwrap().path,
            "/otlp/v1/traces"
        );
    }

    #[test]
    fn request_head_is_well_formed_http() {
        let e = Endpoint::parse("http://[::1]:4318/v1/traces").unwrap();
        let mut out = Vec::new();
        encode_request_head(&e, 42, &mut out);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        let n = req.parse(&out).unwrap();
        assert!(n.is_complete());
        assert_eq!(req.method, Some("POST"));
        assert_eq!(req.path, Some("/v1/traces"));
        let h = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        assert_eq!(h("host").as_deref(), Some("[::1]:4318"));
        assert_eq!(h("content-length").as_deref(), Some("42"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        let https = Endpoint::parse("https://c.example:443/").unwrap();
        assert_eq!(https.host_header(), "c.example");
    }

    #[test]
    fn response_head_parses_incrementally() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        for cut in 0..full.len() - 2 {
            let partial = &full[..cut];
            if cut < full.len() - 2 {
                assert!(
                    matches!(parse_response_head(partial), Ok(None)),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(
            parse_response_head(full).unwrap(),
            Some((full.len() - 2, 200))
        );
        assert!(matches!(
            parse_response_head(b"SSH-2.0-x\r\n\r\n"),
            Err(ClientError::MalformedResponse)
        ));
    }

    #[test]
    fn https_without_a_ca_file_is_refused() {
        let e = Endpoint::parse("https://c.example/v1/traces").unwrap();
        assert!(matches!(
            HttpClient::new(e.clone(), None, Timeouts::default()),
            Err(ClientError::TlsNeedsCaFile)
        ));
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            HttpClient::new(e, Some(missing), Timeouts::default()),
            Err(ClientError::CaFile(_))
        ));
    }

    #[test]
    fn only_down_collectors_count_as_collector_faults() {
        assert!(ClientError::Status(503).is_collector_fault());
        assert!(ClientError::Status(429).is_collector_fault());
        assert!(!ClientError::Status(400).is_collector_fault());
        assert!(ClientError::Deadline.is_collector_fault());
        assert_eq!(ClientError::Status(503).kind(), "status_503");
    }
}
