//! Request bodies as they are decoded: upstream's bound on nesting depth (checked by a linear pre-scan,
//! before any parser that could be slow or deep in recursion sees the body), the typed fields upstream's
//! decoder insists on (`apiVersion`/`kind` strings, DeleteOptions' field types), and decoding large
//! bodies on the blocking pool so that one request never stalls the async reactor (and `/readyz`).
//!
//! The `decode_*` functions are `pub` for the fuzz targets in `benches/fuzz`.

use serde_json::Value;

use super::go_type_error::{go_json_kind, type_error};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;

/// Upstream's decoders refuse nesting deeper than this: Go's encoding/json (`maxNestingDepth`, used by
/// sigs.k8s.io/json) and go-yaml (`max_flow_level`, `max_indents`), with the messages below.
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// Bodies up to this many bytes are decoded inline on the reactor; longer ones on the blocking pool.
/// Measured (see the `inline_vs_blocking` test): handing a 1 KiB body to `spawn_blocking` costs more
/// than decoding it, while a 64 KiB body takes long enough that other requests should not wait on it.
pub const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// The media types a body can be decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    Protobuf,
}

impl BodyFormat {
    /// The format of a `Content-Type` (its media type only), or `None` for an unsupported one.
    pub fn from_content_type(ct: &str) -> Option<BodyFormat> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "" | "*/*" => Some(BodyFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Some(BodyFormat::Yaml),
            "application/vnd.kubernetes.protobuf" => Some(BodyFormat::Protobuf),
            _ => None,
        }
    }
}

/// Where a JSON text nests deeper than `max`: the opening byte that went too deep (Go's scanner names it
/// in its error), or `None`. Strings are skipped, so brackets inside them do not count.
pub fn json_too_deep(b: &[u8], max: usize) -> Option<u8> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &c in b {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(c);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// An upper estimate of a YAML text's nesting, as `(flow, block)`: the deepest flow collection (`[`/`{`
/// outside quoted scalars, comments and block scalars) and the deepest block structure (a line's
/// indentation plus its chain of `- `/`? ` indicators). Linear in the input: libyaml's scanner is
/// quadratic in flow depth, so this runs before it and deep bodies never reach it.
pub fn yaml_depth_estimate(b: &[u8]) -> (usize, usize) {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum S {
        /// Where a token may start (a quote here opens a quoted scalar).
        Start,
        /// Inside a plain scalar (quotes are text).
        Plain,
        Single,
        Double,
        Comment,
        /// Skipping the name of an anchor, alias or tag.
        Name,
    }
    let n = b.len();
    let (mut flow, mut max_flow, mut max_block) = (0usize, 0usize, 0usize);
    let mut s = S::Start;
    // The indentation of the current line, of the line a block plain scalar began on, and of the line
    // holding a block scalar indicator (`|`/`>`) whose content lines are being skipped.
    let (mut indent, mut plain_indent, mut block_scalar): (usize, usize, Option<usize>) =
        (0, 0, None);
    // libyaml's line breaks: LF, CR (CR LF counts once), NEL, LS and PS.
    let brk = |i: usize| -> usize {
        match b.get(i..).unwrap_or(&[]) {
            [b'\r', b'\n', ..] => 2,
            [b'\n' | b'\r', ..] => 1,
            [0xc2, 0x85, ..] => 2,
            [0xe2, 0x80, 0xa8 | 0xa9, ..] => 3,
            _ => 0,
        }
    };
    let blank = |i: usize| i >= n || matches!(b[i], b' ' | b'\t') || brk(i) > 0;
    let flow_ind = |c: u8| matches!(c, b',' | b'[' | b']' | b'{' | b'}');
    let mut i = 0;
    let mut line_start = true;
    while i < n {
        if line_start {
            line_start = false;
            if matches!(s, S::Single | S::Double) {
                // Quoted scalars run on across lines: nothing at a line start means anything there.
                continue;
            }
            let mut j = i;
            while j < n && b[j] == b' ' {
                j += 1;
            }
            let line_indent = j - i;
            let empty = j >= n || b[j] == b'#' || brk(j) > 0;
            if let Some(bi) = block_scalar {
                if empty || line_indent > bi {
                    // A content line of a block scalar: text, whatever it holds.
                    while i < n && brk(i) == 0 {
                        i += 1;
                    }
                    i += brk(i).max(1);
                    line_start = true;
                    continue;
                }
                block_scalar = None;
            }
            indent = line_indent;
            i = j;
            if flow == 0 {
                // A line more indented than the one a plain scalar began on continues that scalar
                // (libyaml's multi-line plain scalars): its quotes and indicators are text.
                let continuation = s == S::Plain && !empty && indent > plain_indent;
                if !continuation {
                    s = S::Start;
                    // Document markers: what follows them on the line starts a node.
                    if indent == 0
                        && (b[i..].starts_with(b"---") || b[i..].starts_with(b"..."))
                        && blank(i + 3)
                    {
                        i += 3;
                    }
                    let mut chain = 0;
                    while i < n && matches!(b[i], b'-' | b'?') && blank(i + 1) {
                        chain += 1;
                        i += 1;
                        while i < n && b[i] == b' ' {
                            i += 1;
                        }
                    }
                    max_block = max_block.max(indent + chain);
                }
            }
            // In flow context a plain scalar also runs on across lines; anything else starts afresh.
            continue;
        }
        let c = b[i];
        let nl = brk(i);
        if nl > 0 {
            match s {
                S::Single | S::Double => {}
                S::Plain => {}
                _ => s = S::Start,
            }
            line_start = true;
            i += nl;
            continue;
        }
        match s {
            S::Comment => {}
            S::Single => {
                if c == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        s = S::Plain;
                    }
                }
            }
            S::Double => {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    s = S::Plain;
                }
            }
            S::Name => {
                if blank(i) || (flow > 0 && flow_ind(c)) {
                    s = S::Start;
                    continue;
                }
            }
            S::Start => match c {
                b' ' | b'\t' => {}
                // A comment only after whitespace: `[a,#b` is the plain scalar `#b`.
                b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\r' | b'\n') => {
                    s = S::Comment
                }
                b'\'' => s = S::Single,
                b'"' => s = S::Double,
                b'[' | b'{' => {
                    flow += 1;
                    max_flow = max_flow.max(flow);
                }
                b']' | b'}' => {
                    flow = flow.saturating_sub(1);
                    s = S::Plain;
                }
                b',' => {}
                b'-' | b'?' | b':' if blank(i + 1) || (flow > 0 && flow_ind(b[i + 1])) => {}
                b'&' | b'*' | b'!' => s = S::Name,
                b'|' | b'>' if flow == 0 => {
                    block_scalar = Some(indent);
                    s = S::Comment;
                }
                _ => {
                    s = S::Plain;
                    if flow == 0 {
                        plain_indent = indent;
                    }
                }
            },
            S::Plain => {
                let after_blank = i > 0 && matches!(b[i - 1], b' ' | b'\t');
                if c == b'#' && after_blank {
                    s = S::Comment;
                } else if c == b':' && (blank(i + 1) || (flow > 0 && flow_ind(b[i + 1]))) {
                    s = S::Start;
                } else if flow > 0 {
                    match c {
                        b',' => s = S::Start,
                        b'[' | b'{' => {
                            flow += 1;
                            max_flow = max_flow.max(flow);
                            s = S::Start;
                        }
                        b']' | b'}' => flow = flow.saturating_sub(1),
                        _ => {}
                    }
                }
            }
        }
        i += 1;
    }
    (max_flow, max_block)
}

/// Decodes a JSON body, refusing nesting deeper than upstream allows with Go's message. (serde_json
/// itself stops at 128 levels, with its own message, before its recursion could exhaust the stack.)
pub fn decode_json(body: &[u8]) -> Result<Value, String> {
    if let Some(c) = json_too_deep(body, MAX_NESTING_DEPTH) {
        return Err(format!(
            "invalid character '{}' exceeded max depth",
            c as char
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| super::go_json::syntax_error(body).unwrap_or_else(|| e.to_string()))
}

/// Decodes a YAML body into JSON, refusing nesting deeper than upstream's go-yaml allows (with its
/// message) before libyaml sees it.
pub fn decode_yaml(body: &[u8]) -> Result<Value, String> {
    let (flow, block) = yaml_depth_estimate(body);
    if flow > MAX_NESTING_DEPTH || block > MAX_NESTING_DEPTH {
        return Err(format!("exceeded max depth of {MAX_NESTING_DEPTH}"));
    }
    serde_yaml::from_slice(body).map_err(|e| e.to_string())
}

/// Upstream's decoder reads `apiVersion` and `kind` into strings before anything else: any other JSON
/// type there is a 400 (`couldn't get version/kind; json parse error: ...`). The first offender in
/// document order is named, as Go's decoder does.
pub fn check_type_meta(v: &Value) -> Result<(), String> {
    let Some(m) = v.as_object() else {
        return Ok(());
    };
    for (k, x) in m {
        if (k == "apiVersion" || k == "kind") && !(x.is_string() || x.is_null()) {
            return Err(format!(
                "couldn't get version/kind; json parse error: {}",
                type_error(x, "", k, "string")
            ));
        }
    }
    Ok(())
}

/// DeleteOptions as upstream's decoder types them: a field of the wrong JSON type is a 400 with Go's
/// message, never ignored (a `gracePeriodSeconds: "soon"` must not delete anything).
pub fn check_delete_options(v: &Value) -> ApiResult<()> {
    let Some(m) = v.as_object() else {
        return Ok(());
    };
    let bad = |x: &Value, field: &str, ty: &str| {
        ApiError::bad_request(type_error(x, "DeleteOptions", field, ty))
    };
    for (k, x) in m {
        if x.is_null() {
            continue;
        }
        match k.as_str() {
            "gracePeriodSeconds" if x.as_i64().is_none() => {
                return Err(bad(x, k, "int64"));
            }
            "orphanDependents" | "ignoreStoreReadErrorWithClusterBreakingPotential"
                if !x.is_boolean() =>
            {
                return Err(bad(x, k, "bool"));
            }
            "propagationPolicy" if !x.is_string() => {
                return Err(bad(x, k, "v1.DeletionPropagation"));
            }
            "dryRun" => match x.as_array() {
                None => return Err(bad(x, k, "[]string")),
                Some(items) => {
                    if let Some(i) = items.iter().find(|i| !i.is_string() && !i.is_null()) {
                        return Err(bad(i, k, "string"));
                    }
                }
            },
            "preconditions" => match x.as_object() {
                None => return Err(bad(x, k, "v1.Preconditions")),
                Some(p) => {
                    for (pk, px) in p {
                        let ty = match pk.as_str() {
                            "uid" => "types.UID",
                            "resourceVersion" => "string",
                            _ => continue,
                        };
                        if !px.is_string() && !px.is_null() {
                            return Err(bad(px, &format!("preconditions.{pk}"), ty));
                        }
                    }
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a body of `format` into a JSON object with upstream's errors (400s, and 415 for a protobuf
/// body of a kind that has no protobuf message). `content_type` is quoted in the 415.
pub fn decode(format: BodyFormat, content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let v: Value = match format {
        BodyFormat::Json => decode_json(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        BodyFormat::Yaml => decode_yaml(body).map_err(|e| {
            ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
        })?,
        BodyFormat::Protobuf => protobuf::decode(body).map_err(|e| {
            if e.contains("no protobuf message") {
                ApiError::unsupported_media_type(content_type)
            } else {
                ApiError::bad_request(format!("failed to decode protobuf body: {e}"))
            }
        })?,
    };
    if format != BodyFormat::Protobuf {
        check_type_meta(&v).map_err(ApiError::bad_request)?;
        if !v.is_object() && !v.is_null() {
            // Upstream reads apiVersion and kind into this anonymous struct first.
            let kind = go_json_kind(&v);
            let kind = kind.split(' ').next().unwrap_or_default();
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {kind} into Go value of type \
                 struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
            )));
        }
    }
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in request body: the body must be a JSON object",
        ));
    }
    Ok(v)
}

/// Runs `f` inline for a small body and on the blocking pool for a large one, so that decoding
/// megabytes never holds a reactor thread.
pub async fn off_reactor<T, F>(len: usize, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> ApiResult<T> + Send + 'static,
{
    if len <= INLINE_DECODE_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("decoding the request body: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    #[test]
    fn json_depth_is_refused_with_gos_message() {
        let deep = "[".repeat(100_000);
        let t = Instant::now();
        let e = decode_json(deep.as_bytes()).unwrap_err();
        assert_eq!(e, "invalid character '[' exceeded max depth");
        println!("100,000-deep JSON refused in {:?}", t.elapsed());
        // Brackets inside strings are text.
        let s = format!("{{\"a\": \"{}\"}}", "[".repeat(20_000));
        assert!(decode_json(s.as_bytes()).is_ok());
        // Deeper than serde_json's own limit but within upstream's: still a clean error.
        let mid = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(decode_json(mid.as_bytes()).is_err());
    }

    #[test]
    fn yaml_depth_is_refused_before_libyaml() {
        for deep in [
            "{a: ".repeat(100_000),
            "[".repeat(100_000),
            "- ".repeat(100_000),
            format!("k: v\n{}", "[".repeat(20_000)),
        ] {
            let t = Instant::now();
            let e = decode_yaml(deep.as_bytes()).unwrap_err();
            assert_eq!(e, "exceeded max depth of 10000", "{}", &deep[..10]);
            println!("{:?}… refused in {:?}", &deep[..6], t.elapsed());
        }
        // Brackets in quoted, plain and block scalars and in comments are text.
        let text = format!(
            "a: '{0}'\nb: \"{0}\"\nc: x{0}\nd: |\n  {0}\n  {0}\n# {0}\ne: f\n",
            "[".repeat(20_000)
        );
        assert_eq!(yaml_depth_estimate(text.as_bytes()).0, 0);
        let v = decode_yaml(text.as_bytes()).unwrap();
        assert_eq!(v["e"], json!("f"));
        // A quote inside a plain scalar does not hide a flow collection on the next line.
        let sneaky = format!("a: don't\nb: {}", "[".repeat(20_000));
        assert!(yaml_depth_estimate(sneaky.as_bytes()).0 > MAX_NESTING_DEPTH);
        let sneaky = format!("a: [x 'y, {}", "[".repeat(20_000));
        assert!(yaml_depth_estimate(sneaky.as_bytes()).0 > MAX_NESTING_DEPTH);
        // `#` not after whitespace starts a plain scalar, not a comment; `---` starts a document; a
        // bare CR is a line break.
        for sneaky in [
            format!("a: b\r{}", "[".repeat(20_000)),
            format!("[a,#{}", "[".repeat(20_000)),
            format!("--- {}", "[".repeat(20_000)),
        ] {
            assert!(yaml_depth_estimate(sneaky.as_bytes()).0 > MAX_NESTING_DEPTH);
        }
    }

    fn value_depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
            Value::Object(m) => 1 + m.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Inputs the `yaml_body` fuzz target found where the estimate fell short of the parsed depth.
    #[test]
    fn yaml_estimate_fuzz_regressions() {
        // Bare CRs as line breaks (libyaml also breaks lines at CR, NEL, LS and PS).
        let crlf = "11:\n\r ! :\r =M1:[]:\n1:11; :\r ! :\r :[]:\n:011; :\r ! :\r =M1:[]]:\n1:1::\r&ttt:[]:\n1:11; :\r ! :\r  ! :\r :[]:\n0:11; :\r ! :\r =M1:[]:\n1:1:\n=M1:[]1:1:\n::\n\n::\n";
        if let Ok(v) = decode_yaml(crlf.as_bytes()) {
            let (flow, block) = yaml_depth_estimate(crlf.as_bytes());
            assert!(
                value_depth(&v) <= 2 * flow + 2 * block + 2,
                "{flow} {block}"
            );
        }
    }

    #[test]
    fn yaml_estimate_bounds_real_nesting() {
        let doc = "a:\n  b:\n  - c: [1, {d: [2]}]\n    e: 'x'\n";
        let (flow, block) = yaml_depth_estimate(doc.as_bytes());
        assert_eq!(flow, 3);
        assert!(block >= 2, "{block}");
    }

    #[test]
    fn type_meta_must_be_strings() {
        assert_eq!(
            check_type_meta(&json!({"apiVersion": "v1", "kind": 5})).unwrap_err(),
            "couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string"
        );
        assert_eq!(
            check_type_meta(&json!({"apiVersion": ["v1"], "kind": 5})).unwrap_err(),
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go struct field .apiVersion of type string"
        );
        assert!(check_type_meta(&json!({"apiVersion": "v1", "kind": null})).is_ok());
    }

    #[test]
    fn delete_options_fields_are_typed() {
        let e = check_delete_options(&json!({"gracePeriodSeconds": "soon"})).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64")
        );
        let e = check_delete_options(&json!({"gracePeriodSeconds": 1.5})).unwrap_err();
        assert!(
            e.message.contains("unmarshal number 1.5 into"),
            "{}",
            e.message
        );
        let e = check_delete_options(&json!({"preconditions": {"uid": 3}})).unwrap_err();
        assert!(
            e.message
                .ends_with("DeleteOptions.preconditions.uid of type types.UID"),
            "{}",
            e.message
        );
        assert!(check_delete_options(
            &json!({"gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "dryRun": ["All"], "preconditions": {"uid": "x"}})
        )
        .is_ok());
    }

    /// Measures (prints, does not assert) what handing a decode to the blocking pool costs next to
    /// decoding inline, for the body size that decides [`INLINE_DECODE_BYTES`].
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_vs_blocking() {
        for size in [1024usize, 64 * 1024, 1024 * 1024] {
            let filler = "x".repeat(size);
            let body = bytes::Bytes::from(
                serde_json::to_vec(&json!({"kind": "ConfigMap", "data": {"k": filler}})).unwrap(),
            );
            let rounds = (4 * 1024 * 1024 / size).clamp(4, 2000);
            let t = Instant::now();
            for _ in 0..rounds {
                decode(BodyFormat::Json, "application/json", &body).unwrap();
            }
            let inline = t.elapsed() / rounds as u32;
            let t = Instant::now();
            for _ in 0..rounds {
                let b = body.clone();
                tokio::task::spawn_blocking(move || decode(BodyFormat::Json, "", &b))
                    .await
                    .unwrap()
                    .unwrap();
            }
            let blocking = t.elapsed() / rounds as u32;
            println!("{size} B body: inline {inline:?}, spawn_blocking {blocking:?} per decode");
        }
    }
}
