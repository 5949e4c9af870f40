//! Label and field selectors as the query parameters carry them: never a panic when parsed or matched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::registry::selectors::{FieldSelector, LabelSelector};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let obj = json!({"metadata": {"name": "n", "namespace": "ns", "labels": {"a": "b", "x": "1"}}, "status": {"phase": "Running"}});
    if let Ok(sel) = LabelSelector::parse(s) {
        let _ = sel.matches(obj["metadata"]["labels"].as_object());
        let _ = sel.is_empty();
    }
    if let Ok(sel) = FieldSelector::parse(s) {
        let _ = sel.matches(&obj);
        let _ = sel.validate(&["metadata.name".to_string(), "status.phase".to_string()]);
        let _ = sel.exact_name();
    }
});
