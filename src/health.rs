//! The health registry: named checks, each HEALTHY, DEGRADED or UNHEALTHY with detail.
