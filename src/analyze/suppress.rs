//! `--suppress "CODE=Kind namespace/name"` with `*` wildcards, as istioctl reads it.

use anyhow::{Result, bail};
use regex::Regex;
use weft_analyze::Message;

pub struct Suppression {
    code: Regex,
    resource: Regex,
}

impl Suppression {
    pub fn parse(spec: &str) -> Result<Suppression> {
        let Some((code, resource)) = spec.split_once('=') else {
            bail!(
                "--suppress {spec:?}: expected CODE=Kind namespace/name (e.g. \"IST0102=Namespace frod\")"
            );
        };
        let (code, resource) = (code.trim(), resource.trim());
        if code.is_empty() || resource.is_empty() {
            bail!("--suppress {spec:?}: both the code and the resource are required");
        }
        Ok(Suppression {
            code: glob(code, true)?,
            resource: glob(resource, false)?,
        })
    }

    pub fn matches(&self, m: &Message) -> bool {
        self.code.is_match(m.code.id) && self.resource.is_match(&m.resource.to_string())
    }
}

/// `*` matches any run of characters; everything else is literal.
fn glob(pattern: &str, case_insensitive: bool) -> Result<Regex> {
    let body = pattern
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    let flags = if case_insensitive { "(?i)" } else { "" };
    Ok(Regex::new(&format!("{flags}^{body}$"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_specs() {
        assert!(Suppression::parse("IST0101").is_err());
        assert!(Suppression::parse("=Kind a/b").is_err());
        assert!(Suppression::parse("IST0101=Gateway */*").is_ok());
    }
}
