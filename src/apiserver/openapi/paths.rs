//! The operations of each resource (and of its subresources), in v2 form, as upstream's installer
//! names them: `listCoreV1NamespacedPod`, `readAppsV1NamespacedDeploymentScale`,
//! `connectCoreV1GetNamespacedPodExec`, with the query parameters each verb takes.

use serde_json::{json, Map, Value};

use crate::apiserver::catalog::{ResourceInfo, SubresourceInfo};
use crate::apiserver::openapi::META;

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.";
const FORCE: &str = "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.";
const PRETTY: &str = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).";

/// The query parameters of list, watch and deletecollection.
const LIST_PARAMS: &[(&str, &str, &str)] = &[
    ("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion."),
    ("continue", "string", "The continue option should be set when retrieving more results from the server."),
    ("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
    ("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
    ("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    ("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
    ("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection."),
    ("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
    ("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
];

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"uniqueItems": true, "type": ty, "description": description, "name": name, "in": "query"})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"uniqueItems": true, "type": "string", "description": description, "name": name, "in": "path", "required": true})
}

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", "string", DRY_RUN),
        query("fieldManager", "string", FIELD_MANAGER),
        query("fieldValidation", "string", FIELD_VALIDATION),
    ]
}

fn list_params() -> Vec<Value> {
    LIST_PARAMS.iter().map(|(n, t, d)| query(n, t, d)).collect()
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`: upstream's operation-id spelling of a group version.
fn group_version_id(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let group = group
        .strip_suffix(".k8s.io")
        .unwrap_or(group)
        .replace(".authorization", "Authorization");
    let mut out = String::new();
    for part in group.split(['.', '-']).chain(std::iter::once(version)) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    out
}

fn capitalized(s: &str) -> String {
    let mut cs = s.chars();
    cs.next()
        .map(|c| c.to_uppercase().chain(cs).collect())
        .unwrap_or_default()
}

/// One resource's operations, built into `paths`.
pub struct ResourcePaths<'a> {
    r: &'a ResourceInfo,
    /// Definition name of a kind, if the document has it.
    def_of: &'a dyn Fn(&str, &str, &str) -> Option<String>,
    gv_id: String,
    tag: String,
}

/// (group, version, kind) of what an operation answers about.
type Gvk = (String, String, String);

/// What one operation reads and answers.
struct Op {
    action: &'static str,
    description: String,
    params: Vec<Value>,
    /// Body schema (a definition name), if the operation takes one.
    body: Option<Option<String>>,
    response: Option<String>,
    gvk: Gvk,
    consumes: Value,
    produces: Value,
}

impl Op {
    /// An operation that takes a body of any media type and answers an object (JSON, YAML or
    /// protobuf).
    fn new(
        gvk: &Gvk,
        action: &'static str,
        description: String,
        params: Vec<Value>,
        body: Option<Option<String>>,
        response: Option<String>,
    ) -> Op {
        Op {
            action,
            description,
            params,
            body,
            response,
            gvk: gvk.clone(),
            consumes: json!(["*/*"]),
            produces: json!([
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf"
            ]),
        }
    }

    /// list (and watch) of `kind`, answering `<def>List`.
    fn list(gvk: &Gvk, kind: &str, def: Option<&String>) -> Op {
        let description = format!("list or watch objects of kind {kind}");
        let response = def.map(|d| format!("{d}List"));
        Op::new(gvk, "list", description, list_params(), None, response)
    }

    /// A create (`post`) or replace (`put`): the object in, the object out, the write parameters.
    fn write(gvk: &Gvk, action: &'static str, description: String, def: Option<String>) -> Op {
        Op::new(
            gvk,
            action,
            description,
            write_params(),
            Some(def.clone()),
            def,
        )
    }

    /// A patch of any of the four patch types, answering the object.
    fn patch(gvk: &Gvk, description: String, def: Option<String>) -> Op {
        let mut params = write_params();
        params.push(query("force", "boolean", FORCE));
        let body = Some(Some(format!("{META}Patch")));
        let mut o = Op::new(gvk, "patch", description, params, body, def);
        o.consumes = patch_types();
        o
    }
}

impl<'a> ResourcePaths<'a> {
    pub fn new(
        r: &'a ResourceInfo,
        def_of: &'a dyn Fn(&str, &str, &str) -> Option<String>,
    ) -> Self {
        let tag = if r.group.is_empty() {
            format!("core_{}", r.version)
        } else {
            format!("{}_{}", r.group.replace('.', "_"), r.version)
        };
        ResourcePaths {
            r,
            def_of,
            gv_id: group_version_id(&r.group, &r.version),
            tag,
        }
    }

    fn scope(&self) -> &'static str {
        if self.r.namespaced {
            "Namespaced"
        } else {
            ""
        }
    }

    fn op(&self, op: Op, operation_id: String) -> Value {
        let mut params = op.params;
        if let Some(schema) = op.body {
            let schema = match schema {
                Some(d) => json!({"$ref": format!("#/definitions/{d}")}),
                None => json!({"type": "object"}),
            };
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": true, "schema": schema}),
            );
        }
        let responses = match op.response {
            Some(s) => {
                json!({"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{s}")}}, "401": {"description": "Unauthorized"}})
            }
            None => {
                json!({"200": {"description": "OK", "schema": {"type": "string"}}, "401": {"description": "Unauthorized"}})
            }
        };
        let (g, v, k) = op.gvk;
        json!({
            "description": op.description,
            "consumes": op.consumes,
            "produces": op.produces,
            "schemes": ["https"],
            "tags": [self.tag],
            "operationId": operation_id,
            "parameters": params,
            "responses": responses,
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": crate::apiserver::openapi::gvk(&g, &v, &k),
        })
    }

    /// Adds the collection, item and subresource paths of the resource to `paths`.
    pub fn build(&self, paths: &mut Map<String, Value>) {
        let r = self.r;
        let base = crate::apiserver::openapi::base_path(r);
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let item = format!("{collection}/{{name}}");
        let def = (self.def_of)(&r.group, &r.version, &r.kind);
        let gvk = (r.group.clone(), r.version.clone(), r.kind.clone());
        let op = |action, description, params, body, response| {
            Op::new(&gvk, action, description, params, body, response)
        };
        let kind = &r.kind;
        let mut scope_params = vec![query("pretty", "string", PRETTY)];
        if r.namespaced {
            scope_params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        let id = |verb: &str, suffix: &str| {
            format!("{verb}{}{}{kind}{suffix}", self.gv_id, self.scope())
        };

        let mut coll = Map::new();
        if r.has_verb("list") {
            let o = Op::list(&gvk, kind, def.as_ref());
            coll.insert("get".into(), self.op(o, id("list", "")));
        }
        if r.has_verb("create") {
            let description = format!("create {} {kind}", article(kind));
            let o = Op::write(&gvk, "post", description, def.clone());
            coll.insert("post".into(), self.op(o, id("create", "")));
        }
        if r.has_verb("deletecollection") {
            let mut params = list_params();
            params.push(query("dryRun", "string", DRY_RUN));
            let o = op(
                "deletecollection",
                format!("delete collection of {kind}"),
                params,
                Some(Some(format!("{META}DeleteOptions"))),
                Some(format!("{META}Status")),
            );
            coll.insert("delete".into(), self.op(o, id("deleteCollection", "")));
        }
        if !coll.is_empty() {
            coll.insert("parameters".into(), Value::Array(scope_params.clone()));
            paths.insert(collection, Value::Object(coll));
        }
        if r.namespaced && r.has_verb("list") {
            let mut all = Map::new();
            let o = Op::list(&gvk, kind, def.as_ref());
            let oid = format!("list{}{kind}ForAllNamespaces", self.gv_id);
            all.insert("get".into(), self.op(o, oid));
            all.insert(
                "parameters".into(),
                json!([query("pretty", "string", PRETTY)]),
            );
            paths.insert(format!("{base}/{}", r.plural), Value::Object(all));
        }

        let mut it = Map::new();
        if r.has_verb("get") {
            let o = op(
                "get",
                format!("read the specified {kind}"),
                vec![],
                None,
                def.clone(),
            );
            it.insert("get".into(), self.op(o, id("read", "")));
        }
        if r.has_verb("update") {
            let description = format!("replace the specified {kind}");
            let o = Op::write(&gvk, "put", description, def.clone());
            it.insert("put".into(), self.op(o, id("replace", "")));
        }
        if r.has_verb("patch") {
            let description = format!("partially update the specified {kind}");
            let o = Op::patch(&gvk, description, def.clone());
            it.insert("patch".into(), self.op(o, id("patch", "")));
        }
        if r.has_verb("delete") {
            let o = op(
                "delete",
                format!("delete {} {kind}", article(kind)),
                vec![query("dryRun", "string", DRY_RUN)],
                Some(Some(format!("{META}DeleteOptions"))),
                Some(format!("{META}Status")),
            );
            it.insert("delete".into(), self.op(o, id("delete", "")));
        }
        let mut item_params = vec![path_param("name", &format!("name of the {kind}"))];
        item_params.extend(scope_params);
        if !it.is_empty() {
            it.insert("parameters".into(), Value::Array(item_params.clone()));
            paths.insert(item.clone(), Value::Object(it));
        }
        for s in &r.subresources {
            let mut sub = self.subresource(s);
            if !sub.is_empty() {
                sub.insert("parameters".into(), Value::Array(item_params.clone()));
                paths.insert(format!("{item}/{}", s.name), Value::Object(sub));
            }
        }
    }

    /// The operations of one subresource: read/replace/patch for status and scale, create for
    /// binding and eviction, connect for exec/attach/portforward/proxy, read for log.
    fn subresource(&self, s: &SubresourceInfo) -> Map<String, Value> {
        let r = self.r;
        let kind = &r.kind;
        let sub_id = capitalized(&s.name);
        let def = (self.def_of)(&s.group, &s.version, &s.kind);
        let gvk = (s.group.clone(), s.version.clone(), s.kind.clone());
        let id = |verb: &str| format!("{verb}{}{}{kind}{sub_id}", self.gv_id, self.scope());
        let connect = matches!(s.name.as_str(), "exec" | "attach" | "portforward" | "proxy");
        let mut out = Map::new();
        let has = |v: &str| s.verbs.iter().any(|x| x == v);
        let base = |action, description, params, body, response| {
            Op::new(&gvk, action, description, params, body, response)
        };
        if connect {
            for (method, verb) in [("get", "Get"), ("post", "Post")] {
                if !has(if method == "get" { "get" } else { "create" }) {
                    continue;
                }
                let mut o = base(
                    "connect",
                    format!(
                        "connect {} requests to {} of {kind}",
                        verb.to_uppercase(),
                        s.name
                    ),
                    vec![],
                    None,
                    None,
                );
                o.produces = json!(["*/*"]);
                let oid = format!("connect{}{verb}{}{kind}{sub_id}", self.gv_id, self.scope());
                out.insert(method.into(), self.op(o, oid));
            }
            return out;
        }
        if has("get") {
            let mut o = base(
                "get",
                format!("read {} of the specified {kind}", s.name),
                vec![],
                None,
                def.clone(),
            );
            if s.name == "log" {
                o.produces = json!([
                    "text/plain",
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf"
                ]);
            }
            out.insert("get".into(), self.op(o, id("read")));
        }
        if has("update") {
            let description = format!("replace {} of the specified {kind}", s.name);
            let o = Op::write(&gvk, "put", description, def.clone());
            out.insert("put".into(), self.op(o, id("replace")));
        }
        if has("patch") {
            let description = format!("partially update {} of the specified {kind}", s.name);
            let o = Op::patch(&gvk, description, def.clone());
            out.insert("patch".into(), self.op(o, id("patch")));
        }
        if has("create") {
            let description = format!("create {} of {} {kind}", s.name, article(kind));
            let o = Op::write(&gvk, "post", description, def);
            out.insert("post".into(), self.op(o, id("create")));
        }
        out
    }
}

fn patch_types() -> Value {
    json!([
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml"
    ])
}

/// `a` or `an`, as upstream's descriptions say ("create an Ingress").
fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_version_ids() {
        assert_eq!(group_version_id("", "v1"), "CoreV1");
        assert_eq!(group_version_id("apps", "v1"), "AppsV1");
        assert_eq!(
            group_version_id("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(group_version_id("networking.k8s.io", "v1"), "NetworkingV1");
        assert_eq!(
            group_version_id("admissionregistration.k8s.io", "v1"),
            "AdmissionregistrationV1"
        );
        assert_eq!(
            group_version_id("flowcontrol.apiserver.k8s.io", "v1"),
            "FlowcontrolApiserverV1"
        );
    }
}
