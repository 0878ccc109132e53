//! Authentication, roles, rate limiting, CORS, network limits and the audit log.
