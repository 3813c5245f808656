//! `destinationrule.CaCertificateAnalyzer`: SIMPLE/MUTUAL client TLS without
//! `caCertificates` does not verify the server (IST0128, IST0129 per port).

use weft_api::networking::destination_rule::{ClientTLSMode, ClientTLSSettings};
use weft_api::validate::FieldPath;

use crate::messages::{
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
};
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::DestinationRule;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "destinationrule.CaCertificateAnalyzer",
    run,
}];

/// The mode's name when the settings skip server verification. A credentialName
/// carries its own CA, but sidecars read it only when the rule has a
/// workloadSelector.
fn unverified(tls: Option<&ClientTLSSettings>, has_selector: bool) -> Option<&'static str> {
    let tls = tls?;
    if has_selector && !tls.credential_name.is_empty() {
        return None;
    }
    let mode = match tls.mode {
        ClientTLSMode::Simple => "SIMPLE",
        ClientTLSMode::Mutual => "MUTUAL",
        _ => return None,
    };
    tls.ca_certificates.is_empty().then_some(mode)
}

fn run(a: &Analysis, out: &mut Reporter) {
    for (r, dr) in a.snapshot.typed::<DestinationRule>() {
        let Some(policy) = &dr.traffic_policy else {
            continue;
        };
        let ns = &r.meta.namespace;
        let policy_path = FieldPath::root("spec").field("trafficPolicy");
        let has_selector = dr.workload_selector.is_some();
        if let Some(mode) = unverified(policy.tls.as_ref(), has_selector) {
            out.report(
                NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                r,
                Some(&policy_path.field("tls").field("mode")),
                format!(
                    "DestinationRule {ns}/{} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {}",
                    r.meta.name, dr.host
                ),
            );
        }
        for (i, p) in policy.port_level_settings.iter().enumerate() {
            if let Some(mode) = unverified(p.tls.as_ref(), has_selector) {
                let port = p.port.as_ref().map_or(0, |p| p.number);
                out.report(
                    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                    r,
                    Some(&policy_path.field("portLevelSettings").index(i).field("tls").field("mode")),
                    format!(
                        "DestinationRule {ns}/{} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {} at port number:{port}",
                        r.meta.name, dr.host
                    ),
                );
            }
        }
    }
}
