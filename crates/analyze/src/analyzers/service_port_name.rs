//! `service.PortNameAnalyzer`: Service ports should declare their protocol with a
//! `<protocol>[-suffix]` name or `appProtocol` (IST0118); on ExternalName Services
//! a missing or plain `tcp` protocol breaks forwarding (IST0150).

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::{
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME, PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "service.PortNameAnalyzer",
    run,
}];

/// Values of `gateway.istio.io/managed` on Services Istio generates itself.
const MANAGED_GATEWAY_CONTROLLERS: &[&str] = &[
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
];

/// Ports whose protocol Istio assumes to be TCP when the name says nothing.
const WELL_KNOWN_TCP_PORTS: &[i32] = &[25, 53, 3306, 27017];

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.of_kind(Kind::Service) {
        if is_control_plane(r) || is_generated(r) {
            continue;
        }
        let Body::Service(svc) = &r.body else {
            continue;
        };
        let Some(spec) = &svc.spec else { continue };
        let external_name = spec.type_.as_deref() == Some("ExternalName");
        for (i, port) in spec.ports.iter().flatten().enumerate() {
            let name = port.name.as_deref().unwrap_or_default();
            // A plain `tcp` name is fine except on ExternalName Services.
            let bad = protocol_is_unknown(port) || (name == "tcp" && external_name);
            if !bad {
                continue;
            }
            let path = FieldPath::root("spec").field("ports").index(i);
            if external_name {
                out.report(
                    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
                    r,
                    Some(&path),
                    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched \
                     traffic for ports serving TCP protocol from being forwarded correctly",
                );
            } else {
                let target = match &port.target_port {
                    Some(IntOrString::Int(i)) => i.to_string(),
                    Some(IntOrString::String(s)) => s.clone(),
                    None => "0".to_string(),
                };
                out.report(
                    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                    r,
                    Some(&path),
                    format!(
                        "Port name {name} (port: {}, targetPort: {target}) doesn't follow the naming convention of \
                         Istio port.",
                        port.port
                    ),
                );
            }
        }
    }
}

fn is_control_plane(r: &Resource) -> bool {
    r.meta.labels.contains_key("istio")
        || r.meta.labels.get("release").is_some_and(|v| v == "istio")
}

/// Services created by Istio's gateway controllers, which users do not write.
fn is_generated(r: &Resource) -> bool {
    r.meta
        .labels
        .get("gateway.istio.io/managed")
        .is_some_and(|v| MANAGED_GATEWAY_CONTROLLERS.contains(&v.as_str()))
}

/// Istio's protocol selection for a Kubernetes Service port finds nothing: UDP, then
/// `appProtocol` (or else the name) up to its first `-`, then well-known ports.
fn protocol_is_unknown(port: &ServicePort) -> bool {
    if port.protocol.as_deref() == Some("UDP") {
        return false;
    }
    let name = match port.app_protocol.as_deref() {
        Some("kubernetes.io/h2c" | "kubernetes.io/ws" | "kubernetes.io/wss") => return false,
        Some(app) => app,
        None => port.name.as_deref().unwrap_or_default(),
    };
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("grpc-web") {
        return false;
    }
    let prefix = lower.split('-').next().unwrap_or_default();
    let known = matches!(
        prefix,
        "tcp"
            | "udp"
            | "grpc"
            | "http"
            | "http_proxy"
            | "http2"
            | "https"
            | "tls"
            | "mongo"
            | "redis"
            | "mysql"
    );
    !known && !WELL_KNOWN_TCP_PORTS.contains(&port.port)
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    const ID: &str = "service.PortNameAnalyzer";
    const CODES: &[&str] = &["IST0118", "IST0150"];

    #[test]
    fn portnamenotfollowconvention() {
        assert_eq!(
            run_case(&["testdata/service-no-port-name.yaml"], ID, CODES),
            sorted(&[
                "IST0118 Service my-namespace1/my-service1",
                "IST0118 Service my-namespace1/my-service1",
                "IST0118 Service my-namespace2/my-service2",
            ])
        );
    }

    #[test]
    fn externalnameservicetypeinvalidportname() {
        assert_eq!(
            run_case(
                &["testdata/incorrect-port-name-external-name-service-type.yaml"],
                ID,
                CODES
            ),
            sorted(&[
                "IST0150 Service nginx-ns/nginx",
                "IST0150 Service nginx-ns2/nginx-svc2",
                "IST0150 Service nginx-ns3/nginx-svc3",
            ])
        );
    }

    #[test]
    fn no_messages() {
        for f in [
            "testdata/service-port-name.yaml",
            "testdata/service-no-port-name-system-namespace.yaml",
            "testdata/correct-port-name-external-name-service-type.yaml",
        ] {
            assert_eq!(run_case(&[f], ID, CODES), Vec::<String>::new(), "{f}");
        }
    }
}
