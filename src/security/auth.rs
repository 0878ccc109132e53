//! Static API tokens: the token store, credential extraction from a request, roles and the
//! `WWW-Authenticate` challenges.
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
//!
//! ## Credentials
//! `Authorization: Bearer <t>`, `Authorization: ApiKey <t>` and `X-API-Key: <t>` are read; the
//! query parameters `token` / `access_token` only when `allow_query` is set (off by default: the
//! MCP spec forbids tokens in URLs, which end up in logs). Several credentials are fine when they
//! carry the same token; disagreeing ones are [`Malformed::Conflicting`]. An `Authorization`
//! header with another scheme (`Basic`) counts as no credential, so the client gets the 401
//! challenge that names the scheme we take.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::digest::{SHA256, digest};
use serde::Deserialize;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::access::Access;
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

/// Why a request is not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No credential was sent (→ 401 without an error code).
    Missing,
    /// A well-formed token was sent but matches no identity (→ 401 `invalid_token`).
    Invalid,
    /// The credential cannot be read (→ 400 `invalid_request`).
    Malformed(Malformed),
}

/// What is wrong with a malformed credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// `Bearer` / `ApiKey` / `X-API-Key` with nothing after it.
    EmptyToken,
    /// Bytes outside visible ASCII in the token (or in the header carrying it).
    NotVisibleAscii,
    /// Whitespace inside the token, or a token longer than [`MAX_TOKEN_BYTES`].
    BadSyntax,
    /// Two credentials (headers or a header and the query) carry different tokens.
    Conflicting,
    /// The query parameter is not valid percent-encoding.
    BadQueryEncoding,
}

/// Where a credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: ApiKey`.
    ApiKeyScheme,
    /// `X-API-Key`.
    ApiKeyHeader,
    /// `token=` / `access_token=` in the query (only with `allow_query`).
    Query,
}

/// A presented token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    token: String,
    /// Where it came from (the first source seen).
    pub source: CredentialSource,
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

impl AuthError {
    /// The HTTP status: 401 for [`AuthError::Missing`] and [`AuthError::Invalid`], 400 for
    /// [`AuthError::Malformed`].
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid => 401,
            AuthError::Malformed(_) => 400,
        }
    }

    /// A short stable word for logs, audit records and metrics: `missing`, `invalid`,
    /// `malformed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid => "invalid",
            AuthError::Malformed(_) => "malformed",
        }
    }

    /// The `WWW-Authenticate` value for this failure (RFC 6750 §3):
    /// `Bearer realm="task-mcp"`, plus `error="invalid_token"` or `error="invalid_request"` and an
    /// `error_description` when a credential was sent, plus `resource_metadata="…"` when
    /// `resource_metadata` (the RFC 9728 metadata URL) is set.
    pub fn www_authenticate(&self, resource_metadata: Option<&str>) -> String {
        let mut v = format!("Bearer realm=\"{REALM}\"");
        match self {
            AuthError::Missing => {}
            AuthError::Invalid => {
                v.push_str(", error=\"invalid_token\", error_description=\"");
                v.push_str("The access token is not valid");
                v.push('"');
            }
            AuthError::Malformed(m) => {
                v.push_str(", error=\"invalid_request\", error_description=\"");
                v.push_str(m.description());
                v.push('"');
            }
        }
        push_resource_metadata(&mut v, resource_metadata);
        v
    }
}

impl Malformed {
    /// One sentence for the client (no quotes or backslashes: it goes into a quoted-string).
    pub fn description(&self) -> &'static str {
        match self {
            Malformed::EmptyToken => "The credential is empty",
            Malformed::NotVisibleAscii => "The credential holds characters outside visible ASCII",
            Malformed::BadSyntax => "The credential is not a single token",
            Malformed::Conflicting => "The request carries different credentials",
            Malformed::BadQueryEncoding => "The query credential is not valid percent-encoding",
        }
    }
}

impl Credential {
    /// The token (never log it).
    pub fn token(&self) -> &str {
        &self.token
    }
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

    /// Extracts the credential from the request (see [`extract_credential`]) and verifies it.
    ///
    /// # Errors
    /// As [`extract_credential`] and [`TokenStore::verify`].
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

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"<redacted>")
            .field("source", &self.source)
            .finish()
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

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no credential"),
            AuthError::Invalid => f.write_str("invalid token"),
            AuthError::Malformed(m) => write!(f, "malformed credential: {}", m.description()),
        }
    }
}

impl std::error::Error for AuthError {}

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

/// The credential of a request, from its headers (`(name, value)` pairs, names in any case, as
/// httparse gives them) and, with `allow_query`, its query string (without the `?`).
///
/// # Errors
/// [`AuthError::Missing`] when nothing usable was sent, [`AuthError::Malformed`] as described in
/// the module docs.
pub fn extract_credential<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    query: Option<&str>,
    allow_query: bool,
) -> Result<Credential, AuthError> {
    let mut found: Option<Credential> = None;
    for (name, value) in headers {
        let candidate = if name.eq_ignore_ascii_case("authorization") {
            parse_authorization(value)?
        } else if name.eq_ignore_ascii_case("x-api-key") {
            Some((
                check_token(trim_ows(value))?,
                CredentialSource::ApiKeyHeader,
            ))
        } else {
            None
        };
        if let Some((token, source)) = candidate {
            merge(&mut found, token, source)?;
        }
    }
    if allow_query && let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "token" || k == "access_token" {
                let decoded = crate::security::percent_decode(v, true)
                    .ok_or(AuthError::Malformed(Malformed::BadQueryEncoding))?;
                let token = check_token(&decoded)?;
                merge(&mut found, token, CredentialSource::Query)?;
            }
        }
    }
    found.ok_or(AuthError::Missing)
}

/// The `WWW-Authenticate` value of a 403 for a role that lacks `needed`:
/// `Bearer error="insufficient_scope", scope="…"` (+ `resource_metadata`).
pub fn www_authenticate_forbidden(needed: Access, resource_metadata: Option<&str>) -> String {
    let mut v = format!(
        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
        scope(needed)
    );
    push_resource_metadata(&mut v, resource_metadata);
    v
}

/// The OAuth-style scope naming an access level: `mcp:read`, `mcp:write`, `mcp:admin`.
pub fn scope(needed: Access) -> &'static str {
    match needed {
        Access::Read => "mcp:read",
        Access::Write => "mcp:write",
        Access::Admin => "mcp:admin",
    }
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

/// `Authorization` value → a credential when the scheme is ours, `None` for other schemes.
fn parse_authorization(value: &[u8]) -> Result<Option<(String, CredentialSource)>, AuthError> {
    let value = trim_ows(value);
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &[][..]),
    };
    let source = if scheme.eq_ignore_ascii_case(b"bearer") {
        CredentialSource::Bearer
    } else if scheme.eq_ignore_ascii_case(b"apikey") {
        CredentialSource::ApiKeyScheme
    } else {
        return Ok(None);
    };
    Ok(Some((check_token(trim_ows(rest))?, source)))
}

/// A presented token: non-empty, visible ASCII, no spaces, bounded.
fn check_token(raw: impl AsRef<[u8]>) -> Result<String, AuthError> {
    let raw = raw.as_ref();
    if raw.is_empty() {
        return Err(AuthError::Malformed(Malformed::EmptyToken));
    }
    if raw
        .iter()
        .any(|&b| !(b == b' ' || b == b'\t' || is_token_byte(b)))
    {
        return Err(AuthError::Malformed(Malformed::NotVisibleAscii));
    }
    if raw.len() > MAX_TOKEN_BYTES || !raw.iter().all(|&b| is_token_byte(b)) {
        return Err(AuthError::Malformed(Malformed::BadSyntax));
    }
    // Every byte is visible ASCII (checked above).
    Ok(raw.iter().map(|&b| char::from(b)).collect())
}

fn merge(
    found: &mut Option<Credential>,
    token: String,
    source: CredentialSource,
) -> Result<(), AuthError> {
    match found {
        None => {
            *found = Some(Credential { token, source });
            Ok(())
        }
        Some(prev) => {
            let same: bool = prev.token.as_bytes().ct_eq(token.as_bytes()).into();
            if same {
                Ok(())
            } else {
                Err(AuthError::Malformed(Malformed::Conflicting))
            }
        }
    }
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// Visible ASCII except `,` (the `AUTH_TOKENS` separator).
fn is_token_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn push_resource_metadata(v: &mut String, resource_metadata: Option<&str>) {
    if let Some(url) = resource_metadata {
        v.push_str(", resource_metadata=\"");
        // A URL has no quotes or backslashes; drop any so the quoted-string stays well formed.
        v.extend(url.chars().filter(|c| *c != '"' && *c != '\\'));
        v.push('"');
    }
}

/// The realm named in every challenge.
const REALM: &str = "task-mcp";
/// Presented tokens longer than this are refused before hashing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Tokens shorter than this (in bytes) are reported by [`TokenStore::weak_token_names`].
pub const MIN_STRONG_TOKEN_BYTES: usize = 16;
const MAX_NAME_BYTES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    type Headers = &'static [(&'static str, &'static str)];

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
    fn credentials_are_extracted_from_every_supported_place() {
        let ok: &[(Headers, Option<&str>, bool, &str, CredentialSource)] = &[
            (
                &[("Authorization", "Bearer abc")],
                None,
                false,
                "abc",
                CredentialSource::Bearer,
            ),
            (
                &[("authorization", "bearer   abc  ")],
                None,
                false,
                "abc",
                CredentialSource::Bearer,
            ),
            (
                &[("AUTHORIZATION", "BEARER abc")],
                None,
                false,
                "abc",
                CredentialSource::Bearer,
            ),
            (
                &[("Authorization", "ApiKey k1")],
                None,
                false,
                "k1",
                CredentialSource::ApiKeyScheme,
            ),
            (
                &[("X-API-Key", "k2")],
                None,
                false,
                "k2",
                CredentialSource::ApiKeyHeader,
            ),
            (
                &[("x-api-key", " k2 ")],
                None,
                false,
                "k2",
                CredentialSource::ApiKeyHeader,
            ),
            (
                &[("Authorization", "Bearer same"), ("X-API-Key", "same")],
                None,
                false,
                "same",
                CredentialSource::Bearer,
            ),
            (
                &[("Authorization", "Bearer a+b/c=")],
                Some("token=a%2Bb%2Fc%3D"),
                true,
                "a+b/c=",
                CredentialSource::Bearer,
            ),
            (
                &[],
                Some("x=1&access_token=q%21"),
                true,
                "q!",
                CredentialSource::Query,
            ),
            (&[], Some("token=qq"), true, "qq", CredentialSource::Query),
            // Another scheme next to ours is ignored.
            (
                &[("Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", "k")],
                None,
                false,
                "k",
                CredentialSource::ApiKeyHeader,
            ),
        ];
        for (headers, query, allow, token, source) in ok {
            let c = extract_credential(h(headers), *query, *allow)
                .unwrap_or_else(|e| panic!("{headers:?} {query:?}: {e}"));
            assert_eq!((c.token(), c.source), (*token, *source), "{headers:?}");
        }
    }

    #[test]
    fn bad_or_absent_credentials_are_classified() {
        use Malformed::*;
        let bad: &[(Headers, Option<&str>, bool, AuthError)] = &[
            (&[], None, false, AuthError::Missing),
            (
                &[("Authorization", "Basic dXNlcjpwYXNz")],
                None,
                false,
                AuthError::Missing,
            ),
            (&[], Some("token=abc"), false, AuthError::Missing),
            (
                &[("Authorization", "Bearer")],
                None,
                false,
                AuthError::Malformed(EmptyToken),
            ),
            (
                &[("Authorization", "Bearer   ")],
                None,
                false,
                AuthError::Malformed(EmptyToken),
            ),
            (
                &[("X-API-Key", "")],
                None,
                false,
                AuthError::Malformed(EmptyToken),
            ),
            (
                &[("Authorization", "Bearer a b")],
                None,
                false,
                AuthError::Malformed(BadSyntax),
            ),
            (
                &[("Authorization", "Bearer t\u{f6}k")],
                None,
                false,
                AuthError::Malformed(NotVisibleAscii),
            ),
            (
                &[("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
                None,
                false,
                AuthError::Malformed(Conflicting),
            ),
            (
                &[("Authorization", "Bearer a"), ("X-API-Key", "b")],
                None,
                false,
                AuthError::Malformed(Conflicting),
            ),
            (
                &[("Authorization", "Bearer a")],
                Some("token=b"),
                true,
                AuthError::Malformed(Conflicting),
            ),
            (
                &[],
                Some("token=%zz"),
                true,
                AuthError::Malformed(BadQueryEncoding),
            ),
            (
                &[],
                Some("token=%ff"),
                true,
                AuthError::Malformed(BadQueryEncoding),
            ),
            (&[], Some("token="), true, AuthError::Malformed(EmptyToken)),
        ];
        for (headers, query, allow, want) in bad {
            assert_eq!(
                extract_credential(h(headers), *query, *allow),
                Err(*want),
                "{headers:?} {query:?}"
            );
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            extract_credential(h(&[("Authorization", &huge)]), None, false),
            Err(AuthError::Malformed(BadSyntax))
        );
        let raw: Vec<(&str, &[u8])> = vec![("Authorization", b"Bearer \xff\xfe")];
        assert_eq!(
            extract_credential(raw, None, false),
            Err(AuthError::Malformed(NotVisibleAscii))
        );
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
    fn challenges_have_the_exact_documented_shape() {
        let md = Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        let cases: Vec<(String, &str)> = vec![
            (
                AuthError::Missing.www_authenticate(None),
                r#"Bearer realm="task-mcp""#,
            ),
            (
                AuthError::Invalid.www_authenticate(None),
                r#"Bearer realm="task-mcp", error="invalid_token", error_description="The access token is not valid""#,
            ),
            (
                AuthError::Malformed(Malformed::Conflicting).www_authenticate(None),
                r#"Bearer realm="task-mcp", error="invalid_request", error_description="The request carries different credentials""#,
            ),
            (
                AuthError::Missing.www_authenticate(md),
                r#"Bearer realm="task-mcp", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#,
            ),
            (
                www_authenticate_forbidden(Access::Write, None),
                r#"Bearer realm="task-mcp", error="insufficient_scope", scope="mcp:write""#,
            ),
            (
                www_authenticate_forbidden(Access::Admin, Some("https://x/\"evil")),
                r#"Bearer realm="task-mcp", error="insufficient_scope", scope="mcp:admin", resource_metadata="https://x/evil""#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(AuthError::Missing.status(), 401);
        assert_eq!(AuthError::Invalid.status(), 401);
        assert_eq!(AuthError::Malformed(Malformed::EmptyToken).status(), 400);
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

    #[test]
    fn random_header_bytes_never_panic_and_yield_only_clean_tokens() {
        let mut rng = crate::security::TestRng(0x0ddb_a115_eedf_00d1);
        let alphabet = b"Bearer ApiKey\t ,=%+abc";
        let names = ["Authorization", "X-API-Key", "Other"];
        for _ in 0..20_000 {
            let v1 = rng.bytes(24, alphabet);
            let v2 = rng.bytes(24, alphabet);
            let q = String::from_utf8_lossy(&rng.bytes(24, b"token=access_&%2B41")).into_owned();
            let n1 = names[rng.below(3) as usize];
            let n2 = names[rng.below(3) as usize];
            let headers: Vec<(&str, &[u8])> = vec![(n1, &v1), (n2, &v2)];
            if let Ok(c) = extract_credential(headers, Some(&q), true) {
                assert!(!c.token().is_empty());
                assert!(c.token().bytes().all(is_token_byte), "{:?}", c.token());
            }
        }
    }
}
