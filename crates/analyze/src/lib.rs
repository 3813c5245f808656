//! Cross-resource analysis in the spirit of `istioctl analyze`: each analyzer
//! reads an indexed snapshot of the input and reports messages with Istio's
//! IST codes.

pub mod analyzers;
pub mod default_ingress;
pub mod hosts;
pub mod messages;
pub mod snapshot;

use weft_api::Resource;
use weft_api::mesh::MeshConfig;
use weft_api::validate::FieldPath;

pub use messages::{Code, Level, Message, ResourceRef};
pub use snapshot::Snapshot;

/// What an analyzer sees.
pub struct Analysis<'a> {
    pub snapshot: Snapshot<'a>,
    pub mesh: &'a MeshConfig,
}

/// Collects messages; analyzers call `report`.
#[derive(Default)]
pub struct Reporter {
    messages: Vec<Message>,
}

/// Annotation that silences codes on one resource (comma-separated, or `*`).
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

/// Istio's analysis ignores these system namespaces.
const IGNORED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

impl Reporter {
    /// Reports `code` on `resource`, located at `path` when given (else the
    /// resource's first line).
    pub fn report(
        &mut self,
        code: Code,
        resource: &Resource,
        path: Option<&FieldPath>,
        text: impl Into<String>,
    ) {
        let origin = match path {
            Some(p) => resource.origin_of(p),
            None => resource.origin.clone(),
        };
        self.messages.push(Message {
            code,
            level: code.level,
            text: text.into(),
            resource: ResourceRef {
                kind: resource.kind_name.clone(),
                namespace: resource.meta.namespace.clone(),
                name: resource.meta.name.clone(),
            },
            origin,
        });
    }

    /// Drops suppressed, ignored and duplicate messages, and sorts by file then line.
    fn finish(mut self, resources: &[Resource]) -> Vec<Message> {
        self.messages.retain(|m| {
            if IGNORED_NAMESPACES.contains(&m.resource.namespace.as_str()) {
                return false;
            }
            let suppressed = resources
                .iter()
                .find(|r| {
                    r.kind_name == m.resource.kind
                        && r.meta.namespace == m.resource.namespace
                        && r.meta.name == m.resource.name
                })
                .and_then(|r| r.meta.annotations.get(SUPPRESS_ANNOTATION))
                .is_some_and(|codes| {
                    codes
                        .split(',')
                        .any(|c| c.trim() == "*" || c.trim() == m.code.id)
                });
            !suppressed
        });
        self.messages.sort_by(|a, b| {
            (
                &a.origin.file,
                a.origin.line,
                a.code.id,
                &a.resource,
                &a.text,
            )
                .cmp(&(
                    &b.origin.file,
                    b.origin.line,
                    b.code.id,
                    &b.resource,
                    &b.text,
                ))
        });
        self.messages.dedup();
        self.messages
    }
}

/// An analyzer: a name as Istio spells it (for `--analyzer`-style selection) and
/// the function that does the work.
pub struct Analyzer {
    pub name: &'static str,
    pub run: fn(&Analysis, &mut Reporter),
}

/// Runs the analyzers whose name passes `select` over `resources`.
pub fn analyze(
    resources: &[Resource],
    mesh: &MeshConfig,
    select: impl Fn(&str) -> bool,
) -> Vec<Message> {
    let analysis = Analysis {
        snapshot: Snapshot::new(resources, mesh.root_namespace(), "cluster.local"),
        mesh,
    };
    let mut reporter = Reporter::default();
    for analyzer in analyzers::all() {
        if select(analyzer.name) {
            (analyzer.run)(&analysis, &mut reporter);
        }
    }
    reporter.finish(resources)
}
