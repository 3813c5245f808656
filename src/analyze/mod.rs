//! `weft analyze`: load files, run the analyzers, print messages, and exit with
//! istioctl's codes.

mod output;
mod suppress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use weft_analyze::{Level, Message};
use weft_api::mesh::MeshConfig;
use weft_api::resource::DecodeOptions;

use crate::EXIT_USAGE;
use suppress::Suppression;

/// Something reached the failure threshold.
const EXIT_ANALYSIS_FAILED: u8 = 79;
/// An input could not be parsed (the rest was still analyzed).
const EXIT_PARSE_ERROR: u8 = 65;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[value(alias = "log")]
    Text,
    Json,
    Yaml,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum Threshold {
    #[value(alias = "info", alias = "INFO")]
    Info,
    #[value(alias = "warning", alias = "WARNING")]
    Warning,
    #[value(alias = "error", alias = "ERROR")]
    Error,
}

impl From<Threshold> for Level {
    fn from(t: Threshold) -> Level {
        match t {
            Threshold::Info => Level::Info,
            Threshold::Warning => Level::Warning,
            Threshold::Error => Level::Error,
        }
    }
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Files or directories (recursive: .yaml, .yml, .json); `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: OutputFormat,

    /// Exit with 79 when a message at this level or above is found.
    #[arg(long, value_enum, default_value = "Error")]
    failure_threshold: Threshold,

    /// Print only messages at this level or above.
    #[arg(long, value_enum, default_value = "Info")]
    output_threshold: Threshold,

    /// Silence messages: "CODE=Kind namespace/name", `*` matches anything. Repeatable.
    #[arg(short = 'S', long = "suppress", value_name = "CODE=Kind ns/name")]
    suppress: Vec<String>,

    /// Mesh config (Istio's `mesh` format) layered over the default one.
    #[arg(long = "mesh-config", alias = "meshConfigFile", value_name = "FILE")]
    mesh_config: Option<PathBuf>,

    /// Mesh networks (Istio's `meshNetworks` format) to check with the mesh.
    #[arg(
        long = "mesh-networks",
        alias = "meshNetworksFile",
        value_name = "FILE"
    )]
    mesh_networks: Option<PathBuf>,

    /// Namespace for resources that name none.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,

    /// Run only the named analyzers (Istio's names, e.g. virtualservice.GatewayAnalyzer). Repeatable.
    #[arg(long = "analyzer", value_name = "NAME")]
    analyzers: Vec<String>,

    /// Do not assume Istio's default ingress gateway (Pod and Service
    /// `istio-ingressgateway` in the root namespace) is installed.
    #[arg(long)]
    no_default_ingress: bool,

    /// List the message codes Weft can report, and exit.
    #[arg(long, exclusive = true)]
    list_codes: bool,
}

pub fn run(args: AnalyzeArgs) -> ExitCode {
    match analyze(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> Result<ExitCode> {
    if args.list_codes {
        for c in weft_analyze::messages::ALL_CODES {
            println!("{} {} {}", c.id, c.level, c.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let suppressions = args
        .suppress
        .iter()
        .map(|s| Suppression::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let mesh = load_mesh(args.mesh_config.as_deref())?;
    let opts = DecodeOptions {
        default_namespace: Some(args.namespace.clone()),
        root_namespace: mesh.root_namespace().to_string(),
    };
    let mut loaded = weft_api::load_paths(&args.paths, &opts);
    for e in &loaded.errors {
        eprintln!("Error: failed to parse {e}");
    }
    if let Some(path) = &args.mesh_networks {
        let doc = read_yaml_file(path, "mesh networks")?;
        let resource = weft_analyze::analyzers::mesh_networks_resource(
            &doc,
            &path.display().to_string(),
            &opts,
        )
        .map_err(|e| anyhow::anyhow!("mesh networks {}: {e}", path.display()))?;
        loaded.resources.push(resource);
    }
    if !args.no_default_ingress {
        loaded
            .resources
            .extend(weft_analyze::default_ingress::resources(
                &mesh,
                &loaded.resources,
                &opts,
            ));
    }
    let select = |name: &str| args.analyzers.is_empty() || args.analyzers.iter().any(|a| a == name);
    let messages: Vec<Message> = weft_analyze::analyze(&loaded.resources, &mesh, select)
        .into_iter()
        .filter(|m| !suppressions.iter().any(|s| s.matches(m)))
        .collect();

    let shown: Vec<&Message> = messages
        .iter()
        .filter(|m| m.level >= Level::from(args.output_threshold))
        .collect();
    let stdout = output::render(&shown, args.output)?;
    print!("{stdout}");
    if args.output == OutputFormat::Text && shown.is_empty() && loaded.errors.is_empty() {
        eprintln!(
            "\u{2714} No validation issues found when analyzing {}.",
            describe(&args.paths)
        );
    }

    if !loaded.errors.is_empty() {
        return Ok(ExitCode::from(EXIT_PARSE_ERROR));
    }
    let failed = messages
        .iter()
        .any(|m| m.level >= Level::from(args.failure_threshold));
    Ok(if failed {
        ExitCode::from(EXIT_ANALYSIS_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_mesh(path: Option<&std::path::Path>) -> Result<MeshConfig> {
    let Some(path) = path else {
        return Ok(MeshConfig::istio_default());
    };
    let overlay = read_yaml_file(path, "mesh config")?;
    MeshConfig::from_overlay(&overlay).with_context(|| format!("mesh config {}", path.display()))
}

/// The first document of a YAML file (an empty file is an empty mapping).
fn read_yaml_file(path: &std::path::Path, what: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    match weft_api::yaml::parse_documents(&text).into_iter().next() {
        None => Ok(serde_json::Value::Object(Default::default())),
        Some(Ok(doc)) => Ok(doc.value),
        Some(Err(e)) => anyhow::bail!("{what} {}:{}: {}", path.display(), e.line, e.message),
    }
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
