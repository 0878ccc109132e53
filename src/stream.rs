//! Streamed responses (SSE, NDJSON): a thread that owns the connection until the stream ends.
//!
//! A handler that streams returns [`crate::http::Response::stream`] with a [`StreamFn`]. The
//! connection writes the response head, then moves itself onto a new, small-stacked thread that
//! runs the function with a [`StreamCtx`]; the pool worker goes back to serving other
//! connections. The function writes events with [`StreamCtx::send`] (one chunk, flushed) and
//! waits with [`StreamCtx::wait`], which wakes on the first of: a message in its [`Mailbox`], the
//! timeout (time for a heartbeat), the client hanging up, or the server draining. Hang-ups are
//! seen at once through `poll(2)` on the socket, so a client that leaves frees its thread
//! immediately rather than at the next heartbeat.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd};

use crate::http::response::write_chunk;

/// The body of a streamed response.
pub type StreamFn = Box<dyn FnOnce(&mut StreamCtx<'_>) + Send>;

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

/// The receiving side of a stream's message queue, with a wake-up descriptor for `poll`.
///
/// The queue allocates nothing until a message arrives and the wake-up is one `eventfd`, so an
/// idle held stream costs no heap for its mailbox and one descriptor beside its socket.
pub struct Mailbox<T> {
    shared: Arc<Shared<T>>,
}

/// The sending side of a [`Mailbox`]; cheap to clone, usable from any thread.
pub struct MailSender<T> {
    shared: Arc<Shared<T>>,
}

/// What both sides of a mailbox share.
struct Shared<T> {
    /// Queued messages, oldest first; never longer than `capacity`.
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    /// Live [`MailSender`]s; at zero (and an empty queue) the mailbox is closed.
    senders: AtomicUsize,
    /// The [`Mailbox`] was dropped: sends fail with [`SendError::Closed`].
    receiver_gone: AtomicBool,
    /// Readable while a wake-up is pending (an `eventfd` counter).
    wake: OwnedFd,
}

impl<T> Clone for MailSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for MailSender<T> {
    fn drop(&mut self) {
        // The last sender gone: wake the stream so it sees the mailbox closed.
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake();
        }
    }
}

impl<T> Drop for Mailbox<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
    }
}

impl<T> Shared<T> {
    fn wake(&self) {
        // A counter at its maximum already holds a wake-up.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        // The queue is valid between statements, so a poisoned lock still holds good data.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
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
/// When the process is out of file descriptors for the wake-up.
pub fn mailbox<T>(capacity: usize) -> io::Result<(MailSender<T>, Mailbox<T>)> {
    let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        capacity: capacity.max(1),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
        wake,
    });
    Ok((
        MailSender {
            shared: Arc::clone(&shared),
        },
        Mailbox { shared },
    ))
}

impl<T> MailSender<T> {
    /// Queues a message and wakes the stream.
    ///
    /// # Errors
    /// [`SendError::Full`] when the mailbox is full, [`SendError::Closed`] once it ended.
    pub fn send(&self, msg: T) -> Result<(), SendError> {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        {
            let mut q = self.shared.queue();
            if q.len() >= self.shared.capacity {
                return Err(SendError::Full);
            }
            q.push_back(msg);
        }
        self.shared.wake();
        Ok(())
    }
}

impl<T> Mailbox<T> {
    /// Takes a queued message without waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.shared.queue().pop_front()
    }

    /// A queued message, `Err(())` when the queue is empty and every sender is gone, or
    /// `Ok(None)` when it is empty but may still receive.
    fn poll_message(&self) -> Result<Option<T>, ()> {
        if let Some(m) = self.try_recv() {
            return Ok(Some(m));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            // A sender may have queued its last message just before leaving.
            return self.try_recv().map(Some).ok_or(());
        }
        Ok(None)
    }

    /// Clears pending wake-ups (after `poll` saw the descriptor readable).
    fn clear_wake(&self) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&self.shared.wake, &mut counter);
    }
}

/// Shared by every stream: a descriptor that becomes readable, for good, when the server drains.
#[derive(Clone)]
pub struct DrainSignal {
    read: Arc<UnixStream>,
    write: Arc<UnixStream>,
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
}

/// What a stream function uses to write events and wait.
pub struct StreamCtx<'a> {
    io: &'a mut dyn Io,
    drain: &'a DrainSignal,
    buf: Vec<u8>,
    /// Bytes of payload sent so far (chunk framing excluded).
    pub bytes_sent: u64,
    /// Calls to [`StreamCtx::send`] that succeeded.
    pub messages_sent: u64,
    gone: bool,
}

impl<'a> StreamCtx<'a> {
    /// A context over a connection whose response head has already been written.
    pub fn new(io: &'a mut dyn Io, drain: &'a DrainSignal) -> Self {
        Self {
            io,
            drain,
            buf: Vec::with_capacity(512),
            bytes_sent: 0,
            messages_sent: 0,
            gone: false,
        }
    }

    /// Writes `data` as one chunk and flushes it.
    ///
    /// # Errors
    /// The client is gone or too slow (the socket's write timeout passed).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.gone {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
        }
        self.buf.clear();
        write_chunk(&mut self.buf, data);
        let r = self.io.write_all(&self.buf).and_then(|()| self.io.flush());
        match r {
            Ok(()) => {
                self.bytes_sent += data.len() as u64;
                self.messages_sent += 1;
                Ok(())
            }
            Err(e) => {
                self.gone = true;
                Err(e)
            }
        }
    }

    /// True once a send failed or a wait saw the client leave.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// True once the server started draining.
    pub fn is_draining(&self) -> bool {
        self.drain.fired()
    }

    /// Waits up to `timeout` for a message, a hang-up or the drain signal.
    pub fn wait<T>(&mut self, mailbox: &Mailbox<T>, timeout: Duration) -> Wait<T> {
        let deadline = Instant::now() + timeout;
        loop {
            match mailbox.poll_message() {
                Ok(Some(m)) => return Wait::Message(m),
                Err(()) => return Wait::Closed,
                Ok(None) => {}
            }
            match self.poll_until(deadline, Some(mailbox.shared.wake.as_fd())) {
                Woke::Wake => mailbox.clear_wake(),
                Woke::Timeout => {
                    return match mailbox.try_recv() {
                        Some(m) => Wait::Message(m),
                        None => Wait::Timeout,
                    };
                }
                Woke::Hangup => return Wait::Hangup,
                Woke::Drain => return Wait::Draining,
            }
        }
    }

    /// Waits up to `timeout` for a hang-up or the drain signal only.
    pub fn sleep(&mut self, timeout: Duration) -> Wait<()> {
        match self.poll_until(Instant::now() + timeout, None) {
            Woke::Hangup => Wait::Hangup,
            Woke::Drain => Wait::Draining,
            Woke::Wake | Woke::Timeout => Wait::Timeout,
        }
    }

    fn poll_until(&mut self, deadline: Instant, wake: Option<BorrowedFd<'_>>) -> Woke {
        loop {
            if self.gone {
                return Woke::Hangup;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let ts = Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            };
            let sock_flags = PollFlags::IN | PollFlags::RDHUP;
            let (sock_ev, drain_ev, wake_ev) = {
                let sock = self.io.socket().as_fd();
                let drain_fd = self.drain.read.as_fd();
                let mut fds = vec![
                    PollFd::from_borrowed_fd(sock, sock_flags),
                    PollFd::new(&drain_fd, PollFlags::IN),
                ];
                if let Some(w) = wake {
                    fds.push(PollFd::from_borrowed_fd(w, PollFlags::IN));
                }
                match rustix::event::poll(&mut fds, Some(&ts)) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => {
                        self.gone = true;
                        return Woke::Hangup;
                    }
                }
                (
                    fds[0].revents(),
                    fds[1].revents(),
                    fds.get(2).map(PollFd::revents),
                )
            };
            if sock_ev
                .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP | PollFlags::NVAL)
            {
                self.gone = true;
                return Woke::Hangup;
            }
            if sock_ev.contains(PollFlags::IN) {
                match self.io.discard_input() {
                    Ok(true) => {}
                    Ok(false) | Err(_) => {
                        self.gone = true;
                        return Woke::Hangup;
                    }
                }
            }
            if drain_ev.contains(PollFlags::IN) {
                return Woke::Drain;
            }
            if wake_ev.is_some_and(|e| e.contains(PollFlags::IN)) {
                return Woke::Wake;
            }
            if Instant::now() >= deadline {
                return Woke::Timeout;
            }
        }
    }
}

enum Woke {
    Wake,
    Timeout,
    Hangup,
    Drain,
}

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
        let mut ctx = StreamCtx::new(&mut server, &drain);
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
        let mut ctx = StreamCtx::new(&mut server, &drain);
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
        let mut ctx = StreamCtx::new(&mut server, &drain);
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Draining);
    }

    #[test]
    fn zero_timeout_reports_timeout() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (_tx, mb) = mailbox::<u32>(4).unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain);
        assert_eq!(ctx.wait(&mb, Duration::ZERO), Wait::Timeout);
    }

    #[test]
    fn dropped_senders_close_the_mailbox() {
        let (mut server, _client) = pair();
        let drain = DrainSignal::new().unwrap();
        let (tx, mb) = mailbox::<u32>(4).unwrap();
        drop(tx);
        let mut ctx = StreamCtx::new(&mut server, &drain);
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
        let mut ctx = StreamCtx::new(&mut server, &drain);
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
        let mut ctx = StreamCtx::new(&mut server, &drain);
        let started = Instant::now();
        assert_eq!(ctx.wait(&mb, Duration::from_secs(30)), Wait::Closed);
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn sent_chunks_arrive_framed() {
        let (mut server, mut client) = pair();
        let drain = DrainSignal::new().unwrap();
        let mut ctx = StreamCtx::new(&mut server, &drain);
        ctx.send(b"event: x\n\n").unwrap();
        let mut buf = [0u8; 64];
        let n = client.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a\r\nevent: x\n\n\r\n");
        assert_eq!(ctx.messages_sent, 1);
    }
}
