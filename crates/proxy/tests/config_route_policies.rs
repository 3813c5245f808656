//! Route policies from protos: what is accepted and how, and rejections that
//! name the route.

use weft_proxy::config::route::{Action, RouteTable};
use weft_xds::proto;

fn table(route: proto::Route) -> Result<RouteTable, String> {
    RouteTable::from_proto(
        "80",
        proto::RouteConfig {
            name: "80".into(),
            virtual_hosts: vec![proto::VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes: vec![route],
            }],
            passthrough: 0,
        },
    )
}

fn forwarding(name: &str) -> proto::Route {
    proto::Route {
        name: name.into(),
        action: Some(proto::route::Action::Forward(proto::WeightedClusters {
            clusters: vec![proto::WeightedCluster {
                cluster: "c".into(),
                weight: 1,
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

#[test]
fn policies_decode_into_precomputed_values() {
    let mut r = forwarding("r");
    r.retry = Some(proto::RetryPolicy {
        attempts: 3,
        retry_on: vec!["gateway-error".into(), "retriable-status-codes".into()],
        retriable_status_codes: vec![418],
        ..Default::default()
    });
    r.fault = Some(proto::Fault {
        delay: None,
        abort: Some(proto::FaultAbort {
            error: Some(proto::fault_abort::Error::HttpStatus(503)),
            percentage: 0.5,
        }),
    });
    r.cors = Some(proto::CorsPolicy {
        allow_methods: vec!["GET".into(), "PUT".into()],
        ..Default::default()
    });
    let t = table(r).expect("valid");
    let route = &t.virtual_hosts[0].routes[0];
    let retry = route.retry.as_ref().expect("retry");
    assert_eq!(retry.attempts, 3);
    assert_eq!(retry.retriable_status_codes, [418]);
    let abort = route
        .fault
        .as_ref()
        .and_then(|f| f.abort.as_ref())
        .expect("abort");
    assert_eq!(abort.percent.per_million(), 5_000);
    let cors = route.cors.as_ref().expect("cors");
    assert_eq!(
        cors.allow_methods.as_ref().map(|v| v.as_bytes()),
        Some(&b"GET,PUT"[..])
    );
    assert!(matches!(route.action, Action::Forward(_)));
}

/// Breaks one field of a route.
type Edit = Box<dyn Fn(&mut proto::Route)>;

#[test]
fn invalid_policies_reject_the_update_naming_the_route() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "retriable-headers",
            Box::new(|r| {
                r.retry = Some(proto::RetryPolicy {
                    retry_on: vec!["retriable-headers".into()],
                    ..Default::default()
                })
            }),
        ),
        (
            "percentage",
            Box::new(|r| {
                r.mirrors = vec![proto::Mirror {
                    cluster: "m".into(),
                    percentage: 150.0,
                    shadow_host_suffix: false,
                }]
            }),
        ),
        (
            "http_status",
            Box::new(|r| {
                r.fault = Some(proto::Fault {
                    delay: None,
                    abort: Some(proto::FaultAbort {
                        error: Some(proto::fault_abort::Error::HttpStatus(700)),
                        percentage: 100.0,
                    }),
                })
            }),
        ),
        (
            "invalid regex",
            Box::new(|r| {
                r.rewrite = Some(proto::Rewrite {
                    uri_regex: Some(proto::RegexRewrite {
                        pattern: "(".into(),
                        substitution: "x".into(),
                    }),
                    ..Default::default()
                })
            }),
        ),
        (
            "names group 2",
            Box::new(|r| {
                r.rewrite = Some(proto::Rewrite {
                    uri_regex: Some(proto::RegexRewrite {
                        pattern: "/(a)".into(),
                        substitution: r"/\2".into(),
                    }),
                    ..Default::default()
                })
            }),
        ),
        (
            "invalid header name",
            Box::new(|r| {
                r.request_headers = Some(proto::HeaderOps {
                    set: vec![proto::HeaderValue {
                        name: "bad name".into(),
                        value: "v".into(),
                    }],
                    ..Default::default()
                })
            }),
        ),
        (
            "exclusive",
            Box::new(|r| {
                r.rewrite = Some(proto::Rewrite {
                    uri: "/x".into(),
                    uri_regex: Some(proto::RegexRewrite {
                        pattern: "/a".into(),
                        substitution: "/b".into(),
                    }),
                    ..Default::default()
                })
            }),
        ),
    ];
    for (want, edit) in cases {
        let mut r = forwarding("bad-route");
        edit(&mut r);
        let err = table(r).expect_err(want);
        assert!(
            err.contains("route bad-route") && err.contains(want),
            "{want}: {err}"
        );
    }
}
