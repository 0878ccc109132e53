//! Browser-facing checks: the `Origin` allowlist (`ALLOWED_ORIGINS`) with the CORS headers it
//! unlocks, and the `Host` allowlist (`ALLOWED_HOSTS`) against DNS rebinding.
//!
//! - An absent `Origin` is allowed (non-browser clients, the Anthropic connector); a present one
//!   must match an entry exactly (scheme, host and port; ASCII case-insensitive). `null` (sandboxed
//!   frames, `file:` pages) never matches an entry. `*` allows every origin, echoing it back.
//! - `Host` entries are `name`, `address`, `[ipv6]`, each optionally with `:port`. An entry
//!   without a port matches any port; a `Host` header without a port is port 443 (this server
//!   speaks HTTPS only). `*` allows every host. With no `ALLOWED_HOSTS`, a server bound to a
//!   loopback address accepts only loopback names (`localhost`, `127.0.0.1`, `[::1]`), which is
//!   what defeats DNS rebinding against a local server; a server bound elsewhere accepts any host
//!   (it is reached by names we cannot guess; authentication protects it).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The verdict on a request's `Origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header: not a cross-origin browser request.
    Absent,
    /// Allowlisted: serve it and add the CORS headers.
    Allowed,
    /// Present and not allowlisted: 403.
    Forbidden,
}

/// The `ALLOWED_ORIGINS` allowlist.
///
/// Invariant: entries are lower-case `scheme://host[:port]` with no path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<String>,
}

/// The verdict on a request's `Host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostVerdict {
    /// Allowlisted.
    Allowed,
    /// Well formed but not allowlisted: 403.
    Forbidden,
    /// Missing or not a host (`a b`, `[::1`, bare IPv6): 400.
    Malformed,
}

/// The `ALLOWED_HOSTS` allowlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    any: bool,
    entries: Vec<HostEntry>,
}

/// A bad `ALLOWED_ORIGINS` or `ALLOWED_HOSTS` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsError {
    /// An origin entry is not `http(s)://host[:port]` (a path or trailing slash included).
    BadOrigin(String),
    /// A host entry is not `host[:port]`.
    BadHost(String),
}

impl OriginPolicy {
    /// The allowlist from a comma list; empty = no browser origin allowed.
    ///
    /// # Errors
    /// The first entry that is not `*` or `http(s)://host[:port]`; `null` is refused.
    pub fn from_list(list: &str) -> Result<Self, CorsError> {
        let mut policy = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                policy.any = true;
                continue;
            }
            let lower = entry.to_ascii_lowercase();
            if !valid_origin(&lower) {
                return Err(CorsError::BadOrigin(entry.to_owned()));
            }
            if !policy.allowed.contains(&lower) {
                policy.allowed.push(lower);
            }
        }
        Ok(policy)
    }

    /// True when `*` was configured (worth a startup warning).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// The verdict on an `Origin` header value.
    pub fn check_origin(&self, origin: Option<&str>) -> OriginVerdict {
        let Some(origin) = origin else {
            return OriginVerdict::Absent;
        };
        let origin = origin.trim();
        if origin.is_empty() || !origin.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return OriginVerdict::Forbidden;
        }
        if self.any || self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            OriginVerdict::Allowed
        } else {
            OriginVerdict::Forbidden
        }
    }
}

impl HostPolicy {
    /// Every host.
    pub fn any() -> Self {
        Self {
            any: true,
            entries: Vec::new(),
        }
    }

    /// `localhost`, `127.0.0.1` and `[::1]` on any port.
    pub fn loopback() -> Self {
        let entries = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(|h| HostEntry {
                host: h.to_owned(),
                port: None,
            })
            .collect();
        Self {
            any: false,
            entries,
        }
    }

    /// The default with no `ALLOWED_HOSTS`: [`HostPolicy::loopback`] when bound to a loopback
    /// address, else [`HostPolicy::any`].
    pub fn default_for_bind(bind: IpAddr) -> Self {
        if crate::security::ipnet::normalize(bind).is_loopback() {
            Self::loopback()
        } else {
            Self::any()
        }
    }

    /// The allowlist from a comma list (`*`, `name`, `name:port`, `[v6]:port`, …); an empty list
    /// gives [`HostPolicy::default_for_bind`].
    ///
    /// # Errors
    /// The first entry that is not a host with an optional port.
    pub fn from_list(list: &str, bind: IpAddr) -> Result<Self, CorsError> {
        let items: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Self::default_for_bind(bind));
        }
        let mut policy = Self {
            any: false,
            entries: Vec::new(),
        };
        for item in items {
            if item == "*" {
                policy.any = true;
                continue;
            }
            let (host, port) =
                parse_host(item).ok_or_else(|| CorsError::BadHost(item.to_owned()))?;
            policy.entries.push(HostEntry { host, port });
        }
        Ok(policy)
    }

    /// True when every host is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// The verdict on a `Host` header value (or the `:authority` of the request target).
    pub fn check_host(&self, host: Option<&str>) -> HostVerdict {
        let Some((name, port)) = host.and_then(parse_host) else {
            return HostVerdict::Malformed;
        };
        if self.any {
            return HostVerdict::Allowed;
        }
        let port = port.unwrap_or(HTTPS_PORT);
        let hit = self
            .entries
            .iter()
            .any(|e| e.host == name && e.port.is_none_or(|p| p == port));
        if hit {
            HostVerdict::Allowed
        } else {
            HostVerdict::Forbidden
        }
    }
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadOrigin(o) => write!(
                f,
                "ALLOWED_ORIGINS entry {o:?} is not http(s)://host[:port] without a path"
            ),
            Self::BadHost(h) => write!(f, "ALLOWED_HOSTS entry {h:?} is not host[:port]"),
        }
    }
}

impl std::error::Error for CorsError {}

/// The headers of a `204` answer to an allowed preflight (`OPTIONS` with an allowed `Origin`).
pub fn preflight_headers(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Origin", origin.to_owned()),
        ("Access-Control-Allow-Methods", ALLOW_METHODS.to_owned()),
        ("Access-Control-Allow-Headers", ALLOW_HEADERS.to_owned()),
        ("Access-Control-Max-Age", MAX_AGE_SECS.to_string()),
        ("Vary", "Origin".to_owned()),
    ]
}

/// The headers added to every response to an allowed `Origin`.
pub fn response_headers(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Origin", origin.to_owned()),
        ("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_owned()),
        ("Vary", "Origin".to_owned()),
    ]
}

/// Whether `origin` is this server's own origin as the request's `Host` names it: `https`, the
/// same host and the same port (443 when absent). A page served by this server (the status
/// page) sends its own origin on `POST`s; that is not a cross-origin request, so it needs no
/// allowlist entry and gets no CORS headers. The `Host` itself is checked by [`HostPolicy`].
pub fn is_same_origin(origin: &str, host: &str) -> bool {
    let Some(authority) = origin.trim().strip_prefix("https://") else {
        return false;
    };
    match (parse_host(authority), parse_host(host)) {
        (Some((a, ap)), Some((b, bp))) => {
            a == b && ap.unwrap_or(HTTPS_PORT) == bp.unwrap_or(HTTPS_PORT)
        }
        _ => false,
    }
}

/// Splits `host[:port]` / `[v6][:port]` into a lower-case host (IPv6 without brackets, trailing
/// dot removed) and port; `None` when it is not one.
pub fn parse_host(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let v6: Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((v6.to_string(), port));
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (value, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    ok.then(|| (host.to_ascii_lowercase(), port))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostEntry {
    host: String,
    port: Option<u16>,
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&p| p != 0)
}

/// `http(s)://host[:port]`, already lower-case.
fn valid_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    match rest {
        Some(authority) => !authority.contains('/') && parse_host(authority).is_some(),
        None => false,
    }
}

/// `Access-Control-Allow-Methods` of a preflight.
pub const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// `Access-Control-Allow-Headers` of a preflight: every request header an MCP client sends.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, \
MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name, X-API-Key, X-Request-Id, traceparent, \
tracestate";
/// `Access-Control-Expose-Headers` of a response: what browser code must be able to read.
pub const EXPOSE_HEADERS: &str = "Mcp-Session-Id, WWW-Authenticate, X-Request-Id, \
RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After";
/// `Access-Control-Max-Age` of a preflight, in seconds.
pub const MAX_AGE_SECS: u32 = 600;
const HTTPS_PORT: u16 = 443;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_and_case_insensitively() {
        let p = OriginPolicy::from_list("http://localhost:3000, https://App.Example.com").unwrap();
        let cases: &[(Option<&str>, OriginVerdict)] = &[
            (None, OriginVerdict::Absent),
            (Some("http://localhost:3000"), OriginVerdict::Allowed),
            (Some("https://app.example.com"), OriginVerdict::Allowed),
            (Some("HTTPS://APP.EXAMPLE.COM"), OriginVerdict::Allowed),
            (Some("http://localhost:3001"), OriginVerdict::Forbidden),
            (Some("http://localhost"), OriginVerdict::Forbidden),
            (Some("https://localhost:3000"), OriginVerdict::Forbidden),
            (Some("http://app.example.com"), OriginVerdict::Forbidden),
            (
                Some("https://app.example.com.evil.test"),
                OriginVerdict::Forbidden,
            ),
            (
                Some("https://evil.test/https://app.example.com"),
                OriginVerdict::Forbidden,
            ),
            (Some("null"), OriginVerdict::Forbidden),
            (Some(""), OriginVerdict::Forbidden),
            (Some("http://localhost:3000 "), OriginVerdict::Allowed),
            (Some("http://l\u{f6}calhost:3000"), OriginVerdict::Forbidden),
        ];
        for (origin, want) in cases {
            assert_eq!(p.check_origin(*origin), *want, "{origin:?}");
        }
        let none = OriginPolicy::from_list("").unwrap();
        assert_eq!(
            none.check_origin(Some("http://localhost:3000")),
            OriginVerdict::Forbidden
        );
        assert_eq!(none.check_origin(None), OriginVerdict::Absent);
        let any = OriginPolicy::from_list("*").unwrap();
        assert!(any.allows_any());
        assert_eq!(
            any.check_origin(Some("https://x.test")),
            OriginVerdict::Allowed
        );
    }

    #[test]
    fn bad_origin_entries_are_refused() {
        for bad in [
            "localhost:3000",
            "http://localhost:3000/",
            "https://a.test/path",
            "null",
            "ftp://a.test",
            "http://",
            "http://a b",
            "http://a.test:99999",
        ] {
            assert!(OriginPolicy::from_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_headers_are_exact() {
        let pre = preflight_headers("https://app.example.com");
        assert_eq!(
            pre,
            vec![
                (
                    "Access-Control-Allow-Origin",
                    "https://app.example.com".to_owned()
                ),
                (
                    "Access-Control-Allow-Methods",
                    "GET, POST, DELETE, OPTIONS".to_owned()
                ),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, \
                     Last-Event-ID, Mcp-Method, Mcp-Name, X-API-Key, X-Request-Id, traceparent, \
                     tracestate"
                        .to_owned()
                ),
                ("Access-Control-Max-Age", "600".to_owned()),
                ("Vary", "Origin".to_owned()),
            ]
        );
        let resp = response_headers("https://app.example.com");
        assert_eq!(
            resp[1],
            (
                "Access-Control-Expose-Headers",
                "Mcp-Session-Id, WWW-Authenticate, X-Request-Id, RateLimit-Limit, \
                 RateLimit-Remaining, RateLimit-Reset, Retry-After"
                    .to_owned()
            )
        );
        assert_eq!(resp[2], ("Vary", "Origin".to_owned()));
    }

    #[test]
    fn loopback_binds_accept_only_loopback_hosts() {
        let p = HostPolicy::from_list("", "127.0.0.1".parse().unwrap()).unwrap();
        let cases: &[(Option<&str>, HostVerdict)] = &[
            (Some("localhost"), HostVerdict::Allowed),
            (Some("localhost:8443"), HostVerdict::Allowed),
            (Some("LOCALHOST."), HostVerdict::Allowed),
            (Some("127.0.0.1:8443"), HostVerdict::Allowed),
            (Some("[::1]:8443"), HostVerdict::Allowed),
            (Some("[0:0::1]"), HostVerdict::Allowed),
            (Some("evil.test"), HostVerdict::Forbidden),
            (Some("localhost.evil.test"), HostVerdict::Forbidden),
            (Some("127.0.0.2"), HostVerdict::Forbidden),
            (Some("::1"), HostVerdict::Malformed),
            (Some("[::1"), HostVerdict::Malformed),
            (Some("[::1]x"), HostVerdict::Malformed),
            (Some("localhost:"), HostVerdict::Malformed),
            (Some("localhost:0"), HostVerdict::Malformed),
            (Some("localhost:65536"), HostVerdict::Malformed),
            (Some("a b"), HostVerdict::Malformed),
            (Some("."), HostVerdict::Malformed),
            (Some("a..b"), HostVerdict::Malformed),
            (Some(".localhost"), HostVerdict::Malformed),
            (Some("user@localhost"), HostVerdict::Malformed),
            (Some(""), HostVerdict::Malformed),
            (None, HostVerdict::Malformed),
        ];
        for (host, want) in cases {
            assert_eq!(p.check_host(*host), *want, "{host:?}");
        }
        let v6 = HostPolicy::from_list("", "::1".parse().unwrap()).unwrap();
        assert!(!v6.allows_any());
        let public = HostPolicy::from_list("", "0.0.0.0".parse().unwrap()).unwrap();
        assert!(public.allows_any());
        assert_eq!(
            public.check_host(Some("anything.test")),
            HostVerdict::Allowed
        );
        assert_eq!(public.check_host(Some("a b")), HostVerdict::Malformed);
    }

    #[test]
    fn configured_hosts_match_name_and_port() {
        let bind = "0.0.0.0".parse().unwrap();
        let p = HostPolicy::from_list("mcp.example.com, api.example.com:8443, [2001:db8::1]", bind)
            .unwrap();
        let cases: &[(&str, HostVerdict)] = &[
            ("mcp.example.com", HostVerdict::Allowed),
            ("MCP.example.com:9999", HostVerdict::Allowed),
            ("api.example.com:8443", HostVerdict::Allowed),
            ("api.example.com:443", HostVerdict::Forbidden),
            ("api.example.com", HostVerdict::Forbidden),
            ("[2001:db8::1]:443", HostVerdict::Allowed),
            ("[2001:db8:0::1]", HostVerdict::Allowed),
            ("localhost", HostVerdict::Forbidden),
        ];
        for (host, want) in cases {
            assert_eq!(p.check_host(Some(host)), *want, "{host}");
        }
        let std_port = HostPolicy::from_list("a.test:443", bind).unwrap();
        assert_eq!(std_port.check_host(Some("a.test")), HostVerdict::Allowed);
        let star = HostPolicy::from_list("*", "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(star.check_host(Some("evil.test")), HostVerdict::Allowed);
        for bad in ["a b", "host:x", "[::1", "http://a.test"] {
            assert!(HostPolicy::from_list(bad, bind).is_err(), "{bad}");
        }
    }

    #[test]
    fn parsed_hosts_are_stable_and_random_input_never_panics() {
        let mut rng = crate::security::TestRng(0xabad_1dea_dead_beef);
        let policy = HostPolicy::loopback();
        let origins = OriginPolicy::from_list("https://a.test").unwrap();
        for _ in 0..20_000 {
            let raw = rng.bytes(24, b"[]:.0123456789abcdefLOCALHOST-_ /@");
            let text = String::from_utf8_lossy(&raw);
            if let Some((host, port)) = parse_host(&text) {
                let rendered = match (host.contains(':'), port) {
                    (true, Some(p)) => format!("[{host}]:{p}"),
                    (true, None) => format!("[{host}]"),
                    (false, Some(p)) => format!("{host}:{p}"),
                    (false, None) => host.clone(),
                };
                assert_eq!(parse_host(&rendered), Some((host, port)), "{text:?}");
            }
            let _ = policy.check_host(Some(&text));
            let _ = origins.check_origin(Some(&text));
        }
    }

    #[test]
    fn a_page_of_this_server_is_same_origin_and_nothing_else_is() {
        assert!(is_same_origin("https://127.0.0.1:8443", "127.0.0.1:8443"));
        assert!(is_same_origin("https://Example.com", "example.com:443"));
        assert!(is_same_origin("https://[::1]:8443", "[::1]:8443"));
        assert!(!is_same_origin("http://127.0.0.1:8443", "127.0.0.1:8443"));
        assert!(!is_same_origin("https://127.0.0.1:9443", "127.0.0.1:8443"));
        assert!(!is_same_origin(
            "https://evil.example:8443",
            "127.0.0.1:8443"
        ));
        assert!(!is_same_origin("null", "127.0.0.1:8443"));
        assert!(!is_same_origin(
            "https://127.0.0.1:8443/x",
            "127.0.0.1:8443"
        ));
    }
}
