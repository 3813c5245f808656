//! Request and response edits a route makes: header operations and rewrites,
//! with names, values and regexes parsed once here.

use http::{HeaderMap, HeaderName, HeaderValue};
use regex::{Regex, RegexBuilder};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use weft_xds::proto;

use crate::config::regex::MAX_PROGRAM_BYTES;

/// Header operations, applied in the order set, add, remove.
#[derive(Clone, Debug, Default)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn from_proto(ops: Option<proto::HeaderOps>) -> Result<HeaderOps, String> {
        let Some(ops) = ops else {
            return Ok(HeaderOps::default());
        };
        let pairs = |list: Vec<proto::HeaderValue>| {
            list.into_iter()
                .map(|h| Ok((header_name(&h.name)?, header_value(&h.name, h.value)?)))
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(HeaderOps {
            set: pairs(ops.set)?,
            add: pairs(ops.add)?,
            remove: ops
                .remove
                .iter()
                .map(|n| header_name(n))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

impl Serialize for HeaderOps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs = |list: &[(HeaderName, HeaderValue)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        };
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("set", &pairs(&self.set))?;
        map.serialize_entry("add", &pairs(&self.add))?;
        let remove: Vec<&str> = self.remove.iter().map(HeaderName::as_str).collect();
        map.serialize_entry("remove", &remove)?;
        map.end()
    }
}

pub fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))
}

pub fn header_value(name: &str, value: String) -> Result<HeaderValue, String> {
    HeaderValue::try_from(value).map_err(|_| format!("invalid value for header {name:?}"))
}

/// How the path and authority change before the request goes upstream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rewrite {
    /// Replaces the part of the path the route matched.
    pub uri: Option<String>,
    pub uri_regex: Option<RegexRewrite>,
    #[serde(serialize_with = "ser_value_opt")]
    pub authority: Option<HeaderValue>,
}

/// RE2 substitution over the whole path, every match (Envoy's regex_rewrite).
#[derive(Clone, Debug)]
pub struct RegexRewrite {
    pub source: String,
    pub regex: Regex,
    /// The substitution in the `regex` crate's syntax (`\1` became `${1}`).
    pub replacement: String,
}

impl Serialize for RegexRewrite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("pattern", &self.source)?;
        map.serialize_entry("replacement", &self.replacement)?;
        map.end()
    }
}

impl Rewrite {
    pub fn from_proto(r: Option<proto::Rewrite>) -> Result<Option<Rewrite>, String> {
        let Some(r) = r else { return Ok(None) };
        let uri = (!r.uri.is_empty()).then_some(r.uri);
        let uri_regex = match r.uri_regex {
            Some(rx) if !rx.pattern.is_empty() => Some(regex_rewrite(rx)?),
            _ => None,
        };
        if uri.is_some() && uri_regex.is_some() {
            return Err("rewrite: uri and uri_regex are exclusive".into());
        }
        let authority = if r.authority.is_empty() {
            None
        } else {
            Some(header_value(":authority", r.authority)?)
        };
        if uri.is_none() && uri_regex.is_none() && authority.is_none() {
            return Ok(None);
        }
        Ok(Some(Rewrite {
            uri,
            uri_regex,
            authority,
        }))
    }
}

fn regex_rewrite(r: proto::RegexRewrite) -> Result<RegexRewrite, String> {
    // The full-match compiler applies RE2's ASCII classes and the program size
    // limit; its anchors are then dropped so every match is substituted.
    let full = weft_re2::compile_with(&r.pattern, false, MAX_PROGRAM_BYTES)
        .map_err(|e| format!("uri_regex: invalid regex {:?}: {e}", r.pattern))?;
    let anchored = full.as_str();
    let inner = anchored
        .strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .ok_or_else(|| format!("uri_regex: cannot unanchor {:?}", r.pattern))?;
    let regex = RegexBuilder::new(inner)
        .size_limit(MAX_PROGRAM_BYTES)
        .build()
        .map_err(|e| format!("uri_regex: invalid regex {:?}: {e}", r.pattern))?;
    Ok(RegexRewrite {
        source: r.pattern,
        replacement: re2_substitution(&r.substitution, regex.captures_len())?,
        regex,
    })
}

/// RE2 substitutions name groups `\0`..`\9` and escape a backslash as `\\`;
/// the `regex` crate uses `${N}` and `$$`.
fn re2_substitution(sub: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(sub.len() + 4);
    let mut chars = sub.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d @ '0'..='9') => {
                    let n = d as usize - '0' as usize;
                    if n >= groups {
                        return Err(format!(
                            "uri_regex: substitution {sub:?} names group {n}, the pattern has {}",
                            groups - 1
                        ));
                    }
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => out.push('\\'),
                _ => return Err(format!("uri_regex: invalid escape in {sub:?}")),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn ser_value_opt<S: Serializer>(v: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&String::from_utf8_lossy(v.as_bytes())),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_syntax() {
        assert_eq!(re2_substitution(r"/v2/\1", 2).as_deref(), Ok("/v2/${1}"));
        assert_eq!(re2_substitution(r"a$b\\", 1).as_deref(), Ok(r"a$$b\"));
        assert!(re2_substitution(r"\2", 2).is_err());
        assert!(re2_substitution(r"\x", 2).is_err());
    }

    #[test]
    fn regex_rewrite_replaces_every_match_with_ascii_classes() {
        let r = regex_rewrite(proto::RegexRewrite {
            pattern: r"\d+".into(),
            substitution: "N".into(),
        })
        .expect("valid");
        assert_eq!(r.regex.replace_all("/a/12/b/3", &r.replacement), "/a/N/b/N");
        // RE2's \d is ASCII only.
        assert_eq!(r.regex.replace_all("/٣", &r.replacement), "/٣");
    }

    #[test]
    fn header_ops_order() {
        let ops = HeaderOps::from_proto(Some(proto::HeaderOps {
            set: vec![proto::HeaderValue {
                name: "X-A".into(),
                value: "set".into(),
            }],
            add: vec![proto::HeaderValue {
                name: "x-a".into(),
                value: "added".into(),
            }],
            remove: vec!["x-gone".into()],
        }))
        .expect("valid");
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("old"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        ops.apply(&mut h);
        let values: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(values, ["set", "added"]);
        assert!(!h.contains_key("x-gone"));
        assert!(
            HeaderOps::from_proto(Some(proto::HeaderOps {
                remove: vec!["bad name".into()],
                ..Default::default()
            }))
            .is_err()
        );
    }
}
