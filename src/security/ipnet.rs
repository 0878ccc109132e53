//! CIDR blocks, the IP allow/deny policy (`IP_ALLOW`, `IP_DENY`) and the client address behind
//! trusted proxies (`TRUSTED_PROXIES`, `X-Forwarded-For`).
//!
//! Addresses are normalized before any comparison: an IPv4-mapped IPv6 address
//! (`::ffff:10.1.2.3`) is the IPv4 address it maps, so a dual-stack socket cannot smuggle an IPv4
//! client past an IPv4 rule.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network block: a normalized address with its host bits zero, and a prefix length.
///
/// Invariant: `prefix <= 32` for IPv4 and `<= 128` for IPv6; the bits of `net` past the prefix
/// are zero; `net` is never an IPv4-mapped IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A CIDR that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is not an IP address.
    BadAddress(String),
    /// The prefix is not a number or is too long for the address family.
    BadPrefix(String),
    /// Bits past the prefix are set (`10.0.0.1/8`): most likely a typo, so refused.
    HostBitsSet(String),
}

/// Which addresses may connect: deny wins; an empty allow list allows every address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpPolicy {
    /// Blocks that may connect; empty = all.
    pub allow: Vec<Cidr>,
    /// Blocks that may never connect, even when also allowed.
    pub deny: Vec<Cidr>,
}

impl Cidr {
    /// A block from an address and a prefix length.
    ///
    /// # Errors
    /// [`CidrError::BadPrefix`] when the prefix is too long, [`CidrError::HostBitsSet`] when
    /// the address has bits set past the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // ::ffff:0:0/96 is the mapped space: /104 there is /8 of IPv4.
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::BadPrefix(format!("{addr}/{prefix}")));
        }
        let net = mask(addr, prefix);
        if net != addr {
            return Err(CidrError::HostBitsSet(format!("{addr}/{prefix}")));
        }
        Ok(Self { net, prefix })
    }

    /// The block holding exactly one address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = normalize(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { net: addr, prefix }
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.net
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` (normalized) lies in this block. IPv4 never matches an IPv6 block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

impl IpPolicy {
    /// A policy from the `IP_ALLOW` and `IP_DENY` comma lists (empty strings = no rules).
    ///
    /// # Errors
    /// The first entry that is not a CIDR or an address.
    pub fn from_lists(allow: &str, deny: &str) -> Result<Self, CidrError> {
        Ok(Self {
            allow: parse_list(allow)?,
            deny: parse_list(deny)?,
        })
    }

    /// True when `ip` may connect: not in any deny block, and in an allow block or no allow
    /// blocks are set.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104` (= `10.0.0.0/8`) or a bare address
    /// (a single-host block).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(s.to_owned()))?;
        match prefix {
            None => Ok(Self::host(addr)),
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::BadPrefix(s.to_owned()));
                }
                let prefix: u8 = p.parse().map_err(|_| CidrError::BadPrefix(s.to_owned()))?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress(s) => write!(f, "not an IP address or CIDR block: {s:?}"),
            Self::BadPrefix(s) => write!(f, "bad prefix length in {s:?}"),
            Self::HostBitsSet(s) => write!(f, "host bits set past the prefix in {s:?}"),
        }
    }
}

impl std::error::Error for CidrError {}

/// Parses a comma-separated list of CIDR blocks or addresses; blank entries are skipped.
///
/// # Errors
/// The first bad entry.
pub fn parse_list(list: &str) -> Result<Vec<Cidr>, CidrError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into plain IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// The client address of a request.
///
/// When `peer` (the socket's remote address) is in a `trusted` block, `X-Forwarded-For` (all
/// its header lines joined with `,` in order) is walked from the right: each trusted hop is
/// skipped, and the first untrusted address is the client. An entry that is not an address ends
/// the walk at the last trusted hop, as does running out of entries, so a client can never pick
/// its own address by writing a header. When `peer` is not trusted the header is ignored.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let peer = normalize(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut current = peer;
    for entry in xff.rsplit(',').take(MAX_FORWARDED_HOPS) {
        let Some(hop) = parse_forwarded_entry(entry) else {
            return current;
        };
        if !is_trusted(hop) {
            return hop;
        }
        current = hop;
    }
    current
}

/// The `/64` network of an IPv6 address (an end site's usual allocation) or the IPv4 address,
/// normalized: the unit of rate and connection limits.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match normalize(ip) {
        IpAddr::V6(v6) => mask(IpAddr::V6(v6), 64),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(normalize(ip));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || valid_port(after.strip_prefix(':')?)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| normalize(v6.into()));
    }
    let (host, port) = entry.split_once(':')?;
    if !valid_port(port) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// `addr` with every bit past `prefix` cleared; `prefix` is clamped to the family's width.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// A header cannot make us walk more hops than this (bounds work on hostile headers).
const MAX_FORWARDED_HOPS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_accepts_and_normalizes_the_documented_forms() {
        let cases: &[(&str, &str)] = &[
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" 192.168.1.0/24 ", "192.168.1.0/24"),
            ("1.2.3.4", "1.2.3.4/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::1", "::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:1.2.3.4", "1.2.3.4/32"),
        ];
        for (input, want) in cases {
            let c: Cidr = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(c.to_string(), *want, "{input}");
        }
    }

    #[test]
    fn cidr_parsing_rejects_malformed_blocks() {
        let cases: &[&str] = &[
            "",
            "10.0.0/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.1/8",
            "2001:db8::1/32",
            "::/129",
            "host.example/8",
            "10.0.0.0/0008",
        ];
        for input in cases {
            assert!(input.parse::<Cidr>().is_err(), "{input:?} should fail");
        }
        assert!(matches!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBitsSet(_))
        ));
    }

    #[test]
    fn cidr_matching_respects_prefix_and_family() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "::ffff:10.1.1.1", true),
            ("10.0.0.0/8", "::a01:101", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "1.2.3.4", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("192.168.0.0/23", "192.168.1.255", true),
            ("192.168.0.0/23", "192.168.2.0", false),
        ];
        for (block, addr, want) in cases {
            let c: Cidr = block.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), *want, "{block} contains {addr}");
        }
    }

    #[test]
    fn policy_lets_deny_win_and_treats_empty_allow_as_all() {
        let open = IpPolicy::from_lists("", "").unwrap();
        assert!(open.permits(ip("8.8.8.8")));
        let p = IpPolicy::from_lists("10.0.0.0/8, 2001:db8::/32", "10.6.6.0/24").unwrap();
        let cases: &[(&str, bool)] = &[
            ("10.1.2.3", true),
            ("10.6.6.6", false),
            ("::ffff:10.6.6.6", false),
            ("::ffff:10.1.2.3", true),
            ("8.8.8.8", false),
            ("2001:db8::5", true),
            ("2001:db9::5", false),
        ];
        for (addr, want) in cases {
            assert_eq!(p.permits(ip(addr)), *want, "{addr}");
        }
        let deny_only = IpPolicy::from_lists("", "1.2.3.4").unwrap();
        assert!(!deny_only.permits(ip("1.2.3.4")));
        assert!(deny_only.permits(ip("1.2.3.5")));
        assert!(IpPolicy::from_lists("10.0.0.0/8,bogus", "").is_err());
    }

    #[test]
    fn client_ip_walks_forwarded_for_only_through_trusted_hops() {
        let trusted = parse_list("10.0.0.0/8, ::1").unwrap();
        let cases: &[(&str, Option<&str>, &str)] = &[
            // Untrusted peer: header ignored, whatever it says.
            ("203.0.113.5", Some("1.1.1.1"), "203.0.113.5"),
            // Trusted peer, one client hop.
            ("10.0.0.2", Some("198.51.100.7"), "198.51.100.7"),
            // Spoof attempt: client prepends a fake entry; the rightmost untrusted one wins.
            ("10.0.0.2", Some("6.6.6.6, 198.51.100.7"), "198.51.100.7"),
            // Chain of trusted proxies.
            (
                "10.0.0.2",
                Some("198.51.100.7, 10.0.0.9, 10.0.0.8"),
                "198.51.100.7",
            ),
            // Every hop trusted: the leftmost hop.
            ("10.0.0.2", Some("10.0.0.3"), "10.0.0.3"),
            // Garbage hop: stop at the last trusted hop.
            ("10.0.0.2", Some("198.51.100.7, nonsense"), "10.0.0.2"),
            (
                "10.0.0.2",
                Some("198.51.100.7, 10.0.0.5, unknown"),
                "10.0.0.2",
            ),
            ("10.0.0.2", Some("unknown, 10.0.0.5"), "10.0.0.5"),
            // No header.
            ("10.0.0.2", None, "10.0.0.2"),
            ("10.0.0.2", Some(""), "10.0.0.2"),
            // Ports and brackets.
            ("10.0.0.2", Some("198.51.100.7:4711"), "198.51.100.7"),
            ("10.0.0.2", Some("[2001:db8::7]:443"), "2001:db8::7"),
            ("10.0.0.2", Some("2001:db8::7"), "2001:db8::7"),
            ("10.0.0.2", Some("::ffff:198.51.100.7"), "198.51.100.7"),
            // Mapped peer is trusted through its IPv4 form.
            ("::ffff:10.0.0.2", Some("198.51.100.7"), "198.51.100.7"),
            ("::1", Some("198.51.100.7"), "198.51.100.7"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_ip(ip(peer), *xff, &trusted),
                ip(want),
                "peer {peer} xff {xff:?}"
            );
        }
    }

    #[test]
    fn client_ip_bounds_the_walk_on_a_huge_header() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        let hops = vec!["10.1.1.1"; 10_000].join(",");
        let xff = format!("198.51.100.7,{hops}");
        // The walk stops after MAX_FORWARDED_HOPS trusted hops and returns the last one seen.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some(&xff), &trusted),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn limit_key_groups_ipv6_by_slash_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(limit_key(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn random_blocks_round_trip_through_text_and_contain_their_addresses() {
        let mut rng = crate::security::TestRng(0x1234_5678_9abc_def1);
        for _ in 0..5_000 {
            let v6 = rng.below(2) == 0;
            let addr = if v6 {
                let hi = u128::from(rng.next_u64()) << 64;
                IpAddr::V6(Ipv6Addr::from(hi | u128::from(rng.next_u64())))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
            };
            let addr = normalize(addr);
            let width = if addr.is_ipv4() { 33 } else { 129 };
            let prefix = rng.below(width) as u8;
            let net = Cidr::new(mask(addr, prefix), prefix).unwrap();
            assert!(net.contains(addr), "{net} contains {addr}");
            let again: Cidr = net.to_string().parse().unwrap();
            assert_eq!(again, net);
        }
    }

    #[test]
    fn hostile_forwarded_headers_never_panic_and_never_invent_addresses() {
        let mut rng = crate::security::TestRng(0xfeed_beef_0bad_cafe);
        let trusted = parse_list("10.0.0.0/8").unwrap();
        let alphabet = b"0123456789abcdef.:[], ";
        for _ in 0..20_000 {
            let raw = rng.bytes(60, alphabet);
            let header = String::from_utf8_lossy(&raw);
            let got = client_ip(ip("10.0.0.1"), Some(&header), &trusted);
            let listed = header
                .split(',')
                .filter_map(parse_forwarded_entry)
                .any(|h| h == got);
            assert!(got == ip("10.0.0.1") || listed, "{header:?} gave {got}");
            let _ = header.parse::<Cidr>();
        }
    }
}
