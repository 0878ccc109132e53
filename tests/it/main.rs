mod health_checks;
mod trace_export;
