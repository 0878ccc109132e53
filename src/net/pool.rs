//! A thread pool: named threads, grown on demand up to a cap, retired when idle. The tool calls
//! that run beside their connection use it (connections have their own workers,
//! `crate::net::workers`).
//!
//! Jobs travel over a zero-capacity crossbeam channel, so `try_send` succeeds exactly when a
//! worker is idle and waiting; otherwise the pool spawns a new worker for the job, up to
//! `max_threads`. Beyond that, [`Pool::submit`] hands the job back and the caller refuses the
//! work instead of queueing it. A panic in a job is caught and logged; the worker carries on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};

/// A unit of work: in practice, one tool call that runs beside its connection.
pub type Job = Box<dyn FnOnce() + Send>;

/// Live counts, readable at any time (metrics, health, `/debug/vars`).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Worker threads alive.
    pub threads: AtomicUsize,
    /// Workers running a job.
    pub busy: AtomicUsize,
    /// Jobs that panicked.
    pub panics: AtomicUsize,
    /// Every worker is busy and none has finished anything lately (connection workers only).
    pub stuck: AtomicBool,
}

/// A pool of worker threads.
pub struct Pool {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    name: &'static str,
    max_threads: usize,
    min_threads: usize,
    idle_retire: Duration,
    next_id: AtomicUsize,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// A pool named `name` (threads are `name-N`) with at most `max_threads` workers, keeping
    /// `min_threads` even when idle and retiring others after `idle_retire` without work.
    pub fn new(
        name: &'static str,
        min_threads: usize,
        max_threads: usize,
        idle_retire: Duration,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        let pool = Self {
            tx,
            rx,
            name,
            max_threads: max_threads.max(1),
            min_threads: min_threads.min(max_threads),
            idle_retire,
            next_id: AtomicUsize::new(0),
            stats: Arc::new(PoolStats::default()),
        };
        for _ in 0..pool.min_threads {
            pool.spawn(None);
        }
        pool
    }

    /// Live counts.
    #[cfg(test)]
    pub fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.stats)
    }

    /// Runs `job` on an idle worker or a new one.
    ///
    /// # Errors
    /// Every worker is busy and the cap is reached: the job comes back unrun.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let job = match self.tx.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => job,
        };
        // A worker between two jobs is idle but not yet back at the channel. In a burst of new
        // connections, waiting a moment for it beats starting a thread per connection (which
        // would reach the cap and refuse connections that an idle worker could have taken).
        let job =
            if self.stats.busy.load(Ordering::Acquire) < self.stats.threads.load(Ordering::Acquire)
            {
                match self.tx.send_timeout(job, HANDOFF_WAIT) {
                    Ok(()) => return Ok(()),
                    Err(SendTimeoutError::Timeout(job))
                    | Err(SendTimeoutError::Disconnected(job)) => job,
                }
            } else {
                job
            };
        // Reserve a thread slot before spawning so concurrent submitters cannot overshoot.
        let mut n = self.stats.threads.load(Ordering::Acquire);
        loop {
            if n >= self.max_threads {
                return Err(job);
            }
            match self.stats.threads.compare_exchange_weak(
                n,
                n + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => n = actual,
            }
        }
        if self.spawn_reserved(Some(job)).is_err() {
            self.stats.threads.fetch_sub(1, Ordering::AcqRel);
            log::error!("could not spawn a worker thread");
        }
        Ok(())
    }

    fn spawn(&self, first: Option<Job>) {
        self.stats.threads.fetch_add(1, Ordering::AcqRel);
        if self.spawn_reserved(first).is_err() {
            self.stats.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn spawn_reserved(&self, first: Option<Job>) -> std::io::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = self.rx.clone();
        let stats = Arc::clone(&self.stats);
        let idle = self.idle_retire;
        let min = self.min_threads;
        std::thread::Builder::new()
            .name(format!("{}-{id}", self.name))
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || worker(rx, first, stats, idle, min))
            .map(drop)
    }
}

fn worker(
    rx: Receiver<Job>,
    first: Option<Job>,
    stats: Arc<PoolStats>,
    idle: Duration,
    min: usize,
) {
    if let Some(job) = first {
        run(job, &stats);
    }
    loop {
        match rx.recv_timeout(idle) {
            Ok(job) => run(job, &stats),
            Err(RecvTimeoutError::Timeout) => {
                // Retire unless that would drop below the floor.
                let n = stats.threads.load(Ordering::Acquire);
                if n > min
                    && stats
                        .threads
                        .compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                stats.threads.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }
}

fn run(job: Job, stats: &PoolStats) {
    stats.busy.fetch_add(1, Ordering::AcqRel);
    if catch_unwind(AssertUnwindSafe(job)).is_err() {
        stats.panics.fetch_add(1, Ordering::Relaxed);
        log::error!("a connection handler panicked; the connection was dropped");
    }
    stats.busy.fetch_sub(1, Ordering::AcqRel);
}

/// How long a new job waits for a worker that is between two jobs before a thread is started.
const HANDOFF_WAIT: Duration = Duration::from_millis(5);

/// Stack size of a worker: connection handling is shallow, and a small stack keeps thousands of
/// workers cheap (only touched pages count towards memory).
const WORKER_STACK_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    #[test]
    fn jobs_run_and_the_pool_grows_to_its_cap() {
        let pool = Pool::new("t", 0, 3, Duration::from_secs(60));
        let gate = Arc::new(Barrier::new(4));
        for _ in 0..3 {
            let g = Arc::clone(&gate);
            assert!(
                pool.submit(Box::new(move || {
                    g.wait();
                }))
                .is_ok()
            );
        }
        // Three workers are blocked on the barrier: a fourth job is refused.
        assert!(pool.submit(Box::new(|| {})).is_err());
        gate.wait();
        assert_eq!(pool.stats().threads.load(Ordering::Acquire), 3);
    }

    #[test]
    fn a_burst_of_short_jobs_waits_for_idle_workers_instead_of_starting_threads() {
        let pool = Pool::new("b", 1, 64, Duration::from_secs(60));
        let done = Arc::new(AtomicUsize::new(0));
        let stats = pool.stats();
        for _ in 0..300 {
            let d = Arc::clone(&done);
            let job: Job = Box::new(move || {
                d.fetch_add(1, Ordering::AcqRel);
            });
            assert!(pool.submit(job).is_ok());
            // Submit the next one the moment a worker has finished, before it is back at the
            // channel: the window a burst of connections hits.
            while stats.busy.load(Ordering::Acquire) > 0 {
                std::hint::spin_loop();
            }
        }
        while done.load(Ordering::Acquire) < 300 {
            std::thread::yield_now();
        }
        let threads = pool.stats().threads.load(Ordering::Acquire);
        assert!(threads <= 4, "{threads} workers for one job at a time");
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = Pool::new("p", 1, 1, Duration::from_secs(60));
        let (tx, rx) = crossbeam_channel::bounded(1);
        // The single worker may still be starting; retry until it takes the job.
        let mut job: Job = Box::new(|| panic!("boom"));
        loop {
            match pool.submit(job) {
                Ok(()) => break,
                Err(j) => {
                    job = j;
                    std::thread::yield_now();
                }
            }
        }
        let mut job: Job = Box::new(move || tx.send(1).unwrap());
        loop {
            match pool.submit(job) {
                Ok(()) => break,
                Err(j) => {
                    job = j;
                    std::thread::yield_now();
                }
            }
        }
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1);
        assert_eq!(pool.stats().panics.load(Ordering::Relaxed), 1);
    }
}
