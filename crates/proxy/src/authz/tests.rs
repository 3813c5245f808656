//! The engine against Istio's semantics: every source, operation and `when`
//! field, evaluation order, empty policies, TCP rules, dry run.

use std::net::SocketAddr;

use ::http::HeaderMap;
use serde_json::json;
use weft_xds::proto::{self, AuthzAction};

use super::*;
use crate::authn::VerifiedJwt;

fn policy(name: &str, action: AuthzAction, rules: Vec<proto::AuthzRule>) -> proto::AuthzPolicy {
    proto::AuthzPolicy {
        name: name.into(),
        action: action as i32,
        rules,
        ..Default::default()
    }
}

fn engine(policies: Vec<proto::AuthzPolicy>) -> Authorization {
    Authorization::from_proto(&proto::Authorization {
        policies,
        trust_domain: "cluster.local".into(),
    })
    .expect("valid policies")
}

fn from(s: proto::AuthzSource) -> proto::AuthzRule {
    proto::AuthzRule {
        from: vec![s],
        ..Default::default()
    }
}

fn to(o: proto::AuthzOperation) -> proto::AuthzRule {
    proto::AuthzRule {
        to: vec![o],
        ..Default::default()
    }
}

fn when(key: &str, values: &[&str], not_values: &[&str]) -> proto::AuthzRule {
    proto::AuthzRule {
        when: vec![proto::AuthzCondition {
            key: key.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            not_values: not_values.iter().map(|s| s.to_string()).collect(),
        }],
        ..Default::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A request with these parts; `peer` is the mTLS principal.
struct Req {
    method: &'static str,
    path: &'static str,
    host: &'static str,
    headers: HeaderMap,
    peer: Option<&'static str>,
    source: &'static str,
    port: u16,
    jwt: Option<VerifiedJwt>,
    http: bool,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            method: "GET",
            path: "/",
            host: "app.shop:8080",
            headers: HeaderMap::new(),
            peer: None,
            source: "10.1.2.3",
            port: 8080,
            jwt: None,
            http: true,
        }
    }
}

impl Req {
    fn attrs(&self) -> Attributes<'_> {
        Attributes {
            peer_principal: self.peer,
            source: self.source.parse().ok(),
            destination: Some(SocketAddr::from(([10, 0, 0, 9], self.port))),
            port: self.port,
            sni: None,
            http: self.http.then_some(HttpAttributes {
                method: self.method,
                path: self.path,
                host: self.host,
                headers: &self.headers,
                jwt: self.jwt.as_ref(),
            }),
        }
    }

    fn allowed(&self, e: &Authorization) -> bool {
        e.check(&self.attrs()).is_ok()
    }
}

fn jwt(v: serde_json::Value) -> VerifiedJwt {
    let serde_json::Value::Object(map) = v else {
        panic!("object")
    };
    VerifiedJwt::new(map, std::sync::Arc::from(Vec::<Box<str>>::new()))
}

fn allow(rule: proto::AuthzRule) -> Authorization {
    engine(vec![policy("ns/allow", AuthzAction::Allow, vec![rule])])
}

#[test]
fn empty_allow_denies_all_empty_rule_allows_all() {
    let deny_all = engine(vec![policy("ns/deny-all", AuthzAction::Allow, vec![])]);
    assert!(!Req::default().allowed(&deny_all));
    let allow_all = allow(proto::AuthzRule::default());
    assert!(Req::default().allowed(&allow_all));
    // DENY without rules never matches: the request falls through to "no ALLOW".
    let deny_none = engine(vec![policy("ns/deny", AuthzAction::Deny, vec![])]);
    assert!(Req::default().allowed(&deny_none));
    // No policies at all: allowed.
    assert!(Req::default().allowed(&engine(vec![])));
}

#[test]
fn deny_wins_over_allow_and_allow_list_is_exclusive() {
    let e = engine(vec![
        policy(
            "ns/allow-all",
            AuthzAction::Allow,
            vec![proto::AuthzRule::default()],
        ),
        policy(
            "ns/deny-admin",
            AuthzAction::Deny,
            vec![to(proto::AuthzOperation {
                paths: strings(&["/admin*"]),
                ..Default::default()
            })],
        ),
    ]);
    assert!(Req::default().allowed(&e));
    let admin = Req {
        path: "/admin/users",
        ..Default::default()
    };
    assert_eq!(
        e.check(&admin.attrs()),
        Err(Denied {
            policy: Some("ns/deny-admin".into())
        })
    );
    // With an ALLOW policy present, what it does not match is denied.
    let only_get = allow(to(proto::AuthzOperation {
        methods: strings(&["GET"]),
        ..Default::default()
    }));
    assert!(Req::default().allowed(&only_get));
    let post = Req {
        method: "POST",
        ..Default::default()
    };
    assert_eq!(only_get.check(&post.attrs()), Err(Denied { policy: None }));
}

#[test]
fn operation_fields() {
    let op = |o: proto::AuthzOperation| allow(to(o));
    let hosts = op(proto::AuthzOperation {
        hosts: strings(&["APP.shop", "*.example.com"]),
        ..Default::default()
    });
    assert!(
        Req::default().allowed(&hosts),
        "host without port, case-insensitive"
    );
    assert!(
        Req {
            host: "www.EXAMPLE.com",
            ..Default::default()
        }
        .allowed(&hosts)
    );
    assert!(
        !Req {
            host: "other:8080",
            ..Default::default()
        }
        .allowed(&hosts)
    );
    let not_hosts = op(proto::AuthzOperation {
        not_hosts: strings(&["evil.com"]),
        ..Default::default()
    });
    assert!(
        !Req {
            host: "EVIL.com",
            ..Default::default()
        }
        .allowed(&not_hosts)
    );

    let ports = op(proto::AuthzOperation {
        ports: strings(&["8080"]),
        ..Default::default()
    });
    assert!(Req::default().allowed(&ports));
    assert!(
        !Req {
            port: 9090,
            ..Default::default()
        }
        .allowed(&ports)
    );
    let not_ports = op(proto::AuthzOperation {
        not_ports: strings(&["8080"]),
        ..Default::default()
    });
    assert!(!Req::default().allowed(&not_ports));

    let methods = op(proto::AuthzOperation {
        methods: strings(&["GET", "HEAD"]),
        not_methods: strings(&["HEAD"]),
        ..Default::default()
    });
    assert!(Req::default().allowed(&methods));
    assert!(
        !Req {
            method: "HEAD",
            ..Default::default()
        }
        .allowed(&methods)
    );
    assert!(
        !Req {
            method: "DELETE",
            ..Default::default()
        }
        .allowed(&methods)
    );

    let paths = op(proto::AuthzOperation {
        paths: strings(&["/api/{*}/items", "/static/{**}", "/exact", "*.png"]),
        not_paths: strings(&["/static/private/{**}"]),
        ..Default::default()
    });
    for (path, ok) in [
        ("/api/v1/items", true),
        ("/api/v1/v2/items", false),
        ("/static/css/a.css", true),
        ("/static/private/key", false),
        ("/exact", true),
        ("/exact/more", false),
        ("/img/logo.png", true),
        ("/other", false),
    ] {
        assert_eq!(
            Req {
                path,
                ..Default::default()
            }
            .allowed(&paths),
            ok,
            "{path}"
        );
    }
}

#[test]
fn source_fields() {
    let src = |s: proto::AuthzSource| allow(from(s));
    let principals = src(proto::AuthzSource {
        principals: strings(&["cluster.local/ns/web/sa/*"]),
        not_principals: strings(&["cluster.local/ns/web/sa/intruder"]),
        ..Default::default()
    });
    assert!(
        Req {
            peer: Some("cluster.local/ns/web/sa/frontend"),
            ..Default::default()
        }
        .allowed(&principals)
    );
    assert!(
        !Req {
            peer: Some("cluster.local/ns/web/sa/intruder"),
            ..Default::default()
        }
        .allowed(&principals)
    );
    assert!(
        !Req::default().allowed(&principals),
        "no mTLS, no principal"
    );
    let any_peer = src(proto::AuthzSource {
        principals: strings(&["*"]),
        ..Default::default()
    });
    assert!(!Req::default().allowed(&any_peer));

    let namespaces = src(proto::AuthzSource {
        namespaces: strings(&["web", "team-*"]),
        not_namespaces: strings(&["team-x"]),
        ..Default::default()
    });
    assert!(
        Req {
            peer: Some("td/ns/web/sa/a"),
            ..Default::default()
        }
        .allowed(&namespaces)
    );
    assert!(
        Req {
            peer: Some("td/ns/team-a/sa/a"),
            ..Default::default()
        }
        .allowed(&namespaces)
    );
    assert!(
        !Req {
            peer: Some("td/ns/team-x/sa/a"),
            ..Default::default()
        }
        .allowed(&namespaces)
    );
    assert!(
        !Req {
            peer: Some("td/ns/other/sa/a"),
            ..Default::default()
        }
        .allowed(&namespaces)
    );

    let accounts = src(proto::AuthzSource {
        service_account_principals: strings(&["cluster.local/ns/web/sa/frontend"]),
        ..Default::default()
    });
    assert!(
        Req {
            peer: Some("cluster.local/ns/web/sa/frontend"),
            ..Default::default()
        }
        .allowed(&accounts)
    );
    assert!(
        !Req {
            peer: Some("cluster.local/ns/web/sa/frontendx"),
            ..Default::default()
        }
        .allowed(&accounts)
    );

    let blocks = src(proto::AuthzSource {
        ip_blocks: strings(&["10.0.0.0/8"]),
        not_ip_blocks: strings(&["10.9.0.0/16"]),
        ..Default::default()
    });
    assert!(Req::default().allowed(&blocks));
    assert!(
        !Req {
            source: "10.9.1.1",
            ..Default::default()
        }
        .allowed(&blocks)
    );
    assert!(
        !Req {
            source: "192.168.0.1",
            ..Default::default()
        }
        .allowed(&blocks)
    );
    let remote = src(proto::AuthzSource {
        remote_ip_blocks: strings(&["192.168.0.0/16"]),
        ..Default::default()
    });
    assert!(
        Req {
            source: "192.168.3.4",
            ..Default::default()
        }
        .allowed(&remote)
    );
    assert!(!Req::default().allowed(&remote));

    let requested = src(proto::AuthzSource {
        request_principals: strings(&["*"]),
        ..Default::default()
    });
    assert!(!Req::default().allowed(&requested), "no token");
    let token = Req {
        jwt: Some(jwt(json!({"iss": "https://idp", "sub": "alice"}))),
        ..Default::default()
    };
    assert!(token.allowed(&requested));
    let alice = src(proto::AuthzSource {
        request_principals: strings(&["https://idp/alice"]),
        not_request_principals: strings(&["https://idp/bob"]),
        ..Default::default()
    });
    assert!(token.allowed(&alice));

    // Fields of one source AND; sources of one rule OR.
    let both = src(proto::AuthzSource {
        ip_blocks: strings(&["10.0.0.0/8"]),
        namespaces: strings(&["web"]),
        ..Default::default()
    });
    assert!(!Req::default().allowed(&both));
    assert!(
        Req {
            peer: Some("td/ns/web/sa/a"),
            ..Default::default()
        }
        .allowed(&both)
    );
}

#[test]
fn when_keys() {
    let mut headers = HeaderMap::new();
    headers.insert("x-token", "abc-123".parse().expect("value"));
    headers.append("x-multi", "one".parse().expect("value"));
    headers.append("x-multi", "two".parse().expect("value"));
    let token = jwt(
        json!({"iss": "https://idp", "sub": "alice", "aud": ["a", "b"], "azp": "web",
        "groups": ["dev", "admin"], "org": {"team": "blue"}, "scope": "read write"}),
    );
    let req = Req {
        headers,
        peer: Some("cluster.local/ns/web/sa/frontend"),
        jwt: Some(token),
        ..Default::default()
    };
    let cases: &[(&str, &[&str], &[&str], bool)] = &[
        ("request.headers[x-token]", &["abc-*"], &[], true),
        ("request.headers[X-Token]", &["*-999"], &[], false),
        ("request.headers[x-multi]", &["two"], &[], true),
        ("request.headers[x-absent]", &["*"], &[], false),
        ("request.headers[x-absent]", &[], &["x"], true),
        ("source.ip", &["10.1.0.0/16"], &[], true),
        ("source.ip", &[], &["10.1.2.3"], false),
        ("remote.ip", &["10.1.2.3"], &[], true),
        ("source.namespace", &["web"], &[], true),
        (
            "source.principal",
            &["cluster.local/ns/web/sa/frontend"],
            &[],
            true,
        ),
        ("source.principal", &["*/sa/admin"], &[], false),
        ("request.auth.principal", &["https://idp/alice"], &[], true),
        ("request.auth.audiences", &["b"], &[], true),
        ("request.auth.audiences", &["c"], &[], false),
        ("request.auth.presenter", &["web"], &[], true),
        ("request.auth.claims[groups]", &["admin"], &[], true),
        ("request.auth.claims[groups]", &[], &["admin"], false),
        ("request.auth.claims[org][team]", &["blue"], &[], true),
        ("request.auth.claims[org][team]", &["red"], &[], false),
        ("request.auth.claims[scope]", &["write"], &[], true),
        ("destination.ip", &["10.0.0.9"], &[], true),
        ("destination.port", &["8080"], &[], true),
        ("destination.port", &["9090"], &[], false),
        ("connection.sni", &["*"], &[], false),
        ("experimental.envoy.filters.a.b[c]", &["x"], &[], false),
    ];
    for (key, values, not_values, expected) in cases {
        let e = allow(when(key, values, not_values));
        assert_eq!(
            req.allowed(&e),
            *expected,
            "{key} {values:?} {not_values:?}"
        );
    }
    let no_token = Req::default();
    assert!(!no_token.allowed(&allow(when("request.auth.claims[groups]", &["admin"], &[]))));
    // Bad keys and values are config errors (NACK).
    for (key, values) in [
        ("request.nonsense", "x"),
        ("source.ip", "not-an-ip"),
        ("destination.port", "http"),
    ] {
        let bad = Authorization::from_proto(&proto::Authorization {
            policies: vec![policy(
                "ns/bad",
                AuthzAction::Allow,
                vec![when(key, &[values], &[])],
            )],
            ..Default::default()
        });
        let err = bad.expect_err(key);
        assert!(
            err.contains("policies[0]") && err.contains("when[0]"),
            "{err}"
        );
    }
}

#[test]
fn tcp_http_only_fields() {
    let tcp = Req {
        http: false,
        ..Default::default()
    };
    let methods = proto::AuthzOperation {
        methods: strings(&["GET"]),
        ..Default::default()
    };
    // ALLOW with an HTTP-only field never matches on TCP ...
    assert!(!tcp.allowed(&allow(to(methods.clone()))));
    // ... a DENY with one matches (the field is skipped) ...
    let deny = engine(vec![policy(
        "ns/deny-get",
        AuthzAction::Deny,
        vec![to(methods.clone())],
    )]);
    assert!(!tcp.allowed(&deny));
    assert!(
        Req {
            method: "POST",
            ..Default::default()
        }
        .allowed(&deny)
    );
    // ... but its other fields still apply.
    let deny_port = engine(vec![policy(
        "ns/deny-get-9090",
        AuthzAction::Deny,
        vec![to(proto::AuthzOperation {
            ports: strings(&["9090"]),
            ..methods
        })],
    )]);
    assert!(tcp.allowed(&deny_port));
    // Fields TCP has still work for ALLOW.
    let by_ip = allow(from(proto::AuthzSource {
        ip_blocks: strings(&["10.0.0.0/8"]),
        ..Default::default()
    }));
    assert!(tcp.allowed(&by_ip));
    assert!(
        !Req {
            http: false,
            source: "8.8.8.8",
            ..Default::default()
        }
        .allowed(&by_ip)
    );
    let claims = engine(vec![policy(
        "ns/deny-claim",
        AuthzAction::Deny,
        vec![when("request.auth.claims[group]", &["x"], &[])],
    )]);
    assert!(!tcp.allowed(&claims));
}

#[test]
fn dry_run_and_audit_never_deny() {
    let mut shadow = policy(
        "ns/shadow-deny",
        AuthzAction::Deny,
        vec![proto::AuthzRule::default()],
    );
    shadow.dry_run = true;
    let mut shadow_allow = policy("ns/shadow-allow", AuthzAction::Allow, vec![]);
    shadow_allow.dry_run = true;
    let audit = policy(
        "ns/audit",
        AuthzAction::Audit,
        vec![proto::AuthzRule::default()],
    );
    let e = engine(vec![shadow, shadow_allow, audit]);
    assert!(
        Req::default().allowed(&e),
        "shadow policies are not enforced"
    );
    // A dry-run ALLOW does not turn on default-deny either.
    let mut only_shadow_allow = policy("ns/s", AuthzAction::Allow, vec![]);
    only_shadow_allow.dry_run = true;
    assert!(Req::default().allowed(&engine(vec![only_shadow_allow])));
}

#[test]
fn custom_matching_and_fail_closed() {
    let mut broken = policy(
        "ns/ext",
        AuthzAction::Custom,
        vec![to(proto::AuthzOperation {
            paths: strings(&["/secure*"]),
            ..Default::default()
        })],
    );
    broken.provider_error = "envoyExtAuthzGrpc is not supported yet".into();
    let e = engine(vec![broken]);
    assert!(e.has_custom());
    let secure = Req {
        path: "/secure/x",
        ..Default::default()
    };
    let matched = e.custom_match(&secure.attrs()).expect("CUSTOM matches");
    assert!(matched.ext_authz.is_none() && matched.provider_error.is_some());
    assert!(e.custom_match(&Req::default().attrs()).is_none());
    // CUSTOM policies do not count as ALLOW policies.
    assert!(Req::default().allowed(&e));
    // A CUSTOM policy needs a provider or the reason it has none.
    let mut bad = policy("ns/ext", AuthzAction::Custom, vec![]);
    bad.ext_authz_http = Some(proto::ExtAuthzHttp {
        host: "authz".into(),
        port: 0,
        ..Default::default()
    });
    assert!(
        Authorization::from_proto(&proto::Authorization {
            policies: vec![bad],
            ..Default::default()
        })
        .is_err()
    );
}
