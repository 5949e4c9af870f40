//! Generator of `table.rs`, the field table the protobuf transcoder works from.
//!
//! Kept free of crate dependencies (std only) so that it is shared by `examples/gen_pb_table.rs`
//! (`#[path]`-included) and by the unit test that checks the committed table is up to date.
//!
//! Inputs are the sources of two crates in the cargo registry:
//! - `k8s-pb`: prost structs generated from upstream's `generated.proto` files. They give every
//!   message, every field's tag, scalar type, label (optional / repeated / map) and message type,
//!   plus `impl crate::Resource` blocks naming each resource's apiVersion and kind.
//! - `k8s-openapi`: its serde code maps JSON names to Rust field names (`"hostIP" =>
//!   Field::Key_host_ip`), and its struct definitions tell required fields (not `Option`) apart.
//!
//! prost snake_cased the proto (= JSON) names, so each prost field is matched to the k8s-openapi
//! JSON name whose letters and digits are the same case-insensitively (`host_ip` ~ `hostIP`,
//! `x_kubernetes_list_type` ~ `x-kubernetes-list-type`, `r#ref` ~ `$ref`). Messages k8s-openapi does not
//! know (alpha versions and helpers) fall back to lowerCamelCase.

#![allow(dead_code)] // shared by the example and two test modules, each using part of it

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
struct PbField {
    rust: String,
    tag: u32,
    /// "string" | "bytes" | "bool" | "int32" | "int64" | "double" | "message"
    scalar: String,
    /// "opt" | "rep" | "map"
    label: &'static str,
    /// For messages (and map values that are messages): resolved module path + prost name.
    msg: Option<(String, String)>,
    /// `+key=value` markers from the field's doc comment (`patchStrategy`, `listMapKey`, ...).
    markers: Vec<(String, String)>,
}

#[derive(Debug)]
struct PbMessage {
    module: String,
    rust: String,
    fields: Vec<PbField>,
    /// `+structType=atomic` in the message's doc comment.
    atomic: bool,
}

#[derive(Debug, Default, Clone)]
struct OaStruct {
    name: String,
    /// normalized json name -> (json name, required)
    fields: HashMap<String, (String, bool)>,
}

fn norm(s: &str) -> String {
    s.trim_start_matches("r#")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lower_camel(rust: &str) -> String {
    let rust = rust.trim_start_matches("r#");
    if let Some(rest) = rust.strip_prefix("x_kubernetes_") {
        return format!("x-kubernetes-{}", rest.replace('_', "-"));
    }
    let mut out = String::new();
    let mut up = false;
    for c in rust.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

/// Resolves a prost type path (`super::super::x::Y`, `Y`, `crate::a::Y`) against `module`.
fn resolve(module: &str, path: &str) -> (String, String) {
    let path = path.trim().trim_start_matches("::");
    let mut segs: Vec<&str> = path.split("::").collect();
    let name = segs.pop().unwrap_or_default().to_string();
    let mut base: Vec<&str> = module.split('/').filter(|s| !s.is_empty()).collect();
    let mut i = 0;
    if segs.first() == Some(&"crate") {
        base.clear();
        i = 1;
    }
    while i < segs.len() && segs[i] == "super" {
        base.pop();
        i += 1;
    }
    base.extend(&segs[i..]);
    (base.join("/"), name)
}

/// Innermost type argument of `Option<..>`, `Vec<..>`, `Box<..>`, or the value type of a BTreeMap.
fn inner_type(ty: &str, map: bool) -> String {
    let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let ty = ty.replace(",>", ">");
    let mut t = ty.as_str();
    if map {
        // BTreeMap<K,V>
        if let Some(i) = t.find('<') {
            t = &t[i + 1..t.len().saturating_sub(1)];
            if let Some(j) = t.find(',') {
                t = &t[j + 1..];
            }
        }
    }
    loop {
        let mut changed = false;
        for w in [
            "::core::option::Option<",
            "::prost::alloc::vec::Vec<",
            "::prost::alloc::boxed::Box<",
        ] {
            if let Some(rest) = t.strip_prefix(w) {
                t = &rest[..rest.len().saturating_sub(1)];
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    t.to_string()
}

/// (module path/prost name, apiVersion, kind) of each `impl crate::Resource`.
type ResourceRow = (String, String, String);

fn parse_pb(root: &Path) -> Result<(Vec<PbMessage>, Vec<ResourceRow>), String> {
    let src = root.join("src");
    let mut files = Vec::new();
    walk(&src, &mut files)?;
    let mut msgs = Vec::new();
    let mut resources = Vec::new();
    for f in files {
        let rel = f
            .parent()
            .and_then(|p| p.strip_prefix(&src).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        let mut cur: Option<PbMessage> = None;
        // `+key=value` markers of the doc comment above the current item.
        let mut doc: Vec<(String, String)> = Vec::new();
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim();
            if let Some(c) = t.strip_prefix("///") {
                if let Some((k, v)) = c.trim().strip_prefix('+').and_then(|m| m.split_once('=')) {
                    doc.push((k.trim().to_string(), v.trim().to_string()));
                }
                i += 1;
                continue;
            }
            let markers = if t.starts_with("#[") && !t.starts_with("#[prost(") {
                doc.clone()
            } else {
                std::mem::take(&mut doc)
            };
            let atomic = markers
                .iter()
                .any(|(k, v)| k == "structType" && v == "atomic");
            if t.starts_with("#[") && !t.starts_with("#[prost(") {
                i += 1;
                continue;
            }
            if let Some(rest) = l.strip_prefix("pub struct ") {
                if let Some(name) = rest.strip_suffix(" {}") {
                    msgs.push(PbMessage {
                        module: rel.clone(),
                        rust: name.trim().to_string(),
                        fields: vec![],
                        atomic,
                    });
                } else {
                    let name = rest.trim_end_matches(" {").trim().to_string();
                    cur = Some(PbMessage {
                        module: rel.clone(),
                        rust: name,
                        fields: vec![],
                        atomic,
                    });
                }
            } else if l == "}" {
                if let Some(m) = cur.take() {
                    msgs.push(m);
                }
            } else if let Some(attr) = l.trim().strip_prefix("#[prost(") {
                let attr = attr.trim_end_matches(")]");
                // field declaration: following lines up to the one ending with ','
                let mut decl = String::new();
                let mut k = i + 1;
                while k < lines.len() {
                    decl.push_str(lines[k].trim());
                    decl.push(' ');
                    let depth = decl.matches('<').count() as i64 - decl.matches('>').count() as i64;
                    if lines[k].trim_end().ends_with(',') && depth == 0 {
                        break;
                    }
                    k += 1;
                }
                i = k;
                let decl = decl.trim().trim_end_matches(',');
                let decl = decl
                    .strip_prefix("pub ")
                    .ok_or(format!("bad decl {decl}"))?;
                let (rust, ty) = decl.split_once(':').ok_or(format!("bad decl {decl}"))?;
                let tag: u32 = between(attr, "tag = \"", "\"")
                    .and_then(|t| t.parse().ok())
                    .ok_or(format!("no tag in {attr}"))?;
                let first = attr.split(',').next().unwrap_or_default().trim();
                let (scalar, label, is_map) =
                    if attr.starts_with("btree_map") || attr.starts_with("map") {
                        let kv = between(attr, "\"", "\"").ok_or(format!("bad map {attr}"))?;
                        let (k, v) = kv.split_once(',').ok_or(format!("bad map {attr}"))?;
                        if k.trim() != "string" {
                            return Err(format!("non-string map key in {attr}"));
                        }
                        (v.trim().to_string(), "map", true)
                    } else {
                        let scalar = first
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        let label = if attr.contains("repeated") {
                            "rep"
                        } else if attr.contains("optional") {
                            "opt"
                        } else {
                            return Err(format!("unsupported label in {attr}"));
                        };
                        (scalar, label, false)
                    };
                let scalar = match scalar.as_str() {
                    "string" | "bool" | "int32" | "int64" | "double" | "message" => scalar,
                    s if s.starts_with("bytes") => "bytes".to_string(),
                    other => return Err(format!("unsupported scalar {other} in {attr}")),
                };
                let msg = (scalar == "message").then(|| resolve(&rel, &inner_type(ty, is_map)));
                let m = cur
                    .as_mut()
                    .ok_or(format!("field outside struct in {}", f.display()))?;
                m.fields.push(PbField {
                    rust: rust.trim().to_string(),
                    tag,
                    scalar,
                    label,
                    msg,
                    markers,
                });
            } else if let Some(rest) = l.strip_prefix("impl crate::Resource for ") {
                let name = rest.trim_end_matches(" {").trim().to_string();
                let mut av = None;
                let mut kind = None;
                let mut k = i + 1;
                while k < lines.len() && lines[k] != "}" {
                    if lines[k].contains("const API_VERSION") {
                        av = between(lines[k], "= \"", "\"").map(str::to_string);
                    }
                    if lines[k].contains("const KIND") {
                        kind = between(lines[k], "= \"", "\"").map(str::to_string);
                    }
                    k += 1;
                }
                if let (Some(av), Some(kind)) = (av, kind) {
                    resources.push((format!("{rel}/{name}"), av, kind));
                }
                i = k;
            }
            i += 1;
        }
    }
    Ok((msgs, resources))
}

fn parse_openapi(root: &Path) -> Result<HashMap<(String, String), OaStruct>, String> {
    let src = root.join("src");
    let mut out: HashMap<(String, String), OaStruct> = HashMap::new();
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("v1_"))
        })
        .collect();
    // The project's version first; later versions only add what it lacks.
    versions.sort_by_key(|p| (!p.ends_with("v1_33"), p.clone()));
    for vdir in versions {
        let mut files = Vec::new();
        walk(&vdir, &mut files)?;
        for f in files {
            let module = f
                .parent()
                .and_then(|p| p.strip_prefix(&vdir).ok())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let mut name = None;
            let mut required: HashMap<String, bool> = HashMap::new();
            let mut in_struct = false;
            let mut keys: Vec<(String, String)> = Vec::new();
            for l in text.lines() {
                if let Some(rest) = l.strip_prefix("pub struct ") {
                    if name.is_none() {
                        name = Some(rest.trim_end_matches(" {").trim().to_string());
                        in_struct = rest.trim_end().ends_with('{');
                    }
                    continue;
                }
                if in_struct {
                    if l == "}" {
                        in_struct = false;
                    } else if let Some(d) = l.trim().strip_prefix("pub ") {
                        if let Some((rn, ty)) = d.split_once(':') {
                            required
                                .insert(rn.trim().to_string(), !ty.trim().starts_with("Option<"));
                        }
                    }
                    continue;
                }
                let t = l.trim();
                if t.starts_with('"') && t.contains("\" => Field::Key_") {
                    if let (Some(json), Some(key)) =
                        (between(t, "\"", "\""), t.split("Field::Key_").nth(1))
                    {
                        keys.push((
                            json.to_string(),
                            key.trim_end_matches(',').trim().to_string(),
                        ));
                    }
                }
            }
            let Some(name) = name else { continue };
            let entry = out
                .entry((module.clone(), norm(&name)))
                .or_insert_with(|| OaStruct {
                    name: name.clone(),
                    fields: HashMap::new(),
                });
            for (json, key) in keys {
                let req = required.get(&key).copied().unwrap_or(false);
                entry.fields.entry(norm(&json)).or_insert((json, req));
            }
        }
    }
    Ok(out)
}

/// Messages that are Go named slices (`type ExtraValue []string`): one repeated `items` field, and
/// JSON renders them as the bare array.
fn is_wrapper(m: &PbMessage, oa: Option<&OaStruct>) -> bool {
    oa.is_none() && m.fields.len() == 1 && m.fields[0].rust == "items" && m.fields[0].label == "rep"
}

/// The messages with their proto names and the JSON side of each field, shared by both generated tables.
struct Model {
    msgs: Vec<PbMessage>,
    resources: Vec<ResourceRow>,
    /// (proto full name, index into `msgs`), sorted by name.
    order: Vec<(String, usize)>,
    /// proto full name -> position in `order`.
    index: HashMap<String, usize>,
    name_of: HashMap<(String, String), String>,
    /// The k8s-openapi struct naming each message's JSON fields.
    host: HashMap<usize, OaStruct>,
    /// (message, tag) of fields embedded with `json:",inline"`.
    inline: HashMap<(usize, u32), bool>,
}

fn build(pb_root: &Path, openapi_root: &Path) -> Result<Model, String> {
    let (msgs, resources) = parse_pb(pb_root)?;
    let oa = parse_openapi(openapi_root)?;
    // proto full names: package from the module path, name from the Resource kind, k8s-openapi, or prost.
    let kind_of: HashMap<String, String> = resources
        .iter()
        .map(|(p, _, k)| (p.clone(), k.clone()))
        .collect();
    let mut full: BTreeMap<String, usize> = BTreeMap::new();
    let mut name_of: HashMap<(String, String), String> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        let key = (m.module.clone(), norm(&m.rust));
        let proto = kind_of
            .get(&format!("{}/{}", m.module, m.rust))
            .cloned()
            .or_else(|| oa.get(&key).map(|o| o.name.clone()))
            .unwrap_or_else(|| m.rust.clone());
        let fname = format!("k8s.io.{}.{}", m.module.replace('/', "."), proto);
        if full.insert(fname.clone(), i).is_some() {
            return Err(format!("duplicate message {fname}"));
        }
        name_of.insert((m.module.clone(), m.rust.clone()), fname);
    }
    // Go embeds structs with `json:",inline"` (Volume ⊃ VolumeSource, Probe ⊃ ProbeHandler): proto has a
    // message field, JSON has the embedded fields at the parent's level. A message-typed field that the
    // parent's k8s-openapi struct does not know is such an embedding; the embedded message then takes
    // its JSON names from the parent's struct.
    let by_rust: HashMap<(String, String), usize> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.module.clone(), m.rust.clone()), i))
        .collect();
    let mut host: HashMap<usize, OaStruct> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(o) = oa.get(&(m.module.clone(), norm(&m.rust))) {
            host.insert(i, o.clone());
        }
    }
    let mut inline: HashMap<(usize, u32), bool> = HashMap::new();
    for _ in 0..4 {
        for (i, m) in msgs.iter().enumerate() {
            let Some(o) = host.get(&i).cloned() else {
                continue;
            };
            for fl in &m.fields {
                let Some(t) = fl.msg.as_ref().and_then(|k| by_rust.get(k)) else {
                    continue;
                };
                if fl.label != "opt" || o.fields.contains_key(&norm(&fl.rust)) {
                    continue;
                }
                let tm = &msgs[*t];
                let covered = tm
                    .fields
                    .iter()
                    .filter(|tf| o.fields.contains_key(&norm(&tf.rust)))
                    .count();
                if covered == 0
                    || (covered < tm.fields.len() && !host.contains_key(t))
                        && covered * 2 < tm.fields.len()
                {
                    continue;
                }
                inline.insert((i, fl.tag), true);
                if !oa.contains_key(&(tm.module.clone(), norm(&tm.rust))) {
                    let h = host.entry(*t).or_insert_with(|| OaStruct {
                        name: tm.rust.clone(),
                        fields: HashMap::new(),
                    });
                    for (k, v) in &o.fields {
                        h.fields.entry(k.clone()).or_insert(v.clone());
                    }
                }
            }
        }
    }
    let order: Vec<(String, usize)> = full.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let index: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect();
    Ok(Model {
        msgs,
        resources,
        order,
        index,
        name_of,
        host,
        inline,
    })
}

impl Model {
    /// A field's JSON name and whether it is required; `None` for an embedded (inline) field.
    fn json_name(&self, mi: usize, fl: &PbField) -> Option<(String, bool)> {
        if self.inline.contains_key(&(mi, fl.tag)) {
            return None;
        }
        Some(
            match self
                .host
                .get(&mi)
                .and_then(|o| o.fields.get(&norm(&fl.rust)))
            {
                Some((j, r)) => (j.clone(), *r),
                None => (lower_camel(&fl.rust), false),
            },
        )
    }
}

/// Produces the text of `table.rs` from the k8s-pb and k8s-openapi source roots.
pub fn generate(pb_root: &Path, openapi_root: &Path) -> Result<String, String> {
    let Model {
        msgs,
        resources,
        order,
        index,
        name_of,
        host,
        inline,
    } = build(pb_root, openapi_root)?;
    let mut s = String::new();
    s.push_str("// @generated by `cargo run --release --example gen_pb_table` from the k8s-pb and k8s-openapi\n");
    s.push_str("// sources (see gen.rs). Do not edit; a unit test checks it is up to date.\n\n");
    s.push_str("use super::{f, Label::*, Message, Ty::*};\n\n");
    s.push_str("#[rustfmt::skip]\npub(super) static MESSAGES: &[Message] = &[\n");
    let mut fallbacks = 0usize;
    for (fname, mi) in &order {
        let m = &msgs[*mi];
        let o = host.get(mi);
        let wrapper = is_wrapper(m, o);
        let mut fields = m.fields.clone();
        fields.sort_by_key(|f| f.tag);
        // The declaration order (Go's struct order, which JSON follows), as indices into `fields`.
        let json_order = m
            .fields
            .iter()
            .map(|d| {
                fields
                    .iter()
                    .position(|f| f.tag == d.tag)
                    .unwrap_or(0)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(", ");
        if m.fields.len() > 255 {
            return Err(format!("{fname}: more than 255 fields"));
        }
        let _ = write!(
            s,
            "    Message {{ name: \"{fname}\", wrapper: {wrapper}, json_order: &[{json_order}], fields: &["
        );
        let mut seen = HashMap::new();
        for fl in &fields {
            let inl = inline.contains_key(&(*mi, fl.tag));
            let (json, req) = match o
                .and_then(|o| o.fields.get(&norm(&fl.rust)))
                .filter(|_| !inl)
            {
                Some((j, r)) => (j.clone(), *r),
                None => {
                    fallbacks += 1;
                    (lower_camel(&fl.rust), false)
                }
            };
            if seen.insert(json.clone(), ()).is_some() {
                return Err(format!("{fname}: two fields named {json}"));
            }
            let ty = match fl.scalar.as_str() {
                "string" => "Str".to_string(),
                "bytes" => "Bytes".to_string(),
                "bool" => "Bool".to_string(),
                "int32" => "I32".to_string(),
                "int64" => "I64".to_string(),
                "double" => "F64".to_string(),
                _ => {
                    let (module, rust) = fl.msg.clone().unwrap_or_default();
                    let target = name_of
                        .get(&(module.clone(), rust.clone()))
                        .ok_or(format!("{fname}.{json}: unknown message {module}/{rust}"))?;
                    format!("Msg({})", index[target])
                }
            };
            let label = match fl.label {
                _ if inl => "Inline",
                "opt" => "Opt",
                "rep" => "Rep",
                _ => "Map",
            };
            let _ = write!(s, "f({json:?}, {}, {ty}, {label}, {req}), ", fl.tag);
        }
        s.push_str("] },\n");
    }
    s.push_str("];\n\n");
    // apiVersion -> proto package, from the Resource impls.
    let mut gv: BTreeMap<String, String> = BTreeMap::new();
    for (path, av, _) in &resources {
        let module = path.rsplit_once('/').map(|(m, _)| m).unwrap_or_default();
        gv.entry(av.clone())
            .or_insert_with(|| format!("k8s.io.{}", module.replace('/', ".")));
    }
    s.push_str("/// apiVersion → proto package (from k8s-pb's `Resource` impls).\n");
    s.push_str("#[rustfmt::skip]\npub(super) static PACKAGES: &[(&str, &str)] = &[\n");
    for (av, pkg) in &gv {
        let _ = writeln!(s, "    ({av:?}, {pkg:?}),");
    }
    s.push_str("];\n");
    let _ = writeln!(
        s,
        "\n// {} messages, {} fields named by fallback (no k8s-openapi type).",
        order.len(),
        fallbacks
    );
    Ok(s)
}

/// Finds `name-version` crate sources in the cargo registry (`$CARGO_HOME` or `~/.cargo`).
pub fn find_crate(name: &str, version: &str) -> Result<PathBuf, String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("no CARGO_HOME or HOME")?;
    let reg = home.join("registry").join("src");
    let rd = std::fs::read_dir(&reg).map_err(|e| format!("{}: {e}", reg.display()))?;
    for e in rd.flatten() {
        let p = e.path().join(format!("{name}-{version}"));
        if p.is_dir() {
            return Ok(p);
        }
    }
    Err(format!(
        "{name}-{version} not found under {}",
        reg.display()
    ))
}

/// The version of `name` in the project's Cargo.lock.
pub fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            return lines
                .next()
                .and_then(|v| between(v, "version = \"", "\""))
                .map(str::to_string);
        }
    }
    None
}

/// Upstream's OpenAPI definition name of a proto message: `k8s.io.api.core.v1.Pod` →
/// `io.k8s.api.core.v1.Pod` (Go module directories keep their dashes).
pub fn openapi_name(proto: &str) -> String {
    let rest = proto.strip_prefix("k8s.io.").unwrap_or(proto);
    format!(
        "io.k8s.{}",
        rest.replace("apiextensions_apiserver.", "apiextensions-apiserver.")
            .replace("kube_aggregator.", "kube-aggregator.")
    )
}

/// The JSON shape of a message when it is a field's value (see `schema::Shape`).
fn message_shape(model: &Model, proto: &str) -> String {
    let short = proto.rsplit('.').next().unwrap_or_default();
    let pkg = &proto[..proto.len() - short.len()];
    match (pkg, short) {
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "Time" | "MicroTime" | "Duration")
        | ("k8s.io.apimachinery.pkg.api.resource.", "Quantity")
        | ("k8s.io.apimachinery.pkg.util.intstr.", "IntOrString") => "Scalar".to_string(),
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "FieldsV1")
        | ("k8s.io.apimachinery.pkg.runtime.", "RawExtension") => "Untyped".to_string(),
        (p, s)
            if p.starts_with("k8s.io.apiextensions_apiserver.")
                && (s == "JSON" || s == "Json" || s.starts_with("JSONSchemaPropsOr")) =>
        {
            "Untyped".to_string()
        }
        _ => {
            let i = model.index[proto];
            let mi = model.order[i].1;
            if is_wrapper(&model.msgs[mi], model.host.get(&mi)) {
                "List(&Scalar)".to_string()
            } else {
                format!("Obj({i})")
            }
        }
    }
}

/// A type's JSON fields (embedded structs flattened), by JSON name.
fn json_fields<'a>(
    model: &'a Model,
    mi: usize,
    depth: u32,
    out: &mut BTreeMap<String, &'a PbField>,
) {
    for fl in &model.msgs[mi].fields {
        match model.json_name(mi, fl) {
            Some((j, _)) => {
                out.entry(j).or_insert(fl);
            }
            None if depth < 8 => {
                if let Some(t) = fl
                    .msg
                    .as_ref()
                    .and_then(|k| model.name_of.get(k))
                    .and_then(|n| model.index.get(n))
                {
                    json_fields(model, model.order[*t].1, depth + 1, out);
                }
            }
            None => {}
        }
    }
}

/// Produces the text of `src/apiserver/registry/schema_table.rs`: every message as an OpenAPI type with its JSON
/// fields' shapes and the merge markers of upstream's comments (`+patchStrategy`, `+patchMergeKey`,
/// `+listType`, `+listMapKey`, `+mapType`, `+structType`), plus the root type of each kind.
pub fn generate_schema(pb_root: &Path, openapi_root: &Path) -> Result<String, String> {
    let model = build(pb_root, openapi_root)?;
    let mut s = String::new();
    s.push_str("// @generated by `cargo run --release --example gen_pb_table` from the k8s-pb and k8s-openapi\n");
    s.push_str(
        "// sources (see protobuf/gen.rs). Do not edit; a unit test checks it is up to date.\n\n",
    );
    s.push_str("use super::{fd, Sh::*, Ty};\n\n");
    s.push_str("/// Sorted by name; `Obj(i)` indexes this table.\n");
    s.push_str("#[rustfmt::skip]\npub(super) static TYPES: &[Ty] = &[\n");
    for (fname, mi) in &model.order {
        let m = &model.msgs[*mi];
        let _ = write!(
            s,
            "    Ty {{ name: {:?}, atomic: {}, fields: &[",
            openapi_name(fname),
            m.atomic
        );
        let mut fields = BTreeMap::new();
        json_fields(&model, *mi, 0, &mut fields);
        for (json, fl) in fields {
            let elem = match fl.scalar.as_str() {
                "message" => {
                    let target = fl
                        .msg
                        .as_ref()
                        .and_then(|k| model.name_of.get(k))
                        .ok_or(format!("{fname}.{json}: unknown message"))?;
                    message_shape(&model, target)
                }
                _ => "Scalar".to_string(),
            };
            let shape = match fl.label {
                "rep" => format!("List(&{elem})"),
                "map" => format!("Map(&{elem})"),
                _ => elem,
            };
            let marker = |k: &str| {
                fl.markers
                    .iter()
                    .find(|(mk, _)| mk == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            let keys: Vec<&str> = fl
                .markers
                .iter()
                .filter(|(k, _)| k == "listMapKey")
                .map(|(_, v)| v.as_str())
                .collect();
            let _ = write!(
                s,
                "fd({json:?}, {shape}, {:?}, {:?}, {:?}, &{keys:?}, {:?}), ",
                marker("patchStrategy"),
                marker("patchMergeKey"),
                marker("listType"),
                marker("mapType"),
            );
        }
        s.push_str("] },\n");
    }
    s.push_str("];\n\n");
    let mut roots: Vec<(String, String, usize)> = Vec::new();
    for (path, av, kind) in &model.resources {
        let (module, rust) = path.rsplit_once('/').unwrap_or_default();
        if let Some(i) = model
            .name_of
            .get(&(module.to_string(), rust.to_string()))
            .and_then(|n| model.index.get(n))
        {
            roots.push((av.clone(), kind.clone(), *i));
        }
    }
    roots.sort();
    roots.dedup();
    s.push_str("/// (apiVersion, kind, index into TYPES), sorted.\n");
    s.push_str("#[rustfmt::skip]\npub(super) static ROOTS: &[(&str, &str, u16)] = &[\n");
    for (av, kind, i) in &roots {
        let _ = writeln!(s, "    ({av:?}, {kind:?}, {i}),");
    }
    s.push_str("];\n");
    Ok(s)
}

/// Produces the text of `src/apiserver/openapi/kinds.rs`: every k8s-openapi type with a `Resource` impl
/// (apiVersion, kind) and the function that adds its schemars schema to a generator, so the OpenAPI
/// documents can find a served kind's schema by its group, version and kind.
pub fn generate_kinds(openapi_root: &Path) -> Result<String, String> {
    let vdir = openapi_root.join("src").join("v1_33");
    let mut files = Vec::new();
    walk(&vdir, &mut files)?;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for f in files {
        let module = f
            .parent()
            .and_then(|p| p.strip_prefix(&vdir).ok())
            .map(|p| p.to_string_lossy().replace(['\\', '/'], "::"))
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        if !text.contains("impl crate::schemars::JsonSchema for") {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(name) = l
                .strip_prefix("impl crate::Resource for ")
                .map(|r| r.trim_end_matches(" {").trim())
            else {
                continue;
            };
            let get = |c: &str| {
                lines[i..]
                    .iter()
                    .take_while(|l| **l != "}")
                    .find(|l| l.contains(c))
                    .and_then(|l| between(l, "= \"", "\""))
                    .map(str::to_string)
            };
            if let (Some(av), Some(kind)) = (get("const API_VERSION"), get("const KIND")) {
                rows.push((av, kind, format!("k8s_openapi::{module}::{name}")));
            }
        }
    }
    rows.sort();
    let mut s = String::new();
    s.push_str("// @generated by `cargo run --release --example gen_pb_table` from the k8s-openapi sources\n");
    s.push_str("// (see protobuf/gen.rs). Do not edit; a unit test checks it is up to date.\n\n");
    s.push_str("use k8s_openapi::schemars::{Schema, SchemaGenerator};\n\n");
    s.push_str(
        "/// A function adding a kind's schema (and the types it refers to) to a generator.\n",
    );
    s.push_str("pub(super) type AddSchema = fn(&mut SchemaGenerator) -> Schema;\n\n");
    s.push_str("/// (apiVersion, kind, schema), sorted.\n");
    s.push_str("#[rustfmt::skip]\npub(super) static KINDS: &[(&str, &str, AddSchema)] = &[\n");
    for (av, kind, path) in &rows {
        let _ = writeln!(
            s,
            "    ({av:?}, {kind:?}, SchemaGenerator::subschema_for::<{path}>),"
        );
    }
    s.push_str("];\n");
    Ok(s)
}
