//! Load-generator pieces that no Debian tool provides, for
//! `scripts/bench-proxy.sh` (run by hand, not part of `cargo test`):
//!
//! - `latency`: an open-loop client at a fixed request rate. wrk and h2load
//!   are closed-loop (a slow response delays the next request, hiding the
//!   queueing it caused), so latency is measured from each request's
//!   *scheduled* send time, which keeps coordinated omission out of p99.
//! - `idle`: opens N keep-alive connections, makes one request on each, and
//!   holds them open so the script can read the proxy's RSS.
//!
//! Output is one `key=value` line on stdout for the script to parse.

mod client;
mod idle;
mod latency;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "proxy_load",
    about = "Fixed-rate latency and idle-connection load for the proxy benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Latency(latency::Args),
    Idle(idle::Args),
}

/// Where requests go: the TCP address to connect to and the Host to send
/// (a sidecar routes on Host, the address is its listener).
#[derive(clap::Args, Clone)]
pub struct Target {
    #[arg(long)]
    pub addr: SocketAddr,
    /// Host header; defaults to the address.
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long, default_value = "/")]
    pub path: String,
}

impl Target {
    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| self.addr.to_string())
    }
}

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; this binary is driven by the script.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    // One thread for the scheduler, the connections and their tasks: a
    // released request is sent by the thread that released it, so no wake-up
    // of another thread (tens of microseconds on a busy VM, with a tail of its
    // own) sits inside every measured latency.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxy_load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Latency(args) => latency::run(args).await,
            Command::Idle(args) => idle::run(args).await,
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("proxy_load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses seconds as a float (`0.5`, `10`).
pub fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))
}
