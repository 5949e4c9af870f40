//! An object's stored JSON read without decoding it into a tree.
//!
//! The watch cache keeps each version as the JSON it is served as plus a small view of it (see
//! [`super::cached_object`]). Both can be had from the stored bytes directly: the served JSON is the
//! stored JSON with the revision written into `metadata.resourceVersion` (stored as `""`, see
//! `store::encode_stored`), and the view needs only a few members. Reading the members as raw slices
//! skips everything else (a pod's containers, volumes, managed fields) without allocating, which
//! costs a fraction of decoding a `serde_json::Value` and encoding it back, the work every change
//! and every object of a page read from storage otherwise paid.
//!
//! The answers are the ones the decoded tree gives: [`Wanted::pick`] on a tree and
//! [`Wanted::pick_members`] on the stored bytes build the same view, and [`served`] writes the bytes
//! `serde_json` writes for the stamped tree (stored JSON is `serde_json`'s compact output, so copying
//! its members is writing them again).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An object's members as raw JSON, in order; nothing below them is decoded.
pub struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of a JSON object; `None` for anything else.
    pub fn parse(json: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    fn of(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    /// Member `name` (the last one, as a decode keeps, should a key repeat).
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(k)) = map.next_key()? {
                    members.push((k, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A member name, borrowed from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(Name)
    }
}

/// The members a view keeps, as a tree of paths: a `whole` member is copied as it is, any other
/// only for its own wanted members. A member the object lacks, or one that is not an object where
/// the path goes on, is left out, as is an object left empty.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    whole: bool,
    members: Vec<(String, Wanted)>,
}

impl Wanted {
    /// Also keeps the value at dotted `path`.
    pub fn add(&mut self, path: &str) {
        let mut at = self;
        for part in path.split('.') {
            if at.whole {
                return;
            }
            let i = match at.members.iter().position(|(k, _)| k == part) {
                Some(i) => i,
                None => {
                    at.members.push((part.to_string(), Wanted::default()));
                    at.members.len() - 1
                }
            };
            at = &mut at.members[i].1;
        }
        at.whole = true;
        at.members.clear();
    }

    /// The view of a decoded object.
    pub fn pick(&self, obj: &Value) -> Value {
        self.pick_tree(obj)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn pick_tree(&self, v: &Value) -> Option<Value> {
        if self.whole {
            return Some(v.clone());
        }
        let obj = v.as_object()?;
        let view: Map<String, Value> = self
            .members
            .iter()
            .filter_map(|(k, w)| Some((k.clone(), w.pick_tree(obj.get(k)?)?)))
            .collect();
        (!view.is_empty()).then_some(Value::Object(view))
    }

    /// The view of an object's stored JSON, from its top-level members.
    pub fn pick_members(&self, members: &Members) -> Value {
        self.pick_from(members)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn pick_raw(&self, raw: &RawValue) -> Option<Value> {
        if self.whole {
            return serde_json::from_str(raw.get()).ok();
        }
        self.pick_from(&Members::of(raw)?)
    }

    fn pick_from(&self, members: &Members) -> Option<Value> {
        let view: Map<String, Value> = self
            .members
            .iter()
            .filter_map(|(k, w)| Some((k.clone(), w.pick_raw(members.get(k)?)?)))
            .collect();
        (!view.is_empty()).then_some(Value::Object(view))
    }
}

/// The JSON an object stored as `stored` (with top-level `members`) is served as at `revision`: the
/// bytes with `metadata.resourceVersion` set to it (added at the end of the metadata if missing, as
/// inserting into a decoded tree does); an object without metadata is served as stored. `None` if
/// the metadata is not valid JSON.
pub fn served(stored: &[u8], members: &Members, revision: i64) -> Option<Vec<u8>> {
    let Some(meta) = members.get("metadata") else {
        return Some(stored.to_vec());
    };
    let Some(meta_members) = Members::of(meta) else {
        // Not an object: a decoded tree would not get a resourceVersion either.
        return Some(stored.to_vec());
    };
    let rv = format!("\"{revision}\"");
    let (at, end, insert) = match meta_members.get("resourceVersion") {
        Some(old) => {
            let at = offset(stored, old.get())?;
            (at, at + old.get().len(), rv)
        }
        None => {
            // Before the metadata's closing brace.
            let close = offset(stored, meta.get())? + meta.get().len() - 1;
            let comma = if meta_members.0.is_empty() { "" } else { "," };
            (close, close, format!("{comma}\"resourceVersion\":{rv}"))
        }
    };
    let mut out = Vec::with_capacity(stored.len() + insert.len());
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&stored[end..]);
    Some(out)
}

/// Where `part`, a slice borrowed from `whole`, starts in it.
fn offset(whole: &[u8], part: &str) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at + part.len() <= whole.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the decoded path serves: the tree with the revision inserted, serialized.
    fn decoded(stored: &[u8], revision: i64) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(stored).unwrap();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn wanted(paths: &[&str]) -> Wanted {
        let mut w = Wanted::default();
        for p in paths {
            w.add(p);
        }
        w
    }

    #[test]
    fn served_json_is_the_stamped_tree_serialized() {
        let objects = [
            json!({"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "a", "resourceVersion": "", "uid": "u"}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {}}),
            json!({"metadata": {"resourceVersion": "12", "labels": {"a\"b": "é\u{1}\\"}}}),
            json!({"kind": "X", "metadata": "not an object"}),
            json!({"kind": "X"}),
            json!({"spec": {"metadata": {"resourceVersion": ""}, "n": [1.5, -2, 1e30, null, true]},
                "metadata": {"name": "é", "annotations": {"x": "{\"metadata\":{}}"}}}),
        ];
        for obj in objects {
            let stored = serde_json::to_vec(&obj).unwrap();
            let members = Members::parse(&stored).unwrap();
            assert_eq!(
                String::from_utf8(served(&stored, &members, 42).unwrap()).unwrap(),
                String::from_utf8(decoded(&stored, 42)).unwrap(),
                "{obj}"
            );
        }
        assert!(Members::parse(b"[1]").is_none());
        assert!(Members::parse(b"{\"a\":").is_none());
    }

    #[test]
    fn views_of_stored_json_and_of_the_tree_agree() {
        let w = wanted(&[
            "apiVersion",
            "kind",
            "metadata.name",
            "metadata.namespace",
            "metadata.labels",
            "spec.nodeName",
            "spec",
            "status.podIPs",
            "status.phase",
            "missing.deep.path",
        ]);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}, "uid": "u"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "1.2.3.4"},
            "missing": {"deep": 3}});
        let stored = serde_json::to_vec(&pod).unwrap();
        let view = w.pick_members(&Members::parse(&stored).unwrap());
        assert_eq!(view, w.pick(&pod));
        assert_eq!(
            view,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}})
        );
        let bare = json!({"metadata": {"uid": "u"}, "status": "x"});
        let stored = serde_json::to_vec(&bare).unwrap();
        let view = w.pick_members(&Members::parse(&stored).unwrap());
        assert_eq!(view, json!({}));
        assert_eq!(view, w.pick(&bare));
    }
}
