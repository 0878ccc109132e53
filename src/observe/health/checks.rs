//! The standard checks, as constructors returning closures for [`HealthRegistry::register`].
//!
//! The `/proc` and cgroup parsers are sans-IO functions over `&str`; the closures only read
//! files.
//!
//! [`HealthRegistry::register`]: crate::observe::health::HealthRegistry::register

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::observe::health::{CheckResult, HealthStatus};
use crate::observe::trace::{BreakerState, ExporterStats};

/// A boxed check, as [`HealthRegistry::register`](crate::observe::health::HealthRegistry::register)
/// takes it.
pub type BoxedCheck = Box<dyn Fn() -> CheckResult + Send + Sync>;

/// Where [`memory_from`] reads its numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemorySources {
    /// `/proc/self/status` (for `VmRSS`).
    pub proc_status: PathBuf,
    /// `/proc/self/cgroup` (for the cgroup v2 path).
    pub proc_cgroup: PathBuf,
    /// The cgroup v2 mount, `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// `/proc/meminfo` (for `MemTotal`).
    pub meminfo: PathBuf,
}

/// UNHEALTHY unless a file can be created, written, read back identically and removed under
/// `root/.task-mcp` (when that directory exists) or `root`.
pub fn workspace_rw(root: PathBuf) -> BoxedCheck {
    let counter = AtomicU64::new(0);
    Box::new(move || {
        let dot = root.join(".task-mcp");
        let dir = if dot.is_dir() { dot } else { root.clone() };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".health-{}-{n}.tmp", std::process::id()));
        let payload = format!("task-mcp health probe {n}\n");
        let outcome = probe_rw(&path, payload.as_bytes());
        // Clean up even when the read-back failed.
        let _ = fs::remove_file(&path);
        match outcome {
            Ok(()) => CheckResult::healthy(format!("{} is readable and writable", dir.display())),
            Err(e) => CheckResult::unhealthy(format!("{}: {e}", dir.display())),
        }
    })
}

/// Free space for unprivileged users on the filesystem holding `path`: DEGRADED below
/// `degraded_below_bytes`, UNHEALTHY below `unhealthy_below_bytes`.
pub fn disk_free(
    path: PathBuf,
    degraded_below_bytes: u64,
    unhealthy_below_bytes: u64,
) -> BoxedCheck {
    Box::new(move || match rustix::fs::statvfs(&path) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            let status = if free < unhealthy_below_bytes {
                HealthStatus::Unhealthy
            } else if free < degraded_below_bytes {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            };
            CheckResult::new(
                status,
                format!(
                    "{} MiB free of {} MiB on {}",
                    free >> 20,
                    total >> 20,
                    path.display()
                ),
            )
            .with_data(json!({"freeBytes": free, "totalBytes": total}))
        }
        Err(e) => CheckResult::unhealthy(format!("statvfs {}: {e}", path.display())),
    })
}

/// Resident memory against the limit (cgroup v2 `memory.max`, else `MemTotal`): DEGRADED at
/// `rss_degraded_ratio`, UNHEALTHY at `rss_unhealthy_ratio` (e.g. 0.85 and 0.95).
pub fn memory(rss_degraded_ratio: f64, rss_unhealthy_ratio: f64) -> BoxedCheck {
    memory_from(
        MemorySources::default(),
        rss_degraded_ratio,
        rss_unhealthy_ratio,
    )
}

/// [`memory`] reading from `sources` (tests point them at fixture files).
pub fn memory_from(
    sources: MemorySources,
    rss_degraded_ratio: f64,
    rss_unhealthy_ratio: f64,
) -> BoxedCheck {
    Box::new(move || {
        let Some(rss) = read_small(&sources.proc_status)
            .as_deref()
            .and_then(parse_vm_rss_bytes)
        else {
            return CheckResult::degraded(format!(
                "cannot read VmRSS from {}",
                sources.proc_status.display()
            ));
        };
        let Some((limit, source)) = memory_limit(&sources) else {
            return CheckResult::degraded("cannot determine a memory limit")
                .with_data(json!({"rssBytes": rss}));
        };
        let ratio = rss as f64 / limit.max(1) as f64;
        let status = if ratio >= rss_unhealthy_ratio {
            HealthStatus::Unhealthy
        } else if ratio >= rss_degraded_ratio {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        CheckResult::new(
            status,
            format!(
                "RSS {} MiB is {:.1}% of {} MiB ({source})",
                rss >> 20,
                ratio * 100.0,
                limit >> 20
            ),
        )
        .with_data(
            json!({"rssBytes": rss, "limitBytes": limit, "ratio": ratio, "limitSource": source}),
        )
    })
}

/// DEGRADED when `busy / max` reaches `degraded_at_ratio` (say 0.9: requests will queue);
/// UNHEALTHY only when `max` is 0 (a pool that can serve nothing). `f` returns `(busy, max)`.
pub fn pool_saturation(
    degraded_at_ratio: f64,
    f: impl Fn() -> (usize, usize) + Send + Sync + 'static,
) -> BoxedCheck {
    Box::new(move || {
        let (busy, max) = f();
        if max == 0 {
            return CheckResult::unhealthy("pool has no workers");
        }
        let ratio = busy as f64 / max as f64;
        let status = if ratio >= degraded_at_ratio {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        CheckResult::new(status, format!("{busy} of {max} workers busy"))
            .with_data(json!({"busy": busy, "max": max, "ratio": ratio}))
    })
}

/// DEGRADED while the OTLP exporter's breaker is open or half-open (traces are being lost, the
/// service itself is fine); HEALTHY otherwise.
pub fn trace_exporter(stats: Arc<ExporterStats>) -> BoxedCheck {
    Box::new(move || {
        let s = stats.snapshot();
        let data = json!({
            "breaker": s.breaker.as_str(),
            "exportedSpans": s.exported_spans,
            "droppedQueueFull": s.dropped_queue_full,
            "droppedBreakerOpen": s.dropped_breaker_open,
            "failedSpans": s.failed_spans,
        });
        let result = match s.breaker {
            BreakerState::Closed => CheckResult::healthy(format!(
                "exporter breaker closed; {} spans exported",
                s.exported_spans
            )),
            state => CheckResult::degraded(format!(
                "exporter breaker {state}; {} spans lost so far",
                s.dropped_total()
            )),
        };
        result.with_data(data)
    })
}

impl Default for MemorySources {
    fn default() -> Self {
        Self {
            proc_status: "/proc/self/status".into(),
            proc_cgroup: "/proc/self/cgroup".into(),
            cgroup_root: "/sys/fs/cgroup".into(),
            meminfo: "/proc/meminfo".into(),
        }
    }
}

/// `VmRSS` from `/proc/self/status`, in bytes.
pub fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    kib_field(status, "VmRSS:")
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total_bytes(meminfo: &str) -> Option<u64> {
    kib_field(meminfo, "MemTotal:")
}

/// The cgroup v2 path (`0::/path`) from `/proc/self/cgroup`.
pub fn parse_cgroup_v2_path(cgroup: &str) -> Option<&str> {
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

/// A cgroup v2 `memory.max`: `Some(Some(bytes))`, `Some(None)` for `max` (no limit), `None` if
/// unreadable.
pub fn parse_memory_max(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

fn memory_limit(sources: &MemorySources) -> Option<(u64, &'static str)> {
    let total = read_small(&sources.meminfo)
        .as_deref()
        .and_then(parse_meminfo_total_bytes);
    let cgroup_limit = read_small(&sources.proc_cgroup)
        .as_deref()
        .and_then(|c| parse_cgroup_v2_path(c).map(str::to_owned))
        .into_iter()
        .flat_map(|p| {
            // Inside a container's cgroup namespace the path is `/`, so also try the root file.
            let rel = p.trim_start_matches('/').to_owned();
            [
                sources.cgroup_root.join(rel).join("memory.max"),
                sources.cgroup_root.join("memory.max"),
            ]
        })
        .find_map(|path| read_small(&path).as_deref().and_then(parse_memory_max))
        .flatten();
    match (cgroup_limit, total) {
        (Some(c), Some(t)) if c < t => Some((c, "cgroup memory.max")),
        (Some(c), None) => Some((c, "cgroup memory.max")),
        (_, Some(t)) => Some((t, "MemTotal")),
        (None, None) => None,
    }
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    let mut parts = line.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

fn read_small(path: &Path) -> Option<String> {
    let mut s = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_PROC_FILE_BYTES)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

fn probe_rw(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(payload)?;
    f.sync_data()?;
    drop(f);
    let back = fs::read(path)?;
    if back != payload {
        return Err(std::io::Error::other("read back different bytes"));
    }
    Ok(())
}

/// The most we read of a `/proc` or cgroup file, in bytes.
const MAX_PROC_FILE_BYTES: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers_read_the_kernel_formats() {
        let status = "Name:\ttask-mcp\nVmPeak:\t  10 kB\nVmRSS:\t   2048 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss_bytes("VmRSS: lots kB"), None);
        assert_eq!(parse_vm_rss_bytes("VmRSS: 1 MB"), None);
        assert_eq!(parse_vm_rss_bytes(""), None);
        assert_eq!(
            parse_meminfo_total_bytes("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(
            parse_cgroup_v2_path("0::/system.slice/x.service\n"),
            Some("/system.slice/x.service")
        );
        assert_eq!(parse_cgroup_v2_path("12:memory:/docker/abc\n"), None);
        assert_eq!(parse_memory_max("max\n"), Some(None));
        assert_eq!(parse_memory_max("536870912\n"), Some(Some(536_870_912)));
        assert_eq!(parse_memory_max("garbage"), None);
        assert_eq!(
            kib_field(&format!("VmRSS: {} kB", u64::MAX), "VmRSS:"),
            None
        );
    }

    #[test]
    fn real_proc_files_give_a_memory_verdict() {
        let r = memory(0.999, 1.0)();
        assert_eq!(r.status, HealthStatus::Healthy, "{}", r.detail);
        assert!(r.data.unwrap()["rssBytes"].as_u64().unwrap() > 0);
    }

    #[test]
    fn breaker_state_drives_the_trace_exporter_check() {
        let stats = Arc::new(ExporterStats::default());
        assert_eq!(
            trace_exporter(stats.clone())().status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn pool_saturation_thresholds() {
        assert_eq!(
            pool_saturation(0.9, || (1, 10))().status,
            HealthStatus::Healthy
        );
        assert_eq!(
            pool_saturation(0.9, || (9, 10))().status,
            HealthStatus::Degraded
        );
        assert_eq!(
            pool_saturation(0.9, || (12, 10))().status,
            HealthStatus::Degraded
        );
        assert_eq!(
            pool_saturation(0.9, || (0, 0))().status,
            HealthStatus::Unhealthy
        );
    }
}
