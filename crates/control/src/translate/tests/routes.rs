//! HTTP route features: mirrors, CORS, headers, rewrites, redirects and
//! matches, as they reach the proto.

use weft_xds::proto::{DerivePort, HeaderValue, UnmatchedPreflights, string_match};

use super::*;

pub(super) const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local, mirror.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
"#;

pub(super) const WEB: &str = "web.shop.svc.cluster.local:80";

pub(super) fn web_routes(vs: &str) -> Vec<Route> {
    let yaml = format!("{SERVICES}---\n{vs}");
    routes_of(&route_configs(&yaml, &proxy("shop", &[])), "80", WEB)
}

const MIRRORS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    route: [{destination: {host: web}}]
    mirror: {host: mirror, subset: v2}
    mirrorPercentage: {value: 25}
  - match: [{uri: {prefix: /deprecated}}]
    route: [{destination: {host: web}}]
    mirror: {host: mirror}
    mirrorPercent: 40
  - route: [{destination: {host: web}}]
    mirrors:
    - destination: {host: mirror, port: {number: 80}}
    - destination: {host: web, subset: shadow}
      percentage: {value: 5}
"#;

#[test]
fn mirrors_name_clusters_like_destinations() {
    let routes = web_routes(MIRRORS);
    let old = &routes[0].mirrors;
    assert_eq!(old.len(), 1);
    assert_eq!(
        old[0].cluster,
        "outbound|80|v2|mirror.shop.svc.cluster.local"
    );
    assert_eq!(old[0].percentage, 25.0);
    assert!(!old[0].shadow_host_suffix);
    assert_eq!(routes[1].mirrors[0].percentage, 40.0);
    let list: Vec<(&str, f64)> = routes[2]
        .mirrors
        .iter()
        .map(|m| (m.cluster.as_str(), m.percentage))
        .collect();
    assert_eq!(
        list,
        [
            ("outbound|80||mirror.shop.svc.cluster.local", 100.0),
            ("outbound|80|shadow|web.shop.svc.cluster.local", 5.0)
        ]
    );

    let yaml = format!("{SERVICES}---\n{MIRRORS}");
    let options = TranslateOptions {
        mirror_shadow_suffix: true,
    };
    let snap = snapshot(&yaml, MeshConfig::istio_default(), options);
    let routes = routes_of(&decode_route_configs(&snap, &proxy("shop", &[])), "80", WEB);
    assert!(
        routes
            .iter()
            .flat_map(|r| &r.mirrors)
            .all(|m| m.shadow_host_suffix)
    );
}

#[test]
fn cors_headers_and_rewrites() {
    let routes = web_routes(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2, authority: api.internal}
    headers:
      request:
        set: {x-z: "1", x-a: "2"}
        add: {x-trace: "on"}
        remove: [X-Secret, x-b]
      response:
        remove: [server]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*\\.b\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route:
    - destination: {host: web, subset: v1}
      weight: 90
      headers:
        request: {set: {x-dest: v1}}
        response: {add: {x-served-by: v1}}
    - destination: {host: web, subset: v2}
      weight: 10
  - match: [{uri: {prefix: /legacy}}]
    rewrite: {uriRegexRewrite: {match: "^/legacy/(.*)$", rewrite: "/\\1"}}
    corsPolicy: {allowOrigin: ["*"]}
    headers:
      request: {set: {host: moved.shop}}
    route: [{destination: {host: web}}]
"#,
    );
    let api = &routes[0];
    let rewrite = api.rewrite.clone().expect("rewrite");
    assert_eq!(
        (rewrite.uri.as_str(), rewrite.authority.as_str()),
        ("/v2", "api.internal")
    );
    let request = api.request_headers.clone().expect("request ops");
    let names = |v: &[HeaderValue]| v.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    // Sorted by name whatever the YAML order, so hashes stay stable.
    assert_eq!(names(&request.set), ["x-a", "x-z"]);
    assert_eq!(names(&request.add), ["x-trace"]);
    assert_eq!(request.remove, ["x-b", "x-secret"]);
    assert_eq!(
        api.response_headers.clone().expect("response ops").remove,
        ["server"]
    );
    let Some(Action::Forward(forward)) = &api.action else {
        panic!("expected a forward");
    };
    let v1 = &forward.clusters[0];
    assert_eq!(v1.weight, 90);
    assert_eq!(
        names(&v1.request_headers.clone().expect("dest request ops").set),
        ["x-dest"]
    );
    assert_eq!(
        names(&v1.response_headers.clone().expect("dest response ops").add),
        ["x-served-by"]
    );
    assert_eq!(forward.clusters[1].request_headers, None);

    let cors = api.cors.clone().expect("cors");
    assert_eq!(
        cors.allow_origins
            .iter()
            .map(|m| m.kind.clone())
            .collect::<Vec<_>>(),
        [
            Some(string_match::Kind::Exact("https://a.example".into())),
            Some(string_match::Kind::Regex("https://.*\\.b\\.example".into()))
        ]
    );
    assert_eq!(cors.allow_methods, ["GET", "POST"]);
    assert_eq!(cors.allow_headers, ["x-custom"]);
    assert_eq!(cors.expose_headers, ["x-exposed"]);
    assert_eq!(cors.max_age.map(|d| d.seconds), Some(86400));
    assert!(cors.allow_credentials);
    assert_eq!(
        cors.unmatched_preflights,
        UnmatchedPreflights::Ignore as i32
    );

    let legacy = &routes[1];
    let rewrite = legacy.rewrite.clone().expect("rewrite");
    let regex = rewrite.uri_regex.expect("regex rewrite");
    assert_eq!(
        (regex.pattern.as_str(), regex.substitution.as_str()),
        ("^/legacy/(.*)$", "/\\1")
    );
    // A `host` header set is Istio's host rewrite.
    assert_eq!(rewrite.authority, "moved.shop");
    assert!(
        legacy
            .request_headers
            .clone()
            .is_none_or(|h| h.set.is_empty())
    );
    let cors = legacy.cors.clone().expect("cors");
    assert_eq!(
        cors.allow_origins[0].kind,
        Some(string_match::Kind::Exact("*".into()))
    );
    assert_eq!(
        cors.unmatched_preflights,
        UnmatchedPreflights::Forward as i32
    );
}

#[test]
fn redirects_leave_port_derivation_to_the_proxy() {
    let routes = web_routes(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /a}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {prefix: /b}}]
    redirect: {uri: /new, derivePort: FROM_REQUEST_PORT, redirectCode: 307}
  - match: [{uri: {prefix: /c}}]
    redirect: {authority: other, port: 8443}
"#,
    );
    let redirect = |i: usize| match &routes[i].action {
        Some(Action::Redirect(r)) => r.clone(),
        other => panic!("expected a redirect, got {other:?}"),
    };
    let a = redirect(0);
    assert_eq!(
        (a.scheme.as_str(), a.port, a.code, a.derive_port),
        ("https", 0, 301, DerivePort::FromProtocolDefault as i32)
    );
    let b = redirect(1);
    assert_eq!(
        (b.uri.as_str(), b.code, b.derive_port),
        ("/new", 307, DerivePort::FromRequestPort as i32)
    );
    let c = redirect(2);
    assert_eq!(
        (c.authority.as_str(), c.port, c.derive_port),
        ("other", 8443, DerivePort::Unspecified as i32)
    );
}

#[test]
fn matches_carry_every_condition_and_drop_what_does_not_apply() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match:
    - uri: {regex: "/r/[0-9]+"}
      method: {exact: GET}
      scheme: {exact: https}
      authority: {prefix: web}
      headers: {x-present: {}, X-Version: {exact: v2}}
      withoutHeaders: {x-debug: {}}
      queryParams: {page: {regex: "[0-9]+"}}
      ignoreUriCase: true
      port: 80
    route: [{destination: {host: web}}]
  - match: [{gateways: [ingress], uri: {prefix: /gw}}]
    route: [{destination: {host: web}}]
  - match: [{sourceNamespace: other, uri: {prefix: /ns}}, {sourceLabels: {app: canary}, uri: {prefix: /canary}}, {uri: {prefix: /all}}]
    route: [{destination: {host: web}}]
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: web}}]
"#;
    let routes = web_routes(vs);
    // The gateway-only rule and the canary-only rule are gone.
    assert_eq!(
        routes.iter().map(|r| r.origin.as_str()).collect::<Vec<_>>(),
        ["shop/web#0", "shop/web#2"]
    );
    let m = &routes[0].matches[0];
    assert_eq!(
        m.uri.clone().and_then(|u| u.kind),
        Some(string_match::Kind::Regex("/r/[0-9]+".into()))
    );
    assert!(m.method.is_some() && m.scheme.is_some() && m.authority.is_some());
    let headers: Vec<(&str, bool)> = m
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.is_some()))
        .collect();
    // `{}` is presence only: no value to compare.
    assert_eq!(headers, [("x-present", false), ("x-version", true)]);
    assert_eq!(m.without_headers[0].name, "x-debug");
    assert!(m.without_headers[0].value.is_none());
    assert_eq!(m.query_params[0].name, "page");
    assert!(m.ignore_uri_case);
    assert_eq!(m.port, 80);
    // Of three blocks, only the one for every client stays.
    assert_eq!(routes[1].matches.len(), 1);
    assert_eq!(
        routes[1].matches[0].uri.clone().and_then(|u| u.kind),
        Some(string_match::Kind::Prefix("/all".into()))
    );

    let yaml = format!("{SERVICES}---\n{vs}");
    let canary = route_configs(&yaml, &proxy("other", &[("app", "canary")]));
    let routes = routes_of(&canary, "80", WEB);
    assert_eq!(
        routes.iter().map(|r| r.origin.as_str()).collect::<Vec<_>>(),
        ["shop/web#0", "shop/web#2", "shop/web#3"]
    );
    assert_eq!(routes[1].matches.len(), 3);
}
