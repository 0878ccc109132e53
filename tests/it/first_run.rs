//! A first run as a new user makes it: `task-mcp serve` with no configuration in an empty folder,
//! then `task-mcp connect`. The folder stays as it was until a tool writes; the generated
//! certificate and token live in the user's state directory; the recipes name them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, temp_root};

const BIN: &str = env!("CARGO_BIN_EXE_task-mcp");

/// `task-mcp ARGS` with only `HOME` and `TASK_MCP_ROOT` (and `extra`) in its environment.
fn command(home: &Path, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("TASK_MCP_ROOT", root)
        .env("PORT", "0");
    cmd
}

fn connect(home: &Path, root: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["connect"];
    all.extend_from_slice(args);
    let out = command(home, root, &all).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_first_run_leaves_the_folder_alone_and_connect_names_what_it_made() {
    let home = temp_root();
    let root = temp_root();
    // Before any start, connect has nothing to point at and says how to get it.
    let (code, _, err) = connect(&home, &root, &["vscode"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("start the server once"), "{err}");

    let mut child = command(&home, &root, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut startup = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while startup
        .last()
        .is_none_or(|l: &String| !l.contains("connect a client"))
    {
        assert!(Instant::now() < deadline, "no start-up lines: {startup:?}");
        startup.push(lines.next().expect("stderr closed").unwrap());
    }
    let addr: SocketAddr = startup
        .iter()
        .find_map(|l| l.split("listening on https://").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let text = startup.join("\n");
    assert!(text.contains("No openspec/ in"), "{text}");
    assert_eq!(
        startup.last().unwrap(),
        "connect a client: task-mcp connect"
    );
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "the first run wrote into the folder: {text}"
    );
    let state: PathBuf = std::fs::read_dir(home.join(".local/state/task-mcp"))
        .unwrap()
        .next()
        .expect("a state folder")
        .unwrap()
        .path();
    let token = std::fs::read_to_string(state.join("token"))
        .unwrap()
        .trim()
        .to_owned();

    let url = format!("https://{addr}/mcp");
    let (code, out, err) = connect(&home, &root, &[]);
    assert_eq!(code, 0, "{err}");
    for client in [
        "claude-code",
        "claude-desktop",
        "messages-api",
        "vscode",
        "cursor",
        "inspector",
        "curl",
    ] {
        assert!(out.contains(client), "{client} missing from {out}");
    }
    let (code, _, err) = connect(&home, &root, &["emacs"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown client `emacs`"), "{err}");

    let (code, out, err) = connect(&home, &root, &["vscode", "--json", "--url", &url]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let server = &v["config"]["servers"]["task-mcp"];
    assert_eq!(server["url"], url.as_str());
    assert!(
        !out.contains(&token),
        "the token was printed without --show-token"
    );
    let (_, out, _) = connect(
        &home,
        &root,
        &["cursor", "--json", "--url", &url, "--show-token"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let server = &v["config"]["mcpServers"]["task-mcp"];
    assert_eq!(server["url"], url.as_str());
    assert_eq!(
        server["headers"]["Authorization"],
        format!("Bearer {token}")
    );
    let (_, out, _) = connect(&home, &root, &["--json", "--url", &url]);
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        all["certificate"]["path"],
        state.join("tls-cert.pem").display().to_string()
    );
    assert!(all["certificate"]["sha256"].as_str().unwrap().contains(':'));
    assert_eq!(
        all["clients"]["claude-desktop"]["config"]["mcpServers"]["task-mcp"]["env"]["NODE_EXTRA_CA_CERTS"],
        state.join("tls-cert.pem").display().to_string()
    );

    // The recipe's URL, token and certificate work; the first write makes openspec/.
    let mut c = Client::connect(addr, &state.join("tls-cert.pem"));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "change_open", "arguments": {"slug": "add-x"}}})
    .to_string();
    c.send(format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let r = c.read_reply().expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["isError"], false, "{}", r.text());
    assert!(root.join("openspec/changes/add-x/proposal.md").is_file());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(home);
}
