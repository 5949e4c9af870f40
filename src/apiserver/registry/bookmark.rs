//! The object a watch's BOOKMARK event carries, as upstream writes it: the kind's empty object
//! (upstream's watch cache sends `newFunc()`, the zero-value Go struct) with only the
//! resourceVersion set, so the same bytes as upstream (a Pod's is
//! `{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12","creationTimestamp":null},
//! "spec":{"containers":null},"status":{}}`). The zero values come from upstream's Go types
//! ([`empty_objects`](super::empty_objects), generated); a custom resource's bookmark is unstructured
//! there too: kind, apiVersion and the metadata only.

use serde_json::{json, Map, Value};

use super::empty_objects::EMPTY_OBJECTS;

/// The bookmark object of `kind` in `api_version` at revision `rv`; `initial_end` marks the end of a
/// watch's initial events (`sendInitialEvents`) with upstream's annotation.
pub fn object(api_version: &str, kind: &str, rv: i64, initial_end: bool) -> Value {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), Value::String(rv.to_string()));
    let empty = EMPTY_OBJECTS
        .binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind)))
        .ok()
        .and_then(|i| serde_json::from_str::<Map<String, Value>>(EMPTY_OBJECTS[i].2).ok());
    if empty.is_some() {
        // ObjectMeta's zero value: creationTimestamp is a struct, which omitempty keeps (as null).
        metadata.insert("creationTimestamp".into(), Value::Null);
    }
    if initial_end {
        metadata.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind.into()));
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("metadata".into(), Value::Object(metadata));
    for (field, value) in empty.into_iter().flatten() {
        if field != "metadata" {
            out.insert(field, value);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_are_upstreams_empty_objects() {
        assert_eq!(
            object("v1", "Pod", 12, false).to_string(),
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12","creationTimestamp":null},"spec":{"containers":null},"status":{}}"#
        );
        assert_eq!(
            object("apps/v1", "Deployment", 7, true).to_string(),
            r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"resourceVersion":"7","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"selector":null,"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":null}},"strategy":{}},"status":{}}"#
        );
    }

    #[test]
    fn protobuf_clients_decode_them() {
        use crate::apiserver::wire::protobuf;
        let mut encoded = 0;
        for (v, k, _) in EMPTY_OBJECTS {
            let obj = object(v, k, 5, false);
            let Ok(bytes) = protobuf::encode(&obj) else {
                continue; // alpha and beta kinds this build has no protobuf message for
            };
            let back = protobuf::decode(&bytes).unwrap_or_else(|e| panic!("{v} {k}: {e}"));
            assert_eq!(back["metadata"]["resourceVersion"], "5", "{v} {k}");
            encoded += 1;
        }
        // Every stable kind (101 of 161 at v1.33).
        assert!(encoded > 100, "{encoded}");
    }

    #[test]
    fn custom_resources_carry_their_metadata_only() {
        assert_eq!(
            object("example.com/v1", "Widget", 3, false).to_string(),
            r#"{"kind":"Widget","apiVersion":"example.com/v1","metadata":{"resourceVersion":"3"}}"#
        );
    }

    #[test]
    fn the_table_is_sorted_for_lookup() {
        assert!(EMPTY_OBJECTS
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        for (v, k, text) in EMPTY_OBJECTS {
            assert!(
                serde_json::from_str::<Map<String, Value>>(text).is_ok(),
                "{v} {k}"
            );
        }
    }
}
