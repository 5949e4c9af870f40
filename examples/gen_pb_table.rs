//! Regenerates `src/apiserver/protobuf/table.rs` from the k8s-pb and k8s-openapi sources in the cargo
//! registry (the versions locked in Cargo.lock): `cargo run --release --example gen_pb_table`.

#[path = "../src/apiserver/protobuf/gen.rs"]
#[allow(dead_code)]
mod gen;

fn main() -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| e.to_string())?;
    let pb = gen::find_crate(
        "k8s-pb",
        &gen::locked_version(&lock, "k8s-pb").ok_or("k8s-pb not locked")?,
    )?;
    let oa = gen::find_crate(
        "k8s-openapi",
        &gen::locked_version(&lock, "k8s-openapi").ok_or("k8s-openapi not locked")?,
    )?;
    let table = gen::generate(&pb, &oa)?;
    let out = root.join("src/apiserver/protobuf/table.rs");
    std::fs::write(&out, table).map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    Ok(())
}
