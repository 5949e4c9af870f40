//! Shared by the patch targets: the fuzz input is `document \0 patch` (or a patch for a fixed pod).

use rkube::apiserver::registry::fieldpath::{Builtin, Pos};
use rkube::apiserver::registry::patch::{apply_patch, PatchType};
use serde_json::{json, Value};

pub fn run(kind: PatchType, data: &[u8]) {
    let (doc, patch) = match data.iter().position(|b| *b == 0) {
        Some(i) => match serde_json::from_slice::<Value>(&data[..i]) {
            Ok(d) => (d, &data[i + 1..]),
            Err(_) => return,
        },
        None => (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["x"]},
                   "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": [{"name": "E", "value": "v"}]}],
                            "tolerations": [{"key": "k"}]}}),
            data,
        ),
    };
    let pos = Pos::root(&Builtin, "v1", "Pod");
    match apply_patch(kind, &doc, patch, &pos) {
        Ok(out) => {
            // Whatever a patch does, the result is bounded by upstream's copy limit and the input.
            let n = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(0);
            assert!(n <= 2 * (data.len() + 3 * 1024 * 1024), "patched object of {n} bytes");
        }
        Err(e) => assert!((400..500).contains(&e.code), "{}: {}", e.code, e.message),
    }
}
