//! Static API tokens: the token store (live-reloadable), roles and the `WWW-Authenticate`
//! challenges; reading the credential off a request is `credential.rs`.
//!
//! ## Configuration
//! - `AUTH_TOKENS`: a comma list. Each entry is `token` (identity `token-<n>`, `n` = 1-based
//!   position in the list, role admin), `name:token` (role admin) or `name:role:token`
//!   (`role` = `reader`, `writer` or `admin`). Names match `[A-Za-z0-9._-]{1,64}`.
//!   Raw entries are admin because a single shared token is the common deployment and must be
//!   able to do everything; restricted tokens say so explicitly.
//! - `AUTH_TOKENS_FILE`: a JSON array of `{"name","sha256","role","rateLimit"?}` where `sha256`
//!   is [`hash_token`] of the token (so the file holds no secret) and `rateLimit` is that
//!   identity's own requests per minute.
//!
//! Only SHA-256 digests are kept in memory. A presented token is hashed and compared with every
//! stored digest in constant time, without stopping at a match, so the time taken says nothing
//! about which token (or how much of one) matched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::digest::{SHA256, digest};
use serde::Deserialize;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::access::Access;
pub use crate::security::credential::{AuthError, Credential, CredentialSource, Malformed};
use crate::security::credential::{extract_credential, is_token_byte};
use crate::security::{hex_decode, hex_lower};

/// An authenticated caller. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The identity name (`token-1`, `ci-bot`): safe to log, used as the rate-limit key.
    pub name: String,
    /// What it may do (its role).
    pub role: Access,
    /// Its own requests per minute, overriding `RATE_LIMIT` (never 0).
    pub rate_limit_per_min: Option<u32>,
}

/// The configured identities, stored as SHA-256 digests of their tokens.
///
/// Invariant: names are unique and valid; digests are unique.
#[derive(Clone, Default)]
pub struct TokenStore {
    entries: Vec<Entry>,
}

/// A bad token configuration.
#[derive(Debug)]
pub enum ConfigError {
    /// An `AUTH_TOKENS` entry is empty or its token part is empty.
    EmptyToken {
        /// 1-based position in the list.
        position: usize,
    },
    /// A token holds characters outside visible ASCII, a comma or whitespace.
    BadTokenChars {
        /// 1-based position in the list.
        position: usize,
    },
    /// An identity name is not `[A-Za-z0-9._-]{1,64}`.
    BadName(String),
    /// A role is not `reader`, `writer` or `admin`.
    BadRole(String),
    /// Two identities have the same name.
    DuplicateName(String),
    /// Two identities have the same token.
    DuplicateToken(String),
    /// A `sha256` is not 64 hex digits.
    BadDigest(String),
    /// A `rateLimit` of zero.
    ZeroRateLimit(String),
    /// `AUTH_TOKENS_FILE` could not be read.
    Io(std::io::Error),
    /// `AUTH_TOKENS_FILE` is not the documented JSON.
    Json(serde_json::Error),
}

/// The tokens in use, replaceable while the server runs: SIGHUP or a change of
/// `AUTH_TOKENS_FILE` re-reads them, and each request authenticates against the store current
/// when it arrives. A file that does not parse is refused and the old store stays.
pub struct LiveTokens {
    inline: String,
    file: Option<PathBuf>,
    current: RwLock<Arc<TokenStore>>,
}

impl LiveTokens {
    /// Loads `AUTH_TOKENS` (`inline`) and the file once.
    ///
    /// # Errors
    /// As [`TokenStore::load`].
    pub fn new(inline: String, file: Option<PathBuf>) -> Result<Self, ConfigError> {
        let store = TokenStore::load(&inline, file.as_deref())?;
        Ok(Self {
            inline,
            file,
            current: RwLock::new(Arc::new(store)),
        })
    }

    /// A store that never changes (tests).
    pub fn fixed(store: TokenStore) -> Self {
        Self {
            inline: String::new(),
            file: None,
            current: RwLock::new(Arc::new(store)),
        }
    }

    /// The store for a request arriving now.
    pub fn current(&self) -> Arc<TokenStore> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// `AUTH_TOKENS_FILE`, when configured.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Re-reads the file; returns how many identities the new store holds. Without a file there
    /// is nothing to re-read (`AUTH_TOKENS` comes from the environment, fixed at start).
    ///
    /// # Errors
    /// Why the new file was refused; the old store stays in use.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        let store = TokenStore::load(&self.inline, self.file.as_deref())?;
        let n = store.len();
        match self.current.write() {
            Ok(mut c) => *c = Arc::new(store),
            Err(p) => *p.into_inner() = Arc::new(store),
        }
        Ok(n)
    }
}

impl TokenStore {
    /// A store from `AUTH_TOKENS` (may be empty) and the contents of `AUTH_TOKENS_FILE` (if any).
    ///
    /// # Errors
    /// The first bad entry; a name or token used twice across both sources.
    pub fn from_config(tokens: &str, file_json: Option<&str>) -> Result<Self, ConfigError> {
        let mut store = Self::default();
        store.add_token_list(tokens)?;
        if let Some(json) = file_json {
            store.add_file_json(json)?;
        }
        Ok(store)
    }

    /// Reads `AUTH_TOKENS_FILE` and calls [`TokenStore::from_config`].
    ///
    /// # Errors
    /// As [`TokenStore::from_config`], plus [`ConfigError::Io`].
    pub fn load(tokens: &str, file: Option<&Path>) -> Result<Self, ConfigError> {
        let json = match file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(ConfigError::Io)?),
            None => None,
        };
        Self::from_config(tokens, json.as_deref())
    }

    /// Adds the entries of an `AUTH_TOKENS` list (see the module docs for the syntax).
    ///
    /// # Errors
    /// The first bad entry.
    pub fn add_token_list(&mut self, list: &str) -> Result<(), ConfigError> {
        if list.trim().is_empty() {
            return Ok(());
        }
        for (i, raw) in list.split(',').enumerate() {
            let position = i + 1;
            let raw = raw.trim();
            let parts: Vec<&str> = raw.split(':').collect();
            let (name, role, token) = match parts.as_slice() {
                [token] => (format!("token-{position}"), Access::Admin, *token),
                [name, token] => ((*name).to_owned(), Access::Admin, *token),
                [name, role, token] => (
                    (*name).to_owned(),
                    Access::parse_role(role)
                        .ok_or_else(|| ConfigError::BadRole((*role).to_owned()))?,
                    *token,
                ),
                _ => return Err(ConfigError::BadTokenChars { position }),
            };
            if token.is_empty() {
                return Err(ConfigError::EmptyToken { position });
            }
            if !token.bytes().all(is_token_byte) {
                return Err(ConfigError::BadTokenChars { position });
            }
            let short = token.len() < MIN_STRONG_TOKEN_BYTES;
            self.insert(name, role, None, digest_of(token), short)?;
        }
        Ok(())
    }

    /// Adds the entries of an `AUTH_TOKENS_FILE` document.
    ///
    /// # Errors
    /// Not the documented JSON (unknown fields are refused, to catch typos), or a bad entry.
    pub fn add_file_json(&mut self, json: &str) -> Result<(), ConfigError> {
        let entries: Vec<FileEntry> = serde_json::from_str(json).map_err(ConfigError::Json)?;
        for e in entries {
            let role =
                Access::parse_role(&e.role).ok_or_else(|| ConfigError::BadRole(e.role.clone()))?;
            let digest = hex_decode::<32>(&e.sha256)
                .ok_or_else(|| ConfigError::BadDigest(e.name.clone()))?;
            if e.rate_limit == Some(0) {
                return Err(ConfigError::ZeroRateLimit(e.name));
            }
            self.insert(e.name, role, e.rate_limit, digest, false)?;
        }
        Ok(())
    }

    /// Number of identities.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no token is configured (the server must then refuse to start, or run
    /// explicitly unauthenticated on loopback: the caller decides).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity names, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.identity.name.as_str())
    }

    /// The identity whose token is `token`, compared in constant time against every entry.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] when no entry matches.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let presented = digest_of(token);
        // No early exit and no branch on a comparison: every digest is compared, and the
        // matching index (1-based; 0 = none) is selected in constant time.
        let mut found: u64 = 0;
        for (i, e) in self.entries.iter().enumerate() {
            let equal = e.digest.ct_eq(&presented);
            found = u64::conditional_select(&found, &(i as u64 + 1), equal);
        }
        usize::try_from(found)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.entries.get(i))
            .map(|e| e.identity.clone())
            .ok_or(AuthError::Invalid)
    }

    /// Extracts the credential from the request (see `extract_credential`) and verifies it.
    ///
    /// # Errors
    /// As `extract_credential` and `TokenStore::verify`.
    pub fn authenticate<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        query: Option<&str>,
        allow_query: bool,
    ) -> Result<Identity, AuthError> {
        let credential = extract_credential(headers, query, allow_query)?;
        self.verify(credential.token())
    }

    /// Identities whose raw `AUTH_TOKENS` token is shorter than [`MIN_STRONG_TOKEN_BYTES`]
    /// (worth a startup warning). File entries are digests, so their length is unknown.
    pub fn weak_token_names(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.short)
            .map(|e| e.identity.name.as_str())
            .collect()
    }

    fn insert(
        &mut self,
        name: String,
        role: Access,
        rate_limit_per_min: Option<u32>,
        digest: [u8; 32],
        short: bool,
    ) -> Result<(), ConfigError> {
        if !valid_name(&name) {
            return Err(ConfigError::BadName(name));
        }
        if self.entries.iter().any(|e| e.identity.name == name) {
            return Err(ConfigError::DuplicateName(name));
        }
        if self.entries.iter().any(|e| e.digest == digest) {
            return Err(ConfigError::DuplicateToken(name));
        }
        self.entries.push(Entry {
            digest,
            short,
            identity: Identity {
                name,
                role,
                rate_limit_per_min,
            },
        });
        Ok(())
    }
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Digests of weak tokens can be brute-forced, so only identities are shown.
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.identity))
            .finish()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyToken { position } => write!(f, "AUTH_TOKENS entry {position} is empty"),
            Self::BadTokenChars { position } => write!(
                f,
                "AUTH_TOKENS entry {position} is not token, name:token or name:role:token \
                 with a visible-ASCII token"
            ),
            Self::BadName(n) => write!(f, "identity name {n:?} is not [A-Za-z0-9._-]{{1,64}}"),
            Self::BadRole(r) => write!(f, "role {r:?} is not reader, writer or admin"),
            Self::DuplicateName(n) => write!(f, "identity name {n:?} is configured twice"),
            Self::DuplicateToken(n) => write!(f, "identity {n:?} reuses another identity's token"),
            Self::BadDigest(n) => write!(f, "identity {n:?}: sha256 is not 64 hex digits"),
            Self::ZeroRateLimit(n) => write!(f, "identity {n:?}: rateLimit must be at least 1"),
            Self::Io(e) => write!(f, "cannot read AUTH_TOKENS_FILE: {e}"),
            Self::Json(e) => write!(f, "AUTH_TOKENS_FILE is not the expected JSON: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// The lower-case hex SHA-256 of `token`: what `AUTH_TOKENS_FILE` stores
/// (`task-mcp hash-token`).
pub fn hash_token(token: &str) -> String {
    hex_lower(&digest_of(token))
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    short: bool,
    identity: Identity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    sha256: String,
    role: String,
    #[serde(rename = "rateLimit", default)]
    rate_limit: Option<u32>,
}

fn digest_of(token: &str) -> [u8; 32] {
    let d = digest(&SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Tokens shorter than this (in bytes) are reported by [`TokenStore::weak_token_names`].
pub const MIN_STRONG_TOKEN_BYTES: usize = 16;
const MAX_NAME_BYTES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    fn store() -> TokenStore {
        let file = format!(
            r#"[{{"name":"ci","sha256":"{}","role":"writer","rateLimit":120}},
               {{"name":"viewer","sha256":"{}","role":"reader"}}]"#,
            hash_token("ci-token-0123456789").to_uppercase(),
            hash_token("view-token-0123456789"),
        );
        TokenStore::from_config("raw-token-abcdefgh, ops:ops-token-abcdefgh", Some(&file)).unwrap()
    }

    #[test]
    fn hash_token_is_lowercase_hex_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_list_entries_get_names_and_roles() {
        let s = TokenStore::from_config(
            "aaaaaaaaaaaaaaaaaaaa, bob:bbbbbbbbbbbbbbbbbbbb, carol:reader:cccccccccccccccccccc",
            None,
        )
        .unwrap();
        let cases: &[(&str, &str, Access)] = &[
            ("aaaaaaaaaaaaaaaaaaaa", "token-1", Access::Admin),
            ("bbbbbbbbbbbbbbbbbbbb", "bob", Access::Admin),
            ("cccccccccccccccccccc", "carol", Access::Read),
        ];
        for (token, name, role) in cases {
            let id = s.verify(token).unwrap();
            assert_eq!((id.name.as_str(), id.role), (*name, *role));
            assert_eq!(id.rate_limit_per_min, None);
        }
        assert_eq!(s.verify("nope"), Err(AuthError::Invalid));
        assert!(s.weak_token_names().is_empty());
    }

    #[test]
    fn file_entries_verify_by_digest_with_their_rate_limit() {
        let s = store();
        let ci = s.verify("ci-token-0123456789").unwrap();
        assert_eq!(ci.name, "ci");
        assert_eq!(ci.role, Access::Write);
        assert_eq!(ci.rate_limit_per_min, Some(120));
        assert_eq!(
            s.verify("view-token-0123456789").unwrap().role,
            Access::Read
        );
        assert_eq!(s.verify("raw-token-abcdefgh").unwrap().name, "token-1");
        assert_eq!(s.verify("ops-token-abcdefgh").unwrap().name, "ops");
        assert_eq!(s.len(), 4);
        assert_eq!(s.verify("ci-token-012345678"), Err(AuthError::Invalid));
        assert_eq!(s.verify(""), Err(AuthError::Invalid));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let digest = hash_token("x");
        let cases: Vec<(String, Option<String>)> = vec![
            ("a,,b".into(), None),
            ("bad name:tok".into(), None),
            ("n:root:tok".into(), None),
            ("a:b:c:d".into(), None),
            ("n:".into(), None),
            ("same:tok1,same:tok2".into(), None),
            ("a:tok,b:tok".into(), None),
            ("tok\u{e9}".into(), None),
            (String::new(), Some("{}".into())),
            (
                String::new(),
                Some(r#"[{"name":"a","sha256":"zz","role":"admin"}]"#.into()),
            ),
            (
                String::new(),
                Some(format!(
                    r#"[{{"name":"a","sha256":"{digest}","role":"boss"}}]"#
                )),
            ),
            (
                String::new(),
                Some(format!(
                    r#"[{{"name":"a","sha256":"{digest}","role":"admin","rateLimit":0}}]"#
                )),
            ),
            (
                String::new(),
                Some(format!(
                    r#"[{{"name":"a","sha256":"{digest}","role":"admin","ratelimit":5}}]"#
                )),
            ),
            (
                "x".into(),
                Some(format!(
                    r#"[{{"name":"b","sha256":"{digest}","role":"admin"}}]"#
                )),
            ),
            (
                "token-1:y".into(),
                Some(format!(
                    r#"[{{"name":"token-1","sha256":"{digest}","role":"admin"}}]"#
                )),
            ),
        ];
        for (list, file) in cases {
            assert!(
                TokenStore::from_config(&list, file.as_deref()).is_err(),
                "{list:?} {file:?} should fail"
            );
        }
        assert!(TokenStore::from_config("", None).unwrap().is_empty());
    }

    #[test]
    fn weak_tokens_are_reported_by_name() {
        let s = TokenStore::from_config("short:abc,long:0123456789abcdef0123", None).unwrap();
        assert_eq!(s.weak_token_names(), vec!["short"]);
    }

    #[test]
    fn authenticate_combines_extraction_and_verification() {
        let s = store();
        let ok = s.authenticate(
            h(&[("Authorization", "Bearer ci-token-0123456789")]),
            None,
            false,
        );
        assert_eq!(ok.unwrap().name, "ci");
        let bad = s.authenticate(h(&[("Authorization", "Bearer wrong")]), None, false);
        assert_eq!(bad, Err(AuthError::Invalid));
    }

    #[test]
    fn roles_allow_their_level_and_below() {
        let cases: &[(Access, Access, bool)] = &[
            (Access::Read, Access::Read, true),
            (Access::Read, Access::Write, false),
            (Access::Read, Access::Admin, false),
            (Access::Write, Access::Read, true),
            (Access::Write, Access::Write, true),
            (Access::Write, Access::Admin, false),
            (Access::Admin, Access::Read, true),
            (Access::Admin, Access::Write, true),
            (Access::Admin, Access::Admin, true),
        ];
        for (role, access, want) in cases {
            assert_eq!(role.allows(*access), *want, "{role:?} {access:?}");
        }
    }

    #[test]
    fn debug_output_never_contains_tokens_or_digests() {
        let s = store();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("\"ci\""));
        assert!(!dbg.contains(&hash_token("ci-token-0123456789")));
        assert!(!dbg.contains("raw-token-abcdefgh"));
        let c = extract_credential(h(&[("X-API-Key", "sekrit-value")]), None, false).unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
