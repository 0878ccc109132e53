//! Streamed responses (SSE, NDJSON) that a thread runs, and the mailboxes that feed streams.
//!
//! A handler that streams returns [`response`] with a [`StreamFn`], or [`held_response`] with a
//! [`HeldStream`] for a stream held until the client leaves (the hub runs those without a
//! thread, see `crate::net::hub`). A POST's [`StreamFn`] runs on the worker that read the
//! request, with a [`StreamCtx`]: [`StreamCtx::send`] queues one chunk, and what is queued leaves
//! in one write before the stream waits and when it ends. [`StreamCtx::wait`] wakes on the first
//! of: a message in its [`Mailbox`], the timeout (time for a heartbeat), the client hanging up,
//! or the server draining.
//!
//! Hang-ups are seen through one watcher thread per [`DrainSignal`], which holds the sockets of
//! waiting streams in an `epoll` set (`EPOLLRDHUP`, one-shot) together with the drain descriptor
//! and tells the stream through a channel. A stream registers only once it has waited
//! [`WATCH_GRACE`]: most answers are ready sooner and never pay for it.
//!
//! ```text
//!  worker ── select(mailbox, control, timeout) ◀── control: Readable | Hangup | Drain
//!    │ send(): queued; written before a wait and at the end          ▲
//!    ▼                                                               │
//!  socket ── registered (after WATCH_GRACE) in ──▶ epoll (watcher) ◀── drain descriptor
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::http::response::{LAST_CHUNK, write_chunk};
use crate::http::{Body, Response};
use crate::net::hub::{HeldStream, Next, Waker};

/// The body of a streamed response.
pub type StreamFn = Box<dyn FnOnce(&mut StreamCtx<'_>) + Send>;

/// A streamed response (status 200) whose body `f` writes on a thread of its own.
pub fn response(content_type: &str, f: StreamFn) -> Response {
    Response::streamed(content_type, Box::new(Streaming::Run(f)))
}

/// A held stream's response (status 200): the hub runs it, without a thread.
pub fn held_response(content_type: &str, h: HeldStream) -> Response {
    Response::streamed(content_type, Box::new(Streaming::Held(h)))
}

/// A held `text/event-stream` response with the headers every SSE stream carries: no caching,
/// no proxy buffering.
pub fn held_sse(h: HeldStream) -> Response {
    held_response("text/event-stream", h)
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Accel-Buffering", "no")
}

/// What a streamed body is.
pub enum Streaming {
    /// A function that writes the stream on a thread that owns the connection.
    Run(StreamFn),
    /// A stream the hub holds: server messages and heartbeats until the client leaves.
    Held(HeldStream),
}

/// Takes the stream out of a streamed response, leaving it empty; `None` for other bodies
/// (left as they were).
pub fn take(resp: &mut Response) -> Option<Streaming> {
    match std::mem::replace(&mut resp.body, Body::Empty) {
        Body::Stream(any) => any.downcast::<Streaming>().ok().map(|s| *s),
        other => {
            resp.body = other;
            None
        }
    }
}

/// Runs `f` when a streamed response's stream ends, with the payload bytes it sent and how long
/// it ran (for its access line). No-op for other bodies.
pub fn on_end(resp: &mut Response, f: impl FnOnce(u64, Duration) + Send + 'static) {
    let streaming = match take(resp) {
        Some(Streaming::Run(inner)) => Streaming::Run(Box::new(move |ctx| {
            let started = Instant::now();
            inner(ctx);
            f(ctx.bytes_sent, started.elapsed());
        })),
        Some(Streaming::Held(mut h)) => {
            h.on_end.push(Box::new(f));
            Streaming::Held(h)
        }
        None => return,
    };
    resp.body = Body::Stream(Box::new(streaming));
}

/// A held stream reading `mb`: each message becomes `encode(message)` (an empty result sends
/// nothing); `heartbeat` every `interval`; `initial` events first; ended after `max_age`, when
/// the client leaves or the mailbox closes. `keep` is dropped when it ends.
pub fn held<T: Send + 'static>(
    mb: Mailbox<T>,
    mut encode: impl FnMut(T) -> Vec<u8> + Send + 'static,
    heartbeat: impl FnMut() -> Vec<u8> + Send + 'static,
    initial: Vec<Vec<u8>>,
    interval: Duration,
    max_age: Duration,
    keep: impl std::any::Any + Send,
) -> HeldStream {
    let wake = Arc::clone(&mb.wake);
    HeldStream {
        arm: Box::new(move |w| {
            let _ = wake.set(w);
        }),
        next: Box::new(move || match mb.rx.try_recv() {
            Ok(m) => Next::Event(encode(mb.received(m))),
            Err(TryRecvError::Empty) => Next::Empty,
            Err(TryRecvError::Disconnected) => Next::Closed,
        }),
        heartbeat: Box::new(heartbeat),
        initial,
        interval,
        max_age,
        on_end: Vec::new(),
        keep: Box::new(keep),
    }
}

/// A connection a stream can own: readable, writable, with its socket reachable for `poll`.
pub trait Io: Read + Write + Send {
    /// The underlying socket.
    fn socket(&self) -> &TcpStream;
    /// Reads and discards what the peer sent (it may only hang up while we stream).
    /// Returns `Ok(false)` once the peer has closed its side.
    ///
    /// # Errors
    /// Any I/O or TLS error, which also means the peer is gone.
    fn discard_input(&mut self) -> io::Result<bool>;
}

impl Io for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn discard_input(&mut self) -> io::Result<bool> {
        let mut scratch = [0u8; 1024];
        match self.read(&mut scratch) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

/// Why [`StreamCtx::wait`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait<T> {
    /// A message arrived.
    Message(T),
    /// The timeout passed with nothing to do: send a heartbeat.
    Timeout,
    /// The client hung up or the connection broke: stop now.
    Hangup,
    /// The server is shutting down: send a final event and stop.
    Draining,
    /// Every sender of the mailbox is gone.
    Closed,
}

/// The receiving side of a stream's message queue.
///
/// The queue allocates nothing until a message arrives (an unbounded channel with a count that
/// enforces the capacity), so an idle held stream costs no heap for its mailbox.
pub struct Mailbox<T> {
    rx: Receiver<T>,
    queued: Arc<AtomicUsize>,
    /// Set when a held stream's hub takes the mailbox over: called after each message.
    wake: Arc<OnceLock<Waker>>,
}

/// The sending side of a [`Mailbox`]; cheap to clone, usable from any thread.
pub struct MailSender<T> {
    tx: Sender<T>,
    /// Messages queued and not yet received; never above `capacity` after a successful send.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    wake: Arc<OnceLock<Waker>>,
}

impl<T> Clone for MailSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            queued: Arc::clone(&self.queued),
            capacity: self.capacity,
            wake: Arc::clone(&self.wake),
        }
    }
}

impl<T> Drop for MailSender<T> {
    fn drop(&mut self) {
        // The last sender leaving closes the mailbox: a hub reading it must look.
        if let Some(w) = self.wake.get() {
            w();
        }
    }
}

/// Why a message could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The mailbox is full: the stream's reader is too slow.
    Full,
    /// The stream has ended.
    Closed,
}

/// A bounded mailbox of `capacity` messages.
///
/// # Errors
/// None today; the `Result` is kept so a mailbox may need an OS resource again.
pub fn mailbox<T>(capacity: usize) -> io::Result<(MailSender<T>, Mailbox<T>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(OnceLock::new());
    Ok((
        MailSender {
            tx,
            queued: Arc::clone(&queued),
            capacity: capacity.max(1),
            wake: Arc::clone(&wake),
        },
        Mailbox { rx, queued, wake },
    ))
}

impl<T> MailSender<T> {
    /// Queues a message and wakes the stream.
    ///
    /// # Errors
    /// [`SendError::Full`] when the mailbox is full, [`SendError::Closed`] once it ended.
    pub fn send(&self, msg: T) -> Result<(), SendError> {
        self.send_back(msg).map_err(|(e, _)| e)
    }

    /// Like [`MailSender::send`], but a message that could not be queued comes back with the
    /// reason, so the caller may retry it.
    ///
    /// # Errors
    /// As [`MailSender::send`], with the message.
    pub fn send_back(&self, msg: T) -> Result<(), (SendError, T)> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((SendError::Full, msg));
        }
        self.tx.send(msg).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            (SendError::Closed, e.0)
        })?;
        if let Some(w) = self.wake.get() {
            w();
        }
        Ok(())
    }
}

impl<T> Mailbox<T> {
    /// Takes a queued message without waiting.
    pub fn try_recv(&self) -> Option<T> {
        let m = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Some(m)
    }

    fn received(&self, m: T) -> T {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        m
    }
}

/// Shared by every stream: a descriptor that becomes readable, for good, when the server drains,
/// and the watcher that reports hang-ups of streamed sockets.
#[derive(Clone)]
pub struct DrainSignal {
    read: Arc<UnixStream>,
    write: Arc<UnixStream>,
    /// Started by the first stream; `None` inside when it could not start.
    watcher: Arc<OnceLock<Option<Arc<Watcher>>>>,
}

impl DrainSignal {
    /// A signal that has not fired.
    ///
    /// # Errors
    /// When the process is out of file descriptors.
    pub fn new() -> io::Result<Self> {
        let (write, read) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Self {
            read: Arc::new(read),
            write: Arc::new(write),
            watcher: Arc::new(OnceLock::new()),
        })
    }

    /// Fires the signal: every waiting stream wakes with [`Wait::Draining`].
    pub fn fire(&self) {
        let _ = (&*self.write).write(&[1]);
    }

    /// The descriptor that becomes readable when the signal fires (for `poll`).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// True once fired (the byte is never read, so the descriptor stays readable).
    pub fn fired(&self) -> bool {
        let mut fds = [PollFd::new(&*self.read, PollFlags::IN)];
        matches!(rustix::event::poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
    }

    /// The watcher, started on first use.
    fn watcher(&self) -> Option<Arc<Watcher>> {
        self.watcher
            .get_or_init(|| match Watcher::start(Arc::clone(&self.read)) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::error!("cannot start the stream watcher: {e}");
                    None
                }
            })
            .clone()
    }
}

/// What the watcher tells a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    /// The client sent bytes: read and discard them, then re-arm.
    Readable,
    /// The client hung up or the socket broke.
    Hangup,
    /// The server is draining.
    Drain,
}

/// One thread per drain signal: an `epoll` set of streamed sockets plus the drain descriptor.
struct Watcher {
    epoll: OwnedFd,
    /// Control senders of the registered streams, by registration id.
    streams: Mutex<HashMap<u64, Sender<Control>>>,
    next_id: AtomicU64,
    /// The drain signal fired; streams registering now are told at once.
    drained: AtomicBool,
}

impl Watcher {
    fn start(drain: Arc<UnixStream>) -> io::Result<Arc<Watcher>> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &*drain,
            EventData::new_u64(DRAIN_KEY),
            EventFlags::IN,
        )?;
        let w = Arc::new(Watcher {
            epoll,
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            drained: AtomicBool::new(false),
        });
        let w2 = Arc::clone(&w);
        std::thread::Builder::new()
            .name("stream-watch".into())
            .stack_size(WATCHER_STACK_BYTES)
            .spawn(move || w2.run(&drain))?;
        Ok(w)
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<u64, Sender<Control>>> {
        // The map is valid between statements, so a poisoned lock still holds good data.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports events until only this thread holds the watcher (every signal and stream gone).
    fn run(self: Arc<Self>, drain: &UnixStream) {
        let mut events = Vec::with_capacity(WATCHER_BATCH);
        let idle_check = Timespec {
            tv_sec: WATCHER_IDLE_CHECK.as_secs() as i64,
            tv_nsec: 0,
        };
        loop {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&idle_check),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::error!("stream watcher stopped: {e}");
                    return;
                }
            }
            if events.is_empty() && Arc::strong_count(&self) == 1 {
                return;
            }
            for ev in &events {
                let (key, flags) = (ev.data.u64(), ev.flags);
                if key == DRAIN_KEY {
                    // Level-triggered and never cleared: stop watching it once seen.
                    let _ = epoll::delete(&self.epoll, drain);
                    self.drained.store(true, Ordering::Release);
                    for tx in self.streams().values() {
                        let _ = tx.try_send(Control::Drain);
                    }
                    continue;
                }
                let what =
                    if flags.intersects(EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP) {
                        Control::Hangup
                    } else {
                        Control::Readable
                    };
                if let Some(tx) = self.streams().get(&key) {
                    let _ = tx.try_send(what);
                }
            }
        }
    }

    /// Adds a socket; its events arrive on the returned channel.
    fn register(self: &Arc<Self>, sock: &TcpStream) -> io::Result<Registration> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(CONTROL_QUEUE);
        self.streams().insert(id, tx.clone());
        if let Err(e) = epoll::add(&self.epoll, sock, EventData::new_u64(id), WATCH_FLAGS) {
            self.streams().remove(&id);
            return Err(e.into());
        }
        if self.drained.load(Ordering::Acquire) {
            let _ = tx.try_send(Control::Drain);
        }
        Ok(Registration {
            watcher: Arc::clone(self),
            id,
            control: rx,
        })
    }
}

/// A stream's place in the watcher; removed with [`Registration::remove`].
struct Registration {
    watcher: Arc<Watcher>,
    id: u64,
    control: Receiver<Control>,
}

impl Registration {
    /// Watches the socket again after a [`Control::Readable`] (the events are one-shot).
    fn rearm(&self, sock: &TcpStream) -> bool {
        epoll::modify(
            &self.watcher.epoll,
            sock,
            EventData::new_u64(self.id),
            WATCH_FLAGS,
        )
        .is_ok()
    }

    /// Stops watching; must run before the socket closes (its number may be reused).
    fn remove(&self, sock: &TcpStream) {
        let _ = epoll::delete(&self.watcher.epoll, sock);
        self.watcher.streams().remove(&self.id);
    }
}

/// What a stream function uses to write events and wait.
///
/// What it sends is buffered and leaves in one write before the stream waits (after
/// [`WATCH_GRACE`]) and when it ends, so a short answer (head, one event, the last chunk) costs
/// one TLS record and one system call.
pub struct StreamCtx<'a> {
    io: &'a mut dyn Io,
    drain: &'a DrainSignal,
    /// Hang-up and drain reports, registered when the stream first waits past [`WATCH_GRACE`].
    watch: Option<Registration>,
    /// Bytes not yet written: the response head at first, then chunks.
    out: Vec<u8>,
    /// Bytes of payload sent so far (chunk framing excluded).
    pub bytes_sent: u64,
    /// Calls to [`StreamCtx::send`] that succeeded.
    pub messages_sent: u64,
    gone: bool,
    /// The client sent bytes while the stream ran (they were discarded).
    saw_input: bool,
}

impl<'a> StreamCtx<'a> {
    /// A context over a connection; `head` (the response head, possibly empty) is written with
    /// the first events.
    pub fn new(io: &'a mut dyn Io, drain: &'a DrainSignal, head: Vec<u8>) -> Self {
        Self {
            io,
            drain,
            watch: None,
            out: head,
            bytes_sent: 0,
            messages_sent: 0,
            gone: false,
            saw_input: false,
        }
    }

    /// Queues `data` as one chunk; it is written before the stream next waits, or at once when
    /// the queue is large.
    ///
    /// # Errors
    /// The client is gone or too slow (the socket's write timeout passed).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.gone {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
        }
        write_chunk(&mut self.out, data);
        self.bytes_sent += data.len() as u64;
        self.messages_sent += 1;
        if self.out.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is queued.
    ///
    /// # Errors
    /// The client is gone or too slow.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.gone {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.io.write_all(&self.out).and_then(|()| self.io.flush());
        self.out.clear();
        // A held stream sends rarely: give the buffer back rather than keep it per stream.
        if self.out.capacity() > KEPT_BUFFER_BYTES {
            self.out = Vec::new();
        }
        if r.is_err() {
            self.gone = true;
        }
        r
    }

    /// Ends the chunked body and writes everything queued; true when it all went out.
    pub fn finish(&mut self) -> bool {
        if self.gone {
            return false;
        }
        self.out.extend_from_slice(LAST_CHUNK);
        self.flush().is_ok()
    }

    /// Registers the socket with the watcher, once; false (and the stream is gone) when that
    /// fails.
    fn watched(&mut self) -> bool {
        if self.watch.is_some() {
            return true;
        }
        self.watch = self
            .drain
            .watcher()
            .and_then(|w| match w.register(self.io.socket()) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::error!("cannot watch a stream's socket: {e}");
                    None
                }
            });
        if self.watch.is_none() {
            self.gone = true;
        }
        self.watch.is_some()
    }

    /// Before a wait: writes what is queued and watches the socket; false when the client is
    /// gone.
    fn before_waiting(&mut self) -> bool {
        self.flush().is_ok() && self.watched()
    }

    /// True once a send failed or a wait saw the client leave.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// True when the client sent bytes during the stream (read and discarded), so what follows
    /// on the connection cannot be trusted to start at a request boundary.
    pub fn saw_input(&self) -> bool {
        self.saw_input
    }

    /// True once the server started draining.
    pub fn is_draining(&self) -> bool {
        self.drain.fired()
    }

    /// Waits up to `timeout` for a message, a hang-up or the drain signal.
    pub fn wait<T>(&mut self, mailbox: &Mailbox<T>, timeout: Duration) -> Wait<T> {
        let deadline = Instant::now() + timeout;
        if self.watch.is_none() && !self.gone {
            // Most answers are ready within the grace: waiting for them on the mailbox alone
            // spares registering the socket, and the head and the answer leave in one write.
            match mailbox.rx.recv_timeout(timeout.min(WATCH_GRACE)) {
                Ok(m) => return Wait::Message(mailbox.received(m)),
                Err(RecvTimeoutError::Disconnected) => return Wait::Closed,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        if !self.before_waiting() {
            return Wait::Hangup;
        }
        loop {
            match mailbox.rx.try_recv() {
                Ok(m) => return Wait::Message(mailbox.received(m)),
                Err(TryRecvError::Disconnected) => return Wait::Closed,
                Err(TryRecvError::Empty) => {}
            }
            if self.gone {
                return Wait::Hangup;
            }
            let Some(control) = self.watch.as_ref().map(|w| w.control.clone()) else {
                return Wait::Hangup;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(mailbox.rx) -> m => return match m {
                    Ok(m) => Wait::Message(mailbox.received(m)),
                    Err(_) => Wait::Closed,
                },
                recv(control) -> c => match self.on_control(c.ok()) {
                    Some(Woke::Hangup) => return Wait::Hangup,
                    Some(Woke::Drain) => return Wait::Draining,
                    None => {}
                },
                default(left) => {
                    return match mailbox.try_recv() {
                        Some(m) => Wait::Message(m),
                        None => Wait::Timeout,
                    };
                }
            }
        }
    }

    /// Waits up to `timeout` for a hang-up or the drain signal only.
    pub fn sleep(&mut self, timeout: Duration) -> Wait<()> {
        let deadline = Instant::now() + timeout;
        if !self.before_waiting() {
            return Wait::Hangup;
        }
        loop {
            if self.gone {
                return Wait::Hangup;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let got = match self.watch.as_ref().map(|w| w.control.recv_timeout(left)) {
                None => return Wait::Hangup,
                Some(Err(RecvTimeoutError::Timeout)) => return Wait::Timeout,
                Some(Ok(c)) => Some(c),
                Some(Err(RecvTimeoutError::Disconnected)) => None,
            };
            match self.on_control(got) {
                Some(Woke::Hangup) => return Wait::Hangup,
                Some(Woke::Drain) => return Wait::Draining,
                None => {}
            }
        }
    }

    /// Acts on a watcher report; `None` when the stream carries on.
    fn on_control(&mut self, c: Option<Control>) -> Option<Woke> {
        match c {
            Some(Control::Drain) => Some(Woke::Drain),
            Some(Control::Readable) => {
                self.saw_input = true;
                let alive = matches!(self.io.discard_input(), Ok(true))
                    && self
                        .watch
                        .as_ref()
                        .is_some_and(|w| w.rearm(self.io.socket()));
                if alive {
                    None
                } else {
                    self.gone = true;
                    Some(Woke::Hangup)
                }
            }
            Some(Control::Hangup) | None => {
                self.gone = true;
                Some(Woke::Hangup)
            }
        }
    }
}

impl Drop for StreamCtx<'_> {
    fn drop(&mut self) {
        // What was queued goes out even when the runner does not finish the body.
        let _ = self.flush();
        if let Some(w) = self.watch.take() {
            w.remove(self.io.socket());
        }
    }
}

enum Woke {
    Hangup,
    Drain,
}

/// The drain descriptor's key in the watcher's set (stream ids count up from zero).
const DRAIN_KEY: u64 = u64::MAX;
/// What the watcher waits for on a streamed socket: bytes, hang-up; re-armed after each report.
const WATCH_FLAGS: EventFlags = EventFlags::IN
    .union(EventFlags::RDHUP)
    .union(EventFlags::ONESHOT);
/// Events taken per `epoll_wait`.
const WATCHER_BATCH: usize = 256;
/// How often an idle watcher checks whether it is still needed.
const WATCHER_IDLE_CHECK: Duration = Duration::from_secs(1);
const WATCHER_STACK_BYTES: usize = 64 * 1024;
/// Reports waiting for one stream (a drain and a hang-up fit).
const CONTROL_QUEUE: usize = 2;
/// A send buffer larger than this is freed after use.
const KEPT_BUFFER_BYTES: usize = 1024;
/// Queued bytes beyond which a send writes at once.
const FLUSH_BYTES: usize = 16 * 1024;
/// How long a stream waits for its first message before it flushes what is queued and has its
/// socket watched: a hang-up or the drain is seen at most this late in a stream's first moments.
pub const WATCH_GRACE: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (s, c)
    }

    #[test]
    fn message_wakes_the_stream_before_the_timeout() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (tx, mb) = mailbox::<u32>(4).unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        let t = std::thread::spawn(move || tx.send(7).unwrap());
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Message(7));
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn hangup_is_seen_at_once() {
        let (mut server, client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        drop(client);
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Hangup);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn drain_wakes_every_stream() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        drain.fire();
        assert!(drain.fired());
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Draining);
    }

    #[test]
    fn zero_timeout_reports_timeout() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        assert_eq!(ctx.wait(&mb, Duration::ZERO), Wait::Timeout);
    }

    #[test]
    fn dropped_senders_close_the_mailbox() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (tx, mb) = mailbox::<u32>(4).unwrap();
        drop(tx);
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Closed);
    }

    #[test]
    fn a_full_mailbox_refuses_and_a_dropped_one_is_closed() {
        let (tx, mb) = mailbox::<u32>(2).unwrap();
        assert_eq!(tx.send(1), Ok(()));
        assert_eq!(tx.send(2), Ok(()));
        assert_eq!(tx.send(3), Err(SendError::Full));
        assert_eq!(mb.try_recv(), Some(1));
        assert_eq!(tx.send(3), Ok(()));
        assert_eq!(
            (mb.try_recv(), mb.try_recv(), mb.try_recv()),
            (Some(2), Some(3), None)
        );
        drop(mb);
        assert_eq!(tx.send(4), Err(SendError::Closed));
    }

    #[test]
    fn messages_sent_before_the_last_sender_left_arrive_before_closed() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (tx, mb) = mailbox::<u32>(4).unwrap();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        drop(tx);
        tx2.send(2).unwrap();
        drop(tx2);
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Message(1));
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Message(2));
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Closed);
    }

    #[test]
    fn the_last_sender_leaving_wakes_a_waiting_stream() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (tx, mb) = mailbox::<u32>(4).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(tx);
        });
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Closed);
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn bytes_from_the_client_are_discarded_and_the_stream_carries_on() {
        let (mut server, mut client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        client.write_all(b"stray bytes").unwrap();
        assert_eq!(ctx.wait(&mb, Duration::from_millis(300)), Wait::Timeout);
        assert!(!ctx.is_gone());
        drop(client);
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Hangup);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_drain_fired_while_waiting_wakes_the_stream_and_sleep_sees_hangups() {
        let (mut server, client) = pair();
        let drain = DrainSignal::new().unwrap();
        let d2 = drain.clone();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            d2.fire();
        });
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Draining);
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        drop(ctx);
        let (mut server2, client2) = pair();
        let quiet = DrainSignal::new().unwrap();
        let mut ctx = StreamCtx::new(&mut server2, &quiet, Vec::new());
        assert_eq!(ctx.sleep(Duration::from_millis(50)), Wait::Timeout);
        drop(client2);
        assert_eq!(ctx.sleep(Duration::from_secs(30)), Wait::Hangup);
        drop(client);
    }

    #[test]
    fn an_ended_stream_leaves_the_watcher() {
        let drain = DrainSignal::new().unwrap();
        let (mut server, _client) = pair();
        let watcher = drain.watcher().unwrap();
        {
            let mut ctx = StreamCtx::new(&mut server, &drain, Vec::new());
            assert_eq!(watcher.streams().len(), 0, "watched only once it waits");
            assert_eq!(ctx.sleep(Duration::ZERO), Wait::Timeout);
            assert_eq!(watcher.streams().len(), 1);
        }
        assert_eq!(watcher.streams().len(), 0);
    }

    #[test]
    fn sent_chunks_arrive_framed() {
        let (mut server, mut client) = pair();
        let drain = DrainSignal::new().unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain, b"HEAD\r\n\r\n".to_vec());
        ctx.send(b"event: x\n\n").unwrap();
        ctx.send(b"event: y\n\n").unwrap();
        assert!(ctx.finish());
        assert_eq!(ctx.messages_sent, 2);
        drop(ctx);
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(
            got,
            b"HEAD\r\n\r\na\r\nevent: x\n\n\r\na\r\nevent: y\n\n\r\n0\r\n\r\n"
        );
    }

    /// A held stream on a hub of its own over a socket pair: the client end, the sender, an
    /// "ended" receiver carrying the bytes sent, and the hub.
    fn held_pair(
        beat: Duration,
        max_age: Duration,
    ) -> (
        TcpStream,
        MailSender<&'static str>,
        crossbeam_channel::Receiver<u64>,
        crate::net::hub::Hub,
        DrainSignal,
    ) {
        let (server, client) = pair();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let drain = DrainSignal::new().unwrap();
        let hub = crate::net::hub::Hub::start(
            drain.fd().try_clone_to_owned().unwrap(),
            Duration::from_secs(10),
        )
        .unwrap();
        let (tx, mb) = mailbox::<&'static str>(8).unwrap();
        let mut h = held(
            mb,
            |m: &'static str| m.as_bytes().to_vec(),
            || b":beat\n\n".to_vec(),
            vec![b"hello\n".to_vec()],
            beat,
            max_age,
            (),
        );
        let (done, ended) = crossbeam_channel::bounded(1);
        h.on_end.push(Box::new(move |bytes, _| {
            let _ = done.send(bytes);
        }));
        hub.adopt(Box::new(server), h, b"HEAD\r\n\r\n".to_vec(), Box::new(()));
        (client, tx, ended, hub, drain)
    }

    fn read_until(client: &mut TcpStream, got: &mut Vec<u8>, want: &[u8]) {
        let mut buf = [0u8; 256];
        while !got.windows(want.len()).any(|w| w == want) {
            let n = client.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "closed before {:?}: got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_held_stream_sends_head_first_events_messages_and_heartbeats() {
        let (mut client, tx, ended, hub, _drain) =
            held_pair(Duration::from_millis(50), Duration::from_secs(60));
        let mut got = Vec::new();
        read_until(&mut client, &mut got, b"6\r\nhello\n\r\n");
        assert!(got.starts_with(b"HEAD\r\n\r\n"));
        tx.send("event: x\n\n").unwrap();
        read_until(&mut client, &mut got, b"a\r\nevent: x\n\n\r\n");
        read_until(&mut client, &mut got, b"7\r\n:beat\n\n\r\n");
        assert_eq!(hub.len(), 1);
        assert!(ended.try_recv().is_err());
    }

    #[test]
    fn a_held_stream_ends_on_hang_up_mailbox_close_max_age_and_drain() {
        // Hang-up: the stream ends without its last chunk.
        let (client, _tx, ended, hub, _drain) =
            held_pair(Duration::from_secs(60), Duration::from_secs(60));
        drop(client);
        assert_eq!(ended.recv_timeout(Duration::from_secs(10)), Ok(6));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !hub.is_empty() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(hub.is_empty());
        // The last sender leaving: ended cleanly (the last chunk).
        let (mut client, tx, ended, _hub, _drain) =
            held_pair(Duration::from_secs(60), Duration::from_secs(60));
        drop(tx);
        assert!(ended.recv_timeout(Duration::from_secs(10)).is_ok());
        let mut got = Vec::new();
        read_until(&mut client, &mut got, b"0\r\n\r\n");
        // Max age.
        let (mut client, _tx, ended, _hub, _drain) =
            held_pair(Duration::from_secs(60), Duration::from_millis(30));
        assert!(ended.recv_timeout(Duration::from_secs(10)).is_ok());
        let mut got = Vec::new();
        read_until(&mut client, &mut got, b"0\r\n\r\n");
        // Drain.
        let (mut client, _tx, ended, _hub, drain) =
            held_pair(Duration::from_secs(60), Duration::from_secs(60));
        drain.fire();
        assert!(ended.recv_timeout(Duration::from_secs(10)).is_ok());
        let mut got = Vec::new();
        read_until(&mut client, &mut got, b"0\r\n\r\n");
    }

    /// A socket with a user-space backlog, as a TLS connection has (rustls' send buffer).
    struct Backlogged {
        sock: TcpStream,
        backlog: Vec<u8>,
    }

    impl crate::net::hub::HeldIo for Backlogged {
        fn watched(&self) -> &TcpStream {
            &self.sock
        }

        fn queue(&mut self, bytes: &[u8]) -> bool {
            self.backlog.extend_from_slice(bytes);
            true
        }

        fn push(&mut self) -> io::Result<bool> {
            while !self.backlog.is_empty() {
                match self.sock.write(&self.backlog) {
                    Ok(n) => {
                        self.backlog.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Ok(true)
        }

        fn read_discard(&mut self) -> io::Result<bool> {
            crate::net::hub::HeldIo::read_discard(&mut self.sock)
        }

        fn shut(&mut self) {}
    }

    #[test]
    fn a_client_that_reads_nothing_is_dropped_at_the_write_timeout_while_others_flow() {
        let drain = DrainSignal::new().unwrap();
        let hub = crate::net::hub::Hub::start(
            drain.fd().try_clone_to_owned().unwrap(),
            Duration::from_millis(1500),
        )
        .unwrap();
        // A: a client that never reads, sent more than the socket buffers hold.
        let (server_a, _client_a) = pair();
        let (_tx_a, mb_a) = mailbox::<&'static str>(1).unwrap();
        let mut a = held(
            mb_a,
            |m: &'static str| m.as_bytes().to_vec(),
            || b":beat\n\n".to_vec(),
            vec![vec![b'x'; 32 << 20]],
            Duration::from_secs(60),
            Duration::from_secs(60),
            (),
        );
        let (a_done, a_ended) = crossbeam_channel::bounded(1);
        a.on_end.push(Box::new(move |_, ran| {
            let _ = a_done.send(ran);
        }));
        let io = Backlogged {
            sock: server_a,
            backlog: Vec::new(),
        };
        hub.adopt(Box::new(io), a, Vec::new(), Box::new(()));
        // B: a reading client with fast heartbeats, held by the same hub meanwhile.
        let (server_b, mut client_b) = pair();
        client_b
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (_tx_b, mb_b) = mailbox::<&'static str>(1).unwrap();
        let b = held(
            mb_b,
            |m: &'static str| m.as_bytes().to_vec(),
            || b":beat\n\n".to_vec(),
            Vec::new(),
            Duration::from_millis(50),
            Duration::from_secs(60),
            (),
        );
        hub.adopt(Box::new(server_b), b, Vec::new(), Box::new(()));
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let started = Instant::now();
        let mut beats = 0;
        while started.elapsed() < Duration::from_millis(1200) {
            let n = client_b.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            beats = got.windows(6).filter(|w| w == b":beat\n").count();
        }
        assert!(beats >= 10, "B got {beats} heartbeats while A was stuck");
        let ran = a_ended.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(ran >= Duration::from_millis(1400), "dropped after {ran:?}");
    }
}
