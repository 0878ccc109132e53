//! `task-mcp connect [CLIENT]`: a ready-to-paste setup for each MCP client, for the configuration
//! the server runs with (its URL, where its token lives, the certificate to trust).
//!
//! The recipes are plain data built by [`recipes`] from a [`Target`], so tests read them without a
//! terminal; [`main`] only loads the configuration, finds the files and prints.

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use crate::config::Config;

/// The clients there is a recipe for, in the order `task-mcp connect` lists them, with what each
/// one is.
pub const CLIENTS: &[(&str, &str)] = &[
    (
        "claude-code",
        "Claude Code (`claude mcp add`, Streamable HTTP; SSE variant)",
    ),
    (
        "claude-desktop",
        "Claude Desktop (claude_desktop_config.json through the mcp-remote bridge)",
    ),
    (
        "messages-api",
        "Anthropic Messages API MCP connector (needs a public HTTPS URL)",
    ),
    ("vscode", "VS Code (.vscode/mcp.json)"),
    ("cursor", "Cursor (~/.cursor/mcp.json)"),
    ("inspector", "MCP Inspector (command line mode)"),
    ("curl", "curl: initialize, tools/list, a tool call"),
];

/// Pinned versions of the npm packages the recipes run (tested in `.ci/connect-check.sh`).
pub const MCP_REMOTE: &str = "mcp-remote@0.15.1";
/// See [`MCP_REMOTE`].
pub const INSPECTOR: &str = "@modelcontextprotocol/inspector@0.16.4";
/// The Messages API beta header that enables `mcp_servers`.
pub const MCP_CONNECTOR_BETA: &str = "mcp-client-2025-04-04";

/// What a client needs to reach the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The Streamable HTTP endpoint (`https://host:port/mcp`).
    pub url: String,
    /// The token itself, only with `--show-token`.
    pub token: Option<String>,
    /// The file holding the token, when the server generated it.
    pub token_file: Option<PathBuf>,
    /// The certificate a client must trust (self-signed, or `TLS_CA`); `None` for a CA-issued one.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the self-signed certificate.
    pub fingerprint: Option<String>,
}

impl Target {
    /// The legacy HTTP+SSE endpoint.
    pub fn sse_url(&self) -> String {
        match self.url.strip_suffix("/mcp") {
            Some(base) => format!("{base}/sse"),
            None => format!("{}/sse", self.url.trim_end_matches('/')),
        }
    }

    /// The token as a shell word: itself, `$(cat FILE)`, or `$TASK_MCP_TOKEN`.
    fn shell_token(&self) -> String {
        match (&self.token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => format!("$(cat {})", shell_quote(&f.display().to_string())),
            (None, None) => "$TASK_MCP_TOKEN".into(),
        }
    }

    /// The token where a shell cannot read a file (JSON configs): itself or a note to paste it.
    fn literal_token(&self) -> String {
        match (&self.token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => format!("<the token in {}>", f.display()),
            (None, None) => "<your token>".into(),
        }
    }

    fn node_ca_prefix(&self) -> String {
        self.ca_file
            .as_ref()
            .map(|c| {
                format!(
                    "NODE_EXTRA_CA_CERTS={} ",
                    shell_quote(&c.display().to_string())
                )
            })
            .unwrap_or_default()
    }
}

/// The recipe for `client`, as `{"client","transport","text", ...structured fields}`; `None` for
/// an unknown client.
pub fn recipe(client: &str, t: &Target) -> Option<Value> {
    let auth = format!("Authorization: Bearer {}", t.shell_token());
    let ca_env = t
        .ca_file
        .as_ref()
        .map(|c| json!({"NODE_EXTRA_CA_CERTS": c.display().to_string()}))
        .unwrap_or_else(|| json!({}));
    let v = match client {
        "claude-code" => {
            let http = format!(
                "claude mcp add --transport http task-mcp {} --header \"{auth}\"",
                t.url
            );
            let sse = format!(
                "claude mcp add --transport sse task-mcp {} --header \"{auth}\"",
                t.sse_url()
            );
            let mut text = format!("{http}\n# or, over the legacy SSE transport:\n{sse}\n");
            if t.ca_file.is_some() {
                text.push_str(&format!(
                    "# Claude Code runs on Node: start it trusting the certificate:\n{}claude\n",
                    t.node_ca_prefix()
                ));
            }
            json!({"transport": "streamable-http", "command": http, "sseCommand": sse, "text": text})
        }
        "claude-desktop" => {
            let mut env = ca_env.clone();
            env["AUTH_HEADER"] = json!(format!("Bearer {}", t.literal_token()));
            let config = json!({"mcpServers": {"task-mcp": {
                "command": "npx",
                "args": ["-y", MCP_REMOTE, t.url, "--header", "Authorization:${AUTH_HEADER}"],
                "env": env,
            }}});
            let text = format!(
                "Add to claude_desktop_config.json (Settings > Developer > Edit Config), then restart Claude Desktop:\n{}\n",
                pretty(&config)
            );
            json!({"transport": "stdio bridge (mcp-remote) to streamable-http", "config": config, "text": text})
        }
        "messages-api" => {
            let body = json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": "List the open OpenSpec changes."}],
                "mcp_servers": [{
                    "type": "url",
                    "url": t.url,
                    "name": "task-mcp",
                    "authorization_token": t.literal_token(),
                }],
            });
            let command = format!(
                "curl https://api.anthropic.com/v1/messages \\\n  -H \"x-api-key: $ANTHROPIC_API_KEY\" \\\n  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"anthropic-beta: {MCP_CONNECTOR_BETA}\" \\\n  -H \"content-type: application/json\" \\\n  -d '{}'",
                body
            );
            let text = format!(
                "{command}\n# The connector calls the server from Anthropic's side: the URL must be public HTTPS\n# with a CA-signed certificate (not 127.0.0.1, not self-signed). See README, \"Connect a client\".\n"
            );
            json!({"transport": "streamable-http", "betaHeader": MCP_CONNECTOR_BETA, "body": body, "command": command, "text": text})
        }
        "vscode" => {
            let config = json!({"servers": {"task-mcp": {
                "type": "http",
                "url": t.url,
                "headers": {"Authorization": format!("Bearer {}", t.literal_token())},
            }}});
            let mut text = format!("Write .vscode/mcp.json:\n{}\n", pretty(&config));
            if t.ca_file.is_some() {
                text.push_str(&format!(
                    "# VS Code must trust the certificate: start it as `{}code`.\n",
                    t.node_ca_prefix()
                ));
            }
            json!({"transport": "streamable-http", "file": ".vscode/mcp.json", "config": config, "text": text})
        }
        "cursor" => {
            let config = json!({"mcpServers": {"task-mcp": {
                "url": t.url,
                "headers": {"Authorization": format!("Bearer {}", t.literal_token())},
            }}});
            let text = format!("Write ~/.cursor/mcp.json:\n{}\n", pretty(&config));
            json!({"transport": "streamable-http", "file": "~/.cursor/mcp.json", "config": config, "text": text})
        }
        "inspector" => {
            let command = format!(
                // The `mcp-inspector-cli` binary: the launcher's own `--cli` drops `--header`.
                "{}npx -y -p {INSPECTOR} mcp-inspector-cli --cli {} --transport http --header \"{auth}\" --method tools/list",
                t.node_ca_prefix(),
                t.url
            );
            json!({"transport": "streamable-http", "command": command,
                   "text": format!("{command}\n# --method tools/call --tool-name change_list calls a tool; `npx {INSPECTOR}` alone opens the web UI.\n")})
        }
        "curl" => {
            let ca = match &t.ca_file {
                Some(c) => format!("--cacert {}", shell_quote(&c.display().to_string())),
                None => String::new(),
            };
            let post = |body: &str| {
                format!(
                    "curl -s {ca} {} -H \"{auth}\" -H 'Content-Type: application/json' \\\n  -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25' \\\n  -d '{body}'",
                    t.url
                )
            };
            let commands = vec![
                post(
                    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#,
                ),
                post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#),
                post(
                    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"change_list","arguments":{}}}"#,
                ),
            ];
            let text = commands.join("\n") + "\n";
            json!({"transport": "streamable-http", "commands": commands, "text": text})
        }
        _ => return None,
    };
    let mut v = v;
    v["client"] = json!(client);
    Some(v)
}

/// Every recipe plus what they were built from, for `--json`.
pub fn recipes(t: &Target) -> Value {
    let clients: serde_json::Map<String, Value> = CLIENTS
        .iter()
        .filter_map(|(name, _)| recipe(name, t).map(|r| (name.to_string(), r)))
        .collect();
    json!({
        "url": t.url,
        "sseUrl": t.sse_url(),
        "tokenFile": t.token_file,
        "tokenShown": t.token.is_some(),
        "certificate": t.ca_file.as_ref().map(|c| json!({"path": c, "sha256": t.fingerprint})),
        "clients": clients,
    })
}

/// Runs `task-mcp connect ARGS`; returns the exit code (2 for an unknown client or flag).
pub fn main(args: &[String]) -> u8 {
    let mut client = None;
    let (mut json_out, mut show_token, mut url) = (false, false, None);
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json_out = true,
            "--show-token" => show_token = true,
            "--url" => match it.next() {
                Some(u) => url = Some(u.clone()),
                None => {
                    eprintln!("task-mcp connect: --url needs a value");
                    return 2;
                }
            },
            s if !s.starts_with("--") && client.is_none() => client = Some(s.to_owned()),
            _ => rest.push(a.clone()),
        }
    }
    let config = match Config::load(&rest) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("task-mcp connect: invalid setting {e}");
            return 2;
        }
    };
    if let Some(c) = &client {
        if !CLIENTS.iter().any(|(n, _)| n == c) {
            let names: Vec<&str> = CLIENTS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "task-mcp connect: unknown client `{c}`; known: {}",
                names.join(", ")
            );
            return 2;
        }
    }
    let target = match target(&config, url, show_token) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("task-mcp connect: {why}");
            return 1;
        }
    };
    match (client, json_out) {
        (Some(c), true) => println!("{}", pretty(&recipe(&c, &target).unwrap_or_default())),
        (Some(c), false) => print!(
            "{}",
            recipe(&c, &target).unwrap_or_default()["text"]
                .as_str()
                .unwrap_or("")
        ),
        (None, true) => println!("{}", pretty(&recipes(&target))),
        (None, false) => {
            println!("Server: {}", target.url);
            if let (Some(c), Some(fp)) = (&target.ca_file, &target.fingerprint) {
                println!("Certificate: {} (SHA-256 {fp})", c.display());
            }
            println!("\nClients (task-mcp connect CLIENT prints the setup; --json for machines):");
            for (name, what) in CLIENTS {
                println!("  {name:<15} {what}");
            }
        }
    }
    0
}

/// What the running configuration offers a client. Nothing is created: a generated token or
/// certificate that does not exist yet is an error saying to start the server once.
fn target(config: &Config, url: Option<String>, show_token: bool) -> Result<Target, String> {
    let state = config.state_dir();
    let url = url.unwrap_or_else(|| {
        let host = match config.host {
            h if h.is_unspecified() || h.is_loopback() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(h) => format!("[{h}]"),
            h => h.to_string(),
        };
        let port = if config.port == 0 { 8443 } else { config.port };
        format!("https://{host}:{port}/mcp")
    });
    let generated_token = config.auth_tokens.is_empty() && config.auth_tokens_file.is_none();
    let token_file = generated_token.then(|| state.join("token"));
    if let Some(f) = &token_file {
        if !f.is_file() {
            return Err(format!(
                "no token yet at {}: start the server once (task-mcp serve) and it generates one",
                f.display()
            ));
        }
    }
    let token = if show_token {
        match (&token_file, config.auth_tokens.first()) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("{}: {e}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            // `name:role:token`, `name:token` or `token`: the token is the last part.
            (None, Some(entry)) => entry.rsplit(':').next().map(str::to_owned),
            (None, None) => None,
        }
    } else {
        None
    };
    let (ca_file, fingerprint) = match (&config.tls_ca, &config.tls_cert) {
        (Some(ca), _) => (Some(ca.clone()), None),
        (None, Some(_)) => (None, None),
        (None, None) => {
            let cert = state.join("tls-cert.pem");
            let der = CertificateDer::from_pem_file(&cert).map_err(|e| {
                format!(
                    "no certificate yet at {} ({e}): start the server once (task-mcp serve) and it generates one",
                    cert.display()
                )
            })?;
            (Some(cert), Some(crate::net::tls::fingerprint(der.as_ref())))
        }
    };
    Ok(Target {
        url,
        token,
        token_file,
        ca_file,
        fingerprint,
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Single-quotes `s` for a POSIX shell when it holds anything but safe characters.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(token: Option<&str>) -> Target {
        Target {
            url: "https://127.0.0.1:8443/mcp".into(),
            token: token.map(str::to_owned),
            token_file: Some("/state/dir with space/token".into()),
            ca_file: Some("/state/tls-cert.pem".into()),
            fingerprint: Some("AB:CD".into()),
        }
    }

    #[test]
    fn every_listed_client_has_a_recipe_and_no_other_does() {
        let t = target(None);
        for (name, _) in CLIENTS {
            let r = recipe(name, &t).unwrap();
            assert_eq!(r["client"], *name);
            assert!(r["text"].as_str().is_some_and(|s| !s.is_empty()), "{name}");
        }
        assert!(recipe("emacs", &t).is_none());
    }

    #[test]
    fn the_token_is_read_from_its_file_unless_shown() {
        let hidden = recipes(&target(None)).to_string();
        assert!(
            hidden.contains("$(cat '/state/dir with space/token')"),
            "{hidden}"
        );
        assert!(!hidden.contains("s3cret"));
        let shown = recipes(&target(Some("s3cret"))).to_string();
        assert!(shown.contains("Bearer s3cret"), "{shown}");
    }

    #[test]
    fn vscode_and_cursor_json_carry_the_url_and_the_bearer_header() {
        let t = target(Some("tok"));
        let vs = &recipe("vscode", &t).unwrap()["config"]["servers"]["task-mcp"];
        assert_eq!(vs["type"], "http");
        assert_eq!(vs["url"], "https://127.0.0.1:8443/mcp");
        assert_eq!(vs["headers"]["Authorization"], "Bearer tok");
        let cu = &recipe("cursor", &t).unwrap()["config"]["mcpServers"]["task-mcp"];
        assert_eq!(cu["url"], "https://127.0.0.1:8443/mcp");
        assert_eq!(cu["headers"]["Authorization"], "Bearer tok");
    }

    #[test]
    fn claude_desktop_runs_mcp_remote_trusting_the_certificate() {
        let r = recipe("claude-desktop", &target(Some("tok"))).unwrap();
        let s = &r["config"]["mcpServers"]["task-mcp"];
        assert_eq!(s["command"], "npx");
        assert_eq!(s["args"][1], MCP_REMOTE);
        assert_eq!(s["args"][2], "https://127.0.0.1:8443/mcp");
        assert_eq!(s["env"]["AUTH_HEADER"], "Bearer tok");
        assert_eq!(s["env"]["NODE_EXTRA_CA_CERTS"], "/state/tls-cert.pem");
    }

    #[test]
    fn the_messages_api_recipe_names_the_connector_fields_and_beta() {
        let r = recipe("messages-api", &target(Some("tok"))).unwrap();
        let server = &r["body"]["mcp_servers"][0];
        assert_eq!(
            (
                &server["type"],
                &server["name"],
                &server["authorization_token"]
            ),
            (&json!("url"), &json!("task-mcp"), &json!("tok"))
        );
        assert!(r["command"].as_str().unwrap().contains(MCP_CONNECTOR_BETA));
        assert!(r["text"].as_str().unwrap().contains("public HTTPS"));
    }

    #[test]
    fn claude_code_offers_http_and_sse() {
        let r = recipe("claude-code", &target(None)).unwrap();
        assert!(r["command"].as_str().unwrap().contains("--transport http"));
        assert!(
            r["sseCommand"]
                .as_str()
                .unwrap()
                .contains("https://127.0.0.1:8443/sse")
        );
    }
}
