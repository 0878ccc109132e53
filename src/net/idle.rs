//! The ready set: connections with no request in progress wait here, without a thread, until
//! their socket has bytes.
//!
//! Every connection between two requests, every new one before its first byte and every TLS
//! handshake between two flights is parked in one `epoll` set (one-shot) with a deadline. The workers themselves wait on that set
//! (`crate::net::workers`): a worker that finished an answer parks its connection and asks the
//! set for the next readable one, so under load it goes from answer to answer without sleeping,
//! and no thread hands a connection to another. The workers' keeper thread sweeps the
//! deadlines: a connection idle past its deadline, or every one when the server drains, is
//! closed. A parked connection costs its socket, its TLS state and an entry here: no thread, no
//! buffers.
//!
//! ```text
//!  accept ─── new socket ──────────┐
//!  worker ─── answer sent ─────────┴──▶ Parker::park ──▶ IdleSet + epoll (one-shot)
//!    ▲                                                        │
//!    └──── Parker::next_ready ◀── readable / hang-up ─────────┤
//!                                 deadline / drain ──▶ close (Parker::sweep, by the keeper)
//! ```
//!
//! [`IdleSet`] is the bookkeeping without I/O (time is passed in), so its state changes are
//! tested without sleeping.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

use crate::net::stream::DrainSignal;
use crate::net::wait::{readable, timespec};

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
    /// Its next bytes arrived (or the client hung up): serve them. Runs on a worker.
    fn resume(self: Box<Self>);
    /// It idled past its deadline, or the server drains: close it.
    fn close(self: Box<Self>);
}

/// What a worker waiting on the set gets.
pub enum Woken {
    /// A connection with bytes to read (or a hang-up), now the worker's.
    Ready(Box<dyn Parked>),
    /// Nothing became readable in time.
    Timeout,
    /// The event was for a connection the keeper closed meanwhile: wait again.
    Gone,
    /// The server drains: nothing will be parked any more.
    Drained,
}

/// A parked connection, watched or on hold.
struct Entry {
    conn: Box<dyn Parked>,
    /// On hold (not watched) until its set deadline; then watched until this one.
    then: Option<Instant>,
}

/// The parked connections and the `epoll` set the workers wait on.
pub struct Parker {
    epoll: OwnedFd,
    set: Mutex<IdleSet<Entry>>,
    drained: AtomicBool,
}

impl Parker {
    /// An empty set; waiting workers see [`Woken::Drained`] once `drain` fires.
    ///
    /// # Errors
    /// No `epoll` instance could be had.
    pub fn new(drain: &DrainSignal) -> io::Result<Parker> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        // Level-triggered and never cleared: once fired, every waiting worker sees it.
        epoll::add(
            &epoll,
            drain.fd(),
            EventData::new_u64(DRAIN_KEY),
            EventFlags::IN,
        )?;
        Ok(Parker {
            epoll,
            set: Mutex::new(IdleSet::default()),
            drained: AtomicBool::new(false),
        })
    }

    fn set(&self) -> MutexGuard<'_, IdleSet<Entry>> {
        // The set is valid between statements, so a poisoned lock still holds good data.
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Parks `conn` until its socket is readable (a worker takes it) or `deadline` passes (it
    /// is closed).
    pub fn park(&self, conn: Box<dyn Parked>, deadline: Instant) {
        self.enter(Entry { conn, then: None }, deadline);
    }

    /// Parks `conn` unwatched until `until` (whatever it sends meanwhile waits in the socket),
    /// then as [`Parker::park`] until `deadline`.
    pub fn hold(&self, conn: Box<dyn Parked>, until: Instant, deadline: Instant) {
        self.enter(
            Entry {
                conn,
                then: Some(deadline),
            },
            until,
        );
    }

    fn enter(&self, entry: Entry, deadline: Instant) {
        let mut set = self.set();
        // Read under the lock: one parked as the drain begins is still in the drain's sweep.
        if self.drained.load(Ordering::Acquire) {
            drop(set);
            return entry.conn.close();
        }
        let watch = entry.then.is_none();
        // Armed under the lock: a worker cannot see the event before the entry exists.
        let key = set.insert(entry, deadline);
        let armed = match set.get(key) {
            Some(e) if watch => self.arm(e.conn.socket(), key),
            _ => Ok(()),
        };
        if let Err(e) = armed
            && let Some(entry) = set.take(key)
        {
            drop(set);
            log::warn!("cannot park a connection: {e}");
            entry.conn.close();
        }
    }

    /// Watches `sock` for one wake-up under `key`. A socket parked before is still registered
    /// (one-shot only disarms it), so it is re-armed; closing a socket unregisters it.
    fn arm(&self, sock: &TcpStream, key: u64) -> rustix::io::Result<()> {
        match epoll::modify(&self.epoll, sock, EventData::new_u64(key), WATCH_FLAGS) {
            Err(rustix::io::Errno::NOENT) => {
                epoll::add(&self.epoll, sock, EventData::new_u64(key), WATCH_FLAGS)
            }
            done => done,
        }
    }

    /// Waits up to `timeout` for a parked connection to become readable and takes it out of
    /// the set. Any number of workers wait at once; the kernel wakes one per event, and one
    /// event is taken per call so that no worker holds readable connections another could serve.
    pub fn next_ready(&self, timeout: Duration) -> Woken {
        // On the stack: this runs once per request.
        let mut buf = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 1];
        let key = match epoll::wait(&self.epoll, &mut buf, Some(&timespec(timeout))) {
            Ok((events, _)) => match events.first() {
                Some(ev) => ev.data.u64(),
                None => return Woken::Timeout,
            },
            Err(rustix::io::Errno::INTR) => return Woken::Timeout,
            Err(e) => {
                log::error!("waiting for ready connections failed: {e}");
                return Woken::Drained;
            }
        };
        match key {
            DRAIN_KEY => Woken::Drained,
            key => self
                .set()
                .take(key)
                .map_or(Woken::Gone, |e| Woken::Ready(e.conn)),
        }
    }

    /// Some parked connection is readable and no worker has taken it yet.
    pub fn has_ready(&self) -> bool {
        readable(self.epoll.as_fd(), Duration::ZERO)
    }

    /// The earliest deadline of a parked connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.set().next_deadline()
    }

    /// Closes the connections idle past their deadline at `now`, and watches those whose hold
    /// ended; closes every one, and every one parked from now on, when `drained`.
    pub fn sweep(&self, now: Instant, drained: bool) {
        let due = {
            let mut set = self.set();
            if drained {
                self.drained.store(true, Ordering::Release);
                set.take_all()
            } else {
                set.expired(now)
            }
        };
        for entry in due {
            match entry.then {
                Some(deadline) if !drained => self.park(entry.conn, deadline),
                _ => entry.conn.close(),
            }
        }
    }
}

/// The drain descriptor's key (parked keys count up from zero).
const DRAIN_KEY: u64 = u64::MAX;
/// A parked socket wakes once: on bytes or a hang-up.
const WATCH_FLAGS: EventFlags = EventFlags::IN
    .union(EventFlags::RDHUP)
    .union(EventFlags::ONESHOT);

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// What became of a parked probe, with its socket back.
    type Told = mpsc::Sender<(&'static str, &'static str, TcpStream)>;

    /// A parked connection that reports what became of it.
    struct Probe {
        sock: TcpStream,
        name: &'static str,
        told: Told,
    }

    impl Parked for Probe {
        fn socket(&self) -> &TcpStream {
            &self.sock
        }
        fn resume(self: Box<Self>) {
            let _ = self.told.send((self.name, "resumed", self.sock));
        }
        fn close(self: Box<Self>) {
            let _ = self.told.send((self.name, "closed", self.sock));
        }
    }

    fn probe(sock: TcpStream, name: &'static str, told: &Told) -> Box<Probe> {
        Box::new(Probe {
            sock,
            name,
            told: told.clone(),
        })
    }

    /// A connected pair: the server side to park, the client side to write on.
    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (l.accept().unwrap().0, client)
    }

    /// Takes the next ready connection and resumes it.
    fn resume_next(p: &Parker) {
        match p.next_ready(Duration::from_secs(10)) {
            Woken::Ready(conn) => conn.resume(),
            _ => panic!("a connection that spoke is ready"),
        }
    }

    #[test]
    fn a_parked_connection_is_taken_when_it_speaks_closed_past_its_deadline_and_on_drain() {
        let drain = DrainSignal::new().unwrap();
        let p = Parker::new(&drain).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let (a, mut a_client) = pair(&l);
        let (b, _b_client) = pair(&l);
        p.park(probe(a, "a", &tx), t0 + Duration::from_secs(60));
        p.park(probe(b, "b", &tx), t0 + Duration::from_millis(10));
        assert!(matches!(p.next_ready(Duration::ZERO), Woken::Timeout));
        assert!(!p.has_ready());
        a_client.write_all(b"GET").unwrap();
        resume_next(&p);
        let (name, what, a) = rx.try_recv().unwrap();
        assert_eq!((name, what, p.len()), ("a", "resumed", 1));
        p.sweep(t0 + Duration::from_millis(5), false);
        assert!(rx.try_recv().is_err(), "b is not due yet");
        p.sweep(t0 + Duration::from_millis(10), false);
        assert_eq!(rx.try_recv().unwrap().0, "b");
        // Parked again, a's socket (still registered, disarmed) is re-armed and wakes again; its
        // unread bytes are still there.
        p.park(probe(a, "a", &tx), t0 + Duration::from_secs(60));
        resume_next(&p);
        let (name, what, a) = rx.try_recv().unwrap();
        assert_eq!((name, what), ("a", "resumed"));
        p.park(probe(a, "a", &tx), t0 + Duration::from_secs(60));
        // Not read, the bytes wake it once more; parked a third time, the drain closes it.
        resume_next(&p);
        let (_, _, a) = rx.try_recv().unwrap();
        p.park(probe(a, "a", &tx), t0 + Duration::from_secs(60));
        p.sweep(t0, true);
        assert_eq!(rx.try_recv().unwrap().1, "closed");
        let (d, _d_client) = pair(&l);
        p.park(probe(d, "d", &tx), t0 + Duration::from_secs(60));
        let (name, what, _) = rx.try_recv().unwrap();
        assert_eq!(
            (name, what),
            ("d", "closed"),
            "after the drain nothing stays parked"
        );
        drain.fire();
        assert!(matches!(
            p.next_ready(Duration::from_secs(10)),
            Woken::Drained
        ));
    }

    #[test]
    fn a_connection_on_hold_is_not_taken_before_its_hold_ends_even_when_it_speaks() {
        let drain = DrainSignal::new().unwrap();
        let p = Parker::new(&drain).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (tx, rx) = mpsc::channel();
        let (a, mut a_client) = pair(&l);
        let until = Instant::now() + Duration::from_secs(30);
        p.hold(probe(a, "a", &tx), until, until + Duration::from_secs(60));
        a_client.write_all(b"GET").unwrap();
        assert!(matches!(
            p.next_ready(Duration::from_millis(20)),
            Woken::Timeout
        ));
        p.sweep(until - Duration::from_millis(1), false);
        assert!(matches!(p.next_ready(Duration::ZERO), Woken::Timeout));
        assert_eq!(p.len(), 1);
        // The hold ends: watched now, and its bytes are already there.
        p.sweep(until, false);
        resume_next(&p);
        assert_eq!(rx.try_recv().unwrap().1, "resumed");
        assert_eq!(p.len(), 0);
    }

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
