//! A protobuf request body and a protobuf watch frame: never a panic; a body is an object or a 4xx.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::http::body::{decode, BodyFormat};
use rkube::apiserver::wire::protobuf;

fuzz_target!(|data: &[u8]| {
    // Most random inputs lack the envelope's magic: give half of them one so the decoder goes deeper.
    let mut body = Vec::with_capacity(data.len() + 4);
    if data.first().is_some_and(|b| b & 1 == 1) {
        body.extend_from_slice(b"k8s\0");
    }
    body.extend_from_slice(data);
    if let Err(e) = decode(BodyFormat::Protobuf, "application/vnd.kubernetes.protobuf", &body) {
        assert!((400..500).contains(&e.code), "{}: {}", e.code, e.message);
    }
    let _ = protobuf::decode_watch_frame(data);
});
