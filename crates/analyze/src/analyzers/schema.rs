//! IST0106: what Istio's validating webhook would reject.

use crate::messages::SCHEMA_VALIDATION_ERROR;
use crate::{Analysis, Reporter};

pub fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.resources {
        for v in &r.violations {
            out.report(
                SCHEMA_VALIDATION_ERROR,
                r,
                Some(&v.path),
                format!("Schema validation error: {v}"),
            );
        }
    }
}

pub const ANALYZERS: &[crate::Analyzer] = &[crate::Analyzer {
    name: "schema.ValidationAnalyzer",
    run,
}];
