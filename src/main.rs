//! `weft`: one binary for the mesh's control plane, data plane and user tools.

mod analyze;
mod demo;
mod discovery;
mod http_probe;
mod logging;
mod proxy;
mod proxy_config;
mod proxy_identity;
mod proxy_status;
mod secure_grpc;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for wrong usage (sysexits EX_USAGE), as istioctl uses.
pub const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "An Istio-compatible service mesh",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze Istio configuration files and report problems (like `istioctl analyze`).
    Analyze(analyze::AnalyzeArgs),
    /// The control plane: config, registry and xDS.
    Discovery(discovery::DiscoveryArgs),
    /// The data plane for one workload (sidecar) or gateway (router).
    Proxy(proxy::ProxyArgs),
    /// Show every proxy connected to the control plane and its sync state.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Show one proxy's listeners, routes, clusters or endpoints.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// Run a bookinfo-style mesh on this machine: control plane, apps and sidecars.
    Demo(demo::DemoArgs),
    /// Identity tokens for the mesh CA (`weft token issue`).
    Token(token::TokenArgs),
}

/// Runs an async command on a multi-threaded runtime; `Err` prints and fails.
pub fn block_on<F>(command: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    block_on_threads(workers, command)
}

/// Runs `command` on a multi-threaded runtime with `workers` worker threads.
pub fn block_on_threads<F>(workers: usize, command: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Every TLS config in the process uses aws-lc-rs (never ring); an error
    // only means a provider is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            // Help and version go to stdout with success; real usage errors exit 64.
            let _ = e.print();
            return if usage_error {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Demo(args) => demo::run(args),
        Command::ProxyStatus(args) => proxy_status::run(args),
        Command::Discovery(args) => discovery::run(args),
        Command::ProxyConfig(args) => proxy_config::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Token(args) => token::run(args),
    }
}
