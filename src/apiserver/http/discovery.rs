//! Discovery documents, all derived from the catalog: legacy (`/api`, `/apis`, `/apis/<g>`,
//! `/api/v1`, `/apis/<g>/<v>`) and aggregated (`apidiscovery.k8s.io` v2 and v2beta1), which kubectl 1.30+
//! asks for first.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::apiserver::catalog::{Catalog, ResourceHandler, ResourceInfo};

fn scope(r: &ResourceInfo) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// `/api`: the legacy group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group(catalog: &Catalog, group: &str) -> Option<Value> {
    let groups = catalog.groups();
    let (g, vs) = groups.iter().find(|(g, _)| g == group && !g.is_empty())?;
    let mut doc = group_doc(g, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`: the resources and subresources of one group version.
pub fn api_resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let rows: Vec<&ResourceInfo> = catalog
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    // Fields in upstream's APIResource order: name, singularName, namespaced, group, version, kind,
    // verbs, shortNames, categories, storageVersionHash (clients diff these documents as text).
    for r in rows {
        let mut doc = Map::new();
        doc.insert("name".into(), json!(r.plural));
        doc.insert("singularName".into(), json!(r.singular));
        doc.insert("namespaced".into(), json!(r.namespaced));
        doc.insert("kind".into(), json!(r.kind));
        doc.insert("verbs".into(), json!(r.verbs));
        if !r.short_names.is_empty() {
            doc.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            doc.insert("categories".into(), json!(r.categories));
        }
        if let Some(hash) = storage_version_hash(catalog, r) {
            doc.insert("storageVersionHash".into(), json!(hash));
        }
        resources.push(Value::Object(doc));
        for s in &r.subresources {
            let mut sub = Map::new();
            sub.insert("name".into(), json!(format!("{}/{}", r.plural, s.name)));
            sub.insert("singularName".into(), json!(""));
            sub.insert("namespaced".into(), json!(r.namespaced));
            if s.group != r.group || s.version != r.version {
                sub.insert("group".into(), json!(s.group));
                sub.insert("version".into(), json!(s.version));
            }
            sub.insert("kind".into(), json!(s.kind));
            sub.insert("verbs".into(), json!(s.verbs));
            resources.push(Value::Object(sub));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Upstream's `storageVersionHash` of a stored resource: base64 of the first 8 bytes of the sha256 of
/// `group/version/kind` of the version its objects are stored as (so every served version of one
/// resource, and core and events.k8s.io Events, which share one store, carry the same hash). Resources
/// with nothing stored (bindings, reviews, componentstatuses) carry none, as upstream's.
fn storage_version_hash(catalog: &Catalog, r: &ResourceInfo) -> Option<String> {
    if !matches!(r.handler, ResourceHandler::Store) {
        return None;
    }
    let (group, version, kind) = match r.custom() {
        Some(c) if !c.storage_version.is_empty() => (&r.group, &c.storage_version, &r.kind),
        Some(_) => (&r.group, &r.version, &r.kind),
        None => {
            // The row stored as itself that shares this one's store: for a converted row (events.k8s.io
            // Events) the one it converts to; otherwise the first, preferred, version of the resource
            // (autoscaling/v2 for both HorizontalPodAutoscaler versions, as upstream stores them).
            let stored = catalog
                .all()
                .iter()
                .find(|o| {
                    o.conversion.is_none()
                        && if r.conversion.is_some() {
                            o.storage_prefix == r.storage_prefix
                        } else {
                            o.group == r.group && o.plural == r.plural
                        }
                })
                .unwrap_or(r);
            (&stored.group, &stored.version, &stored.kind)
        }
    };
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{group}/{version}/{kind}").as_bytes(),
    );
    Some(base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8]))
}

/// The aggregated discovery document for the legacy group (`legacy = true`, served at `/api`) or for
/// every named group (`/apis`). `version` is "v2" or "v2beta1".
pub fn aggregated(catalog: &Catalog, legacy: bool, version: &str) -> Value {
    let mut items = Vec::new();
    for (g, versions) in catalog.groups() {
        if g.is_empty() != legacy {
            continue;
        }
        let vdocs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = catalog
                    .all()
                    .iter()
                    .filter(|r| r.group == g && &r.version == v)
                    .map(|r| {
                        let mut doc = json!({
                            "resource": r.plural,
                            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                            "scope": scope(r),
                            "singularResource": r.singular,
                            "verbs": r.verbs,
                        });
                        if !r.short_names.is_empty() {
                            doc["shortNames"] = json!(r.short_names);
                        }
                        if !r.categories.is_empty() {
                            doc["categories"] = json!(r.categories);
                        }
                        if !r.subresources.is_empty() {
                            doc["subresources"] = Value::Array(
                                r.subresources
                                    .iter()
                                    .map(|s| {
                                        json!({
                                            "subresource": s.name,
                                            "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                                            "verbs": s.verbs,
                                        })
                                    })
                                    .collect(),
                            );
                        }
                        doc
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vdocs}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

pub use crate::apiserver::authz::User;
use crate::apiserver::http::discovery;
use crate::apiserver::http::negotiate::*;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0+rkube",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else if cfg!(target_arch = "aarch64") { "arm64" } else { std::env::consts::ARCH }),
    })
}

/// Picks the aggregated discovery version the client asked for, if any.
pub(crate) fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())?;
    for item in accept.split(',') {
        let (media, params) = media_params(item);
        if media == "application/json"
            && param(&params, "g") == Some("apidiscovery.k8s.io")
            && param(&params, "as") == Some("APIGroupDiscoveryList")
        {
            match param(&params, "v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
    }
    None
}

pub(crate) fn discovery_response(
    headers: &HeaderMap,
    catalog: &Catalog,
    legacy: bool,
    server_address: &str,
) -> Response {
    if let Some(v) = aggregated_version(headers) {
        let doc = discovery::aggregated(catalog, legacy, v);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        // Upstream's ETag: a hash of the document, so clients revalidate cheaply and see CRD changes.
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        let etag: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let etag = format!("\"{etag}\"");
        let not_modified = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|h| h.to_str().ok())
            == Some(etag.as_str());
        let mut r = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            respond(
                StatusCode::OK,
                &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                body,
            )
        };
        r.headers_mut()
            .insert(header::VARY, http::HeaderValue::from_static("Accept"));
        if let Ok(h) = http::HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, h);
        }
        return r;
    }
    let doc = if legacy {
        discovery::api_versions(server_address)
    } else {
        discovery::api_group_list(catalog)
    };
    discovery_doc(headers, doc)
}

/// A legacy discovery document, in protobuf when the client prefers it (as client-go does).
pub(crate) fn discovery_doc(headers: &HeaderMap, mut doc: Value) -> Response {
    if matches!(negotiate(headers, true), Ok(Output::Protobuf)) {
        if doc.get("apiVersion").is_none() {
            doc["apiVersion"] = json!("v1");
        }
        return protobuf_response(StatusCode::OK, &doc);
    }
    json_response(StatusCode::OK, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(doc: &Value, name: &str) -> Value {
        doc["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn storage_version_hashes_are_upstreams() {
        let catalog = Catalog::builtin();
        let core = api_resource_list(&catalog, "", "v1").expect("/api/v1");
        // Values read off upstream v1.33's discovery.
        assert_eq!(
            resource(&core, "pods")["storageVersionHash"],
            "xPOwRZ+Yhw8="
        );
        assert_eq!(
            resource(&core, "configmaps")["storageVersionHash"],
            "qFsyl6wFWjQ="
        );
        assert_eq!(
            resource(&core, "events")["storageVersionHash"],
            "r2yiGXH7wu8="
        );
        assert!(resource(&core, "bindings")
            .get("storageVersionHash")
            .is_none());
        assert!(resource(&core, "pods/status")
            .get("storageVersionHash")
            .is_none());
        let events = api_resource_list(&catalog, "events.k8s.io", "v1").expect("events.k8s.io");
        assert_eq!(
            resource(&events, "events")["storageVersionHash"],
            "r2yiGXH7wu8=",
            "stored as core Events"
        );
        let apps = api_resource_list(&catalog, "apps", "v1").expect("apps/v1");
        assert_eq!(
            resource(&apps, "deployments")["storageVersionHash"],
            "8aSe+NMegvE="
        );
        let v1 = api_resource_list(&catalog, "autoscaling", "v1").expect("autoscaling/v1");
        let v2 = api_resource_list(&catalog, "autoscaling", "v2").expect("autoscaling/v2");
        assert_eq!(
            resource(&v1, "horizontalpodautoscalers")["storageVersionHash"],
            resource(&v2, "horizontalpodautoscalers")["storageVersionHash"],
        );
    }

    #[test]
    fn api_resource_fields_in_upstreams_order() {
        let catalog = Catalog::builtin();
        let core = api_resource_list(&catalog, "", "v1").expect("/api/v1");
        let keys: Vec<String> = resource(&core, "configmaps")
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "name",
                "singularName",
                "namespaced",
                "kind",
                "verbs",
                "shortNames",
                "storageVersionHash"
            ]
        );
        let keys: Vec<String> = resource(&core, "replicationcontrollers/scale")
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "name",
                "singularName",
                "namespaced",
                "group",
                "version",
                "kind",
                "verbs"
            ]
        );
    }
}
