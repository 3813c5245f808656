//! `virtualservice.DestinationHostAnalyzer`: every route and mirror destination
//! names a known service (IST0101), with a port when the service has several
//! (IST0112) and a port the service has (IST0101 `host:port`).

use weft_api::Body;
use weft_api::networking::VirtualService;
use weft_api::types::Destination;
use weft_api::validate::FieldPath;

use crate::messages::{
    REFERENCED_RESOURCE_NOT_FOUND, VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.DestinationHostAnalyzer",
    run,
}];

static EMPTY_DESTINATION: Destination = Destination {
    host: String::new(),
    subset: String::new(),
    port: None,
};

/// A destination inside a VirtualService, with the path of its `host` field.
pub struct RouteDestination<'v> {
    pub destination: &'v Destination,
    pub host_path: FieldPath,
    pub is_mirror: bool,
}

/// Route destinations of tcp, tls and http rules, in Istio's order.
pub fn route_destinations<'v>(vs: &'v VirtualService) -> Vec<RouteDestination<'v>> {
    let spec = FieldPath::root("spec");
    let mut out = Vec::new();
    // A route entry without a destination refers to host "", which Istio reports.
    let mut push = |d: Option<&'v Destination>, path: FieldPath| {
        out.push(RouteDestination {
            destination: d.unwrap_or(&EMPTY_DESTINATION),
            host_path: path.field("destination").field("host"),
            is_mirror: false,
        });
    };
    for (i, r) in vs.tcp.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                d.destination.as_ref(),
                spec.field("tcp").index(i).field("route").index(j),
            );
        }
    }
    for (i, r) in vs.tls.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                d.destination.as_ref(),
                spec.field("tls").index(i).field("route").index(j),
            );
        }
    }
    for (i, r) in vs.http.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                d.destination.as_ref(),
                spec.field("http").index(i).field("route").index(j),
            );
        }
    }
    out
}

/// `mirror` and `mirrors[]` destinations of http rules.
pub fn mirror_destinations(vs: &VirtualService) -> Vec<RouteDestination<'_>> {
    let spec = FieldPath::root("spec");
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let rule = spec.field("http").index(i);
        if let Some(m) = &r.mirror {
            out.push(RouteDestination {
                destination: m,
                host_path: rule.field("mirror").field("host"),
                is_mirror: true,
            });
        }
        for (k, m) in r.mirrors.iter().enumerate() {
            if let Some(d) = &m.destination {
                out.push(RouteDestination {
                    destination: d,
                    host_path: rule
                        .field("mirrors")
                        .index(k)
                        .field("destination")
                        .field("host"),
                    is_mirror: true,
                });
            }
        }
    }
    out
}

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.of_kind(weft_api::Kind::VirtualService) {
        let Body::VirtualService(vs) = &r.body else {
            continue;
        };
        let destinations = route_destinations(vs)
            .into_iter()
            .chain(mirror_destinations(vs));
        for d in destinations {
            let host = &d.destination.host;
            let Some(svc) = a
                .snapshot
                .destination_service(&r.meta.namespace, &vs.export_to, host)
            else {
                let what = if d.is_mirror { "mirror host" } else { "host" };
                out.report(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    r,
                    Some(&d.host_path),
                    format!("Referenced {what} not found: {host:?}"),
                );
                continue;
            };
            match &d.destination.port {
                None if svc.ports.len() > 1 => {
                    let numbers: Vec<String> =
                        svc.ports.iter().map(|p| p.number.to_string()).collect();
                    out.report(
                        VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                        r,
                        Some(&d.host_path),
                        format!(
                            "This VirtualService routes to a service {host:?} that exposes multiple ports [{}]. Specifying a port in the destination is required to disambiguate.",
                            numbers.join(" ")
                        ),
                    );
                }
                Some(port) if !svc.ports.iter().any(|p| p.number == port.number) => {
                    out.report(
                        REFERENCED_RESOURCE_NOT_FOUND,
                        r,
                        Some(&d.host_path),
                        format!("Referenced host:port not found: \"{host}:{}\"", port.number),
                    );
                }
                _ => {}
            }
        }
    }
}
