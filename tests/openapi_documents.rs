//! The committed OpenAPI documents (top-level `openapi/`) are the ones the code generates.
//!
//! `openapi/` holds what a server with only the built-in kinds serves at `/openapi/v2` and
//! `/openapi/v3` (see `rkube::apiserver::openapi::builtin_spec_files`), as upstream keeps
//! `api/openapi-spec/`, so a reviewer sees a change to the API surface in the diff. This test fails
//! when a file is stale, missing or no longer generated; `UPDATE_OPENAPI=1 cargo test --release --test
//! openapi_documents` rewrites the folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test --release --test openapi_documents";

/// Every file under `dir`, relative to it, with `/` separators.
fn committed(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn openapi_documents() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let files = rkube::apiserver::openapi::builtin_spec_files();
    assert!(
        files.iter().any(|(p, _)| p == "v3/api__v1_openapi.json"),
        "the core group's v3 document is generated"
    );
    let generated: BTreeSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        for stale in committed(&dir).difference(&generated) {
            std::fs::remove_file(dir.join(stale)).expect("remove a document no longer generated");
        }
        for (path, content) in &files {
            let p = dir.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("create openapi/ folders");
            }
            std::fs::write(&p, content).expect("write an OpenAPI document");
        }
        eprintln!("wrote {} files under {}", files.len(), dir.display());
        return;
    }
    let mut problems = Vec::new();
    for (path, content) in &files {
        match std::fs::read_to_string(dir.join(path)) {
            Ok(on_disk) if on_disk == *content => {}
            Ok(_) => problems.push(format!(
                "openapi/{path} differs from what the code generates"
            )),
            Err(e) => problems.push(format!("openapi/{path} cannot be read: {e}")),
        }
    }
    for extra in committed(&dir).difference(&generated) {
        problems.push(format!("openapi/{extra} is no longer generated"));
    }
    assert!(
        problems.is_empty(),
        "the committed OpenAPI documents are stale; regenerate them with `{REGENERATE}` and commit \
         openapi/:\n  {}",
        problems.join("\n  ")
    );
}
