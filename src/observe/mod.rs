//! What the server tells its operators: [`metrics`] (the Prometheus exposition), [`trace`] (OTLP
//! traces and metrics), [`health`] (liveness, readiness and the checks behind them) and
//! `logging` (JSON log lines, the access log).

pub mod health;
pub(crate) mod logging;
pub mod metrics;
pub mod trace;
