//! Regenerates the tables generated from the k8s-pb and k8s-openapi sources in the cargo registry (the
//! versions locked in Cargo.lock): `src/apiserver/wire/protobuf/table.rs` (the protobuf field table) and
//! `src/apiserver/registry/schema_table.rs` (schema shapes and merge facts) and `src/apiserver/openapi/kinds.rs`
//! (each kind's schemars schema).
//! `cargo run --release --example gen_pb_table`.

#[path = "../src/apiserver/wire/protobuf/gen.rs"]
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
    let out = root.join("src/apiserver/wire/protobuf/table.rs");
    std::fs::write(&out, table).map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    let schema = gen::generate_schema(&pb, &oa)?;
    let out = root.join("src/apiserver/registry/schema_table.rs");
    std::fs::write(&out, schema).map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    let kinds = gen::generate_kinds(&oa)?;
    let out = root.join("src/apiserver/openapi/kinds.rs");
    std::fs::write(&out, kinds).map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    Ok(())
}
