//! Helpers shared by the validation rooms: reading fields of a JSON object, comparing old and new the
//! way Go's typed structs would, IPs and CIDRs, ports, labels and selectors, quantities, and the Go `%#v`
//! renderings upstream's messages print for non-string values.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::apiserver::registry::validation::{label_value_errors, qualified_name_errors};
use crate::apiserver::status::Cause;
use crate::apiserver::wire::quantity::Quantity;

pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(crate) const FIELD_IMMUTABLE: &str = "field is immutable";
pub(crate) const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
pub(crate) const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
pub(crate) const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Whether `obj` is the new object of an update of the main resource or a subresource: the registry
/// sets its resourceVersion before validating, and a create never carries one (it is cleared).
pub(crate) fn is_update(obj: &Value) -> bool {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
}

/// The object's `spec`, or null.
pub(crate) fn spec(v: &Value) -> &Value {
    v.get("spec").unwrap_or(&Value::Null)
}

/// A string field, "" when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An array field, empty when absent or not an array.
pub(crate) fn arr_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether the field is set to something other than null.
pub(crate) fn present(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// `v` without null members (absent and null are the same to upstream's typed decoding).
pub(crate) fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Equality that treats absent, null and empty (`{}`, `[]`, `""`) alike, and ignores null members.
pub(crate) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| match v.map(strip_nulls) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(m)) if m.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(other) => other,
    };
    norm(a) == norm(b)
}

pub(crate) fn set_or_remove(v: &mut Value, key: &str, val: Option<&Value>) {
    if let Some(m) = v.as_object_mut() {
        match val.filter(|x| !x.is_null()) {
            Some(x) => m.insert(key.into(), strip_nulls(x)),
            None => m.remove(key),
        };
    }
}

/// A cause whose value is already rendered (Go `%#v` output for structs and slices).
pub(crate) fn invalid_raw(field: &str, raw: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {raw}: {detail}"),
        field: field.into(),
    }
}

/// `[]string{"a", "b"}` (Go's `%#v` of a string slice).
pub(crate) fn go_strings<S: AsRef<str>>(ty: &str, items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{:?}", s.as_ref())).collect();
    format!("{ty}{{{}}}", inner.join(", "))
}

/// A JSON string array as Go prints the slice; `ty(nil)` when absent.
pub(crate) fn go_json_strings(ty: &str, v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => format!("{ty}(nil)"),
        Some(a) => go_strings(
            ty,
            &a.iter()
                .map(|x| x.as_str().unwrap_or(""))
                .collect::<Vec<_>>(),
        ),
    }
}

/// A pointer to a string type as upstream prints it: the value, or `null` for nil.
pub(crate) fn go_ptr_str(v: Option<&Value>) -> String {
    match v.and_then(Value::as_str) {
        Some(s) => format!("{s:?}"),
        None => "null".into(),
    }
}

/// An approximation of Go's `%#v` for a struct or slice we hold as JSON: `ty(nil)` when absent,
/// otherwise the type followed by the JSON content in braces.
pub(crate) fn go_json(ty: &str, v: Option<&Value>) -> String {
    match v.filter(|x| !x.is_null()) {
        None => format!("{ty}(nil)"),
        Some(Value::Array(a)) if a.is_empty() => format!("{ty}{{}}"),
        Some(Value::Array(a)) => format!(
            "{ty}{{{}}}",
            a.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(other) => {
            let s = other.to_string();
            let inner = s
                .strip_prefix('{')
                .and_then(|x| x.strip_suffix('}'))
                .unwrap_or(&s);
            format!("{ty}{{{inner}}}")
        }
    }
}

/// A short rendering of what changed between two specs, standing in for upstream's go-cmp diff.
pub(crate) fn spec_diff(ty: &str, old: &Value, new: &Value) -> String {
    let mut out = format!("  {ty}{{\n");
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    let mut seen = HashSet::new();
    for k in keys {
        if !seen.insert(k) {
            continue;
        }
        match (o.get(k), n.get(k)) {
            (a, b) if a == b => {}
            (a, b) => {
                // Go's field names: the JSON name with its first letter capitalized.
                let mut field = k.clone();
                if let Some(first) = field.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                if let Some(a) = a {
                    out.push_str(&format!("- \t{field}: {a},\n"));
                }
                if let Some(b) = b {
                    out.push_str(&format!("+ \t{field}: {b},\n"));
                }
            }
        }
    }
    out.push_str("  }\n");
    out
}

/// `validation.IsValidPortName` (IANA_SVC_NAME).
pub(crate) fn port_name_errors(p: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if p.len() > 15 {
        errs.push("must be no more than 15 characters".into());
    }
    if p.is_empty()
        || !p
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !p.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if p.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if p.starts_with('-') || p.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsValidPortNum` on an integer field.
pub(crate) fn port_num_causes(field: &str, v: Option<&Value>, causes: &mut Vec<Cause>) {
    let n = v.and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&n) {
        causes.push(Cause::invalid(field, &json!(n), PORT_RANGE_MSG));
    }
}

/// `ValidateLabels` on a map at `path` (keys and values both reported at the map's path).
pub(crate) fn labels_causes(m: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    for (k, v) in m.and_then(Value::as_object).into_iter().flatten() {
        for e in qualified_name_errors(k) {
            causes.push(Cause::invalid(path, &json!(k), &e));
        }
        let v = v.as_str().unwrap_or("");
        for e in label_value_errors(v) {
            causes.push(Cause::invalid(path, &json!(v), &e));
        }
    }
}

/// `ValidateLabelSelector`.
pub(crate) fn label_selector_causes(sel: &Value, path: &str, causes: &mut Vec<Cause>) {
    labels_causes(
        sel.get("matchLabels"),
        &format!("{path}.matchLabels"),
        causes,
    );
    for (i, r) in arr_at(sel, "matchExpressions").iter().enumerate() {
        let rpath = format!("{path}.matchExpressions[{i}]");
        let values = arr_at(r, "values");
        match str_at(r, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    causes.push(Cause::required_detail(
                        &format!("{rpath}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    causes.push(Cause::forbidden(
                        &format!("{rpath}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => causes.push(Cause::invalid(
                &format!("{rpath}.operator"),
                &json!(op),
                "not a valid selector operator",
            )),
        }
        let key = str_at(r, "key");
        for e in qualified_name_errors(key) {
            causes.push(Cause::invalid(&format!("{rpath}.key"), &json!(key), &e));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for e in label_value_errors(v) {
                causes.push(Cause::invalid(
                    &format!("{rpath}.values[{j}]"),
                    &json!(v),
                    &e,
                ));
            }
        }
    }
}

/// Go's `netutils.ParseIPSloppy`: IPv4 may carry leading zeros; IPv6 in any textual form.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *o = u8::try_from(p.parse::<u16>().ok()?).ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// An IPv6 address that is not an IPv4-mapped one (Go treats those as IPv4).
pub(crate) fn is_v6(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => false,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
    }
}

/// `netutils.ParseCIDRSloppy`: address and prefix length.
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let addr = parse_ip(ip)?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u8 = len.parse().ok()?;
    let max = if ip.contains(':') { 128 } else { 32 };
    (n <= max).then_some((addr, n))
}

pub(crate) fn cidr_contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((n, nw), (i, iw)) = (bits(net.0), bits(ip));
    if nw != iw {
        return false;
    }
    let shift = nw - u32::from(net.1);
    if shift >= 128 {
        return true;
    }
    (n >> shift) == (i >> shift)
}

/// `ValidateNonSpecialIP`: endpoints and external IPs may not be unspecified, loopback or link-local.
pub(crate) fn non_special_ip_causes(field: &str, s: &str, causes: &mut Vec<Cause>) {
    let Some(ip) = parse_ip(s) else {
        causes.push(Cause::invalid(
            field,
            &json!(s),
            "must be a valid IP address",
        ));
        return;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (unspecified, loopback, ll_unicast, ll_multicast) = match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            (
                v.is_unspecified(),
                o[0] == 127,
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v) => {
            let seg = v.segments();
            (
                v.is_unspecified(),
                v.is_loopback(),
                seg[0] & 0xffc0 == 0xfe80,
                seg[0] & 0xff0f == 0xff02,
            )
        }
    };
    if unspecified {
        causes.push(Cause::invalid(
            field,
            &json!(s),
            &format!("may not be unspecified ({s})"),
        ));
    }
    if loopback {
        causes.push(Cause::invalid(
            field,
            &json!(s),
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if ll_unicast {
        causes.push(Cause::invalid(
            field,
            &json!(s),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        causes.push(Cause::invalid(
            field,
            &json!(s),
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// A resource quantity (a string like "10Gi", "500m", "1e3", or a bare JSON number).
pub(crate) fn quantity(v: &Value) -> Option<Quantity> {
    match v {
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        Value::String(s) => Quantity::parse(s.trim()).ok(),
        _ => None,
    }
}

/// A quantity as upstream's `Quantity.String()` prints it in messages: canonical when it parses,
/// otherwise as written.
pub(crate) fn quantity_text(v: &Value) -> String {
    match (quantity(v), v) {
        (Some(q), _) => q.to_string(),
        (None, Value::String(s)) => s.trim().to_string(),
        (None, other) => other.to_string(),
    }
}
