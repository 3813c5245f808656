//! Which policies reach which sidecar, and what their translation carries.

use std::sync::Arc;

use prost::Message;
use weft_api::mesh::MeshConfig;
use weft_xds::node::ProxyId;
use weft_xds::proto::{AuthzAction, Direction, Listener};
use weft_xds::type_url;

use crate::registry::tests::resources;
use crate::snapshot::PushSnapshot;

/// `app` served at 10.0.0.9 (ports 8080 and 9090) in namespace `shop`, and
/// an ext-authz service in `auth`.
const REGISTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: shop}
spec:
  hosts: [app.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.9, labels: {app: app}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: auth}
spec:
  hosts: [ext-authz.auth.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.50}]
"#;

fn proxy(namespace: &str, labels: &[(&str, &str)]) -> ProxyId {
    ProxyId {
        ip: "10.0.0.9".into(),
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn mesh_with_providers() -> MeshConfig {
    let mut mesh = MeshConfig::istio_default();
    mesh.extension_providers = serde_json::from_value(serde_json::json!([
        {"name": "http-authz", "envoyExtAuthzHttp": {
            "service": "ext-authz.auth.svc.cluster.local", "port": 8000,
            "pathPrefix": "/check", "includeRequestHeadersInCheck": ["X-Ext-Authz"],
            "headersToUpstreamOnAllow": ["x-ext-authz-check-result"],
            "statusOnError": "503", "failOpen": false}},
        {"name": "grpc-authz", "envoyExtAuthzGrpc": {
            "service": "ext-authz.auth.svc.cluster.local", "port": 9000}},
        {"name": "ghost", "envoyExtAuthzHttp": {"service": "nowhere.example.com", "port": 80}}
    ]))
    .expect("providers");
    mesh
}

fn inbound(config: &str, proxy: &ProxyId) -> Vec<Listener> {
    let yaml = format!("{REGISTRY}---\n{config}");
    let snap = PushSnapshot::build(1, &resources(&yaml), Arc::new(mesh_with_providers()), None);
    let all: Vec<Listener> = snap
        .resources(proxy, type_url::LISTENER)
        .iter()
        .map(|r| Listener::decode(r.body.value.as_slice()).expect("listener"))
        .collect();
    for l in all
        .iter()
        .filter(|l| l.direction != Direction::Inbound as i32)
    {
        assert!(
            l.authorization.is_none() && l.authentication.is_none(),
            "{}: security on a non-inbound listener",
            l.name
        );
    }
    all.into_iter()
        .filter(|l| l.direction == Direction::Inbound as i32)
        .collect()
}

fn policy_names(config: &str, proxy: &ProxyId) -> Vec<String> {
    let listeners = inbound(config, proxy);
    assert_eq!(listeners.len(), 2, "both ports are inbound listeners");
    let names: Vec<String> = listeners[0]
        .authorization
        .as_ref()
        .map(|a| a.policies.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        listeners[0].authorization, listeners[1].authorization,
        "every inbound listener carries the same policies"
    );
    names
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: root-selected, namespace: istio-system}
spec:
  selector: {matchLabels: {app: app}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: shop}
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: selected, namespace: shop}
spec:
  selector: {matchLabels: {app: app, version: v1}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-selector, namespace: shop}
spec:
  selector: {matchLabels: {app: other}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-only, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: elsewhere, namespace: other}
spec:
  rules: [{}]
"#;

#[test]
fn attachment_follows_istio() {
    let v1 = proxy("shop", &[("app", "app"), ("version", "v1")]);
    assert_eq!(
        policy_names(POLICIES, &v1),
        [
            "istio-system/mesh-wide",
            "istio-system/root-selected",
            "shop/ns-wide",
            "shop/selected"
        ]
    );
    let v2 = proxy("shop", &[("app", "app"), ("version", "v2")]);
    assert_eq!(
        policy_names(POLICIES, &v2),
        [
            "istio-system/mesh-wide",
            "istio-system/root-selected",
            "shop/ns-wide"
        ]
    );
    // A workload the root selector does not pick gets the mesh-wide one only.
    let other = proxy("shop", &[("app", "x")]);
    assert_eq!(
        policy_names(POLICIES, &other),
        ["istio-system/mesh-wide", "shop/ns-wide"]
    );
}

#[test]
fn no_policies_no_fields() {
    let listeners = inbound("", &proxy("shop", &[("app", "app")]));
    assert_eq!(listeners.len(), 2);
    assert!(
        listeners
            .iter()
            .all(|l| l.authorization.is_none() && l.authentication.is_none())
    );
    // Policies elsewhere do not reach this workload either.
    let listeners = inbound(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: other}\nspec: {}\n",
        &proxy("shop", &[("app", "app")]),
    );
    assert!(listeners.iter().all(|l| l.authorization.is_none()));
}

#[test]
fn rules_translate_with_principals_and_dry_run() {
    let config = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow
  namespace: shop
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/web/sa/frontend"]
        namespaces: ["web*"]
        ipBlocks: ["10.0.0.0/8"]
    - source:
        serviceAccounts: ["web/frontend", "web/admin"]
    to:
    - operation: {methods: [GET], paths: ["/api/{*}/items"], ports: ["8080"]}
    when:
    - {key: "request.auth.claims[groups]", values: [admin]}
"#;
    let listeners = inbound(config, &proxy("shop", &[("app", "app")]));
    let authz = listeners[0].authorization.as_ref().expect("authorization");
    assert_eq!(authz.trust_domain, "cluster.local");
    let p = &authz.policies[0];
    assert_eq!(p.name, "shop/shadow");
    assert!(p.dry_run);
    assert_eq!(p.action, AuthzAction::Deny as i32);
    let source = &p.rules[0].from[0];
    assert_eq!(source.principals, ["cluster.local/ns/web/sa/frontend"]);
    assert!(source.service_account_principals.is_empty());
    assert_eq!(
        p.rules[0].from[1].service_account_principals,
        [
            "cluster.local/ns/web/sa/frontend",
            "cluster.local/ns/web/sa/admin"
        ]
    );
    assert_eq!(source.namespaces, ["web*"]);
    assert_eq!(source.ip_blocks, ["10.0.0.0/8"]);
    let op = &p.rules[0].to[0];
    assert_eq!(op.paths, ["/api/{*}/items"]);
    assert_eq!(op.ports, ["8080"]);
    assert_eq!(p.rules[0].when[0].key, "request.auth.claims[groups]");
}

fn custom(provider: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: ext-{provider}, namespace: shop}}\nspec:\n  action: CUSTOM\n  provider: {{name: {provider}}}\n  rules: [{{to: [{{operation: {{paths: [\"/secure*\"]}}}}]}}]\n"
    )
}

#[test]
fn custom_provider_resolution() {
    let app = proxy("shop", &[("app", "app")]);
    let listeners = inbound(&custom("http-authz"), &app);
    let p = &listeners[0].authorization.as_ref().expect("authz").policies[0];
    assert_eq!(p.action, AuthzAction::Custom as i32);
    assert_eq!(p.provider_error, "");
    let http = p.ext_authz_http.as_ref().expect("resolved provider");
    assert_eq!(http.host, "ext-authz.auth.svc.cluster.local");
    assert_eq!(http.port, 8000);
    assert_eq!(
        http.cluster,
        "outbound|8000||ext-authz.auth.svc.cluster.local"
    );
    assert_eq!(http.path_prefix, "/check");
    assert_eq!(http.status_on_error, 503);
    assert_eq!(http.include_request_headers_in_check, ["x-ext-authz"]);
    assert_eq!(
        http.timeout.as_ref().map(|d| d.seconds),
        Some(600),
        "Istio's default timeout"
    );

    for (provider, error) in [
        ("grpc-authz", "not supported yet"),
        ("missing", "not found in meshConfig"),
        ("ghost", "service \"nowhere.example.com\" not found"),
    ] {
        let listeners = inbound(&custom(provider), &app);
        let p = &listeners[0].authorization.as_ref().expect("authz").policies[0];
        assert!(p.ext_authz_http.is_none(), "{provider}");
        assert!(
            p.provider_error.contains(error),
            "{provider}: {}",
            p.provider_error
        );
    }

    // Two providers on one workload: both CUSTOM policies fail closed.
    let both = format!("{}---\n{}", custom("http-authz"), custom("ghost"));
    let listeners = inbound(&both, &app);
    let policies = &listeners[0].authorization.as_ref().expect("authz").policies;
    assert_eq!(policies.len(), 2);
    assert!(
        policies
            .iter()
            .all(|p| p.provider_error.contains("only one ext_authz provider"))
    );
}

#[test]
fn jwt_rules_merge_from_every_applicable_policy() {
    let config = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh-jwt, namespace: istio-system}
spec:
  jwtRules: [{issuer: "https://mesh.example.com", jwksUri: "https://mesh.example.com/jwks"}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: app-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: app}}
  jwtRules:
  - issuer: "issuer-foo"
    audiences: [foo]
    jwks: '{"keys": []}'
    fromHeaders: [{name: X-Jwt, prefix: "Token "}]
    fromParams: [token]
    forwardOriginalToken: true
    outputPayloadToHeader: X-Payload
    outputClaimToHeaders: [{header: X-Sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: not-mine, namespace: shop}
spec:
  selector: {matchLabels: {app: other}}
  jwtRules: [{issuer: "other"}]
"#;
    let listeners = inbound(config, &proxy("shop", &[("app", "app")]));
    let authn = listeners[0]
        .authentication
        .as_ref()
        .expect("authentication");
    let issuers: Vec<&str> = authn.jwt_rules.iter().map(|r| r.issuer.as_str()).collect();
    assert_eq!(issuers, ["https://mesh.example.com", "issuer-foo"]);
    let rule = &authn.jwt_rules[1];
    assert_eq!(rule.origin, "shop/app-jwt");
    assert_eq!(rule.from_headers[0].name, "x-jwt");
    assert_eq!(rule.from_headers[0].prefix, "Token ");
    assert_eq!(rule.from_params, ["token"]);
    assert!(rule.forward_original_token);
    assert_eq!(rule.output_payload_to_header, "x-payload");
    assert_eq!(rule.output_claim_to_headers[0].header, "x-sub");
    assert_eq!(
        authn.jwt_rules[0].timeout.as_ref().map(|d| d.seconds),
        Some(5)
    );
    assert!(
        listeners[0].authorization.is_none(),
        "RequestAuthentication alone sets no authorization"
    );
}
