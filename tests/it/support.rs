//! Starting servers on 127.0.0.1:0 and talking to them over TLS.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use task_mcp::config::{Config, Raw};
use task_mcp::server::{self, Running};

/// The admin token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running in-process server with its own temporary workspace.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub cert: PathBuf,
}

impl TestServer {
    /// Starts a server with test settings plus `env` overrides.
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let root = temp_root();
        let mut vars: Vec<(String, String)> = vec![
            ("PORT".into(), "0".into()),
            ("TASK_MCP_ROOT".into(), root.display().to_string()),
            (
                "STATE_DIR".into(),
                root.join(".task-mcp").display().to_string(),
            ),
            ("AUTH_TOKENS".into(), TOKEN.into()),
            ("ENABLE_TEST_TOOLS".into(), "true".into()),
            ("LOG_LEVEL".into(), "warn".into()),
        ];
        for (k, v) in env {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let raw = Raw::merge(
            None,
            &|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            &[],
        )
        .unwrap();
        let cfg = Config::from_raw(&raw, false).unwrap();
        let (cfg, live, fp) = server::prepare(cfg).unwrap();
        let registry = server::build_registry(&cfg).unwrap();
        let running = server::start(cfg, registry, live, fp).unwrap();
        let addr = running.addr;
        let cert = root.join(".task-mcp/tls-cert.pem");
        TestServer {
            running: Some(running),
            addr,
            root,
            cert,
        }
    }

    /// A TLS connection to the server.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr, &self.cert)
    }

    /// Sends one request on a fresh connection and reads the answer.
    pub fn request(&self, raw: &str) -> Reply {
        let mut c = self.connect();
        c.send(raw.as_bytes());
        c.read_reply().expect("a reply")
    }

    /// GET with the admin token.
    pub fn get(&self, path: &str) -> Reply {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"))
    }

    /// Stops it and waits for connections to end.
    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.app.start_draining();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A fresh empty directory.
pub fn temp_root() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "task-mcp-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A client config trusting exactly the certificate in `cert`.
pub fn client_config(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// One TLS client connection.
pub struct Client {
    pub tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub fn connect(addr: SocketAddr, cert: &Path) -> Client {
        let conn = rustls::ClientConnection::new(
            client_config(cert),
            ServerName::try_from("127.0.0.1").unwrap().to_owned(),
        )
        .unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        Client {
            tls,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// Reads more bytes; 0 at EOF. Reads the TLS layer directly so that a failed earlier write
    /// (the server closed on us) does not hide a response already received.
    pub fn fill(&mut self) -> usize {
        let mut b = [0u8; 16 * 1024];
        loop {
            match self.tls.conn.reader().read(&mut b) {
                Ok(0) => return 0,
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    return n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return 0,
            }
            while self.tls.conn.wants_write() {
                if self.tls.conn.write_tls(&mut self.tls.sock).is_err() {
                    break;
                }
            }
            match self.tls.conn.read_tls(&mut self.tls.sock) {
                Ok(0) => return 0,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("read timed out")
                }
                Err(_) => return 0,
            }
            if self.tls.conn.process_new_packets().is_err() {
                return 0;
            }
        }
    }

    /// True when the server closed the connection (EOF) before sending anything more.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }

    /// Reads one complete response (Content-Length, chunked, or to EOF).
    pub fn read_reply(&mut self) -> Option<Reply> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let status = resp.code.unwrap();
                let hs: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                if status == 100 {
                    return Some(Reply {
                        status,
                        headers: hs,
                        body: Vec::new(),
                    });
                }
                let get = |k: &str| {
                    hs.iter()
                        .find(|(a, _)| a.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                let body = if let Some(len) = get("content-length") {
                    let len: usize = len.parse().unwrap();
                    while self.buf.len() < len {
                        if self.fill() == 0 {
                            break;
                        }
                    }
                    self.buf.drain(..len.min(self.buf.len())).collect()
                } else if get("transfer-encoding")
                    .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
                {
                    self.read_chunked()
                } else {
                    Vec::new()
                };
                return Some(Reply {
                    status,
                    headers: hs,
                    body,
                });
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Reads a chunked body to its end.
    pub fn read_chunked(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut dec = task_mcp::http::body::ChunkedDecoder::new(u64::MAX);
            let used = dec.feed(&self.buf, &mut out).unwrap();
            if dec.is_done() {
                self.buf.drain(..used);
                return out;
            }
            out.clear();
            if self.fill() == 0 {
                let mut dec = task_mcp::http::body::ChunkedDecoder::new(u64::MAX);
                let _ = dec.feed(&self.buf, &mut out);
                return out;
            }
        }
    }

    /// Reads the head of a streamed response and returns it, leaving the body to `next_chunk`.
    pub fn read_stream_head(&mut self) -> Reply {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let status = resp.code.unwrap();
                let hs = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                return Reply {
                    status,
                    headers: hs,
                    body: Vec::new(),
                };
            }
            assert!(self.fill() > 0, "EOF before the head");
        }
    }

    /// The next chunk's payload of a chunked body, or None at its end or EOF.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..pos]).unwrap().trim(),
                    16,
                )
                .unwrap();
                if size == 0 {
                    return None;
                }
                if self.buf.len() >= pos + 2 + size + 2 {
                    let data = self.buf[pos + 2..pos + 2 + size].to_vec();
                    self.buf.drain(..pos + 2 + size + 2);
                    return Some(data);
                }
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }
}
