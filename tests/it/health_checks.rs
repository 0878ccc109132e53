//! The health registry's runner (time-outs, hooks, JSON) and each standard check against real
//! files, temp dirs and `df`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use task_mcp::observe::health::checks::{
    MemorySources, disk_free, memory_from, pool_saturation, trace_exporter, workspace_rw,
};
use task_mcp::observe::health::{CheckResult, HealthRegistry, HealthStatus};
use task_mcp::observe::trace::{
    BreakerState, ClientError, ExporterSettings, ExporterStats, Resource, Sink, Span, Tracer,
    Worker,
};

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "task-mcp-health-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn workspace_check_writes_reads_and_cleans_up() {
    let root = temp_dir();
    let r = workspace_rw(root.clone())();
    assert_eq!(r.status, HealthStatus::Healthy, "{}", r.detail);
    assert_eq!(entries(&root), 0, "probe file removed");

    let dot = root.join(".task-mcp");
    std::fs::create_dir(&dot).unwrap();
    let r = workspace_rw(root.clone())();
    assert_eq!(r.status, HealthStatus::Healthy);
    assert!(r.detail.contains(".task-mcp"), "{}", r.detail);
    assert_eq!(entries(&dot), 0);

    let missing = workspace_rw(root.join("gone"))();
    assert_eq!(missing.status, HealthStatus::Unhealthy);
    let file = root.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(workspace_rw(file)().status, HealthStatus::Unhealthy);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn disk_free_agrees_with_df_and_applies_thresholds() {
    let dir = temp_dir();
    let r = disk_free(dir.clone(), 0, 0)();
    assert_eq!(r.status, HealthStatus::Healthy, "{}", r.detail);
    let ours = r.data.unwrap()["freeBytes"].as_u64().unwrap();
    let df = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(&dir)
        .output()
        .expect("df (coreutils) must be installed");
    let text = String::from_utf8(df.stdout).unwrap();
    let theirs: u64 = text.lines().nth(1).unwrap().trim().parse().unwrap();
    // Other processes write to the same disk between the two reads.
    let slack = 256 * 1024 * 1024;
    assert!(ours.abs_diff(theirs) < slack, "ours {ours}, df {theirs}");

    assert_eq!(
        disk_free(dir.clone(), u64::MAX, 0)().status,
        HealthStatus::Degraded
    );
    assert_eq!(
        disk_free(dir.clone(), u64::MAX, u64::MAX)().status,
        HealthStatus::Unhealthy
    );
    assert_eq!(
        disk_free(dir.join("missing"), 0, 0)().status,
        HealthStatus::Unhealthy
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_check_compares_rss_with_the_cgroup_limit_or_memtotal() {
    let dir = temp_dir();
    let cg = dir.join("cg");
    std::fs::create_dir_all(cg.join("app.slice")).unwrap();
    let sources = MemorySources {
        proc_status: dir.join("status"),
        proc_cgroup: dir.join("cgroup"),
        cgroup_root: cg.clone(),
        meminfo: dir.join("meminfo"),
    };
    std::fs::write(&sources.proc_cgroup, "0::/app.slice\n").unwrap();
    std::fs::write(&sources.meminfo, "MemTotal: 1048576 kB\n").unwrap(); // 1 GiB
    std::fs::write(cg.join("app.slice/memory.max"), "104857600\n").unwrap(); // 100 MiB
    let rss = |mib: u64| {
        std::fs::write(&sources.proc_status, format!("VmRSS:\t{} kB\n", mib * 1024)).unwrap()
    };
    let check = memory_from(sources.clone(), 0.85, 0.95);

    rss(50);
    let r = check();
    assert_eq!(r.status, HealthStatus::Healthy, "{}", r.detail);
    assert_eq!(r.data.as_ref().unwrap()["limitBytes"], 104_857_600);
    assert_eq!(r.data.as_ref().unwrap()["limitSource"], "cgroup memory.max");
    rss(90);
    assert_eq!(check().status, HealthStatus::Degraded);
    rss(99);
    assert_eq!(check().status, HealthStatus::Unhealthy);

    // No cgroup limit: MemTotal (1 GiB) is the yardstick.
    std::fs::write(cg.join("app.slice/memory.max"), "max\n").unwrap();
    let r = check();
    assert_eq!(r.status, HealthStatus::Healthy);
    assert_eq!(r.data.unwrap()["limitSource"], "MemTotal");

    std::fs::remove_file(&sources.proc_status).unwrap();
    assert_eq!(
        check().status,
        HealthStatus::Degraded,
        "unknown RSS is not a crash"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pool_saturation_reads_the_live_numbers() {
    let busy = Arc::new(AtomicUsize::new(0));
    let b = busy.clone();
    let check = pool_saturation(0.9, move || (b.load(Ordering::SeqCst), 8));
    assert_eq!(check().status, HealthStatus::Healthy);
    busy.store(8, Ordering::SeqCst);
    let r = check();
    assert_eq!(
        (r.status, r.detail.as_str()),
        (HealthStatus::Degraded, "8 of 8 workers busy")
    );
}

struct Switch(Arc<AtomicUsize>);

impl Sink for Switch {
    fn post(&mut self, _body: &[u8]) -> Result<(), ClientError> {
        if self.0.load(Ordering::SeqCst) == 0 {
            Err(ClientError::Deadline)
        } else {
            Ok(())
        }
    }
}

#[test]
fn trace_exporter_check_is_degraded_while_the_breaker_is_open() {
    let up = Arc::new(AtomicUsize::new(0));
    let settings = ExporterSettings {
        breaker_failure_threshold: 1,
        breaker_cooldown: Duration::from_secs(10),
        ..ExporterSettings::default()
    };
    let stats = Arc::new(ExporterStats::default());
    let mut worker = Worker::new(Resource::default(), Switch(up.clone()), &settings);
    let check = trace_exporter(stats.clone());
    assert_eq!(check().status, HealthStatus::Healthy);

    let span = Tracer::disabled().start_request(None, "x", std::time::SystemTime::now());
    let batch: Vec<Span> = vec![span];
    let t0 = Instant::now();
    assert!(worker.export(&batch, t0, &stats).is_err());
    assert_eq!(stats.breaker_state(), BreakerState::Open);
    let r = check();
    assert_eq!(r.status, HealthStatus::Degraded, "{}", r.detail);
    assert_eq!(r.data.unwrap()["breaker"], "open");

    up.store(1, Ordering::SeqCst);
    worker
        .export(&batch, t0 + Duration::from_secs(10), &stats)
        .unwrap();
    assert_eq!(check().status, HealthStatus::Healthy);
}

#[test]
fn hung_check_times_out_without_blocking_the_others() {
    let registry = HealthRegistry::new(Duration::from_millis(150));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    registry.register(
        "hung",
        Duration::from_millis(10),
        Box::new(move || {
            let _ = release_rx.lock().unwrap().recv();
            CheckResult::healthy("finally")
        }),
    );
    let fast_runs = Arc::new(AtomicUsize::new(0));
    let runs = fast_runs.clone();
    registry.register(
        "fast",
        Duration::from_millis(10),
        Box::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            CheckResult::healthy("ok")
        }),
    );
    let (change_tx, change_rx) = mpsc::channel();
    let change_tx = std::sync::Mutex::new(change_tx);
    registry.set_on_change(move |name, status| {
        let _ = change_tx.lock().unwrap().send((name.to_owned(), status));
    });
    let runner = registry.start_runner().unwrap();

    let wait_for = |want: (&str, HealthStatus)| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (name, status) = change_rx.recv_timeout(left).expect("status change");
            if (name.as_str(), status) == want {
                return;
            }
        }
    };
    wait_for(("hung", HealthStatus::Unhealthy));
    let s = registry.snapshot(Instant::now());
    let hung = s.checks.iter().find(|c| c.name == "hung").unwrap();
    assert!(
        hung.detail.starts_with("timed out after"),
        "{}",
        hung.detail
    );
    assert_eq!(hung.consecutive_failures, 1);
    assert_eq!(s.status, HealthStatus::Unhealthy);
    assert!(!s.is_ready(false));

    // The fast check keeps running on its interval while the hung one is stuck.
    let before = fast_runs.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fast_runs.load(Ordering::SeqCst) < before + 3 {
        assert!(Instant::now() < deadline, "fast check starved");
        std::thread::yield_now();
    }

    release_tx.send(()).unwrap();
    wait_for(("hung", HealthStatus::Healthy));
    let s = registry.snapshot(Instant::now());
    assert_eq!(s.status, HealthStatus::Healthy);
    assert!(s.is_ready(false));
    drop(release_tx);
    runner.stop();
}

#[test]
fn blocking_run_gives_up_on_a_hung_check_and_applies_its_late_result() {
    let registry = HealthRegistry::new(Duration::from_millis(100));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    registry.register(
        "slow",
        Duration::from_secs(60),
        Box::new(move || {
            let _ = release_rx.lock().unwrap().recv();
            CheckResult::degraded("late")
        }),
    );
    let started = Instant::now();
    registry.run_all_blocking();
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = registry.snapshot(Instant::now());
    assert_eq!(s.checks[0].status, HealthStatus::Unhealthy);

    // Releasing (and then closing) the gate lets the stuck run and every later run return. Had
    // the late result been lost, the check would stay "in flight" and never run again.
    release_tx.send(()).unwrap();
    drop(release_tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        registry.run_all_blocking();
        let s = registry.snapshot(Instant::now());
        if s.checks[0].detail == "late" {
            assert_eq!(s.checks[0].status, HealthStatus::Degraded);
            assert_eq!(s.checks[0].consecutive_failures, 0);
            break;
        }
        assert!(Instant::now() < deadline, "late result never applied");
    }
}

#[test]
fn check_registered_after_the_runner_started_runs_promptly() {
    let registry = HealthRegistry::new(Duration::from_secs(5));
    let runner = registry.start_runner().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    registry.register(
        "late",
        Duration::from_secs(3_600),
        Box::new(move || {
            let _ = tx.lock().unwrap().send(());
            CheckResult::healthy("ran")
        }),
    );
    rx.recv_timeout(Duration::from_secs(10)).expect("check ran");
    runner.stop();
}

#[test]
fn snapshot_json_has_the_health_metrics_shape() {
    let registry = HealthRegistry::new(Duration::from_secs(5));
    let dir = temp_dir();
    registry.register(
        "workspace",
        Duration::from_secs(30),
        workspace_rw(dir.clone()),
    );
    registry.register(
        "disk",
        Duration::from_secs(30),
        disk_free(dir.clone(), 0, 0),
    );
    registry.register(
        "pool",
        Duration::from_secs(5),
        pool_saturation(0.9, || (10, 10)),
    );
    registry.run_all_blocking();
    let j = registry.snapshot(Instant::now()).to_json(false);
    assert_eq!(j["status"], "degraded");
    assert_eq!(j["ready"], true);
    assert_eq!(j["draining"], false);
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    for c in checks {
        for key in [
            "name",
            "status",
            "detail",
            "lastRunMsAgo",
            "durationMs",
            "consecutiveFailures",
        ] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
        assert!(c["lastRunMsAgo"].is_u64() && c["durationMs"].is_u64());
    }
    assert_eq!(checks[2]["status"], "degraded");
    assert!(checks[1]["data"]["freeBytes"].is_u64());
    assert_eq!(
        registry.snapshot(Instant::now()).to_json(true)["ready"],
        false
    );
    std::fs::remove_dir_all(dir).unwrap();
}
