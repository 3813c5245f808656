use super::*;
use serde_json::json;

fn decode(v: serde_json::Value) -> AuthorizationPolicy {
    serde_json::from_value(v).expect("test policy decodes")
}

fn violations(ap: &AuthorizationPolicy) -> Vec<(String, String)> {
    let ctx = Context {
        namespace: "default".into(),
        root_namespace: "istio-system".into(),
    };
    let mut out = Violations::default();
    ap.validate(&ctx, &FieldPath::root("spec"), &mut out);
    out.items
        .into_iter()
        .map(|v| (v.path.to_string(), v.message))
        .collect()
}

fn paths(ap: &AuthorizationPolicy) -> Vec<String> {
    violations(ap).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn istio_docs_examples_are_valid() {
    let ap = decode(json!({
        "selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
        "action": "ALLOW",
        "rules": [{
            "from": [
                {"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}},
                {"source": {"namespaces": ["test"]}}
            ],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/info*"]}},
                   {"operation": {"methods": ["POST"], "paths": ["/data"], "ports": ["8080"]}}],
            "when": [{"key": "request.auth.claims[iss]", "values": ["https://accounts.google.com"]},
                     {"key": "request.headers[X-header]", "notValues": ["x*"]},
                     {"key": "source.ip", "values": ["10.1.2.3", "10.0.0.0/8"]},
                     {"key": "destination.port", "values": ["443"]},
                     {"key": "experimental.envoy.filters.a.b[c]", "values": ["v"]}]
        }]
    }));
    assert_eq!(violations(&ap), vec![]);
    assert_eq!(
        ap.rules[0].from[1]
            .source
            .as_ref()
            .map(|s| s.namespaces.len()),
        Some(1)
    );

    let deny_all = decode(json!({"action": "DENY", "rules": [{}]}));
    assert_eq!(violations(&deny_all), vec![]);
    let allow_nothing = decode(json!({}));
    assert_eq!(violations(&allow_nothing), vec![]);
    assert!(allow_nothing.is_namespace_wide());

    let custom = decode(json!({
        "action": "CUSTOM", "provider": {"name": "my-ext-authz"},
        "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]
    }));
    assert_eq!(violations(&custom), vec![]);

    let sa =
        decode(json!({"rules": [{"from": [{"source": {"serviceAccounts": ["baz/sa", "sa"]}}]}]}));
    assert_eq!(violations(&sa), vec![]);

    let templates = decode(
        json!({"rules": [{"to": [{"operation": {"paths": ["/foo/{*}/bar", "/foo/{**}"]}}]}]}),
    );
    assert_eq!(violations(&templates), vec![]);
}

#[test]
fn unknown_fields_and_bad_enums_fail_to_decode() {
    assert!(serde_json::from_value::<AuthorizationPolicy>(json!({"actions": "ALLOW"})).is_err());
    assert!(serde_json::from_value::<AuthorizationPolicy>(json!({"action": "allow"})).is_err());
    assert!(
        serde_json::from_value::<AuthorizationPolicy>(
            json!({"rules": [{"from": [{"source": {"principal": ["x"]}}]}]})
        )
        .is_err()
    );
}

#[test]
fn action_and_provider_rules() {
    let no_provider = decode(json!({"action": "CUSTOM", "rules": [{}]}));
    assert_eq!(paths(&no_provider), vec!["spec.provider"]);
    let empty_name = decode(json!({"action": "CUSTOM", "provider": {}, "rules": [{}]}));
    assert_eq!(paths(&empty_name), vec!["spec.provider.name"]);
    let provider_on_deny =
        decode(json!({"action": "DENY", "provider": {"name": "x"}, "rules": [{}]}));
    assert_eq!(paths(&provider_on_deny), vec!["spec.provider"]);
    let deny_without_rules = decode(json!({"action": "DENY"}));
    assert_eq!(paths(&deny_without_rules), vec!["spec.rules"]);
    let audit_provider = decode(json!({"action": "AUDIT", "provider": {"name": "x"}}));
    assert_eq!(paths(&audit_provider), vec!["spec.provider"]);

    let custom_identity = decode(json!({
        "action": "CUSTOM", "provider": {"name": "x"},
        "rules": [{"from": [{"source": {"principals": ["a"]}}], "when": [{"key": "request.auth.principal", "values": ["a"]}]}]
    }));
    assert_eq!(
        paths(&custom_identity),
        vec![
            "spec.rules[0].from[0].source.principals",
            "spec.rules[0].when[0].key"
        ]
    );

    let too_many = AuthorizationPolicy {
        rules: vec![Rule::default(); 513],
        ..Default::default()
    };
    assert_eq!(paths(&too_many), vec!["spec.rules"]);
}

#[test]
fn selector_and_target_refs() {
    let both = decode(json!({
        "selector": {"matchLabels": {"app": "a"}},
        "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]
    }));
    assert_eq!(paths(&both), vec!["spec"]);
    let wildcard = decode(json!({"selector": {"matchLabels": {"app": "a*"}}}));
    assert_eq!(paths(&wildcard), vec!["spec.selector.matchLabels[app]"]);
    let bad_kind = decode(
        json!({"targetRefs": [{"kind": "Deployment", "group": "apps", "name": "x", "namespace": "other"}]}),
    );
    assert_eq!(
        paths(&bad_kind),
        vec!["spec.targetRefs[0].namespace", "spec.targetRefs[0].kind"]
    );
    let gateway_class = decode(
        json!({"targetRefs": [{"kind": "GatewayClass", "group": "gateway.networking.k8s.io", "name": "istio-waypoint"}]}),
    );
    assert_eq!(paths(&gateway_class), vec!["spec.targetRefs[0].kind"]);
    let ctx = Context {
        namespace: "istio-system".into(),
        root_namespace: "istio-system".into(),
    };
    let mut out = Violations::default();
    gateway_class.validate(&ctx, &FieldPath::root("spec"), &mut out);
    assert!(out.is_empty());
}

#[test]
fn source_rules() {
    let ap = decode(json!({"rules": [{"from": [
        {},
        {"source": {}},
        {"source": {"serviceAccounts": ["ns/sa"], "namespaces": ["ns"]}},
        {"source": {"serviceAccounts": ["ns/*", "a/b/c", ""]}},
        {"source": {"ipBlocks": ["10.0.0.0/33", "1.2.3.4"], "notRemoteIpBlocks": ["nope"]}}
    ]}]}));
    assert_eq!(
        paths(&ap),
        vec![
            "spec.rules[0].from[0].source",
            "spec.rules[0].from[1].source",
            "spec.rules[0].from[2].source",
            "spec.rules[0].from[3].source.serviceAccounts[2]",
            "spec.rules[0].from[3].source.serviceAccounts[0]",
            "spec.rules[0].from[3].source.serviceAccounts[1]",
            "spec.rules[0].from[4].source.ipBlocks[0]",
            "spec.rules[0].from[4].source.notRemoteIpBlocks[0]",
        ]
    );
}

#[test]
fn operation_rules() {
    let ap = decode(json!({"rules": [{"to": [
        {},
        {"operation": {}},
        {"operation": {"ports": ["0", "http", "65535"], "notPorts": ["70000"]}},
        {"operation": {"paths": ["/{**}/x", "/{*}/{name}", "/a/*/{*}", "/{*}/b", "/ok*", "/{name}"]}}
    ]}]}));
    assert_eq!(
        paths(&ap),
        vec![
            "spec.rules[0].to[0].operation",
            "spec.rules[0].to[1].operation",
            "spec.rules[0].to[2].operation.ports[0]",
            "spec.rules[0].to[2].operation.ports[1]",
            "spec.rules[0].to[2].operation.notPorts[0]",
            "spec.rules[0].to[3].operation.paths[0]",
            "spec.rules[0].to[3].operation.paths[1]",
            "spec.rules[0].to[3].operation.paths[2]",
        ]
    );
}

#[test]
fn condition_rules() {
    let ap = decode(json!({"rules": [{"when": [
        {"key": ""},
        {"key": "source.ip"},
        {"key": "request.headers", "values": ["x"]},
        {"key": "request.auth.claims[]", "values": ["x"]},
        {"key": "source.ip", "values": ["not-an-ip"]},
        {"key": "destination.port", "notValues": ["99999"]},
        {"key": "destination.labels[app]", "values": ["x"]},
        {"key": "foo.bar", "values": ["x"]},
        {"key": "source.serviceAccount", "values": ["ns/sa"]},
        {"key": "connection.sni", "values": [""]}
    ]}]}));
    assert_eq!(
        paths(&ap),
        vec![
            "spec.rules[0].when[0].key",
            "spec.rules[0].when[1]",
            "spec.rules[0].when[2].key",
            "spec.rules[0].when[3].key",
            "spec.rules[0].when[4].values[0]",
            "spec.rules[0].when[5].notValues[0]",
            "spec.rules[0].when[6].key",
            "spec.rules[0].when[7].key",
            "spec.rules[0].when[9].values[0]",
        ]
    );
}
