//! Process metrics read from Linux `/proc` at scrape time: CPU, memory, file descriptors,
//! threads, start time, and the memory limit the process runs under.
//!
//! The parsers take the text of one `/proc` file and return `None` on anything unexpected, so a
//! kernel with other formats costs a missing series, never a panic. [`ProcessStats::read`] is the
//! thin I/O shell around them.

use std::fmt::{self, Write};
use std::fs;
use std::path::Path;

use super::exposition::{Kind, Value, header, sample};

/// One reading of the process's resource use. Fields the host could not provide are `None` and
/// their series are left out of the exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// OS threads in the process.
    pub threads: Option<u64>,
    /// The memory the process may use: its cgroup v2 `memory.max`, else the host's `MemTotal`.
    pub memory_limit_bytes: Option<u64>,
}

/// The fields of `/proc/self/stat` this module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `utime`, in clock ticks.
    pub utime_ticks: u64,
    /// `stime`, in clock ticks.
    pub stime_ticks: u64,
    /// `starttime`: ticks after boot when the process started.
    pub start_ticks: u64,
}

/// The fields of `/proc/self/status` this module uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `VmRSS`, in bytes.
    pub resident_bytes: Option<u64>,
    /// `VmSize`, in bytes.
    pub virtual_bytes: Option<u64>,
    /// `Threads`.
    pub threads: Option<u64>,
}

impl ProcessStats {
    /// Reads the current process from `/proc`; `None` where there is no `/proc/self` (not Linux).
    pub fn read() -> Option<ProcessStats> {
        let proc_self = Path::new("/proc/self");
        let stat = fs::read_to_string(proc_self.join("stat")).ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let status = fs::read_to_string(proc_self.join("status")).ok()?;
        let status = parse_status(&status);
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s));
        let max_fds = fs::read_to_string(proc_self.join("limits"))
            .ok()
            .and_then(|s| parse_max_open_files(&s));
        let open_fds = fs::read_dir(proc_self.join("fd"))
            .ok()
            .map(|dir| dir.count() as u64);
        Some(ProcessStats {
            cpu_seconds: stat
                .map(|s| s.utime_ticks.saturating_add(s.stime_ticks) as f64 / USER_HZ as f64),
            resident_memory_bytes: status.resident_bytes,
            virtual_memory_bytes: status.virtual_bytes,
            open_fds,
            max_fds,
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ as f64),
            threads: status.threads,
            memory_limit_bytes: read_memory_limit(),
        })
    }

    /// Writes the `process_*` families.
    pub fn render(&self, out: &mut dyn Write) -> fmt::Result {
        let families: [(&str, Kind, &str, Option<Value>); 8] = [
            (
                "process_cpu_seconds_total",
                Kind::Counter,
                "Total user and system CPU time spent, in seconds.",
                self.cpu_seconds.map(Value::Float),
            ),
            (
                "process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory size, in bytes.",
                self.resident_memory_bytes.map(Value::Unsigned),
            ),
            (
                "process_virtual_memory_bytes",
                Kind::Gauge,
                "Virtual memory size, in bytes.",
                self.virtual_memory_bytes.map(Value::Unsigned),
            ),
            (
                "process_open_fds",
                Kind::Gauge,
                "Number of open file descriptors.",
                self.open_fds.map(Value::Unsigned),
            ),
            (
                "process_max_fds",
                Kind::Gauge,
                "Maximum number of open file descriptors (soft limit).",
                self.max_fds.map(Value::Unsigned),
            ),
            (
                "process_start_time_seconds",
                Kind::Gauge,
                "Start time of the process since the Unix epoch, in seconds.",
                self.start_time_seconds.map(Value::Float),
            ),
            (
                "process_threads",
                Kind::Gauge,
                "Number of OS threads in the process.",
                self.threads.map(Value::Unsigned),
            ),
            (
                "process_memory_limit_bytes",
                Kind::Gauge,
                "Memory the process may use, in bytes: its cgroup memory.max, else the host's MemTotal.",
                self.memory_limit_bytes.map(Value::Unsigned),
            ),
        ];
        for (name, kind, help, value) in families {
            if let Some(value) = value {
                header(out, name, kind, help)?;
                sample(out, name, &[], value)?;
            }
        }
        Ok(())
    }
}

/// Parses `/proc/<pid>/stat`. The command name sits in parentheses and may itself hold spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    // Field numbers in proc(5) start at 1 with pid; `fields[0]` is field 3, state.
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
    })
}

/// Parses `/proc/<pid>/status` for `VmRSS`, `VmSize` (given in kB) and `Threads`.
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut words = value.split_ascii_whitespace();
        let number = words.next().and_then(|n| n.parse::<u64>().ok());
        let in_kib = words.next() == Some("kB");
        let bytes = number.filter(|_| in_kib).and_then(|n| n.checked_mul(1024));
        match key {
            "VmRSS" => status.resident_bytes = bytes,
            "VmSize" => status.virtual_bytes = bytes,
            "Threads" => status.threads = number,
            _ => {}
        }
    }
    status
}

/// Parses `btime` (boot time, seconds since the epoch) out of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Parses the soft limit of `Max open files` out of `/proc/<pid>/limits`; `None` if unlimited.
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Parses the cgroup v2 path (`0::/path`) out of `/proc/<pid>/cgroup`.
pub fn parse_cgroup_v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("0::"))
}

/// Parses a cgroup v2 `memory.max`: a byte count, or `max` for no limit (`None`).
pub fn parse_memory_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Parses `MemTotal` (given in kB) out of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut words = line.split_ascii_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    if words.next() != Some("kB") {
        return None;
    }
    kib.checked_mul(1024)
}

/// The process's memory limit: its own cgroup's `memory.max` when the cgroup v2 tree is mounted
/// and sets one, else the host's total memory.
fn read_memory_limit() -> Option<u64> {
    let cgroup_limit = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| {
            let relative = parse_cgroup_v2_path(&text)?
                .trim_start_matches('/')
                .to_owned();
            let path = Path::new(CGROUP_V2_ROOT).join(relative).join("memory.max");
            fs::read_to_string(path).ok()
        })
        .and_then(|text| parse_memory_max(&text));
    cgroup_limit.or_else(|| {
        fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_mem_total(&text))
    })
}

/// Clock ticks per second of the times in `/proc/<pid>/stat`. Linux fixes `USER_HZ` at 100 for
/// user space on every architecture we build for, whatever the kernel's internal `HZ`; reading
/// `sysconf(_SC_CLK_TCK)` would need `unsafe` or a dependency for a constant.
const USER_HZ: u64 = 100;

/// Where the cgroup v2 unified hierarchy is mounted.
const CGROUP_V2_ROOT: &str = "/sys/fs/cgroup";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parens() {
        let text = "4242 (we ird) (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2560 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(
            stat,
            Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                start_ticks: 123456
            }
        );
    }

    #[test]
    fn truncated_or_garbage_stat_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
        assert_eq!(
            parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 a b c d e f g h i j"),
            None
        );
    }

    #[test]
    fn status_reads_kilobytes_as_bytes_and_threads() {
        let text = "Name:\ttask-mcp\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        let status = parse_status(text);
        assert_eq!(status.virtual_bytes, Some(204_800 * 1024));
        assert_eq!(status.resident_bytes, Some(10_240 * 1024));
        assert_eq!(status.threads, Some(7));
        assert_eq!(parse_status("VmRSS: lots\n"), Status::default());
    }

    #[test]
    fn limits_boot_time_cgroup_and_meminfo_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63459                63459                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files("Max open files unlimited unlimited files"),
            None
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_cgroup_v2_path("0::/system.slice/task-mcp.service\n"),
            Some("/system.slice/task-mcp.service")
        );
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("2147483648\n"), Some(2_147_483_648));
        assert_eq!(
            parse_mem_total("MemTotal:       16384 kB\n"),
            Some(16_384 * 1024)
        );
    }

    #[test]
    fn reading_this_process_finds_itself_alive() {
        let stats = ProcessStats::read().expect("tests run on Linux with /proc");
        assert!(stats.resident_memory_bytes.unwrap() > 0);
        assert!(stats.threads.unwrap() >= 1);
        assert!(stats.open_fds.unwrap() >= 3);
        assert!(stats.max_fds.unwrap() >= stats.open_fds.unwrap());
        assert!(stats.start_time_seconds.unwrap() > 1_000_000_000.0);
        assert!(stats.memory_limit_bytes.unwrap() > 0);
    }
}
