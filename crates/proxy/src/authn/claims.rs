//! A verified JWT as the rest of the request sees it: the request
//! principal, the payload's claims (for AuthorizationPolicy `when` keys and
//! VirtualService `@request.auth.claims.*` matches), audiences, presenter.
//! Stored in the request's extensions once verified.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Claims always split on spaces for matching (Istio: OAuth scopes).
const ALWAYS_SPACE_DELIMITED: [&str; 2] = ["scope", "permission"];

#[derive(Clone, Debug)]
pub struct VerifiedJwt {
    /// `<iss>/<sub>`.
    pub principal: Box<str>,
    pub payload: Map<String, Value>,
    /// The rule's `spaceDelimitedClaims`.
    pub space_delimited: Arc<[Box<str>]>,
}

impl VerifiedJwt {
    pub fn new(payload: Map<String, Value>, space_delimited: Arc<[Box<str>]>) -> VerifiedJwt {
        let text = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default();
        let principal = format!("{}/{}", text("iss"), text("sub")).into_boxed_str();
        VerifiedJwt {
            principal,
            payload,
            space_delimited,
        }
    }

    /// The claim at `path` (`["a", "b"]` is `a.b` nested).
    pub fn claim<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.payload.get(first.as_ref())?;
        for key in rest {
            v = v.as_object()?.get(key.as_ref())?;
        }
        Some(v)
    }

    /// The string values of the claim at `path`: a string (split on spaces
    /// for space-delimited claims), or the strings of a list. Numbers and
    /// booleans match as their JSON text is not attempted: Istio matches
    /// string claims only.
    pub fn claim_strings<S: AsRef<str>>(&self, path: &[S]) -> ClaimStrings<'_> {
        let Some(value) = self.claim(path) else {
            return ClaimStrings::None;
        };
        match value {
            Value::String(s) => {
                let name = path.last().map_or("", |s| s.as_ref());
                let split = ALWAYS_SPACE_DELIMITED.contains(&name)
                    || self
                        .space_delimited
                        .iter()
                        .any(|c| **c == *name || dotted_equals(c, path));
                if split {
                    ClaimStrings::Split(s.split_ascii_whitespace())
                } else {
                    ClaimStrings::One(Some(s))
                }
            }
            Value::Array(items) => ClaimStrings::List(items.iter()),
            _ => ClaimStrings::None,
        }
    }

    /// `aud`: a string or a list of strings.
    pub fn audiences(&self) -> ClaimStrings<'_> {
        match self.payload.get("aud") {
            Some(Value::String(s)) => ClaimStrings::One(Some(s)),
            Some(Value::Array(items)) => ClaimStrings::List(items.iter()),
            _ => ClaimStrings::None,
        }
    }

    /// `azp`, the authorized presenter.
    pub fn presenter(&self) -> Option<&str> {
        self.payload.get("azp").and_then(Value::as_str)
    }
}

/// Whether `dotted` (`a.b`) names `path`.
fn dotted_equals<S: AsRef<str>>(dotted: &str, path: &[S]) -> bool {
    let mut parts = dotted.split('.');
    path.iter().all(|p| parts.next() == Some(p.as_ref())) && parts.next().is_none()
}

#[derive(Clone, Debug)]
pub enum ClaimStrings<'a> {
    None,
    One(Option<&'a str>),
    Split(std::str::SplitAsciiWhitespace<'a>),
    List(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for ClaimStrings<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            ClaimStrings::None => None,
            ClaimStrings::One(v) => v.take(),
            ClaimStrings::Split(s) => s.next(),
            ClaimStrings::List(items) => items.by_ref().find_map(Value::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(v: Value, split: &[&str]) -> VerifiedJwt {
        let Value::Object(map) = v else {
            panic!("object")
        };
        VerifiedJwt::new(map, split.iter().map(|s| Box::from(*s)).collect())
    }

    #[test]
    fn claims_nested_lists_and_splitting() {
        let t = jwt(
            json!({"iss": "https://idp", "sub": "alice", "groups": ["dev", "admin"],
                   "org": {"team": "blue"}, "scope": "read write", "roles": "a b", "aud": "x", "azp": "web"}),
            &["roles"],
        );
        assert_eq!(&*t.principal, "https://idp/alice");
        assert_eq!(
            t.claim_strings(&["groups"]).collect::<Vec<_>>(),
            ["dev", "admin"]
        );
        assert_eq!(
            t.claim_strings(&["org", "team"]).collect::<Vec<_>>(),
            ["blue"]
        );
        assert_eq!(
            t.claim_strings(&["scope"]).collect::<Vec<_>>(),
            ["read", "write"]
        );
        assert_eq!(t.claim_strings(&["roles"]).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(t.claim_strings(&["missing"]).count(), 0);
        assert_eq!(t.audiences().collect::<Vec<_>>(), ["x"]);
        assert_eq!(t.presenter(), Some("web"));
    }
}
