//! `weft proxy-status`: every proxy connected to the control plane and, per
//! resource type, whether what was sent is acknowledged (like istioctl's).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use weft_xds::proto::{ProxyStatus, SyncState};
use weft_xds::type_url;

#[derive(Args, Debug)]
pub struct ProxyStatusArgs {
    /// The control plane's gRPC (xDS) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    discovery_address: String,
    /// Only this proxy (an IP or `name.namespace`).
    proxy: Option<String>,
}

pub fn run(args: ProxyStatusArgs) -> ExitCode {
    crate::block_on(async {
        let proxies = weft_xds::client::fetch_status(&args.discovery_address)
            .await
            .with_context(|| {
                format!(
                    "cannot reach the control plane at {}",
                    args.discovery_address
                )
            })?;
        let shown: Vec<&ProxyStatus> = proxies
            .iter()
            .filter(|p| args.proxy.as_deref().is_none_or(|q| matches_proxy(p, q)))
            .collect();
        print!("{}", render(&shown));
        Ok(())
    })
}

/// An IP, or `name.namespace`.
pub fn matches_proxy(p: &ProxyStatus, query: &str) -> bool {
    p.ip == query || format!("{}.{}", p.name, p.namespace) == query
}

fn state_name(state: i32) -> &'static str {
    match SyncState::try_from(state).unwrap_or(SyncState::NotSent) {
        SyncState::Synced => "SYNCED",
        SyncState::Stale => "STALE",
        SyncState::Nacked => "NACKED",
        SyncState::NotSent => "NOT SENT",
    }
}

pub fn render(proxies: &[&ProxyStatus]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "NAMESPACE".to_string(),
        "IP".to_string(),
        "CDS".to_string(),
        "EDS".to_string(),
        "RDS".to_string(),
        "LDS".to_string(),
    ]];
    for p in proxies {
        let mut row = vec![p.name.clone(), p.namespace.clone(), p.ip.clone()];
        for t in type_url::ALL {
            let state = p
                .types
                .iter()
                .find(|s| s.type_url == t)
                .map_or("NOT SENT", |s| state_name(s.state));
            row.push(state.to_string());
        }
        rows.push(row);
    }
    table(&rows)
}

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
