//! One connection on a worker: the TLS handshake, then the keep-alive loop (read a head within
//! the header deadline, read the body within the body deadline, route, write the response in one
//! buffer), until the client or a limit ends it. One thread owns the connection at a time: a
//! worker while there is work (a POST's streamed answer included), the ready set while the
//! client has nothing for us (between requests, between handshake flights: `crate::net::idle`),
//! the hub for a held stream (`crate::net::hub`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use crate::app::App;
use crate::http::request::{Framing, HeadLimits, parse_head};
use crate::http::response::LAST_CHUNK;
use crate::http::{Body, HttpError, Request, Response};
use crate::net::hub::{HeldIo, HeldStream};
use crate::net::idle::Parked;
use crate::net::stream::Streaming;
use crate::net::stream::{DrainSignal, Io, StreamCtx};
use crate::net::wait::readable;

/// What serves requests on a listener: the main TLS port, or the plain metrics port.
pub type Handler = fn(&App, &Request) -> Response;

/// A server-side TLS connection over a socket.
pub struct TlsStream {
    conn: ServerConnection,
    sock: TcpStream,
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, &mut self.sock).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, &mut self.sock).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        rustls::Stream::new(&mut self.conn, &mut self.sock).flush()?;
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }
}

impl Io for TlsStream {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn discard_input(&mut self) -> io::Result<bool> {
        match self.conn.read_tls(&mut self.sock) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
        let state = self.conn.process_new_packets().map_err(io::Error::other)?;
        if state.peer_has_closed() {
            return Ok(false);
        }
        let mut scratch = vec![0u8; state.plaintext_bytes_to_read()];
        let _ = self.conn.reader().read(&mut scratch);
        Ok(true)
    }
}

impl TlsStream {
    fn has_buffered_plaintext(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .map(|s| s.plaintext_bytes_to_read() > 0)
            .unwrap_or(false)
    }

    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.write_tls(&mut self.sock);
    }
}

/// Counts an open connection; dropped when the connection closes, on whichever thread owns it.
pub struct ConnGuard {
    app: Arc<App>,
    /// The peer's `MAX_CONNECTIONS_PER_IP` slot, held for the connection's life.
    _per_ip: Option<crate::security::connlimit::ConnGuard>,
}

impl ConnGuard {
    /// Counts one more open connection, holding the peer's per-address slot when it has one.
    pub fn new(app: &Arc<App>, per_ip: Option<crate::security::connlimit::ConnGuard>) -> Self {
        app.counters.connections.fetch_add(1, Ordering::AcqRel);
        app.metrics.connection_opened();
        Self {
            app: Arc::clone(app),
            _per_ip: per_ip,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.app.counters.connections.fetch_sub(1, Ordering::AcqRel);
        self.app.metrics.connection_closed();
    }
}

/// Accepts the TLS handshake on `sock` (readable: its first bytes arrived) and serves the
/// connection. The handshake must end within `HANDSHAKE_TIMEOUT_MS` of `accepted`.
pub fn serve_tls(
    app: Arc<App>,
    sock: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    guard: ConnGuard,
    accepted: Instant,
) {
    let cfg = &app.config;
    let _ = sock.set_nodelay(true);
    let _ = sock.set_write_timeout(Some(cfg.write_timeout));
    // Plain HTTP on the TLS port gets a readable answer instead of a handshake failure.
    let _ = sock.set_read_timeout(Some(cfg.handshake_timeout));
    let mut first = [0u8; 8];
    match sock.peek(&mut first) {
        Ok(n) if n > 0 && looks_like_plain_http(&first[..n]) => {
            let body = br#"{"apiVersion":"1.0.0","error":{"code":"TLS_REQUIRED","message":"This port speaks HTTPS.","hint":"Use an https:// URL."}}"#;
            let msg = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let mut s = &sock;
            let _ = s.write_all(msg.as_bytes()).and_then(|()| s.write_all(body));
            app.metrics.tls_handshake_failed();
            return;
        }
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    let conn = match ServerConnection::new(app.tls.current()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("TLS session setup failed: {e}");
            return;
        }
    };
    let deadline = accepted + cfg.handshake_timeout;
    handshake(Handshaking {
        k: Kept {
            app,
            io: TlsStream { conn, sock },
            peer,
            tls: true,
            handler,
            guard,
        },
        deadline,
    });
}

/// A TLS connection between two handshake flights: the client is computing its answer.
struct Handshaking {
    k: Kept<TlsStream>,
    deadline: Instant,
}

impl Parked for Handshaking {
    fn socket(&self) -> &TcpStream {
        &self.k.io.sock
    }

    fn resume(self: Box<Self>) {
        handshake(*self);
    }

    fn close(self: Box<Self>) {
        log::debug!("TLS handshake with {} timed out", self.k.peer);
        self.k.app.metrics.tls_handshake_failed();
    }
}

/// Carries the handshake on until it is done, then serves the connection. While the client
/// is computing its answer the connection waits in the ready set, not on this worker.
fn handshake(mut h: Handshaking) {
    let k = &mut h.k;
    while k.io.conn.is_handshaking() {
        let left = h.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log::debug!("TLS handshake with {} timed out", k.peer);
            k.app.metrics.tls_handshake_failed();
            return;
        }
        match handshake_step(&mut k.io) {
            Step::Progress => {}
            Step::Wait => {
                let (parker, deadline) = (Arc::clone(&k.app.idle), h.deadline);
                parker.park(Box::new(h), deadline);
                return;
            }
            Step::Failed(e) => {
                log::debug!("TLS handshake with {} failed: {e}", k.peer);
                k.app.metrics.tls_handshake_failed();
                return;
            }
        }
    }
    // What rustls says after the handshake (session tickets) goes now: left queued, the client
    // would wait on its acknowledgement before sending its request.
    while k.io.conn.wants_write() {
        if let Err(e) = k.io.conn.write_tls(&mut k.io.sock) {
            log::debug!("TLS handshake with {} failed: {e}", k.peer);
            return;
        }
    }
    let k = h.k;
    serve(k.app, k.io, k.peer, k.tls, k.handler, k.guard, true, false);
}

enum Step {
    Progress,
    /// The client has not answered yet.
    Wait,
    Failed(io::Error),
}

/// One step of a handshake: send what rustls has to say, or read what the client said if it is
/// there already (so the read does not wait).
fn handshake_step(io: &mut TlsStream) -> Step {
    let conn = &mut io.conn;
    if conn.wants_write() {
        return match conn.write_tls(&mut io.sock) {
            Ok(_) => Step::Progress,
            Err(e) => Step::Failed(e),
        };
    }
    if !readable(io.sock.as_fd(), Duration::ZERO) {
        return Step::Wait;
    }
    match conn.read_tls(&mut io.sock) {
        Ok(0) => return Step::Failed(io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Step::Progress;
        }
        Err(e) => return Step::Failed(e),
    }
    if let Err(e) = conn.process_new_packets() {
        // The alert rustls queued tells the client why.
        let _ = conn.write_tls(&mut io.sock);
        return Step::Failed(io::Error::other(e));
    }
    Step::Progress
}

/// Serves a plain-HTTP connection (the metrics port) whose first bytes arrived.
pub fn serve_plain(
    app: Arc<App>,
    sock: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    guard: ConnGuard,
    _accepted: Instant,
) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_write_timeout(Some(app.config.write_timeout));
    serve(app, Plain(sock), peer, false, handler, guard, true, true);
}

/// A plain socket as a connection.
struct Plain(TcpStream);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Io for Plain {
    fn socket(&self) -> &TcpStream {
        &self.0
    }

    fn discard_input(&mut self) -> io::Result<bool> {
        self.0.discard_input()
    }
}

impl HeldIo for TlsStream {
    fn watched(&self) -> &TcpStream {
        &self.sock
    }

    fn queue(&mut self, bytes: &[u8]) -> bool {
        // rustls holds what the socket has not taken, up to its buffer limit: past it, the
        // client reads too slowly.
        matches!(self.conn.writer().write(bytes), Ok(n) if n == bytes.len())
    }

    fn push(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn read_discard(&mut self) -> io::Result<bool> {
        Io::discard_input(self)
    }

    fn shut(&mut self) {
        TlsStream::close(self);
    }
}

impl HeldIo for Plain {
    fn watched(&self) -> &TcpStream {
        &self.0
    }

    fn queue(&mut self, bytes: &[u8]) -> bool {
        self.0.queue(bytes)
    }

    fn push(&mut self) -> io::Result<bool> {
        self.0.push()
    }

    fn read_discard(&mut self) -> io::Result<bool> {
        self.0.read_discard()
    }

    fn shut(&mut self) {
        self.0.shut();
    }
}

/// What the keep-alive loop needs from a connection beyond [`Io`].
trait Conn: Io + HeldIo + 'static {
    fn buffered(&mut self) -> bool;
    fn close(&mut self);
}

impl Conn for TlsStream {
    fn buffered(&mut self) -> bool {
        self.has_buffered_plaintext()
    }

    fn close(&mut self) {
        TlsStream::close(self);
    }
}

impl Conn for Plain {
    fn buffered(&mut self) -> bool {
        false
    }

    fn close(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }
}

/// The keep-alive loop; `fresh` for a new connection, whose first request must come within
/// `HEADER_TIMEOUT_MS` (later ones within `IDLE_TIMEOUT_MS`); `woken` when the socket is known
/// to be readable (its next request, or a hang-up, is there to read).
#[allow(clippy::too_many_arguments)]
fn serve<C: Conn>(
    app: Arc<App>,
    mut io: C,
    peer: SocketAddr,
    tls: bool,
    handler: Handler,
    guard: ConnGuard,
    mut fresh: bool,
    mut woken: bool,
) {
    let cfg = Arc::clone(&app.config);
    let limits = HeadLimits {
        max_head_bytes: cfg.max_header_bytes,
        max_headers: cfg.max_headers,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut scratch = vec![0u8; 16 * 1024];
    // The read timeout last set on the socket (unknown after the handshake or a park).
    let mut armed: Option<Duration> = None;
    let rest = loop {
        // Idle phase: with no request under way, the connection waits in the ready set and
        // this worker takes whichever connection is ready next.
        if !woken && buf.is_empty() && !io.buffered() {
            let wait = if fresh {
                cfg.header_timeout
            } else {
                cfg.idle_timeout
            };
            break Rest::Idle(Instant::now() + wait);
        }
        woken = false;
        if app.is_draining() && buf.is_empty() && !io.buffered() {
            io.close();
            return;
        }
        fresh = false;
        // Head phase.
        let head_started = Instant::now();
        let head_deadline = head_started + cfg.header_timeout;
        let (head_len, head) = loop {
            match parse_head(&buf, &limits) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(e) => {
                    reject(&app, &mut io, &e);
                    return;
                }
            }
            match read_until(&mut io, &mut scratch, head_deadline, &mut armed) {
                Ok(0) => {
                    io.close();
                    return;
                }
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
                Err(ReadFail::Timeout) => {
                    if !buf.is_empty() {
                        reject(&app, &mut io, &HttpError::HeaderTimeout);
                    }
                    return;
                }
                Err(ReadFail::Broken) => return,
            }
        };
        buf.drain(..head_len);
        // Body phase.
        let body_deadline = Instant::now() + cfg.body_timeout;
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => {
                if n > cfg.max_body_bytes {
                    reject(&app, &mut io, &HttpError::BodyTooLarge);
                    return;
                }
                if head.expect_continue && !write_continue(&mut io) {
                    return;
                }
                let n = n as usize;
                while buf.len() < n {
                    if !read_body_more(
                        &app,
                        &mut io,
                        &mut scratch,
                        &mut buf,
                        body_deadline,
                        &mut armed,
                    ) {
                        return;
                    }
                }
                buf.drain(..n).collect()
            }
            Framing::Chunked => {
                if head.expect_continue && !write_continue(&mut io) {
                    return;
                }
                let mut dec = crate::http::body::ChunkedDecoder::new(cfg.max_body_bytes);
                let mut out = Vec::new();
                loop {
                    match dec.feed(&buf, &mut out) {
                        Ok(used) => {
                            buf.drain(..used);
                        }
                        Err(e) => {
                            reject(&app, &mut io, &e);
                            return;
                        }
                    }
                    if dec.is_done() {
                        break;
                    }
                    if !read_body_more(
                        &app,
                        &mut io,
                        &mut scratch,
                        &mut buf,
                        body_deadline,
                        &mut armed,
                    ) {
                        return;
                    }
                }
                out
            }
        };
        let req = Request {
            head,
            body,
            peer,
            received: Instant::now(),
            tls,
        };
        let is_head = req.head.method == crate::http::Method::Head;
        let is_post = req.head.method == crate::http::Method::Post;
        let mut keep_alive = req.head.keep_alive;
        app.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut resp = handler(&app, &req);
        drop(req);
        if app.is_draining() {
            keep_alive = false;
        }
        let date = app.dates.get(std::time::SystemTime::now());
        let mut out = Vec::with_capacity(512 + resp.body_len());
        if let Body::Stream(_) = resp.body {
            // A POST's streamed answer (a tool call's SSE or NDJSON) ends by itself, so the
            // connection can serve the next request; GET streams are held until the client leaves.
            // Pipelined bytes already read would be lost with this loop's buffer: close then.
            let reuse = keep_alive && is_post && !is_head && !resp.close && buf.is_empty();
            resp.close = !reuse;
            resp.write_head(&mut out, reuse, &date);
            let streaming = match crate::net::stream::take(&mut resp) {
                Some(s) if !is_head => s,
                _ => {
                    out.extend_from_slice(LAST_CHUNK);
                    let _ = io.write_all(&out).and_then(|()| io.flush());
                    io.close();
                    return;
                }
            };
            let f = match streaming {
                Streaming::Held(h) => return hold(&app, io, h, out, guard),
                Streaming::Run(f) if !is_post => {
                    return spawn_stream(Arc::clone(&app), io, f, out, guard);
                }
                Streaming::Run(f) => f,
            };
            // It answers one call, as a JSON answer would: this thread runs it, and the head,
            // the events and the end leave together when the answer is quick.
            if run_stream(&app, &mut io, f, out) && reuse && !app.is_draining() {
                armed = None;
                continue;
            }
            io.close();
            return;
        }
        resp.write_all(&mut out, keep_alive, &date, is_head);
        if io.write_all(&out).and_then(|()| io.flush()).is_err() {
            return;
        }
        if !keep_alive || resp.close {
            io.close();
            return;
        }
        // A client told to wait is made to: its next request is not read before Retry-After
        // (at most RATE_LIMIT_HOLD_MS), so one that ignores 429s costs an entry in the ready
        // set, not the CPU that well-behaved clients share.
        let hold = refusal_hold(&resp, cfg.rate_limit_hold);
        if !hold.is_zero() {
            // Bytes already read would not wake a parked connection: those wait here.
            let unread = !buf.is_empty() || io.buffered();
            if !unread {
                let until = Instant::now() + hold;
                break Rest::Hold(until, until + cfg.idle_timeout);
            }
            if wait_drain(&app.drain, hold) {
                io.close();
                return;
            }
        }
    };
    let parker = Arc::clone(&app.idle);
    let kept = Box::new(Kept {
        app,
        io,
        peer,
        tls,
        handler,
        guard,
    });
    match rest {
        Rest::Idle(deadline) => parker.park(kept, deadline),
        Rest::Hold(until, deadline) => parker.hold(kept, until, deadline),
    }
}

/// How a connection with nothing to read waits in the ready set.
enum Rest {
    /// Watched until the deadline.
    Idle(Instant),
    /// Unwatched until the first instant, then watched until the second.
    Hold(Instant, Instant),
}

/// A connection between two requests, parked in the ready set.
struct Kept<C: Conn> {
    app: Arc<App>,
    io: C,
    peer: SocketAddr,
    tls: bool,
    handler: Handler,
    guard: ConnGuard,
}

impl<C: Conn> Parked for Kept<C> {
    fn socket(&self) -> &TcpStream {
        self.io.socket()
    }

    fn resume(self: Box<Self>) {
        let k = *self;
        serve(k.app, k.io, k.peer, k.tls, k.handler, k.guard, false, true);
    }

    fn close(mut self: Box<Self>) {
        self.io.close();
    }
}

/// How long to leave a connection unread after `resp`: min(Retry-After, `max`) for a 429.
fn refusal_hold(resp: &crate::http::Response, max: Duration) -> Duration {
    if resp.status != 429 {
        return Duration::ZERO;
    }
    let retry = resp
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(max, Duration::from_secs);
    retry.min(max)
}

/// Sleeps for `timeout` unless the drain signal fires first (then true).
fn wait_drain(drain: &DrainSignal, timeout: Duration) -> bool {
    readable(drain.fd(), timeout)
}

/// Hands a held stream (legacy `GET /sse`, the MCP GET stream) to the hub, which holds it
/// without a thread; `head` goes out with its first events.
fn hold<C: Conn>(app: &Arc<App>, mut io: C, h: HeldStream, head: Vec<u8>, guard: ConnGuard) {
    let Some(hub) = app.hub() else {
        io.close();
        return;
    };
    app.counters.streams.fetch_add(1, Ordering::AcqRel);
    let count = StreamCount(Arc::clone(app));
    hub.adopt(Box::new(io), h, head, Box::new((guard, count)));
}

/// Counts a held stream until the hub ends it.
struct StreamCount(Arc<App>);

impl Drop for StreamCount {
    fn drop(&mut self) {
        self.0.counters.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a non-POST request's stream function (no route answers one today: every GET stream is
/// held by the hub) on its own thread, which owns the connection until the stream ends and then
/// closes it, so a long stream never ties up a worker.
fn spawn_stream<C: Conn>(
    app: Arc<App>,
    mut io: C,
    f: crate::net::stream::StreamFn,
    head: Vec<u8>,
    guard: ConnGuard,
) {
    let id = app.counters.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name(format!("stream-{id}"))
        .stack_size(STREAM_STACK_BYTES)
        .spawn(move || {
            run_stream(&app, &mut io, f, head);
            io.close();
            drop(guard);
        });
    if spawned.is_err() {
        log::error!("could not start a stream thread");
    }
}

/// Runs a streamed body on this thread, `head` going out with its first events, and ends its
/// chunked framing. True when the stream ended cleanly and the connection may carry on.
fn run_stream<C: Conn>(
    app: &App,
    io: &mut C,
    f: crate::net::stream::StreamFn,
    head: Vec<u8>,
) -> bool {
    app.counters.streams.fetch_add(1, Ordering::AcqRel);
    let _ = io.socket().set_read_timeout(None);
    let ok = {
        let mut ctx = StreamCtx::new(io, &app.drain, head);
        f(&mut ctx);
        // Bytes the client sent meanwhile were discarded: the connection is not reusable.
        let clean = !ctx.is_gone() && !ctx.saw_input();
        ctx.finish() && clean
    };
    app.counters.streams.fetch_sub(1, Ordering::AcqRel);
    ok
}

/// Stack size of a held stream's thread, as a worker's: only touched pages are resident.
const STREAM_STACK_BYTES: usize = 256 * 1024;

enum ReadFail {
    Timeout,
    Broken,
}

/// Reads more of a body into `buf` before `deadline`; false when the connection is done (the
/// client left, or it was too slow and got its 408).
fn read_body_more<C: Conn>(
    app: &App,
    io: &mut C,
    scratch: &mut [u8],
    buf: &mut Vec<u8>,
    deadline: Instant,
    armed: &mut Option<Duration>,
) -> bool {
    match read_until(io, scratch, deadline, armed) {
        Ok(0) | Err(ReadFail::Broken) => false,
        Ok(k) => {
            buf.extend_from_slice(&scratch[..k]);
            true
        }
        Err(ReadFail::Timeout) => {
            reject(app, io, &HttpError::BodyTimeout);
            false
        }
    }
}

fn read_until<C: Conn>(
    io: &mut C,
    scratch: &mut [u8],
    deadline: Instant,
    armed: &mut Option<Duration>,
) -> Result<usize, ReadFail> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFail::Timeout);
        }
        // Setting the socket timeout costs a system call per read: keep the one in force unless
        // it would let the deadline pass by more than an eighth of the time left. A shorter one
        // just times out early and the loop reads again.
        if armed.is_none_or(|t| t > left + left / 8) {
            let _ = io.socket().set_read_timeout(Some(left));
            *armed = Some(left);
        }
        match io.read(scratch) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(ReadFail::Broken),
        }
    }
}

fn write_continue<C: Conn>(io: &mut C) -> bool {
    io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .and_then(|()| io.flush())
        .is_ok()
}

/// Answers an HTTP-level refusal with the error JSON and closes.
fn reject<C: Conn>(app: &App, io: &mut C, e: &HttpError) {
    let resp = crate::routes::answers::refusal(e.status(), e.code(), &e.to_string(), e.hint());
    let mut out = Vec::new();
    resp.write_all(
        &mut out,
        false,
        &app.dates.get(std::time::SystemTime::now()),
        false,
    );
    let _ = io.write_all(&out).and_then(|()| io.flush());
    io.close();
    log::debug!("refused a request: {e}");
}

fn looks_like_plain_http(first: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    METHODS
        .iter()
        .any(|m| first.starts_with(&m[..m.len().min(first.len())]) && first.len() >= 3)
}
