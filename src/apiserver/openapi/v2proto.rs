//! The OpenAPI v2 document in gnostic's protobuf form (`openapi.v2.Document` of gnostic's
//! `openapiv2/OpenAPIv2.proto`), served for `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
//!
//! kubectl's client-side validation (`--validate=strict` when a kind's server-side validation cannot be
//! confirmed, e.g. the items of a `kind: List`) and `kubectl apply`'s fallback patch metadata fetch exactly
//! this and decode it with gnostic's Go types, then kube-openapi's `proto` package. Only the subset the
//! JSON document uses is written: Document, Info, Paths/PathItem/Operation/parameters/Responses,
//! Definitions/Schema (properties, items, `$ref`, type, format, description, required,
//! additionalProperties, allOf, enum/default as YAML) and vendor extensions (`x-*` as `NamedAny` holding
//! `Any { yaml }`; JSON text is valid YAML, which is what gnostic's consumers unmarshal).
//! Unknown JSON keys are skipped, as gnostic does for proto-less keys.

use serde_json::{Map, Value};

/// A protobuf message being written; fields go out in the order they are added.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, tag: u32, wire: u8) {
        self.varint(u64::from(tag) << 3 | u64::from(wire));
    }
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(tag, s.as_bytes());
        }
    }
    fn boolean(&mut self, tag: u32, b: bool) {
        if b {
            self.key(tag, 0);
            self.varint(1);
        }
    }
    fn int64(&mut self, tag: u32, v: i64) {
        if v != 0 {
            self.key(tag, 0);
            self.varint(v as u64);
        }
    }
    fn double(&mut self, tag: u32, v: f64) {
        if v != 0.0 {
            self.key(tag, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
    /// A sub-message, written even when empty (presence matters for oneofs).
    fn msg(&mut self, tag: u32, m: Msg) {
        self.bytes(tag, &m.0);
    }
}

fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// `Any { yaml = 2 }` holding `v` (as JSON, which is YAML).
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &serde_json::to_string(v).unwrap_or_default());
    m
}

/// `NamedAny { name = 1, value = 2 }` for each `x-` key of `o`, as field `tag`.
fn extensions(m: &mut Msg, tag: u32, o: &Map<String, Value>) {
    for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut n = Msg::default();
        n.string(1, k);
        n.msg(2, any(v));
        m.msg(tag, n);
    }
}

/// `openapi.v2.Schema`.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else { return m };
    m.string(1, str_of(o, "$ref"));
    m.string(2, str_of(o, "format"));
    m.string(3, str_of(o, "title"));
    m.string(4, str_of(o, "description"));
    if let Some(d) = o.get("default") {
        m.msg(5, any(d));
    }
    m.double(
        7,
        o.get("maximum").and_then(Value::as_f64).unwrap_or_default(),
    );
    m.double(
        9,
        o.get("minimum").and_then(Value::as_f64).unwrap_or_default(),
    );
    m.int64(
        11,
        o.get("maxLength")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
    );
    m.int64(
        12,
        o.get("minLength")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
    );
    m.string(13, str_of(o, "pattern"));
    m.int64(
        14,
        o.get("maxItems")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
    );
    m.int64(
        15,
        o.get("minItems")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
    );
    m.boolean(
        16,
        o.get("uniqueItems")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    for r in o
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or_default());
    }
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(20, any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.msg(21, a);
        }
        Some(s @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.msg(1, schema(s));
            m.msg(21, a);
        }
        _ => {}
    }
    match o.get("type") {
        Some(Value::String(t)) => {
            let mut ti = Msg::default();
            ti.string(1, t);
            m.msg(22, ti);
        }
        Some(Value::Array(ts)) => {
            let mut ti = Msg::default();
            for t in ts {
                ti.string(1, t.as_str().unwrap_or_default());
            }
            m.msg(22, ti);
        }
        _ => {}
    }
    if let Some(items) = o.get("items") {
        let mut ii = Msg::default();
        match items {
            Value::Array(xs) => xs.iter().for_each(|x| ii.msg(1, schema(x))),
            x => ii.msg(1, schema(x)),
        }
        m.msg(23, ii);
    }
    for a in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.msg(24, schema(a));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (k, s) in props {
            let mut n = Msg::default();
            n.string(1, k);
            n.msg(2, schema(s));
            p.msg(1, n);
        }
        m.msg(25, p);
    }
    m.boolean(
        27,
        o.get("readOnly")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    if let Some(e) = o.get("example") {
        m.msg(30, any(e));
    }
    extensions(&mut m, 31, o);
    m
}

/// `openapi.v2.ParametersItem` for one JSON parameter object.
fn parameter(p: &Map<String, Value>) -> Msg {
    let mut param = Msg::default();
    let loc = str_of(p, "in");
    if loc == "body" {
        let mut b = Msg::default();
        b.string(1, str_of(p, "description"));
        b.string(2, str_of(p, "name"));
        b.string(3, loc);
        b.boolean(
            4,
            p.get("required")
                .and_then(Value::as_bool)
                .unwrap_or_default(),
        );
        if let Some(s) = p.get("schema") {
            b.msg(5, schema(s));
        }
        extensions(&mut b, 6, p);
        param.msg(1, b);
    } else {
        // Query (3) and path (4) sub-schemas share their first fields; `type` is 6 for query, 5 for path.
        let (which, type_tag, unique_tag, ext_tag) = match loc {
            "path" => (4, 5, 19, 22),
            "header" => (1, 5, 19, 22),
            _ => (3, 6, 20, 23),
        };
        let mut q = Msg::default();
        q.boolean(
            1,
            p.get("required")
                .and_then(Value::as_bool)
                .unwrap_or_default(),
        );
        q.string(2, loc);
        q.string(3, str_of(p, "description"));
        q.string(4, str_of(p, "name"));
        q.string(type_tag, str_of(p, "type"));
        q.boolean(
            unique_tag,
            p.get("uniqueItems")
                .and_then(Value::as_bool)
                .unwrap_or_default(),
        );
        extensions(&mut q, ext_tag, p);
        let mut nb = Msg::default();
        nb.msg(which, q);
        param.msg(2, nb);
    }
    let mut item = Msg::default();
    item.msg(1, param);
    item
}

/// `openapi.v2.Operation`.
fn operation(op: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for t in op
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(1, t.as_str().unwrap_or_default());
    }
    m.string(3, str_of(op, "description"));
    m.string(5, str_of(op, "operationId"));
    for t in op
        .get("produces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(6, t.as_str().unwrap_or_default());
    }
    for t in op
        .get("consumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(7, t.as_str().unwrap_or_default());
    }
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object() {
            m.msg(8, parameter(p));
        }
    }
    if let Some(rs) = op.get("responses").and_then(Value::as_object) {
        let mut responses = Msg::default();
        for (code, r) in rs {
            let Some(r) = r.as_object() else { continue };
            let mut resp = Msg::default();
            resp.string(1, str_of(r, "description"));
            if let Some(s) = r.get("schema") {
                let mut si = Msg::default();
                si.msg(1, schema(s));
                resp.msg(2, si);
            }
            let mut rv = Msg::default();
            rv.msg(1, resp);
            let mut named = Msg::default();
            named.string(1, code);
            named.msg(2, rv);
            responses.msg(1, named);
        }
        m.msg(9, responses);
    }
    for t in op
        .get("schemes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(10, t.as_str().unwrap_or_default());
    }
    m.boolean(
        11,
        op.get("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    extensions(&mut m, 13, op);
    m
}

/// `openapi.v2.PathItem`.
fn path_item(item: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (verb, tag) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(verb).and_then(Value::as_object) {
            m.msg(tag, operation(op));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object() {
            m.msg(9, parameter(p));
        }
    }
    extensions(&mut m, 10, item);
    m
}

/// Encodes a Swagger 2.0 JSON document as `openapi.v2.Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    let Some(d) = doc.as_object() else { return m.0 };
    m.string(1, str_of(d, "swagger"));
    if let Some(info) = d.get("info").and_then(Value::as_object) {
        let mut i = Msg::default();
        i.string(1, str_of(info, "title"));
        i.string(2, str_of(info, "version"));
        i.string(3, str_of(info, "description"));
        m.msg(2, i);
    }
    if let Some(paths) = d.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (k, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let mut n = Msg::default();
            n.string(1, k);
            n.msg(2, path_item(item));
            p.msg(2, n);
        }
        m.msg(8, p);
    }
    if let Some(defs) = d.get("definitions").and_then(Value::as_object) {
        let mut ds = Msg::default();
        for (k, s) in defs {
            let mut n = Msg::default();
            n.string(1, k);
            n.msg(2, schema(s));
            ds.msg(1, n);
        }
        m.msg(9, ds);
    }
    extensions(&mut m, 16, d);
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal protobuf reader for the test: (tag, wire type, payload bytes or varint).
    enum F<'a> {
        V(#[allow(dead_code)] u64),
        B(&'a [u8]),
    }

    fn fields(mut b: &[u8]) -> Vec<(u32, F<'_>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let k = varint(&mut b);
            let tag = (k >> 3) as u32;
            match k & 7 {
                0 => {
                    let v = varint(&mut b);
                    assert!(v <= 1, "only bools are written as varints here");
                    out.push((tag, F::V(v)));
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((tag, F::B(&b[..n])));
                    b = &b[n..];
                }
                1 => {
                    b = &b[8..];
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    fn get(b: &[u8], tag: u32) -> Vec<&[u8]> {
        fields(b)
            .into_iter()
            .filter_map(|(t, f)| match f {
                F::B(x) if t == tag => Some(x),
                _ => None,
            })
            .collect()
    }

    fn s(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("utf8")
    }

    #[test]
    fn document_fields() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/namespaces/{namespace}/pods/{name}": {
                "parameters": [{"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true}],
                "patch": {
                    "operationId": "patchCoreV1NamespacedPod",
                    "parameters": [
                        {"name": "body", "in": "body", "required": true, "schema": {"type": "object"}},
                        {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
                    ],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}}},
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "Pod", "version": "v1"},
                },
            }},
            "definitions": {"io.k8s.api.core.v1.Pod": {
                "description": "Pod is a collection of containers.",
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "containers": {"type": "array", "items": {"$ref": "#/definitions/C"}, "x-kubernetes-patch-merge-key": "name"},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
            }},
        });
        let b = encode(&doc);
        assert_eq!(s(get(&b, 1)[0]), "2.0");
        let info = get(&b, 2)[0];
        assert_eq!(s(get(info, 1)[0]), "Kubernetes");
        assert_eq!(s(get(info, 2)[0]), "v1.33.0");

        // Paths.path (2) -> NamedPathItem {name 1, value 2}
        let named = get(get(&b, 8)[0], 2)[0];
        assert_eq!(
            s(get(named, 1)[0]),
            "/api/v1/namespaces/{namespace}/pods/{name}"
        );
        let item = get(named, 2)[0];
        // PathItem.parameters (9) -> ParametersItem.parameter (1) -> Parameter.non_body (2) -> path (4)
        let pp = get(get(get(get(item, 9)[0], 1)[0], 2)[0], 4)[0];
        assert_eq!(s(get(pp, 4)[0]), "name");
        assert_eq!(s(get(pp, 5)[0]), "string");
        let patch = get(item, 8)[0];
        assert_eq!(s(get(patch, 5)[0]), "patchCoreV1NamespacedPod");
        let params = get(patch, 8);
        assert_eq!(params.len(), 2);
        let body = get(get(params[0], 1)[0], 1)[0];
        assert_eq!(s(get(body, 2)[0]), "body");
        let q = get(get(get(params[1], 1)[0], 2)[0], 3)[0];
        assert_eq!(s(get(q, 4)[0]), "fieldValidation");
        assert_eq!(s(get(q, 2)[0]), "query");
        assert_eq!(s(get(q, 6)[0]), "string");
        let ext = get(patch, 13)[0];
        assert_eq!(s(get(ext, 1)[0]), "x-kubernetes-group-version-kind");
        let yaml = s(get(get(ext, 2)[0], 2)[0]);
        assert_eq!(
            serde_json::from_str::<Value>(yaml).expect("yaml is JSON")["kind"],
            "Pod"
        );
        let resp = get(get(patch, 9)[0], 1)[0];
        assert_eq!(s(get(resp, 1)[0]), "200");
        let r = get(get(resp, 2)[0], 1)[0];
        assert_eq!(s(get(r, 1)[0]), "OK");
        let rs = get(get(r, 2)[0], 1)[0];
        assert_eq!(s(get(rs, 1)[0]), "#/definitions/io.k8s.api.core.v1.Pod");

        // Definitions.additional_properties (1) -> NamedSchema
        let def = get(get(&b, 9)[0], 1)[0];
        assert_eq!(s(get(def, 1)[0]), "io.k8s.api.core.v1.Pod");
        let pod = get(def, 2)[0];
        assert_eq!(s(get(pod, 4)[0]), "Pod is a collection of containers.");
        assert_eq!(s(get(pod, 19)[0]), "spec");
        assert_eq!(s(get(get(pod, 22)[0], 1)[0]), "object");
        let props = get(get(pod, 25)[0], 1);
        assert_eq!(props.len(), 3);
        assert_eq!(s(get(props[0], 1)[0]), "spec");
        assert_eq!(
            s(get(get(props[0], 2)[0], 1)[0]),
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        let labels = get(props[1], 2)[0];
        let ap = get(get(labels, 21)[0], 1)[0];
        assert_eq!(s(get(get(ap, 22)[0], 1)[0]), "string");
        let containers = get(props[2], 2)[0];
        let items = get(get(containers, 23)[0], 1);
        assert_eq!(items.len(), 1);
        assert_eq!(s(get(items[0], 1)[0]), "#/definitions/C");
        let ext = get(containers, 31)[0];
        assert_eq!(s(get(ext, 1)[0]), "x-kubernetes-patch-merge-key");
        assert_eq!(s(get(get(ext, 2)[0], 2)[0]), "\"name\"");
        assert_eq!(get(pod, 31).len(), 1);
    }
}
