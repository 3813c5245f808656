//! Many idle keep-alive connections: each makes one request (so the proxy
//! has set up its full per-connection state, upstream included) and then sits
//! idle until SIGINT/SIGTERM or `--hold` runs out.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::Target;
use crate::client::{Connection, Error};

const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Longest time to hold the connections open.
    #[arg(long, default_value = "120", value_parser = crate::seconds)]
    hold: Duration,
}

pub async fn run(args: Args) -> Result<String, String> {
    let host = args.target.host();
    let mut open = Vec::with_capacity(args.count);
    let mut failed = 0usize;
    let mut first_error = None;
    let mut pending = JoinSet::new();
    let mut started = 0;
    while open.len() + failed < args.count {
        while started < args.count && pending.len() < args.parallel.max(1) {
            let (target, host) = (args.target.clone(), host.clone());
            pending.spawn(async move {
                // A proxy at its connection limit leaves new connections in
                // the accept backlog: they connect but never answer.
                tokio::time::timeout(OPEN_TIMEOUT, async {
                    let mut conn = Connection::open(&target).await?;
                    conn.get(&target, &host).await.map(|()| conn)
                })
                .await
                .unwrap_or(Err(Error::Timeout))
            });
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(conn))) => open.push(conn),
            Some(Ok(Err(e))) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Some(Err(e)) => return Err(format!("opener: {e}")),
            None => break,
        }
    }
    // The script waits for this line on stderr before it reads RSS.
    eprintln!("ready open={} failed={failed}", open.len());
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::time::sleep(args.hold) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let still_open = open.iter().filter(|c| !c.is_closed()).count();
    Ok(format!(
        "open={} failed={failed} still_open={still_open} first_error={:?}",
        open.len(),
        first_error.unwrap_or_default()
    ))
}
