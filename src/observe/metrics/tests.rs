//! Tests of the exporter: whole expositions, bucket arithmetic, collapsing, concurrency, and the
//! real `promtool check metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The buckets of `name` for one label set, e.g. `("http_server_request_duration_seconds",
/// "method=\"GET\",route=\"/mcp\"")`, as (le, cumulative count) pairs.
fn buckets(exposition: &str, name: &str, labels: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}_bucket{{{labels},le=\"");
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").unwrap();
            (le.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn encoded(m: &Metrics) -> String {
    let mut out = String::new();
    m.encode(&mut out, None).unwrap();
    out
}

/// Emits a histogram's expected lines from its raw observations, independently of the encoder:
/// for each bound, how many observations are `<=` it.
fn expected_histogram(
    name: &str,
    labels: &str,
    bounds: &[(f64, &str)],
    obs: &[f64],
    sum: &str,
) -> String {
    let mut s = String::new();
    for (bound, label) in bounds {
        let n = obs.iter().filter(|o| **o <= *bound).count();
        s += &format!("{name}_bucket{{{labels},le=\"{label}\"}} {n}\n");
    }
    s += &format!("{name}_bucket{{{labels},le=\"+Inf\"}} {}\n", obs.len());
    s += &format!(
        "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {}\n",
        obs.len()
    );
    s
}

const HTTP_LE: &[(f64, &str)] = &[
    (0.0005, "0.0005"),
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.2, "0.2"),
    (0.3, "0.3"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
];

const TOOL_LE: &[(f64, &str)] = &[
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (0.75, "0.75"),
    (1.0, "1"),
    (2.0, "2"),
    (4.0, "4"),
    (10.0, "10"),
    (30.0, "30"),
];

#[test]
fn a_small_scenario_renders_exactly_the_expected_exposition() {
    let m = Metrics::new(&["change_open"], &["/mcp"]);
    m.request_started();
    m.request_started();
    m.request_started();
    m.request_finished("POST", "/mcp", 200, ms(3));
    m.request_finished("POST", "/mcp", 200, ms(250));
    m.request_finished("GET", "/nowhere", 404, ms(1));
    m.connection_opened();
    m.tls_handshake_failed();
    m.tool_started("change_open");
    m.tool_started("change_open");
    m.tool_finished("change_open", ToolOutcome::Ok, ms(40));
    m.tool_finished(
        "change_open",
        ToolOutcome::ClientError("ENOCHANGE"),
        ms(600),
    );
    m.stream_opened(Transport::Ndjson);
    m.stream_sent(Transport::Ndjson, 120);
    m.stream_sent(Transport::Ndjson, 30);
    m.auth(AuthResult::Success);
    m.auth(AuthResult::Missing);
    m.rate_limited(RateScope::Ip);
    m.set_health("disk", HealthLevel::Degraded);
    m.set_health("repo", HealthLevel::Healthy);
    m.span_dropped();
    m.export_failed();
    m.export_failed();

    let process = ProcessStats {
        cpu_seconds: Some(1.25),
        resident_memory_bytes: Some(10_485_760),
        virtual_memory_bytes: Some(104_857_600),
        open_fds: Some(12),
        max_fds: Some(1024),
        start_time_seconds: Some(1_700_000_000.5),
        threads: Some(9),
        memory_limit_bytes: Some(2_147_483_648),
    };
    let mut out = String::new();
    m.encode(&mut out, Some(&process)).unwrap();

    let version = env!("CARGO_PKG_VERSION");
    let mut want = format!(
        "# HELP build_info Build of the running server; always 1.\n\
         # TYPE build_info gauge\n\
         build_info{{version=\"{version}\"}} 1\n\
         # HELP http_server_requests_total HTTP requests answered, by method, route and status.\n\
         # TYPE http_server_requests_total counter\n\
         http_server_requests_total{{method=\"GET\",route=\"other\",status=\"404\"}} 1\n\
         http_server_requests_total{{method=\"POST\",route=\"/mcp\",status=\"200\"}} 2\n\
         # HELP http_server_request_duration_seconds HTTP request latency from head read to response head sent, in seconds.\n\
         # TYPE http_server_request_duration_seconds histogram\n"
    );
    want += &expected_histogram(
        "http_server_request_duration_seconds",
        "method=\"GET\",route=\"other\"",
        HTTP_LE,
        &[0.001],
        "0.001",
    );
    want += &expected_histogram(
        "http_server_request_duration_seconds",
        "method=\"POST\",route=\"/mcp\"",
        HTTP_LE,
        &[0.003, 0.25],
        "0.253",
    );
    want += "# HELP http_server_active_requests HTTP requests being handled.\n\
             # TYPE http_server_active_requests gauge\n\
             http_server_active_requests 0\n\
             # HELP http_server_connections_active Client connections open.\n\
             # TYPE http_server_connections_active gauge\n\
             http_server_connections_active 1\n\
             # HELP tls_handshake_failures_total TLS handshakes that failed.\n\
             # TYPE tls_handshake_failures_total counter\n\
             tls_handshake_failures_total 1\n\
             # HELP config_reloads_total Reloads of the certificate and the tokens file (SIGHUP or a change on disk), by outcome; on error the old one stays in use.\n\
             # TYPE config_reloads_total counter\n\
             config_reloads_total{what=\"tls\",outcome=\"ok\"} 0\n\
             config_reloads_total{what=\"tls\",outcome=\"error\"} 0\n\
             config_reloads_total{what=\"tokens\",outcome=\"ok\"} 0\n\
             config_reloads_total{what=\"tokens\",outcome=\"error\"} 0\n\
             # HELP tool_executions_total Tool executions finished, by tool and status (ok, client_error: the caller's mistake, server_error: the server failed).\n\
             # TYPE tool_executions_total counter\n\
             tool_executions_total{tool=\"change_open\",status=\"ok\"} 1\n\
             tool_executions_total{tool=\"change_open\",status=\"client_error\"} 1\n\
             tool_executions_total{tool=\"change_open\",status=\"server_error\"} 0\n\
             tool_executions_total{tool=\"other\",status=\"ok\"} 0\n\
             tool_executions_total{tool=\"other\",status=\"client_error\"} 0\n\
             tool_executions_total{tool=\"other\",status=\"server_error\"} 0\n\
             # HELP tool_errors_total Failed tool executions, by error code and fault (client or server); codes outside the known list are `other`.\n\
             # TYPE tool_errors_total counter\n\
             tool_errors_total{code=\"EBADARGS\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBAD\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EINVALID_ARGUMENTS\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSLUG\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ENOCHANGE\",fault=\"client\"} 1\n\
             tool_errors_total{code=\"EARCHIVED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ENOTARCHIVED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EEXISTS\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ELOCKED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EPATH_ESCAPE\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_PROPOSAL_MISSING\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_SPECS_MISSING\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_SPECS_INVALID\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_SIZE_EXCEEDED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_SECURITY_VIOLATION\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EBADSHAPE_CONTENT_BINARY\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ERESPONSE_TOO_LARGE\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ECLIENT_CAPABILITY\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ECLIENT_REFUSED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ECLIENT_TIMEOUT\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ENO_STREAM\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ECANCELLED\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"ETEST\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_change_not_found\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_change_name_invalid\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_change_symlink\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_confirmation_required\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_target_exists\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_tasks_incomplete\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_validation_failed\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"archive_spec_validation_failed\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"unarchive_specs_changed\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"unarchive_no_record\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"unarchive_change_exists\",fault=\"client\"} 0\n\
             tool_errors_total{code=\"EINTERNAL\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"EIO\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"ESHUTDOWN\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"archive_spec_update_failed\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"archive_error\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"unarchive_io\",fault=\"server\"} 0\n\
             tool_errors_total{code=\"other\",fault=\"server\"} 0\n\
             # HELP tool_execution_duration_seconds Tool execution time, in seconds.\n\
             # TYPE tool_execution_duration_seconds histogram\n";
    want += &expected_histogram(
        "tool_execution_duration_seconds",
        "tool=\"change_open\"",
        TOOL_LE,
        &[0.04, 0.6],
        "0.64",
    );
    want += &expected_histogram(
        "tool_execution_duration_seconds",
        "tool=\"other\"",
        TOOL_LE,
        &[],
        "0",
    );
    want += "# HELP tool_active_executions Tool executions in progress, by tool.\n\
             # TYPE tool_active_executions gauge\n\
             tool_active_executions{tool=\"change_open\"} 0\n\
             tool_active_executions{tool=\"other\"} 0\n\
             # HELP streaming_active_connections Streams open, by transport.\n\
             # TYPE streaming_active_connections gauge\n\
             streaming_active_connections{transport=\"sse\"} 0\n\
             streaming_active_connections{transport=\"mcp_sse\"} 0\n\
             streaming_active_connections{transport=\"legacy_sse\"} 0\n\
             streaming_active_connections{transport=\"ndjson\"} 1\n\
             # HELP streaming_messages_total Messages written on streams, by transport.\n\
             # TYPE streaming_messages_total counter\n\
             streaming_messages_total{transport=\"sse\"} 0\n\
             streaming_messages_total{transport=\"mcp_sse\"} 0\n\
             streaming_messages_total{transport=\"legacy_sse\"} 0\n\
             streaming_messages_total{transport=\"ndjson\"} 2\n\
             # HELP streaming_bytes_transferred_total Bytes written on streams, framing included, by transport.\n\
             # TYPE streaming_bytes_transferred_total counter\n\
             streaming_bytes_transferred_total{transport=\"sse\"} 0\n\
             streaming_bytes_transferred_total{transport=\"mcp_sse\"} 0\n\
             streaming_bytes_transferred_total{transport=\"legacy_sse\"} 0\n\
             streaming_bytes_transferred_total{transport=\"ndjson\"} 150\n\
             # HELP auth_attempts_total Authentication decisions, by result (success, failure, missing, forbidden).\n\
             # TYPE auth_attempts_total counter\n\
             auth_attempts_total{result=\"success\"} 1\n\
             auth_attempts_total{result=\"failure\"} 0\n\
             auth_attempts_total{result=\"missing\"} 1\n\
             auth_attempts_total{result=\"forbidden\"} 0\n\
             # HELP rate_limit_hits_total Requests refused by the rate limiter, by scope (token or ip).\n\
             # TYPE rate_limit_hits_total counter\n\
             rate_limit_hits_total{scope=\"token\"} 0\n\
             rate_limit_hits_total{scope=\"ip\"} 1\n\
             # HELP health_check_status Health check state: 1 healthy, 0.5 degraded, 0 unhealthy.\n\
             # TYPE health_check_status gauge\n\
             health_check_status{check=\"disk\"} 0.5\n\
             health_check_status{check=\"repo\"} 1\n\
             # HELP trace_spans_dropped_total Spans dropped before export (queue full or exporter breaker open).\n\
             # TYPE trace_spans_dropped_total counter\n\
             trace_spans_dropped_total 1\n\
             # HELP trace_export_failures_total OTLP trace export attempts that failed.\n\
             # TYPE trace_export_failures_total counter\n\
             trace_export_failures_total 2\n\
             # HELP process_cpu_seconds_total Total user and system CPU time spent, in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.25\n\
             # HELP process_resident_memory_bytes Resident memory size, in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 10485760\n\
             # HELP process_virtual_memory_bytes Virtual memory size, in bytes.\n\
             # TYPE process_virtual_memory_bytes gauge\n\
             process_virtual_memory_bytes 104857600\n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 12\n\
             # HELP process_max_fds Maximum number of open file descriptors (soft limit).\n\
             # TYPE process_max_fds gauge\n\
             process_max_fds 1024\n\
             # HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.\n\
             # TYPE process_start_time_seconds gauge\n\
             process_start_time_seconds 1700000000.5\n\
             # HELP process_threads Number of OS threads in the process.\n\
             # TYPE process_threads gauge\n\
             process_threads 9\n\
             # HELP process_memory_limit_bytes Memory the process may use, in bytes: its cgroup memory.max, else the host's MemTotal.\n\
             # TYPE process_memory_limit_bytes gauge\n\
             process_memory_limit_bytes 2147483648\n";
    // The per-method and per-stream histogram families are checked on their own below: their
    // hundreds of zero lines would drown this scenario.
    let large = [
        "http_server_response_body_bytes",
        "mcp_requests_total",
        "mcp_request_duration_seconds",
        "streaming_duration_seconds",
        "streaming_first_event_seconds",
    ];
    let out: String = out
        .split_inclusive('\n')
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            !large.iter().any(|f| {
                name.strip_prefix(f)
                    .is_some_and(|r| r.starts_with([' ', '{', '_']))
            })
        })
        .collect();
    assert_eq!(out, want);
}

#[test]
fn mcp_requests_count_by_method_transport_and_outcome_and_streams_time_their_first_event() {
    let m = Metrics::new(&["echo"], &["/mcp"]);
    m.mcp_request(
        "tools/list",
        RpcTransport::StreamableHttp,
        RpcOutcome::Ok,
        ms(2),
    );
    m.mcp_request(
        "tools/call",
        RpcTransport::LegacySse,
        RpcOutcome::ClientError,
        ms(40),
    );
    m.mcp_request(
        "nope/nope",
        RpcTransport::StreamableHttp,
        RpcOutcome::ClientError,
        ms(1),
    );
    m.stream_opened(Transport::Sse);
    m.stream_first_event(Transport::Sse, ms(3));
    m.stream_closed(Transport::Sse, Duration::from_secs(90));
    let out = encoded(&m);
    for line in [
        "mcp_requests_total{method=\"tools/list\",transport=\"streamable_http\",outcome=\"ok\"} 1\n",
        "mcp_requests_total{method=\"tools/call\",transport=\"legacy_sse\",outcome=\"client_error\"} 1\n",
        "mcp_requests_total{method=\"other\",transport=\"streamable_http\",outcome=\"client_error\"} 1\n",
        "mcp_requests_total{method=\"ping\",transport=\"legacy_sse\",outcome=\"server_error\"} 0\n",
        "mcp_request_duration_seconds_bucket{method=\"tools/call\",le=\"0.05\"} 1\n",
        "mcp_request_duration_seconds_count{method=\"tools/list\"} 1\n",
        "streaming_first_event_seconds_bucket{transport=\"sse\",le=\"0.005\"} 1\n",
        "streaming_duration_seconds_bucket{transport=\"sse\",le=\"60\"} 0\n",
        "streaming_duration_seconds_bucket{transport=\"sse\",le=\"300\"} 1\n",
    ] {
        assert!(out.contains(line), "missing {line:?}");
    }
    let series = out
        .lines()
        .filter(|l| l.starts_with("mcp_requests_total{"))
        .count();
    assert_eq!(
        series,
        MCP_METHODS.len() * 2 * 3,
        "bounded: every method, transport, outcome"
    );
}

#[test]
fn histogram_buckets_in_the_exposition_are_cumulative_and_end_at_the_count() {
    let m = Metrics::new(&["t"], &["/mcp"]);
    let durations = [0, 1, 2, 7, 7, 90, 150, 199, 201, 480, 999, 4_000, 60_000];
    for d in durations {
        m.request_finished("GET", "/mcp", 200, ms(d));
        m.tool_finished("t", ToolOutcome::Ok, ms(d));
    }
    let out = encoded(&m);
    for (name, labels) in [
        (
            "http_server_request_duration_seconds",
            "method=\"GET\",route=\"/mcp\"",
        ),
        ("tool_execution_duration_seconds", "tool=\"t\""),
    ] {
        let b = buckets(&out, name, labels);
        assert_eq!(b.len(), 16, "15 bounds and +Inf for {name}");
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name} not cumulative: {b:?}"
        );
        assert_eq!(
            b.last().unwrap(),
            &("+Inf".to_owned(), durations.len() as u64)
        );
        for (le, count) in &b[..15] {
            let bound: f64 = le.parse().unwrap();
            let want = durations
                .iter()
                .filter(|d| **d as f64 / 1000.0 <= bound)
                .count() as u64;
            assert_eq!(*count, want, "{name} le={le}");
        }
        assert!(out.contains(&format!("{name}_count{{{labels}}} {}\n", durations.len())));
    }
}

#[test]
fn label_values_are_escaped_in_samples() {
    let tool: &'static str = "we\"ird\\tool\nname";
    let m = Metrics::new(&[tool], &[]);
    m.tool_finished(tool, ToolOutcome::Ok, ms(1));
    m.set_health("quote\"check", HealthLevel::Unhealthy);
    let out = encoded(&m);
    assert!(
        out.contains("tool_executions_total{tool=\"we\\\"ird\\\\tool\\nname\",status=\"ok\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("health_check_status{check=\"quote\\\"check\"} 0\n"),
        "{out}"
    );
}

#[test]
fn unknown_methods_routes_tools_and_statuses_collapse_into_bounded_buckets() {
    let m = Metrics::new(&["known"], &["/mcp"]);
    for (method, status) in [
        ("BREW", 418),
        ("get", 299),
        ("TRACE", 999),
        ("CONNECT", 0),
        ("POST", 503),
    ] {
        m.request_finished(method, "/elsewhere", status, ms(1));
    }
    for i in 0..100u32 {
        // Routes are static in the server; leak a few distinct ones to prove they all collapse.
        let route: &'static str = Box::leak(format!("/r{i}").into_boxed_str());
        m.request_finished("PUT", route, 200, ms(1));
    }
    m.tool_finished("unknown-a", ToolOutcome::ServerError("EIO"), ms(1));
    m.tool_finished("unknown-b", ToolOutcome::ServerError("EIO"), ms(1));
    let out = encoded(&m);
    for line in [
        "http_server_requests_total{method=\"other\",route=\"other\",status=\"4xx\"} 1\n",
        "http_server_requests_total{method=\"other\",route=\"other\",status=\"2xx\"} 1\n",
        "http_server_requests_total{method=\"other\",route=\"other\",status=\"other\"} 2\n",
        "http_server_requests_total{method=\"POST\",route=\"other\",status=\"503\"} 1\n",
        "http_server_requests_total{method=\"PUT\",route=\"other\",status=\"200\"} 100\n",
        "tool_executions_total{tool=\"other\",status=\"server_error\"} 2\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("http_server_requests_total{"))
            .count(),
        5
    );
    let s = m.snapshot();
    assert_eq!(
        (
            s.requests_total,
            s.client_errors_total,
            s.server_errors_total
        ),
        (105, 1, 1)
    );
}

#[test]
fn status_labels_match_their_codes() {
    for (i, code) in KNOWN_STATUSES.iter().enumerate() {
        assert_eq!(STATUS_LABELS[i], code.to_string());
        assert_eq!(status_slot(*code), i);
    }
    assert!(KNOWN_STATUSES.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(STATUS_LABELS[status_slot(102)], "1xx");
    assert_eq!(STATUS_LABELS[status_slot(599)], "5xx");
    assert_eq!(STATUS_LABELS[status_slot(600)], "other");
    assert_eq!(STATUS_LABELS[status_slot(99)], "other");
}

#[test]
fn enum_discriminants_index_their_label_tables() {
    for (i, t) in Transport::ALL.iter().enumerate() {
        assert_eq!(*t as usize, i);
    }
    for (i, r) in AUTH_RESULTS.iter().enumerate() {
        assert_eq!(*r as usize, i);
    }
    for (i, s) in RATE_SCOPES.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
    assert_eq!(serde_json::to_value(Transport::McpSse).unwrap(), "mcp_sse");
}

#[test]
fn health_checks_beyond_the_cap_share_the_other_series() {
    let m = Metrics::new(&[], &[]);
    for i in 0..MAX_HEALTH_CHECKS + 5 {
        m.set_health(&format!("check{i:03}"), HealthLevel::Healthy);
    }
    m.set_health("check000", HealthLevel::Unhealthy);
    let out = encoded(&m);
    let series = out
        .lines()
        .filter(|l| l.starts_with("health_check_status{"))
        .count();
    assert_eq!(series, MAX_HEALTH_CHECKS + 1);
    assert!(out.contains("health_check_status{check=\"check000\"} 0\n"));
    assert!(out.contains("health_check_status{check=\"other\"} 1\n"));
}

#[test]
fn concurrent_recording_loses_no_counts() {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 5_000;
    let m = Arc::new(Metrics::new(&["t"], &["/mcp"]));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    m.request_started();
                    m.tool_started("t");
                    m.stream_opened(Transport::Sse);
                    m.stream_sent(Transport::Sse, 10);
                    m.tool_finished(
                        "t",
                        if (r + i) % 2 == 0 {
                            ToolOutcome::Ok
                        } else {
                            ToolOutcome::ServerError("EIO")
                        },
                        ms(r % 50),
                    );
                    m.request_finished(
                        "POST",
                        "/mcp",
                        if r % 10 == 0 { 500 } else { 200 },
                        ms(r % 300),
                    );
                    m.stream_closed(Transport::Sse, ms(5));
                    m.auth(AuthResult::Failure);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = THREADS * ROUNDS;
    let s = m.snapshot();
    assert_eq!(s.requests_total, total);
    assert_eq!(s.server_errors_total, total / 10);
    assert_eq!(s.active_requests, 0);
    assert_eq!(s.tool_executions_total, total);
    assert_eq!(s.tool_errors_total, total / 2);
    assert_eq!(s.open_streams[0], (Transport::Sse, 0));
    let out = encoded(&m);
    for line in [
        format!(
            "http_server_requests_total{{method=\"POST\",route=\"/mcp\",status=\"200\"}} {}\n",
            total - total / 10
        ),
        format!(
            "http_server_request_duration_seconds_count{{method=\"POST\",route=\"/mcp\"}} {total}\n"
        ),
        format!("streaming_messages_total{{transport=\"sse\"}} {total}\n"),
        format!(
            "streaming_bytes_transferred_total{{transport=\"sse\"}} {}\n",
            total * 10
        ),
        format!("auth_attempts_total{{result=\"failure\"}} {total}\n"),
        "tool_active_executions{tool=\"t\"} 0\n".to_owned(),
    ] {
        assert!(out.contains(&line), "missing {line:?}");
    }
}

#[test]
fn snapshot_estimates_latency_percentiles_from_the_histogram() {
    let m = Metrics::new(&[], &["/a", "/b"]);
    assert_eq!(m.snapshot().latency_p50_seconds, None);
    // 90 fast requests in (0.01, 0.025] and 10 slow ones in (0.5, 1], split over two series.
    for i in 0..90 {
        m.request_finished("GET", if i % 2 == 0 { "/a" } else { "/b" }, 200, ms(20));
    }
    for _ in 0..10 {
        m.request_finished("POST", "/b", 200, ms(800));
    }
    let s = m.snapshot();
    let p50 = s.latency_p50_seconds.unwrap();
    let p90 = s.latency_p90_seconds.unwrap();
    let p99 = s.latency_p99_seconds.unwrap();
    // Rank 50 of 90 in (0.01, 0.025]: 0.01 + 0.015 * 50/90.
    assert!((p50 - (0.01 + 0.015 * 50.0 / 90.0)).abs() < 1e-9, "{p50}");
    assert!((p90 - 0.025).abs() < 1e-9, "{p90}");
    // Rank 99: 9 of the 10 in (0.5, 1].
    assert!((p99 - 0.95).abs() < 1e-9, "{p99}");
}

/// A line-by-line reader of the text format, independent of the encoder: every line is a
/// `# HELP`, a `# TYPE` or a sample whose family was typed first, with valid names, quoted and
/// escaped label values, and a number.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap();
            assert!(name_ok(name), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "typed twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(name_ok(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            loop {
                let (i, c) = chars.next().unwrap();
                match c {
                    '}' => {
                        rest = &body[i + 1..];
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().unwrap().1, '"', "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().unwrap().1 {
                                '"' => break,
                                '\\' => match chars.next().unwrap().1 {
                                    'n' => value.push('\n'),
                                    c @ ('\\' | '"') => value.push(c),
                                    c => panic!("bad escape \\{c} in {line}"),
                                },
                                '\n' => panic!("raw newline"),
                                c => value.push(c),
                            }
                        }
                        assert!(name_ok(&key), "{line}");
                        labels.push(format!("{key}={value:?}"));
                        key.clear();
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap();
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let key = format!("{name}{{{}}}", labels.join(","));
        assert!(samples.insert(key, v).is_none(), "duplicate series: {line}");
    }
    samples
}

#[test]
fn a_live_render_parses_line_by_line_with_every_family_typed() {
    let m = scenario_touching_every_family();
    let mut out = String::new();
    m.render(&mut out);
    let samples = parse_exposition(&out);
    let families: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    for name in EXPORTED_FAMILIES {
        assert!(families.contains(name), "{name} missing");
    }
    assert_eq!(samples["auth_attempts_total{result=\"forbidden\"}"], 1.0);
    assert!(samples["process_resident_memory_bytes{}"] > 0.0);
}

// Live tier: needs the real promtool.
#[cfg(feature = "live")]
#[test]
fn promtool_accepts_the_exposition() {
    let m = scenario_touching_every_family();
    let mut out = String::new();
    m.render(&mut out);
    let path = std::env::temp_dir().join(format!("task-mcp-metrics-{}.prom", std::process::id()));
    std::fs::write(&path, &out).unwrap();
    let stdin = std::fs::File::open(&path).unwrap();
    let result = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(stdin)
        .output();
    let _ = std::fs::remove_file(&path);
    let output = result.unwrap_or_else(|e| {
        panic!("promtool must be installed (Debian: apt-get install prometheus): {e}")
    });
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{report}\n---\n{out}"
    );
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}

/// Writes a rendered exposition touching every family to `$METRICS_EXPOSITION_OUT`, for
/// `.ci/monitoring-check.sh` to check dashboards and rules against.
#[test]
#[ignore = "a tool for .ci/monitoring-check.sh, run with --ignored"]
fn dump_exposition() {
    let path =
        std::env::var("METRICS_EXPOSITION_OUT").expect("set METRICS_EXPOSITION_OUT to a file path");
    let mut out = String::new();
    scenario_touching_every_family().render(&mut out);
    std::fs::write(path, out).unwrap();
}

fn scenario_touching_every_family() -> Metrics {
    let m = Metrics::new(
        &["change_open", "change_archive"],
        &["/mcp", "/sse", "/health/live"],
    );
    m.request_started();
    m.request_finished("POST", "/mcp", 200, ms(12));
    m.response_sent("/mcp", 512);
    m.request_started();
    m.connection_opened();
    m.tls_handshake_failed();
    m.tool_started("change_open");
    m.tool_finished("change_open", ToolOutcome::Ok, ms(30));
    m.mcp_request(
        "tools/call",
        RpcTransport::StreamableHttp,
        RpcOutcome::Ok,
        ms(30),
    );
    m.reloaded(Reloaded::Tls, true);
    for t in Transport::ALL {
        m.stream_opened(t);
        m.stream_first_event(t, ms(2));
        m.stream_sent(t, 64);
    }
    for r in AUTH_RESULTS {
        m.auth(r);
    }
    m.rate_limited(RateScope::Token);
    m.set_health("repository", HealthLevel::Healthy);
    m.set_health("disk", HealthLevel::Degraded);
    m.span_dropped();
    m.export_failed();
    m
}

/// Every family the server exports; the monitoring check takes its list from a render instead.
const EXPORTED_FAMILIES: &[&str] = &[
    "build_info",
    "http_server_requests_total",
    "http_server_request_duration_seconds",
    "http_server_active_requests",
    "http_server_connections_active",
    "tls_handshake_failures_total",
    "config_reloads_total",
    "tool_executions_total",
    "tool_errors_total",
    "tool_execution_duration_seconds",
    "http_server_response_body_bytes",
    "mcp_requests_total",
    "mcp_request_duration_seconds",
    "streaming_duration_seconds",
    "streaming_first_event_seconds",
    "tool_active_executions",
    "streaming_active_connections",
    "streaming_messages_total",
    "streaming_bytes_transferred_total",
    "auth_attempts_total",
    "rate_limit_hits_total",
    "health_check_status",
    "trace_spans_dropped_total",
    "trace_export_failures_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
    "process_memory_limit_bytes",
];

#[test]
fn attached_exporter_counters_join_the_trace_families_with_the_breaker_state() {
    let m = Metrics::new(&["echo"], &["/mcp"]);
    let stats = Arc::new(crate::observe::trace::ExporterStats::default());
    m.attach_tracer(Arc::clone(&stats));
    stats.count_queue_full();
    stats.count_queue_full();
    m.span_dropped();
    let mut out = String::new();
    m.encode(&mut out, None).unwrap();
    assert!(out.contains("\ntrace_spans_dropped_total 3\n"), "{out}");
    assert!(out.contains("\ntrace_export_failures_total 0\n"));
    assert!(out.contains("\ntrace_spans_exported_total 0\n"));
    assert!(
        out.contains("# TYPE trace_exporter_breaker_state gauge\ntrace_exporter_breaker_state 0\n")
    );

    let bare = Metrics::new(&["echo"], &["/mcp"]);
    let mut out = String::new();
    bare.encode(&mut out, None).unwrap();
    assert!(
        !out.contains("trace_exporter_breaker_state"),
        "no exporter, no breaker"
    );
}

#[test]
fn status_snapshot_counts_running_tools() {
    let m = Metrics::new(&["echo", "slow"], &["/mcp"]);
    m.tool_started("slow");
    m.tool_started("echo");
    m.tool_started("slow");
    m.tool_finished("echo", ToolOutcome::Ok, ms(1));
    assert_eq!(m.snapshot().tool_active, 2);
    m.tool_finished("slow", ToolOutcome::Ok, ms(1));
    m.tool_finished("slow", ToolOutcome::ServerError("EIO"), ms(1));
    assert_eq!(m.snapshot().tool_active, 0);
}

#[test]
fn reloads_count_by_what_and_outcome() {
    let m = Metrics::new(&["echo"], &["/mcp"]);
    m.reloaded(super::Reloaded::Tokens, false);
    m.reloaded(super::Reloaded::Tls, true);
    m.reloaded(super::Reloaded::Tls, true);
    let mut out = String::new();
    m.encode(&mut out, None).unwrap();
    assert!(out.contains("config_reloads_total{what=\"tokens\",outcome=\"error\"} 1\n"));
    assert!(out.contains("config_reloads_total{what=\"tls\",outcome=\"ok\"} 2\n"));
    assert!(out.contains("config_reloads_total{what=\"tls\",outcome=\"error\"} 0\n"));
}

#[test]
fn response_sizes_are_bytes_with_a_byte_sum() {
    let m = Metrics::new(&["echo"], &["/mcp"]);
    m.response_sent("/mcp", 100);
    m.response_sent("/mcp", 5000);
    let out = encoded(&m);
    for line in [
        "http_server_response_body_bytes_bucket{route=\"/mcp\",le=\"256\"} 1\n",
        "http_server_response_body_bytes_bucket{route=\"/mcp\",le=\"4096\"} 1\n",
        "http_server_response_body_bytes_bucket{route=\"/mcp\",le=\"16384\"} 2\n",
        "http_server_response_body_bytes_sum{route=\"/mcp\"} 5100\n",
        "http_server_response_body_bytes_count{route=\"/mcp\"} 2\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
}
