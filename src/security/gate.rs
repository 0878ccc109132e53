//! The security state one server holds, built once from the configuration: the policies of the
//! other modules, typed and ready, plus the decisions the accept loop and the request pipeline
//! ask for. Sans-IO: every method takes addresses, header values and `now`; the caller does I/O.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use crate::config::Config;
use crate::security::audit::{AuditConfig, AuditError, AuditEvent, AuditLog, EventKind};
use crate::security::connlimit::{ConnGuard, ConnLimiter, DEFAULT_MAX_TRACKED};
use crate::security::cors::{CorsError, HostPolicy, OriginPolicy};
use crate::security::events::{AuditEvent as McpAuditEvent, RequestScope};
use crate::security::ipnet::{self, Cidr, CidrError, IpPolicy};
use crate::security::ratelimit::{Decision, Key, Limiter, Quota};
use crate::security::redis::{FailMode, RedisConfig, RedisError, RedisLimiter};
use crate::security::secmetrics::{DEFAULT_TRACKED, SecurityMetrics};

/// Every security policy of one server. `Send + Sync`; lives in the `App`.
pub struct Security {
    /// `ALLOWED_ORIGINS`.
    pub origins: OriginPolicy,
    /// `ALLOWED_HOSTS` (or the default for the bind address).
    pub hosts: HostPolicy,
    /// `IP_ALLOW` / `IP_DENY`.
    pub ips: IpPolicy,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `MAX_CONNECTIONS_PER_IP`, per peer address (a trusted proxy is exempt).
    pub connections: Arc<ConnLimiter>,
    /// `RATE_LIMIT`… ; `None` when `RATE_LIMIT=0`.
    pub limiter: Option<RateLimiter>,
    /// `AUDIT_LOG` and the in-memory ring.
    pub audit: AuditLog,
    /// Counters and top offenders for `/security/metrics`.
    pub metrics: SecurityMetrics,
    /// `OAUTH_RESOURCE_METADATA`: the RFC 9728 document and its URL, when served.
    pub resource_metadata: Option<ResourceMetadata>,
    /// `MAX_IN_FLIGHT`: requests being handled at once at most.
    pub max_in_flight: usize,
    in_flight: AtomicUsize,
}

/// The in-process or the Redis-shared limiter.
pub enum RateLimiter {
    /// Buckets in this process only.
    Local(Limiter),
    /// Buckets in Redis, shared across replicas (`RATE_LIMIT_REDIS_URL`).
    Redis(Box<RedisLimiter>),
}

/// The RFC 9728 protected-resource metadata served at `/.well-known/oauth-protected-resource`
/// (and `…/mcp`), and its URL named in `401` challenges.
///
/// `OAUTH_RESOURCE_METADATA` is either the document's URL (the document then names the resource
/// that URL implies, no authorization server, and our scopes) or the JSON document itself
/// (which must name its `resource`; the URL is derived from it as RFC 9728 §3.1 says).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceMetadata {
    /// Where the document is: `https://host/.well-known/oauth-protected-resource[/path]`.
    pub url: String,
    /// The document; always has a string `resource`.
    pub document: Value,
}

/// What the accept loop does with a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the guard (when the peer is counted) must live as long as the connection.
    Admitted(Option<ConnGuard>),
    /// `IP_ALLOW` / `IP_DENY` refuse the peer: close before the TLS handshake.
    Denied,
    /// The peer already holds `MAX_CONNECTIONS_PER_IP` connections: answer 503 and close.
    OverPerIpCap,
}

/// One request counted against `MAX_IN_FLIGHT`; dropping it releases the slot.
pub struct InFlight<'a>(&'a AtomicUsize);

/// A security setting that cannot be used.
#[derive(Debug)]
pub enum SecurityError {
    /// `ALLOWED_ORIGINS` or `ALLOWED_HOSTS`.
    Cors(CorsError),
    /// `IP_ALLOW`, `IP_DENY` or `TRUSTED_PROXIES` (named in the first field).
    Cidr(&'static str, CidrError),
    /// `RATE_LIMIT_REDIS_URL`.
    Redis(RedisError),
    /// `AUDIT_LOG`.
    Audit(AuditError),
    /// `OAUTH_RESOURCE_METADATA` is neither an `http(s)://` URL nor a JSON object with a
    /// `resource` URL.
    ResourceMetadata(String),
}

impl Security {
    /// The policies `config` asks for.
    ///
    /// # Errors
    /// The first setting that cannot be parsed, or an audit file that cannot be opened.
    pub fn from_config(
        config: &Config,
        epoch: Instant,
        now: SystemTime,
    ) -> Result<Self, SecurityError> {
        let origins = OriginPolicy::from_list(&config.allowed_origins.join(","))
            .map_err(SecurityError::Cors)?;
        let hosts = HostPolicy::from_list(&config.allowed_hosts.join(","), config.host)
            .map_err(SecurityError::Cors)?;
        let ips = IpPolicy::from_lists(&config.ip_allow.join(","), &config.ip_deny.join(","))
            .map_err(|e| SecurityError::Cidr("IP_ALLOW/IP_DENY", e))?;
        let trusted_proxies = ipnet::parse_list(&config.trusted_proxies.join(","))
            .map_err(|e| SecurityError::Cidr("TRUSTED_PROXIES", e))?;
        let per_ip = u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX);
        let connections = ConnLimiter::new(per_ip, DEFAULT_MAX_TRACKED);
        let limiter = match Quota::new(config.rate_limit_per_min, config.rate_limit_burst) {
            None => None,
            Some(quota) => Some(match &config.rate_limit_redis_url {
                None => RateLimiter::Local(Limiter::new(quota, config.rate_limit_max_keys, epoch)),
                Some(url) => {
                    let fail = if config.rate_limit_redis_fail_open {
                        FailMode::Open
                    } else {
                        FailMode::Closed
                    };
                    let cfg = RedisConfig::new(url, fail).map_err(SecurityError::Redis)?;
                    RateLimiter::Redis(Box::new(RedisLimiter::new(
                        cfg,
                        quota,
                        config.rate_limit_max_keys,
                        epoch,
                    )))
                }
            }),
        };
        let audit = AuditLog::open(
            AuditConfig {
                path: config.audit_log.clone(),
                max_bytes: config.audit_log_max_bytes,
                ..AuditConfig::default()
            },
            now,
        )
        .map_err(SecurityError::Audit)?;
        Ok(Self {
            origins,
            hosts,
            ips,
            trusted_proxies,
            connections,
            limiter,
            audit,
            metrics: SecurityMetrics::new(DEFAULT_TRACKED),
            resource_metadata: config
                .oauth_resource_metadata
                .as_deref()
                .map(ResourceMetadata::parse)
                .transpose()?,
            max_in_flight: config.max_in_flight,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Checks every security setting of `config` without side effects (no file is opened and
    /// no connection made), for `check-config` and for a clear refusal at start.
    ///
    /// # Errors
    /// The first setting that cannot be parsed.
    pub fn check(config: &Config) -> Result<(), SecurityError> {
        OriginPolicy::from_list(&config.allowed_origins.join(",")).map_err(SecurityError::Cors)?;
        HostPolicy::from_list(&config.allowed_hosts.join(","), config.host)
            .map_err(SecurityError::Cors)?;
        IpPolicy::from_lists(&config.ip_allow.join(","), &config.ip_deny.join(","))
            .map_err(|e| SecurityError::Cidr("IP_ALLOW/IP_DENY", e))?;
        ipnet::parse_list(&config.trusted_proxies.join(","))
            .map_err(|e| SecurityError::Cidr("TRUSTED_PROXIES", e))?;
        if let Some(url) = &config.rate_limit_redis_url {
            RedisConfig::new(url, FailMode::Open).map_err(SecurityError::Redis)?;
        }
        if let Some(meta) = &config.oauth_resource_metadata {
            ResourceMetadata::parse(meta)?;
        }
        Ok(())
    }

    /// Whether `peer` is a trusted proxy.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = ipnet::normalize(peer);
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }

    /// The verdict on a new connection from `peer`, before any byte is read. A trusted proxy is
    /// neither checked against the IP lists nor counted per address here: the client behind it
    /// is checked per request, from `X-Forwarded-For`.
    pub fn admit(&self, peer: IpAddr) -> Admission {
        if self.is_trusted_proxy(peer) {
            return Admission::Admitted(None);
        }
        if !self.ips.permits(peer) {
            self.metrics.ip_denied(peer);
            return Admission::Denied;
        }
        match self.connections.try_acquire(ipnet::normalize(peer)) {
            Some(g) => Admission::Admitted(Some(g)),
            None => {
                self.metrics.connection_limited(peer);
                Admission::OverPerIpCap
            }
        }
    }

    /// The client address of a request: `peer`, or the rightmost untrusted hop of
    /// `X-Forwarded-For` when `peer` is a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, xff: Option<&str>) -> IpAddr {
        ipnet::client_ip(peer, xff, &self.trusted_proxies)
    }

    /// Takes a `MAX_IN_FLIGHT` slot, or `None` when all are taken.
    pub fn enter(&self) -> Option<InFlight<'_>> {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(&self.in_flight))
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes one token from `key`'s bucket; `per_min` is the identity's own rate, if any.
    /// `None` when rate limiting is off.
    pub fn rate_check(&self, key: &Key, per_min: Option<u32>, now: Instant) -> Option<Decision> {
        match self.limiter.as_ref()? {
            RateLimiter::Local(l) => Some(l.check_with(key, l.quota_for(per_min), 1, now)),
            RateLimiter::Redis(r) => {
                let quota = crate::security::ratelimit::own_quota(r.quota(), per_min);
                Some(r.check(key, quota, 1, now))
            }
        }
    }

    /// Buckets held in this process (the Redis limiter's fallback is not counted).
    pub fn rate_buckets(&self) -> usize {
        match &self.limiter {
            Some(RateLimiter::Local(l)) => l.len(),
            _ => 0,
        }
    }

    /// Settings worth a warning at start: weak tokens, any origin, tokens in query strings.
    pub fn warnings(
        &self,
        tokens: &crate::security::auth::TokenStore,
        allow_query_token: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let weak = tokens.weak_token_names();
        if !weak.is_empty() {
            out.push(format!(
                "tokens shorter than {} bytes: {} (use 32 random bytes)",
                crate::security::auth::MIN_STRONG_TOKEN_BYTES,
                weak.join(", ")
            ));
        }
        if self.origins.allows_any() {
            out.push("ALLOWED_ORIGINS=* lets every web page call this server".to_owned());
        }
        if allow_query_token {
            out.push(
                "ALLOW_QUERY_TOKEN=true: tokens in URLs reach proxy logs and Referer headers"
                    .to_owned(),
            );
        }
        if self.limiter.is_none() {
            out.push("RATE_LIMIT=0: no rate limiting".to_owned());
        }
        out
    }

    /// Appends an audit record.
    pub fn record(&self, event: AuditEvent) {
        self.audit.record(event, SystemTime::now());
    }

    /// Records an event of the MCP layer (a writing tool call, a forbidden tool), with the
    /// address and request id of the request it belongs to.
    pub fn record_mcp(&self, event: &McpAuditEvent<'_>, scope: Option<RequestScope>) {
        let scope = scope.unwrap_or_default();
        let mut ev = match event {
            McpAuditEvent::ToolCall {
                identity,
                tool,
                arguments,
                ok,
                error_code,
                elapsed,
            } => {
                let outcome = match (ok, error_code) {
                    (true, _) => "ok".to_owned(),
                    (false, Some(code)) => format!("error:{code}"),
                    (false, None) => "error".to_owned(),
                };
                let mut ev = AuditEvent::new(EventKind::ToolCall, outcome)
                    .identity(*identity)
                    .tool(*tool)
                    .duration(*elapsed);
                if let Some(slug) = arguments.get("slug").and_then(|v| v.as_str()) {
                    ev = ev.slug(slug);
                }
                ev
            }
            McpAuditEvent::Forbidden {
                identity,
                tool,
                required,
                ..
            } => {
                if let Some(ip) = scope.ip {
                    self.metrics.forbidden(identity, ip);
                }
                AuditEvent::new(
                    EventKind::Forbidden,
                    format!("needs {}", crate::security::credential::scope(*required)),
                )
                .identity(*identity)
                .tool(*tool)
            }
        };
        if let Some(ip) = scope.ip {
            ev = ev.ip(ip);
        }
        if let Some(id) = scope.request_id {
            ev = ev.request_id(id);
        }
        self.record(ev);
    }
}

impl ResourceMetadata {
    /// The metadata from an `OAUTH_RESOURCE_METADATA` value.
    ///
    /// # Errors
    /// [`SecurityError::ResourceMetadata`] as described on the type.
    pub fn parse(value: &str) -> Result<Self, SecurityError> {
        let bad = |why: &str| SecurityError::ResourceMetadata(why.to_owned());
        let value = value.trim();
        if value.starts_with('{') {
            let document: Value =
                serde_json::from_str(value).map_err(|_| bad("the document is not JSON"))?;
            let resource = document
                .get("resource")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("the document has no string `resource`"))?;
            let (origin, path) = split_url(resource).ok_or_else(|| bad("bad `resource` URL"))?;
            let url = format!("{origin}{WELL_KNOWN}{path}");
            return Ok(Self { url, document });
        }
        let (origin, path) = split_url(value).ok_or_else(|| bad("not an http(s):// URL"))?;
        let resource = match path.strip_prefix(WELL_KNOWN) {
            Some(rest) => format!("{origin}{rest}"),
            None => format!("{origin}/mcp"),
        };
        let document = json!({
            "resource": resource,
            "authorization_servers": [],
            "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"],
            "bearer_methods_supported": ["header"],
        });
        Ok(Self {
            url: value.to_owned(),
            document,
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Display for SecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cors(e) => write!(f, "{e}"),
            Self::Cidr(name, e) => write!(f, "{name}: {e}"),
            Self::Redis(e) => write!(f, "RATE_LIMIT_REDIS_URL: {e}"),
            Self::Audit(e) => write!(f, "AUDIT_LOG: {e}"),
            Self::ResourceMetadata(why) => write!(f, "OAUTH_RESOURCE_METADATA: {why}"),
        }
    }
}

impl std::error::Error for SecurityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Cors(e) => Some(e),
            Self::Cidr(_, e) => Some(e),
            Self::Redis(e) => Some(e),
            Self::Audit(e) => Some(e),
            Self::ResourceMetadata(_) => None,
        }
    }
}

/// `scheme://authority` and the path (possibly empty) of an `http(s)://` URL without query.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    if rest.contains(['?', '#', ' ']) {
        return None;
    }
    let scheme_len = url.len() - rest.len();
    let end = rest.find('/').unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    Some((&url[..scheme_len + end], &url[scheme_len + end..]))
}

/// The RFC 9728 well-known path prefix.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Raw;

    fn security(env: &[(&str, &str)]) -> Security {
        let raw = Raw::merge(
            None,
            &|k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            },
            &[],
        )
        .unwrap();
        let cfg = Config::from_raw(&raw, false).unwrap();
        Security::from_config(&cfg, Instant::now(), SystemTime::now()).unwrap()
    }

    #[test]
    fn denied_peers_are_refused_and_trusted_proxies_pass_uncounted() {
        let s = security(&[
            ("IP_DENY", "10.0.0.0/8"),
            ("TRUSTED_PROXIES", "192.0.2.1/32"),
            ("MAX_CONNECTIONS_PER_IP", "1"),
        ]);
        assert!(matches!(
            s.admit("10.1.2.3".parse().unwrap()),
            Admission::Denied
        ));
        let proxy: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(s.admit(proxy), Admission::Admitted(None)));
        assert!(matches!(s.admit(proxy), Admission::Admitted(None)));
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        let held = s.admit(peer);
        assert!(matches!(held, Admission::Admitted(Some(_))));
        assert!(matches!(s.admit(peer), Admission::OverPerIpCap));
        drop(held);
        assert!(matches!(s.admit(peer), Admission::Admitted(Some(_))));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let s = security(&[("TRUSTED_PROXIES", "127.0.0.1/32")]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            s.client_ip(lo, Some("203.0.113.9, 127.0.0.1")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(s.client_ip(other, Some("203.0.113.9")), other);
    }

    #[test]
    fn in_flight_slots_are_capped_and_released() {
        let s = security(&[("MAX_IN_FLIGHT", "2")]);
        let a = s.enter().unwrap();
        let _b = s.enter().unwrap();
        assert!(s.enter().is_none());
        drop(a);
        assert!(s.enter().is_some());
    }

    #[test]
    fn an_identity_with_its_own_rate_gets_its_own_quota() {
        let s = security(&[("RATE_LIMIT", "60"), ("RATE_LIMIT_BURST", "2")]);
        let t0 = Instant::now();
        let own = Key::Token("slow".into());
        // Its burst is its own rate (1), not the server-wide 2.
        let d = s.rate_check(&own, Some(1), t0).unwrap();
        assert!(d.allowed && d.remaining == 0);
        let denied = s.rate_check(&own, Some(1), t0).unwrap();
        assert!(!denied.allowed);
        // One token a minute: the wait is a whole minute, not the default second.
        assert_eq!(denied.retry_after_secs(), Some(60));
    }

    #[test]
    fn resource_metadata_from_a_url_or_a_document() {
        let m = ResourceMetadata::parse(
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        )
        .unwrap();
        assert_eq!(m.document["resource"], "https://mcp.example.com/mcp");
        let m = ResourceMetadata::parse(
            r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"]}"#,
        )
        .unwrap();
        assert_eq!(
            m.url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            m.document["authorization_servers"][0],
            "https://auth.example.com"
        );
        assert!(ResourceMetadata::parse("mcp.example.com").is_err());
        assert!(ResourceMetadata::parse(r#"{"resource":1}"#).is_err());
    }

    #[test]
    fn risky_settings_are_named_at_start() {
        let s = security(&[("ALLOWED_ORIGINS", "*"), ("RATE_LIMIT", "0")]);
        let tokens = crate::security::auth::TokenStore::from_config("short", None).unwrap();
        let w = s.warnings(&tokens, true).join("\n");
        assert!(w.contains("tokens shorter than"), "{w}");
        assert!(w.contains("ALLOWED_ORIGINS=*"), "{w}");
        assert!(w.contains("ALLOW_QUERY_TOKEN"), "{w}");
        assert!(w.contains("RATE_LIMIT=0"), "{w}");
        let quiet = security(&[]);
        let strong = crate::security::auth::TokenStore::from_config(
            "0123456789abcdef0123456789abcdef",
            None,
        )
        .unwrap();
        assert!(quiet.warnings(&strong, false).is_empty());
    }

    #[test]
    fn bad_security_settings_are_named_before_start() {
        for (name, value, needle) in [
            ("IP_DENY", "10.0.0.0/33", "IP_ALLOW/IP_DENY"),
            ("TRUSTED_PROXIES", "proxy.local", "TRUSTED_PROXIES"),
            ("ALLOWED_ORIGINS", "https://a.example/", "ALLOWED_ORIGINS"),
            ("ALLOWED_HOSTS", "a b", "ALLOWED_HOSTS"),
            (
                "RATE_LIMIT_REDIS_URL",
                "http://redis",
                "RATE_LIMIT_REDIS_URL",
            ),
            ("OAUTH_RESOURCE_METADATA", "{}", "OAUTH_RESOURCE_METADATA"),
        ] {
            let raw = Raw::merge(None, &|k| (k == name).then(|| value.to_string()), &[]).unwrap();
            let cfg = Config::from_raw(&raw, false).unwrap();
            let err = Security::check(&cfg).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn rate_limit_zero_turns_limiting_off() {
        let s = security(&[("RATE_LIMIT", "0")]);
        assert!(
            s.rate_check(&Key::Token("a".into()), None, Instant::now())
                .is_none()
        );
    }
}
