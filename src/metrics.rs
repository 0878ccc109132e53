//! The Prometheus exporter: counters, gauges and histograms on atomics, rendered by hand.
