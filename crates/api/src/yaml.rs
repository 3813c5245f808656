//! Multi-document YAML (and JSON, a subset of YAML 1.2) into JSON values, keeping
//! the line of every field so that errors can point at it.
//!
//! Documents are split on `---` lines before parsing, so one malformed document
//! does not stop the others from loading.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Number, Value};

use crate::validate::FieldPath;

/// One parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based line of the document's first content line.
    pub start_line: usize,
    pub value: Value,
    pub lines: LineIndex,
}

/// A document that is not valid YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Lines of fields within one document, keyed by normalised path
/// (`spec.http[0].route`, map keys and struct fields both as `.key`).
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    start_line: usize,
}

impl LineIndex {
    /// The line of `path` (or of its nearest ancestor that has one) below `prefix`.
    pub fn line_of(&self, prefix: &str, path: &FieldPath) -> usize {
        let mut key = normalise(prefix, path.as_str());
        loop {
            if let Some(line) = self.lines.get(&key) {
                return *line;
            }
            match key.rfind(['.', '[']) {
                Some(cut) => key.truncate(cut),
                None => return self.lines.get(&key).copied().unwrap_or(self.start_line),
            }
        }
    }

    /// The line where the value at `prefix` starts (for items of a `kind: List`).
    pub fn line_at(&self, prefix: &str) -> Option<usize> {
        self.lines.get(prefix).copied()
    }
}

/// `[name]` map-key segments become `.name`; numeric indexes stay `[i]`.
fn normalise(prefix: &str, path: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + path.len() + 1);
    out.push_str(prefix);
    let mut rest = path;
    if !out.is_empty() && !rest.is_empty() && !rest.starts_with('[') {
        out.push('.');
    }
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| c + open) else {
            break;
        };
        let inner = &rest[open + 1..close];
        if inner.bytes().all(|b| b.is_ascii_digit()) && !inner.is_empty() {
            out.push_str(&rest[open..=close]);
        } else {
            out.push('.');
            out.push_str(inner);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Splits `text` into documents and parses each. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Vec<Result<Document, SyntaxError>> {
    split_documents(text)
        .into_iter()
        .filter_map(|(first_line, chunk)| parse_document(first_line, chunk))
        .collect()
}

/// (1-based first line, text) of each `---`-separated chunk.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_separator =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if is_separator {
            chunks.push((start_line, &text[start_byte..offset]));
            // Content after `--- ` on the same line belongs to the next document.
            let after = line.strip_prefix("---").map(str::trim_start).unwrap_or("");
            if bare.starts_with("--- ") && !after.is_empty() && !after.starts_with('#') {
                start_byte = offset + (line.len() - after.len());
                start_line = i + 1;
            } else {
                start_byte = offset + line.len();
                start_line = i + 2;
            }
        }
        offset += line.len();
    }
    chunks.push((start_line, &text[start_byte..]));
    chunks
}

fn first_content_line(first_line: usize, chunk: &str) -> Option<usize> {
    chunk
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        })
        .map(|p| first_line + p)
}

fn parse_document(first_line: usize, chunk: &str) -> Option<Result<Document, SyntaxError>> {
    let start_line = first_content_line(first_line, chunk)?;
    let mut builder = Builder {
        events: Parser::new_from_str(chunk),
        line_offset: first_line - 1,
        anchors: HashMap::new(),
        index: LineIndex {
            lines: HashMap::new(),
            start_line,
        },
    };
    match builder.document() {
        // Only comments: not a document.
        Ok(Value::Null) => None,
        Ok(value) => Some(Ok(Document {
            start_line,
            value,
            lines: builder.index,
        })),
        Err(e) => Some(Err(e)),
    }
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    line_offset: usize,
    anchors: HashMap<usize, Value>,
    index: LineIndex,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.events.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(SyntaxError {
                line: self.index.start_line,
                message: "unexpected end of document".into(),
            }),
        }
    }

    fn scan_error(&self, e: &ScanError) -> SyntaxError {
        SyntaxError {
            line: e.marker().line() + self.line_offset,
            message: e.info().to_string(),
        }
    }

    fn line(&self, span: &Span) -> usize {
        span.start.line() + self.line_offset
    }

    fn document(&mut self) -> Result<Value, SyntaxError> {
        let mut value = Value::Null;
        let mut seen_document = false;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    if seen_document {
                        return Err(SyntaxError {
                            line: self.line(&span),
                            message: "more than one document in a chunk".into(),
                        });
                    }
                    seen_document = true;
                    value = self.node(String::new())?;
                }
                Event::StreamEnd => return Ok(value),
                other => {
                    return Err(SyntaxError {
                        line: self.line(&span),
                        message: format!("unexpected YAML event {other:?}"),
                    });
                }
            }
        }
    }

    /// Reads one node whose normalised path is `path`.
    fn node(&mut self, path: String) -> Result<Value, SyntaxError> {
        let (event, span) = self.next()?;
        let line = self.line(&span);
        self.index.lines.entry(path.clone()).or_insert(line);
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                (scalar(&text, style, tag.as_deref()), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    if self.peek_end()? {
                        break;
                    }
                    let item_path = format!("{path}[{}]", items.len());
                    items.push(self.node(item_path)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (Value::Object(self.mapping(&path)?), anchor),
            Event::Alias(id) => {
                let v = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line,
                    message: "alias refers to an unknown anchor".into(),
                })?;
                (v, 0)
            }
            other => {
                return Err(SyntaxError {
                    line,
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn mapping(&mut self, path: &str) -> Result<Map<String, Value>, SyntaxError> {
        let mut map = Map::new();
        let mut merged = Vec::new();
        loop {
            if self.peek_end()? {
                break;
            }
            let (key, key_line) = self.key()?;
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            // The line of a field is the line of its key, not of its value.
            self.index.lines.insert(child.clone(), key_line);
            let value = self.node(child)?;
            if key == "<<" {
                // YAML 1.1 merge key, which Kubernetes manifests use.
                match value {
                    Value::Object(m) => merged.push(m),
                    Value::Array(items) => {
                        merged.extend(items.into_iter().filter_map(|v| match v {
                            Value::Object(m) => Some(m),
                            _ => None,
                        }))
                    }
                    _ => {}
                }
                continue;
            }
            if map.contains_key(&key) {
                return Err(SyntaxError {
                    line: key_line,
                    message: format!("duplicate key {key:?}"),
                });
            }
            map.insert(key, value);
        }
        for m in merged {
            for (k, v) in m {
                map.entry(k).or_insert(v);
            }
        }
        Ok(map)
    }

    /// Reads a mapping key, which must be a scalar (or an alias of one).
    fn key(&mut self) -> Result<(String, usize), SyntaxError> {
        let (event, span) = self.next()?;
        let line = self.line(&span);
        let value = match event {
            Event::Scalar(text, style, _, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                scalar(&text, style, tag.as_deref())
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().unwrap_or(Value::Null),
            _ => Value::Array(Vec::new()),
        };
        let key = match value {
            Value::String(s) => s,
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(SyntaxError {
                    line,
                    message: "mapping keys must be scalars".into(),
                });
            }
        };
        Ok((key, line))
    }

    /// Consumes a SequenceEnd/MappingEnd if it is next.
    fn peek_end(&mut self) -> Result<bool, SyntaxError> {
        match self.events.peek() {
            Some(Ok((Event::SequenceEnd | Event::MappingEnd, _))) => {
                self.next()?;
                Ok(true)
            }
            Some(Err(e)) => {
                let e = e.clone();
                Err(self.scan_error(&e))
            }
            _ => Ok(false),
        }
    }
}

/// Resolves a scalar with the YAML 1.2 core schema (what JSON-minded tools expect:
/// `on`/`off`/`yes`/`no` stay strings).
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int" | "float") => {
            if let Some(n) = number(text) {
                return Value::Number(n);
            }
        }
        Some("bool") => match text {
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        },
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => number(text).map_or_else(|| Value::String(text.to_string()), Value::Number),
    }
}

fn number(text: &str) -> Option<Number> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.is_empty() {
        return None;
    }
    if let Some(hex) = unsigned.strip_prefix("0x") {
        let v = i64::from_str_radix(hex, 16).ok()?;
        return Some(Number::from(if text.starts_with('-') { -v } else { v }));
    }
    if let Some(oct) = unsigned.strip_prefix("0o") {
        let v = i64::from_str_radix(oct, 8).ok()?;
        return Some(Number::from(if text.starts_with('-') { -v } else { v }));
    }
    if unsigned.bytes().all(|b| b.is_ascii_digit()) {
        let clean = text.strip_prefix('+').unwrap_or(text);
        if let Ok(i) = clean.parse::<i64>() {
            return Some(Number::from(i));
        }
        if let Ok(u) = clean.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    let looks_float = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && unsigned.bytes().any(|b| b.is_ascii_digit())
        && unsigned.as_bytes()[0] != b'e'
        && unsigned.as_bytes()[0] != b'E';
    if looks_float {
        return text.parse::<f64>().ok().and_then(Number::from_f64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_lines() {
        let text = "# a comment\napiVersion: v1\nkind: A\n---\n\napiVersion: v1\nkind: B\nspec:\n  http:\n  - route:\n    - weight: 5\n";
        let docs = parse_documents(text);
        assert_eq!(docs.len(), 2);
        let a = docs[0].as_ref().expect("first parses");
        assert_eq!(a.start_line, 2);
        let b = docs[1].as_ref().expect("second parses");
        assert_eq!(b.start_line, 6);
        assert_eq!(b.value["spec"]["http"][0]["route"][0]["weight"], 5);
        let path = FieldPath::root("spec")
            .field("http")
            .index(0)
            .field("route")
            .index(0)
            .field("weight");
        assert_eq!(b.lines.line_of("", &path), 11);
        // Unknown sub-field falls back to the nearest known ancestor.
        assert_eq!(b.lines.line_of("", &path.field("nope")), 11);
    }

    #[test]
    fn a_broken_document_does_not_hide_the_others() {
        let text = "a: 1\n---\nb: [1, 2\n---\nc: 3\n";
        let docs = parse_documents(text);
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().expect_err("unclosed flow sequence");
        assert!(
            err.line >= 3,
            "error line {} points into the second document",
            err.line
        );
        assert!(docs[2].is_ok());
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs =
            parse_documents("a: on\nb: 'true'\nc: true\nd: 1.5\ne: 010\nf: ~\ng: 1e3\nh: 12abc\n");
        let v = &docs[0].as_ref().expect("parses").value;
        assert_eq!(v["a"], "on");
        assert_eq!(v["b"], "true");
        assert_eq!(v["c"], true);
        assert_eq!(v["d"], 1.5);
        assert_eq!(v["e"], 10);
        assert!(v["f"].is_null());
        assert_eq!(v["g"], 1000.0);
        assert_eq!(v["h"], "12abc");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let docs = parse_documents("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\ncopy: *b\n");
        let v = &docs[0].as_ref().expect("parses").value;
        assert_eq!(v["other"]["x"], 1);
        assert_eq!(v["other"]["y"], 3);
        assert_eq!(v["copy"]["y"], 2);
    }

    #[test]
    fn json_and_empty_documents() {
        let docs =
            parse_documents("---\n# only a comment\n---\n{\"kind\": \"List\", \"items\": []}\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].as_ref().expect("json parses").value["kind"], "List");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let docs = parse_documents("a: 1\na: 2\n");
        assert_eq!(docs[0].as_ref().expect_err("duplicate").line, 2);
    }

    #[test]
    fn map_key_paths_normalise() {
        assert_eq!(
            normalise("items[2]", "metadata.labels[app]"),
            "items[2].metadata.labels.app"
        );
        assert_eq!(normalise("", "spec.http[0]"), "spec.http[0]");
    }
}
