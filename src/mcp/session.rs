//! Stateful-mode session ids: self-validating, signed, bound to the token identity.
//!
//! An id is `base64url(random ‖ issued_at ‖ version ‖ identity_hash ‖ tag)` where the tag is
//! HMAC-SHA256 over everything before it, under the server's persistent key. Nothing needs to be
//! remembered to accept an id, so a restart keeps every session valid (clients rarely recover from
//! a 404, brief §9 P3). Only deleted ids are remembered, in a deny-list kept until they expire.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use super::{SUPPORTED_VERSIONS, base64url};

/// What a valid session id says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// When it was issued, in seconds since the Unix epoch.
    pub issued_at_secs: u64,
    /// The protocol version negotiated by its `initialize`.
    pub version: &'static str,
}

/// Why a session id was refused. Every variant is answered 404 (the client must re-initialize).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// Not base64url, wrong length or unknown version byte.
    Malformed,
    /// The tag does not match: not minted under our key.
    BadSignature,
    /// Older than the session lifetime (or issued in the future).
    Expired,
    /// Minted for another token identity.
    WrongIdentity,
    /// Ended by `DELETE`.
    Deleted,
}

pub use crate::random::RandomUnavailable;

/// Stateful-mode bookkeeping: deleted ids and the sessions holding a `GET` stream.
#[derive(Default)]
pub(crate) struct State {
    /// Deleted ids and when they would have expired anyway (then they are forgotten).
    deleted: HashMap<String, SystemTime>,
    /// Sessions whose standalone GET stream is open (one each).
    pub(crate) get_streams: HashSet<String>,
}

/// Mints a session id for `identity` at `now`.
///
/// # Errors
/// [`RandomUnavailable`] when the OS random source fails.
pub fn mint(
    key: &[u8; 32],
    identity: &str,
    version: &str,
    now: SystemTime,
) -> Result<String, RandomUnavailable> {
    let mut raw = [0u8; BODY_LEN + TAG_LEN];
    crate::random::fill(&mut raw[..RANDOM_LEN])?;
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    raw[RANDOM_LEN..RANDOM_LEN + 8].copy_from_slice(&secs.to_be_bytes());
    raw[RANDOM_LEN + 8] = version_index(version);
    raw[RANDOM_LEN + 9..BODY_LEN].copy_from_slice(&identity_hash(identity));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &raw[..BODY_LEN]);
    raw[BODY_LEN..].copy_from_slice(tag.as_ref());
    Ok(base64url::encode(&raw))
}

/// Checks a session id: signature first (constant time), then identity and age.
///
/// # Errors
/// The [`SessionError`] that makes it unusable.
pub fn verify(
    key: &[u8; 32],
    id: &str,
    identity: &str,
    now: SystemTime,
    max_age: Duration,
) -> Result<Claims, SessionError> {
    if id.len() > MAX_ID_CHARS {
        return Err(SessionError::Malformed);
    }
    let raw = base64url::decode(id).ok_or(SessionError::Malformed)?;
    if raw.len() != BODY_LEN + TAG_LEN {
        return Err(SessionError::Malformed);
    }
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        &raw[..BODY_LEN],
        &raw[BODY_LEN..],
    )
    .map_err(|_| SessionError::BadSignature)?;
    let mut secs = [0u8; 8];
    secs.copy_from_slice(&raw[RANDOM_LEN..RANDOM_LEN + 8]);
    let issued_at_secs = u64::from_be_bytes(secs);
    let version = SUPPORTED_VERSIONS
        .get(usize::from(raw[RANDOM_LEN + 8]))
        .copied()
        .ok_or(SessionError::Malformed)?;
    // A constant-time compare is not needed: the hash is inside the verified, signed body.
    if raw[RANDOM_LEN + 9..BODY_LEN] != identity_hash(identity) {
        return Err(SessionError::WrongIdentity);
    }
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if issued_at_secs > now_secs.saturating_add(CLOCK_SKEW_SECS)
        || now_secs.saturating_sub(issued_at_secs) > max_age.as_secs()
    {
        return Err(SessionError::Expired);
    }
    Ok(Claims {
        issued_at_secs,
        version,
    })
}

impl State {
    /// Forgets `id` for good (until it would have expired); prunes expired entries.
    pub(crate) fn delete(&mut self, id: &str, expires: SystemTime, now: SystemTime) {
        self.deleted.retain(|_, exp| *exp > now);
        if self.deleted.len() < MAX_DELETED_IDS {
            self.deleted.insert(id.to_string(), expires);
        }
    }

    /// True when `id` was deleted.
    pub(crate) fn is_deleted(&self, id: &str) -> bool {
        self.deleted.contains_key(id)
    }
}

/// `n` random bytes as lowercase hex (legacy session ids).
///
/// # Errors
/// [`RandomUnavailable`] when the OS random source fails.
pub fn random_hex(n: usize) -> Result<String, RandomUnavailable> {
    crate::random::hex(n)
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::Malformed => "malformed session id",
            SessionError::BadSignature => "session id not issued by this server",
            SessionError::Expired => "session expired",
            SessionError::WrongIdentity => "session belongs to another token",
            SessionError::Deleted => "session was deleted",
        })
    }
}

impl std::error::Error for SessionError {}

fn version_index(version: &str) -> u8 {
    SUPPORTED_VERSIONS
        .iter()
        .position(|v| *v == version)
        .unwrap_or(0) as u8
}

fn identity_hash(identity: &str) -> [u8; IDENTITY_HASH_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let mut out = [0u8; IDENTITY_HASH_LEN];
    out.copy_from_slice(&d.as_ref()[..IDENTITY_HASH_LEN]);
    out
}

const RANDOM_LEN: usize = 16;
const IDENTITY_HASH_LEN: usize = 16;
const BODY_LEN: usize = RANDOM_LEN + 8 + 1 + IDENTITY_HASH_LEN;
const TAG_LEN: usize = 32;
/// Longer ids are refused before decoding.
const MAX_ID_CHARS: usize = 256;
/// Issued-at values this far in the future are tolerated (clock steps between restarts).
const CLOCK_SKEW_SECS: u64 = 300;
/// The deny-list never grows beyond this many ids.
const MAX_DELETED_IDS: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn minted_ids_verify_for_their_identity_and_carry_the_version() {
        let id = mint(&KEY, "alice", "2025-06-18", t(1_000)).unwrap();
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let c = verify(&KEY, &id, "alice", t(2_000), DAY).unwrap();
        assert_eq!(c.version, "2025-06-18");
        assert_eq!(c.issued_at_secs, 1_000);
    }

    #[test]
    fn ids_survive_a_restart_because_only_the_key_matters() {
        let id = mint(&KEY, "alice", "2025-11-25", t(1_000)).unwrap();
        let key_again = [7u8; 32];
        assert!(verify(&key_again, &id, "alice", t(1_001), DAY).is_ok());
    }

    #[test]
    fn other_identities_keys_and_tampering_are_refused() {
        let id = mint(&KEY, "alice", "2025-11-25", t(1_000)).unwrap();
        assert_eq!(
            verify(&KEY, &id, "bob", t(1_000), DAY),
            Err(SessionError::WrongIdentity)
        );
        assert_eq!(
            verify(&[8; 32], &id, "alice", t(1_000), DAY),
            Err(SessionError::BadSignature)
        );
        let mut raw = base64url::decode(&id).unwrap();
        raw[20] ^= 1;
        assert_eq!(
            verify(&KEY, &base64url::encode(&raw), "alice", t(1_000), DAY),
            Err(SessionError::BadSignature)
        );
        assert_eq!(
            verify(&KEY, "not-an-id", "alice", t(1_000), DAY),
            Err(SessionError::Malformed)
        );
    }

    #[test]
    fn old_ids_expire() {
        let id = mint(&KEY, "alice", "2025-11-25", t(1_000)).unwrap();
        assert_eq!(
            verify(&KEY, &id, "alice", t(1_000 + 86_401), DAY),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn deleted_ids_are_remembered_until_expiry() {
        let mut s = State::default();
        s.delete("a", t(100), t(0));
        assert!(s.is_deleted("a"));
        s.delete("b", t(300), t(200));
        assert!(!s.is_deleted("a"));
        assert!(s.is_deleted("b"));
    }
}
