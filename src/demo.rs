//! `weft demo`: a bookinfo-style mesh on one machine. It writes the mesh config
//! where the user can edit it, then starts the control plane, the sample
//! application's workloads and one sidecar proxy per workload (each on its own
//! loopback address), waits until the page answers through the mesh, and stops
//! every process it started on Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::process::{Child, Command};

/// The demo's config, written out on first run (later runs keep the user's edits).
const FILES: &[(&str, &str)] = &[
    ("mesh.yaml", include_str!("../examples/demo/mesh.yaml")),
    (
        "config/services.yaml",
        include_str!("../examples/demo/config/services.yaml"),
    ),
    (
        "config/workloads.yaml",
        include_str!("../examples/demo/config/workloads.yaml"),
    ),
    (
        "config/sidecars.yaml",
        include_str!("../examples/demo/config/sidecars.yaml"),
    ),
    (
        "config/routing.yaml",
        include_str!("../examples/demo/config/routing.yaml"),
    ),
];

/// (service, version, workload address, app port) — as in workloads.yaml and sidecars.yaml.
const WORKLOADS: &[(&str, &str, &str, u16)] = &[
    ("productpage", "v1", "127.0.10.1", 19080),
    ("details", "v1", "127.0.10.2", 19081),
    ("reviews", "v1", "127.0.10.3", 19082),
    ("reviews", "v2", "127.0.10.4", 19083),
    ("reviews", "v3", "127.0.10.5", 19084),
    ("ratings", "v1", "127.0.10.6", 19085),
];

const NAMESPACE: &str = "bookinfo";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the mesh config is written (and read back on later runs).
    #[arg(long, default_value = "weft-demo")]
    dir: PathBuf,
    /// The control plane's xDS address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    grpc_addr: SocketAddr,
    /// The control plane's monitoring address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    monitoring_addr: SocketAddr,
    /// The control plane's secure port (xDS over TLS and the CA), which the
    /// sidecars use: every workload gets a certificate from the mesh CA in
    /// `<dir>/ca`, and traffic between sidecars is mTLS (auto mTLS).
    #[arg(long, default_value = "127.0.0.1:15012")]
    secure_grpc_addr: SocketAddr,
}

/// How long the demo's workload tokens last (they prove each workload's
/// service account to the CA at every renewal).
const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn run(args: DemoArgs) -> ExitCode {
    crate::block_on(demo(args))
}

async fn demo(args: DemoArgs) -> Result<()> {
    write_config(&args.dir)?;
    let weft = std::env::current_exe().context("locating the weft binary")?;
    let sample_app = weft.with_file_name(format!("sample-app{}", std::env::consts::EXE_SUFFIX));
    if !sample_app.exists() {
        bail!(
            "{} not found: build it with `cargo build --release` (it is the workspace's sample-app binary)",
            sample_app.display()
        );
    }
    let mut children = Children::default();
    let discovery = children.spawn(
        "discovery",
        Command::new(&weft)
            .arg("discovery")
            .arg("--config-dir")
            .arg(args.dir.join("config"))
            .arg("--mesh-config")
            .arg(args.dir.join("mesh.yaml"))
            .arg("--grpc-addr")
            .arg(args.grpc_addr.to_string())
            .arg("--monitoring-addr")
            .arg(args.monitoring_addr.to_string())
            .arg("--ca-dir")
            .arg(args.dir.join("ca"))
            .arg("--secure-grpc-addr")
            .arg(args.secure_grpc_addr.to_string()),
    );
    if let Err(e) = discovery {
        children.stop().await;
        return Err(e);
    }
    let root_cert = args.dir.join("ca").join("root-cert.pem");
    if let Err(e) = wait_for_root(&root_cert, &mut children).await {
        children.stop().await;
        return Err(e);
    }
    for (service, version, ip, port) in WORKLOADS {
        let name = format!("{service}-{version}");
        let mut app = Command::new(&sample_app);
        app.args(["--service", service, "--version", version])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--proxy", &format!("{ip}:15001")]);
        let account = format!("bookinfo-{service}");
        let token_file = args.dir.join("tokens").join(format!("{name}.token"));
        let token = crate::token::issue(&args.dir.join("ca"), NAMESPACE, &account, TOKEN_TTL)
            .and_then(|t| {
                std::fs::create_dir_all(args.dir.join("tokens"))?;
                std::fs::write(&token_file, t)?;
                Ok(())
            });
        if let Err(e) = token {
            children.stop().await;
            return Err(e.context(format!("a token for {account}")));
        }
        let mut proxy = Command::new(&weft);
        proxy
            .arg("proxy")
            .args(["--discovery-address", &args.secure_grpc_addr.to_string()])
            .arg("--root-cert")
            .arg(&root_cert)
            .arg("--token-file")
            .arg(&token_file)
            .args(["--ip", ip, "--namespace", NAMESPACE, "--name", &name])
            .args(["--labels", &format!("app={service},version={version}")])
            .args(["--service-account", &account]);
        let started = children
            .spawn(&format!("{name} app"), &mut app)
            .and_then(|_| children.spawn(&format!("{name} proxy"), &mut proxy));
        if let Err(e) = started {
            children.stop().await;
            return Err(e);
        }
    }

    let outcome = tokio::select! {
        r = wait_ready() => r,
        r = children.first_exit() => Err(r),
        () = stop_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = outcome {
        children.stop().await;
        return Err(e);
    }
    print_instructions(&args.dir);
    let reason = tokio::select! {
        e = children.first_exit() => Some(e),
        () = stop_signal() => None,
    };
    children.stop().await;
    match reason {
        Some(e) => Err(e),
        None => {
            eprintln!("\nstopped every process the demo started");
            Ok(())
        }
    }
}

/// Ctrl-C, or SIGTERM (as `kill` and service managers send): either way the
/// demo stops its children before it goes.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn write_config(dir: &Path) -> Result<()> {
    if dir.join("config").exists() {
        eprintln!("using the existing config in {}", dir.display());
        return Ok(());
    }
    for (rel, content) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The CA writes the mesh root once it is set up; proxies need it to trust
/// the control plane.
async fn wait_for_root(path: &Path, children: &mut Children) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!("the control plane wrote no {} within 30s", path.display());
        }
        tokio::select! {
            e = children.first_exit() => return Err(e),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    Ok(())
}

/// Every proxy ready, then the page answering through the mesh.
async fn wait_ready() -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (service, version, ip, _) in WORKLOADS {
        let url = format!("http://{ip}:15021/healthz/ready");
        while !matches!(crate::http_probe::get(&url, &[]).await, Ok((200, _))) {
            if tokio::time::Instant::now() > deadline {
                bail!("the {service}-{version} proxy on {ip} did not become ready within 60s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let page = "http://127.0.10.1:9080/productpage";
    loop {
        match crate::http_probe::get(page, &[]).await {
            Ok((200, body)) if body.contains("reviews") => return Ok(()),
            other if tokio::time::Instant::now() > deadline => {
                bail!("{page} did not answer through the mesh: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn print_instructions(dir: &Path) {
    println!(
        "\nWeft demo: bookinfo is running on a local mesh (namespace {NAMESPACE}).\n\n\
         \x20 the product page, through the mesh:\n\
         \x20   curl http://127.0.10.1:9080/productpage\n\
         \x20 as jason (reviews v2, black stars):\n\
         \x20   curl -H 'end-user: jason' http://127.0.10.1:9080/productpage\n\
         \x20 any service by name, through productpage's sidecar:\n\
         \x20   curl -x http://127.0.10.1:15001 http://reviews.bookinfo:9080/reviews/0\n\
         \x20 proxies and their sync state:\n\
         \x20   weft proxy-status\n\
         \x20 a proxy's routes:\n\
         \x20   weft proxy-config routes 127.0.10.1\n\
         \x20 its certificate (sidecars talk mTLS with SPIFFE identities from the mesh CA):\n\
         \x20   weft proxy-config secret 127.0.10.1\n\n\
         Edit {} live: changes reach every proxy within a second.\n\
         Ctrl-C stops everything.",
        dir.join("config/routing.yaml").display()
    );
}

/// The processes the demo started; all of them are killed when it stops.
#[derive(Default)]
struct Children {
    running: Vec<(String, Child)>,
}

impl Children {
    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<()> {
        let child = cmd
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.running.push((name.to_string(), child));
        Ok(())
    }

    /// Resolves when any child exits (which the demo treats as a failure).
    async fn first_exit(&mut self) -> anyhow::Error {
        loop {
            for (name, child) in &mut self.running {
                if let Ok(Some(status)) = child.try_wait() {
                    return anyhow::anyhow!("{name} exited ({status})");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(&mut self) {
        for (_, child) in &mut self.running {
            let _ = child.start_kill();
        }
        for (_, child) in &mut self.running {
            let _ = child.wait().await;
        }
        self.running.clear();
    }
}
