//! Reading a request's credential, without I/O: `Authorization: Bearer <t>`,
//! `Authorization: ApiKey <t>` and `X-API-Key: <t>`; the query parameters `token` /
//! `access_token` only when `allow_query` is set (off by default: the MCP spec forbids tokens in
//! URLs, which end up in logs). Several credentials are fine when they carry the same token;
//! disagreeing ones are [`Malformed::Conflicting`]. An `Authorization` header with another scheme
//! (`Basic`) counts as no credential, so the client gets the 401 challenge that names the scheme
//! we take, and the challenges (`WWW-Authenticate`) of a refusal. `auth.rs` checks the token
//! against the store.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::access::Access;

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
    /// Whitespace inside the token, or a token longer than `MAX_TOKEN_BYTES`.
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

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"<redacted>")
            .field("source", &self.source)
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
pub(crate) fn is_token_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// Presented tokens longer than this are refused before hashing.
pub const MAX_TOKEN_BYTES: usize = 4096;

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

#[cfg(test)]
mod tests {
    use super::*;

    type Headers = &'static [(&'static str, &'static str)];

    fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
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
}
