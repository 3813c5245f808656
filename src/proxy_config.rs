//! `weft proxy-config listeners|routes|clusters|endpoints|all PROXY`: one
//! proxy's config as it applied it, read from its admin `/config_dump`; tables
//! by default, the raw dump with `-o json`. `secret` reads `/certs`: the
//! workload certificate and roots, as `istioctl proxy-config secret` shows
//! them.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::proxy_status::{matches_proxy, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Section {
    #[value(alias = "listener")]
    Listeners,
    #[value(alias = "route")]
    Routes,
    #[value(alias = "cluster")]
    Clusters,
    #[value(alias = "endpoint")]
    Endpoints,
    All,
    /// The workload certificate and the mesh roots.
    #[value(alias = "secrets")]
    Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ProxyConfigArgs {
    /// What to show.
    #[arg(value_enum)]
    section: Section,
    /// The proxy: its IP, or `name.namespace` (looked up in the control plane).
    proxy: String,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Format,
    /// The proxy's admin port.
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    /// The control plane, to find a proxy given as `name.namespace`.
    #[arg(long, default_value = "127.0.0.1:15010")]
    discovery_address: String,
}

pub fn run(args: ProxyConfigArgs) -> ExitCode {
    crate::block_on(async {
        print!("{}", proxy_config(&args).await?);
        Ok(())
    })
}

/// GET an admin path of the proxy at `ip` as JSON.
async fn admin_json(ip: &str, port: u16, path: &str) -> Result<Value> {
    let url = format!("http://{}{path}", join_host_port(ip, port));
    let (status, body) = crate::http_probe::get(&url, &[])
        .await
        .with_context(|| format!("reading {url}"))?;
    if status != 200 {
        bail!("{url} answered {status}");
    }
    serde_json::from_str(&body).with_context(|| format!("{url} is not JSON"))
}

async fn proxy_config(args: &ProxyConfigArgs) -> Result<String> {
    let ip = resolve(&args.proxy, &args.discovery_address).await?;
    if args.section == Section::Secret {
        let certs = admin_json(&ip, args.admin_port, "/certs").await?;
        // istioctl prints an empty table for a proxy without secrets; a
        // message and a failure say more (this proxy has no --token-file,
        // or is still waiting for its first certificate).
        if certs["spiffe_id"].is_null() {
            bail!(
                "proxy {} has no workload certificate (started without --token-file, or still waiting for the CA)",
                args.proxy
            );
        }
        return Ok(match args.output {
            Format::Json => serde_json::to_string_pretty(&certs)? + "\n",
            Format::Table => render_secret(&certs),
        });
    }
    let dump = admin_json(&ip, args.admin_port, "/config_dump").await?;
    Ok(match args.output {
        Format::Json => {
            let selected = match section_key(args.section) {
                Some(key) => dump.get(key).cloned().unwrap_or(Value::Null),
                None => dump,
            };
            serde_json::to_string_pretty(&selected)? + "\n"
        }
        Format::Table => render(&dump, args.section),
    })
}

fn join_host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// An IP as is; `name.namespace` through the control plane's proxy list.
async fn resolve(proxy: &str, discovery: &str) -> Result<String> {
    if proxy.parse::<std::net::IpAddr>().is_ok() {
        return Ok(proxy.to_string());
    }
    let proxies = weft_xds::client::fetch_status(discovery)
        .await
        .with_context(|| format!("looking up {proxy} in the control plane at {discovery}"))?;
    proxies
        .iter()
        .find(|p| matches_proxy(p, proxy))
        .map(|p| p.ip.clone())
        .with_context(|| format!("no proxy named {proxy} is connected to {discovery}"))
}

fn section_key(section: Section) -> Option<&'static str> {
    match section {
        Section::Listeners => Some("listeners"),
        Section::Routes => Some("routes"),
        Section::Clusters => Some("clusters"),
        Section::Endpoints => Some("endpoints"),
        Section::All | Section::Secret => None,
    }
}

/// istioctl's secret table: the leaf as `default`, each root as `ROOTCA`.
pub fn render_secret(certs: &Value) -> String {
    let mut rows = vec![
        [
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
    ];
    let row = |name: &str, kind: &str, c: &Value| {
        vec![
            name.to_string(),
            kind.to_string(),
            "ACTIVE".to_string(),
            s(&c["valid"]),
            s(&c["serial"]),
            s(&c["not_after"]),
            s(&c["not_before"]),
        ]
    };
    if let Some(leaf) = certs["chain"].get(0) {
        rows.push(row("default", "Cert Chain", leaf));
    }
    for root in items(certs, "roots") {
        rows.push(row("ROOTCA", "CA", root));
    }
    table(&rows)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn items<'a>(dump: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    dump.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

pub fn render(dump: &Value, section: Section) -> String {
    let mut out = String::new();
    let all = section == Section::All;
    if all || section == Section::Listeners {
        let mut rows = vec![
            vec![
                "NAME",
                "ADDRESS",
                "DIRECTION",
                "PROTOCOL",
                "DESTINATION",
                "STATUS",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ];
        for l in items(dump, "listeners") {
            let c = &l["config"];
            let destination = if c["forward_proxy"] == true {
                "forward proxy".to_string()
            } else if !c["route_config"].is_null() {
                format!("routes {}", s(&c["route_config"]))
            } else {
                s(&c["default_endpoint"])
            };
            rows.push(vec![
                s(&l["name"]),
                s(&l["status"]["address"]),
                s(&c["direction"]),
                s(&c["protocol"]),
                destination,
                s(&l["status"]["state"]),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if all || section == Section::Routes {
        if all {
            out.push('\n');
        }
        let mut rows = vec![
            vec![
                "ROUTE CONFIG",
                "VIRTUAL HOST",
                "DOMAINS",
                "MATCH",
                "DESTINATION",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ];
        for r in items(dump, "routes") {
            for vh in r["config"]["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let domains = vh["domains"].as_array().map_or(0, Vec::len);
                for route in vh["routes"].as_array().into_iter().flatten() {
                    rows.push(vec![
                        s(&r["name"]),
                        s(&vh["name"]),
                        domains.to_string(),
                        describe_matches(&route["matches"]),
                        describe_action(&route["action"]),
                    ]);
                }
            }
        }
        out.push_str(&table(&rows));
    }
    if all || section == Section::Clusters {
        if all {
            out.push('\n');
        }
        let mut rows = vec![
            vec!["NAME", "SERVICE", "PORT", "SUBSET", "LB", "PROTOCOL"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
        ];
        for c in items(dump, "clusters") {
            let cfg = &c["config"];
            rows.push(vec![
                s(&c["name"]),
                s(&cfg["service"]),
                s(&cfg["port"]),
                s(&cfg["subset"]).replace('"', ""),
                s(&cfg["load_balancer"]),
                s(&cfg["protocol"]),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if all || section == Section::Endpoints {
        if all {
            out.push('\n');
        }
        let mut rows = vec![
            vec!["ENDPOINT", "CLUSTER", "WEIGHT", "IN FLIGHT"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
        ];
        for e in items(dump, "endpoints") {
            for ep in e["config"]["endpoints"].as_array().into_iter().flatten() {
                rows.push(vec![
                    s(&ep["address"]),
                    s(&e["name"]),
                    s(&ep["weight"]),
                    s(&ep["stats"]["in_flight"]),
                ]);
            }
        }
        out.push_str(&table(&rows));
    }
    out
}

fn describe_matches(matches: &Value) -> String {
    let list = matches.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        return "/*".to_string();
    }
    list.iter()
        .map(describe_match)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Only the conditions a match sets, e.g. `headers={"end-user":"exact:jason"} uri=prefix:/api`.
fn describe_match(m: &Value) -> String {
    let Some(fields) = m.as_object() else {
        return m.to_string();
    };
    fields
        .iter()
        .filter(|(_, v)| match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_u64() != Some(0),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::String(s) => !s.is_empty(),
        })
        .map(|(k, v)| format!("{k}={}", compact(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `{"exact":"jason"}` -> `exact:jason`; other values as compact JSON.
fn compact(v: &Value) -> String {
    match v {
        // Header and query-parameter matches: `name:exact:value` (or just the
        // name when only presence is required).
        Value::Object(o) if o.contains_key("name") && o.len() <= 2 => {
            let name = o.get("name").map(compact).unwrap_or_default();
            match o.get("value").filter(|v| !v.is_null()) {
                Some(value) => format!("{name}:{}", compact(value)),
                None => name,
            }
        }
        Value::Object(o) if o.len() == 1 => {
            let (k, inner) = o
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v))
                .unwrap_or_default();
            format!("{k}:{}", compact(inner))
        }
        Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(","),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe_action(action: &Value) -> String {
    if let Some(forward) = action.get("forward") {
        return forward["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} ({})", s(&c["cluster"]), s(&c["weight"])))
            .collect::<Vec<_>>()
            .join(", ");
    }
    action.to_string()
}
