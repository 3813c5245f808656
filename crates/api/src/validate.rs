//! Schema validation in the shape of Istio's validating webhook: every rule
//! violation is collected (not just the first) with the field path it concerns.

use std::fmt;

/// A dotted field path such as `spec.http[0].route[1].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root(name: &str) -> Self {
        FieldPath(name.to_string())
    }

    /// `spec` + `http` -> `spec.http`
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `spec.http` + 0 -> `spec.http[0]`
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// Map entries: `spec.headers` + `x-user` -> `spec.headers[x-user]`
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{k}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule a resource breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub path: FieldPath,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What validation needs to know about the resource beyond its spec.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Namespace of the resource (after defaulting).
    pub namespace: String,
    /// The mesh root namespace (`istio-system` unless MeshConfig says otherwise).
    pub root_namespace: String,
}

#[derive(Debug, Default)]
pub struct Violations {
    pub items: Vec<Violation>,
}

impl Violations {
    pub fn push(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.items.push(Violation {
            path: path.clone(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Implemented by every typed spec (and the nested messages that carry rules).
pub trait Validate {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations);
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if let Some(v) = self {
            v.validate(ctx, path, out);
        }
    }
}

/// Validates each element as `path[i]`.
pub fn validate_each<T: Validate>(
    items: &[T],
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    for (i, item) in items.iter().enumerate() {
        item.validate(ctx, &path.index(i), out);
    }
}

// ---- shared field rules -------------------------------------------------

pub fn check_port(port: u32, path: &FieldPath, out: &mut Violations) {
    if !(1..=65535).contains(&port) {
        out.push(
            path,
            format!("port number {port} must be in the range 1..65535"),
        );
    }
}

pub fn check_percentage(value: f64, path: &FieldPath, out: &mut Violations) {
    if !(0.0..=100.0).contains(&value) || value.is_nan() {
        out.push(
            path,
            format!("percentage {value} must be in range [0.0, 100.0]"),
        );
    }
}

/// Durations must be at least 1ms (Istio's `ValidateDuration`).
pub fn check_duration(d: &crate::types::Duration, path: &FieldPath, out: &mut Violations) {
    if d.as_std() < std::time::Duration::from_millis(1) {
        out.push(path, format!("duration {d} must be at least 1ms"));
    }
}

/// Compiles a regex with RE2 semantics (full match, no lookaround or backreferences).
pub fn check_regex(pattern: &str, path: &FieldPath, out: &mut Violations) {
    if let Err(e) = crate::regex_re2::compile(pattern) {
        // The regex crate's syntax errors draw a caret diagram over several
        // lines; the last line says what is wrong.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&text)
            .trim()
            .trim_start_matches("error: ");
        out.push(path, format!("invalid regex {pattern:?}: {reason}"));
    }
}

/// A DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Istio's FQDN rule for hosts: labels separated by dots, each a DNS-1123 label
/// (case-insensitive), total at most 255. A leading `*` label (wildcard) is allowed
/// when `allow_wildcard` is set; a bare `*` too.
pub fn check_wildcard_host(
    host: &str,
    allow_wildcard: bool,
    path: &FieldPath,
    out: &mut Violations,
) {
    if let Err(msg) = host_error(host, allow_wildcard) {
        out.push(path, msg);
    }
}

fn host_error(host: &str, allow_wildcard: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("host {host:?} is longer than 255 characters"));
    }
    if host == "*" {
        return if allow_wildcard {
            Ok(())
        } else {
            Err("wildcard host * is not allowed here".into())
        };
    }
    let rest = match host.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return Err(format!("wildcard host {host:?} is not allowed here")),
        None if host.starts_with('*') && allow_wildcard => {
            // Istio accepts `*foo.com` (a wildcard fused with the first label).
            &host[1..]
        }
        None => host,
    };
    // An IP address is a valid host for gateway-bound resources.
    if rest.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    for label in rest.split('.') {
        let lower = label.to_ascii_lowercase();
        if !is_dns1123_label(&lower) {
            return Err(format!(
                "host {host:?} is not a valid FQDN: label {label:?} must consist of alphanumerics and '-', start and end with an alphanumeric, at most 63 characters"
            ));
        }
    }
    Ok(())
}

/// Label selector rules (Kubernetes label syntax, no wildcards in values).
pub fn check_labels(
    labels: &std::collections::BTreeMap<String, String>,
    path: &FieldPath,
    out: &mut Violations,
) {
    for (k, v) in labels {
        if k.is_empty() {
            out.push(path, "label key must not be empty");
            continue;
        }
        if v.contains('*') || k.contains('*') {
            out.push(
                &path.key(k),
                "wildcards are not supported in selector labels",
            );
            continue;
        }
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if let Some(p) = prefix
            && (p.is_empty() || p.len() > 253 || host_error(p, false).is_err())
        {
            out.push(&path.key(k), format!("invalid label key prefix {p:?}"));
        }
        if !is_label_value(name) || name.is_empty() {
            out.push(&path.key(k), format!("invalid label key {k:?}"));
        }
        if !is_label_value(v) {
            out.push(&path.key(k), format!("invalid label value {v:?}"));
        }
    }
}

/// Kubernetes label values: at most 63 characters, alphanumerics, '-', '_', '.',
/// beginning and ending with an alphanumeric (or empty).
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

/// `10.0.0.1` or `10.0.0.0/8` (IPv4 or IPv6).
pub fn check_ip_or_cidr(s: &str, path: &FieldPath, out: &mut Violations) {
    if crate::types::parse_cidr(s).is_none() {
        out.push(
            path,
            format!("{s:?} is not a valid IP address or CIDR range"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_istio() {
        let p = FieldPath::root("spec")
            .field("http")
            .index(0)
            .field("route")
            .index(1)
            .field("weight");
        assert_eq!(p.as_str(), "spec.http[0].route[1].weight");
    }

    #[test]
    fn hosts() {
        assert!(host_error("reviews", false).is_ok());
        assert!(host_error("reviews.default.svc.cluster.local", false).is_ok());
        assert!(host_error("*.example.com", true).is_ok());
        assert!(host_error("*.example.com", false).is_err());
        assert!(host_error("bad_host", false).is_err());
        assert!(host_error("-bad.com", false).is_err());
        assert!(host_error("", true).is_err());
        assert!(host_error("10.1.2.3", false).is_ok());
    }

    #[test]
    fn labels() {
        let mut out = Violations::default();
        let mut m = std::collections::BTreeMap::new();
        m.insert("app".to_string(), "reviews".to_string());
        m.insert("version".to_string(), "v*".to_string());
        check_labels(&m, &FieldPath::root("selector"), &mut out);
        assert_eq!(out.items.len(), 1);
        assert_eq!(out.items[0].path.as_str(), "selector[version]");
    }
}
