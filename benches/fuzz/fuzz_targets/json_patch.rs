//! A json patch body applied to an object: never a panic, a bounded result or a 4xx.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::registry::patch::PatchType;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::run(PatchType::Json, data));
