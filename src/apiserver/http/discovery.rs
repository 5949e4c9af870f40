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
