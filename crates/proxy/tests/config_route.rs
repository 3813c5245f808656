//! Route tables built from protos: virtual-host lookup, weights, string
//! matchers, and rejection messages that name the bad resource.

use weft_proxy::config::route::{RouteTable, StringMatcher, WeightedClusters};
use weft_xds::proto;

fn table(vhs: Vec<(&str, Vec<&str>)>) -> RouteTable {
    let rc = proto::RouteConfig {
        name: "80".into(),
        virtual_hosts: vhs
            .into_iter()
            .map(|(n, d)| proto::VirtualHost {
                name: n.into(),
                domains: d.into_iter().map(String::from).collect(),
                routes: vec![],
            })
            .collect(),
        passthrough: 0,
    };
    RouteTable::from_proto("80", rc).expect("valid")
}

#[test]
fn virtual_host_lookup() {
    let t = table(vec![
        (
            "catalog",
            vec![
                "catalog",
                "catalog:9080",
                "Catalog.default.svc.cluster.local",
            ],
        ),
        ("wild", vec!["*.example.com"]),
        ("wilder", vec!["*.b.example.com"]),
    ]);
    let name = |a: &str, h: &str| t.find_virtual_host(a, h).map(|v| v.name.as_str());
    assert_eq!(name("catalog", "catalog"), Some("catalog"));
    assert_eq!(name("CATALOG:9080", "CATALOG"), Some("catalog"));
    assert_eq!(name("catalog:1234", "catalog"), Some("catalog"));
    assert_eq!(
        name(
            "catalog.default.svc.cluster.local",
            "catalog.default.svc.cluster.local"
        ),
        Some("catalog")
    );
    assert_eq!(name("a.example.com", "a.example.com"), Some("wild"));
    assert_eq!(
        name("x.b.example.com:80", "x.b.example.com"),
        Some("wilder")
    );
    assert_eq!(name("example.com", "example.com"), None);
    assert_eq!(name("other", "other"), None);
    let all = table(vec![("all", vec!["*"])]);
    assert_eq!(
        all.find_virtual_host("x", "x").map(|v| v.name.as_str()),
        Some("all")
    );
}

#[test]
fn weights() {
    let one = WeightedClusters::from_proto(vec![proto::WeightedCluster {
        cluster: "a".into(),
        weight: 0,
        ..Default::default()
    }])
    .expect("valid");
    assert_eq!(&**one.pick(), "a");
    let zero = WeightedClusters::from_proto(vec![
        proto::WeightedCluster {
            cluster: "a".into(),
            weight: 0,
            ..Default::default()
        },
        proto::WeightedCluster {
            cluster: "b".into(),
            weight: 0,
            ..Default::default()
        },
    ]);
    assert!(zero.is_err());
    let w = WeightedClusters::from_proto(vec![
        proto::WeightedCluster {
            cluster: "a".into(),
            weight: 0,
            ..Default::default()
        },
        proto::WeightedCluster {
            cluster: "b".into(),
            weight: 5,
            ..Default::default()
        },
    ])
    .expect("valid");
    assert_eq!(w.total, 5);
    assert!((0..100).all(|_| &**w.pick() == "b"));
}

#[test]
fn string_matchers() {
    let p = StringMatcher::Prefix("/Api".into());
    assert!(p.matches("/Api/x", false));
    assert!(!p.matches("/api/x", false));
    assert!(p.matches("/api/x", true));
    assert!(!p.matches("/a", true));
    let e = StringMatcher::Exact("GET".into());
    assert!(e.matches("GET", false) && !e.matches("get", false));
}

#[test]
fn bad_route_is_rejected_with_its_name() {
    let rc = proto::RouteConfig {
        name: "80".into(),
        virtual_hosts: vec![proto::VirtualHost {
            name: "vh".into(),
            domains: vec!["a".into()],
            routes: vec![proto::Route {
                name: "r1".into(),
                matches: vec![proto::RouteMatch {
                    uri: Some(proto::StringMatch {
                        kind: Some(proto::string_match::Kind::Regex("(".into())),
                    }),
                    ..Default::default()
                }],
                action: Some(proto::route::Action::DirectResponse(
                    proto::DirectResponse {
                        status: 200,
                        body: vec![],
                    },
                )),
                ..Default::default()
            }],
        }],
        passthrough: 0,
    };
    let err = RouteTable::from_proto("80", rc).expect_err("bad regex");
    assert!(
        err.contains("virtual host vh: route r1: uri: invalid regex"),
        "{err}"
    );
}
