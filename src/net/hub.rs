//! Held streams without threads: the legacy `GET /sse` and MCP `GET /mcp` streams, which wait
//! for server messages and send heartbeats for as long as the client stays.
//!
//! One hub thread owns every held stream's connection. It waits on one `epoll` set holding the
//! streams' sockets (a hang-up, stray input, room to write again), the drain descriptor and a
//! wake-up pipe. A message for a stream goes into the stream's mailbox, whose sender then names
//! the stream on the hub's ready list and pokes the pipe; the hub takes the messages out, frames
//! them and writes without blocking. Heartbeats, the maximum stream age and the write timeout of
//! a client that stopped reading are deadlines in one ordered set. A stream thus costs its
//! socket, its TLS state and its entry: no thread, no stack.
//!
//! ```text
//!  sender ── MailSender::send ──▶ mailbox ─┐        worker ── adopt(conn, HeldStream) ─┐
//!        └── waker: ready list + pipe ─────┴──▶ hub thread (epoll) ◀───────────────────┘
//!                                               │ frames, writes (non-blocking), heartbeats
//!                                               ▼
//!                                   sockets: hang-up → end; writable → flush the backlog
//! ```

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

use crate::http::response::{LAST_CHUNK, write_chunk};
use crate::net::wait::timespec;

/// A connection the hub can hold: written without blocking.
pub trait HeldIo: Send {
    /// The socket (set non-blocking by the hub).
    fn watched(&self) -> &TcpStream;
    /// Queues bytes to send; false when the backlog is full (the client reads too slowly).
    fn queue(&mut self, bytes: &[u8]) -> bool;
    /// Writes what is queued without blocking: `Ok(true)` once everything is out, `Ok(false)`
    /// when the socket is full.
    ///
    /// # Errors
    /// The connection broke.
    fn push(&mut self) -> io::Result<bool>;
    /// Reads and discards what arrived; `Ok(false)` once the peer closed.
    ///
    /// # Errors
    /// The connection broke.
    fn read_discard(&mut self) -> io::Result<bool>;
    /// Closes (a TLS close-notify when there is room for it).
    fn shut(&mut self);
}

/// Wakes the hub for one stream: called by the stream's mailbox after each message.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What a held stream's source has next.
pub enum Next {
    /// One event's bytes (unframed).
    Event(Vec<u8>),
    /// Nothing queued.
    Empty,
    /// The source is gone for good: end the stream.
    Closed,
}

/// Called once when a stream ends, with the payload bytes it sent and how long it ran.
pub type OnEnd = Box<dyn FnOnce(u64, Duration) + Send>;

/// A held stream as its transport describes it; built by `crate::net::stream::held`.
pub struct HeldStream {
    /// Installs the waker in the stream's mailbox.
    pub arm: Box<dyn FnOnce(Waker) + Send>,
    /// Takes the next queued event.
    pub next: Box<dyn FnMut() -> Next + Send>,
    /// A heartbeat's bytes (unframed).
    pub heartbeat: Box<dyn FnMut() -> Vec<u8> + Send>,
    /// Events sent first (unframed).
    pub initial: Vec<Vec<u8>>,
    /// Time between heartbeats.
    pub interval: Duration,
    /// The stream ends (cleanly) after this long.
    pub max_age: Duration,
    /// Run when the stream ends, once what `keep` held is released.
    pub on_end: Vec<OnEnd>,
    /// Dropped when the stream ends (session registrations, stream slots).
    pub keep: Box<dyn Any + Send>,
}

/// The hub: adopt streams into it; its thread ends once the hub is dropped and no stream is left.
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    epoll: OwnedFd,
    wake: UnixStream,
    ready: Mutex<Vec<u64>>,
    adopted: Mutex<Vec<Adopted>>,
    next_key: AtomicU64,
    held: AtomicU64,
    write_timeout: Duration,
}

struct Adopted {
    io: Box<dyn HeldIo>,
    held: HeldStream,
    head: Vec<u8>,
    guard: Box<dyn Any + Send>,
}

struct Entry {
    io: Box<dyn HeldIo>,
    held: HeldStream,
    _guard: Box<dyn Any + Send>,
    bytes: u64,
    opened: Instant,
    next_beat: Instant,
    dies: Instant,
    /// Since when the socket has been full.
    blocked: Option<Instant>,
    /// This entry's place in the timer set.
    due: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The lists are valid between statements, so a poisoned lock still holds good data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn poke(&self) {
        // A full pipe already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
    }
}

impl Hub {
    /// Starts the hub thread. `drain` becomes readable when the server drains (every stream then
    /// ends); `write_timeout` is how long a client may accept no bytes.
    ///
    /// # Errors
    /// No `epoll` instance, pipe or thread could be had.
    pub fn start(drain: OwnedFd, write_timeout: Duration) -> io::Result<Hub> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        let (wake, wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        epoll::add(
            &epoll,
            &wake_rx,
            EventData::new_u64(WAKE_KEY),
            EventFlags::IN,
        )?;
        epoll::add(
            &epoll,
            &drain,
            EventData::new_u64(DRAIN_KEY),
            EventFlags::IN,
        )?;
        let shared = Arc::new(Shared {
            epoll,
            wake,
            ready: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
            next_key: AtomicU64::new(0),
            held: AtomicU64::new(0),
            write_timeout,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("held-streams".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || run(&weak, &wake_rx, &drain))?;
        Ok(Hub { shared })
    }

    /// Takes over a connection whose stream head is in `head` (not yet written): the hub writes
    /// it with the stream's first events and holds the stream until it ends; `guard` is dropped
    /// then.
    pub fn adopt(
        &self,
        io: Box<dyn HeldIo>,
        held: HeldStream,
        head: Vec<u8>,
        guard: Box<dyn Any + Send>,
    ) {
        lock(&self.shared.adopted).push(Adopted {
            io,
            held,
            head,
            guard,
        });
        self.shared.poke();
    }

    /// Streams held now.
    pub fn len(&self) -> u64 {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// True when no stream is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shared.poke();
    }
}

/// The hub thread's state.
struct Streams {
    map: HashMap<u64, Entry>,
    timers: BTreeSet<(Instant, u64)>,
    drained: bool,
}

fn run(weak: &Weak<Shared>, wake_rx: &UnixStream, drain: &OwnedFd) {
    let mut s = Streams {
        map: HashMap::new(),
        timers: BTreeSet::new(),
        drained: false,
    };
    let mut events = Vec::with_capacity(BATCH);
    loop {
        let Some(shared) = weak.upgrade() else {
            // The hub is gone: end what is left.
            for (_, e) in s.map.drain() {
                finish(e, true);
            }
            return;
        };
        let now = Instant::now();
        let wait = s
            .timers
            .first()
            .map_or(IDLE_WAIT, |&(t, _)| t.saturating_duration_since(now));
        events.clear();
        match epoll::wait(
            &shared.epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&timespec(wait)),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                log::error!("the held-stream hub stopped: {e}");
                return;
            }
        }
        for ev in &events {
            match ev.data.u64() {
                WAKE_KEY => {
                    let mut sink = [0u8; 64];
                    while matches!((&*wake_rx).read(&mut sink), Ok(n) if n > 0) {}
                }
                DRAIN_KEY => {
                    // Level-triggered and never cleared: stop watching it once seen.
                    let _ = epoll::delete(&shared.epoll, drain);
                    s.drained = true;
                }
                key => on_socket(&shared, &mut s, key, ev.flags),
            }
        }
        let adopted = std::mem::take(&mut *lock(&shared.adopted));
        for a in adopted {
            adopt(&shared, weak, &mut s, a);
        }
        let ready = std::mem::take(&mut *lock(&shared.ready));
        for key in ready {
            pump(&shared, &mut s, key);
        }
        if s.drained {
            for key in s.map.keys().copied().collect::<Vec<_>>() {
                end(&shared, &mut s, key, true);
            }
        }
        let now = Instant::now();
        while let Some(&(t, key)) = s.timers.first() {
            if t > now {
                break;
            }
            s.timers.pop_first();
            tick(&shared, &mut s, key, now);
        }
        if s.map.is_empty() && Arc::strong_count(&shared) == 1 {
            return;
        }
    }
}

fn adopt(shared: &Shared, weak: &Weak<Shared>, s: &mut Streams, a: Adopted) {
    let Adopted {
        mut io,
        mut held,
        head,
        guard,
    } = a;
    let now = Instant::now();
    let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
    // Adopted while draining: registered all the same, and ended (cleanly) with the rest.
    if io.watched().set_nonblocking(true).is_err()
        || epoll::add(
            &shared.epoll,
            io.watched(),
            EventData::new_u64(key),
            EventFlags::IN | EventFlags::RDHUP,
        )
        .is_err()
    {
        io.shut();
        drop(std::mem::replace(&mut held.keep, Box::new(())));
        for f in held.on_end.drain(..) {
            f(0, Duration::ZERO);
        }
        return;
    }
    shared.held.fetch_add(1, Ordering::Relaxed);
    let weak = weak.clone();
    (std::mem::replace(&mut held.arm, Box::new(|_| {})))(Arc::new(move || {
        if let Some(sh) = weak.upgrade() {
            let mut ready = lock(&sh.ready);
            let first = ready.is_empty();
            ready.push(key);
            drop(ready);
            if first {
                sh.poke();
            }
        }
    }));
    let initial = std::mem::take(&mut held.initial);
    // A zero interval would spin; a huge age would overflow the clock.
    held.interval = held.interval.max(MIN_INTERVAL);
    let far = |d: Duration| now.checked_add(d).unwrap_or(now + FAR_FUTURE);
    let (next_beat, dies) = (far(held.interval), far(held.max_age));
    let mut entry = Entry {
        io,
        held,
        _guard: guard,
        bytes: 0,
        opened: now,
        next_beat,
        dies,
        blocked: None,
        due: next_beat.min(dies),
    };
    let mut ok = entry.io.queue(&head);
    for ev in &initial {
        ok = ok && queue_event(&mut entry, ev);
    }
    s.timers.insert((entry.due, key));
    s.map.insert(key, entry);
    if !ok {
        return end(shared, s, key, false);
    }
    pump(shared, s, key);
}

fn queue_event(e: &mut Entry, payload: &[u8]) -> bool {
    // An empty chunk would end the body.
    if payload.is_empty() {
        return true;
    }
    let mut framed = Vec::with_capacity(payload.len() + 16);
    write_chunk(&mut framed, payload);
    e.bytes += payload.len() as u64;
    e.io.queue(&framed)
}

/// Sends what the stream's source has queued.
fn pump(shared: &Shared, s: &mut Streams, key: u64) {
    let Some(e) = s.map.get_mut(&key) else {
        return;
    };
    let mut ok = true;
    let mut closed = false;
    loop {
        match (e.held.next)() {
            Next::Event(b) => {
                if !queue_event(e, &b) {
                    ok = false;
                    break;
                }
            }
            Next::Empty => break,
            Next::Closed => {
                closed = true;
                break;
            }
        }
    }
    if !ok {
        return end(shared, s, key, false);
    }
    if !flush(shared, s, key) {
        return end(shared, s, key, false);
    }
    if closed {
        end(shared, s, key, true);
    }
}

/// Writes the backlog; watches for room when the socket is full. False when the connection broke.
fn flush(shared: &Shared, s: &mut Streams, key: u64) -> bool {
    let Some(e) = s.map.get_mut(&key) else {
        return false;
    };
    match e.io.push() {
        Ok(true) => {
            if e.blocked.take().is_some() {
                let _ = epoll::modify(
                    &shared.epoll,
                    e.io.watched(),
                    EventData::new_u64(key),
                    EventFlags::IN | EventFlags::RDHUP,
                );
                reschedule(shared, s, key);
            }
            true
        }
        Ok(false) => {
            if e.blocked.is_none() {
                e.blocked = Some(Instant::now());
                let _ = epoll::modify(
                    &shared.epoll,
                    e.io.watched(),
                    EventData::new_u64(key),
                    EventFlags::IN | EventFlags::RDHUP | EventFlags::OUT,
                );
                reschedule(shared, s, key);
            }
            true
        }
        Err(_) => false,
    }
}

fn write_deadline(shared: &Shared, e: &Entry) -> Option<Instant> {
    e.blocked.map(|b| b + shared.write_timeout)
}

/// Moves the entry's timer to its earliest deadline: the next heartbeat, the end of its age, or
/// the write timeout while its socket is full. Every one lies ahead of a tick that keeps the
/// stream, so the timer loop always moves on.
fn reschedule(shared: &Shared, s: &mut Streams, key: u64) {
    let Some(e) = s.map.get_mut(&key) else {
        return;
    };
    s.timers.remove(&(e.due, key));
    let mut due = e.next_beat.min(e.dies);
    if let Some(d) = write_deadline(shared, e) {
        due = due.min(d);
    }
    e.due = due;
    s.timers.insert((due, key));
}

fn on_socket(shared: &Shared, s: &mut Streams, key: u64, flags: EventFlags) {
    let Some(e) = s.map.get_mut(&key) else {
        return;
    };
    if flags.intersects(EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP) {
        return end(shared, s, key, false);
    }
    if flags.contains(EventFlags::IN) && !matches!(e.io.read_discard(), Ok(true)) {
        return end(shared, s, key, false);
    }
    if flags.contains(EventFlags::OUT) && !flush(shared, s, key) {
        end(shared, s, key, false);
    }
}

fn tick(shared: &Shared, s: &mut Streams, key: u64, now: Instant) {
    let Some(e) = s.map.get_mut(&key) else {
        return;
    };
    if now >= e.dies {
        return end(shared, s, key, true);
    }
    if write_deadline(shared, e).is_some_and(|d| now >= d) {
        log::debug!("a held stream's client accepted no bytes for the write timeout; dropped");
        return end(shared, s, key, false);
    }
    if now >= e.next_beat {
        e.next_beat = now.checked_add(e.held.interval).unwrap_or(now + FAR_FUTURE);
        let beat = (e.held.heartbeat)();
        if !queue_event(e, &beat) {
            return end(shared, s, key, false);
        }
        // Also notices a source closed without a wake-up.
        pump(shared, s, key);
    }
    reschedule(shared, s, key);
}

/// Ends a stream: `clean` ends the chunked body first.
fn end(shared: &Shared, s: &mut Streams, key: u64, clean: bool) {
    let Some(e) = s.map.remove(&key) else {
        return;
    };
    s.timers.remove(&(e.due, key));
    let _ = epoll::delete(&shared.epoll, e.io.watched());
    shared.held.fetch_sub(1, Ordering::Relaxed);
    finish(e, clean);
}

fn finish(mut e: Entry, clean: bool) {
    if clean && e.io.queue(LAST_CHUNK) {
        let _ = e.io.push();
    }
    e.io.shut();
    let ran = e.opened.elapsed();
    // What the stream kept (its session, its slot) is released before anyone hears it ended.
    drop(std::mem::replace(&mut e.held.keep, Box::new(())));
    for f in e.held.on_end.drain(..) {
        f(e.bytes, ran);
    }
}

/// A plain socket as a held connection (the metrics port's streams, tests).
impl HeldIo for TcpStream {
    fn watched(&self) -> &TcpStream {
        self
    }

    fn queue(&mut self, bytes: &[u8]) -> bool {
        // Without a user-space backlog: what the socket does not take at once is a slow client.
        let mut rest = bytes;
        while !rest.is_empty() {
            match Write::write(self, rest) {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest = &rest[n..],
            }
        }
        true
    }

    fn push(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    fn read_discard(&mut self) -> io::Result<bool> {
        let mut scratch = [0u8; 1024];
        loop {
            match Read::read(self, &mut scratch) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    fn shut(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// Keys of the pipe and the drain descriptor (stream keys count up from zero).
const WAKE_KEY: u64 = u64::MAX;
const DRAIN_KEY: u64 = u64::MAX - 1;
/// Events taken per `epoll_wait`.
const BATCH: usize = 256;
/// The longest sleep with no stream held (the thread also checks whether it is still needed).
const IDLE_WAIT: Duration = Duration::from_secs(1);
const THREAD_STACK_BYTES: usize = 128 * 1024;
/// The shortest time between heartbeats.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// A deadline that never comes.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);
