//! Authorization: may this user do this to that?
//!
//! As upstream's apiserver does, a request is first turned into [`Attributes`] (verb, API group,
//! resource, subresource, namespace, name, or a non-resource path), then asked of the authorizer chain:
//! members of `system:masters` may do everything (upstream's privileged-group authorizer, which is why an
//! admin's requests never depend on RBAC objects), everybody else is judged by [`rbac`] over the Roles and
//! bindings in the watch cache. The default roles come from [`bootstrap_policy`] and are kept in place by
//! [`reconcile`], which also fills aggregated ClusterRoles. [`impersonation`] handles `kubectl --as`.

pub mod bootstrap_policy;
pub mod escalation;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod reconcile;

use std::collections::BTreeMap;

use http::Method;

use crate::apiserver::http::request::{Query, ResourcePath};
use crate::apiserver::status::ApiError;

/// Upstream's privileged group: its members are allowed everything without consulting RBAC.
pub const SYSTEM_MASTERS: &str = "system:masters";
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The identity a request acts as (after impersonation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        User {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request does, as upstream's `authorizer.Attributes` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// Resource requests: false for `/api`, `/apis/...` discovery, `/openapi/...`, `/version` and the like.
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
    /// A list's or watch's `fieldSelector` as sent (the Node authorizer lets a kubelet list the pods
    /// selected by `spec.nodeName=<its node>`).
    pub field_selector: String,
}

impl Attributes {
    /// A resource request's attributes (upstream's RequestInfoFactory): the verb follows the method and
    /// whether a name is given; `watch=true` makes a watch; a `metadata.name=` field selector names the
    /// object of a list or watch; `/api/v1/namespaces/x` is in namespace `x`.
    pub fn for_resource(method: &Method, rp: &ResourcePath, q: &Query) -> Self {
        let named = rp.name.is_some();
        // A proxied request's query belongs to its backend (a `watch=true` there is not a watch), and
        // a method outside upstream's five (OPTIONS, ...) maps to no verb, which only `*` grants.
        let proxy = named && rp.subresource.as_deref() == Some("proxy");
        let verb = match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            Method::GET | Method::HEAD if proxy => "get",
            _ if proxy => "",
            _ if q.watch => "watch",
            _ if named => "get",
            _ => "list",
        };
        let mut name = rp.name.clone().unwrap_or_default();
        let mut field_selector = String::new();
        if matches!(verb, "list" | "watch") {
            field_selector = q.field_selector.clone().unwrap_or_default();
            if let Some(n) = q
                .field_selector
                .as_deref()
                .and_then(name_from_field_selector)
            {
                name = n;
            }
        }
        let namespace = match (&rp.namespace, rp.resource.as_str()) {
            (Some(ns), _) => ns.clone(),
            (None, "namespaces") if rp.group.is_empty() => name.clone(),
            _ => String::new(),
        };
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: rp.group.clone(),
            api_version: rp.version.clone(),
            namespace,
            resource: rp.resource.clone(),
            subresource: rp.subresource.clone().unwrap_or_default(),
            name,
            path: String::new(),
            field_selector,
        }
    }

    /// A non-resource request (discovery, OpenAPI, health): the verb is the lower-cased HTTP method.
    pub fn for_path(method: &Method, path: &str) -> Self {
        let verb = match *method {
            Method::GET | Method::HEAD => "get".to_string(),
            ref m => m.as_str().to_ascii_lowercase(),
        };
        Attributes {
            verb,
            path: path.to_string(),
            ..Default::default()
        }
    }

    /// The value an exact `field=value` (or `==`) term of the field selector requires.
    pub fn field_equals(&self, field: &str) -> Option<&str> {
        self.field_selector.split(',').find_map(|term| {
            let value = term.trim().strip_prefix(field)?;
            let value = value
                .strip_prefix("==")
                .or_else(|| value.strip_prefix('='))?;
            Some(value.trim())
        })
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The 403 upstream's `responsewriters.Forbidden` writes:
    /// `<resource> "<name>" is forbidden: <who cannot what>[: reason]`.
    pub fn forbidden(&self, user: &str, reason: &str) -> ApiError {
        let mut message = self.forbidden_message(user);
        if !reason.is_empty() {
            message = format!("{message}: {reason}");
        }
        let resource = if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        };
        let subject = if self.name.is_empty() {
            resource
        } else {
            format!("{resource} {:?}", self.name)
        };
        let mut details = serde_json::json!({"kind": self.resource});
        if !self.name.is_empty() {
            details["name"] = self.name.clone().into();
        }
        if !self.api_group.is_empty() {
            details["group"] = self.api_group.clone().into();
        }
        if !self.resource_request {
            details = serde_json::json!({});
        }
        let full = if self.resource_request {
            format!("{subject} is forbidden: {message}")
        } else {
            format!("forbidden: {message}")
        };
        ApiError::new(403, "Forbidden", full).with_details(details)
    }

    /// Upstream's forbidden message for these attributes.
    pub fn forbidden_message(&self, user: &str) -> String {
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let resource = self.combined_resource();
        if self.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.api_group, self.namespace
            )
        }
    }
}

/// `metadata.name=x` (or `==`) in a field selector names x.
fn name_from_field_selector(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        Some(value.to_string())
    })
}

/// An authorizer's answer, with upstream's reason text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The authorizer chain (privileged group, then Node, then RBAC: kubeadm's `--authorization-mode=
/// Node,RBAC`) and what it keeps between requests: the RBAC objects parsed into a snapshot, rebuilt
/// only when one of them changes. It reads the registry's watch cache and never writes.
pub struct Authorizer {
    registry: std::sync::Arc<crate::apiserver::registry::store::Registry>,
    rbac: rbac::SnapshotCache,
    node: node::NodeAuthorizer,
}

impl Authorizer {
    pub fn new(registry: std::sync::Arc<crate::apiserver::registry::store::Registry>) -> Self {
        Authorizer {
            registry,
            rbac: Default::default(),
            node: Default::default(),
        }
    }

    /// Asks the chain: privileged group first, then the Node authorizer (kubelets only), then RBAC.
    /// As upstream's union authorizer, the first to allow decides; a denial carries every reason given,
    /// one per line.
    pub fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut reasons = Vec::new();
        if let Some(d) = self.node.authorize(&self.registry, user, attrs) {
            if d.allowed {
                return d;
            }
            reasons.push(d.reason);
        }
        let d = self.rbac().authorize(user, attrs);
        if d.allowed {
            return d;
        }
        reasons.push(d.reason);
        reasons.retain(|r| !r.is_empty());
        Decision {
            allowed: false,
            reason: reasons.join("\n"),
        }
    }

    /// The current RBAC snapshot.
    pub fn rbac(&self) -> rbac::Rbac {
        rbac::Rbac::from_cache(&self.registry, &self.rbac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(ns: Option<&str>, resource: &str, name: Option<&str>) -> ResourcePath {
        ResourcePath {
            group: String::new(),
            version: "v1".into(),
            namespace: ns.map(String::from),
            resource: resource.into(),
            name: name.map(String::from),
            subresource: None,
        }
    }

    #[test]
    fn verbs_follow_method_name_and_watch() {
        let q = Query::default();
        let list = Attributes::for_resource(&Method::GET, &rp(Some("d"), "pods", None), &q);
        assert_eq!((list.verb.as_str(), list.namespace.as_str()), ("list", "d"));
        let get = Attributes::for_resource(&Method::GET, &rp(Some("d"), "pods", Some("p")), &q);
        assert_eq!(get.verb, "get");
        let del = Attributes::for_resource(&Method::DELETE, &rp(Some("d"), "pods", None), &q);
        assert_eq!(del.verb, "deletecollection");
        let w = Query {
            watch: true,
            field_selector: Some("metadata.name=p".into()),
            ..Default::default()
        };
        let watch = Attributes::for_resource(&Method::GET, &rp(Some("d"), "pods", None), &w);
        assert_eq!((watch.verb.as_str(), watch.name.as_str()), ("watch", "p"));
        let ns = Attributes::for_resource(&Method::GET, &rp(None, "namespaces", Some("x")), &q);
        assert_eq!(ns.namespace, "x");
    }

    #[test]
    fn proxy_verbs_follow_the_method_only() {
        let q = Query {
            watch: true,
            ..Default::default()
        };
        let mut path = rp(Some("ns"), "pods", Some("web:8080"));
        path.subresource = Some("proxy".into());
        let verb = |m: Method| Attributes::for_resource(&m, &path, &q).verb;
        assert_eq!(verb(Method::GET), "get", "watch=true is the backend's");
        assert_eq!(verb(Method::HEAD), "get");
        assert_eq!(verb(Method::POST), "create");
        assert_eq!(verb(Method::PUT), "update");
        assert_eq!(verb(Method::PATCH), "patch");
        assert_eq!(verb(Method::DELETE), "delete");
        assert_eq!(verb(Method::OPTIONS), "");
        let a = Attributes::for_resource(&Method::GET, &path, &q);
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("pods", "proxy", "web:8080")
        );
    }

    #[test]
    fn forbidden_messages_are_upstreams() {
        let q = Query::default();
        let a = Attributes::for_resource(&Method::GET, &rp(Some("default"), "pods", None), &q);
        assert_eq!(
            a.forbidden_message("bob"),
            r#"User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let n = Attributes::for_resource(&Method::GET, &rp(None, "nodes", None), &q);
        assert_eq!(
            n.forbidden_message("bob"),
            r#"User "bob" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let p = Attributes::for_path(&Method::GET, "/apis");
        assert_eq!(
            p.forbidden_message("bob"),
            r#"User "bob" cannot get path "/apis""#
        );
    }
}
