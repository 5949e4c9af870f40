//! A webhook's `namespaceSelector` and `objectSelector` (upstream's `predicates/namespace` and
//! `predicates/object`): metav1.LabelSelectors evaluated on the namespace's labels and on the old
//! and new objects' labels.

use serde_json::{Map, Value};

/// Whether the LabelSelector `sel` (JSON) selects `labels`. An absent or empty selector selects
/// everything; a malformed one is an error (upstream's `LabelSelectorAsSelector`).
pub fn selects(sel: Option<&Value>, labels: Option<&Map<String, Value>>) -> Result<bool, String> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return Ok(true);
    };
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            if label(k) != v.as_str() {
                return Ok(false);
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = label(key);
        let ok = match op {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                ))
            }
            "In" => have.is_some_and(|v| values.contains(&v)),
            "NotIn" => !have.is_some_and(|v| values.contains(&v)),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist (key {key:?})"
                ))
            }
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the selector is empty (selects everything without looking at any labels): lets a
/// request skip reading its namespace.
pub fn is_empty(sel: Option<&Value>) -> bool {
    match sel {
        None | Some(Value::Null) => true,
        Some(s) => {
            let empty = |f: &str| match s.get(f) {
                None | Some(Value::Null) => true,
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(_) => false,
            };
            empty("matchLabels") && empty("matchExpressions")
        }
    }
}

/// The labels of an object (JSON).
pub fn labels_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

/// Upstream's object matcher: the selector matches when either the new or the old object's labels
/// match (an object that is absent, as the new one on a delete, matches nothing).
pub fn object_selects(
    sel: Option<&Value>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    if is_empty(sel) {
        return Ok(true);
    }
    for o in [obj, old].into_iter().flatten() {
        if selects(sel, labels_of(o))? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn match_labels_and_expressions() {
        let l = labels(json!({"env": "prod", "team": "a"}));
        assert_eq!(selects(None, Some(&l)), Ok(true));
        assert_eq!(selects(Some(&json!({})), None), Ok(true));
        let sel = json!({"matchLabels": {"env": "prod"}});
        assert_eq!(selects(Some(&sel), Some(&l)), Ok(true));
        assert_eq!(selects(Some(&sel), None), Ok(false));
        let sel =
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(selects(Some(&sel), Some(&l)), Ok(true));
        let sel =
            json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]});
        assert_eq!(selects(Some(&sel), Some(&l)), Ok(false));
        let sel = json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(selects(Some(&sel), Some(&l)), Ok(true));
        let sel = json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]});
        assert_eq!(selects(Some(&sel), Some(&l)), Ok(true));
        let bad = json!({"matchExpressions": [{"key": "env", "operator": "Near"}]});
        assert!(selects(Some(&bad), Some(&l)).is_err());
        let bad = json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]});
        assert!(selects(Some(&bad), Some(&l)).is_err());
    }

    #[test]
    fn empty_selectors() {
        assert!(is_empty(None));
        assert!(is_empty(Some(&json!({}))));
        assert!(is_empty(Some(
            &json!({"matchLabels": {}, "matchExpressions": []})
        )));
        assert!(!is_empty(Some(&json!({"matchLabels": {"a": "b"}}))));
    }

    #[test]
    fn object_selector_old_or_new() {
        let sel = json!({"matchLabels": {"watch": "yes"}});
        let new = json!({"metadata": {"labels": {"watch": "yes"}}});
        let old = json!({"metadata": {"labels": {}}});
        assert_eq!(object_selects(Some(&sel), Some(&new), Some(&old)), Ok(true));
        assert_eq!(object_selects(Some(&sel), Some(&old), Some(&new)), Ok(true));
        assert_eq!(object_selects(Some(&sel), Some(&old), None), Ok(false));
        // A delete has no new object: only the old one is looked at.
        assert_eq!(object_selects(Some(&sel), None, Some(&new)), Ok(true));
        assert_eq!(object_selects(Some(&json!({})), None, None), Ok(true));
    }
}
