//! `telemetry.LightstepAnalyzer`: Telemetry resources that trace to a Lightstep
//! extension provider, which Istio deprecated in favour of OpenTelemetry (IST0002).

use std::collections::BTreeSet;

use weft_api::validate::FieldPath;

use crate::messages::DEPRECATED;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::telemetry::Telemetry;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "telemetry.LightstepAnalyzer",
    run,
}];

fn run(a: &Analysis, out: &mut Reporter) {
    let lightstep: BTreeSet<&str> = a
        .mesh
        .extension_providers
        .iter()
        .filter(|p| p.lightstep.is_some())
        .map(|p| p.name.as_str())
        .collect();
    if lightstep.is_empty() {
        return;
    }
    for (r, t) in a.snapshot.typed::<Telemetry>() {
        for (i, tracing) in t.tracing.iter().enumerate() {
            for (j, provider) in tracing.providers.iter().enumerate() {
                if !lightstep.contains(provider.name.as_str()) {
                    continue;
                }
                let path = FieldPath::root("spec")
                    .field("tracing")
                    .index(i)
                    .field("providers")
                    .index(j)
                    .field("name");
                out.report(
                    DEPRECATED,
                    r,
                    Some(&path),
                    format!(
                        "Deprecated: The Lightstep provider {} is deprecated, please migrate to OpenTelemetry provider.",
                        provider.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::envoy_filter::suite::{expect_case, run_case};

    #[test]
    fn lightstep_provider_in_use() {
        expect_case(
            "telemetry-lightstep",
            "telemetry.LightstepAnalyzer",
            &["IST0002"],
        );
    }

    #[test]
    fn points_at_the_provider() {
        let messages = run_case("telemetry-lightstep", "telemetry.LightstepAnalyzer");
        let lines: Vec<usize> = messages.iter().map(|m| m.origin.line).collect();
        // `- name: lightstep` under `spec.tracing[0].providers`.
        assert_eq!(lines, vec![9]);
    }

    #[test]
    fn quiet_without_a_lightstep_provider() {
        // The same Telemetry with Istio's default mesh config, which defines no providers.
        let mesh = weft_api::mesh::MeshConfig::istio_default();
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/istio-analyze-suite/testdata/telemetry-lightstep.yaml");
        let loaded = weft_api::load_paths(&[path], &weft_api::resource::DecodeOptions::default());
        let messages = crate::analyze(&loaded.resources, &mesh, |n| {
            n == "telemetry.LightstepAnalyzer"
        });
        assert!(messages.is_empty(), "{messages:?}");
    }
}
