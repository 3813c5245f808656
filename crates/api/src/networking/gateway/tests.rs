use serde_json::json;

use super::*;

fn check(spec: serde_json::Value) -> Vec<(String, String)> {
    let gw: Gateway = serde_json::from_value(spec).expect("decodes");
    let ctx = Context {
        namespace: "default".into(),
        root_namespace: "istio-system".into(),
    };
    let mut out = Violations::default();
    gw.validate(&ctx, &FieldPath::root("spec"), &mut out);
    out.items
        .into_iter()
        .map(|v| (v.path.as_str().to_string(), v.message))
        .collect()
}

fn paths(spec: serde_json::Value) -> Vec<String> {
    check(spec).into_iter().map(|(p, _)| p).collect()
}

fn server(extra: serde_json::Value) -> serde_json::Value {
    let mut s = json!({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*.example.com"]});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"selector": {"istio": "ingressgateway"}, "servers": [s]})
}

#[test]
fn istio_doc_example_is_valid() {
    let spec = json!({
        "selector": {"app": "my-gateway-controller"},
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
             "hosts": ["uk.bookinfo.com", "eu.bookinfo.com"], "tls": {"httpsRedirect": true}},
            {"port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
             "hosts": ["uk.bookinfo.com", "eu.bookinfo.com"],
             "tls": {"mode": "SIMPLE", "serverCertificate": "/etc/certs/servercert.pem",
                     "privateKey": "/etc/certs/privatekey.pem"}},
            {"port": {"number": 9443, "name": "https-9443", "protocol": "HTTPS"},
             "hosts": ["bookinfo-namespace/*.bookinfo.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-secret"}},
            {"port": {"number": 9080, "name": "http-wildcard", "protocol": "HTTP"}, "hosts": ["*"]},
            {"port": {"number": 2379, "name": "mongo", "protocol": "MONGO"}, "hosts": ["*"]},
            {"port": {"number": 15443, "name": "tls", "protocol": "TLS"}, "hosts": ["*.local"],
             "tls": {"mode": "AUTO_PASSTHROUGH"}}
        ]
    });
    assert_eq!(check(spec), vec![]);
}

#[test]
fn bookinfo_gateway_is_valid() {
    let spec = json!({
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
    });
    assert_eq!(check(spec), vec![]);
}

#[test]
fn unknown_fields_and_bad_enums_fail_to_decode() {
    assert!(serde_json::from_value::<Gateway>(json!({"servers": [], "bogus": 1})).is_err());
    assert!(
        serde_json::from_value::<Gateway>(
            json!({"servers": [{"port": {"number": 80, "nam": "x"}}]})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<Gateway>(json!({"servers": [{"tls": {"mode": "STRICT"}}]}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<Gateway>(
            json!({"servers": [{"tls": {"minProtocolVersion": "TLSV1_4"}}]})
        )
        .is_err()
    );
    let ok: Gateway =
        serde_json::from_value(json!({"servers": [{"port": {"number": 80, "targetPort": 8080}}]}))
            .expect("deprecated targetPort still loads");
    assert_eq!(
        ok.servers[0].port.as_ref().map(|p| p.target_port),
        Some(8080)
    );
}

#[test]
fn servers_and_hosts_are_required() {
    assert_eq!(paths(json!({"selector": {"a": "b"}})), vec!["spec.servers"]);
    let spec = json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}}]});
    assert_eq!(paths(spec), vec!["spec.servers[0].hosts"]);
}

#[test]
fn hosts_must_be_namespace_slash_fqdn() {
    let spec = json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": ["./foo.example.com", "*/foo.example.com", "prod/*", "10.0.0.1",
                  "foo", "Bad_NS/foo.com", "/foo.com", "ns/*foo.com", "ns/foo.123", "a/b/c.com"]}]});
    assert_eq!(
        paths(spec),
        vec![
            "spec.servers[0].hosts[4]",
            "spec.servers[0].hosts[5]",
            "spec.servers[0].hosts[6]",
            "spec.servers[0].hosts[7]",
            "spec.servers[0].hosts[8]",
            "spec.servers[0].hosts[9]",
        ]
    );
}

#[test]
fn port_rules() {
    let spec = json!({"servers": [{"port": {"number": 0, "protocol": "SMTP", "targetPort": 8080}, "hosts": ["*"]}]});
    assert_eq!(
        paths(spec),
        vec![
            "spec.servers[0].port.protocol",
            "spec.servers[0].port.number",
            "spec.servers[0].port.targetPort",
            "spec.servers[0].port.name",
        ]
    );
    let spec = json!({"servers": [{"hosts": ["*"]}]});
    assert_eq!(paths(spec), vec!["spec.servers[0].port"]);
}

#[test]
fn unix_bind_needs_port_zero() {
    let ok = json!({"servers": [{"port": {"number": 0, "name": "uds", "protocol": "HTTP"},
        "bind": "unix:///var/run/gw.sock", "hosts": ["*"]}]});
    assert_eq!(paths(ok), Vec::<String>::new());
    let bad = json!({"servers": [{"port": {"number": 80, "name": "uds", "protocol": "HTTP"},
        "bind": "unix://relative", "hosts": ["*"]}]});
    assert_eq!(
        paths(bad),
        vec!["spec.servers[0].bind", "spec.servers[0].port.number"]
    );
    let bad_ip = json!({"servers": [{"port": {"number": 80, "name": "h", "protocol": "HTTP"},
        "bind": "1.2.3", "hosts": ["*"]}]});
    assert_eq!(paths(bad_ip), vec!["spec.servers[0].bind"]);
}

#[test]
fn port_and_server_names_unique() {
    let spec = json!({"servers": [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"], "name": "a"},
        {"port": {"number": 81, "name": "http", "protocol": "HTTP"}, "hosts": ["*"], "name": "a"}
    ]});
    assert_eq!(
        paths(spec),
        vec!["spec.servers[1].port.name", "spec.servers[1].name"]
    );
}

#[test]
fn https_needs_tls_and_plain_ports_refuse_it() {
    assert_eq!(paths(server(json!({}))), vec!["spec.servers[0].tls"]);
    let spec = json!({"servers": [{"port": {"number": 27017, "name": "mongo", "protocol": "MONGO"},
        "hosts": ["*"], "tls": {"mode": "SIMPLE", "credentialName": "x"}}]});
    assert_eq!(paths(spec), vec!["spec.servers[0].tls"]);
    let spec = json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": ["*"], "tls": {"mode": "SIMPLE", "credentialName": "x"}}]});
    assert_eq!(paths(spec), vec!["spec.servers[0].tls"]);
}

#[test]
fn https_redirect_is_the_only_tls_setting_for_http() {
    let redirect = json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": ["*"], "tls": {"httpsRedirect": true}}]});
    assert_eq!(paths(redirect), Vec::<String>::new());
    let certs = json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": ["*"], "tls": {"httpsRedirect": true, "serverCertificate": "/c.pem"}}]});
    assert_eq!(paths(certs), vec!["spec.servers[0].tls"]);
    // Istio only warns about a redirect on an HTTPS server, so it is not a violation.
    let on_https =
        server(json!({"tls": {"httpsRedirect": true, "mode": "SIMPLE", "credentialName": "c"}}));
    assert_eq!(paths(on_https), Vec::<String>::new());
}

#[test]
fn tls_certificate_sources() {
    let both =
        server(json!({"tls": {"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]}}));
    assert_eq!(paths(both), vec!["spec.servers[0].tls"]);
    let three = server(json!({"tls": {"mode": "SIMPLE", "credentialNames": ["a", "b", "c"]}}));
    assert_eq!(paths(three), vec!["spec.servers[0].tls.credentialNames"]);
    let missing = server(json!({"tls": {"mode": "SIMPLE"}}));
    assert_eq!(
        paths(missing),
        vec![
            "spec.servers[0].tls.serverCertificate",
            "spec.servers[0].tls.privateKey"
        ]
    );
    let mutual = server(json!({"tls": {"mode": "MUTUAL", "tlsCertificates": [
        {"serverCertificate": "/c.pem", "privateKey": "/k.pem"}, {"serverCertificate": "/c2.pem"}]}}));
    assert_eq!(
        paths(mutual),
        vec![
            "spec.servers[0].tls.caCertificates",
            "spec.servers[0].tls.tlsCertificates[1].privateKey"
        ]
    );
    let ok = server(json!({"tls": {"mode": "MUTUAL", "credentialName": "c"}}));
    assert_eq!(paths(ok), Vec::<String>::new());
}

#[test]
fn istio_mutual_takes_no_certificates() {
    let spec = server(
        json!({"tls": {"mode": "ISTIO_MUTUAL", "serverCertificate": "/c", "credentialName": "x"}}),
    );
    assert_eq!(
        paths(spec),
        vec![
            "spec.servers[0].tls.serverCertificate",
            "spec.servers[0].tls.credentialName"
        ]
    );
}

#[test]
fn tls_versions_and_crl() {
    let spec = server(json!({"tls": {"mode": "SIMPLE", "credentialName": "c",
        "minProtocolVersion": "TLSV1_3", "maxProtocolVersion": "TLSV1_2", "caCrl": "/crl"}}));
    assert_eq!(
        paths(spec),
        vec![
            "spec.servers[0].tls.minProtocolVersion",
            "spec.servers[0].tls.caCrl",
            "spec.servers[0].tls.caCrl",
        ]
    );
}

#[test]
fn passthrough_on_tls_port_is_fine() {
    let spec = json!({"servers": [{"port": {"number": 443, "name": "tls", "protocol": "TLS"},
        "hosts": ["*.example.com"], "tls": {"mode": "PASSTHROUGH"}}]});
    assert_eq!(check(spec), vec![]);
}

#[test]
fn selector_labels() {
    let spec = json!({"selector": {"app": "in*"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]});
    assert_eq!(paths(spec), vec!["spec.selector[app]"]);
}

#[test]
fn protocols_parse_like_istio() {
    assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
    assert_eq!(Protocol::parse("Http"), Some(Protocol::Http));
    assert_eq!(Protocol::parse(""), None);
    assert!(Protocol::Https.is_tls() && Protocol::Https.is_tcp() && !Protocol::Https.is_http());
}
