//! The client side: a non-blocking connection (plain or rustls) that a poll loop drives, and a
//! sans-IO response reader (head, then Content-Length, chunked, or to EOF).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection};
use task_mcp::http::body::ChunkedDecoder;

use crate::options::{Options, Target};

/// Why a request failed; [`Fault::kind`] is the label errors are counted under.
#[derive(Debug)]
pub enum Fault {
    /// TCP connect failed.
    Connect(io::Error),
    /// The TLS layer refused (certificate, alert, bad record).
    Tls(rustls::Error),
    /// A read or write failed.
    Io(io::Error),
    /// The server closed the connection before the response was complete.
    Closed,
    /// No complete response within the timeout.
    Timeout,
    /// The response head or framing was unreadable.
    BadFraming(&'static str),
    /// A status other than the one expected.
    Status(u16),
    /// A 200 whose body is not the expected answer.
    BadBody,
}

impl Fault {
    /// The label this fault is counted under.
    pub fn kind(&self) -> String {
        match self {
            Fault::Connect(_) => "connect".into(),
            Fault::Tls(_) => "tls".into(),
            Fault::Io(_) => "io".into(),
            Fault::Closed => "closed".into(),
            Fault::Timeout => "timeout".into(),
            Fault::BadFraming(_) => "bad-framing".into(),
            Fault::Status(s) => format!("status-{s}"),
            Fault::BadBody => "bad-body".into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Connect(e) => write!(f, "connect: {e}"),
            Fault::Tls(e) => write!(f, "TLS: {e}"),
            Fault::Io(e) => write!(f, "I/O: {e}"),
            Fault::Closed => f.write_str("closed before the response ended"),
            Fault::Timeout => f.write_str("timed out"),
            Fault::BadFraming(why) => write!(f, "bad framing: {why}"),
            Fault::Status(s) => write!(f, "status {s}"),
            Fault::BadBody => f.write_str("unexpected body"),
        }
    }
}

/// The TLS client configuration the options ask for.
///
/// # Errors
/// The CA file cannot be read or holds no certificate.
pub fn tls_config(o: &Options) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut cfg = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(task_mcp::net::tls::AnyServerCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &o.ca {
            let certs =
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        if roots.is_empty() {
            return Err("--ca holds no certificate".into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// One non-blocking client connection.
pub struct Conn {
    /// The socket (non-blocking, TCP_NODELAY).
    pub sock: TcpStream,
    tls: Option<ClientConnection>,
    /// Plain connections only: bytes not yet written.
    pending: Vec<u8>,
    /// Received plaintext not yet consumed by a [`ResponseReader`].
    pub inbuf: Vec<u8>,
    /// The last write would have blocked: poll for writability.
    pub write_blocked: bool,
    /// The server closed its side.
    pub eof: bool,
}

/// Which of `conns` (index, connection) are ready within `wait`: readable, or writable when
/// their last write would have blocked. A failed poll reports none.
pub fn ready<'a>(conns: impl IntoIterator<Item = (usize, &'a Conn)>, wait: Duration) -> Vec<usize> {
    let (index, mut fds): (Vec<usize>, Vec<PollFd<'a>>) = conns
        .into_iter()
        .map(|(i, c)| {
            let mut flags = PollFlags::IN;
            if c.write_blocked {
                flags |= PollFlags::OUT;
            }
            (i, PollFd::new(&c.sock, flags))
        })
        .unzip();
    let ts = Timespec {
        tv_sec: wait.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: wait.subsec_nanos().into(),
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(_) => fds
            .iter()
            .zip(index)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, i)| i)
            .collect(),
        Err(_) => Vec::new(),
    }
}

impl Conn {
    /// Connects (a blocking TCP connect, then non-blocking) and starts the TLS handshake.
    ///
    /// # Errors
    /// [`Fault::Connect`] when the TCP connect fails.
    pub fn open(target: &Target, tls: Option<&Arc<ClientConfig>>) -> Result<Conn, Fault> {
        let sock = TcpStream::connect(&target.authority).map_err(Fault::Connect)?;
        sock.set_nodelay(true).map_err(Fault::Connect)?;
        sock.set_nonblocking(true).map_err(Fault::Connect)?;
        let tls = match tls {
            Some(cfg) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| Fault::Connect(io::Error::other(e)))?;
                Some(ClientConnection::new(Arc::clone(cfg), name).map_err(Fault::Tls)?)
            }
            None => None,
        };
        Ok(Conn {
            sock,
            tls,
            pending: Vec::new(),
            inbuf: Vec::with_capacity(4096),
            write_blocked: false,
            eof: false,
        })
    }

    /// Queues bytes to send (sent by the next [`Conn::pump`]).
    pub fn queue(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            // rustls buffers plaintext until the handshake is done; its writer never blocks.
            Some(t) => {
                let _ = t.writer().write_all(bytes);
            }
            None => self.pending.extend_from_slice(bytes),
        }
    }

    /// Writes what can be written and reads what has arrived into `inbuf`, without blocking.
    ///
    /// # Errors
    /// A broken socket or a TLS error.
    pub fn pump(&mut self) -> Result<(), Fault> {
        let mut scratch = [0u8; 16 * 1024];
        match &mut self.tls {
            None => {
                self.write_blocked = false;
                while !self.pending.is_empty() {
                    match self.sock.write(&self.pending) {
                        Ok(n) => {
                            self.pending.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.write_blocked = true;
                            break;
                        }
                        Err(e) => return Err(Fault::Io(e)),
                    }
                }
                while !self.eof {
                    match self.sock.read(&mut scratch) {
                        Ok(0) => self.eof = true,
                        Ok(n) => self.inbuf.extend_from_slice(&scratch[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(Fault::Io(e)),
                    }
                }
                Ok(())
            }
            Some(tls) => loop {
                self.write_blocked = false;
                while tls.wants_write() {
                    match tls.write_tls(&mut self.sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.write_blocked = true;
                            break;
                        }
                        Err(e) => return Err(Fault::Io(e)),
                    }
                }
                let mut progressed = false;
                while !self.eof {
                    match tls.read_tls(&mut self.sock) {
                        Ok(0) => self.eof = true,
                        Ok(_) => {
                            progressed = true;
                            tls.process_new_packets().map_err(Fault::Tls)?;
                            loop {
                                match tls.reader().read(&mut scratch) {
                                    Ok(0) => {
                                        self.eof = true;
                                        break;
                                    }
                                    Ok(n) => self.inbuf.extend_from_slice(&scratch[..n]),
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                    // EOF without close_notify: the peer is gone all the same.
                                    Err(_) => {
                                        self.eof = true;
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(Fault::Io(e)),
                    }
                }
                // Reading may have produced handshake messages or key updates to send.
                if !(progressed && tls.wants_write() && !self.write_blocked) {
                    return Ok(());
                }
            },
        }
    }
}

/// Reads one response from a connection's received bytes, incrementally.
pub struct ResponseReader {
    state: Framing,
    /// The status code, once the head is read.
    pub status: u16,
    /// The server will close the connection after this response.
    pub close: bool,
    /// The body read so far (de-chunked).
    pub body: Vec<u8>,
    /// The `Mcp-Session-Id` header, when there was one.
    pub session: Option<String>,
}

enum Framing {
    Head,
    Length(usize),
    Chunked(ChunkedDecoder),
    ToEof,
    Done,
}

impl ResponseReader {
    /// A reader waiting for a head.
    pub fn new() -> Self {
        Self {
            state: Framing::Head,
            status: 0,
            close: false,
            body: Vec::new(),
            session: None,
        }
    }

    /// True once the head has been read.
    pub fn has_head(&self) -> bool {
        !matches!(self.state, Framing::Head)
    }

    /// Consumes what it can from `buf`; `Ok(true)` once the response is complete.
    ///
    /// # Errors
    /// An unreadable head or chunk framing, or EOF before the end.
    pub fn feed(&mut self, buf: &mut Vec<u8>, eof: bool) -> Result<bool, Fault> {
        loop {
            match &mut self.state {
                Framing::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; 48];
                    let mut resp = httparse::Response::new(&mut headers);
                    let used = match resp.parse(buf) {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) if eof => return Err(Fault::Closed),
                        Ok(httparse::Status::Partial) => return Ok(false),
                        Err(_) => return Err(Fault::BadFraming("response head")),
                    };
                    let status = resp.code.unwrap_or(0);
                    let mut length = None;
                    let mut chunked = false;
                    self.close = resp.version == Some(0);
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                            if length.is_none() {
                                return Err(Fault::BadFraming("content-length"));
                            }
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.eq_ignore_ascii_case(b"chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            self.close = h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("mcp-session-id") {
                            self.session = std::str::from_utf8(h.value).ok().map(str::to_string);
                        }
                    }
                    buf.drain(..used);
                    if (100..200).contains(&status) {
                        continue;
                    }
                    self.status = status;
                    self.state = if status == 204 || status == 304 {
                        Framing::Done
                    } else if chunked {
                        Framing::Chunked(ChunkedDecoder::new(u64::MAX))
                    } else if let Some(n) = length {
                        Framing::Length(n)
                    } else {
                        self.close = true;
                        Framing::ToEof
                    };
                }
                Framing::Length(left) => {
                    let take = (*left).min(buf.len());
                    self.body.extend(buf.drain(..take));
                    *left -= take;
                    if *left == 0 {
                        self.state = Framing::Done;
                    } else if eof {
                        return Err(Fault::Closed);
                    } else {
                        return Ok(false);
                    }
                }
                Framing::Chunked(dec) => {
                    let used = dec
                        .feed(buf, &mut self.body)
                        .map_err(|_| Fault::BadFraming("chunked body"))?;
                    buf.drain(..used);
                    if dec.is_done() {
                        self.state = Framing::Done;
                    } else if eof {
                        return Err(Fault::Closed);
                    } else {
                        return Ok(false);
                    }
                }
                Framing::ToEof => {
                    self.body.append(buf);
                    if !eof {
                        return Ok(false);
                    }
                    self.state = Framing::Done;
                }
                Framing::Done => return Ok(true),
            }
        }
    }
}

/// The bytes of one HTTP/1.1 request.
pub fn request(
    method: &str,
    target: &Target,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(
        format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", target.host).as_bytes(),
    );
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if method != "GET" || !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]], eof: bool) -> Result<(bool, ResponseReader), Fault> {
        let mut r = ResponseReader::new();
        let mut buf = Vec::new();
        let mut done = false;
        for (i, c) in chunks.iter().enumerate() {
            buf.extend_from_slice(c);
            done = r.feed(&mut buf, eof && i + 1 == chunks.len())?;
        }
        Ok((done, r))
    }

    #[test]
    fn a_content_length_body_split_anywhere_is_read_whole() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 1..whole.len() {
            let (done, r) = read_all(&[&whole[..cut], &whole[cut..]], false).unwrap();
            assert!(done, "cut at {cut}");
            assert_eq!(
                (r.status, r.body.as_slice(), r.close),
                (200, &b"hello"[..], false)
            );
        }
    }

    #[test]
    fn a_chunked_body_is_dechunked_and_connection_close_is_seen() {
        let (done, r) = read_all(
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n", b"0\r\n\r\n"],
            false,
        )
        .unwrap();
        assert!(done);
        assert_eq!(r.body, b"abc");
        assert!(r.close);
    }

    #[test]
    fn eof_before_the_end_is_a_closed_fault() {
        let e = read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"], true).err();
        assert!(matches!(e, Some(Fault::Closed)));
        let e = read_all(&[b"HTTP/1.1 20"], true).err();
        assert!(matches!(e, Some(Fault::Closed)));
    }

    #[test]
    fn a_body_without_length_runs_to_eof() {
        let (done, r) = read_all(&[b"HTTP/1.0 200 OK\r\n\r\nab", b"cd"], true).unwrap();
        assert!(done);
        assert_eq!(r.body, b"abcd");
    }

    #[test]
    fn pipelined_bytes_after_a_response_stay_in_the_buffer() {
        let mut buf = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP/1.1".to_vec();
        let mut r = ResponseReader::new();
        assert!(r.feed(&mut buf, false).unwrap());
        assert_eq!(buf, b"HTTP/1.1");
    }
}
