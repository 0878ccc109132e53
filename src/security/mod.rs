//! Authentication, roles, rate limiting, CORS, network limits and the audit log.
//!
//! Every module here is sans-IO where it can be: it takes plain values (header values, addresses,
//! `now: Instant` / `now: SystemTime`) and returns decisions and header values; the HTTP server
//! does the I/O. Every shared type is `Send + Sync` and meant to live in an `Arc`.
//!
//! | Module | Defends against |
//! |---|---|
//! | [`auth`] | unauthenticated use, token theft from config or memory dumps, timing oracles |
//! | [`ratelimit`] | request floods per token and per client address, memory floods of keys |
//! | `redis` | the same floods spread across replicas |
//! | `cors` | cross-site browser requests, DNS rebinding (Host allowlist) |
//! | `ipnet` | traffic from denied networks, spoofed `X-Forwarded-For` |
//! | `connlimit` | one address holding every connection slot |
//! | `audit` | silent tampering with the security record |
//! | `secmetrics` | unnoticed attacks (counters and top offenders) |
//! | `gate` | all of the above built from the configuration, as the server uses them |
//!
//! ## Settings (`crate::config` holds the defaults; `gate::Security::from_config` builds the
//! policies from the parsed values; the module constants are fallbacks for direct use)
//!
//! | Variable | Default | Used by |
//! |---|---|---|
//! | `AUTH_TOKENS` | empty | [`auth::TokenStore::from_config`] (`token`, `name:token` = admin; `name:role:token`) |
//! | `AUTH_TOKENS_FILE` | unset | [`auth::TokenStore::load`] (`[{"name","sha256","role","rateLimit"?}]`) |
//! | `ALLOW_QUERY_TOKEN` | `false` | `allow_query` of `credential::extract_credential` |
//! | `OAUTH_RESOURCE_METADATA` | unset | `resource_metadata` of the `WWW-Authenticate` builders |
//! | `RATE_LIMIT` | 600 (per minute; 0 = off) | [`ratelimit::Quota::new`] |
//! | `RATE_LIMIT_BURST` | 60 | [`ratelimit::Quota::new`] |
//! | `RATE_LIMIT_MAX_KEYS` | 100 000 | [`ratelimit::Limiter::new`] |
//! | `RATE_LIMIT_REDIS_URL` | unset (in-process only) | `redis::RedisConfig::new` |
//! | `RATE_LIMIT_REDIS_FAIL` | `open` | `redis::FailMode::parse` |
//! | `ALLOWED_ORIGINS` | empty (no browser origin) | `cors::OriginPolicy::from_list` |
//! | `ALLOWED_HOSTS` | loopback names when bound to loopback, else any | `cors::HostPolicy::from_list` |
//! | `IP_ALLOW` / `IP_DENY` | empty (all allowed) | `ipnet::IpPolicy::from_lists` |
//! | `TRUSTED_PROXIES` | empty (ignore `X-Forwarded-For`) | `ipnet::parse_list`, `ipnet::client_ip` |
//! | `MAX_CONNECTIONS_PER_IP` | 64 | `connlimit::ConnLimiter::new` |
//! | `AUDIT_LOG` | unset (ring only) | `audit::AuditConfig::path` |
//! | `AUDIT_LOG_MAX_BYTES` | 100 MiB | `audit::AuditConfig::max_bytes` |
//! | audit ring size (not a setting) | 1000 | `audit::AuditConfig::ring_size` |

pub(crate) mod audit;
pub(crate) mod audit_query;
pub(crate) mod audit_verify;
pub mod auth;
pub(crate) mod connlimit;
pub(crate) mod cors;
pub(crate) mod credential;
pub(crate) mod events;
pub(crate) mod gate;
pub(crate) mod ipnet;
pub mod ratelimit;
pub(crate) mod redis;
pub mod resp;
pub(crate) mod secmetrics;

/// Lower-case hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes `%XX` escapes (and, for form-encoded query values, `+` as a space) into UTF-8 text;
/// `None` for a broken escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(hex_decode::<1>(s.get(i + 1..i + 3)?)?[0]);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes hex (either case) into exactly `N` bytes.
pub(crate) fn hex_decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0])?;
        let lo = hex_value(pair[1])?;
        out[i] = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A deterministic generator for property tests (xorshift64*): reproducible, no dependency.
#[cfg(test)]
pub(crate) struct TestRng(pub(crate) u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Random bytes biased towards the characters our parsers care about.
    pub(crate) fn bytes(&mut self, max_len: u64, alphabet: &[u8]) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| {
                if self.below(4) == 0 {
                    self.next_u64() as u8
                } else {
                    alphabet[self.below(alphabet.len() as u64) as usize]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_plus_is_a_space_only_in_forms() {
        assert_eq!(percent_decode("a%2Fb+c", true).as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a%2fb+c", false).as_deref(), Some("a/b+c"));
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(percent_decode(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let bytes = [0x00u8, 0x0f, 0xa5, 0xff];
        let s = hex_lower(&bytes);
        assert_eq!(s, "000fa5ff");
        assert_eq!(hex_decode::<4>(&s), Some(bytes));
        assert_eq!(hex_decode::<4>("000FA5FF"), Some(bytes));
        assert_eq!(hex_decode::<4>("000fa5f"), None);
        assert_eq!(hex_decode::<4>("000fa5fg"), None);
        assert_eq!(hex_decode::<2>("000fa5ff"), None);
    }
}
