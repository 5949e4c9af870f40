//! Kubernetes' protobuf wire format (`application/vnd.kubernetes.protobuf`) ⇄ the JSON `Value` form.
//!
//! Why: stock kubectl's typed commands (`kubectl create namespace|configmap|secret|deployment|…`) send
//! their bodies in protobuf and every client-go program asks for protobuf first. The rest of the
//! apiserver works on `serde_json::Value` in the JSON form of the k8s-openapi types, so this module
//! transcodes between the two, generically: one transcoder driven by a field table (`table.rs`) that
//! is generated from the k8s-pb bindings (tags, wire types, labels) and k8s-openapi (JSON names,
//! required fields); see `gen.rs` and `examples/gen_pb_table.rs`. Adding a kind costs nothing.
//!
//! Wire format, as upstream's apimachinery (`runtime/serializer/protobuf`):
//! - a body is the magic `k8s\0` followed by a `runtime.Unknown` {1: typeMeta {1: apiVersion,
//!   2: kind}, 2: raw (the object's message), 3: contentEncoding, 4: contentType};
//! - a watch stream (`;stream=watch`) is a sequence of frames, each a 4-byte big-endian length and a
//!   bare `meta.v1.WatchEvent` (the "raw" serializer: no magic, no Unknown) whose `object.raw`
//!   holds the object encoded as a full body (magic + Unknown);
//! - apimachinery's special messages have JSON forms of their own: `Time`/`MicroTime` (RFC 3339),
//!   `Duration` (Go duration string), `Quantity` (string), `IntOrString` (number or string),
//!   `RawExtension`/`FieldsV1`/apiextensions `JSON` (embedded JSON), the `JSONSchemaPropsOr*`
//!   unions, and Go named slices (`ExtraValue`, `Verbs`: a bare array); `bytes` are base64.
//!
//! Presence: upstream is gogo-protobuf over Go structs, which writes every non-pointer field, zero
//! values included (kubectl's `create namespace x` carries `generateName: ""`, `generation: 0`,
//! `status.phase: ""`). Upstream then renders JSON with `omitempty`, so those zeros vanish. We do
//! the same on decode: an optional string field that is present but empty is dropped (Go value
//! strings are the rule, and `""` is never a meaningful enum value), except in [`KEEP_EMPTY`];
//! a present `false`/`0` is kept (a Go pointer's explicit zero is meaningful, and for value fields
//! a zero means the same as absence) except for the fields in [`GO_VALUE_SCALARS`], known Go value
//! fields that clients always send and whose zero must read as unset (e.g. `nodePort: 0`).
//! Required fields (not `Option` in k8s-openapi) keep their zeros. Absent fields stay absent;
//! empty repeated fields and maps are absent; a present message is an object (`{}` if empty).
//! On encode, exactly the JSON's fields are written, in tag order, map keys sorted (as gogo).
//!
//! Bad input (wrong magic, truncated varints or lengths, wrong wire types, groups, invalid UTF-8,
//! over-deep nesting, unknown kinds) is an `Err` with a message for a 400; unknown field numbers are
//! skipped, as upstream does. Nothing here panics on input.

#[cfg(test)]
mod gen;
mod order;
mod table;
#[cfg(test)]
mod tests;

pub use order::canonicalize;

use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
/// Every protobuf body starts with this.
pub const MAGIC: &[u8] = b"k8s\0";

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const MAX_DEPTH: usize = 100;

/// Optional string fields whose present `""` is kept on decode: Go `*string` fields where the empty
/// string means something (a PVC's `storageClassName: ""` asks for no class, not the default).
const KEEP_EMPTY: &[(&str, &str)] = &[
    (
        "k8s.io.api.core.v1.PersistentVolumeClaimSpec",
        "storageClassName",
    ),
    (
        "k8s.io.api.core.v1.PersistentVolumeClaimSpec",
        "volumeAttributesClassName",
    ),
];

/// Go value-typed (non-pointer) optional bool/int fields that Go clients always send, whose zero
/// upstream's `omitempty` drops. Taken from what kubectl's typed commands send (see the pinned
/// captures in `testdata/`); anything not listed keeps an explicit zero.
const GO_VALUE_SCALARS: &[(&str, &str)] = &[
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "generation",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta",
        "remainingItemCount",
    ),
    ("k8s.io.api.core.v1.ServicePort", "nodePort"),
    ("k8s.io.api.core.v1.ServiceSpec", "publishNotReadyAddresses"),
    ("k8s.io.api.core.v1.ContainerPort", "hostPort"),
    ("k8s.io.api.core.v1.Container", "stdin"),
    ("k8s.io.api.core.v1.Container", "stdinOnce"),
    ("k8s.io.api.core.v1.Container", "tty"),
    ("k8s.io.api.core.v1.PodSpec", "hostNetwork"),
    ("k8s.io.api.core.v1.PodSpec", "hostPID"),
    ("k8s.io.api.core.v1.PodSpec", "hostIPC"),
    ("k8s.io.api.apps.v1.DeploymentSpec", "minReadySeconds"),
    ("k8s.io.api.apps.v1.DeploymentSpec", "paused"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "observedGeneration"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "replicas"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "updatedReplicas"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "readyReplicas"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "availableReplicas"),
    ("k8s.io.api.apps.v1.DeploymentStatus", "unavailableReplicas"),
    ("k8s.io.api.batch.v1.JobStatus", "active"),
    ("k8s.io.api.batch.v1.JobStatus", "succeeded"),
    ("k8s.io.api.batch.v1.JobStatus", "failed"),
    ("k8s.io.api.core.v1.ServiceSpec", "healthCheckNodePort"),
    (
        "k8s.io.api.policy.v1.PodDisruptionBudgetStatus",
        "observedGeneration",
    ),
    ("k8s.io.api.scheduling.v1.PriorityClass", "globalDefault"),
];

// ---------------------------------------------------------------------------------------------------
// The table's types (table.rs is generated against these).
// ---------------------------------------------------------------------------------------------------

/// A field's scalar type, or the index of its message in `MESSAGES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    Msg(u16),
}

/// Opt: a single value; Rep: repeated; Map: `map<string, ty>`; Inline: a Go struct embedded with
/// `json:",inline"`, whose fields sit at the parent's level in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Label {
    Opt,
    Rep,
    Map,
    Inline,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub json: &'static str,
    pub tag: u32,
    pub ty: Ty,
    pub label: Label,
    /// Not `Option` in k8s-openapi: its zero value is kept on decode.
    pub required: bool,
}

pub(crate) const fn f(json: &'static str, tag: u32, ty: Ty, label: Label, required: bool) -> Field {
    Field {
        json,
        tag,
        ty,
        label,
        required,
    }
}

#[derive(Debug)]
pub(crate) struct Message {
    /// Full proto name, e.g. `k8s.io.api.core.v1.Pod`.
    pub name: &'static str,
    /// A Go named slice (`type ExtraValue []string`): JSON is the bare array of its `items`.
    pub wrapper: bool,
    /// Indices into `fields` in the order the Go struct declares them: the order upstream writes
    /// JSON in (see [`order`]).
    pub json_order: &'static [u8],
    /// Sorted by tag.
    pub fields: &'static [Field],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    No,
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    /// RawExtension, FieldsV1, apiextensions JSON: {1: raw bytes} holding JSON.
    RawJson,
    PropsOrArray,
    PropsOrBool,
    PropsOrStringArray,
    Wrapper,
}

fn specials() -> &'static [Special] {
    static S: OnceLock<Vec<Special>> = OnceLock::new();
    S.get_or_init(|| {
        table::MESSAGES
            .iter()
            .map(|m| {
                let short = m.name.rsplit('.').next().unwrap_or_default();
                let pkg = &m.name[..m.name.len() - short.len()];
                match (pkg, short) {
                    ("k8s.io.apimachinery.pkg.apis.meta.v1.", "Time") => Special::Time,
                    ("k8s.io.apimachinery.pkg.apis.meta.v1.", "MicroTime") => Special::MicroTime,
                    ("k8s.io.apimachinery.pkg.apis.meta.v1.", "Duration") => Special::Duration,
                    ("k8s.io.apimachinery.pkg.apis.meta.v1.", "FieldsV1") => Special::RawJson,
                    ("k8s.io.apimachinery.pkg.api.resource.", "Quantity") => Special::Quantity,
                    ("k8s.io.apimachinery.pkg.util.intstr.", "IntOrString") => Special::IntOrString,
                    ("k8s.io.apimachinery.pkg.runtime.", "RawExtension") => Special::RawJson,
                    (p, s) if p.starts_with("k8s.io.apiextensions_apiserver.") => match s {
                        "JSON" | "Json" => Special::RawJson,
                        "JSONSchemaPropsOrArray" | "JsonSchemaPropsOrArray" => {
                            Special::PropsOrArray
                        }
                        "JSONSchemaPropsOrBool" | "JsonSchemaPropsOrBool" => Special::PropsOrBool,
                        "JSONSchemaPropsOrStringArray" | "JsonSchemaPropsOrStringArray" => {
                            Special::PropsOrStringArray
                        }
                        _ => Special::No,
                    },
                    _ if m.wrapper => Special::Wrapper,
                    _ => Special::No,
                }
            })
            .collect()
    })
}

fn message(i: u16) -> Result<&'static Message, String> {
    table::MESSAGES
        .get(i as usize)
        .ok_or_else(|| format!("bad message index {i}"))
}

fn message_index(name: &str) -> Option<u16> {
    table::MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}

/// Kinds registered in every group version by upstream's `metav1.AddToGroupVersion` (plus the
/// unversioned discovery kinds and meta.k8s.io's), all meta.v1 messages.
const META_KINDS: &[&str] = &[
    "Status",
    "APIVersions",
    "APIGroupList",
    "APIGroup",
    "APIResourceList",
    "WatchEvent",
    "DeleteOptions",
    "ListOptions",
    "GetOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "PartialObjectMetadata",
    "PartialObjectMetadataList",
];

/// Finds the proto message (full name) for a kind: `api_version` like `apps/v1`, `kind` like
/// `Deployment` or `DeploymentList`; meta kinds (`Status`, `DeleteOptions`, `APIGroupList`, …) in
/// any group version. `None` for custom resources, `Table` and anything upstream has no message for.
pub fn message_for(api_version: &str, kind: &str) -> Option<&'static str> {
    message_index_for(api_version, kind)
        .and_then(|i| message(i).ok())
        .map(|m| m.name)
}

fn message_index_for(api_version: &str, kind: &str) -> Option<u16> {
    if kind.is_empty() || kind.contains('.') {
        return None;
    }
    let pkg = table::PACKAGES
        .iter()
        .find(|(av, _)| *av == api_version)
        .map(|(_, p)| *p);
    if let Some(i) = pkg.and_then(|p| message_index(&format!("{p}.{kind}"))) {
        return Some(i);
    }
    if META_KINDS.contains(&kind) {
        return message_index(&format!("{META}.{kind}"));
    }
    None
}

// ---------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------

/// Decodes a `k8s\0`-prefixed body into the JSON object, `apiVersion` and `kind` (from the envelope)
/// first. Errors are human-readable (for a 400).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    decode_depth(body, 0)
}

fn decode_depth(body: &[u8], depth: usize) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body does not start with the k8s\\0 magic")?;
    let (mut api_version, mut kind) = (String::new(), String::new());
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(rest);
    while !r.done() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => {
                let mut t = Reader::new(r.len_delimited(wt)?);
                while !t.done() {
                    let (tag, wt) = t.key()?;
                    match tag {
                        1 => api_version = t.string(wt)?.to_string(),
                        2 => kind = t.string(wt)?.to_string(),
                        _ => t.skip(wt)?,
                    }
                }
            }
            2 => raw = r.len_delimited(wt)?,
            3 => {
                let enc = r.string(wt)?;
                if !enc.is_empty() {
                    return Err(format!("unsupported protobuf contentEncoding {enc:?}"));
                }
            }
            4 => {
                let ct = r.string(wt)?;
                if !ct.is_empty() && !ct.starts_with(MEDIA_TYPE) {
                    return Err(format!("unsupported protobuf contentType {ct:?}"));
                }
            }
            _ => r.skip(wt)?,
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err("protobuf envelope has no apiVersion/kind".into());
    }
    let idx = message_index_for(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf message for {api_version}, Kind={kind}"))?;
    let body = decode_message(idx, raw, depth + 1)?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    out.extend(body);
    Ok(Value::Object(out))
}

/// Encodes a JSON object carrying `apiVersion` and `kind` into a `k8s\0` body.
pub fn encode(obj: &Value) -> Result<Vec<u8>, String> {
    encode_depth(obj, 0)
}

fn encode_depth(obj: &Value, depth: usize) -> Result<Vec<u8>, String> {
    let t = typed(obj)?;
    envelope(t.api_version, t.kind, 256, |out| {
        encode_into(t.idx, t.fields, depth + 1, out)
    })
}

/// An object to encode: its `apiVersion`, `kind`, message and fields.
struct Typed<'a> {
    api_version: &'a str,
    kind: &'a str,
    idx: u16,
    fields: &'a Map<String, Value>,
}

fn typed(obj: &Value) -> Result<Typed<'_>, String> {
    let map = obj
        .as_object()
        .ok_or("object to encode is not a JSON object")?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("object has no apiVersion")?;
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("object has no kind")?;
    let idx = message_index_for(api_version, kind)
        .ok_or_else(|| format!("no protobuf message for {api_version}, Kind={kind}"))?;
    Ok(Typed {
        api_version,
        kind,
        idx,
        fields: map,
    })
}

/// An object's message alone, without [`encode`]'s envelope: what a list carries as an item, and
/// what [`encode_watch_event_message`] wraps (the watch cache keeps it to encode an object once).
pub fn encode_message(obj: &Value) -> Result<Vec<u8>, String> {
    typed(obj)?.message()
}

impl Typed<'_> {
    /// [`encode_message`] of this object.
    fn message(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(256);
        encode_into(self.idx, self.fields, 1, &mut out)?;
        Ok(out)
    }
}

/// Encodes a list (`list_kind` like `PodList`) from its metadata and its items' messages
/// ([`encode_message`]): a list of thousands of cached objects is never copied into one JSON tree,
/// and an item already encoded is not encoded again.
pub fn encode_list<M: AsRef<[u8]>>(
    api_version: &str,
    list_kind: &str,
    metadata: &Value,
    items: impl IntoIterator<Item = Result<M, String>>,
) -> Result<Vec<u8>, String> {
    let idx = message_index_for(api_version, list_kind)
        .ok_or_else(|| format!("no protobuf message for {api_version}, Kind={list_kind}"))?;
    let msg = message(idx)?;
    let mut items = items.into_iter();
    envelope(
        api_version,
        list_kind,
        64 + items.size_hint().0 * 1024,
        |out| {
            for fl in msg.fields {
                match fl.json {
                    "metadata" => encode_value(fl.ty, fl.tag, metadata, 1, out)
                        .map_err(|e| format!("metadata: {e}"))?,
                    "items" => {
                        for item in items.by_ref() {
                            let item = item.map_err(|e| format!("items: {e}"))?;
                            put_bytes(out, fl.tag, item.as_ref());
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        },
    )
}

/// A `k8s\0` body: the `runtime.Unknown` envelope around the message `write` appends (about
/// `size_hint` bytes).
fn envelope(
    api_version: &str,
    kind: &str,
    size_hint: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(size_hint + 64);
    out.extend_from_slice(MAGIC);
    put_nested(&mut out, 1, true, |out| {
        put_bytes(out, 1, api_version.as_bytes());
        put_bytes(out, 2, kind.as_bytes());
        Ok(())
    })?;
    put_nested(&mut out, 2, true, write)?;
    // Upstream writes the (empty) contentEncoding and contentType too.
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    Ok(out)
}

/// One frame of a `application/vnd.kubernetes.protobuf;stream=watch` response: a 4-byte big-endian
/// length, then a bare `meta.v1.WatchEvent` {1: type, 2: object (RawExtension)} whose raw bytes are
/// the object's full [`encode`]ing (as upstream: the stream serializer is the "raw" protobuf
/// serializer, the embedded object uses the enveloped one).
pub fn encode_watch_event(event_type: &str, obj: &Value) -> Result<Vec<u8>, String> {
    let t = typed(obj)?;
    encode_watch_event_message(event_type, t.api_version, t.kind, &t.message()?)
}

/// [`encode_watch_event`] of an object whose message ([`encode_message`]) is `message`.
pub fn encode_watch_event_message(
    event_type: &str,
    api_version: &str,
    kind: &str,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let inner = envelope(api_version, kind, message.len(), |out| {
        out.extend_from_slice(message);
        Ok(())
    })?;
    let mut out = Vec::with_capacity(inner.len() + event_type.len() + 24);
    out.extend_from_slice(&[0; 4]);
    put_bytes(&mut out, 1, event_type.as_bytes());
    put_nested(&mut out, 2, true, |raw_ext| {
        put_bytes(raw_ext, 1, &inner);
        Ok(())
    })?;
    let len = u32::try_from(out.len() - 4).map_err(|_| "watch event too large")?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Reads one watch frame from the front of `buf`: `Ok(None)` if it holds no complete frame yet,
/// else the event type, the decoded object and the bytes consumed.
pub fn decode_watch_frame(buf: &[u8]) -> Result<Option<(String, Value, usize)>, String> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let Some(frame) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let (mut ty, mut obj) = (String::new(), None);
    let mut r = Reader::new(frame);
    while !r.done() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => ty = r.string(wt)?.to_string(),
            2 => {
                let mut e = Reader::new(r.len_delimited(wt)?);
                while !e.done() {
                    let (tag, wt) = e.key()?;
                    match tag {
                        1 => obj = Some(decode(e.len_delimited(wt)?)?),
                        _ => e.skip(wt)?,
                    }
                }
            }
            _ => r.skip(wt)?,
        }
    }
    let obj = obj.ok_or("watch event has no object")?;
    Ok(Some((ty, obj, 4 + len)))
}

// ---------------------------------------------------------------------------------------------------
// Wire reading
// ---------------------------------------------------------------------------------------------------

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn key(&mut self) -> Result<(u32, u8), String> {
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| "field number out of range")?;
        if tag == 0 {
            return Err("field number 0".into());
        }
        Ok((tag, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len_delimited(&mut self, wt: u8) -> Result<&'a [u8], String> {
        if wt != LEN {
            return Err(format!(
                "wire type {wt} where a length-delimited field was expected"
            ));
        }
        let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
        self.take(n)
    }

    fn string(&mut self, wt: u8) -> Result<&'a str, String> {
        std::str::from_utf8(self.len_delimited(wt)?)
            .map_err(|_| "string field is not valid UTF-8".to_string())
    }

    fn skip(&mut self, wt: u8) -> Result<(), String> {
        match wt {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => self.len_delimited(wt).map(|_| ()),
            FIXED32 => self.take(4).map(|_| ()),
            _ => Err(format!("unsupported wire type {wt}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Wire writing
// ---------------------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, tag: u32, wt: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wt));
}

/// Writes a length-delimited field whose bytes `write` appends to `out` in place: the length is
/// reserved as one byte and widened afterwards if the message is longer (rare for the small nested
/// messages objects are made of), so nested messages are not each built in a buffer of their own and
/// copied into their parent. An empty message is left out unless `keep_empty`.
fn put_nested(
    out: &mut Vec<u8>,
    tag: u32,
    keep_empty: bool,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let key_at = out.len();
    put_key(out, tag, LEN);
    let len_at = out.len();
    out.push(0);
    write(out)?;
    let len = out.len() - len_at - 1;
    if len == 0 && !keep_empty {
        out.truncate(key_at);
    } else if len < 0x80 {
        out[len_at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, len as u64);
        out.splice(len_at..len_at + 1, prefix);
    }
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    put_key(out, tag, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

// ---------------------------------------------------------------------------------------------------
// Decoding messages
// ---------------------------------------------------------------------------------------------------

fn wrong_type(msg: &Message, fl: &Field, wt: u8) -> String {
    format!("{}.{}: unexpected wire type {wt}", short(msg.name), fl.json)
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Whether a present zero scalar is kept (see the module docs).
fn keep_zero(msg: &Message, fl: &Field) -> bool {
    if fl.required {
        return true;
    }
    match fl.ty {
        Ty::Str | Ty::Bytes => KEEP_EMPTY.contains(&(msg.name, fl.json)),
        _ => !GO_VALUE_SCALARS.contains(&(msg.name, fl.json)),
    }
}

fn decode_message(idx: u16, buf: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    decode_into(idx, buf, depth, &mut out)?;
    Ok(out)
}

fn decode_into(
    idx: u16,
    buf: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("protobuf message nested too deeply".into());
    }
    let msg = message(idx)?;
    let mut r = Reader::new(buf);
    while !r.done() {
        let (tag, wt) = r.key()?;
        let Ok(fi) = msg.fields.binary_search_by_key(&tag, |f| f.tag) else {
            r.skip(wt)?;
            continue;
        };
        let fl = &msg.fields[fi];
        match fl.label {
            Label::Inline => {
                let Ty::Msg(child) = fl.ty else {
                    return Err(wrong_type(msg, fl, wt));
                };
                let b = r
                    .len_delimited(wt)
                    .map_err(|e| format!("{}: {e}", fl.json))?;
                decode_into(child, b, depth + 1, out)?;
            }
            Label::Opt => match decode_value(msg, fl, &mut r, wt, depth)? {
                Some(v)
                    if is_zero(&v)
                        && matches!(
                            fl.ty,
                            Ty::Str | Ty::Bytes | Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64
                        )
                        && !keep_zero(msg, fl) =>
                {
                    out.remove(fl.json);
                }
                Some(v) => {
                    out.insert(fl.json.to_string(), v);
                }
                None => {
                    out.remove(fl.json);
                }
            },
            Label::Rep => {
                let packed = wt == LEN && matches!(fl.ty, Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64);
                let entry = out
                    .entry(fl.json.to_string())
                    .or_insert_with(|| Value::Array(vec![]));
                let Value::Array(arr) = entry else {
                    return Err(format!(
                        "{}.{}: repeated field clashes",
                        short(msg.name),
                        fl.json
                    ));
                };
                if packed {
                    let mut p = Reader::new(r.len_delimited(wt)?);
                    let inner = if fl.ty == Ty::F64 { FIXED64 } else { VARINT };
                    while !p.done() {
                        if let Some(v) = decode_value(msg, fl, &mut p, inner, depth)? {
                            arr.push(v);
                        }
                    }
                } else {
                    let v = decode_value(msg, fl, &mut r, wt, depth)?;
                    arr.push(v.unwrap_or(Value::Null));
                }
            }
            Label::Map => {
                let mut e = Reader::new(
                    r.len_delimited(wt)
                        .map_err(|e| format!("{}: {e}", fl.json))?,
                );
                let (mut key, mut val) = (String::new(), None);
                while !e.done() {
                    let (tag, wt) = e.key()?;
                    match tag {
                        1 => key = e.string(wt)?.to_string(),
                        2 => val = decode_value(msg, fl, &mut e, wt, depth)?,
                        _ => e.skip(wt)?,
                    }
                }
                // A map entry without a value holds the value type's zero.
                let val = match val {
                    Some(v) => v,
                    None => zero_value(fl.ty, depth)?,
                };
                let entry = out
                    .entry(fl.json.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(m) = entry else {
                    return Err(format!(
                        "{}.{}: map field clashes",
                        short(msg.name),
                        fl.json
                    ));
                };
                m.insert(key, val);
            }
        }
    }
    Ok(())
}

fn zero_value(ty: Ty, depth: usize) -> Result<Value, String> {
    Ok(match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::I32 | Ty::I64 | Ty::F64 => Value::Number(0.into()),
        Ty::Msg(i) => decode_msg_value(i, &[], depth + 1)?.unwrap_or(Value::Null),
    })
}

/// Decodes one value of `fl`'s type at the reader. `None`: the value reads as absent in JSON.
fn decode_value(
    msg: &Message,
    fl: &Field,
    r: &mut Reader,
    wt: u8,
    depth: usize,
) -> Result<Option<Value>, String> {
    let ctx = |e: String| format!("{}.{}: {e}", short(msg.name), fl.json);
    Ok(Some(match fl.ty {
        Ty::Str => Value::String(r.string(wt).map_err(ctx)?.to_string()),
        Ty::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(r.len_delimited(wt).map_err(ctx)?),
        ),
        Ty::Bool | Ty::I32 | Ty::I64 => {
            if wt != VARINT {
                return Err(wrong_type(msg, fl, wt));
            }
            let v = r.varint().map_err(ctx)?;
            match fl.ty {
                Ty::Bool => Value::Bool(v != 0),
                Ty::I32 => Value::Number((v as i32).into()),
                _ => Value::Number((v as i64).into()),
            }
        }
        Ty::F64 => {
            if wt != FIXED64 {
                return Err(wrong_type(msg, fl, wt));
            }
            let b = r.take(8).map_err(ctx)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            float_value(f64::from_le_bytes(a))
        }
        Ty::Msg(i) => {
            let b = r.len_delimited(wt).map_err(ctx)?;
            return decode_msg_value(i, b, depth + 1).map_err(ctx);
        }
    }))
}

/// Go renders integral floats without a fraction (`1`, not `1.0`).
fn float_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Number((f as i64).into())
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Scalar fields of a small special message, by tag.
/// (tag, wire type, varint value, length-delimited bytes) of one field.
type SmallField<'a> = (u32, u8, u64, &'a [u8]);

fn small_fields(buf: &[u8]) -> Result<Vec<SmallField<'_>>, String> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.done() {
        let (tag, wt) = r.key()?;
        match wt {
            VARINT => out.push((tag, wt, r.varint()?, &[][..])),
            LEN => out.push((tag, wt, 0, r.len_delimited(wt)?)),
            _ => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn decode_msg_value(idx: u16, buf: &[u8], depth: usize) -> Result<Option<Value>, String> {
    if depth > MAX_DEPTH {
        return Err("protobuf message nested too deeply".into());
    }
    let special = specials().get(idx as usize).copied().unwrap_or(Special::No);
    let get_varint =
        |fields: &[(u32, u8, u64, &[u8])], tag: u32, name: &str| -> Result<u64, String> {
            let mut v = 0;
            for (t, wt, n, _) in fields {
                if *t == tag {
                    if *wt != VARINT {
                        return Err(format!("{name}: wrong wire type"));
                    }
                    v = *n;
                }
            }
            Ok(v)
        };
    let get_bytes = |fields: &[(u32, u8, u64, &'_ [u8])],
                     tag: u32,
                     name: &str|
     -> Result<Option<Vec<u8>>, String> {
        let mut v = None;
        for (t, wt, _, b) in fields {
            if *t == tag {
                if *wt != LEN {
                    return Err(format!("{name}: wrong wire type"));
                }
                v = Some(b.to_vec());
            }
        }
        Ok(v)
    };
    let utf8 = |b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| "string field is not valid UTF-8".to_string())
    };
    Ok(match special {
        Special::No => Some(Value::Object(decode_message(idx, buf, depth)?)),
        Special::Time | Special::MicroTime => {
            if buf.is_empty() {
                return Ok(None);
            }
            let f = small_fields(buf)?;
            let secs = get_varint(&f, 1, "Time.seconds")? as i64;
            let nanos = get_varint(&f, 2, "Time.nanos")? as i32;
            Some(Value::String(format_time(
                secs,
                nanos,
                special == Special::MicroTime,
            )?))
        }
        Special::Duration => {
            let f = small_fields(buf)?;
            Some(Value::String(format_duration(
                get_varint(&f, 1, "Duration")? as i64,
            )))
        }
        Special::Quantity => {
            let f = small_fields(buf)?;
            let s = get_bytes(&f, 1, "Quantity")?.map(utf8).transpose()?;
            Some(Value::String(
                s.filter(|s| !s.is_empty()).unwrap_or_else(|| "0".into()),
            ))
        }
        Special::IntOrString => {
            let f = small_fields(buf)?;
            if get_varint(&f, 1, "IntOrString.type")? == 1 {
                Some(Value::String(
                    get_bytes(&f, 3, "IntOrString.strVal")?
                        .map(utf8)
                        .transpose()?
                        .unwrap_or_default(),
                ))
            } else {
                Some(Value::Number(
                    (get_varint(&f, 2, "IntOrString.intVal")? as i32).into(),
                ))
            }
        }
        Special::RawJson => {
            let f = small_fields(buf)?;
            match get_bytes(&f, 1, "raw")? {
                None => None,
                Some(b) if b.is_empty() => None,
                Some(b) if b.starts_with(MAGIC) => Some(decode_depth(&b, depth + 1)?),
                Some(b) => {
                    Some(serde_json::from_slice(&b).map_err(|e| format!("embedded JSON: {e}"))?)
                }
            }
        }
        Special::PropsOrBool | Special::PropsOrArray | Special::PropsOrStringArray => {
            let obj = decode_message(idx, buf, depth)?;
            // Field names in the table are the fallback lowerCamel names of the prost fields.
            let schema = obj.get("schema").cloned();
            match special {
                Special::PropsOrBool => {
                    Some(schema.unwrap_or_else(|| {
                        obj.get("allows").cloned().unwrap_or(Value::Bool(false))
                    }))
                }
                Special::PropsOrArray => match obj.get("jsonSchemas").cloned() {
                    Some(a) => Some(a),
                    None => schema,
                },
                _ => match obj.get("property").cloned() {
                    Some(a) => Some(a),
                    None => schema,
                },
            }
        }
        Special::Wrapper => {
            let msg = message(idx)?;
            let mut obj = decode_message(idx, buf, depth)?;
            let items = msg.fields.first().and_then(|f| obj.remove(f.json));
            Some(items.unwrap_or(Value::Array(vec![])))
        }
    })
}

// ---------------------------------------------------------------------------------------------------
// Encoding messages
// ---------------------------------------------------------------------------------------------------

fn encode_into(
    idx: u16,
    obj: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("object nested too deeply".into());
    }
    let msg = message(idx)?;
    for fl in msg.fields {
        let ctx = |e: String| format!("{}: {e}", fl.json);
        if fl.label == Label::Inline {
            let Ty::Msg(child) = fl.ty else { continue };
            put_nested(out, fl.tag, false, |out| {
                encode_into(child, obj, depth + 1, out)
            })?;
            continue;
        }
        let Some(v) = obj.get(fl.json) else { continue };
        if v.is_null() {
            continue;
        }
        match fl.label {
            Label::Opt | Label::Inline => {
                encode_value(fl.ty, fl.tag, v, depth, out).map_err(ctx)?
            }
            Label::Rep => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| ctx("expected an array".into()))?;
                for item in arr {
                    encode_value(fl.ty, fl.tag, item, depth, out).map_err(ctx)?;
                }
            }
            Label::Map => {
                let m = v
                    .as_object()
                    .ok_or_else(|| ctx("expected an object".into()))?;
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    if let Some(val) = m.get(k).filter(|v| !v.is_null()) {
                        encode_value(fl.ty, 2, val, depth, &mut entry)
                            .map_err(|e| format!("{}[{k}]: {e}", fl.json))?;
                    }
                    put_bytes(out, fl.tag, &entry);
                }
            }
        }
    }
    Ok(())
}

fn as_int(v: &Value) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        _ => Err(format!("expected an integer, got {v}")),
    }
}

fn encode_value(
    ty: Ty,
    tag: u32,
    v: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match ty {
        Ty::Str => put_bytes(
            out,
            tag,
            v.as_str()
                .ok_or_else(|| format!("expected a string, got {v}"))?
                .as_bytes(),
        ),
        Ty::Bytes => {
            let s = v
                .as_str()
                .ok_or_else(|| format!("expected a base64 string, got {v}"))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64: {e}"))?;
            put_bytes(out, tag, &b);
        }
        Ty::Bool => {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("expected a boolean, got {v}"))?;
            put_key(out, tag, VARINT);
            put_varint(out, u64::from(b));
        }
        Ty::I32 => {
            let i = as_int(v)?;
            let i = i32::try_from(i).map_err(|_| format!("{i} out of int32 range"))?;
            put_key(out, tag, VARINT);
            put_varint(out, i64::from(i) as u64);
        }
        Ty::I64 => {
            put_key(out, tag, VARINT);
            put_varint(out, as_int(v)? as u64);
        }
        Ty::F64 => {
            let f = v
                .as_f64()
                .ok_or_else(|| format!("expected a number, got {v}"))?;
            put_key(out, tag, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Ty::Msg(i) => put_nested(out, tag, true, |out| encode_msg_value(i, v, depth + 1, out))?,
    }
    Ok(())
}

/// Writes the message `idx` for `v` (without its key and length) to `out`.
fn encode_msg_value(idx: u16, v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("object nested too deeply".into());
    }
    let special = specials().get(idx as usize).copied().unwrap_or(Special::No);
    match special {
        Special::No => {
            let m = v
                .as_object()
                .ok_or_else(|| format!("expected an object, got {}", kind_of(v)))?;
            encode_into(idx, m, depth, out)?;
        }
        Special::Time | Special::MicroTime => {
            let s = v
                .as_str()
                .ok_or_else(|| format!("expected an RFC 3339 time, got {v}"))?;
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("invalid time {s:?}: {e}"))?;
            put_key(out, 1, VARINT);
            put_varint(out, t.timestamp() as u64);
            let nanos = t.timestamp_subsec_nanos();
            if nanos != 0 {
                put_key(out, 2, VARINT);
                put_varint(out, u64::from(nanos));
            }
        }
        Special::Duration => {
            let s = v
                .as_str()
                .ok_or_else(|| format!("expected a duration string, got {v}"))?;
            put_key(out, 1, VARINT);
            put_varint(out, parse_duration(s)? as u64);
        }
        Special::Quantity => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("expected a quantity, got {v}")),
            };
            put_bytes(out, 1, s.as_bytes());
        }
        Special::IntOrString => {
            // gogo writes all three fields.
            let (ty, i, s) = match v {
                Value::String(s) => (1u64, 0i32, s.as_str()),
                Value::Number(_) => {
                    let i = as_int(v)?;
                    (
                        0,
                        i32::try_from(i).map_err(|_| format!("{i} out of int32 range"))?,
                        "",
                    )
                }
                _ => return Err(format!("expected an integer or a string, got {v}")),
            };
            put_key(out, 1, VARINT);
            put_varint(out, ty);
            put_key(out, 2, VARINT);
            put_varint(out, i64::from(i) as u64);
            put_bytes(out, 3, s.as_bytes());
        }
        Special::RawJson => {
            let b = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            put_bytes(out, 1, &b);
        }
        Special::PropsOrBool | Special::PropsOrArray | Special::PropsOrStringArray => {
            let msg = message(idx)?;
            let field = |name: &str| msg.fields.iter().find(|f| f.json == name);
            let mut shadow = Map::new();
            match (special, v) {
                (Special::PropsOrBool, Value::Bool(b)) => {
                    shadow.insert("allows".into(), Value::Bool(*b));
                }
                (Special::PropsOrBool, Value::Object(_)) => {
                    shadow.insert("allows".into(), Value::Bool(true));
                    shadow.insert("schema".into(), v.clone());
                }
                (Special::PropsOrArray, Value::Array(_)) => {
                    shadow.insert("jsonSchemas".into(), v.clone());
                }
                (Special::PropsOrStringArray, Value::Array(_)) => {
                    shadow.insert("property".into(), v.clone());
                }
                (_, Value::Object(_)) => {
                    shadow.insert("schema".into(), v.clone());
                }
                _ => return Err(format!("unexpected {} for {}", kind_of(v), short(msg.name))),
            }
            if field("schema").is_none() {
                return Err(format!("{} has no schema field", msg.name));
            }
            encode_into(idx, &shadow, depth, out)?;
        }
        Special::Wrapper => {
            let msg = message(idx)?;
            let fl = msg.fields.first().ok_or("empty wrapper message")?;
            let mut shadow = Map::new();
            shadow.insert(fl.json.to_string(), v.clone());
            encode_into(idx, &shadow, depth, out)?;
        }
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------------
// Time and duration
// ---------------------------------------------------------------------------------------------------

fn format_time(secs: i64, nanos: i32, micro: bool) -> Result<String, String> {
    let nanos = u32::try_from(nanos).map_err(|_| "negative nanos in Time")?;
    let t = chrono::DateTime::from_timestamp(secs, nanos).ok_or("Time out of range")?;
    Ok(if micro {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    })
}

/// Go's `time.Duration.String()`.
fn format_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rem = v % unit;
        if rem == 0 {
            return whole.to_string();
        }
        let width = unit.to_string().len() - 1;
        let f = format!("{rem:0width$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs = u / 1_000_000_000;
        let sec_part = frac(u % 60_000_000_000, 1_000_000_000);
        let (h, m) = (secs / 3600, (secs / 60) % 60);
        if h > 0 {
            format!("{h}h{m}m{sec_part}s")
        } else if m > 0 {
            format!("{m}m{sec_part}s")
        } else {
            format!("{sec_part}s")
        }
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

/// Go's `time.ParseDuration`.
fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let v = total.round() as i64;
    Ok(if neg { -v } else { v })
}
