//! `fieldValidation` (Strict, Warn, Ignore): unknown and duplicate fields in a request body.
//!
//! Upstream's strict JSON decoder reports, in document order, every field the typed schema doesn't know
//! (`unknown field "spec.foo"`) and every key a JSON object repeats (`duplicate field "spec.paused"`).
//! Strict turns them into one 400 (`strict decoding error: ...`), Warn into `Warning` headers.
//!
//! Unknown fields are found by comparing the body with its normalized (schema-typed) form; duplicates
//! can't be seen once the body is a map, so they come from one extra pass over the raw JSON.

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::request::FieldValidation;
use crate::apiserver::status::ApiError;

type ApiResult<T> = Result<T, ApiError>;

/// The fields of `original` that the typed schema dropped: upstream's "unknown field" paths
/// (`spec.foo`, `spec.containers[0].bar`). Nulls don't count: they are how JSON spells "unset".
pub fn unknown_fields(original: &Value, normalized: &Value) -> Vec<String> {
    fn walk(o: &Value, n: &Value, path: &str, out: &mut Vec<String>) {
        match (o, n) {
            (Value::Object(om), Value::Object(nm)) => {
                for (k, v) in om {
                    if v.is_null() {
                        continue;
                    }
                    let p = join(path, k);
                    match nm.get(k) {
                        None => out.push(p),
                        Some(nv) => walk(v, nv, &p, out),
                    }
                }
            }
            (Value::Array(oa), Value::Array(na)) => {
                for (i, (a, b)) in oa.iter().zip(na).enumerate() {
                    walk(a, b, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(original, normalized, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What one pass over a JSON document saw: the keys repeated within an object, and (when asked)
/// the document position of every key path.
#[derive(Default)]
struct Scan {
    duplicates: Vec<(usize, String)>,
    positions: Option<HashMap<String, usize>>,
    seen: usize,
}

/// One JSON value at `path`, walked for repeated keys.
struct Node<'a> {
    scan: &'a mut Scan,
    path: String,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            self.scan.seen += 1;
            let at = self.scan.seen;
            if !keys.insert(key) {
                self.scan.duplicates.push((at, path.clone()));
            }
            if let Some(p) = self.scan.positions.as_mut() {
                p.entry(path.clone()).or_insert(at);
            }
            map.next_value_seed(Node {
                scan: &mut *self.scan,
                path,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Node {
                scan: &mut *self.scan,
                path: format!("{}[{i}]", self.path),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

fn scan(json: &[u8], with_positions: bool) -> Scan {
    let mut scan = Scan {
        positions: with_positions.then(HashMap::new),
        ..Scan::default()
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let node = Node {
        scan: &mut scan,
        path: String::new(),
    };
    // The body was already parsed once, so this can't fail on syntax; if it does, report nothing.
    if node.deserialize(&mut de).is_err() {
        return Scan::default();
    }
    scan
}

/// The repeated keys of a JSON document, as upstream names them (`spec.paused`, `metadata.labels.a`).
pub fn duplicate_fields(json: &[u8]) -> Vec<String> {
    scan(json, false)
        .duplicates
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Upstream's strict-decoding problems of a body, in document order: unknown fields (from the
/// normalized form) and, for JSON bodies (`raw`), duplicate fields.
fn problems(original: &Value, normalized: &Value, raw: Option<&[u8]>) -> Vec<String> {
    let unknown = unknown_fields(original, normalized);
    let first = raw.map(|r| scan(r, false)).unwrap_or_default();
    if first.duplicates.is_empty() {
        return unknown
            .into_iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
    }
    // Both kinds: order them as the document does, as upstream's single decoding pass would.
    let positions = if unknown.is_empty() {
        HashMap::new()
    } else {
        raw.map(|r| scan(r, true).positions.unwrap_or_default())
            .unwrap_or_default()
    };
    let mut all: Vec<(usize, String)> = unknown
        .into_iter()
        .map(|f| {
            let at = positions.get(&f).copied().unwrap_or(usize::MAX);
            (at, format!("unknown field {f:?}"))
        })
        .chain(
            first
                .duplicates
                .into_iter()
                .map(|(at, p)| (at, format!("duplicate field {p:?}"))),
        )
        .collect();
    all.sort_by_key(|(at, _)| *at);
    all.into_iter().map(|(_, m)| m).collect()
}

/// Applies `fieldValidation` to a body: Strict turns unknown and duplicate fields into a 400, Warn into
/// warnings (returned), Ignore drops them. `raw` is the body as sent when it was JSON.
pub fn check_fields(
    info: &ResourceInfo,
    original: &Value,
    normalized: &Value,
    raw: Option<&[u8]>,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let found = problems(original, normalized, raw);
    if mode == FieldValidation::Strict && !found.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
            info.kind,
            info.version,
            info.kind,
            found.join(", ")
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_repeated_keys_with_paths() {
        let body = br#"{"spec": {"paused": true, "replicas": 1, "paused": false,
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "image": "y"}]}}},
            "metadata": {"name": "a"}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec!["spec.paused", "spec.template.spec.containers[0].image"]
        );
        assert!(duplicate_fields(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
    }

    #[test]
    fn orders_unknown_and_duplicate_fields_as_the_document() {
        let raw = br#"{"spec": {"paused": true, "foo": 1, "paused": false}, "bar": 2}"#;
        let original: Value = serde_json::from_slice(raw).unwrap_or_default();
        let normalized = json!({"spec": {"paused": false}});
        assert_eq!(
            problems(&original, &normalized, Some(raw)),
            vec![
                r#"unknown field "spec.foo""#,
                r#"duplicate field "spec.paused""#,
                r#"unknown field "bar""#
            ]
        );
    }
}
