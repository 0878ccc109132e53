//! The `task-mcp` command: `serve` (the default), `check-config`, `healthcheck`, `--help`,
//! `--version`.

use std::process::ExitCode;

use task_mcp::cli;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(cli::main(&args))
}
