//! End to end through the registry on the embedded store: a CRD write changes what is served.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::apiserver::catalog::{Catalog, ResourceInfo, SharedCatalog};
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::store::{normalize, DeleteOptions, Registry};
use crate::storage::embedded::EmbeddedStore;
use crate::storage::Store;

async fn registry(dir: &std::path::Path) -> Arc<Registry> {
    let store: Arc<dyn Store> = EmbeddedStore::open(dir).expect("store");
    let mut catalog = Catalog::builtin();
    for r in crate::apiserver::crd::stored_rows(store.as_ref())
        .await
        .expect("stored rows")
    {
        catalog.add(r);
    }
    let reg = Registry::new(store.clone(), Arc::new(SharedCatalog::new(catalog)));
    tokio::spawn(reg.cache.clone().run(store));
    reg.cache.wait_ready().await;
    crate::apiserver::registry::bootstrap::bootstrap(
        &reg,
        std::net::IpAddr::from([127, 0, 0, 1]),
        6443,
    )
    .await
    .expect("bootstrap");
    reg
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"replicas": {"type": "integer", "default": 1}, "image": {"type": "string"}}}}}},
                "subresources": {"status": {}}
            }]
        }
    })
}

/// The catalog row of customresourcedefinitions.
fn crd_row(reg: &Registry) -> ResourceInfo {
    reg.catalog
        .find(
            crate::apiserver::crd::GROUP,
            "v1",
            crate::apiserver::crd::PLURAL,
        )
        .expect("crd row")
}

#[tokio::test]
async fn crd_lifecycle_serves_and_removes_custom_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path()).await;
    let crds = crd_row(&reg);
    let created = reg
        .create(&crds, None, crd(), false)
        .await
        .expect("create crd");
    assert_eq!(created["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(created["status"]["conditions"][1]["type"], "Established");
    let info = reg
        .catalog
        .find("stable.example.com", "v1", "crontabs")
        .expect("served at once");

    // Pruned and defaulted on the way in; validated by the schema.
    let body = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "a"}, "spec": {"image": "x", "bogus": true}});
    let obj = normalize(&info, body).expect("normalize");
    assert_eq!(obj["spec"], json!({"image": "x", "replicas": 1}));
    let stored = reg
        .create(&info, Some("default"), obj, false)
        .await
        .expect("create cr");
    assert_eq!(stored["metadata"]["generation"], 1);
    let bad = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "b"}, "spec": {"replicas": "many"}});
    let err = reg
        .create(&info, Some("default"), bad, false)
        .await
        .expect_err("invalid");
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.replicas in body must be of type integer"),
        "{}",
        err.message
    );
    let listed = reg
        .list(&info, Some("default"), &Query::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);

    // A restart finds the CRD in storage and serves it again.
    let rows = crate::apiserver::crd::stored_rows(reg.store.as_ref())
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);

    // Deleting the CRD deletes its custom resources, then stops serving them.
    reg.delete(
        &crds,
        None,
        "crontabs.stable.example.com",
        &DeleteOptions::default(),
    )
    .await
    .expect("delete crd");
    assert!(reg
        .catalog
        .find("stable.example.com", "v1", "crontabs")
        .is_none());
    let left = reg
        .store
        .range("/registry/stable.example.com/", None, 0, 0)
        .await
        .expect("range");
    assert!(left.kvs.is_empty());

    // Invalid CRDs are refused.
    let mut bad = crd();
    bad["metadata"]["name"] = json!("x");
    let err = reg
        .create(&crds, None, bad, false)
        .await
        .expect_err("invalid");
    assert_eq!(err.code, 422);
}

/// Two served versions, `None` conversion: one object through both, stored as the storage version.
#[tokio::test]
async fn versions_share_objects_stored_as_the_storage_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path()).await;
    let crds = crd_row(&reg);
    let mut two = crd();
    let schema = two["spec"]["versions"][0]["schema"].clone();
    two["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true, "schema": schema},
        {"name": "v2", "served": true, "storage": false, "schema": schema},
    ]);
    reg.create(&crds, None, two, false)
        .await
        .expect("create crd");
    let find = |v: &str| {
        reg.catalog
            .find("stable.example.com", v, "crontabs")
            .expect("served")
    };
    let (v1, v2) = (find("v1"), find("v2"));

    // Created through v2: answered as v2, stored as v1.
    let body = json!({"apiVersion": "stable.example.com/v2", "kind": "CronTab",
        "metadata": {"name": "a"}, "spec": {"image": "x"}});
    let created = reg
        .create(
            &v2,
            Some("default"),
            normalize(&v2, body).expect("normalize"),
            false,
        )
        .await
        .expect("create through v2");
    assert_eq!(created["apiVersion"], "stable.example.com/v2");
    let (kv, _) = reg
        .store
        .get("/registry/stable.example.com/crontabs/default/a")
        .await
        .expect("get");
    let raw: Value = serde_json::from_slice(&kv.expect("stored").value).expect("json");
    assert_eq!(raw["apiVersion"], "stable.example.com/v1");

    // Read, listed and updated through either version.
    let as_v1 = reg.get(&v1, Some("default"), "a").await.expect("get v1");
    let as_v2 = reg.get(&v2, Some("default"), "a").await.expect("get v2");
    assert_eq!(as_v1["apiVersion"], "stable.example.com/v1");
    assert_eq!(as_v2["apiVersion"], "stable.example.com/v2");
    assert_eq!(as_v1["spec"], as_v2["spec"]);
    let listed = reg
        .list(&v2, Some("default"), &Query::default())
        .await
        .expect("list");
    assert_eq!(
        listed.items[0].tree()["apiVersion"],
        "stable.example.com/v2"
    );
    let mut changed = as_v2.clone();
    changed["spec"]["image"] = json!("y");
    let (updated, _) = reg
        .update(&v2, Some("default"), "a", changed, None, false)
        .await
        .expect("update through v2");
    assert_eq!(updated["apiVersion"], "stable.example.com/v2");
    let as_v1 = reg.get(&v1, Some("default"), "a").await.expect("get v1");
    assert_eq!(
        (
            as_v1["apiVersion"].as_str(),
            as_v1["spec"]["image"].as_str()
        ),
        (Some("stable.example.com/v1"), Some("y"))
    );
}
