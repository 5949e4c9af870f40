//! One object as the watch cache keeps it: its JSON as served, and a small view of it for selectors.
//!
//! A pod decoded into a `serde_json::Value` tree takes several times its JSON's size, and the cache
//! holds every object of every resource plus a window of their recent versions. So the cache keeps
//! each version as the JSON it is served as (resourceVersion in place: a JSON list or watch frame
//! copies the bytes as they are) and a *view*: a tree of only what label and field selectors read
//! (`apiVersion`, `kind`, `metadata.name|namespace|labels` and the resource's selectable fields).
//! Both are made from the stored bytes without decoding them ([`super::stored_json`]), for every
//! change the cache applies and every object of a page read from storage. The whole tree is decoded
//! only when a consumer needs one (Tables, conversions, the server's own lookups); while anyone holds
//! a decoded tree, every other asking shares it, and a recent change's object holds it, so a change
//! sent to a thousand watchers is decoded at most once while it is recent. The protobuf encoding is
//! made the first time a protobuf list or watch asks for it, and kept with the version (about half
//! the JSON's size), so client-go's lists and watches encode each version once.
//!
//! [`Obj`] is what lists and watch events carry: such a cached object, or a tree of the response's
//! own (read from storage, converted, a bookmark).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::Value;

use super::selectors::field_sources;
use super::stored_json::{self, Members, Wanted};
use crate::apiserver::wire::protobuf;

/// The selectable fields a resource's views hold.
#[derive(Debug)]
pub struct ViewFields {
    /// Field selector names (besides `metadata.name` and `metadata.namespace`, always held).
    fields: Vec<String>,
    /// What a view keeps: the paths those fields are read from, and what every view holds.
    wanted: Wanted,
}

impl ViewFields {
    pub fn new<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> Arc<Self> {
        let mut v = ViewFields::default();
        v.add(fields);
        Arc::new(v)
    }

    /// These fields and `other`'s.
    pub fn union(&self, other: &ViewFields) -> Arc<Self> {
        let mut v = ViewFields {
            fields: self.fields.clone(),
            wanted: self.wanted.clone(),
        };
        v.add(&other.fields);
        Arc::new(v)
    }

    fn add<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) {
        for f in fields {
            let f = f.as_ref();
            if self.covers(f) {
                continue;
            }
            self.fields.push(f.to_string());
            for p in field_sources(f) {
                self.wanted.add(p);
            }
        }
    }

    /// Whether a view holds what field selector `field` reads.
    pub fn covers(&self, field: &str) -> bool {
        field == "metadata.name"
            || field == "metadata.namespace"
            || self.fields.iter().any(|f| f == field)
    }
}

impl Default for ViewFields {
    /// What every view holds: `apiVersion`, `kind`, `metadata.name|namespace|labels`.
    fn default() -> Self {
        let mut wanted = Wanted::default();
        for path in [
            "apiVersion",
            "kind",
            "metadata.name",
            "metadata.namespace",
            "metadata.labels",
        ] {
            wanted.add(path);
        }
        ViewFields {
            fields: Vec::new(),
            wanted,
        }
    }
}

/// One version of one object in the watch cache.
#[derive(Debug)]
pub struct CachedObject {
    /// The object as served in JSON (resourceVersion included).
    json: Box<[u8]>,
    /// What selectors read of it (see the module doc).
    view: Value,
    fields: Arc<ViewFields>,
    /// The object's resourceVersion.
    revision: i64,
    /// The decoded tree, while anyone holds it.
    tree: Mutex<TreeSlot>,
    /// The protobuf message ([`protobuf::encode_message`]), once one was asked for.
    protobuf: OnceLock<Result<Box<[u8]>, String>>,
}

/// Where a cached object's decoded tree is found.
#[derive(Debug, Default)]
struct TreeSlot {
    /// The tree while anyone holds it.
    shared: Weak<Value>,
    /// Held here too while the object's change is recent ([`CachedObject::release`] ends it), so that
    /// the watchers it is sent to decode it once between them.
    held: Option<Arc<Value>>,
    /// Whether a tree decoded now is to be held.
    hold: bool,
}

impl CachedObject {
    /// Keeps `tree` (already stamped with `revision`) as its JSON and view; the tree itself is shared
    /// for as long as the caller (or anyone it hands it to) holds it.
    pub fn new(tree: &Arc<Value>, revision: i64, fields: &Arc<ViewFields>) -> Self {
        // Serializing a Value can't fail (its map keys are strings).
        let json = serde_json::to_vec(&**tree).unwrap_or_default();
        CachedObject {
            json: json.into_boxed_slice(),
            view: fields.wanted.pick(tree),
            fields: fields.clone(),
            revision,
            tree: Mutex::new(TreeSlot {
                shared: Arc::downgrade(tree),
                ..TreeSlot::default()
            }),
            protobuf: OnceLock::new(),
        }
    }

    /// The object stored as `stored`, served at `revision`, without decoding it (see
    /// [`stored_json`]). A tree decoded for it later is held until [`Self::release`] if `hold`.
    /// `None` if `stored` is not JSON.
    pub fn from_stored(
        stored: &[u8],
        revision: i64,
        fields: &Arc<ViewFields>,
        hold: bool,
    ) -> Option<Self> {
        let Some(members) = Members::parse(stored) else {
            // Not an object (never written by this server): served as a decoded tree would be.
            let tree: Value = serde_json::from_slice(stored).ok()?;
            return Some(Self::new(&Arc::new(tree), revision, fields));
        };
        Some(CachedObject {
            json: stored_json::served(stored, &members, revision)?.into_boxed_slice(),
            view: fields.wanted.pick_members(&members),
            fields: fields.clone(),
            revision,
            tree: Mutex::new(TreeSlot {
                hold,
                ..TreeSlot::default()
            }),
            protobuf: OnceLock::new(),
        })
    }

    /// The object's protobuf message: encoded by the first to ask, then kept.
    pub fn protobuf_message(&self) -> Result<&[u8], String> {
        self.protobuf
            .get_or_init(|| protobuf::encode_message(&self.tree()).map(Vec::into_boxed_slice))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The object as served in JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// `apiVersion`, `kind`, `metadata.name|namespace|labels` and the selectable fields.
    pub fn view(&self) -> &Value {
        &self.view
    }

    /// The view when it holds every field in `fields` (field selector names); else `None`, and the
    /// caller needs the [`tree`](Self::tree) (a field the resource did not have when this was cached).
    pub fn view_for<'a>(&self, mut fields: impl Iterator<Item = &'a str>) -> Option<&Value> {
        fields.all(|f| self.fields.covers(f)).then_some(&self.view)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, TreeSlot> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole object: shared with whoever holds it already, else decoded from its JSON.
    pub fn tree(&self) -> Arc<Value> {
        let mut slot = self.slot();
        if let Some(t) = slot.shared.upgrade() {
            return t;
        }
        let t = Arc::new(serde_json::from_slice(&self.json).unwrap_or_else(|e| {
            // The bytes were checked as JSON when cached: only memory corruption gets here.
            tracing::error!("watch cache: a cached object does not decode: {e}");
            Value::Null
        }));
        slot.shared = Arc::downgrade(&t);
        if slot.hold {
            slot.held = Some(t.clone());
        }
        t
    }

    /// Stops holding the tree (the change is no longer recent); returns it, to be freed outside
    /// the caller's locks.
    pub fn release(&self) -> Option<Arc<Value>> {
        let mut slot = self.slot();
        slot.hold = false;
        slot.held.take()
    }
}

/// An object in a list or a watch event: the cache's (decoded only when needed), or a tree of the
/// response's own.
#[derive(Clone, Debug)]
pub enum Obj {
    Cached(Arc<CachedObject>),
    Tree(Arc<Value>),
}

impl Obj {
    /// The whole object.
    pub fn tree(&self) -> Arc<Value> {
        match self {
            Obj::Cached(c) => c.tree(),
            Obj::Tree(t) => t.clone(),
        }
    }

    /// What a selector or a conversion check reads: the cached view, or the tree.
    pub fn view(&self) -> &Value {
        match self {
            Obj::Cached(c) => c.view(),
            Obj::Tree(t) => t,
        }
    }

    /// The object's protobuf message (kept with a cached object, encoded for a tree).
    pub fn protobuf_message(&self) -> Result<Cow<'_, [u8]>, String> {
        match self {
            Obj::Cached(c) => c.protobuf_message().map(Cow::Borrowed),
            Obj::Tree(t) => protobuf::encode_message(t).map(Cow::Owned),
        }
    }

    /// Appends the object's JSON (copied as cached, or serialized).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Obj::Cached(c) => out.extend_from_slice(c.json()),
            Obj::Tree(t) => {
                let _ = serde_json::to_writer(out, &**t);
            }
        }
    }
}

impl From<Value> for Obj {
    fn from(v: Value) -> Self {
        Obj::Tree(Arc::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Arc<Value> {
        Arc::new(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"big": "x"}, "resourceVersion": "7"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "1.2.3.4"}}))
    }

    #[test]
    fn view_holds_what_selectors_read_and_json_is_the_served_form() {
        let fields =
            ViewFields::new(["spec.nodeName", "status.phase", "status.podIP", "spec.host"]);
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        assert_eq!(
            c.view(),
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}})
        );
        assert_eq!(c.json(), serde_json::to_vec(&*tree).unwrap().as_slice());
        assert!(c
            .view_for(["spec.nodeName", "metadata.name"].into_iter())
            .is_some());
        assert!(c.view_for(["status.hostIP"].into_iter()).is_none());
    }

    #[test]
    fn tree_is_shared_while_held_and_decoded_again_after() {
        let fields = ViewFields::new(Vec::<String>::new());
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        assert!(Arc::ptr_eq(&c.tree(), &tree));
        drop(tree);
        let again = c.tree();
        assert_eq!(*again, *pod());
        assert!(Arc::ptr_eq(&c.tree(), &again));
    }

    #[test]
    fn protobuf_message_is_encoded_once_and_kept() {
        let fields = ViewFields::new(Vec::<String>::new());
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        let first = c.protobuf_message().unwrap();
        assert_eq!(first, protobuf::encode_message(&tree).unwrap().as_slice());
        assert_eq!(first.as_ptr(), c.protobuf_message().unwrap().as_ptr());
        let envelope = protobuf::encode(&tree).unwrap();
        assert!(envelope.ends_with(&[first, &[0x1a, 0, 0x22, 0][..]].concat()));
    }

    #[test]
    fn fields_union() {
        let a = ViewFields::new(["spec.nodeName"]);
        let b = a.union(&ViewFields::new(["status.phase", "spec.nodeName"]));
        assert!(b.covers("spec.nodeName") && b.covers("status.phase"));
        assert!(!a.covers("status.phase"));
        let pod = json!({"spec": {"nodeName": "n", "x": 1}, "status": {"phase": "P", "y": 2}});
        assert_eq!(
            b.wanted.pick(&pod),
            json!({"spec": {"nodeName": "n"}, "status": {"phase": "P"}})
        );
    }

    /// Made from the stored bytes (resourceVersion stored empty), an object is what it is made
    /// from its stamped tree; one made to hold its tree holds it once decoded, until released.
    #[test]
    fn made_from_stored_bytes_as_from_the_tree() {
        let fields = ViewFields::new(["spec.nodeName", "status.podIP"]);
        let mut stored = (*pod()).clone();
        stored["metadata"]["resourceVersion"] = json!("");
        let stored = serde_json::to_vec(&stored).unwrap();
        let from_tree = CachedObject::new(&pod(), 7, &fields);
        let c = CachedObject::from_stored(&stored, 7, &fields, false).unwrap();
        assert_eq!(c.json(), from_tree.json());
        assert_eq!(c.view(), from_tree.view());
        assert_eq!(*c.tree(), *pod());
        let weak = Arc::downgrade(&c.tree());
        assert!(weak.upgrade().is_none(), "not held");

        let held = CachedObject::from_stored(&stored, 7, &fields, true).unwrap();
        let weak = Arc::downgrade(&held.tree());
        assert!(weak.upgrade().is_some(), "held once decoded");
        assert!(held.release().is_some());
        assert!(weak.upgrade().is_none(), "released");
        assert!(CachedObject::from_stored(b"{", 7, &fields, false).is_none());
    }
}
