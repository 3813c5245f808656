//! `EnvoyFilter` (networking.istio.io/v1alpha3): raw patches to the generated xDS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::{PolicyTargetReference, WorkloadSelector};
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_port, check_regex, validate_each,
};

/// Limit from Istio's CRD schema.
const MAX_TARGET_REFS: usize = 16;

/// Network filter names that own the HTTP filter chain a `subFilter` selects from.
const HTTP_CONNECTION_MANAGERS: [&str; 2] = [
    "envoy.filters.network.http_connection_manager",
    "envoy.http_connection_manager",
];

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyFilter {
    /// None applies to every workload in the namespace (all of the mesh from the root namespace).
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub config_patches: Vec<EnvoyConfigObjectPatch>,
    /// Lower values are applied first; the root namespace's filters come before all others.
    #[serde(default)]
    pub priority: i32,
    /// Removed from the API in Istio 1.5 and ignored since; kept so old YAML loads.
    #[serde(default)]
    pub workload_labels: BTreeMap<String, String>,
    /// The pre-1.4 filter list, removed with `workloadLabels`; kept as raw JSON for the same reason.
    #[serde(default)]
    pub filters: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyConfigObjectPatch {
    #[serde(default)]
    pub apply_to: ApplyTo,
    #[serde(default)]
    pub r#match: Option<EnvoyConfigObjectMatch>,
    #[serde(default)]
    pub patch: Option<Patch>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplyTo {
    /// The zero value: not set.
    #[default]
    Invalid,
    Listener,
    FilterChain,
    NetworkFilter,
    HttpFilter,
    RouteConfiguration,
    VirtualHost,
    HttpRoute,
    Cluster,
    ExtensionConfig,
    Bootstrap,
    ListenerFilter,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatchContext {
    #[default]
    Any,
    SidecarInbound,
    SidecarOutbound,
    Gateway,
    Waypoint,
}

/// At most one of `listener`, `route_configuration`, `cluster` and `waypoint` (a oneof).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyConfigObjectMatch {
    #[serde(default)]
    pub context: PatchContext,
    #[serde(default)]
    pub proxy: Option<ProxyMatch>,
    #[serde(default)]
    pub listener: Option<ListenerMatch>,
    #[serde(default)]
    pub route_configuration: Option<RouteConfigurationMatch>,
    #[serde(default)]
    pub cluster: Option<ClusterMatch>,
    #[serde(default)]
    pub waypoint: Option<WaypointMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyMatch {
    /// RE2 regex over the proxy's `ISTIO_VERSION` node metadata.
    #[serde(default)]
    pub proxy_version: String,
    /// Exact matches on string node metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerMatch {
    #[serde(default)]
    pub port_number: u32,
    /// Not implemented by Istio.
    #[serde(default)]
    pub port_name: String,
    #[serde(default)]
    pub filter_chain: Option<FilterChainMatch>,
    #[serde(default)]
    pub listener_filter: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterChainMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sni: String,
    #[serde(default)]
    pub transport_protocol: String,
    /// Comma separated, e.g. `h2,http/1.1`.
    #[serde(default)]
    pub application_protocols: String,
    #[serde(default)]
    pub filter: Option<FilterMatch>,
    #[serde(default)]
    pub destination_port: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sub_filter: Option<SubFilterMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubFilterMatch {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfigurationMatch {
    #[serde(default)]
    pub port_number: u32,
    /// Gateway server port name; GATEWAY context only.
    #[serde(default)]
    pub port_name: String,
    /// `namespace/name` of the Istio Gateway; GATEWAY context only.
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub vhost: Option<VirtualHostMatch>,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHostMatch {
    /// Istio names virtual hosts `host:port`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub route: Option<RouteMatch>,
    #[serde(default)]
    pub domain_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub action: RouteAction,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouteAction {
    #[default]
    Any,
    Route,
    Redirect,
    DirectResponse,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterMatch {
    #[serde(default)]
    pub port_number: u32,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub subset: String,
    #[serde(default)]
    pub name: String,
}

/// Only with context WAYPOINT.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointMatch {
    #[serde(default)]
    pub filter: Option<FilterMatch>,
    #[serde(default)]
    pub route: Option<WaypointRouteMatch>,
    #[serde(default)]
    pub port_number: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointRouteMatch {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    #[serde(default)]
    pub operation: Operation,
    /// A `google.protobuf.Struct`: the xDS object (or part of it) in proto-JSON.
    #[serde(default)]
    pub value: Option<Map<String, Value>>,
    #[serde(default)]
    pub filter_class: FilterClass,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// The zero value: not set.
    #[default]
    Invalid,
    Merge,
    Add,
    Remove,
    InsertBefore,
    InsertAfter,
    InsertFirst,
    Replace,
    MergeAndReplaceList,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterClass {
    #[default]
    Unspecified,
    Authn,
    Authz,
    Stats,
}

impl ApplyTo {
    /// Objects found through a listener match.
    pub fn is_listener_class(self) -> bool {
        matches!(
            self,
            ApplyTo::Listener | ApplyTo::FilterChain | ApplyTo::NetworkFilter | ApplyTo::HttpFilter
        )
    }

    /// Objects found through a route configuration match.
    pub fn is_route_class(self) -> bool {
        matches!(
            self,
            ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
        )
    }
}

impl Validate for EnvoyFilter {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        self.workload_selector
            .validate(ctx, &path.field("workloadSelector"), out);
        let refs = path.field("targetRefs");
        if self.workload_selector.is_some() && !self.target_refs.is_empty() {
            out.push(
                path,
                "only one of targetRefs or workloadSelector can be set",
            );
        }
        if self.target_refs.len() > MAX_TARGET_REFS {
            out.push(
                &refs,
                format!("at most {MAX_TARGET_REFS} targetRefs may be set"),
            );
        }
        validate_each(&self.target_refs, ctx, &refs, out);
        validate_each(&self.config_patches, ctx, &path.field("configPatches"), out);
    }
}

impl Validate for EnvoyConfigObjectPatch {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.apply_to == ApplyTo::Invalid {
            out.push(&path.field("applyTo"), "applyTo is required");
        }
        let patch_path = path.field("patch");
        match &self.patch {
            None => out.push(&patch_path, "patch is required"),
            Some(patch) => {
                if patch.operation == Operation::Invalid {
                    out.push(
                        &patch_path.field("operation"),
                        "patch operation is required",
                    );
                } else if patch.operation != Operation::Remove && patch.value.is_none() {
                    out.push(
                        &patch_path.field("value"),
                        "patch value is required unless the operation is REMOVE",
                    );
                }
            }
        }
        if let Some(m) = &self.r#match {
            check_match(m, self.apply_to, &path.field("match"), out);
        }
    }
}

fn check_match(
    m: &EnvoyConfigObjectMatch,
    apply_to: ApplyTo,
    path: &FieldPath,
    out: &mut Violations,
) {
    if let Some(proxy) = &m.proxy
        && !proxy.proxy_version.is_empty()
    {
        check_regex(
            &proxy.proxy_version,
            &path.field("proxy").field("proxyVersion"),
            out,
        );
    }

    let objects = [
        m.listener.is_some(),
        m.route_configuration.is_some(),
        m.cluster.is_some(),
        m.waypoint.is_some(),
    ];
    let object_count = objects.iter().filter(|o| **o).count();
    if object_count > 1 {
        out.push(
            path,
            "only one of listener, routeConfiguration, cluster or waypoint may be set",
        );
    }

    match (m.waypoint.is_some(), m.context == PatchContext::Waypoint) {
        (true, false) => out.push(
            &path.field("waypoint"),
            "a waypoint match requires context WAYPOINT",
        ),
        (false, true) => out.push(path, "context WAYPOINT requires a waypoint match"),
        _ => {}
    }
    if let Some(wp) = &m.waypoint
        && wp.port_number != 0
    {
        check_port(
            wp.port_number,
            &path.field("waypoint").field("portNumber"),
            out,
        );
    }

    // A match on one family of objects never selects an object of another.
    if object_count == 1 {
        let family = if apply_to.is_listener_class() {
            Some((m.listener.is_some(), "a listener"))
        } else if apply_to.is_route_class() {
            Some((m.route_configuration.is_some(), "a routeConfiguration"))
        } else if apply_to == ApplyTo::Cluster {
            Some((m.cluster.is_some(), "a cluster"))
        } else {
            None
        };
        if let Some((false, want)) = family
            && m.waypoint.is_none()
        {
            out.push(
                path,
                format!("applyTo {} needs {want} match", proto_name(&apply_to)),
            );
        }
    }

    let filter = m
        .listener
        .as_ref()
        .and_then(|l| l.filter_chain.as_ref())
        .and_then(|fc| fc.filter.as_ref());
    if let (Some(f), true) = (filter, apply_to.is_listener_class()) {
        let at = path.field("listener").field("filterChain").field("filter");
        check_filter_match(f, apply_to == ApplyTo::HttpFilter, &at, out);
    }
}

/// The proto name of an enum value, for messages.
fn proto_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A filter match needs a name; a sub-filter match selects an HTTP filter inside the
/// HTTP connection manager, so it only makes sense for applyTo HTTP_FILTER.
fn check_filter_match(f: &FilterMatch, http_filter: bool, path: &FieldPath, out: &mut Violations) {
    if f.name.is_empty() {
        out.push(&path.field("name"), "filter match requires a name");
    }
    let Some(sub) = &f.sub_filter else { return };
    let sub_path = path.field("subFilter");
    if !http_filter {
        out.push(
            &sub_path,
            "subFilter match can be used with applyTo HTTP_FILTER only",
        );
    } else if !f.name.is_empty() && !HTTP_CONNECTION_MANAGERS.contains(&f.name.as_str()) {
        out.push(
            &path.field("name"),
            format!(
                "subFilter match requires the filter {}",
                HTTP_CONNECTION_MANAGERS[0]
            ),
        );
    }
    if sub.name.is_empty() {
        out.push(&sub_path.field("name"), "subFilter match requires a name");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(spec: serde_json::Value) -> Vec<String> {
        let ef: EnvoyFilter = serde_json::from_value(spec).expect("decodes");
        let ctx = Context {
            namespace: "bookinfo".into(),
            root_namespace: "istio-system".into(),
        };
        let mut out = Violations::default();
        ef.validate(&ctx, &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    fn one(patch: serde_json::Value) -> Vec<String> {
        paths(json!({"configPatches": [patch]}))
    }

    fn lua() -> serde_json::Value {
        json!({"name": "envoy.filters.http.lua", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", "inlineCode": "-- noop"}})
    }

    #[test]
    fn istio_doc_examples_are_valid() {
        let reviews_lua = json!({
            "workloadSelector": {"labels": {"app": "reviews"}},
            "configPatches": [
                {"applyTo": "HTTP_FILTER",
                 "match": {"context": "SIDECAR_INBOUND", "listener": {"portNumber": 8080,
                     "filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager",
                                                "subFilter": {"name": "envoy.filters.http.router"}}}}},
                 "patch": {"operation": "INSERT_BEFORE", "value": lua()}},
                {"applyTo": "CLUSTER", "match": {"context": "SIDECAR_OUTBOUND"},
                 "patch": {"operation": "ADD", "value": {"name": "lua_cluster", "type": "STRICT_DNS",
                     "connect_timeout": "0.5s", "lb_policy": "ROUND_ROBIN"}}}
            ]
        });
        assert_eq!(paths(reviews_lua), Vec::<String>::new());
        let hcm = json!({
            "workloadSelector": {"labels": {"istio": "ingressgateway"}},
            "configPatches": [{"applyTo": "NETWORK_FILTER",
                "match": {"context": "GATEWAY", "listener": {"filterChain": {"sni": "app.example.com",
                    "filter": {"name": "envoy.filters.network.http_connection_manager"}}}},
                "patch": {"operation": "MERGE", "value": {"xff_num_trusted_hops": 5}}}],
            "priority": -1
        });
        assert_eq!(paths(hcm), Vec::<String>::new());
        let ecds = json!({"configPatches": [{"applyTo": "EXTENSION_CONFIG",
            "patch": {"operation": "ADD", "value": {"name": "my-wasm-extension"}}}]});
        assert_eq!(paths(ecds), Vec::<String>::new());
        let authz = json!({"configPatches": [{"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND",
            "proxy": {"proxyVersion": "^1\\.2.*", "metadata": {"ROUTER_MODE": "sni-dnat"}}},
            "patch": {"operation": "ADD", "filterClass": "AUTHZ", "value": lua()}}]});
        assert_eq!(paths(authz), Vec::<String>::new());
    }

    #[test]
    fn decoding_is_strict_but_keeps_legacy_fields() {
        assert!(
            serde_json::from_value::<EnvoyFilter>(json!({"configPatches": [{"applyTo": "ROUTE"}]}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<EnvoyFilter>(
                json!({"configPatches": [{"match": {"app": "x"}}]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<EnvoyFilter>(
                json!({"configPatches": [{"patch": {"value": "text"}}]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<EnvoyFilter>(
                json!({"configPatches": [{"patch": {"operation": "PUT"}}]})
            )
            .is_err()
        );
        let old: EnvoyFilter =
            serde_json::from_value(json!({"workloadLabels": {"istio": "egressgateway"},
            "filters": [{"listenerMatch": {"portNumber": 15443}}]}))
            .expect("legacy fields load");
        assert_eq!(old.filters.len(), 1);
    }

    #[test]
    fn apply_to_and_patch_are_required() {
        assert_eq!(
            one(json!({"patch": {"operation": "ADD", "value": {}}})),
            vec!["spec.configPatches[0].applyTo"]
        );
        assert_eq!(
            one(json!({"applyTo": "CLUSTER"})),
            vec!["spec.configPatches[0].patch"]
        );
        assert_eq!(
            one(json!({"applyTo": "CLUSTER", "patch": {"value": {}}})),
            vec!["spec.configPatches[0].patch.operation"]
        );
        assert_eq!(
            one(json!({"applyTo": "CLUSTER", "patch": {"operation": "MERGE"}})),
            vec!["spec.configPatches[0].patch.value"]
        );
        assert_eq!(
            one(json!({"applyTo": "CLUSTER", "patch": {"operation": "REMOVE"}})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn misplaced_replace_is_left_to_the_analyzer() {
        // Istio's webhook accepts this; `istioctl analyze` reports it as IST0152.
        let cluster = json!({"applyTo": "CLUSTER", "patch": {"operation": "REPLACE", "value": {"name": "c"}}});
        assert_eq!(one(cluster), Vec::<String>::new());
    }

    #[test]
    fn match_family_must_fit_apply_to() {
        let route = json!({"applyTo": "HTTP_ROUTE", "match": {"listener": {"portNumber": 80}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(route), vec!["spec.configPatches[0].match"]);
        let cluster = json!({"applyTo": "CLUSTER", "match": {"routeConfiguration": {"name": "80"}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(cluster), vec!["spec.configPatches[0].match"]);
        let listener = json!({"applyTo": "LISTENER", "match": {"cluster": {"name": "c"}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(listener), vec!["spec.configPatches[0].match"]);
        let two = json!({"applyTo": "CLUSTER", "match": {"cluster": {}, "listener": {}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(two), vec!["spec.configPatches[0].match"]);
    }

    #[test]
    fn filter_match_rules() {
        let base = "spec.configPatches[0].match.listener.filterChain.filter";
        let unnamed = json!({"applyTo": "NETWORK_FILTER", "match": {"listener": {"filterChain": {"filter": {}}}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(unnamed), vec![format!("{base}.name")]);
        let sub_on_network = json!({"applyTo": "NETWORK_FILTER", "match": {"listener": {"filterChain": {"filter":
            {"name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "x"}}}}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(sub_on_network), vec![format!("{base}.subFilter")]);
        let sub_not_hcm = json!({"applyTo": "HTTP_FILTER", "match": {"listener": {"filterChain": {"filter":
            {"name": "envoy.filters.network.tcp_proxy", "subFilter": {}}}}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(
            one(sub_not_hcm),
            vec![format!("{base}.name"), format!("{base}.subFilter.name")]
        );
    }

    #[test]
    fn proxy_version_must_compile() {
        let bad = json!({"applyTo": "CLUSTER", "match": {"proxy": {"proxyVersion": "1.(2"}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(
            one(bad),
            vec!["spec.configPatches[0].match.proxy.proxyVersion"]
        );
    }

    #[test]
    fn waypoint_match_needs_waypoint_context() {
        let wrong = json!({"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY", "waypoint": {"portNumber": 80}},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(wrong), vec!["spec.configPatches[0].match.waypoint"]);
        let missing = json!({"applyTo": "HTTP_FILTER", "match": {"context": "WAYPOINT"},
            "patch": {"operation": "REMOVE"}});
        assert_eq!(one(missing), vec!["spec.configPatches[0].match"]);
        let ok = json!({"applyTo": "HTTP_FILTER", "match": {"context": "WAYPOINT",
            "waypoint": {"portNumber": 80, "filter": {"name": "envoy.filters.http.router"}}},
            "patch": {"operation": "INSERT_BEFORE", "value": lua()}});
        assert_eq!(one(ok), Vec::<String>::new());
    }

    #[test]
    fn selector_and_target_refs() {
        let both = json!({"workloadSelector": {"labels": {"app": "a"}},
            "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]});
        assert_eq!(paths(both), vec!["spec"]);
        let bad_ref =
            json!({"targetRefs": [{"kind": "Gateway", "name": "", "namespace": "other"}]});
        assert_eq!(
            paths(bad_ref),
            vec!["spec.targetRefs[0].name", "spec.targetRefs[0].namespace"]
        );
        let wild = json!({"workloadSelector": {"labels": {"app": "*"}}});
        assert_eq!(paths(wild), vec!["spec.workloadSelector.labels[app]"]);
    }
}
