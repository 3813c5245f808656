//! CORS as Envoy's filter does it: preflights from allowed origins are
//! answered here; actual requests from them get the allow headers added.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::body::{Outcome, local};
use super::flags::Flags;
use super::handler::NAMES;
use crate::config::route::Cors;

static TRUE: HeaderValue = HeaderValue::from_static("true");

/// What the CORS policy decided for a request.
pub enum CorsDecision {
    /// Answer now, without going upstream (boxed: preflights are rare and
    /// an `Outcome` is large).
    Reply(Box<Outcome>),
    /// Go upstream; add the allow headers for this origin to the response.
    Forward(Option<HeaderValue>),
}

pub fn check(cors: &Cors, method: &Method, headers: &HeaderMap) -> CorsDecision {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return CorsDecision::Forward(None);
    };
    let allowed = origin.to_str().is_ok_and(|o| cors.origin_allowed(o));
    let preflight =
        method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match (preflight, allowed) {
        (true, true) => CorsDecision::Reply(Box::new(preflight_reply(cors, origin))),
        (true, false) if cors.forward_unmatched_preflights => CorsDecision::Forward(None),
        (true, false) => CorsDecision::Reply(Box::new(Outcome {
            response: local(StatusCode::OK, ""),
            flags: Flags::NONE,
            cluster: NAMES.none.clone(),
        })),
        (false, true) => CorsDecision::Forward(Some(origin.clone())),
        (false, false) => CorsDecision::Forward(None),
    }
}

fn preflight_reply(cors: &Cors, origin: &HeaderValue) -> Outcome {
    let mut response = local(StatusCode::OK, "");
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    let optional: [(&HeaderName, &Option<HeaderValue>); 3] = [
        (&header::ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods),
        (&header::ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers),
        (&header::ACCESS_CONTROL_MAX_AGE, &cors.max_age),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            h.insert(name.clone(), v.clone());
        }
    }
    if cors.allow_credentials {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
    }
    Outcome {
        response,
        flags: Flags::NONE,
        cluster: NAMES.none.clone(),
    }
}

/// The headers an allowed origin's actual (non-preflight) request gets.
pub fn add_response_headers(cors: &Cors, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Some(v) = &cors.expose_headers {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if cors.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
    }
}
