//! `weft discovery`: the control plane. Loads and watches a directory of Istio
//! YAML, serves delta/SotW xDS (and the debug API `proxy-status` uses) on the
//! gRPC address, and Prometheus metrics and readiness on the monitoring address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use weft_control::source::Debounce;
use weft_control::{ControlPlane, Options, TranslateOptions};
use weft_xds::server::AdsServer;

#[derive(Args, Debug)]
pub struct DiscoveryArgs {
    /// Directory of Istio YAML (recursive), watched for changes.
    #[arg(long)]
    config_dir: PathBuf,
    /// xDS (and debug API) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    grpc_addr: SocketAddr,
    /// The mesh CA's directory: Istio's plug-in files (ca-cert.pem,
    /// ca-key.pem, root-cert.pem, cert-chain.pem) or, if empty, a
    /// self-signed root created there once. Without it there is no CA and
    /// no secure port.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// xDS and the CA over TLS (default: the --grpc-addr host, port 15012).
    #[arg(long, value_name = "HOST:PORT")]
    secure_grpc_addr: Option<SocketAddr>,
    /// Prometheus metrics (`/metrics`) and readiness (`/ready`).
    #[arg(long, default_value = "127.0.0.1:15014")]
    monitoring_addr: SocketAddr,
    /// Mesh config in Istio's `mesh` format, layered over the defaults.
    #[arg(long = "mesh-config", alias = "meshConfigFile", value_name = "FILE")]
    mesh_config: Option<PathBuf>,
    /// Quiet time after a change before pushing (Istio's PILOT_DEBOUNCE_AFTER).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    debounce_after: Duration,
    /// Longest a push waits while changes keep coming (Istio's PILOT_DEBOUNCE_MAX).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    debounce_max: Duration,
    /// Append `-shadow` to the host of mirrored requests, as Istio did
    /// before 1.22 (current Istio keeps the host).
    #[arg(long)]
    mirror_shadow_suffix: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    weft_api::types::Duration::parse(s).map(|d| d.as_std())
}

pub fn run(args: DiscoveryArgs) -> ExitCode {
    crate::logging::init();
    crate::block_on(discovery(args))
}

async fn discovery(args: DiscoveryArgs) -> Result<()> {
    let mesh = weft_control::mesh::load_mesh_config(args.mesh_config.as_deref())
        .with_context(|| "loading the mesh config")?;
    if !args.config_dir.is_dir() {
        anyhow::bail!(
            "--config-dir {} is not a directory",
            args.config_dir.display()
        );
    }
    let options = Options {
        debounce: Debounce {
            quiet: args.debounce_after,
            max_delay: args.debounce_max,
        },
        translate: TranslateOptions {
            mirror_shadow_suffix: args.mirror_shadow_suffix,
        },
        ..Options::default()
    };
    let trust_domain = mesh.trust_domain().to_string();
    let cp = ControlPlane::new(mesh, options);
    let grpc = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("binding the xDS address {}", args.grpc_addr))?;
    let monitoring = tokio::net::TcpListener::bind(args.monitoring_addr)
        .await
        .with_context(|| format!("binding the monitoring address {}", args.monitoring_addr))?;

    let secure = match &args.ca_dir {
        Some(dir) => {
            let addr = args
                .secure_grpc_addr
                .unwrap_or_else(|| SocketAddr::new(args.grpc_addr.ip(), 15012));
            let port = crate::secure_grpc::prepare(dir, &trust_domain, addr).await?;
            tracing::info!(
                "secure xDS and CA on {} (trust domain {trust_domain}, root {})",
                port.addr,
                weft_pki::ca_dir::root_cert_path(dir).display()
            );
            Some(port)
        }
        None => {
            if args.secure_grpc_addr.is_some() {
                anyhow::bail!("--secure-grpc-addr needs --ca-dir (the CA issues its certificate)");
            }
            tracing::info!("no --ca-dir: no CA and no secure xDS port");
            None
        }
    };

    let ads = AdsServer::new(cp.clone());
    let status = ads.clone();
    cp.metrics().set_connected_proxies_source(move || {
        i64::try_from(status.status().len()).unwrap_or(i64::MAX)
    });
    tracing::info!(
        "weft discovery: config {}, xDS on {}, monitoring on {}",
        args.config_dir.display(),
        args.grpc_addr,
        args.monitoring_addr
    );
    let watcher = weft_control::run(cp.clone(), args.config_dir.clone());
    let monitoring = weft_control::metrics::serve_monitoring(monitoring, cp.clone());
    let secure = async {
        match secure {
            Some(port) => {
                port.serve(ads.clone(), async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
            }
            None => std::future::pending().await,
        }
    };
    let xds = weft_xds::server::serve(ads.clone(), grpc, async {
        let _ = tokio::signal::ctrl_c().await;
    });
    tokio::select! {
        r = watcher => r.context("watching the config directory"),
        r = monitoring => r.context("serving monitoring"),
        r = xds => r.context("serving xDS"),
        r = secure => r,
    }
}
