//! Where an endpoint runs, as Istio's `region/zone/subzone` locality string.

use std::collections::BTreeMap;

const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
/// The whole locality in one label, `.` standing for `/` (label values
/// cannot hold a slash).
const LOCALITY_LABEL: &str = "istio-locality";

/// `explicit` (a WorkloadEntry's `locality`) wins; then the `istio-locality`
/// label; then the topology labels, with `zone` (an EndpointSlice endpoint's,
/// which Kubernetes copies from its node) standing in for a missing zone
/// label. Trailing empty parts are left off (`us-east1` is a region alone);
/// an unknown region stays empty (`/us-east1-b`), never guessed from the zone.
pub(super) fn locality(
    explicit: &str,
    labels: &BTreeMap<String, String>,
    zone: Option<&str>,
) -> String {
    if !explicit.is_empty() {
        return explicit.to_string();
    }
    let label = |key: &str| {
        labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(whole) = label(LOCALITY_LABEL) {
        return whole.replace('.', "/");
    }
    let parts = [
        label(REGION_LABEL).unwrap_or_default(),
        label(ZONE_LABEL).or(zone).unwrap_or_default(),
        label(SUBZONE_LABEL).unwrap_or_default(),
    ];
    let used = parts
        .iter()
        .rposition(|p| !p.is_empty())
        .map_or(0, |last| last + 1);
    parts[..used].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn explicit_then_label_then_topology() {
        let topo = labels(&[(REGION_LABEL, "us-east1"), (ZONE_LABEL, "us-east1-b")]);
        assert_eq!(locality("eu/eu-1", &topo, None), "eu/eu-1");
        assert_eq!(locality("", &topo, Some("ignored")), "us-east1/us-east1-b");
        let whole = labels(&[("istio-locality", "r1.z1.s1"), (REGION_LABEL, "other")]);
        assert_eq!(locality("", &whole, None), "r1/z1/s1");
        let region_only = labels(&[(REGION_LABEL, "us-east1")]);
        assert_eq!(locality("", &region_only, None), "us-east1");
        assert_eq!(
            locality("", &region_only, Some("us-east1-c")),
            "us-east1/us-east1-c"
        );
        let subzone = labels(&[(SUBZONE_LABEL, "rack9")]);
        assert_eq!(locality("", &subzone, Some("z")), "/z/rack9");
        assert_eq!(locality("", &BTreeMap::new(), None), "");
    }
}
