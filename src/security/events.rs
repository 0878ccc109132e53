//! What the layers above report to security: audit events of tool calls and refusals, and the
//! request a thread is serving (its address and id), which a tool job carries to its own thread
//! so audit records name the request that caused them.
//!
//! These types live here, below `mcp/` and `tools/`, so security imports nothing above it.

use std::time::Duration;

use serde_json::Value;

use crate::access::Access;

/// Something worth an audit record.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditEvent<'a> {
    /// A tool that writes (access `Write` or `Admin`) was called and finished.
    ToolCall {
        /// Who called.
        identity: &'a str,
        /// The tool's listed name.
        tool: &'a str,
        /// Its arguments.
        arguments: &'a Value,
        /// True when it succeeded (not `isError`).
        ok: bool,
        /// The tool error code on failure.
        error_code: Option<&'a str>,
        /// How long it ran.
        elapsed: Duration,
    },
    /// A caller asked for a tool its role may not call.
    Forbidden {
        /// Who called.
        identity: &'a str,
        /// The tool's listed name.
        tool: &'a str,
        /// What the tool needs.
        required: Access,
        /// What the caller has.
        granted: Access,
    },
}

/// Where the request being handled on this thread came from, for audit records. The router sets
/// it around each request ([`with_request_scope`]); a tool job carries it to its own thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestScope {
    /// The client address (after `TRUSTED_PROXIES`).
    pub ip: Option<std::net::IpAddr>,
    /// The request id.
    pub request_id: Option<String>,
}

thread_local! {
    static REQUEST_SCOPE: std::cell::RefCell<Option<RequestScope>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `scope` as this thread's [`request_scope`], restoring the previous one after.
pub fn with_request_scope<R>(scope: Option<RequestScope>, f: impl FnOnce() -> R) -> R {
    let prev = REQUEST_SCOPE.with(|s| s.replace(scope));
    let out = f();
    REQUEST_SCOPE.with(|s| *s.borrow_mut() = prev);
    out
}

/// The scope of the request being handled on this thread, if any.
pub fn request_scope() -> Option<RequestScope> {
    REQUEST_SCOPE.with(|s| s.borrow().clone())
}
