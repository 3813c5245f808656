//! A resource as loaded: identity, typed body, origin and validation results.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::extensions::WasmPlugin;
use crate::kinds::{Kind, is_cluster_scoped};
use crate::networking::{
    DestinationRule, EnvoyFilter, Gateway, ProxyConfig, ServiceEntry, Sidecar, VirtualService,
    WorkloadEntry, WorkloadGroup,
};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;
use crate::validate::{Context, FieldPath, Validate, Violation, Violations};
use crate::yaml::LineIndex;

/// Where a resource came from: a file and the line its document starts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The metadata fields Weft uses. Read leniently: metadata is Kubernetes', not ours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub name: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub creation_timestamp: Option<String>,
    pub generation: Option<i64>,
}

/// The typed content of a resource.
#[derive(Clone, Debug)]
pub enum Body {
    VirtualService(Box<VirtualService>),
    DestinationRule(Box<DestinationRule>),
    Gateway(Box<Gateway>),
    ServiceEntry(Box<ServiceEntry>),
    Sidecar(Box<Sidecar>),
    WorkloadEntry(Box<WorkloadEntry>),
    WorkloadGroup(Box<WorkloadGroup>),
    EnvoyFilter(Box<EnvoyFilter>),
    ProxyConfig(Box<ProxyConfig>),
    PeerAuthentication(Box<PeerAuthentication>),
    RequestAuthentication(Box<RequestAuthentication>),
    AuthorizationPolicy(Box<AuthorizationPolicy>),
    Telemetry(Box<Telemetry>),
    WasmPlugin(Box<WasmPlugin>),
    Service(Box<Service>),
    Pod(Box<Pod>),
    Namespace(Box<Namespace>),
    EndpointSlice(Box<EndpointSlice>),
    Secret(Box<Secret>),
    Deployment(Box<Deployment>),
    ConfigMap(Box<ConfigMap>),
    /// A kind Weft does not model; `raw` still holds it.
    Untyped,
    /// A modelled kind whose content failed to decode; see `violations`.
    Invalid,
}

/// A typed body that can be read out of a `Body` (Istio kinds and the
/// Kubernetes objects we model).
pub trait Spec: Sized {
    const KIND: Kind;
    fn of(body: &Body) -> Option<&Self>;
}

macro_rules! spec_kinds {
    ($($variant:ident => $ty:ty),* $(,)?) => {
        $(impl Spec for $ty {
            const KIND: Kind = Kind::$variant;
            fn of(body: &Body) -> Option<&Self> {
                match body {
                    Body::$variant(b) => Some(b),
                    _ => None,
                }
            }
        })*
    };
}

spec_kinds! {
    VirtualService => VirtualService,
    DestinationRule => DestinationRule,
    Gateway => Gateway,
    ServiceEntry => ServiceEntry,
    Sidecar => Sidecar,
    WorkloadEntry => WorkloadEntry,
    WorkloadGroup => WorkloadGroup,
    EnvoyFilter => EnvoyFilter,
    ProxyConfig => ProxyConfig,
    PeerAuthentication => PeerAuthentication,
    RequestAuthentication => RequestAuthentication,
    AuthorizationPolicy => AuthorizationPolicy,
    Telemetry => Telemetry,
    WasmPlugin => WasmPlugin,
    Service => Service,
    Pod => Pod,
    Namespace => Namespace,
    EndpointSlice => EndpointSlice,
    Secret => Secret,
    Deployment => Deployment,
    ConfigMap => ConfigMap,
}

/// One resource from one document (or one item of a `kind: List`).
#[derive(Clone, Debug)]
pub struct Resource {
    pub api_version: String,
    pub kind_name: String,
    pub kind: Option<Kind>,
    pub meta: ObjectMeta,
    pub body: Body,
    pub origin: Origin,
    /// The whole document as JSON.
    pub raw: Value,
    /// Schema violations (IST0106 material).
    pub violations: Vec<Violation>,
    lines: Arc<LineIndex>,
    /// Path of this resource inside its document (`items[3]` for List items).
    line_prefix: String,
}

/// Options that shape how documents become resources.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Namespace for namespaced resources that name none (`None` keeps them empty).
    pub default_namespace: Option<String>,
    pub root_namespace: String,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            default_namespace: Some("default".into()),
            root_namespace: "istio-system".into(),
        }
    }
}

impl Resource {
    /// `Kind namespace/name`, or `Kind name` for cluster-scoped resources.
    pub fn reference(&self) -> String {
        if self.meta.namespace.is_empty() {
            format!("{} {}", self.kind_name, self.meta.name)
        } else {
            format!(
                "{} {}/{}",
                self.kind_name, self.meta.namespace, self.meta.name
            )
        }
    }

    /// The line of a field inside this resource's document.
    pub fn line_of(&self, path: &FieldPath) -> usize {
        self.lines.line_of(&self.line_prefix, path)
    }

    /// The origin of a field (file and the field's own line).
    pub fn origin_of(&self, path: &FieldPath) -> Origin {
        Origin {
            file: self.origin.file.clone(),
            line: self.line_of(path),
        }
    }

    /// The typed body, when this resource is of `T`'s kind and decoded.
    pub fn spec<T: Spec>(&self) -> Option<&T> {
        T::of(&self.body)
    }

    pub fn is(&self, kind: Kind) -> bool {
        self.kind == Some(kind)
    }

    /// A resource built in code (no file), e.g. defaults a harness adds.
    pub fn synthetic(raw: Value, file: &str, opts: &DecodeOptions) -> Result<Resource, String> {
        let lines = Arc::new(LineIndex::default());
        decode_one(
            raw,
            Origin {
                file: file.into(),
                line: 0,
            },
            lines,
            String::new(),
            opts,
        )
    }
}

/// Turns one parsed document into resources (several for a `kind: List`).
/// A document with no `kind`/`apiVersion` cannot be attributed and is an error.
pub fn decode_document(
    value: Value,
    file: &Arc<str>,
    start_line: usize,
    lines: LineIndex,
    opts: &DecodeOptions,
) -> Result<Vec<Resource>, String> {
    let lines = Arc::new(lines);
    let origin = Origin {
        file: file.clone(),
        line: start_line,
    };
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        return decode_one(value, origin, lines, String::new(), opts).map(|r| vec![r]);
    }
    let Value::Object(mut map) = value else {
        return Err("a List must be a mapping".into());
    };
    let Some(Value::Array(items)) = map.remove("items") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("items[{i}]");
        let line = lines.line_at(&prefix).unwrap_or(start_line);
        let origin = Origin {
            file: file.clone(),
            line,
        };
        out.push(decode_one(item, origin, lines.clone(), prefix, opts)?);
    }
    Ok(out)
}

fn decode_one(
    raw: Value,
    origin: Origin,
    lines: Arc<LineIndex>,
    line_prefix: String,
    opts: &DecodeOptions,
) -> Result<Resource, String> {
    let Some(obj) = raw.as_object() else {
        return Err("document is not a mapping".into());
    };
    let kind_name = obj
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or("Object 'Kind' is missing")?
        .to_string();
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or("Object 'apiVersion' is missing")?
        .to_string();
    let kind = Kind::from_type(&api_version, &kind_name);
    let mut violations = Violations::default();
    let meta = read_meta(obj.get("metadata"), &kind_name, opts, &mut violations);

    let mut resource = Resource {
        api_version,
        kind_name,
        kind,
        meta,
        body: Body::Untyped,
        origin,
        raw,
        violations: Vec::new(),
        lines,
        line_prefix,
    };
    if let Some(kind) = kind {
        let ctx = Context {
            namespace: resource.meta.namespace.clone(),
            root_namespace: opts.root_namespace.clone(),
        };
        resource.body = decode_body(
            kind,
            &resource.raw,
            &resource.api_version,
            &ctx,
            &mut violations,
        );
    }
    resource.violations = violations.items;
    Ok(resource)
}

fn read_meta(
    meta: Option<&Value>,
    kind: &str,
    opts: &DecodeOptions,
    out: &mut Violations,
) -> ObjectMeta {
    let path = FieldPath::root("metadata");
    let Some(meta) = meta.and_then(Value::as_object) else {
        out.push(&path, "metadata is required");
        return ObjectMeta::default();
    };
    let string = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let string_map = |key: &str, out: &mut Violations| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(obj) = meta.get(key).and_then(Value::as_object) {
            for (k, v) in obj {
                match v {
                    Value::String(s) => {
                        m.insert(k.clone(), s.clone());
                    }
                    other => out.push(
                        &path.field(key).key(k),
                        format!("value must be a string, not {other}"),
                    ),
                }
            }
        }
        m
    };
    let name = string("name");
    if name.is_empty() && meta.get("generateName").is_none() {
        out.push(&path.field("name"), "name is required");
    }
    let mut namespace = string("namespace");
    if is_cluster_scoped(kind) {
        namespace.clear();
    } else if namespace.is_empty()
        && let Some(default) = &opts.default_namespace
    {
        namespace = default.clone();
    }
    ObjectMeta {
        name,
        namespace,
        labels: string_map("labels", out),
        annotations: string_map("annotations", out),
        creation_timestamp: meta
            .get("creationTimestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
        generation: meta.get("generation").and_then(Value::as_i64),
    }
}

fn decode_body(
    kind: Kind,
    raw: &Value,
    api_version: &str,
    ctx: &Context,
    out: &mut Violations,
) -> Body {
    let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
    if !kind.versions().contains(&version) {
        out.push(
            &FieldPath::root("apiVersion"),
            format!(
                "{kind} is not served as {api_version}; use one of {}",
                kind.versions().join(", ")
            ),
        );
    }
    if kind.is_istio() {
        check_top_level_fields(raw, out);
    }
    let spec = raw
        .get("spec")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    macro_rules! istio {
        ($variant:ident) => {
            match spec_of(&spec, ctx, out) {
                Some(v) => Body::$variant(Box::new(v)),
                None => Body::Invalid,
            }
        };
    }
    macro_rules! kube {
        ($variant:ident) => {
            match object_of(raw, out) {
                Some(v) => Body::$variant(Box::new(v)),
                None => Body::Invalid,
            }
        };
    }
    match kind {
        Kind::VirtualService => istio!(VirtualService),
        Kind::DestinationRule => istio!(DestinationRule),
        Kind::Gateway => istio!(Gateway),
        Kind::ServiceEntry => istio!(ServiceEntry),
        Kind::Sidecar => istio!(Sidecar),
        Kind::WorkloadEntry => istio!(WorkloadEntry),
        Kind::WorkloadGroup => istio!(WorkloadGroup),
        Kind::EnvoyFilter => istio!(EnvoyFilter),
        Kind::ProxyConfig => istio!(ProxyConfig),
        Kind::PeerAuthentication => istio!(PeerAuthentication),
        Kind::RequestAuthentication => istio!(RequestAuthentication),
        Kind::AuthorizationPolicy => istio!(AuthorizationPolicy),
        Kind::Telemetry => istio!(Telemetry),
        Kind::WasmPlugin => istio!(WasmPlugin),
        Kind::Service => kube!(Service),
        Kind::Pod => kube!(Pod),
        Kind::Namespace => kube!(Namespace),
        Kind::EndpointSlice => kube!(EndpointSlice),
        Kind::Secret => kube!(Secret),
        Kind::Deployment => kube!(Deployment),
        Kind::ConfigMap => kube!(ConfigMap),
    }
}

/// Istio's CRDs are structural: anything beside these is rejected.
fn check_top_level_fields(raw: &Value, out: &mut Violations) {
    if let Some(obj) = raw.as_object() {
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "apiVersion" | "kind" | "metadata" | "spec" | "status"
            ) {
                out.push(&FieldPath::root(key), format!("unknown field {key:?}"));
            }
        }
    }
}

/// Decodes `spec` and validates it; decoding errors name the failing field.
fn spec_of<T: DeserializeOwned + Validate>(
    spec: &Value,
    ctx: &Context,
    out: &mut Violations,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(spec) {
        Ok(v) => {
            v.validate(ctx, &FieldPath::root("spec"), out);
            Some(v)
        }
        Err(e) => {
            out.push(
                &error_path(FieldPath::root("spec"), e.path()),
                e.inner().to_string(),
            );
            None
        }
    }
}

fn object_of<T: DeserializeOwned>(raw: &Value, out: &mut Violations) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(
                &error_path(FieldPath::default(), e.path()),
                e.inner().to_string(),
            );
            None
        }
    }
}

fn error_path(mut base: FieldPath, path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    for seg in path.iter() {
        base = match seg {
            Segment::Seq { index } => base.index(*index),
            Segment::Map { key } | Segment::Enum { variant: key } => base.field(key),
            Segment::Unknown => base,
        };
    }
    base
}
