//! `weft proxy`: the data plane for one workload (sidecar) or gateway (router).
//! Binds every listener to the workload's IP, takes its config from the control
//! plane over delta xDS, and keeps serving its last config while the control
//! plane is away.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use weft_xds::node::{ProxyId, ProxyType};

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The control plane's xDS address (HOST:PORT): 15010 plaintext, or the
    /// secure port 15012 with `--root-cert`.
    #[arg(long)]
    discovery_address: String,
    /// The mesh root certificate(s), PEM (the control plane's
    /// `--ca-dir`/root-cert.pem). With it xDS runs over TLS and the control
    /// plane must present a certificate for istiod.istio-system.svc.
    #[arg(long, value_name = "FILE")]
    root_cert: Option<PathBuf>,
    /// A token proving the workload's identity to the CA (`weft token
    /// issue`), re-read for every request. The proxy then gets a workload
    /// certificate and is not ready before it has one. Needs --root-cert.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The workload certificate lifetime asked of the CA (at least 1s; it
    /// is renewed at half life).
    #[arg(long, default_value = "24h", value_parser = crate::proxy_identity::parse_cert_ttl)]
    cert_ttl: Duration,
    /// The workload's address: every listener binds to it.
    #[arg(long)]
    ip: IpAddr,
    /// The workload's namespace.
    #[arg(long)]
    namespace: String,
    /// The workload's labels, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    labels: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Workload name (defaults to the IP).
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "type", value_parser = ["sidecar", "router"], default_value = "sidecar")]
    proxy_type: String,
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    #[arg(long, default_value_t = 15001)]
    outbound_port: u16,
    /// Istio's inbound capture port (the iptables REDIRECT target). Weft's local
    /// mesh uses explicit Sidecar `ingress` listeners, so nothing binds it until
    /// traffic capture lands; it is accepted for Istio compatibility.
    #[arg(long, default_value_t = 15006)]
    inbound_port: u16,
    #[arg(long, default_value_t = 15021)]
    status_port: u16,
    /// Worker threads for the data plane (Istio's proxy `concurrency`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// The workload's locality, `region/zone/subzone`, for locality-aware load
    /// balancing (Istio takes it from the node's topology labels).
    #[arg(long, default_value = "")]
    locality: String,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    crate::logging::init();
    // The control side (xDS, admin, status) gets one runtime thread; the data
    // plane its `--concurrency` workers (see weft_proxy::worker).
    crate::block_on_threads(1, proxy(args))
}

pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--labels: {pair:?} is not key=value");
        };
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

async fn proxy(args: ProxyArgs) -> Result<()> {
    let id = ProxyId {
        proxy_type: ProxyType::parse(&args.proxy_type).unwrap_or_default(),
        ip: args.ip.to_string(),
        name: args.name.clone().unwrap_or_else(|| args.ip.to_string()),
        namespace: args.namespace.clone(),
        labels: parse_labels(&args.labels)?,
        service_account: args.service_account.clone(),
        outbound_port: Some(u32::from(args.outbound_port)),
    };
    let identity = weft_pki::Identity::new();
    let secure = crate::proxy_identity::Secure::new(
        args.root_cert.as_ref(),
        args.token_file.as_ref(),
        args.cert_ttl,
        &identity,
    )?;
    let state = weft_proxy::ProxyState::with_node(weft_proxy::NodeInfo {
        locality: args.locality.clone(),
        labels: id.labels.clone(),
        identity,
    });
    let address = if args.discovery_address.contains("://") {
        args.discovery_address.clone()
    } else {
        format!("http://{}", args.discovery_address)
    };
    let mut client =
        weft_xds::client::XdsClient::new(&address, id.clone(), Box::new(state.clone()))
            .with_context(|| format!("--discovery-address {}", args.discovery_address))?;
    let identity_task = match secure {
        Some(secure) => {
            if secure.has_identity() {
                state.require_identity();
            }
            client = client.with_tls(secure.tls.clone());
            let address = address.clone();
            tokio::spawn(async move { secure.run(&address).await })
        }
        None => tokio::spawn(std::future::pending()),
    };
    let admin =
        weft_proxy::admin::serve_admin(SocketAddr::new(args.ip, args.admin_port), state.clone());
    let status =
        weft_proxy::admin::serve_status(SocketAddr::new(args.ip, args.status_port), state.clone());
    let dataplane = start_workers(&state, usize::from(args.concurrency))?;
    tracing::info!(
        "weft proxy {} on {}: control plane {}{}",
        id.node_id(),
        args.ip,
        address,
        if args.root_cert.is_some() {
            " (TLS)"
        } else {
            ""
        }
    );
    tracing::info!(
        "inbound capture port {} is reserved: traffic capture is not implemented yet, inbound listeners come from Sidecar ingress",
        args.inbound_port
    );
    if id.proxy_type == ProxyType::Router {
        tracing::warn!(
            "--type router: Gateway resources are not translated yet; this proxy gets sidecar config"
        );
    }
    tokio::select! {
        () = client.run() => bail!("the xDS client stopped"),
        r = admin => r.context("admin server"),
        r = status => r.context("status server"),
        r = identity_task => r.context("identity task")?.context("identity task"),
        _ = dataplane => bail!("the data plane stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Starts `count` data-plane workers, each a thread with its own
/// single-threaded runtime. Resolves if any of them stops.
fn start_workers(
    state: &weft_proxy::ProxyState,
    count: usize,
) -> Result<tokio::sync::oneshot::Receiver<usize>> {
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
    let stopped_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(stopped_tx)));
    for index in 0..count.max(1) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("data-plane runtime")?;
        let state = state.clone();
        let stopped_tx = stopped_tx.clone();
        std::thread::Builder::new()
            .name(format!("weft-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    weft_proxy::Proxy::start_worker(state, index).wait().await;
                });
                if let Some(tx) = stopped_tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(index);
                }
            })
            .context("data-plane worker thread")?;
    }
    Ok(stopped)
}
