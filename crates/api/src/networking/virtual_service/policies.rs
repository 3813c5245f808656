//! Rules for the policies an HTTP route carries — CORS, fault injection, retries,
//! rewrites, redirects and direct responses — after Istio's webhook.

use super::http::{MAX_REGEX_LEN, check_string_match, header_name_error};
use super::validate::check_precise_duration;
use super::{
    CorsPolicy, FaultAbort, FaultDelay, HTTPDirectResponse, HTTPFaultInjection, HTTPRedirect,
    HTTPRetry, HTTPRewrite, HTTPRoute,
};
use crate::types::Percent;
use crate::validate::{Context, FieldPath, Validate, Violations, check_port, check_regex};

/// Envoy keeps direct-response bodies in the route table; Istio caps them.
const MAX_DIRECT_RESPONSE_BODY: usize = 1024 * 1024;

/// `x-envoy-retry-on` and `x-envoy-retry-grpc-on` policies Envoy understands.
const RETRY_ON_POLICIES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// gRPC status names in code order (`OK` is 0 ... `UNAUTHENTICATED` is 16),
/// as `fault.abort.grpcStatus` spells them.
pub const GRPC_STATUS_NAMES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl Validate for CorsPolicy {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        for (i, origin) in self.allow_origins.iter().enumerate() {
            let p = path.field("allowOrigins").index(i);
            let value = origin
                .exact
                .as_deref()
                .or(origin.prefix.as_deref())
                .or(origin.regex.as_deref());
            if value.is_none_or(str::is_empty) {
                out.push(
                    &p,
                    "allowOrigins entry must be a non-empty exact, prefix or regex match",
                );
                continue;
            }
            check_string_match(origin, true, &p, out);
        }
        for (i, m) in self.allow_methods.iter().enumerate() {
            if !HTTP_METHODS.contains(&m.as_str()) {
                out.push(
                    &path.field("allowMethods").index(i),
                    format!("{m:?} is not a supported http method"),
                );
            }
        }
        for (field, names) in [
            ("allowHeaders", &self.allow_headers),
            ("exposeHeaders", &self.expose_headers),
        ] {
            for (i, name) in names.iter().enumerate() {
                if name != "*"
                    && let Err(msg) = header_name_error(name)
                {
                    out.push(&path.field(field).index(i), msg);
                }
            }
        }
        if let Some(d) = &self.max_age {
            let p = path.field("maxAge");
            check_precise_duration(d, &p, out);
            if d.as_std().subsec_nanos() != 0 {
                out.push(&p, format!("maxAge {d} must be a whole number of seconds"));
            }
        }
    }
}

impl Validate for HTTPFaultInjection {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if self.abort.is_none() && self.delay.is_none() {
            out.push(path, "fault injection must have an abort and/or a delay");
        }
        if let Some(a) = &self.abort {
            a.validate(ctx, &path.field("abort"), out);
        }
        if let Some(d) = &self.delay {
            d.validate(ctx, &path.field("delay"), out);
        }
    }
}

impl Validate for FaultAbort {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_fault_percentage(&self.percentage, ctx, &path.field("percentage"), out);
        let kinds = [
            self.http_status.is_some(),
            self.grpc_status.is_some(),
            self.http2_error.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            out.push(
                path,
                "only one of httpStatus, grpcStatus or http2Error may be set",
            );
        }
        if let Some(s) = self.http_status
            && !(200..=599).contains(&s)
        {
            out.push(
                &path.field("httpStatus"),
                format!("http status {s} must be in the range 200..599"),
            );
        }
        if let Some(s) = &self.grpc_status
            && !GRPC_STATUS_NAMES.contains(&s.as_str())
        {
            out.push(
                &path.field("grpcStatus"),
                format!("grpc status {s:?} is not a known status name (for example UNAVAILABLE or NOT_FOUND)"),
            );
        }
        if self.http2_error.is_some() {
            out.push(
                &path.field("http2Error"),
                "http2 abort fault injection is not supported",
            );
        }
    }
}

impl Validate for FaultDelay {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_fault_percentage(&self.percentage, ctx, &path.field("percentage"), out);
        if !(0..=100).contains(&self.percent) {
            out.push(
                &path.field("percent"),
                format!("percentage {} must be in the range 0..100", self.percent),
            );
        }
        if self.fixed_delay.is_some() && self.exponential_delay.is_some() {
            out.push(
                path,
                "only one of fixedDelay or exponentialDelay may be set",
            );
        }
        if let Some(d) = &self.fixed_delay {
            check_precise_duration(d, &path.field("fixedDelay"), out);
        }
        if let Some(d) = &self.exponential_delay {
            check_precise_duration(d, &path.field("exponentialDelay"), out);
            out.push(
                &path.field("exponentialDelay"),
                "exponentialDelay is not supported",
            );
        }
    }
}

/// Envoy's fractional percent has a resolution of one in a million, so Istio refuses
/// non-zero values below 0.0001.
fn check_fault_percentage(
    p: &Option<Percent>,
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    if let Some(p) = p {
        p.validate(ctx, path, out);
        if p.value > 0.0 && p.value < 0.0001 {
            out.push(
                &path.field("value"),
                format!("percentage {} is neither 0 nor at least 0.0001", p.value),
            );
        }
    }
}

pub(super) fn validate_redirect(
    r: &HTTPRedirect,
    route: &HTTPRoute,
    path: &FieldPath,
    out: &mut Violations,
) {
    if r.uri.is_empty()
        && r.prefix_rewrite.is_empty()
        && r.authority.is_empty()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_empty()
    {
        out.push(
            path,
            "redirect must specify uri, prefixRewrite, authority, scheme, port or derivePort",
        );
    }
    if !r.uri.is_empty() && !r.prefix_rewrite.is_empty() {
        out.push(
            &path.field("prefixRewrite"),
            "only one of uri or prefixRewrite may be set",
        );
    }
    if !r.prefix_rewrite.is_empty() {
        let all_prefix = !route.r#match.is_empty()
            && route
                .r#match
                .iter()
                .all(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_some()));
        if !all_prefix {
            out.push(
                &path.field("prefixRewrite"),
                "prefixRewrite needs every match of the route to have a uri prefix match",
            );
        }
    }
    if r.port.is_some() && r.derive_port.is_some() {
        out.push(
            &path.field("derivePort"),
            "only one of port or derivePort may be set",
        );
    }
    if let Some(port) = r.port {
        check_port(port, &path.field("port"), out);
    }
    if r.redirect_code != 0 && !(300..=399).contains(&r.redirect_code) {
        out.push(
            &path.field("redirectCode"),
            format!("redirect code {} must be 3xx", r.redirect_code),
        );
    }
    if !r.scheme.is_empty() && r.scheme != "http" && r.scheme != "https" {
        out.push(
            &path.field("scheme"),
            format!("redirect scheme {:?} must be http or https", r.scheme),
        );
    }
}

pub(super) fn validate_direct_response(
    d: &HTTPDirectResponse,
    path: &FieldPath,
    out: &mut Violations,
) {
    if !(200..=599).contains(&d.status) {
        out.push(
            &path.field("status"),
            format!("http status {} must be in the range 200..599", d.status),
        );
    }
    let Some(body) = &d.body else { return };
    let p = path.field("body");
    let size = match (&body.string, &body.bytes) {
        (Some(_), Some(_)) => {
            out.push(&p, "only one of string or bytes may be set");
            return;
        }
        (Some(s), None) => s.len(),
        (None, Some(b)) => match base64_decoded_len(b) {
            Some(n) => n,
            None => {
                out.push(&p.field("bytes"), "bytes must be base64-encoded");
                return;
            }
        },
        (None, None) => 0,
    };
    if size > MAX_DIRECT_RESPONSE_BODY {
        out.push(&p, "direct response body must be smaller than 1MB");
    }
}

/// Length of the decoded data if `s` is standard or URL-safe base64 (padding
/// optional, as protobuf JSON accepts both), else None.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let data = s.trim_end_matches('=');
    if s.len() - data.len() > 2 {
        return None;
    }
    let ok = data
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if !ok || data.len() % 4 == 1 {
        return None;
    }
    Some(data.len() * 3 / 4)
}

impl Validate for HTTPRetry {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.attempts < 0 {
            out.push(
                &path.field("attempts"),
                format!("attempts {} must not be negative", self.attempts),
            );
        }
        let tuned = self.per_try_timeout.is_some()
            || !self.retry_on.is_empty()
            || self.retry_remote_localities.is_some()
            || self.retry_ignore_previous_hosts.is_some()
            || self.backoff.is_some();
        if self.attempts == 0 && tuned {
            out.push(
                &path.field("attempts"),
                "retry policy is configured but attempts is 0, which disables retries",
            );
        }
        if let Some(d) = &self.per_try_timeout {
            check_precise_duration(d, &path.field("perTryTimeout"), out);
        }
        if let Some(d) = &self.backoff {
            check_precise_duration(d, &path.field("backoff"), out);
        }
        if !self.retry_on.is_empty() {
            for token in self.retry_on.split(',') {
                let known_status = token.parse::<u16>().is_ok_and(is_known_http_status);
                if !known_status && !RETRY_ON_POLICIES.contains(&token) {
                    out.push(
                        &path.field("retryOn"),
                        format!("{token:?} is not a valid retryOn policy"),
                    );
                }
            }
        }
    }
}

/// Status codes Go's `http.StatusText` knows; Istio accepts only these in `retryOn`.
fn is_known_http_status(code: u16) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
        | 500..=508 | 510 | 511)
}

impl Validate for HTTPRewrite {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if !self.uri.is_empty() && self.uri_regex_rewrite.is_some() {
            out.push(
                &path.field("uriRegexRewrite"),
                "only one of uri or uriRegexRewrite may be set",
            );
        }
        if self.uri.is_empty() && self.uri_regex_rewrite.is_none() && self.authority.is_empty() {
            out.push(
                path,
                "rewrite must specify uri, uriRegexRewrite or authority",
            );
        }
        if let Some(r) = &self.uri_regex_rewrite {
            let p = path.field("uriRegexRewrite");
            if r.r#match.is_empty() {
                out.push(
                    &p.field("match"),
                    "uriRegexRewrite needs both match and rewrite",
                );
            } else if r.r#match.len() > MAX_REGEX_LEN {
                out.push(
                    &p.field("match"),
                    format!("regex is too large; at most {MAX_REGEX_LEN} bytes are allowed"),
                );
            } else {
                check_regex(&r.r#match, &p.field("match"), out);
            }
            if r.rewrite.is_empty() {
                out.push(
                    &p.field("rewrite"),
                    "uriRegexRewrite needs both match and rewrite",
                );
            }
        }
    }
}

#[cfg(test)]
pub(super) fn base64_ok(v: &str) -> bool {
    base64_decoded_len(v).is_some()
}
