//! The resource catalog: every resource the apiserver serves, listed once.
//!
//! Discovery, routing, the generic registry, Table output and (later) OpenAPI and RBAC all read from it.
//! Built-in rows are derived from k8s-openapi's types (group, version, kind, plural, scope come from the
//! `Resource` trait, so they cannot drift) plus upstream's short names, categories, verbs and subresources.

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, flowcontrol::v1 as flowcontrol,
    networking::v1 as networking, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use crate::apiserver::crd::CustomVersion;
use crate::apiserver::http::go_type_error;
use crate::apiserver::registry::conversion::{self, Conversion};
use crate::apiserver::registry::strategy::{self as s, Plain, Printer, Strategy};

/// Turns a decoded JSON object into its canonical form: unknown fields are dropped, a type error is an
/// `Err(message)`. Built-ins round-trip through their typed k8s-openapi struct; custom resources are
/// pruned and defaulted by their CRD's structural schema (and the row carries the rest of what the CRD
/// says about that version: printer columns, scale paths).
#[derive(Clone)]
pub enum Normalizer {
    Typed(fn(Value) -> Result<Value, String>),
    Custom(Arc<CustomVersion>),
}

impl Normalizer {
    pub fn run(&self, v: Value) -> Result<Value, String> {
        match self {
            Normalizer::Typed(f) => f(v),
            Normalizer::Custom(c) => Ok(c.normalize(v)),
        }
    }
}

impl std::fmt::Debug for Normalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Normalizer::Typed(_) => f.write_str("Typed"),
            Normalizer::Custom(c) => write!(f, "Custom({:?})", c.crd_name),
        }
    }
}

/// What serves a subresource (upstream gives each its own REST storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubresourceHandler {
    /// The generic store, through the kind's strategy (`status`, `finalize`).
    Store,
    /// `scale`: an autoscaling/v1 Scale over the object's replica paths.
    Scale,
    /// `pods/binding`: assigns the pod to a node.
    Binding,
    /// `serviceaccounts/token`: a TokenRequest.
    Token,
    /// `pods/eviction`: a delete that respects PodDisruptionBudgets.
    Eviction,
    /// `pods/log`, `exec`, `attach`, `portforward`: streams a kubelet would serve.
    Connect,
    /// `pods/proxy`, `services/proxy`, `nodes/proxy`: relayed to the backend before any resource
    /// handler (`http::proxy`, `http::node_proxy`).
    Proxy,
    /// Served by upstream, not here yet (a 405 that says so).
    NotYet,
}

impl SubresourceHandler {
    fn for_name(name: &str) -> Self {
        match name {
            "status" | "finalize" | "approval" | "ephemeralcontainers" => SubresourceHandler::Store,
            "scale" => SubresourceHandler::Scale,
            "binding" => SubresourceHandler::Binding,
            "token" => SubresourceHandler::Token,
            "eviction" => SubresourceHandler::Eviction,
            "log" | "exec" | "attach" | "portforward" => SubresourceHandler::Connect,
            "proxy" => SubresourceHandler::Proxy,
            _ => SubresourceHandler::NotYet,
        }
    }
}

/// What serves a resource's collection and objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceHandler {
    /// The generic store.
    Store,
    /// `bindings` (core/v1 Binding): create-only, assigns a pod to a node.
    Binding,
    /// The review kinds: create-only, answered from the request, nothing stored.
    Review,
    /// `componentstatuses`: get and list, computed on request.
    ComponentStatuses,
    /// `metrics.k8s.io` NodeMetrics and PodMetrics: get and list, asked of the kubelets on request.
    ResourceMetrics,
}

#[derive(Clone, Debug)]
pub struct SubresourceInfo {
    /// e.g. "status", "scale", "log", "finalize".
    pub name: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: Vec<String>,
    pub handler: SubresourceHandler,
}

#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name used in URLs, e.g. "pods".
    pub plural: String,
    /// Lower-case singular, e.g. "pod".
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Upstream's verbs for the resource, e.g. create, delete, deletecollection, get, list, patch, update, watch.
    pub verbs: Vec<String>,
    pub subresources: Vec<SubresourceInfo>,
    /// Storage prefix, ending in '/', e.g. "/registry/pods/".
    pub storage_prefix: String,
    /// Field-selector fields this kind supports besides `metadata.name` and `metadata.namespace`
    /// (e.g. pods: `spec.nodeName`, `status.phase`).
    pub field_selectors: Vec<String>,
    pub normalize: Option<Normalizer>,
    /// What the kind does differently from the generic store (names, defaults, validation, status
    /// rules, deletion, printer).
    pub strategy: Arc<dyn Strategy>,
    /// What serves requests for it (the store, or a create-only handler).
    pub handler: ResourceHandler,
    /// Set when this version is stored as another (which shares `storage_prefix`).
    pub conversion: Option<Conversion>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// "pods" for core, "deployments.apps" otherwise: the form upstream's messages use.
    /// What the CRD says about this custom resource version; `None` for built-ins.
    pub fn custom(&self) -> Option<&Arc<CustomVersion>> {
        match &self.normalize {
            Some(Normalizer::Custom(c)) => Some(c),
            _ => None,
        }
    }

    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Built-in rows
// ---------------------------------------------------------------------------------------------------------

/// The verbs of an ordinary stored resource, as upstream's discovery lists them.
const FULL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces: everything but deletecollection.
const NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Bindings and the review kinds: create-only virtual resources.
const CREATE: &[&str] = &["create"];
/// componentstatuses: read-only, computed on request.
const GET_LIST: &[&str] = &["get", "list"];
/// status, scale, ephemeralcontainers, resize, approval.
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
/// Connect subresources that take GET and POST (exec, attach, portforward).
const CONNECT_GET_CREATE: &[&str] = &["create", "get"];
/// The proxy connect subresources (GET, POST, PUT, PATCH, DELETE; HEAD and OPTIONS map to no verb).
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

/// Upstream's /apis order (kube-apiserver's aggregator priorities); the core group "" comes first.
/// Groups not listed here (CRDs added at run time) follow in the order their first row was added.
const GROUP_ORDER: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

/// Compile-time scope of a k8s-openapi resource. Implemented only for the namespace and cluster scopes,
/// so a subresource type (`SubResourceScope`) cannot be made into a row by mistake.
trait Scoped {
    const NAMESPACED: bool;
}
impl Scoped for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scoped for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Decodes `v` into `T` and encodes it back: the canonical form of the object (unknown fields dropped,
/// type errors reported with serde's message).
fn normalize<T: k8s_openapi::Resource + DeserializeOwned + Serialize>(
    mut v: Value,
) -> Result<Value, String> {
    // A `bytes` field's base64 may be split over lines, as Go's decoder (which skips `\r` and `\n`)
    // accepts it: each such field is found by the path of its error and joined, then decoding retries.
    for _ in 0..64 {
        match T::deserialize(&v) {
            Ok(typed) => return serde_json::to_value(typed).map_err(|e| e.to_string()),
            Err(e) if !line_break_in_base64(&e.to_string()) => {
                // Go's wording when a value has the wrong type; serde's for the rest (a missing
                // field, which the store turns into a 422 as upstream's validation would).
                return Err(go_type_error::first(T::API_VERSION, T::KIND, &v)
                    .unwrap_or_else(|| e.to_string()));
            }
            Err(e) => {
                let path: Vec<serde_path_to_error::Segment> =
                    match serde_path_to_error::deserialize::<_, T>(&v) {
                        Err(located) => located.path().iter().cloned().collect(),
                        Ok(_) => return Err(e.to_string()),
                    };
                if !join_base64_lines(&mut v, &path) {
                    return Err(e.to_string());
                }
            }
        }
    }
    T::deserialize(&v)
        .and_then(serde_json::to_value)
        .map_err(|e| e.to_string())
}

/// Whether a decode error is the base64 decoder refusing a line break (`\n` is 10, `\r` 13).
fn line_break_in_base64(message: &str) -> bool {
    message.contains("Invalid symbol 10,") || message.contains("Invalid symbol 13,")
}

/// Removes `\r` and `\n` from the string at `path`; whether it changed anything.
fn join_base64_lines(v: &mut Value, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let mut cur = v;
    for segment in path {
        let next = match segment {
            Segment::Map { key } => cur.get_mut(key.as_str()),
            Segment::Seq { index } => cur.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return false };
        cur = next;
    }
    match cur {
        Value::String(s) if s.contains(['\r', '\n']) => {
            s.retain(|c| c != '\r' && c != '\n');
            true
        }
        _ => false,
    }
}

/// A row for `T` with group, version, kind, plural and scope taken from k8s-openapi, the full verb set,
/// storage prefix "/registry/<plural>/" and nothing else; the builder methods below fill in the rest.
fn row<T>() -> ResourceInfo
where
    T: k8s_openapi::Resource + DeserializeOwned + Serialize,
    T::Scope: Scoped,
{
    ResourceInfo {
        group: T::GROUP.to_string(),
        version: T::VERSION.to_string(),
        kind: T::KIND.to_string(),
        plural: T::URL_PATH_SEGMENT.to_string(),
        singular: T::KIND.to_lowercase(),
        namespaced: <T::Scope as Scoped>::NAMESPACED,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: strings(FULL),
        subresources: Vec::new(),
        storage_prefix: format!("/registry/{}/", T::URL_PATH_SEGMENT),
        field_selectors: Vec::new(),
        normalize: Some(Normalizer::Typed(normalize::<T>)),
        strategy: Arc::new(Plain::default()),
        handler: ResourceHandler::Store,
        conversion: None,
    }
}

/// A `metrics.k8s.io/v1beta1` resource: read-only, served by
/// [`crate::apiserver::http::resource_metrics`]. k8s-openapi has no types for these kinds.
fn resource_metrics_row(kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: crate::apiserver::http::resource_metrics::GROUP.to_string(),
        version: crate::apiserver::http::resource_metrics::VERSION.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: strings(GET_LIST),
        subresources: Vec::new(),
        storage_prefix: format!("/registry/metrics.k8s.io/{plural}/"),
        field_selectors: Vec::new(),
        normalize: None,
        strategy: Arc::new(Plain::new(Printer::ResourceMetrics)),
        handler: ResourceHandler::ResourceMetrics,
        conversion: None,
    }
}

/// A subresource whose request/response kind is the k8s-openapi type `T` (any scope).
fn sub<T: k8s_openapi::Resource>(name: &str, verbs: &[&str]) -> SubresourceInfo {
    sub_kind(name, T::GROUP, T::VERSION, T::KIND, verbs)
}

/// A subresource whose kind has no k8s-openapi `Resource` type (the connect option kinds).
fn sub_kind(name: &str, group: &str, version: &str, kind: &str, verbs: &[&str]) -> SubresourceInfo {
    SubresourceInfo {
        name: name.to_string(),
        group: group.to_string(),
        version: version.to_string(),
        kind: kind.to_string(),
        verbs: strings(verbs),
        handler: SubresourceHandler::for_name(name),
    }
}

/// `<plural>/status`: kind of the parent, verbs get, patch, update.
fn status<T: k8s_openapi::Resource>() -> SubresourceInfo {
    sub::<T>("status", GET_PATCH_UPDATE)
}

/// `<plural>/scale`: autoscaling/v1 Scale, verbs get, patch, update.
fn scale() -> SubresourceInfo {
    sub::<autoscaling_v1::Scale>("scale", GET_PATCH_UPDATE)
}

/// Builder steps used only while assembling the built-in table.
impl ResourceInfo {
    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = strings(names);
        self
    }
    fn categories(mut self, cats: &[&str]) -> Self {
        self.categories = strings(cats);
        self
    }
    fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = strings(verbs);
        self
    }
    fn subs(mut self, subs: Vec<SubresourceInfo>) -> Self {
        self.subresources = subs;
        self
    }
    fn prefix(mut self, prefix: &str) -> Self {
        self.storage_prefix = prefix.to_string();
        self
    }
    fn fields(mut self, fields: &[&str]) -> Self {
        self.field_selectors = strings(fields);
        self
    }
    fn handler(mut self, handler: ResourceHandler) -> Self {
        self.handler = handler;
        self
    }
    /// Stored as another version's object, under that version's `prefix`.
    fn stored_as(mut self, prefix: &str, conversion: Conversion) -> Self {
        self.storage_prefix = prefix.to_string();
        self.conversion = Some(conversion);
        self
    }
    fn strategy(mut self, strategy: impl Strategy + 'static) -> Self {
        self.strategy = Arc::new(strategy);
        self
    }

    /// Whether objects of this resource live in storage. False for the create-only virtual resources
    /// (bindings, the review kinds) and for componentstatuses (computed on request): exactly the
    /// built-ins without a `watch` verb. Their `storage_prefix` is still set (unique and unused) so that
    /// an accidental prefix scan never covers other resources.
    pub fn is_stored(&self) -> bool {
        self.has_verb("watch")
    }
}

/// Every built-in resource upstream's apiserver serves by default.
///
/// Storage prefixes follow upstream's etcd layout, including its historical names: nodes live under
/// `/registry/minions/`, replication controllers under `/registry/controllers/`, endpoints under
/// `/registry/services/endpoints/`, services under `/registry/services/specs/`, ingresses under
/// `/registry/ingress/`, and the apiextensions/apiregistration objects under `/registry/<group>/<plural>/`.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let pod_subs = vec![
        sub_kind("attach", "", "v1", "PodAttachOptions", CONNECT_GET_CREATE),
        sub::<core::Binding>("binding", CREATE),
        sub::<core::Pod>("ephemeralcontainers", GET_PATCH_UPDATE),
        sub::<policy::Eviction>("eviction", CREATE),
        sub_kind("exec", "", "v1", "PodExecOptions", CONNECT_GET_CREATE),
        sub::<core::Pod>("log", &["get"]),
        sub_kind(
            "portforward",
            "",
            "v1",
            "PodPortForwardOptions",
            CONNECT_GET_CREATE,
        ),
        sub_kind("proxy", "", "v1", "PodProxyOptions", PROXY),
        sub::<core::Pod>("resize", GET_PATCH_UPDATE),
        status::<core::Pod>(),
    ];

    vec![
        // ---- core/v1 ----
        row::<core::Binding>()
            .verbs(CREATE)
            .handler(ResourceHandler::Binding),
        row::<core::ComponentStatus>()
            .short(&["cs"])
            .verbs(GET_LIST)
            .handler(ResourceHandler::ComponentStatuses)
            .strategy(Plain::new(Printer::ComponentStatus)),
        row::<core::ConfigMap>()
            .short(&["cm"])
            .strategy(s::config::ConfigMaps),
        row::<core::Endpoints>()
            .short(&["ep"])
            .prefix("/registry/services/endpoints/")
            .strategy(s::services::Endpoints),
        row::<core::Event>()
            .short(&["ev"])
            .fields(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ])
            .strategy(s::events::EVENTS),
        row::<core::LimitRange>()
            .short(&["limits"])
            .strategy(s::policy::LimitRanges),
        row::<core::Namespace>()
            .short(&["ns"])
            .verbs(NO_DELETECOLLECTION)
            .subs(vec![
                sub::<core::Namespace>("finalize", &["update"]),
                status::<core::Namespace>(),
            ])
            .fields(&["status.phase"])
            .strategy(s::namespaces::Namespaces),
        row::<core::Node>()
            .short(&["no"])
            .subs(vec![
                sub_kind("proxy", "", "v1", "NodeProxyOptions", PROXY),
                status::<core::Node>(),
            ])
            .prefix("/registry/minions/")
            .fields(&["spec.unschedulable"])
            .strategy(s::nodes::Nodes),
        row::<core::PersistentVolumeClaim>()
            .short(&["pvc"])
            .subs(vec![status::<core::PersistentVolumeClaim>()])
            .strategy(s::volumes::PersistentVolumeClaims),
        row::<core::PersistentVolume>()
            .short(&["pv"])
            .subs(vec![status::<core::PersistentVolume>()])
            .strategy(s::volumes::PersistentVolumes),
        row::<core::Pod>()
            .short(&["po"])
            .categories(ALL)
            .subs(pod_subs)
            .fields(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                // Accepted for old v1 clients; upstream converts it to spec.nodeName.
                "spec.host",
            ])
            .strategy(s::pods::Pods),
        row::<core::PodTemplate>().strategy(s::pods::PodTemplates),
        row::<core::ReplicationController>()
            .short(&["rc"])
            .categories(ALL)
            .subs(vec![scale(), status::<core::ReplicationController>()])
            .prefix("/registry/controllers/")
            .fields(&["status.replicas"])
            .strategy(s::workloads::ReplicationControllers),
        row::<core::ResourceQuota>()
            .short(&["quota"])
            .subs(vec![status::<core::ResourceQuota>()])
            .strategy(s::policy::ResourceQuotas),
        row::<core::Secret>()
            .fields(&["type"])
            .strategy(s::config::Secrets),
        row::<core::ServiceAccount>()
            .short(&["sa"])
            .subs(vec![sub::<authentication::TokenRequest>("token", CREATE)])
            .strategy(Plain::new(Printer::ServiceAccount)),
        row::<core::Service>()
            .short(&["svc"])
            .categories(ALL)
            .subs(vec![
                sub_kind("proxy", "", "v1", "ServiceProxyOptions", PROXY),
                status::<core::Service>(),
            ])
            .prefix("/registry/services/specs/")
            .fields(&["spec.clusterIP", "spec.type"])
            .strategy(s::services::Services),
        // ---- apiregistration.k8s.io/v1 ----
        row::<apiregistration::APIService>()
            .categories(API_EXTENSIONS)
            .subs(vec![status::<apiregistration::APIService>()])
            .prefix("/registry/apiregistration.k8s.io/apiservices/")
            .strategy(Plain::new(Printer::ApiService).create_on_update()),
        // ---- apps/v1 ----
        row::<apps::ControllerRevision>().strategy(s::workloads::ControllerRevisions),
        row::<apps::DaemonSet>()
            .short(&["ds"])
            .categories(ALL)
            .subs(vec![status::<apps::DaemonSet>()])
            .strategy(s::workloads::DaemonSets),
        row::<apps::Deployment>()
            .short(&["deploy"])
            .categories(ALL)
            .subs(vec![scale(), status::<apps::Deployment>()])
            .strategy(s::workloads::Deployments),
        // Upstream's ReplicaSet registry computes status.replicas, but apps/v1 registers no field label
        // conversion for it, so only metadata.name/namespace are accepted (kubernetes#135136).
        row::<apps::ReplicaSet>()
            .short(&["rs"])
            .categories(ALL)
            .subs(vec![scale(), status::<apps::ReplicaSet>()])
            .strategy(s::workloads::ReplicaSets),
        row::<apps::StatefulSet>()
            .short(&["sts"])
            .categories(ALL)
            .subs(vec![scale(), status::<apps::StatefulSet>()])
            .strategy(s::workloads::StatefulSets),
        // ---- events.k8s.io/v1 ----
        // Stored as core/v1 Events, as upstream: one object seen through both versions. events.k8s.io/v1
        // registers no field label conversion upstream, so only metadata.name/namespace are selectable.
        row::<events::Event>()
            .short(&["ev"])
            .stored_as("/registry/events/", conversion::EVENTS_V1)
            .strategy(s::events::EVENTS),
        // ---- authentication.k8s.io/v1 ----
        row::<authentication::SelfSubjectReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        row::<authentication::TokenReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        // ---- authorization.k8s.io/v1 ----
        row::<authorization::LocalSubjectAccessReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        row::<authorization::SelfSubjectAccessReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        row::<authorization::SelfSubjectRulesReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        row::<authorization::SubjectAccessReview>()
            .verbs(CREATE)
            .handler(ResourceHandler::Review),
        // ---- autoscaling/v2 (preferred) and autoscaling/v1 ----
        // Upstream stores one HorizontalPodAutoscaler (at /registry/horizontalpodautoscalers/) served in
        // both versions through conversion; we keep the versions separate for now.
        row::<autoscaling_v2::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .categories(ALL)
            .subs(vec![status::<autoscaling_v2::HorizontalPodAutoscaler>()])
            .strategy(s::policy::HorizontalPodAutoscalers { version: "v2" }),
        row::<autoscaling_v1::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .categories(ALL)
            .subs(vec![status::<autoscaling_v1::HorizontalPodAutoscaler>()])
            .prefix("/registry/horizontalpodautoscalers.v1/")
            .strategy(s::policy::HorizontalPodAutoscalers { version: "v1" }),
        // ---- batch/v1 ----
        // batch/v1 accepts status.successful for Job and CronJob; only Jobs carry a value for it.
        row::<batch::CronJob>()
            .short(&["cj"])
            .categories(ALL)
            .subs(vec![status::<batch::CronJob>()])
            .fields(&["status.successful"])
            .strategy(s::batch::CronJobs),
        row::<batch::Job>()
            .categories(ALL)
            .subs(vec![status::<batch::Job>()])
            .fields(&["status.successful"])
            .strategy(s::batch::Jobs),
        // ---- certificates.k8s.io/v1 ----
        row::<certificates::CertificateSigningRequest>()
            .short(&["csr"])
            .subs(vec![
                sub::<certificates::CertificateSigningRequest>("approval", GET_PATCH_UPDATE),
                status::<certificates::CertificateSigningRequest>(),
            ])
            .fields(&["spec.signerName"])
            .strategy(s::certificates::CertificateSigningRequests),
        // ---- networking.k8s.io/v1 ----
        row::<networking::IngressClass>().strategy(s::networking::IngressClasses),
        row::<networking::Ingress>()
            .short(&["ing"])
            .subs(vec![status::<networking::Ingress>()])
            .prefix("/registry/ingress/")
            .strategy(s::networking::Ingresses),
        row::<networking::IPAddress>()
            .short(&["ip"])
            .strategy(s::networking::IP_ADDRESSES),
        // NetworkPolicy lost its status subresource in 1.28.
        row::<networking::NetworkPolicy>()
            .short(&["netpol"])
            .strategy(s::networking::NetworkPolicies),
        row::<networking::ServiceCIDR>()
            .subs(vec![status::<networking::ServiceCIDR>()])
            .strategy(s::networking::SERVICE_CIDRS),
        // ---- policy/v1 ----
        row::<policy::PodDisruptionBudget>()
            .short(&["pdb"])
            .subs(vec![status::<policy::PodDisruptionBudget>()])
            .strategy(s::policy::PodDisruptionBudgets),
        // ---- rbac.authorization.k8s.io/v1 ----
        row::<rbac::ClusterRoleBinding>().strategy(s::rbac::RoleBindings { namespaced: false }),
        row::<rbac::ClusterRole>().strategy(s::rbac::Roles { namespaced: false }),
        row::<rbac::RoleBinding>().strategy(s::rbac::RoleBindings { namespaced: true }),
        row::<rbac::Role>().strategy(s::rbac::Roles { namespaced: true }),
        // ---- storage.k8s.io/v1 (volumeattributesclasses is GA only from 1.34) ----
        row::<storage::CSIDriver>().strategy(s::volumes::CsiDrivers),
        row::<storage::CSINode>().strategy(Plain::new(Printer::CsiNode)),
        row::<storage::CSIStorageCapacity>(),
        row::<storage::StorageClass>()
            .short(&["sc"])
            .strategy(s::volumes::StorageClasses),
        row::<storage::VolumeAttachment>()
            .subs(vec![status::<storage::VolumeAttachment>()])
            .strategy(Plain::new(Printer::VolumeAttachment)),
        // ---- admissionregistration.k8s.io/v1 ----
        row::<admissionregistration::MutatingWebhookConfiguration>()
            .categories(API_EXTENSIONS)
            .strategy(s::admission::WebhookConfigurations { mutating: true }),
        row::<admissionregistration::ValidatingAdmissionPolicy>()
            .categories(API_EXTENSIONS)
            .subs(vec![status::<
                admissionregistration::ValidatingAdmissionPolicy,
            >()])
            .strategy(s::admission::ValidatingAdmissionPolicies),
        row::<admissionregistration::ValidatingAdmissionPolicyBinding>()
            .categories(API_EXTENSIONS)
            .strategy(s::admission::ValidatingAdmissionPolicyBindings),
        row::<admissionregistration::ValidatingWebhookConfiguration>()
            .categories(API_EXTENSIONS)
            .strategy(s::admission::WebhookConfigurations { mutating: false }),
        // ---- apiextensions.k8s.io/v1 ----
        row::<apiextensions::CustomResourceDefinition>()
            .short(&["crd", "crds"])
            .categories(API_EXTENSIONS)
            .subs(vec![status::<apiextensions::CustomResourceDefinition>()])
            .prefix("/registry/apiextensions.k8s.io/customresourcedefinitions/")
            .strategy(s::apiextensions::CustomResourceDefinitions),
        // ---- scheduling.k8s.io/v1 ----
        row::<scheduling::PriorityClass>()
            .short(&["pc"])
            .strategy(s::policy::PriorityClasses),
        // ---- coordination.k8s.io/v1 ----
        row::<coordination::Lease>().strategy(s::coordination::Leases),
        // ---- node.k8s.io/v1 ----
        row::<node::RuntimeClass>().strategy(Plain::new(Printer::RuntimeClass)),
        // ---- discovery.k8s.io/v1 ----
        row::<discovery::EndpointSlice>().strategy(s::networking::EndpointSlices),
        // ---- flowcontrol.apiserver.k8s.io/v1 ----
        row::<flowcontrol::FlowSchema>()
            .subs(vec![status::<flowcontrol::FlowSchema>()])
            .strategy(
                Plain::new(Printer::FlowSchema)
                    .path_segment_names()
                    .generation(),
            ),
        row::<flowcontrol::PriorityLevelConfiguration>()
            .subs(vec![status::<flowcontrol::PriorityLevelConfiguration>()])
            .strategy(
                Plain::new(Printer::PriorityLevelConfiguration)
                    .path_segment_names()
                    .generation(),
            ),
        // ---- metrics.k8s.io/v1beta1 ----
        // Upstream's aggregated metrics-server API; this server answers it (`kubectl top`, the HPA).
        resource_metrics_row("NodeMetrics", "nodes", false),
        resource_metrics_row("PodMetrics", "pods", true),
    ]
}

// ---------------------------------------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------------------------------------

/// The served resources: a list in insertion order plus an index by (group, version, plural).
/// Built-ins come from [`builtin_resources`]; CRD rows are added (and removed) at run time.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    rows: Vec<ResourceInfo>,
    index: HashMap<(String, String, String), usize>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// The catalog of every built-in resource.
    pub fn builtin() -> Catalog {
        let mut c = Catalog::new();
        for r in builtin_resources() {
            c.add(r);
        }
        c
    }

    /// Adds a row; a row with the same (group, version, plural) is replaced in place.
    pub fn add(&mut self, r: ResourceInfo) {
        let key = (r.group.clone(), r.version.clone(), r.plural.clone());
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = r,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(r);
            }
        }
    }

    /// Removes and returns the row for (group, version, plural), if any.
    pub fn remove(&mut self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        let key = (group.to_string(), version.to_string(), plural.to_string());
        let i = self.index.remove(&key)?;
        let removed = self.rows.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(removed)
    }

    /// A row a custom resource of CRD `crd_name` at (`group`, `plural`, stored under `prefix`) would
    /// shadow or share storage with: a built-in or another CRD's row of the same group and plural, or
    /// one whose storage prefix contains or is contained in `prefix` (a prefix scan of one would reach
    /// the other's objects). None when the CRD may be served.
    pub fn conflicting_row(
        &self,
        group: &str,
        plural: &str,
        prefix: &str,
        crd_name: &str,
    ) -> Option<&ResourceInfo> {
        self.rows.iter().find(|r| {
            let own = r.custom().is_some_and(|c| c.crd_name == crd_name);
            !own && ((r.group == group && r.plural == plural)
                || r.storage_prefix.starts_with(prefix)
                || prefix.starts_with(r.storage_prefix.as_str()))
        })
    }

    /// The row for (group, version, plural); the plural must match exactly.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        let key = (group.to_string(), version.to_string(), plural.to_string());
        self.index.get(&key).and_then(|&i| self.rows.get(i))
    }

    /// Every row, in insertion order.
    pub fn all(&self) -> &[ResourceInfo] {
        &self.rows
    }

    /// The rows of one group version, in insertion order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<&ResourceInfo> {
        self.rows
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Every group with its versions, preferred version first, in upstream's discovery order: core ("")
    /// first, then the built-in groups as kube-apiserver's /apis lists them, then other groups in the
    /// order their first row was added. Versions are sorted by Kubernetes version priority (GA before
    /// beta before alpha, higher numbers first; others last, alphabetically), as upstream does.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.rows {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, versions) in groups.iter_mut() {
            versions.sort_by(|a, b| compare_kube_versions(a, b));
        }
        let rank = |g: &str| {
            GROUP_ORDER
                .iter()
                .position(|x| *x == g)
                .unwrap_or(GROUP_ORDER.len())
        };
        // Stable sort: unknown groups keep their insertion order after the known ones.
        groups.sort_by_key(|(g, _)| rank(g));
        groups
    }
}

/// The catalog as the running server sees it: built-ins plus the rows of the CRDs stored now. Readers
/// take a snapshot ([`SharedCatalog::load`]) and keep it for the request; writers (the CRD hooks)
/// replace it whole. The lock is held only to copy or swap the `Arc`, never across an `.await`.
#[derive(Debug, Default)]
pub struct SharedCatalog {
    current: RwLock<Arc<Catalog>>,
    /// Bumped on every change, so derived documents (OpenAPI, discovery ETags) know to regenerate.
    generation: std::sync::atomic::AtomicU64,
}

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> Self {
        SharedCatalog {
            current: RwLock::new(Arc::new(catalog)),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The current catalog.
    pub fn load(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The row for (group, version, plural) in the current catalog.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.load().find(group, version, plural).cloned()
    }

    /// Changes the catalog: `f` edits a copy, which then replaces the current one.
    pub fn update(&self, f: impl FnOnce(&mut Catalog)) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many times the catalog has changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Parses "v<major>[(alpha|beta)<minor>]" into (stability, major, minor); stability 2 = GA, 1 = beta,
/// 0 = alpha.
fn parse_kube_version(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || rest.starts_with('0') {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (0, m)
    } else {
        return None;
    };
    if minor.is_empty() || !minor.chars().all(|c| c.is_ascii_digit()) || minor.starts_with('0') {
        return None;
    }
    Some((stability, major, minor.parse().ok()?))
}

/// Orders versions the way upstream's `CompareKubeAwareVersionStrings` does, highest priority first.
pub(crate) fn compare_kube_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (parse_kube_version(a), parse_kube_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn every_normalizer_accepts_a_minimal_object() {
        for r in builtin_resources()
            .into_iter()
            .filter(|r| r.handler != ResourceHandler::ResourceMetrics)
        {
            let obj =
                json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
            let n = r
                .normalize
                .clone()
                .expect("built-in rows have a normalizer");
            let out = n
                .run(obj)
                .unwrap_or_else(|e| panic!("{}: {e}", r.group_resource()));
            assert_eq!(out["metadata"]["name"], "x", "{}", r.group_resource());
            assert_eq!(out["kind"], r.kind.as_str());
            assert_eq!(out["apiVersion"], r.api_version().as_str());
        }
    }

    #[test]
    fn normalizer_reports_type_errors_and_drops_unknown_fields() {
        let c = Catalog::builtin();
        let pods = c.find("", "v1", "pods").expect("pods");
        let n = pods.normalize.clone().expect("normalizer");
        let out = n
            .run(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "bogus": 1}))
            .expect("valid");
        assert!(out.get("bogus").is_none());
        let err = n
            .run(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}}))
            .unwrap_err();
        assert_eq!(
            err,
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string"
        );
        let err = n
            .run(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}))
            .unwrap_err();
        assert!(err.contains("Service"), "{err}");
    }

    #[test]
    fn no_duplicate_rows() {
        let mut seen = HashSet::new();
        for r in builtin_resources() {
            assert!(
                seen.insert((r.group.clone(), r.version.clone(), r.plural.clone())),
                "duplicate {}/{}",
                r.api_version(),
                r.plural
            );
        }
        assert_eq!(seen.len(), Catalog::builtin().all().len());
    }

    #[test]
    fn storage_prefixes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        let all = builtin_resources();
        for r in &all {
            assert!(r.storage_prefix.starts_with("/registry/") && r.storage_prefix.ends_with('/'));
            if r.conversion.is_some() {
                // Stored as another row's version: shares that row's prefix on purpose.
                assert!(
                    all.iter()
                        .any(|o| o.conversion.is_none() && o.storage_prefix == r.storage_prefix),
                    "{} is stored as nothing served",
                    r.storage_prefix
                );
                continue;
            }
            assert!(
                seen.insert(r.storage_prefix.clone()),
                "{}",
                r.storage_prefix
            );
        }
        // No prefix may contain another one, or a prefix scan would return foreign objects.
        for a in &seen {
            for b in &seen {
                assert!(a == b || !a.starts_with(b.as_str()), "{a} is under {b}");
            }
        }
    }

    #[test]
    fn base64_split_over_lines_decodes_as_go_does() {
        use k8s_openapi::api::core::v1::Secret;
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "data": {"a": "aGVs\nbG8=", "tls.crt": "aGVs\r\nbG8=", "b": "aGVsbG8="}});
        let out = normalize::<Secret>(secret).unwrap();
        assert_eq!(out["data"]["a"], "aGVsbG8=");
        assert_eq!(out["data"]["tls.crt"], "aGVsbG8=");
        let bad = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "a b\n"}});
        assert!(normalize::<Secret>(bad)
            .unwrap_err()
            .contains("Invalid symbol"));
        // Text fields keep their line breaks.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "x\ny"}});
        let out = normalize::<k8s_openapi::api::core::v1::ConfigMap>(cm).unwrap();
        assert_eq!(out["data"]["a"], "x\ny");
    }

    #[test]
    fn pods_row() {
        let c = Catalog::builtin();
        let pods = c.find("", "v1", "pods").expect("pods");
        assert!(pods.short_names.contains(&"po".to_string()));
        assert_eq!(pods.categories, vec!["all"]);
        assert!(pods.namespaced);
        assert_eq!(pods.singular, "pod");
        assert_eq!(pods.storage_prefix, "/registry/pods/");
        assert_eq!(pods.verbs, strings(FULL));
        let names: Vec<&str> = pods.subresources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status"
            ]
        );
        let eviction = pods.subresource("eviction").expect("eviction");
        assert_eq!(
            (eviction.group.as_str(), eviction.kind.as_str()),
            ("policy", "Eviction")
        );
        assert!(pods.field_selectors.contains(&"spec.nodeName".to_string()));
        assert!(c.find("", "v1", "pod").is_none());
        assert!(c.find("", "v1", "Pods").is_none());
    }

    #[test]
    fn assorted_rows() {
        let c = Catalog::builtin();
        let ns = c.find("", "v1", "namespaces").expect("namespaces");
        assert!(!ns.namespaced);
        assert!(!ns.has_verb("deletecollection"));
        assert_eq!(
            ns.subresource("finalize").map(|s| s.verbs.clone()),
            Some(strings(&["update"]))
        );
        let deploy = c.find("apps", "v1", "deployments").expect("deployments");
        let scale = deploy.subresource("scale").expect("scale");
        assert_eq!(
            (
                scale.group.as_str(),
                scale.version.as_str(),
                scale.kind.as_str()
            ),
            ("autoscaling", "v1", "Scale")
        );
        assert_eq!(deploy.group_resource(), "deployments.apps");
        let tr = c
            .find("authentication.k8s.io", "v1", "tokenreviews")
            .expect("tokenreviews");
        assert_eq!(tr.verbs, vec!["create"]);
        assert!(!tr.is_stored());
        assert!(deploy.is_stored());
        let svc = c.find("", "v1", "services").expect("services");
        assert_eq!(svc.storage_prefix, "/registry/services/specs/");
        let crd = c
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("crds");
        assert_eq!(crd.short_names, vec!["crd", "crds"]);
        assert_eq!(crd.categories, vec!["api-extensions"]);
        assert!(c
            .find("apiregistration.k8s.io", "v1", "apiservices")
            .is_some());
        assert!(c.find("networking.k8s.io", "v1", "servicecidrs").is_some());
        assert!(c
            .find("storage.k8s.io", "v1", "volumeattributesclasses")
            .is_none());
        let hpa1 = c
            .find("autoscaling", "v1", "horizontalpodautoscalers")
            .expect("hpa v1");
        let hpa2 = c
            .find("autoscaling", "v2", "horizontalpodautoscalers")
            .expect("hpa v2");
        assert_ne!(hpa1.storage_prefix, hpa2.storage_prefix);
        let lsar = c
            .find("authorization.k8s.io", "v1", "localsubjectaccessreviews")
            .expect("lsar");
        assert!(lsar.namespaced);
    }

    #[test]
    fn groups_order() {
        let groups = Catalog::builtin().groups();
        let names: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        // metrics.k8s.io, upstream's aggregated API, comes last (its APIService's group priority is 100).
        let mut expected = GROUP_ORDER.to_vec();
        expected.push("metrics.k8s.io");
        assert_eq!(names, expected);
        let autoscaling = groups
            .iter()
            .find(|(g, _)| g == "autoscaling")
            .expect("autoscaling");
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
        assert_eq!(groups[0].1, vec!["v1"]);
    }

    #[test]
    fn add_and_remove_at_run_time() {
        let mut c = Catalog::builtin();
        let n = c.all().len();
        let mut crd = c
            .find("apps", "v1", "deployments")
            .expect("deployments")
            .clone();
        crd.group = "example.com".into();
        crd.plural = "widgets".into();
        crd.normalize = None;
        c.add(crd.clone());
        crd.version = "v1beta1".into();
        c.add(crd.clone());
        crd.version = "v2alpha1".into();
        c.add(crd.clone());
        crd.version = "v1".into();
        crd.kind = "Widget".into();
        c.add(crd); // replaces
        assert_eq!(c.all().len(), n + 3);
        assert_eq!(
            c.find("example.com", "v1", "widgets")
                .map(|r| r.kind.as_str()),
            Some("Widget")
        );
        let groups = c.groups();
        let last = groups.last().expect("groups");
        assert_eq!(last.0, "example.com");
        assert_eq!(last.1, vec!["v1", "v1beta1", "v2alpha1"]);
        assert!(c.remove("example.com", "v1beta1", "widgets").is_some());
        assert!(c.remove("example.com", "v1beta1", "widgets").is_none());
        assert_eq!(c.all().len(), n + 2);
        assert!(c.find("example.com", "v2alpha1", "widgets").is_some());
        assert!(c.find("", "v1", "pods").is_some());
        assert_eq!(c.resources("example.com", "v1").len(), 1);
    }

    #[test]
    fn kube_version_order() {
        let mut v = vec![
            "v1alpha1",
            "v1",
            "foo",
            "v2beta1",
            "v1beta2",
            "v2",
            "v11alpha2",
            "bar",
        ];
        v.sort_by(|a, b| compare_kube_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }
}
