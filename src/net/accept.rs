//! The accept loop: admission (IP lists, per-address and total caps, saturated workers) before a
//! byte is read, then the new connection waits in the ready set for its first bytes (a worker
//! takes it then); over a cap, one "refuser" thread answers 503 and closes, so a flood never
//! queues behind real work.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::net::conn::{ConnGuard, Handler};
use crate::net::idle::Parked;
use crate::net::workers::Workers;
use crate::security::gate::Admission;

/// Serves a new connection whose first bytes arrived; it was accepted at the `Instant`.
pub(crate) type Serve = fn(Arc<App>, TcpStream, SocketAddr, Handler, ConnGuard, Instant);

/// Accepts connections on `listener` until the server drains. A new connection must send its
/// first bytes within `first_bytes`.
pub(crate) fn accept_loop(
    app: Arc<App>,
    listener: TcpListener,
    workers: Arc<Workers>,
    refuser: Option<crossbeam_channel::Sender<TcpStream>>,
    serve: Serve,
    first_bytes: Duration,
    handler: Handler,
) {
    for incoming in listener.incoming() {
        if app.is_draining() {
            break;
        }
        let sock = match incoming {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(peer) = sock.peer_addr() else { continue };
        // IP_ALLOW / IP_DENY and MAX_CONNECTIONS_PER_IP, before a single byte is read.
        let per_ip = match app.security.admit(peer.ip()) {
            Admission::Admitted(slot) => slot,
            Admission::Denied => {
                app.counters.refused.fetch_add(1, Ordering::Relaxed);
                drop(sock);
                continue;
            }
            Admission::OverPerIpCap => {
                refuse(&app, &refuser, sock);
                continue;
            }
        };
        let open = app.counters.connections.load(Ordering::Acquire);
        if open >= app.config.max_connections {
            refuse(&app, &refuser, sock);
            continue;
        }
        if workers.is_saturated() {
            // Every worker is stuck on a connection: a 503 tells the client to come back, where
            // a bare close would look like a network fault (or a wait until its handshake
            // deadline, parked behind the stuck workers).
            refuse(&app, &refuser, sock);
            continue;
        }
        let accepted = Instant::now();
        let fresh = Fresh {
            guard: ConnGuard::new(&app, per_ip),
            app: Arc::clone(&app),
            sock,
            peer,
            serve,
            handler,
            accepted,
        };
        app.idle.park(Box::new(fresh), accepted + first_bytes);
    }
}

/// A new connection waiting for its first bytes.
struct Fresh {
    app: Arc<App>,
    sock: TcpStream,
    peer: SocketAddr,
    serve: Serve,
    handler: Handler,
    guard: ConnGuard,
    accepted: Instant,
}

impl Parked for Fresh {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn resume(self: Box<Self>) {
        let f = *self;
        (f.serve)(f.app, f.sock, f.peer, f.handler, f.guard, f.accepted);
    }

    fn close(self: Box<Self>) {
        // Dropping the socket closes it and releases its count.
    }
}

fn refuse(app: &App, refuser: &Option<crossbeam_channel::Sender<TcpStream>>, sock: TcpStream) {
    app.counters.refused.fetch_add(1, Ordering::Relaxed);
    if let Some(tx) = refuser {
        // A full refuser queue means a flood: just close.
        let _ = tx.try_send(sock);
    }
}

/// One thread answers over-cap connections: a short handshake, 503, close.
pub(crate) fn spawn_refuser(app: Arc<App>) -> crossbeam_channel::Sender<TcpStream> {
    let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(REFUSER_QUEUE);
    let _ = std::thread::Builder::new().name("refuser".into()).spawn(move || {
        for sock in rx {
            let deadline = Instant::now() + REFUSER_TIMEOUT;
            let _ = sock.set_read_timeout(Some(REFUSER_TIMEOUT));
            let _ = sock.set_write_timeout(Some(REFUSER_TIMEOUT));
            let Ok(mut conn) = rustls::ServerConnection::new(app.tls.current()) else { continue };
            let mut s = sock;
            while conn.is_handshaking() && Instant::now() < deadline {
                if conn.complete_io(&mut s).is_err() {
                    break;
                }
            }
            if conn.is_handshaking() {
                continue;
            }
            let body = br#"{"apiVersion":"1.0.0","error":{"code":"OVERLOADED","message":"Too many connections.","hint":"Retry shortly (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP)."}}"#;
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let mut stream = rustls::Stream::new(&mut conn, &mut s);
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).and_then(|()| stream.flush());
            conn.send_close_notify();
            let _ = conn.complete_io(&mut s);
        }
    });
    tx
}

/// Over-cap connections waiting for their 503; beyond this a flood is simply closed.
const REFUSER_QUEUE: usize = 64;
/// Time the refuser gives one over-cap client for the handshake and the answer.
const REFUSER_TIMEOUT: Duration = Duration::from_secs(2);
