use crate::apiserver::openapi::*;

fn api() -> OpenApiV3 {
    OpenApiV3::generate(&Catalog::builtin())
}

fn v2() -> Value {
    serde_json::from_slice(&api().v2_json()).expect("v2 JSON")
}

#[test]
fn kinds_table_is_up_to_date() {
    use crate::apiserver::registry::schema::gen;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let oa = gen::find_crate(
        "k8s-openapi",
        &gen::locked_version(&lock, "k8s-openapi").expect("locked"),
    )
    .expect("k8s-openapi");
    let fresh = gen::generate_kinds(&oa).expect("generate");
    assert!(
        fresh == include_str!("kinds.rs"),
        "src/apiserver/openapi/kinds.rs is stale: run `cargo run --release --example gen_pb_table`"
    );
}

#[test]
fn v2_pod_has_upstream_extensions_and_descriptions() {
    let doc = v2();
    let defs = &doc["definitions"];
    let pod = &defs["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert!(pod["description"]
        .as_str()
        .is_some_and(|d| d.starts_with("Pod is a collection of containers")));
    assert!(
        defs["io.k8s.api.apps.v1.Deployment"]["required"].is_null(),
        "metadata is not required"
    );
    assert_eq!(
        pod["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(
        containers["items"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    assert_eq!(
        defs["io.k8s.api.core.v1.PodSpec"]["properties"]["nodeSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
    let ports = &defs["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
    let meta = &defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
    assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(meta["labels"]["additionalProperties"]["type"], "string");
    assert_eq!(
        defs["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
    let ios = &defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(
        (&ios["type"], &ios["format"]),
        (&json!("string"), &json!("int-or-string"))
    );
    assert_eq!(
        defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"],
        "string"
    );
    assert_eq!(
        defs["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "PodList", "version": "v1"}])
    );
    // Every definition has a type kube-openapi's proto parser accepts (one type, array items set).
    for (name, d) in defs.as_object().expect("defs") {
        assert!(!d["type"].is_array(), "{name}: several types");
    }
}

#[test]
fn v2_deployment_and_service() {
    let doc = v2();
    let defs = &doc["definitions"];
    assert_eq!(
        defs["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    let volumes = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let ports = &defs["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["port", "protocol"])
    );
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(patch["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .any(|p| p["name"] == "fieldValidation"));
}

#[test]
fn v3_index_hashes_and_documents() {
    let api = api();
    let index = api.index();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1")
        .to_string();
    let hash = api.hash("apis/apps/v1").expect("hash");
    assert_eq!(url, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
    assert_eq!(hash.len(), 128);
    let doc: Value =
        serde_json::from_slice(&api.document("apis/apps/v1").expect("doc")).expect("json");
    assert_eq!(
        sha512_hex(&api.document("apis/apps/v1").expect("doc")),
        hash
    );
    let schemas = &doc["components"]["schemas"];
    let d = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        d["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        d["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(
        schemas["io.k8s.api.core.v1.PodSpec"].is_object(),
        "closure of refs"
    );
    assert!(
        schemas["io.k8s.api.core.v1.ConfigMap"].is_null(),
        "other groups' kinds left out"
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"],
        true
    );
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .any(|p| p["name"] == "fieldValidation"));
    assert!(patch["requestBody"]["content"]["application/apply-patch+yaml"].is_object());
    assert!(api.document("api/v1").is_some());

    // Serving: the hashed URL is immutable, a stale hash redirects, no hash revalidates.
    let h = HeaderMap::new();
    let r = api
        .serve(
            "/openapi/v3/apis/apps/v1",
            Some(&format!("hash={hash}")),
            &h,
        )
        .expect("served");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "public, immutable");
    let r = api
        .serve("/openapi/v3/apis/apps/v1", Some("hash=0"), &h)
        .expect("served");
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    let r = api
        .serve("/openapi/v3/apis/apps/v1", None, &h)
        .expect("served");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache, private");
    assert!(api.serve("/openapi/v3/apis/nope/v1", None, &h).is_none());
    let mut proto = HeaderMap::new();
    proto.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
    );
    let r = api.serve("/openapi/v2", None, &proto).expect("served");
    assert_eq!(r.headers()[header::CONTENT_TYPE], V2_PROTOBUF);
}

#[test]
fn v2_has_subresource_and_collection_operations() {
    let doc = v2();
    let paths = &doc["paths"];
    let status = &paths["/api/v1/namespaces/{namespace}/pods/{name}/status"];
    assert_eq!(
        status["get"]["operationId"],
        "readCoreV1NamespacedPodStatus"
    );
    assert_eq!(
        status["patch"]["operationId"],
        "patchCoreV1NamespacedPodStatus"
    );
    let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    assert_eq!(
        scale["get"]["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    );
    let pods = &paths["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(pods["get"]["operationId"], "listCoreV1NamespacedPod");
    assert_eq!(
        pods["delete"]["operationId"],
        "deleteCollectionCoreV1NamespacedPod"
    );
    let params: Vec<&str> = pods["get"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(params.contains(&"labelSelector") && params.contains(&"watch"));
    assert_eq!(
        paths["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        paths["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["get"]["operationId"],
        "readRbacAuthorizationV1ClusterRole"
    );
}
