//! A rate limiter shared by every replica through Redis (`RATE_LIMIT_REDIS_URL`).
//!
//! ## Design
//! - A minimal RESP2 client over a blocking [`TcpStream`]: the sans-IO reply parser
//!   ([`parse_reply`]) and command encoder ([`encode_command`]), a small pool of connections
//!   ([`POOL_SIZE`]), connect/read/write timeouts (`timeout`, default [`DEFAULT_TIMEOUT`]), `AUTH`
//!   and `SELECT` from the URL (`redis://[user[:password]@]host[:port][/db]`). TLS (`rediss://`)
//!   is not supported and refused at configuration time.
//! - One atomic Lua script per check: the same GCRA token bucket as
//!   [`crate::security::ratelimit`], in microseconds, timed by Redis `TIME` so replicas with
//!   skewed clocks still share one bucket. It runs with `EVALSHA` and falls back to `EVAL` on
//!   `NOSCRIPT` (after a Redis restart or `SCRIPT FLUSH`). Keys expire when their bucket is full.
//! - Failure: any I/O, protocol or server error marks Redis down for a backoff that doubles from
//!   [`MIN_BACKOFF`] to [`MAX_BACKOFF`]; while down, checks do not touch the network at all, so a
//!   dead or hanging Redis costs at most one `timeout` per backoff period, never one per
//!   request. Meanwhile `RATE_LIMIT_REDIS_FAIL` decides: `open` (default) judges requests with
//!   an in-process limiter of the same quota (limits hold per replica instead of globally);
//!   `closed` denies every request, with `Retry-After` = the time left until the next attempt.
//!
//! Host names are resolved on each (re)connect, which can block for the system resolver's own
//! timeout; use an address in the URL where that matters.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};

use crate::security::hex_lower;
use crate::security::ratelimit::{Decision, Key, Limiter, Quota};
use crate::security::resp::{MAX_REPLY_BYTES, Reply, RespError, encode_command, parse_reply};

/// Where Redis is, parsed from `RATE_LIMIT_REDIS_URL`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// ACL user name, for `AUTH user password`.
    pub username: Option<String>,
    /// Password, for `AUTH`.
    pub password: Option<String>,
    /// Database number for `SELECT` (default 0).
    pub db: u32,
}

/// What to do with requests while Redis cannot be reached (`RATE_LIMIT_REDIS_FAIL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Judge requests with the in-process limiter (per replica).
    Open,
    /// Deny every request until Redis answers again.
    Closed,
}

/// A failure talking to Redis.
#[derive(Debug)]
pub enum RedisError {
    /// `RATE_LIMIT_REDIS_URL` is not a `redis://` URL we understand.
    Url(String),
    /// Connecting, reading or writing failed (timeouts included).
    Io(io::Error),
    /// The reply could not be framed.
    Protocol(RespError),
    /// Redis answered with an error reply.
    Server(String),
    /// Redis answered with a reply of an unexpected shape.
    Unexpected(String),
    /// Redis is marked down until the backoff ends; nothing was sent.
    Down,
}

/// Settings of the shared limiter.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Where Redis is.
    pub url: RedisUrl,
    /// What to do while Redis is unreachable.
    pub fail: FailMode,
    /// Connect, read and write timeout of one operation.
    pub timeout: Duration,
    /// Prefix of every key (`task-mcp:rl:`), so several services can share one Redis.
    pub key_prefix: String,
}

/// A limiter whose buckets live in Redis, shared by every replica. `Send + Sync`.
pub struct RedisLimiter {
    cfg: RedisConfig,
    script_sha: String,
    pool: Box<[Mutex<Option<Conn>>]>,
    next_slot: AtomicUsize,
    health: Mutex<Health>,
    fallback: Limiter,
    failures: AtomicU64,
    connects: AtomicU64,
}

impl RedisUrl {
    /// Parses `redis://[user[:password]@]host[:port][/db]`; user and password may be
    /// percent-encoded, an IPv6 host is written in brackets.
    ///
    /// # Errors
    /// [`RedisError::Url`] for another scheme (`rediss://` included) or a malformed part.
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        let bad = |why: &str| RedisError::Url(format!("{why} in RATE_LIMIT_REDIS_URL"));
        let rest = url
            .trim()
            .strip_prefix("redis://")
            .ok_or_else(|| bad("not a redis:// URL (TLS rediss:// is not supported)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let u = crate::security::percent_decode(u, false)
                    .ok_or_else(|| bad("bad user encoding"))?;
                let p = match p {
                    Some(p) => Some(
                        crate::security::percent_decode(p, false)
                            .ok_or_else(|| bad("bad password encoding"))?,
                    ),
                    None => None,
                };
                // `redis://secret@host` is the password-only form, as redis-cli reads it.
                match p {
                    None if !u.is_empty() => (None, Some(u)),
                    p => ((!u.is_empty()).then_some(u), p.filter(|p| !p.is_empty())),
                }
            }
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("bad IPv6 address"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(['@', ' ', '?', '#']) {
            return Err(bad("bad host"));
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        };
        let db_text = path.split(['?', '#']).next().unwrap_or("");
        let db = if db_text.is_empty() {
            0
        } else {
            db_text.parse().map_err(|_| bad("bad database number"))?
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            username,
            password,
            db,
        })
    }
}

impl FailMode {
    /// Parses `open` or `closed` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

impl RedisConfig {
    /// Settings from the URL and the fail mode, with the default timeout and key prefix.
    ///
    /// # Errors
    /// As [`RedisUrl::parse`].
    pub fn new(url: &str, fail: FailMode) -> Result<Self, RedisError> {
        Ok(Self {
            url: RedisUrl::parse(url)?,
            fail,
            timeout: DEFAULT_TIMEOUT,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        })
    }
}

impl RedisLimiter {
    /// A shared limiter. Connects lazily, on the first check. `quota`, `max_keys` and `epoch`
    /// configure the in-process limiter used while Redis is down in [`FailMode::Open`].
    pub fn new(cfg: RedisConfig, quota: Quota, max_keys: usize, epoch: Instant) -> Self {
        let script_sha = hex_lower(digest(&SHA1_FOR_LEGACY_USE_ONLY, SCRIPT.as_bytes()).as_ref());
        Self {
            cfg,
            script_sha,
            pool: (0..POOL_SIZE).map(|_| Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            fallback: Limiter::new(quota, max_keys, epoch),
            failures: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        }
    }

    /// The default quota.
    pub fn quota(&self) -> Quota {
        self.fallback.quota()
    }

    /// Like [`Limiter::check_with`], through Redis, applying the fail mode when Redis cannot
    /// answer. `now` drives only the backoff and the fallback limiter; buckets use Redis time.
    pub fn check(&self, key: &Key, quota: Quota, cost: u32, now: Instant) -> Decision {
        match self.try_check(key, quota, cost, now) {
            Ok(d) => d,
            Err(_) => match self.cfg.fail {
                FailMode::Open => self.fallback.check_with(key, quota, cost, now),
                FailMode::Closed => {
                    let wait = self.down_for(now).max(Duration::from_secs(1));
                    Decision {
                        allowed: false,
                        limit: quota.burst(),
                        remaining: 0,
                        reset_after: wait,
                        retry_after: Some(wait),
                    }
                }
            },
        }
    }

    /// The decision from Redis, or why there is none.
    ///
    /// # Errors
    /// [`RedisError::Down`] during a backoff; any error of the attempt (which starts one).
    pub fn try_check(
        &self,
        key: &Key,
        quota: Quota,
        cost: u32,
        now: Instant,
    ) -> Result<Decision, RedisError> {
        if self.down_for(now) > Duration::ZERO {
            return Err(RedisError::Down);
        }
        let slot = self.pick_slot();
        let mut conn = slot.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have failed while this one waited for the slot.
        if self.down_for(now) > Duration::ZERO {
            return Err(RedisError::Down);
        }
        match self.run_script(&mut conn, key, quota, cost) {
            Ok(d) => {
                self.lock_health().up();
                Ok(d)
            }
            Err(e) => {
                *conn = None;
                self.failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("rate-limit Redis unavailable: {e}");
                self.lock_health().down(now);
                Err(e)
            }
        }
    }

    /// Time left in the current backoff (zero when Redis is considered up).
    pub fn down_for(&self, now: Instant) -> Duration {
        self.lock_health()
            .down_until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }

    /// Failed attempts so far (for metrics).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Connections opened so far (for metrics; a steady climb means churn).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    fn run_script(
        &self,
        conn: &mut Option<Conn>,
        key: &Key,
        quota: Quota,
        cost: u32,
    ) -> Result<Decision, RedisError> {
        if conn.is_none() {
            self.connects.fetch_add(1, Ordering::Relaxed);
            *conn = Some(Conn::open(&self.cfg.url, self.cfg.timeout)?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(RedisError::Down);
        };
        let interval_us = quota.interval_ns().div_ceil(1_000).to_string();
        let burst = quota.burst().to_string();
        let cost_s = cost.to_string();
        let full_key = format!("{}{}", self.cfg.key_prefix, key.render());
        let tail: [&[u8]; 5] = [
            b"1",
            full_key.as_bytes(),
            interval_us.as_bytes(),
            burst.as_bytes(),
            cost_s.as_bytes(),
        ];
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", self.script_sha.as_bytes()];
        args.extend_from_slice(&tail);
        let reply = match c.command(&args)? {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                let mut args: Vec<&[u8]> = vec![b"EVAL", SCRIPT.as_bytes()];
                args.extend_from_slice(&tail);
                c.command(&args)?
            }
            r => r,
        };
        decision_from_reply(reply, quota, cost)
    }

    fn pick_slot(&self) -> &Mutex<Option<Conn>> {
        let start = self.next_slot.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.pool.len() {
            let slot = &self.pool[(start + i) % self.pool.len()];
            // Probe for a free slot; the guard is dropped and re-taken by the caller.
            if slot.try_lock().is_ok() {
                return slot;
            }
        }
        &self.pool[start % self.pool.len()]
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .finish()
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => f.write_str(why),
            Self::Io(e) => write!(f, "Redis I/O: {e}"),
            Self::Protocol(e) => write!(f, "Redis protocol: {e}"),
            Self::Server(e) => write!(f, "Redis error reply: {e}"),
            Self::Unexpected(e) => write!(f, "unexpected Redis reply: {e}"),
            Self::Down => f.write_str("Redis is marked down (backing off)"),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<RespError> for RedisError {
    fn from(e: RespError) -> Self {
        Self::Protocol(e)
    }
}

/// One connection: a stream with timeouts and a read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(url: &RedisUrl, timeout: Duration) -> Result<Self, RedisError> {
        let addrs: Vec<SocketAddr> = match url.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, url.port)],
            Err(_) => (url.host.as_str(), url.port).to_socket_addrs()?.collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    stream.set_nodelay(true)?;
                    let mut conn = Conn {
                        stream,
                        buf: Vec::new(),
                    };
                    conn.handshake(url)?;
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(RedisError::Io(last))
    }

    fn handshake(&mut self, url: &RedisUrl) -> Result<(), RedisError> {
        if let Some(pw) = &url.password {
            let reply = match &url.username {
                Some(user) => self.command(&[b"AUTH", user.as_bytes(), pw.as_bytes()])?,
                None => self.command(&[b"AUTH", pw.as_bytes()])?,
            };
            expect_ok(reply)?;
        }
        if url.db != 0 {
            let db = url.db.to_string();
            expect_ok(self.command(&[b"SELECT", db.as_bytes()])?)?;
        }
        Ok(())
    }

    /// Sends one command and reads its reply (an error reply is returned, not raised).
    fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let mut out = Vec::with_capacity(128);
        encode_command(args, &mut out);
        self.stream.write_all(&out)?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((used, reply)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            if self.buf.len() > MAX_REPLY_BYTES {
                return Err(RedisError::Protocol(RespError::TooLarge));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(RedisError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Default)]
struct Health {
    down_until: Option<Instant>,
    backoff: Option<Duration>,
}

impl Health {
    fn up(&mut self) {
        self.down_until = None;
        self.backoff = None;
    }

    fn down(&mut self, now: Instant) {
        let next = self
            .backoff
            .map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
        self.backoff = Some(next);
        self.down_until = Some(now + next);
    }
}

fn expect_ok(reply: Reply) -> Result<(), RedisError> {
    match reply {
        Reply::Simple(s) if s == "OK" => Ok(()),
        Reply::Error(e) => Err(RedisError::Server(e)),
        other => Err(RedisError::Unexpected(format!("{other:?}"))),
    }
}

/// The script's `{allowed, reset_us, retry_us}` → a [`Decision`], with the same meaning of
/// each field as the in-process limiter.
fn decision_from_reply(reply: Reply, quota: Quota, cost: u32) -> Result<Decision, RedisError> {
    let items = match reply {
        Reply::Array(Some(items)) => items,
        Reply::Error(e) => return Err(RedisError::Server(e)),
        other => return Err(RedisError::Unexpected(format!("{other:?}"))),
    };
    let [
        Reply::Integer(allowed),
        Reply::Integer(reset_us),
        Reply::Integer(retry_us),
    ] = items.as_slice()
    else {
        return Err(RedisError::Unexpected(format!("{items:?}")));
    };
    let micros = |v: i64| u64::try_from(v).unwrap_or(0);
    let interval_us = quota.interval_ns().div_ceil(1_000);
    let tau_us = interval_us.saturating_mul(u64::from(quota.burst()));
    let reset_us = micros(*reset_us);
    let remaining =
        u32::try_from(tau_us.saturating_sub(reset_us) / interval_us.max(1)).unwrap_or(u32::MAX);
    let allowed = *allowed == 1;
    Ok(Decision {
        allowed,
        limit: quota.burst(),
        remaining,
        reset_after: Duration::from_micros(reset_us),
        retry_after: (!allowed && cost <= quota.burst())
            .then(|| Duration::from_micros(micros(*retry_us).max(1))),
    })
}

/// The GCRA token bucket in Redis. KEYS[1] = bucket; ARGV = interval µs, burst, cost.
/// Returns `{allowed (0|1), tat − now in µs (after an allowed request, before a denied one),
/// µs until a denied request would pass}`.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = tonumber(stored) or now
  if tat < now then tat = now end
end
local tau = interval * burst
local new_tat = tat + cost * interval
if new_tat - now <= tau then
  if new_tat > now then
    redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  end
  return {1, new_tat - now, 0}
end
return {0, tat - now, new_tat - tau - now}
";

/// Default `RATE_LIMIT_REDIS_URL` port.
pub const DEFAULT_PORT: u16 = 6379;
/// Default connect/read/write timeout of one Redis operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default prefix of every Redis key.
pub const DEFAULT_KEY_PREFIX: &str = "task-mcp:rl:";
/// Connections kept open to Redis.
pub const POOL_SIZE: usize = 4;
/// First backoff after a failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    #[cfg(feature = "live")]
    use std::process::{Child, Command, Stdio};
    #[cfg(feature = "live")]
    use std::sync::Arc;

    use super::*;

    /// A real redis-server on a free loopback port, killed on drop (live tier only).
    #[cfg(feature = "live")]
    struct Server {
        child: Child,
        port: u16,
    }

    #[cfg(feature = "live")]
    impl Server {
        fn start(extra: &[&str]) -> Self {
            let port = free_port();
            Self::start_on(port, extra)
        }

        /// A missing binary fails the test with its install command.
        fn start_on(port: u16, extra: &[&str]) -> Self {
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = spawned.unwrap_or_else(|e| {
                panic!("redis-server must be installed (apt-get install redis-server): {e}")
            });
            let server = Server { child, port };
            // Wait for the external process to accept connections (bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn url(&self, auth_and_db: &str) -> String {
            format!("redis://{auth_and_db}127.0.0.1:{}", self.port)
        }
    }

    #[cfg(feature = "live")]
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn q(per_min: u32, burst: u32) -> Quota {
        Quota::new(per_min, burst).unwrap()
    }

    fn limiter(url: &str, fail: FailMode, quota: Quota) -> RedisLimiter {
        let mut cfg = RedisConfig::new(url, fail).unwrap();
        cfg.key_prefix = format!("test:{}:", std::process::id());
        RedisLimiter::new(cfg, quota, 1000, Instant::now())
    }

    fn tok(s: &str) -> Key {
        Key::Token(s.into())
    }

    #[test]
    fn urls_parse_into_their_parts() {
        type Case = (
            &'static str,
            &'static str,
            u16,
            Option<&'static str>,
            Option<&'static str>,
            u32,
        );
        let cases: &[Case] = &[
            ("redis://localhost", "localhost", 6379, None, None, 0),
            ("redis://10.0.0.5:6380/2", "10.0.0.5", 6380, None, None, 2),
            ("redis://:s%40cret@h:1/0", "h", 1, None, Some("s@cret"), 0),
            (
                "redis://user:pw@h/15",
                "h",
                6379,
                Some("user"),
                Some("pw"),
                15,
            ),
            ("redis://pw@h", "h", 6379, None, Some("pw"), 0),
            ("redis://[::1]:7000/3", "::1", 7000, None, None, 3),
            ("redis://h:6379/", "h", 6379, None, None, 0),
        ];
        for (input, host, port, user, pw, db) in cases {
            let u = RedisUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(u.host, *host, "{input}");
            assert_eq!(u.port, *port, "{input}");
            assert_eq!(u.username.as_deref(), *user, "{input}");
            assert_eq!(u.password.as_deref(), *pw, "{input}");
            assert_eq!(u.db, *db, "{input}");
        }
        for bad in [
            "rediss://h",
            "http://h",
            "redis://",
            "redis://h:port",
            "redis://h:70000",
            "redis://h/x",
            "redis://[::1",
            "redis://[nothost]:1",
            "redis://:%zz@h",
        ] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad} should fail");
        }
        let u = RedisUrl::parse("redis://:topsecret@h").unwrap();
        assert!(!format!("{u:?}").contains("topsecret"));
    }

    #[test]
    fn fail_modes_parse() {
        assert_eq!(FailMode::parse("open"), Some(FailMode::Open));
        assert_eq!(FailMode::parse(" CLOSED "), Some(FailMode::Closed));
        assert_eq!(FailMode::parse("maybe"), None);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn two_limiters_sharing_redis_allow_exactly_the_burst_between_them() {
        let server = Server::start(&[]);
        let quota = q(1, 5);
        let a = limiter(&server.url(""), FailMode::Closed, quota);
        let b = limiter(&server.url(""), FailMode::Closed, quota);
        let now = Instant::now();
        let mut allowed = Vec::new();
        for i in 0..12 {
            let l = if i % 2 == 0 { &a } else { &b };
            let d = l.try_check(&tok("shared"), quota, 1, now).unwrap();
            if d.allowed {
                allowed.push(d.remaining);
            } else {
                let retry = d.retry_after.unwrap();
                assert!(retry > Duration::from_secs(50) && retry <= Duration::from_secs(60));
                assert_eq!(d.remaining, 0);
            }
        }
        assert_eq!(allowed, vec![4, 3, 2, 1, 0]);
        // Another key has its own bucket.
        assert!(a.try_check(&tok("other"), quota, 1, now).unwrap().allowed);
        assert_eq!(a.failures() + b.failures(), 0);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn concurrent_checks_through_redis_never_exceed_the_burst() {
        let server = Server::start(&[]);
        let quota = q(1, 20);
        let l = Arc::new(limiter(&server.url(""), FailMode::Closed, quota));
        let now = Instant::now();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..10)
                        .filter(|_| l.try_check(&tok("c"), quota, 1, now).unwrap().allowed)
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 20);
        assert!(l.connects() <= POOL_SIZE as u64);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn refill_happens_in_redis_time() {
        let server = Server::start(&[]);
        // 600 a minute: a token every 100 ms.
        let quota = q(600, 1);
        let l = limiter(&server.url(""), FailMode::Closed, quota);
        let now = Instant::now();
        assert!(l.try_check(&tok("r"), quota, 1, now).unwrap().allowed);
        let d = l.try_check(&tok("r"), quota, 1, now).unwrap();
        assert!(!d.allowed);
        let retry = d.retry_after.unwrap();
        assert!(retry <= Duration::from_millis(100), "{retry:?}");
        // Waiting for the real clock of the real server is the behaviour under test.
        std::thread::sleep(retry + Duration::from_millis(20));
        assert!(l.try_check(&tok("r"), quota, 1, now).unwrap().allowed);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn password_and_database_from_the_url_are_used() {
        let server = Server::start(&["--requirepass", "p@ss"]);
        let quota = q(1, 1);
        let l = limiter(&(server.url(":p%40ss@") + "/3"), FailMode::Closed, quota);
        let now = Instant::now();
        assert!(l.try_check(&tok("db"), quota, 1, now).unwrap().allowed);
        // The bucket landed in database 3.
        let url = RedisUrl::parse(&(server.url(":p%40ss@") + "/3")).unwrap();
        let mut c = Conn::open(&url, DEFAULT_TIMEOUT).unwrap();
        let key = format!("test:{}:t:db", std::process::id());
        assert!(matches!(
            c.command(&[b"GET", key.as_bytes()]).unwrap(),
            Reply::Bulk(Some(_))
        ));
        let mut c0 = Conn::open(
            &RedisUrl::parse(&server.url(":p%40ss@")).unwrap(),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(
            c0.command(&[b"GET", key.as_bytes()]).unwrap(),
            Reply::Bulk(None)
        );
        // A wrong password is an error, and the closed policy denies.
        let bad = limiter(&server.url(":wrong@"), FailMode::Closed, quota);
        assert!(matches!(
            bad.try_check(&tok("x"), quota, 1, now),
            Err(RedisError::Server(_))
        ));
        assert!(!bad.check(&tok("x"), quota, 1, now).allowed);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn a_flushed_script_is_reloaded_with_eval() {
        let server = Server::start(&[]);
        let quota = q(1, 3);
        let l = limiter(&server.url(""), FailMode::Closed, quota);
        let now = Instant::now();
        assert!(l.try_check(&tok("f"), quota, 1, now).unwrap().allowed);
        let mut c =
            Conn::open(&RedisUrl::parse(&server.url("")).unwrap(), DEFAULT_TIMEOUT).unwrap();
        assert_eq!(
            c.command(&[b"SCRIPT", b"FLUSH"]).unwrap(),
            Reply::Simple("OK".into())
        );
        let d = l.try_check(&tok("f"), quota, 1, now).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn fail_open_falls_back_to_the_local_limiter_quickly() {
        let port = free_port(); // nothing listens here
        let quota = q(1, 2);
        let l = limiter(&format!("redis://127.0.0.1:{port}"), FailMode::Open, quota);
        let now = Instant::now();
        let started = Instant::now();
        let results: Vec<bool> = (0..4)
            .map(|_| l.check(&tok("o"), quota, 1, now).allowed)
            .collect();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(results, vec![true, true, false, false]);
        // One failed attempt, then the backoff keeps the network out of the request path.
        assert_eq!(l.failures(), 1);
        assert_eq!(l.down_for(now), MIN_BACKOFF);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn fail_closed_denies_with_the_backoff_as_retry_after() {
        let server = Server::start(&[]);
        let quota = q(60, 5);
        let l = limiter(&server.url(""), FailMode::Closed, quota);
        let now = Instant::now();
        assert!(l.check(&tok("c"), quota, 1, now).allowed);
        drop(server);
        let d = l.check(&tok("c"), quota, 1, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(l.failures(), 1);
        // Backoff doubles on each failed attempt after it ends.
        let later = now + MIN_BACKOFF;
        assert!(!l.check(&tok("c"), quota, 1, later).allowed);
        assert_eq!(l.down_for(later), MIN_BACKOFF * 2);
        assert_eq!(l.failures(), 2);
    }

    // Live tier: needs a real redis-server.
    #[cfg(feature = "live")]
    #[test]
    fn a_restarted_redis_is_used_again_after_the_backoff() {
        let server = Server::start(&[]);
        let port = server.port;
        let quota = q(1, 5);
        let l = limiter(&server.url(""), FailMode::Closed, quota);
        let now = Instant::now();
        assert!(l.try_check(&tok("re"), quota, 1, now).is_ok());
        drop(server);
        assert!(l.try_check(&tok("re"), quota, 1, now).is_err());
        let _server = Server::start_on(port, &[]);
        assert!(matches!(
            l.try_check(&tok("re"), quota, 1, now),
            Err(RedisError::Down)
        ));
        let d = l
            .try_check(&tok("re"), quota, 1, now + MIN_BACKOFF)
            .unwrap();
        assert!(d.allowed);
        assert_eq!(l.down_for(now + MIN_BACKOFF), Duration::ZERO);
    }

    #[test]
    fn a_hanging_redis_costs_one_timeout_then_nothing() {
        // Accepts connections and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let quota = q(1, 5);
        let l = limiter(&format!("redis://127.0.0.1:{port}"), FailMode::Open, quota);
        let now = Instant::now();
        let started = Instant::now();
        assert!(l.check(&tok("h"), quota, 1, now).allowed);
        let first = started.elapsed();
        assert!(
            first >= DEFAULT_TIMEOUT && first < DEFAULT_TIMEOUT * 4,
            "{first:?}"
        );
        let started = Instant::now();
        for _ in 0..3 {
            assert!(l.check(&tok("h"), quota, 1, now).allowed);
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        drop(listener);
    }
}
