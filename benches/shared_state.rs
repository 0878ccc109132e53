//! Shared-state micro-benchmarks: the rate limiter under contention and the metrics registry's
//! Prometheus rendering with a realistic set of series.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use divan::{Bencher, black_box};
use task_mcp::observe::metrics::{Metrics, Transport};
use task_mcp::routes::ROUTES;
use task_mcp::security::ratelimit::{Key, Limiter, Quota};

fn main() {
    divan::main();
}

/// Threads for the contention benchmarks: alone, one per core here, and oversubscribed.
const THREADS: &[usize] = &[1, 2, 4];

static LIMITER: LazyLock<(Limiter, Instant)> = LazyLock::new(|| {
    let quota = Quota::new(600_000, 1_000).expect("non-zero quota");
    let epoch = Instant::now();
    (Limiter::new(quota, 10_000, epoch), epoch)
});

/// Every thread takes from the same bucket (one shard, one mutex).
#[divan::bench(threads = THREADS)]
fn ratelimit_one_key(bencher: Bencher) {
    let (limiter, epoch) = &*LIMITER;
    let key = Key::Token("shared".into());
    bencher.bench(|| limiter.check(black_box(&key), 1, *epoch + Duration::from_secs(1)));
}

/// Each call takes from one of 1,000 client addresses (spread over the shards).
#[divan::bench(threads = THREADS)]
fn ratelimit_many_keys(bencher: Bencher) {
    let (limiter, epoch) = &*LIMITER;
    let keys: Vec<Key> = (0..1_000u32)
        .map(|i| Key::Ip(std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8])))
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % keys.len();
        limiter.check(black_box(&keys[i]), 1, *epoch + Duration::from_secs(1))
    });
}

const TOOLS: &[&str] = &[
    "change_list",
    "change_show",
    "change_create",
    "change_write",
    "change_validate",
    "change_archive",
    "spec_list",
    "spec_show",
    "lock_acquire",
    "lock_release",
];

/// A registry after some traffic: every route seen with a few statuses, every tool run.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics::new(TOOLS, ROUTES);
    for (i, route) in ROUTES.iter().enumerate() {
        for (j, status) in [200u16, 202, 400, 401, 404, 429, 500]
            .into_iter()
            .enumerate()
        {
            for _ in 0..=(i + j) {
                m.request_started();
                m.request_finished(
                    "POST",
                    route,
                    status,
                    Duration::from_micros(150 * (j as u64 + 1)),
                );
            }
        }
    }
    for (i, tool) in TOOLS.iter().enumerate() {
        m.tool_started(tool);
        let outcome = if i % 3 != 0 {
            task_mcp::observe::metrics::ToolOutcome::Ok
        } else {
            task_mcp::observe::metrics::ToolOutcome::ClientError("ENOCHANGE")
        };
        m.tool_finished(tool, outcome, Duration::from_millis(i as u64 + 1));
    }
    m.stream_opened(Transport::Sse);
    m.stream_sent(Transport::Sse, 512);
    m
});

#[divan::bench]
fn metrics_render(bencher: Bencher) {
    let m = &*METRICS;
    let mut out = String::with_capacity(64 * 1024);
    m.render(&mut out);
    let series = out.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series > 100, "only {series} series");
    bencher.bench_local(|| {
        out.clear();
        m.render(black_box(&mut out));
    });
}

/// Request accounting from several threads at once (atomics, no lock).
#[divan::bench(threads = THREADS)]
fn metrics_request_finished(bencher: Bencher) {
    let m = &*METRICS;
    bencher.bench(|| {
        m.request_started();
        m.request_finished("POST", "/mcp", 200, Duration::from_micros(300));
    });
}
