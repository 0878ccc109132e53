//! Who is calling and what they may do: the one vocabulary the security, MCP and tool layers
//! share. A token grants an [`Access`] level (its role: `reader`, `writer`, `admin`), a tool needs
//! one, and a call is allowed when the grant is at least the need.
//!
//! This module sits below all of them and imports nothing of ours.

use serde::Serialize;

/// A permission level, ordered: each level may do everything the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads only: read-only tools; any token.
    Read,
    /// Writes to the repository: writer and admin tokens.
    Write,
    /// Administrative endpoints and tools: admin tokens only.
    Admin,
}

impl Access {
    /// True when a grant of `self` covers something that needs `needed`.
    pub fn allows(self, needed: Access) -> bool {
        self >= needed
    }

    /// The role name a token is configured with: `reader`, `writer` or `admin`.
    pub fn role_name(self) -> &'static str {
        match self {
            Access::Read => "reader",
            Access::Write => "writer",
            Access::Admin => "admin",
        }
    }

    /// Parses a role name (`reader`, `writer`, `admin`; case-insensitive).
    pub fn parse_role(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "reader" => Some(Access::Read),
            "writer" => Some(Access::Write),
            "admin" => Some(Access::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of a request, as the server's auth step established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's identity (its configured name, never the token itself).
    pub identity: String,
    /// What the token grants; a tool is callable when `grants.allows(tool.access)`.
    pub grants: Access,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_their_level_and_below() {
        let all = [Access::Read, Access::Write, Access::Admin];
        for (i, grant) in all.iter().enumerate() {
            for (j, need) in all.iter().enumerate() {
                assert_eq!(grant.allows(*need), j <= i, "{grant:?} {need:?}");
            }
            assert_eq!(Access::parse_role(grant.role_name()), Some(*grant));
        }
        assert_eq!(Access::parse_role("ADMIN"), Some(Access::Admin));
        assert_eq!(Access::parse_role("root"), None);
    }
}
