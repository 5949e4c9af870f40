//! Discovery documents, all derived from the catalog: legacy (`/api`, `/apis`, `/apis/<g>`,
//! `/api/v1`, `/apis/<g>/<v>`) and aggregated (`apidiscovery.k8s.io` v2 and v2beta1), which kubectl 1.30+
//! asks for first.

use serde_json::{json, Value};

use crate::apiserver::catalog::{Catalog, ResourceInfo};

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
    for r in rows {
        let mut doc = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        resources.push(doc);
        for s in &r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            resources.push(sub);
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
