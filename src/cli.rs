//! The command line: subcommands, configuration loading, exit codes.
//!
//! Exit codes: 0 success, 1 failure at run time (or an unhealthy health check), 2 a bad setting
//! or bad usage.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::Config;
use crate::observe::logging;
use crate::server;

const HELP: &str = "\
task-mcp — an MCP server over HTTPS for OpenSpec changes

USAGE:
    task-mcp [serve] [--config FILE] [--SETTING VALUE]...
    task-mcp check-config [--config FILE] [--SETTING VALUE]...
    task-mcp healthcheck [URL]
    task-mcp hash-token [TOKEN]
    task-mcp audit verify FILE...
    task-mcp connect [CLIENT] [--url URL] [--json] [--show-token] [--SETTING VALUE]...
    task-mcp --help | --version

Every setting is an environment variable (see `task-mcp check-config` and the README); a flag
`--max-connections 100` sets MAX_CONNECTIONS. Flags override the environment, which overrides
the --config JSON file.

healthcheck GETs URL (default https://127.0.0.1:$PORT/health/live) and exits 0 when it answers
200. It trusts TLS_CA, else TLS_CERT, else the self-signed certificate in STATE_DIR; a loopback
URL with none of them is checked without verification.

hash-token prints the SHA-256 (lower-case hex) of TOKEN, or of the first line of stdin when no
argument is given (preferred: arguments show up in `ps` and shell history). Put it in the
\"sha256\" member of an AUTH_TOKENS_FILE entry.

connect prints how to connect an MCP client (claude-code, claude-desktop, messages-api, vscode,
cursor, inspector, curl) to this configuration's server; no CLIENT lists them. The token is read
from its file by the printed commands unless --show-token. Exit 2 for an unknown client.

audit verify checks the hash chain of AUDIT_LOG files, oldest first (AUDIT_LOG.2 AUDIT_LOG.1
AUDIT_LOG). Exit 0 with a summary when the chain holds; 1 naming the file and first bad line.
";

/// Runs the command line; returns the exit code.
pub fn main(args: &[String]) -> u8 {
    let (cmd, rest) = match args.first().map(String::as_str) {
        None => ("serve", &args[..0]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            return 0;
        }
        Some("--version" | "-V") => {
            println!("task-mcp {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Some(c) if !c.starts_with("--") => (c, &args[1..]),
        Some(_) => ("serve", args),
    };
    match cmd {
        "serve" => serve(rest),
        "check-config" => check_config(rest),
        "healthcheck" => healthcheck(rest.first().map(String::as_str)),
        "hash-token" => hash_token(rest),
        "audit" => audit(rest),
        "connect" => crate::connect::main(rest),
        other => {
            eprintln!("task-mcp: unknown command `{other}` (try --help)");
            2
        }
    }
}

fn serve(args: &[String]) -> u8 {
    let (cfg, _) = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("task-mcp: invalid setting {e}");
            return 2;
        }
    };
    logging::init(&cfg.log_level, cfg.log_format);
    match server::run(cfg) {
        Ok(code) => code as u8,
        Err(server::ServerError::Config(why)) => {
            eprintln!("task-mcp: {why}");
            2
        }
        Err(e) => {
            eprintln!("task-mcp: {e}");
            1
        }
    }
}

fn check_config(args: &[String]) -> u8 {
    match Config::load(args) {
        Ok((cfg, raw)) => {
            print!("{}", Config::describe(&raw));
            match crate::security::gate::Security::check(&cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("task-mcp: invalid setting {e}");
                    2
                }
            }
        }
        Err(e) => {
            eprintln!("task-mcp: invalid setting {e}");
            2
        }
    }
}

fn hash_token(args: &[String]) -> u8 {
    let token = match args {
        [t] => t.clone(),
        [] => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("hash-token: cannot read stdin: {e}");
                return 1;
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        _ => {
            eprintln!("usage: task-mcp hash-token [TOKEN]");
            return 2;
        }
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        eprintln!("hash-token: a token is visible ASCII with no spaces, and not empty");
        return 2;
    }
    println!("{}", crate::security::auth::hash_token(&token));
    0
}

fn audit(args: &[String]) -> u8 {
    use crate::security::audit_verify::verify_files;
    let files: Vec<PathBuf> = match args {
        [cmd, files @ ..] if cmd == "verify" && !files.is_empty() => {
            files.iter().map(PathBuf::from).collect()
        }
        _ => {
            eprintln!("usage: task-mcp audit verify FILE...");
            return 2;
        }
    };
    match verify_files(&files) {
        Ok(r) => {
            println!(
                "audit chain ok: {} record(s), seq {}..{}, last hash {}",
                r.records, r.first_seq, r.last_seq, r.last_hash
            );
            0
        }
        Err((i, e)) => {
            let file = files
                .get(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            eprintln!("audit chain broken: {file} {e}");
            1
        }
    }
}

fn healthcheck(url: Option<&str>) -> u8 {
    // The settings the server runs with, from the same environment (the container's).
    let config = match crate::config::Raw::merge(None, &|k| std::env::var(k).ok(), &[])
        .and_then(|raw| crate::config::Config::from_raw(&raw, false))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return 1;
        }
    };
    let port = if config.port == 0 { 8443 } else { config.port };
    let url = url
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://127.0.0.1:{port}/health/live"));
    match get(&url, &config) {
        Ok(200) => 0,
        Ok(status) => {
            eprintln!("healthcheck: {url} answered {status}");
            1
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            1
        }
    }
}

/// GETs an https:// URL and returns the status code.
fn get(url: &str, config: &crate::config::Config) -> Result<u16, String> {
    use crate::net::client::{Endpoint, HttpClient, Scheme, Timeouts};
    let endpoint = Endpoint::parse(url).map_err(|e| e.to_string())?;
    if endpoint.scheme != Scheme::Https {
        return Err("only https:// URLs".into());
    }
    let loopback = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?
        .ip()
        .is_loopback();
    let tls = Arc::new(client_config(loopback, config)?);
    let timeouts = Timeouts {
        connect: PROBE_TIMEOUT,
        write: PROBE_TIMEOUT,
        read: PROBE_TIMEOUT,
        total: PROBE_TIMEOUT * 2,
    };
    HttpClient::with_tls(endpoint, Some(tls), timeouts)
        .and_then(|c| c.get())
        .map_err(|e| e.to_string())
}

/// The health probe's connect, read and write timeouts (twice this for the whole exchange).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn client_config(
    loopback: bool,
    config: &crate::config::Config,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    // On loopback only an explicit TLS_CA is a trust anchor: TLS_CERT is usually a CA-issued
    // leaf whose names do not include 127.0.0.1, and the probe sends no secret.
    let cert = if loopback {
        None
    } else {
        config.tls_cert.clone()
    };
    let own = (!loopback).then(|| config.state_dir().join("tls-cert.pem"));
    let candidates: Vec<PathBuf> = config
        .tls_ca
        .iter()
        .cloned()
        .chain(cert)
        .chain(own)
        .collect();
    for path in candidates {
        if let Ok(iter) = CertificateDer::pem_file_iter(&path) {
            let mut roots = rustls::RootCertStore::empty();
            for c in iter.flatten() {
                let _ = roots.add(c);
            }
            if !roots.is_empty() {
                return Ok(builder.with_root_certificates(roots).with_no_client_auth());
            }
        }
    }
    if !loopback {
        return Err("no CA to verify against: set TLS_CA".into());
    }
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::net::tls::AnyServerCert(provider)))
        .with_no_client_auth())
}
