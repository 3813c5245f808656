//! `weft token issue`: a token that proves a namespace and service account
//! to the mesh CA on this machine (the stand-in for a Kubernetes
//! service-account token), signed with the key in the CA directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use weft_pki::token::{ServiceAccount, TokenKey};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Print a token (one line) for `--namespace`/`--service-account`; a
    /// proxy given it with `--token-file` gets that identity's certificate.
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
struct IssueArgs {
    /// The control plane's `--ca-dir` (its token key is created there if missing).
    #[arg(long)]
    ca_dir: PathBuf,
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    service_account: String,
    /// Lifetime, Go-style (`1h30m`) or proto-JSON (`90s`).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Duration,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = weft_api::types::Duration::parse(s)?.as_std();
    if d < Duration::from_secs(1) {
        return Err("a token lives at least 1s".into());
    }
    Ok(d)
}

pub fn run(args: TokenArgs) -> ExitCode {
    let result = match args.command {
        TokenCommand::Issue(issue) => issue_token(&issue),
    };
    match result {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn issue_token(args: &IssueArgs) -> Result<String> {
    issue(
        &args.ca_dir,
        &args.namespace,
        &args.service_account,
        args.ttl,
    )
}

/// A token for `namespace`/`service_account`, signed with the key in
/// `ca_dir` (created there if missing).
pub fn issue(
    ca_dir: &std::path::Path,
    namespace: &str,
    service_account: &str,
    ttl: Duration,
) -> Result<String> {
    std::fs::create_dir_all(ca_dir).with_context(|| format!("creating {}", ca_dir.display()))?;
    let key = TokenKey::load_or_create(ca_dir).context("the token signing key")?;
    let account = ServiceAccount {
        namespace: namespace.to_string(),
        name: service_account.to_string(),
    };
    Ok(key.issue(&account, ttl)?)
}
