//! W3C trace context, spans, and the OTLP/HTTP JSON exporter behind a circuit breaker.
