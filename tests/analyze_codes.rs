//! Each analyzer code the foundation issue requires, triggered by a small config
//! and checked through the real binary with every analyzer on: the code is
//! reported on the right resource, with an origin inside that resource's
//! document.

mod common;

use common::{analyze, document_ranges, tree, weft};

struct Case {
    code: &'static str,
    resource: &'static str,
    yaml: &'static str,
}

const SVC_REVIEWS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  ports: [{name: http, port: 9080}]\n  selector: {app: reviews}\n";

const CASES: &[Case] = &[
    Case {
        code: "IST0002",
        resource: "VirtualService shop/slow",
        yaml: "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: slow, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - fault:\n      delay: {percent: 50, fixedDelay: 1s}\n    route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0101",
        resource: "VirtualService shop/to-nowhere",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: to-nowhere, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: nowhere}\n",
    },
    Case {
        code: "IST0101",
        resource: "VirtualService shop/bad-subset",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad-subset, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n",
    },
    Case {
        code: "IST0101",
        resource: "VirtualService shop/bad-gateway",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad-gateway, namespace: shop}\nspec:\n  hosts: [shop.example.com]\n  gateways: [no-such-gateway]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0101",
        resource: "Gateway shop/tls",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: tls, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    tls: {mode: SIMPLE, credentialName: missing-cert}\n",
    },
    Case {
        code: "IST0101",
        resource: "Sidecar shop/egress",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: egress, namespace: shop}\nspec:\n  egress:\n  - hosts: [\"./nowhere.shop.svc.cluster.local\"]\n",
    },
    Case {
        code: "IST0106",
        resource: "DestinationRule shop/typo",
        yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: typo, namespace: shop}\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBBIN}\n",
    },
    Case {
        code: "IST0109",
        resource: "VirtualService shop/dup-b",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: dup-a, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: dup-b, namespace: shop}\nspec:\n  hosts: [reviews.shop.svc.cluster.local]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0110",
        resource: "Sidecar shop/sc-b",
        yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: reviews-1, namespace: shop, labels: {app: reviews, version: v1}}\nspec:\n  containers: [{name: app, image: reviews}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc-a, namespace: shop}\nspec:\n  workloadSelector: {labels: {app: reviews}}\n  egress: [{hosts: [\"./*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc-b, namespace: shop}\nspec:\n  workloadSelector: {labels: {version: v1}}\n  egress: [{hosts: [\"./*\"]}]\n",
    },
    Case {
        code: "IST0111",
        resource: "Sidecar shop/default-b",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default-a, namespace: shop}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default-b, namespace: shop}\nspec:\n  egress: [{hosts: [\"istio-system/*\"]}]\n",
    },
    Case {
        code: "IST0112",
        resource: "VirtualService shop/two-ports",
        yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: multi, namespace: shop}\nspec:\n  ports: [{name: http, port: 80}, {name: grpc, port: 9090}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: two-ports, namespace: shop}\nspec:\n  hosts: [multi]\n  http:\n  - route:\n    - destination: {host: multi}\n",
    },
    Case {
        code: "IST0127",
        resource: "AuthorizationPolicy shop/nobody",
        yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: nobody, namespace: shop}\nspec:\n  selector: {matchLabels: {app: no-such-app}}\n  action: DENY\n  rules: [{}]\n",
    },
    Case {
        code: "IST0128",
        resource: "DestinationRule shop/external-tls",
        yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: external-tls, namespace: shop}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n",
    },
    Case {
        code: "IST0129",
        resource: "DestinationRule shop/port-tls",
        yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: port-tls, namespace: shop}\nspec:\n  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 9080}\n      tls: {mode: MUTUAL, clientCertificate: /etc/c.pem, privateKey: /etc/k.pem}\n",
    },
    Case {
        code: "IST0130",
        resource: "VirtualService shop/shadowed",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shadowed, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n  - match:\n    - uri: {prefix: /api}\n    route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0131",
        resource: "VirtualService shop/repeat",
        yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: repeat, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - match:\n    - uri: {prefix: /api}\n    route:\n    - destination: {host: reviews}\n  - match:\n    - uri: {prefix: /api}\n    - uri: {prefix: /v2}\n    route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0132",
        resource: "VirtualService shop/wrong-host",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wrong-host, namespace: shop}\nspec:\n  hosts: [other.example.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0134",
        resource: "ServiceEntry shop/db",
        yaml: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db, namespace: shop}\nspec:\n  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp-db, protocol: TCP}]\n  resolution: DNS\n",
    },
    Case {
        code: "IST0145",
        resource: "Gateway shop/gw-two",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw-one, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw-two, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n",
    },
    Case {
        code: "IST0149",
        resource: "VirtualService shop/by-claim",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: by-claim, namespace: shop}\nspec:\n  hosts: [shop.example.com]\n  gateways: [gw]\n  http:\n  - match:\n    - headers:\n        \"@request.auth.claims.group\": {exact: admin}\n    route:\n    - destination: {host: reviews}\n",
    },
    Case {
        code: "IST0157",
        resource: "Telemetry shop/logs",
        yaml: "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: logs, namespace: shop}\nspec:\n  accessLogging:\n  - filter: {expression: \"response.code >= 400\"}\n",
    },
    Case {
        code: "IST0159",
        resource: "Telemetry shop/tel-b",
        yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: reviews-1, namespace: shop, labels: {app: reviews}}\nspec:\n  containers: [{name: app, image: reviews}]\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: tel-a, namespace: shop}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  tracing: [{randomSamplingPercentage: 10}]\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: tel-b, namespace: shop}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  tracing: [{randomSamplingPercentage: 50}]\n",
    },
    Case {
        code: "IST0160",
        resource: "Telemetry shop/ns-b",
        yaml: "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: ns-a, namespace: shop}\nspec:\n  tracing: [{randomSamplingPercentage: 10}]\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: ns-b, namespace: shop}\nspec:\n  tracing: [{randomSamplingPercentage: 20}]\n",
    },
    Case {
        code: "IST0162",
        resource: "Gateway shop/odd-port",
        yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: odd-port, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8088, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n",
    },
    Case {
        code: "IST0173",
        resource: "DestinationRule shop/subsets",
        yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: reviews-1, namespace: shop, labels: {app: reviews, version: v1}}\nspec:\n  containers: [{name: app, image: reviews}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: subsets, namespace: shop}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v7, labels: {version: v7}}\n",
    },
    Case {
        code: "IST0174",
        resource: "DestinationRule shop/ghost",
        yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ghost, namespace: shop}\nspec:\n  host: ghost.shop.svc.cluster.local\n",
    },
    Case {
        code: "IST0177",
        resource: "ServiceEntry shop/api-https",
        yaml: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api-http, namespace: shop}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 8443, name: http, protocol: HTTP}]\n  resolution: DNS\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api-https, namespace: shop}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 8443, name: https, protocol: HTTPS}]\n  resolution: DNS\n",
    },
];

#[test]
fn every_required_code_is_reported_on_its_resource() {
    let mut problems = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let text = format!("{SVC_REVIEWS}---\n{}", case.yaml);
        let dir = tree(&[("case.yaml", &text)]);
        let run = analyze(&["-o", "json"], &[dir.path()]);
        if !matches!(run.code, 0 | 79) {
            problems.push(format!(
                "case {i} ({}): exit {} {}",
                case.code, run.code, run.stderr
            ));
            continue;
        }
        let ranges = document_ranges(&text);
        let (kind, full) = case.resource.split_once(' ').unwrap_or_default();
        let (ns, name) = full.split_once('/').unwrap_or_default();
        let hit = run
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["code"] == case.code
                    && m["resource"]["kind"] == kind
                    && m["resource"]["namespace"] == ns
                    && m["resource"]["name"] == name
            })
            .cloned();
        let Some(hit) = hit else {
            problems.push(format!(
                "case {i}: no {} on {}; got {:?}",
                case.code,
                case.resource,
                run.findings()
            ));
            continue;
        };
        let line = hit["origin"]["line"].as_u64().unwrap_or(0) as usize;
        let inside = ranges.iter().any(|(s, e)| {
            (*s..=*e).contains(&line)
                && text.lines().skip(s - 1).take(e + 1 - s).any(|l| {
                    l.contains(&format!("name: {name},")) || l.contains(&format!("name: {name}}}"))
                })
        });
        if !inside {
            problems.push(format!(
                "case {i}: {} on {} points at line {line}, outside its document",
                case.code, case.resource
            ));
        }
        let is_error = hit["level"] == "Error";
        let has_error = run
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["level"] == "Error");
        if is_error && run.code != 79 || !has_error && run.code != 0 {
            problems.push(format!(
                "case {i}: exit {} does not follow the levels",
                run.code
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn required_codes_keep_istio_levels() {
    let run = weft(["analyze", "--list-codes"]);
    assert_eq!(run.code, 0);
    for (code, level) in [
        ("IST0002", "Warning"),
        ("IST0101", "Error"),
        ("IST0106", "Error"),
        ("IST0109", "Error"),
        ("IST0110", "Error"),
        ("IST0111", "Error"),
        ("IST0112", "Error"),
        ("IST0127", "Warning"),
        ("IST0128", "Warning"),
        ("IST0129", "Warning"),
        ("IST0130", "Warning"),
        ("IST0131", "Info"),
        ("IST0132", "Warning"),
        ("IST0134", "Warning"),
        ("IST0145", "Error"),
        ("IST0149", "Error"),
        ("IST0157", "Warning"),
        ("IST0159", "Error"),
        ("IST0160", "Error"),
        ("IST0162", "Warning"),
        ("IST0173", "Error"),
        ("IST0174", "Warning"),
        ("IST0177", "Warning"),
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{code} {level} "))),
            "{code} is listed as {level}"
        );
    }
}
