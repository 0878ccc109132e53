//! The connection workers: a few threads take ready connections straight from the ready set,
//! and spare ones step in only when those are stuck.
//!
//! `ACTIVE_WORKERS` workers (one per CPU by default) wait on the ready set themselves
//! (`crate::net::idle`). Each takes one readable connection, serves its request, parks it again
//! and takes the next: under load a worker goes from answer to answer without sleeping, and
//! with one active worker per CPU no request waits behind another thread's time slice.
//!
//! A worker can block for long: a slow tool, a slow client's body, a write to a full socket.
//! The keeper thread notices when connections are ready but no worker has taken one for
//! [`STALL`] while none waits, and brings in a spare worker (woken from standby, or started, up
//! to `WORKER_THREADS`). A worker that finishes a piece of work that took that long (the stuck
//! one, once unstuck) steps back to standby, so the active count returns to its target once the
//! stall is over while the spare keeps serving meanwhile. Spares idle for
//! `WORKER_IDLE_RETIRE` leave. The keeper also closes parked connections past their deadline,
//! and all of them when the server drains.
//!
//! ```text
//!              ┌──────────── standby ◀── steps down after long work (when boosted)
//!              │ released by the keeper (stall)                        ▲
//!              ▼                                                       │
//!  ready set ──▶ active worker: next_ready ─▶ serve ─▶ park ───────────┘
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::net::idle::{Parker, Woken};
use crate::net::pool::PoolStats;
use crate::net::stream::DrainSignal;
use crate::net::wait::readable;

/// How many workers follow the ready set, and whether one more is needed.
#[derive(Debug, Default)]
pub struct Crew {
    /// Spare workers brought in by stalls and not yet stepped down.
    boost: AtomicUsize,
    /// Active workers waiting on the ready set right now.
    waiting: AtomicUsize,
    /// Connections taken from the ready set, ever: the keeper's sign of progress.
    takes: AtomicU64,
}

impl Crew {
    /// Whether the keeper should bring in a spare: connections are `ready`, no worker waits for
    /// them, and none was taken since the keeper's last look (`takes_before`).
    pub fn stalled(&self, takes_before: u64, ready: bool) -> bool {
        ready
            && self.waiting.load(Ordering::Acquire) == 0
            && self.takes.load(Ordering::Acquire) == takes_before
    }

    /// A spare worker joins the active ones.
    fn boosted(&self) {
        self.boost.fetch_add(1, Ordering::AcqRel);
    }

    /// A spare could not be had after [`Crew::boosted`].
    fn unboost(&self) {
        self.step_down();
    }

    /// After a long piece of work (one that may have stalled the others): true when this
    /// worker should step back to standby (a stall brought in a spare, so there is one active
    /// worker more than the target).
    pub fn step_down(&self) -> bool {
        self.boost
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
            .is_ok()
    }

    /// Connections taken so far.
    pub fn takes(&self) -> u64 {
        self.takes.load(Ordering::Acquire)
    }
}

/// The connection workers and their keeper.
pub struct Workers {
    parker: Arc<Parker>,
    stats: Arc<PoolStats>,
    crew: Crew,
    standby_tx: Sender<()>,
    standby_rx: Receiver<()>,
    min_threads: usize,
    max_threads: usize,
    idle_retire: Duration,
    next_id: AtomicUsize,
}

/// How [`Workers::start`] sizes the workers.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// Workers that follow the ready set when nothing is stuck.
    pub active: usize,
    /// Workers kept even when idle (the active ones included).
    pub min: usize,
    /// Most workers (`WORKER_THREADS`).
    pub max: usize,
    /// How long a spare waits in standby before it leaves.
    pub idle_retire: Duration,
}

impl Workers {
    /// Starts the active workers, the standby floor and the keeper.
    ///
    /// # Errors
    /// The keeper thread could not be started.
    pub fn start(
        parker: Arc<Parker>,
        drain: &DrainSignal,
        size: Sizing,
    ) -> std::io::Result<Arc<Workers>> {
        let max = size.max.max(1);
        let active = size.active.clamp(1, max);
        let min = size.min.clamp(active, max);
        let (standby_tx, standby_rx) = crossbeam_channel::bounded(0);
        let workers = Arc::new(Workers {
            parker,
            stats: Arc::new(PoolStats::default()),
            crew: Crew::default(),
            standby_tx,
            standby_rx,
            min_threads: min,
            max_threads: max,
            idle_retire: size.idle_retire,
            next_id: AtomicUsize::new(0),
        });
        for i in 0..min {
            if workers.reserve() {
                workers.spawn(i < active);
            }
        }
        let w2 = Arc::clone(&workers);
        let drain = drain.clone();
        std::thread::Builder::new()
            .name("keeper".into())
            .stack_size(KEEPER_STACK_BYTES)
            .spawn(move || w2.keep(&drain))?;
        Ok(workers)
    }

    /// Live counts.
    pub fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.stats)
    }

    /// Most workers.
    pub fn max_threads(&self) -> usize {
        self.max_threads
    }

    /// Every one of the `max_threads` workers is serving a connection and none has finished
    /// one since the keeper's last look: a new connection would wait for a stuck worker. The
    /// accept loop asks first, so it can still answer 503 with the socket. Workers that are all
    /// busy but making progress do not count: a new connection waits microseconds in the
    /// ready set.
    pub fn is_saturated(&self) -> bool {
        self.stats.stuck.load(Ordering::Acquire)
            && self.stats.busy.load(Ordering::Acquire) >= self.max_threads
    }

    /// Takes a thread slot below the cap.
    fn reserve(&self) -> bool {
        self.stats
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_threads).then_some(n + 1)
            })
            .is_ok()
    }

    /// Starts a worker in a reserved slot, following the ready set when `active`.
    fn spawn(self: &Arc<Self>, active: bool) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let me = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || me.work(active));
        if started.is_err() {
            self.stats.threads.fetch_sub(1, Ordering::AcqRel);
            log::error!("could not start a worker thread");
        }
        started.is_ok()
    }

    fn work(self: Arc<Self>, mut active: bool) {
        loop {
            if active {
                match self.follow() {
                    Leave::Standby => active = false,
                    Leave::Exit => break,
                }
            } else {
                match self.standby_rx.recv_timeout(self.idle_retire) {
                    Ok(()) => active = true,
                    Err(RecvTimeoutError::Timeout) => {
                        // Leave unless that would drop below the floor.
                        let left = self.stats.threads.fetch_update(
                            Ordering::AcqRel,
                            Ordering::Acquire,
                            |n| (n > self.min_threads).then(|| n - 1),
                        );
                        if left.is_ok() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        self.stats.threads.fetch_sub(1, Ordering::AcqRel);
    }

    /// Serves ready connections until this worker steps down or the server drains.
    fn follow(&self) -> Leave {
        loop {
            self.crew.waiting.fetch_add(1, Ordering::AcqRel);
            let woken = self.parker.next_ready(FOLLOW_WAIT);
            self.crew.waiting.fetch_sub(1, Ordering::AcqRel);
            match woken {
                Woken::Ready(conn) => {
                    self.crew.takes.fetch_add(1, Ordering::AcqRel);
                    self.stats.busy.fetch_add(1, Ordering::AcqRel);
                    let started = Instant::now();
                    if catch_unwind(AssertUnwindSafe(|| conn.resume())).is_err() {
                        self.stats.panics.fetch_add(1, Ordering::Relaxed);
                        log::error!("a connection handler panicked; the connection was dropped");
                    }
                    self.stats.busy.fetch_sub(1, Ordering::AcqRel);
                    // A worker that was stuck long enough to have brought a spare in is the one
                    // that steps back: the spare keeps serving while others may still be stuck.
                    if started.elapsed() >= STALL && self.crew.step_down() {
                        return Leave::Standby;
                    }
                }
                Woken::Timeout | Woken::Gone => {}
                Woken::Drained => return Leave::Exit,
            }
        }
    }

    /// Brings one more worker to the ready set: a spare from standby, or a new one.
    fn bring_in(self: &Arc<Self>) {
        self.crew.boosted();
        if self.standby_tx.try_send(()).is_ok() {
            return;
        }
        if !(self.reserve() && self.spawn(true)) {
            // At the cap: the ready connections wait for a worker to finish.
            self.crew.unboost();
        }
    }

    /// The keeper: deadlines of parked connections, the drain, and stalls.
    fn keep(self: Arc<Self>, drain: &DrainSignal) {
        let mut takes = self.crew.takes();
        loop {
            let now = Instant::now();
            // Looking for stalls only matters while a worker is serving.
            let busy = self.stats.busy.load(Ordering::Acquire) > 0;
            let wait = match (busy, self.parker.next_deadline()) {
                (true, _) => STALL,
                (false, Some(d)) => d.saturating_duration_since(now).min(TICK),
                (false, None) => TICK,
            };
            let drained = readable(drain.fd(), wait);
            self.parker.sweep(Instant::now(), drained);
            if drained {
                // Waiting workers see the drain themselves; spares in standby retire as usual.
                return;
            }
            let still = busy && self.crew.takes() == takes;
            let at_cap = self.stats.busy.load(Ordering::Acquire) >= self.max_threads;
            self.stats.stuck.store(still && at_cap, Ordering::Release);
            if busy && self.crew.stalled(takes, self.parker.has_ready()) {
                self.bring_in();
            }
            takes = self.crew.takes();
        }
    }
}

enum Leave {
    Standby,
    Exit,
}

/// How long ready connections may wait with no worker taking one before a spare is brought in.
/// Long enough that a busy CPU is not mistaken for a stuck worker (an active worker takes
/// dozens of connections in this time), short enough to be small beside a slow tool call.
pub const STALL: Duration = Duration::from_millis(2);
/// The keeper's sleep when nothing is being served: a connection parked meanwhile with an
/// earlier deadline is closed at most this late.
const TICK: Duration = Duration::from_millis(50);
/// An active worker's wait on the ready set before it looks again (the drain wakes it anyway).
const FOLLOW_WAIT: Duration = Duration::from_secs(1);
/// Stack size of a worker: connection handling is shallow, and only touched pages count
/// towards memory.
const WORKER_STACK_BYTES: usize = 256 * 1024;
const KEEPER_STACK_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_ready_connections_no_waiting_worker_and_no_take_since_the_last_look() {
        let crew = Crew::default();
        let before = crew.takes();
        assert!(crew.stalled(before, true));
        assert!(
            !crew.stalled(before, false),
            "nothing ready: nothing to serve"
        );
        crew.waiting.fetch_add(1, Ordering::AcqRel);
        assert!(!crew.stalled(before, true), "a waiting worker takes it");
        crew.waiting.fetch_sub(1, Ordering::AcqRel);
        crew.takes.fetch_add(1, Ordering::AcqRel);
        assert!(
            !crew.stalled(before, true),
            "a take since the last look is progress: a busy CPU, not a stuck worker"
        );
        assert!(crew.stalled(crew.takes(), true));
    }

    #[test]
    fn each_spare_brought_in_makes_exactly_one_worker_step_down_later() {
        let crew = Crew::default();
        assert!(!crew.step_down(), "at the target nobody steps down");
        crew.boosted();
        crew.boosted();
        assert!(crew.step_down());
        assert!(crew.step_down());
        assert!(!crew.step_down());
        crew.boosted();
        crew.unboost();
        assert!(
            !crew.step_down(),
            "a spare that could not be had is not owed"
        );
    }
}
