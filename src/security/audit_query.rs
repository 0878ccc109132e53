//! `GET /security/audit`'s filters, without I/O: a query string becomes an [`AuditQuery`] or a
//! message naming what is wrong, and [`AuditQuery::apply`] picks records from the ring.

use std::str::FromStr;

use crate::security::audit::{AuditRecord, EventKind};

/// The filters of one audit query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this identity.
    pub identity: Option<String>,
    /// Only this kind of event.
    pub event: Option<EventKind>,
    /// Only records at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// At most this many records, the newest.
    pub limit: usize,
}

/// The query parameters `GET /security/audit` takes.
pub const PARAMS: [&str; 4] = ["identity", "event", "since", "limit"];

/// Records returned when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 100;

const EVENTS: [(&str, EventKind); 4] = [
    ("auth_failure", EventKind::AuthFailure),
    ("forbidden", EventKind::Forbidden),
    ("rate_limited", EventKind::RateLimited),
    ("tool_call", EventKind::ToolCall),
];

impl AuditQuery {
    /// Parses `identity`, `event`, `since` (RFC 3339) and `limit` (1 to `max_limit`, the ring's
    /// size) from a raw query string. Unknown or repeated parameters are refused, so a typo
    /// never silently widens the answer.
    ///
    /// # Errors
    /// What is wrong, in one sentence.
    pub fn parse(query: Option<&str>, max_limit: usize) -> Result<Self, String> {
        let mut q = AuditQuery {
            identity: None,
            event: None,
            since: None,
            limit: DEFAULT_LIMIT.min(max_limit.max(1)),
        };
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(name) = PARAMS.iter().find(|p| **p == k) else {
                return Err(format!(
                    "unknown parameter `{k}`; use {}",
                    PARAMS.join(", ")
                ));
            };
            if seen.contains(name) {
                return Err(format!("`{name}` is given twice"));
            }
            seen.push(name);
            let v = crate::security::percent_decode(raw, true)
                .ok_or_else(|| format!("`{name}` is not valid percent-encoding"))?;
            match *name {
                "identity" => q.identity = Some(v),
                "event" => {
                    let kind = EVENTS.iter().find(|(n, _)| *n == v).map(|(_, k)| *k);
                    let names: Vec<&str> = EVENTS.iter().map(|(n, _)| *n).collect();
                    q.event =
                        Some(kind.ok_or_else(|| {
                            format!("unknown event `{v}`; use {}", names.join(", "))
                        })?);
                }
                "since" => {
                    q.since = Some(jiff::Timestamp::from_str(&v).map_err(|_| {
                        format!("`since` must be an RFC 3339 time such as 2026-01-31T12:00:00Z, not `{v}`")
                    })?);
                }
                _ => {
                    q.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=max_limit).contains(n))
                        .ok_or_else(|| format!("`limit` must be 1 to {max_limit}"))?;
                }
            }
        }
        Ok(q)
    }

    /// The matching records of `ring` (oldest first), the newest `limit` of them, oldest first.
    pub fn apply(&self, ring: Vec<AuditRecord>) -> Vec<AuditRecord> {
        let mut hits: Vec<AuditRecord> = ring
            .into_iter()
            .filter(|r| {
                self.identity
                    .as_deref()
                    .is_none_or(|id| r.identity.as_deref() == Some(id))
            })
            .filter(|r| self.event.is_none_or(|e| r.event == e))
            .filter(|r| {
                self.since
                    .is_none_or(|since| jiff::Timestamp::from_str(&r.ts).is_ok_and(|t| t >= since))
            })
            .collect();
        let skip = hits.len().saturating_sub(self.limit);
        hits.drain(..skip);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, ts: &str, identity: &str, event: EventKind) -> AuditRecord {
        AuditRecord {
            ts: ts.into(),
            seq,
            event,
            identity: Some(identity.into()),
            ip: None,
            tool: None,
            slug: None,
            outcome: "ok".into(),
            duration_ms: None,
            request_id: None,
            prev: String::new(),
            hash: String::new(),
        }
    }

    fn ring() -> Vec<AuditRecord> {
        vec![
            rec(1, "2026-12-01T10:00:00.000Z", "alice", EventKind::ToolCall),
            rec(2, "2026-12-02T10:00:00.000Z", "bob", EventKind::AuthFailure),
            rec(3, "2026-12-03T10:00:00.000Z", "alice", EventKind::Forbidden),
            rec(4, "2026-12-04T10:00:00.000Z", "alice", EventKind::ToolCall),
        ]
    }

    fn seqs(q: &str) -> Vec<u64> {
        AuditQuery::parse(Some(q), 1000)
            .unwrap()
            .apply(ring())
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    #[test]
    fn filters_combine_and_the_limit_keeps_the_newest() {
        assert_eq!(seqs(""), [1, 2, 3, 4]);
        assert_eq!(seqs("identity=alice"), [1, 3, 4]);
        assert_eq!(seqs("identity=alice&event=tool_call"), [1, 4]);
        assert_eq!(seqs("since=2026-12-02T10%3A00%3A00Z"), [2, 3, 4]);
        assert_eq!(seqs("since=2026-12-03T00:00:00%2B01:00"), [3, 4]);
        assert_eq!(seqs("limit=2"), [3, 4]);
        assert_eq!(seqs("identity=carol"), Vec::<u64>::new());
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        for (q, says) in [
            ("who=alice", "unknown parameter `who`"),
            ("event=login", "unknown event `login`"),
            ("since=yesterday", "RFC 3339"),
            ("limit=0", "1 to 50"),
            ("limit=51", "1 to 50"),
            ("limit=x", "1 to 50"),
            ("identity=a&identity=b", "twice"),
            ("identity=%zz", "percent-encoding"),
        ] {
            let e = AuditQuery::parse(Some(q), 50).unwrap_err();
            assert!(e.contains(says), "{q}: {e}");
        }
        assert_eq!(AuditQuery::parse(None, 50).unwrap().limit, 50);
    }
}
