//! Idle keep-alive connections wait here instead of holding a worker.
//!
//! A worker that finished a request keeps its connection for `IDLE_PARK_MS` (under load the next
//! request arrives sooner, and the connection never leaves the worker); past that it parks the
//! connection with the [`Parker`] and goes back to the pool. One thread waits on an `epoll` set
//! of the parked sockets: a socket that becomes readable (the next request, or a hang-up) goes
//! back to a worker; one idle past its deadline, or every one when the server drains, is closed.
//! A parked connection costs its socket, its TLS state and an entry here: no thread, no buffers.
//!
//! ```text
//!  worker ── idle past IDLE_PARK_MS ──▶ Parker::park ──▶ IdleSet + epoll (one-shot)
//!    ▲                                                        │
//!    └──── Pool::submit(resume) ◀── readable / hang-up ───────┤
//!                                   deadline / drain ──▶ close
//! ```
//!
//! [`IdleSet`] is the bookkeeping without I/O (time is passed in), so its state changes are
//! tested without sleeping.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

use crate::net::pool::Pool;
use crate::net::stream::DrainSignal;

/// Parked items by key, with their deadlines in order.
#[derive(Debug)]
pub struct IdleSet<T> {
    items: HashMap<u64, (Instant, T)>,
    deadlines: BTreeSet<(Instant, u64)>,
    next_key: u64,
}

impl<T> Default for IdleSet<T> {
    fn default() -> Self {
        Self {
            items: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_key: 0,
        }
    }
}

impl<T> IdleSet<T> {
    /// Adds `item`, due at `deadline`; returns its key.
    pub fn insert(&mut self, item: T, deadline: Instant) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.items.insert(key, (deadline, item));
        self.deadlines.insert((deadline, key));
        key
    }

    /// The item with `key`, left in place.
    pub fn get(&self, key: u64) -> Option<&T> {
        self.items.get(&key).map(|(_, item)| item)
    }

    /// Takes the item with `key` out (it woke); `None` when it is no longer here.
    pub fn take(&mut self, key: u64) -> Option<T> {
        let (deadline, item) = self.items.remove(&key)?;
        self.deadlines.remove(&(deadline, key));
        Some(item)
    }

    /// Takes out every item whose deadline is at or before `now`, earliest first.
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(&(deadline, key)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, item)) = self.items.remove(&key) {
                out.push(item);
            }
        }
        out
    }

    /// Takes out every item.
    pub fn take_all(&mut self) -> Vec<T> {
        self.deadlines.clear();
        self.items.drain().map(|(_, (_, item))| item).collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Items parked.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// A parked connection: its socket, to watch, and what to do when it wakes.
pub trait Parked: Send {
    /// The socket to watch.
    fn socket(&self) -> &TcpStream;
    /// Its next request started (or the client hung up): serve it. Runs on a pool worker.
    fn resume(self: Box<Self>);
    /// It idled past its deadline, or the server drains: close it.
    fn close(self: Box<Self>);
}

/// The idle connections and the thread that watches them.
pub struct Parker {
    epoll: OwnedFd,
    set: Mutex<IdleSet<Box<dyn Parked>>>,
    pool: Arc<Pool>,
    drained: AtomicBool,
}

impl Parker {
    /// Starts the watching thread; woken connections are served on `pool`, and all are closed
    /// when `drain` fires.
    ///
    /// # Errors
    /// No `epoll` instance or no thread could be had.
    pub fn start(pool: Arc<Pool>, drain: &DrainSignal) -> io::Result<Arc<Parker>> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            drain.fd(),
            EventData::new_u64(DRAIN_KEY),
            EventFlags::IN,
        )?;
        let parker = Arc::new(Parker {
            epoll,
            set: Mutex::new(IdleSet::default()),
            pool,
            drained: AtomicBool::new(false),
        });
        let p2 = Arc::clone(&parker);
        let drain = drain.clone();
        std::thread::Builder::new()
            .name("idle".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || p2.run(&drain))?;
        Ok(parker)
    }

    fn set(&self) -> MutexGuard<'_, IdleSet<Box<dyn Parked>>> {
        // The set is valid between statements, so a poisoned lock still holds good data.
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Parks `conn` until its socket is readable or `deadline` passes (then it is closed).
    pub fn park(&self, conn: Box<dyn Parked>, deadline: Instant) {
        if self.drained.load(Ordering::Acquire) {
            return conn.close();
        }
        let mut set = self.set();
        // Registered under the lock: the thread cannot see the event before the entry exists.
        let key = set.insert(conn, deadline);
        let registered = set.get(key).map(|c| {
            epoll::add(
                &self.epoll,
                c.socket(),
                EventData::new_u64(key),
                WATCH_FLAGS,
            )
        });
        if let Some(Err(e)) = registered
            && let Some(conn) = set.take(key)
        {
            drop(set);
            log::warn!("cannot park an idle connection: {e}");
            conn.close();
        }
    }

    fn run(self: Arc<Self>, drain: &DrainSignal) {
        let mut events = Vec::with_capacity(BATCH);
        loop {
            let now = Instant::now();
            let wait = self
                .set()
                .next_deadline()
                .map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timespec(wait)),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::error!("the idle-connection watcher stopped: {e}");
                    return;
                }
            }
            let mut woken = Vec::new();
            let mut closing = Vec::new();
            {
                let mut set = self.set();
                for ev in &events {
                    let key = ev.data.u64();
                    if key == DRAIN_KEY {
                        // Level-triggered and never cleared: stop watching it once seen.
                        let _ = epoll::delete(&self.epoll, drain.fd());
                        self.drained.store(true, Ordering::Release);
                        continue;
                    }
                    if let Some(conn) = set.take(key) {
                        woken.push(conn);
                    }
                }
                if self.drained.load(Ordering::Acquire) {
                    closing.extend(set.take_all());
                } else {
                    closing.extend(set.expired(Instant::now()));
                }
            }
            for conn in woken {
                // Off the set before the socket can close (its number may be reused).
                let _ = epoll::delete(&self.epoll, conn.socket());
                let job: crate::net::pool::Job = Box::new(move || conn.resume());
                if let Err(job) = self.pool.submit(job) {
                    // Every worker is busy: the connection is dropped, as a new one would be
                    // refused.
                    log::debug!("no worker for a woken idle connection; closing it");
                    drop(job);
                }
            }
            for conn in closing {
                let _ = epoll::delete(&self.epoll, conn.socket());
                conn.close();
            }
            // The server that started this thread is gone and nothing is parked: stop.
            if Arc::strong_count(&self) == 1 && self.set().len() == 0 {
                return;
            }
        }
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// The drain descriptor's key (parked keys count up from zero).
const DRAIN_KEY: u64 = u64::MAX;
/// A parked socket wakes once: on bytes or a hang-up.
const WATCH_FLAGS: EventFlags = EventFlags::IN
    .union(EventFlags::RDHUP)
    .union(EventFlags::ONESHOT);
/// Events taken per `epoll_wait`.
const BATCH: usize = 256;
/// The longest the thread sleeps: a connection parked meanwhile with an earlier deadline is
/// closed at most this late.
const TICK: Duration = Duration::from_millis(50);
const THREAD_STACK_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_leaves_when_it_wakes_or_expires_and_not_twice() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut set = IdleSet::default();
        let a = set.insert("a", t0 + s(10));
        let b = set.insert("b", t0 + s(5));
        let c = set.insert("c", t0 + s(5));
        assert_eq!((set.len(), set.next_deadline()), (3, Some(t0 + s(5))));
        assert!(set.expired(t0 + s(4)).is_empty());
        assert_eq!(set.take(b), Some("b"));
        assert_eq!(set.take(b), None, "a woken item is gone");
        assert_eq!(set.expired(t0 + s(5)), vec!["c"]);
        assert_eq!(set.take(c), None, "an expired item is gone");
        assert_eq!(set.next_deadline(), Some(t0 + s(10)));
        assert_eq!(set.take(a), Some("a"));
        assert!(set.len() == 0 && set.next_deadline().is_none());
    }

    #[test]
    fn expiry_takes_the_earliest_first_and_take_all_empties() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut set = IdleSet::default();
        for (name, at) in [("late", 30), ("early", 10), ("mid", 20)] {
            set.insert(name, t0 + ms(at));
        }
        assert_eq!(set.expired(t0 + ms(25)), vec!["early", "mid"]);
        set.insert("next", t0 + ms(40));
        let mut rest = set.take_all();
        rest.sort_unstable();
        assert_eq!(rest, vec!["late", "next"]);
        assert!(set.len() == 0 && set.next_deadline().is_none());
    }
}
