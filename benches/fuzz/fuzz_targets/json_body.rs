//! A JSON request body as the apiserver decodes it: never a panic, and an object or a 4xx.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::http::body::{decode, BodyFormat};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode(BodyFormat::Json, "application/json", data) {
        assert!((400..500).contains(&e.code), "{}: {}", e.code, e.message);
    }
});
