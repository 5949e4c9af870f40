//! A YAML request body as the apiserver decodes it: never a panic, an object or a 4xx, and the depth
//! pre-scan never underestimates what the parser found.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::http::body::{decode, yaml_depth_estimate, BodyFormat};
use serde_json::Value;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    match decode(BodyFormat::Yaml, "application/yaml", data) {
        Ok(v) => {
            // Each block level needs a deeper indentation or a `- `/`? ` indicator, and a mapping in a
            // sequence may share its column, and a single-pair mapping in a flow sequence has no brackets: twice
            // each estimate bounds it.
            let (flow, block) = yaml_depth_estimate(data);
            assert!(
                depth(&v) <= 2 * flow + 2 * block + 2,
                "depth {} > 2 x flow {flow} + 2 x block {block} + 2",
                depth(&v)
            );
        }
        Err(e) => assert!((400..500).contains(&e.code), "{}: {}", e.code, e.message),
    }
});
