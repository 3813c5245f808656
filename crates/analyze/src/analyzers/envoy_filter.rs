//! `envoyfilter.EnvoyPatchAnalyzer`: patch operations that Envoy ignores for the
//! object they apply to (IST0152, IST0153, IST0154), and relative operations
//! without a priority, whose outcome depends on the order filters are applied in
//! (IST0151), made worse when a `proxyVersion` match changes that order across an
//! upgrade (IST0155).

use weft_api::Resource;
use weft_api::networking::envoy_filter::{ApplyTo, EnvoyConfigObjectPatch, EnvoyFilter, Operation};
use weft_api::validate::FieldPath;

use crate::messages::{
    ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY, ENVOY_FILTER_USES_RELATIVE_OPERATION,
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "envoyfilter.EnvoyPatchAnalyzer",
    run,
}];

const RELATIVE_TEXT: &str = "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.";
const RELATIVE_WITH_PROXY_VERSION_TEXT: &str = "This EnvoyFilter does not have a priority and has a relative patch operation (INSERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.";
const REPLACE_TEXT: &str =
    "The REPLACE operation is only valid for HTTP_FILTER, NETWORK_FILTER and VIRTUAL_HOST.";
const ADD_TEXT: &str =
    "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.";
const REMOVE_TEXT: &str = "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.";

fn run(a: &Analysis, out: &mut Reporter) {
    // Names of the objects patched under a `proxyVersion` match, by earlier patches
    // (of this and of previously analyzed filters): a later relative patch of the
    // same object is ordered differently once proxies are upgraded.
    let mut versioned_names: Vec<String> = Vec::new();
    for (r, ef) in a.snapshot.typed::<EnvoyFilter>() {
        analyze_filter(r, ef, &mut versioned_names, out);
    }
}

fn analyze_filter(
    r: &Resource,
    ef: &EnvoyFilter,
    versioned_names: &mut Vec<String>,
    out: &mut Reporter,
) {
    for (index, cp) in ef.config_patches.iter().enumerate() {
        // Istio stops at the first patch without a `patch` section.
        let Some(patch) = &cp.patch else { break };
        let name = patched_object_name(cp);
        let path = FieldPath::root("spec")
            .field("configPatches")
            .index(index)
            .field("patch")
            .field("value");
        let route_level = matches!(
            cp.apply_to,
            ApplyTo::RouteConfiguration | ApplyTo::HttpRoute
        );
        let relative = match patch.operation {
            Operation::Add => {
                if route_level {
                    out.report(
                        ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY,
                        r,
                        Some(&path),
                        ADD_TEXT,
                    );
                }
                false
            }
            Operation::Remove => {
                if route_level {
                    out.report(
                        ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
                        r,
                        Some(&path),
                        REMOVE_TEXT,
                    );
                    false
                } else {
                    true
                }
            }
            Operation::Replace => {
                // Istio applies REPLACE to virtual hosts as well, and its test data no
                // longer expects a message for them (istio/istio#59495).
                let replaceable = matches!(
                    cp.apply_to,
                    ApplyTo::NetworkFilter | ApplyTo::HttpFilter | ApplyTo::VirtualHost
                );
                if !replaceable {
                    out.report(
                        ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
                        r,
                        Some(&path),
                        REPLACE_TEXT,
                    );
                }
                replaceable
            }
            Operation::InsertBefore | Operation::InsertAfter => true,
            // MERGE is not reported: merging into an object does not depend on the
            // order of other patches the way positional operations do.
            _ => false,
        };
        if relative && ef.priority == 0 {
            if versioned_names.contains(&name) {
                out.report(
                    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
                    r,
                    Some(&path),
                    RELATIVE_WITH_PROXY_VERSION_TEXT,
                );
            } else {
                out.report(
                    ENVOY_FILTER_USES_RELATIVE_OPERATION,
                    r,
                    Some(&path),
                    RELATIVE_TEXT,
                );
            }
        }
        let has_proxy_version = cp
            .r#match
            .as_ref()
            .and_then(|m| m.proxy.as_ref())
            .is_some_and(|p| !p.proxy_version.is_empty());
        if has_proxy_version {
            versioned_names.push(name);
        }
    }
}

/// What a patch is about, to relate patches of the same object: the `name` in the
/// patch value, else the network filter its listener match names. Istio keys the
/// first by the value's rendering (quoted here), so the two never collide.
fn patched_object_name(cp: &EnvoyConfigObjectPatch) -> String {
    let Some(value) = cp.patch.as_ref().and_then(|p| p.value.as_ref()) else {
        return String::new();
    };
    if let Some(name) = value.get("name") {
        return name.to_string();
    }
    cp.r#match
        .as_ref()
        .and_then(|m| m.listener.as_ref())
        .and_then(|l| l.filter_chain.as_ref())
        .map(|fc| {
            fc.filter
                .as_ref()
                .map(|f| f.name.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(super) mod suite;

#[cfg(test)]
mod tests {
    use super::suite::{expect_case, run_case};

    const ANALYZER: &str = "envoyfilter.EnvoyPatchAnalyzer";
    const CODES: &[&str] = &["IST0151", "IST0152", "IST0153", "IST0154", "IST0155"];

    #[test]
    fn relative_operations() {
        expect_case("envoyfilterusesrelativeoperation", ANALYZER, CODES);
    }

    #[test]
    fn filter_chain_match_without_filter() {
        expect_case("envoyfilterfilterchainmatch", ANALYZER, CODES);
    }

    #[test]
    fn absolute_operations() {
        expect_case("envoyfilterusesabsoluteoperation", ANALYZER, CODES);
    }

    #[test]
    fn replace_operations() {
        expect_case("envoyfilterusesreplaceoperation", ANALYZER, CODES);
    }

    #[test]
    fn add_operations() {
        expect_case("envoyfilterusesaddoperation", ANALYZER, CODES);
    }

    #[test]
    fn remove_operations() {
        expect_case("envoyfilterusesremoveoperation", ANALYZER, CODES);
    }

    #[test]
    fn messages_point_at_the_patch() {
        let messages = run_case("envoyfilterusesreplaceoperation", ANALYZER);
        let line = messages
            .iter()
            .find(|m| m.code.id == "IST0152")
            .map(|m| m.origin.line);
        // test-replace-1's only patch value (`value: # cluster specification`).
        assert_eq!(line, Some(19));
    }
}
