//! Table output of custom resources: `additionalPrinterColumns`.
//!
//! As upstream's CRD table convertor: the first column is always Name; a CRD without printer columns
//! gets Age; otherwise exactly its columns, each a JSONPath evaluated on the object (`type: date` shown
//! as an age, a missing value as `null`). Columns with `priority > 0` are what `-o wide` adds.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::apiserver::crd::CustomVersion;
use crate::apiserver::wire::table::{human_duration, META_CREATION, META_NAME};

/// The column definitions for a custom resource version.
pub fn column_definitions(c: &CustomVersion) -> Vec<Value> {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": META_NAME, "priority": 0}),
    ];
    match &c.columns {
        None => cols.push(json!({"name": "Age", "type": "date", "format": "", "description": META_CREATION, "priority": 0})),
        Some(list) => {
            for p in list {
                cols.push(json!({"name": p.name, "type": p.type_, "format": p.format, "description": p.description, "priority": p.priority}));
            }
        }
    }
    cols
}

/// The cells of one row.
pub fn row_cells(c: &CustomVersion, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let mut cells = vec![name];
    match &c.columns {
        None => cells.push(age(obj.pointer("/metadata/creationTimestamp"), now)),
        Some(list) => {
            for p in list {
                let found = eval(obj, &p.json_path);
                let cell = match found {
                    None => Value::Null,
                    Some(v) if p.type_ == "date" => age(Some(v), now),
                    Some(v) => match (p.type_.as_str(), v) {
                        (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => v.clone(),
                        (_, other) => Value::String(other.to_string()),
                    },
                };
                cells.push(cell);
            }
        }
    }
    cells
}

fn age(ts: Option<&Value>, now: DateTime<Utc>) -> Value {
    let Some(t) = ts.and_then(Value::as_str) else {
        return json!("<unknown>");
    };
    match DateTime::parse_from_rfc3339(t) {
        Ok(t) => json!(human_duration(now - t.with_timezone(&Utc))),
        Err(_) => json!("<unknown>"),
    }
}

/// Evaluates a simple JSONPath (`.spec.replicas`, `{.status.conditions[0].type}`, `.metadata.labels.a`).
pub fn eval<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut cur = obj;
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (field, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let idx: usize = r[..end].trim().parse().ok()?;
            cur = cur.get(idx)?;
            rest = &r[end + 1..];
        }
    }
    (!cur.is_null()).then_some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::crd::PrinterColumn;

    #[test]
    fn columns_and_cells() {
        let col = |name: &str, ty: &str, path: &str, priority: i64| PrinterColumn {
            name: name.into(),
            type_: ty.into(),
            format: String::new(),
            description: String::new(),
            priority,
            json_path: path.into(),
        };
        let c = CustomVersion {
            crd_name: "x".into(),
            storage_version: "v1".into(),
            schema: None,
            columns: Some(vec![
                col("Spec", "string", ".spec.cronSpec", 0),
                col("Replicas", "integer", ".spec.replicas", 0),
                col("Age", "date", ".metadata.creationTimestamp", 0),
                col("First", "string", "{.spec.list[0].a}", 1),
            ]),
            scale: None,
            conversion: crate::apiserver::crd::conversion::Strategy::None,
            deprecation: None,
            rules: None,
        };
        let defs = column_definitions(&c);
        assert_eq!(defs.len(), 5);
        assert_eq!(defs[4]["priority"], 1);
        let now = Utc::now();
        let created = (now - chrono::Duration::seconds(30)).to_rfc3339();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": created}, "spec": {"cronSpec": "* *", "replicas": 3, "list": [{"a": "z"}]}});
        assert_eq!(
            row_cells(&c, &obj, now),
            vec![json!("a"), json!("* *"), json!(3), json!("30s"), json!("z")]
        );
        let bare = json!({"metadata": {"name": "b"}});
        assert_eq!(row_cells(&c, &bare, now)[2], Value::Null);
    }
}
