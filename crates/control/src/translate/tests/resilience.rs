//! Retries (Istio's defaults, the mesh default, consistent hashing) and
//! fault injection.

use weft_xds::proto::{RetryPolicy, fault_abort};

use super::routes::{SERVICES, WEB, web_routes};
use super::*;

fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        retry_on: [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ]
        .map(String::from)
        .to_vec(),
        retriable_status_codes: vec![503],
        avoid_previous_hosts: true,
        ..Default::default()
    }
}

const RETRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /none}}]
    route: [{destination: {host: web}}]
    retries: {attempts: 0}
  - match: [{uri: {prefix: /more}}]
    route: [{destination: {host: web}}]
    retries: {attempts: 5, perTryTimeout: 1s, retryRemoteLocalities: true}
  - match: [{uri: {prefix: /codes}}]
    route: [{destination: {host: web}}]
    retries: {attempts: 3, retryOn: "5xx,429,reset,unavailable", retryIgnorePreviousHosts: false, backoff: 50ms}
  - route: [{destination: {host: web}}]
"#;

#[test]
fn retries_follow_istio_defaults() {
    let routes = web_routes(RETRIES);
    assert_eq!(routes.len(), 4);
    // `attempts: 0` turns retries off: no policy at all.
    assert_eq!(routes[0].retry, None);
    // Attempts without retryOn: the default conditions, the given count.
    let more = routes[1].retry.clone().expect("retry policy");
    assert_eq!(more.attempts, 5);
    assert_eq!(more.retry_on, istio_default_retry().retry_on);
    assert_eq!(more.per_try_timeout.map(|d| d.seconds), Some(1));
    assert!(more.avoid_previous_hosts);
    assert!(more.retry_remote_localities);
    // Numeric entries become status codes plus their condition.
    let codes = routes[2].retry.clone().expect("retry policy");
    assert_eq!(
        codes.retry_on,
        ["5xx", "reset", "unavailable", "retriable-status-codes"]
    );
    assert_eq!(codes.retriable_status_codes, [429]);
    assert!(!codes.avoid_previous_hosts);
    assert!(!codes.retry_remote_localities);
    assert_eq!(codes.backoff_base.map(|d| d.nanos), Some(50_000_000));
    // No `retries`: Istio's default policy.
    assert_eq!(routes[3].retry, Some(istio_default_retry()));
}

#[test]
fn default_route_gets_the_default_retry_policy() {
    let routes = routes_of(&route_configs(SERVICES, &proxy("shop", &[])), "80", WEB);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].retry, Some(istio_default_retry()));
}

#[test]
fn mesh_default_retry_policy_replaces_the_built_in_one() {
    let mut mesh = MeshConfig::istio_default();
    mesh.default_http_retry_policy = Some(serde_json::json!({
        "attempts": 4, "retryOn": "gateway-error,502", "perTryTimeout": "3s"
    }));
    let yaml = format!("{SERVICES}---\n{RETRIES}");
    let snap = snapshot(&yaml, mesh, TranslateOptions::default());
    let routes = routes_of(&decode_route_configs(&snap, &proxy("shop", &[])), "80", WEB);
    let policy = routes[3].retry.clone().expect("mesh default policy");
    assert_eq!(policy.attempts, 4);
    assert_eq!(policy.retry_on, ["gateway-error", "retriable-status-codes"]);
    assert_eq!(policy.retriable_status_codes, [502]);
    // The mesh default never sets a per-try timeout.
    assert_eq!(policy.per_try_timeout, None);
    // A rule's own policy still wins.
    assert_eq!(routes[0].retry, None);
}

#[test]
fn faults_drop_timeout_and_retries() {
    let routes = web_routes(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /grpc}}]
    route: [{destination: {host: web}}]
    timeout: 3s
    retries: {attempts: 3}
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 12.5}}
      delay: {fixedDelay: 2s}
  - match: [{uri: {prefix: /http}}]
    route: [{destination: {host: web}}]
    fault:
      abort: {httpStatus: 418}
      delay: {fixedDelay: 100ms, percent: 30}
  - route: [{destination: {host: web}}]
    timeout: 3s
"#,
    );
    let grpc = &routes[0];
    let fault = grpc.fault.expect("fault");
    let abort = fault.abort.expect("abort");
    assert_eq!(abort.error, Some(fault_abort::Error::GrpcStatus(14)));
    assert_eq!(abort.percentage, 12.5);
    let delay = fault.delay.expect("delay");
    assert_eq!(delay.fixed_delay.map(|d| d.seconds), Some(2));
    // No percentage at all: every request.
    assert_eq!(delay.percentage, 100.0);
    assert_eq!((grpc.timeout, grpc.retry.clone()), (None, None));

    let http = routes[1].fault.expect("fault");
    assert_eq!(
        http.abort.expect("abort").error,
        Some(fault_abort::Error::HttpStatus(418))
    );
    assert_eq!(http.delay.expect("delay").percentage, 30.0);
    assert_eq!(routes[1].retry, None);

    // Without a fault, timeout and retries stay.
    assert_eq!(routes[2].timeout.map(|t| t.seconds), Some(3));
    assert!(routes[2].retry.is_some());
}

#[test]
fn consistent_hashing_keeps_retries_on_the_same_host() {
    let routes = web_routes(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - name: sticky
    labels: {v: "1"}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /sticky}}]
    route: [{destination: {host: web, subset: sticky}}]
  - match: [{uri: {prefix: /forced}}]
    route: [{destination: {host: web, subset: sticky}}]
    retries: {attempts: 2, retryIgnorePreviousHosts: true}
  - route: [{destination: {host: web}}]
"#,
    );
    let avoid = |i: usize| routes[i].retry.clone().expect("retry").avoid_previous_hosts;
    assert!(!avoid(0));
    // Asked for explicitly, it stays.
    assert!(avoid(1));
    assert!(avoid(2));
}
