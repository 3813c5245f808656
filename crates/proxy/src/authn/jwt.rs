//! One token, checked in the order Envoy's jwt_authn checks it: format and
//! header, issuer, time (60 s clock skew, Envoy's), audiences, then the
//! signature against the issuer's JWKS. Failures carry Envoy's status text,
//! which is also the 401/403 body.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::jwks::Keys;

/// Envoy's clock skew for `exp` and `nbf` (jwt_authn's default, 60 s).
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Base64url with or without padding, as jwt_verify_lib accepts.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Envoy's failure statuses (jwt_verify_lib `getStatusString`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    #[error("Jwt header is an invalid Base64url encoded")]
    HeaderBadBase64,
    #[error("Jwt header is an invalid JSON")]
    HeaderBadJson,
    #[error("Jwt header [alg] field is required and must be a string")]
    HeaderBadAlg,
    #[error("Jwt header [alg] is not supported")]
    AlgNotImplemented,
    #[error("Jwt header [kid] field is not a string")]
    HeaderBadKid,
    #[error("Jwt payload is an invalid Base64url encoded")]
    PayloadBadBase64,
    #[error("Jwt payload is an invalid JSON")]
    PayloadBadJson,
    #[error("Jwt payload [iss] field is not a string")]
    IssNotString,
    #[error("Jwt payload [sub] field is not a string")]
    SubNotString,
    #[error("Jwt payload [exp] field is not an integer")]
    ExpNotInteger,
    #[error("Jwt payload [nbf] field is not an integer")]
    NbfNotInteger,
    #[error("Jwt payload [aud] field is not a string or string list")]
    AudNotStringOrList,
    #[error("Jwt signature is an invalid Base64url encoded")]
    SignatureBadBase64,
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Jwt is expired")]
    Expired,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    KidAlgMismatch,
    #[error("Jwt verification fails")]
    VerificationFail,
    #[error("Jwks remote fetch is failed")]
    JwksFetchFail,
}

impl JwtError {
    /// 403 for a wrong audience (Envoy's JwtAudienceNotAllowed), 401 otherwise.
    pub fn status(self) -> http::StatusCode {
        if self == JwtError::AudienceNotAllowed {
            http::StatusCode::FORBIDDEN
        } else {
            http::StatusCode::UNAUTHORIZED
        }
    }
}

/// A token parsed, not yet verified.
#[derive(Debug)]
pub struct Parsed<'t> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub payload: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub signed: &'t str,
    pub signature: &'t str,
}

impl Parsed<'_> {
    pub fn issuer(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Value::as_str)
    }
}

/// Asymmetric algorithms only: `none` and the HMAC family (a shared secret
/// in a JWKS is no public key) are refused, as is ES512, which
/// jsonwebtoken cannot verify.
fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn decode_json(
    part: &str,
    bad_b64: JwtError,
    bad_json: JwtError,
) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64.decode(part).map_err(|_| bad_b64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad_json),
    }
}

pub fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::BadFormat);
    };
    let head = decode_json(header, JwtError::HeaderBadBase64, JwtError::HeaderBadJson)?;
    let alg = match head.get("alg") {
        Some(Value::String(a)) => algorithm(a).ok_or(JwtError::AlgNotImplemented)?,
        _ => return Err(JwtError::HeaderBadAlg),
    };
    let kid = match head.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::HeaderBadKid),
    };
    let payload_map = decode_json(
        payload,
        JwtError::PayloadBadBase64,
        JwtError::PayloadBadJson,
    )?;
    check_claim_types(&payload_map)?;
    if B64.decode(signature).is_err() {
        return Err(JwtError::SignatureBadBase64);
    }
    Ok(Parsed {
        alg,
        kid,
        payload: payload_map,
        signed: &token[..header.len() + 1 + payload.len()],
        signature,
    })
}

fn check_claim_types(p: &Map<String, Value>) -> Result<(), JwtError> {
    let string_or_absent = |k: &str| p.get(k).is_none_or(Value::is_string);
    if !string_or_absent("iss") {
        return Err(JwtError::IssNotString);
    }
    if !string_or_absent("sub") {
        return Err(JwtError::SubNotString);
    }
    if p.get("exp").is_some_and(|v| !v.is_u64()) {
        return Err(JwtError::ExpNotInteger);
    }
    if p.get("nbf").is_some_and(|v| !v.is_u64()) {
        return Err(JwtError::NbfNotInteger);
    }
    match p.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(JwtError::AudNotStringOrList),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `exp` and `nbf` with Envoy's clock skew.
pub fn check_time(p: &Parsed<'_>, now: u64) -> Result<(), JwtError> {
    let int = |k: &str| p.payload.get(k).and_then(Value::as_u64);
    if int("nbf").is_some_and(|nbf| now.saturating_add(CLOCK_SKEW_SECS) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if int("exp").is_some_and(|exp| exp.saturating_add(CLOCK_SKEW_SECS) < now) {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// With `allowed` audiences, the token's `aud` must name one of them.
pub fn check_audiences(p: &Parsed<'_>, allowed: &[String]) -> Result<(), JwtError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let ok = match p.payload.get("aud") {
        Some(Value::String(a)) => allowed.iter().any(|x| audience_eq(x, a)),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| allowed.iter().any(|x| audience_eq(x, a))),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(JwtError::AudienceNotAllowed)
    }
}

/// jwt_verify_lib compares audiences ignoring a scheme and a trailing slash
/// (`https://a.com/` equals `a.com`).
fn audience_eq(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> &str {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.strip_suffix('/').unwrap_or(s)
    }
    bare(a) == bare(b)
}

/// The signature against the keys that fit the token's `kid` and `alg`.
pub fn verify_signature(p: &Parsed<'_>, keys: &Keys) -> Result<(), JwtError> {
    let mut tried = false;
    for key in keys.candidates(p.alg, p.kid.as_deref()) {
        tried = true;
        if verify_with(p, &key.key) {
            return Ok(());
        }
    }
    if tried {
        Err(JwtError::VerificationFail)
    } else {
        Err(JwtError::KidAlgMismatch)
    }
}

fn verify_with(p: &Parsed<'_>, key: &DecodingKey) -> bool {
    jsonwebtoken::crypto::verify(p.signature, p.signed.as_bytes(), key, p.alg).unwrap_or(false)
}

/// `payload` as base64url JSON without padding (outputPayloadToHeader).
pub fn encode_payload(payload: &Map<String, Value>) -> String {
    let json = serde_json::to_vec(payload).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}
