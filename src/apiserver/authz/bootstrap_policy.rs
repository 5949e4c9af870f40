//! The default RBAC objects of Kubernetes v1.33's kube-apiserver (its `rbac/bootstrap-roles` post-start
//! hook): every ClusterRole and ClusterRoleBinding, the `system:controller:*` ones included, and the Roles
//! and RoleBindings in kube-system and kube-public. A fresh cluster gets upstream's names, labels, rules
//! and subjects, so `admin`/`edit`/`view` bindings and `kubectl auth can-i` behave as upstream.
//!
//! Lists inside each rule are sorted, as upstream's rule builder sorts them; rule order is upstream's.

use serde_json::{json, Map, Value};

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC: &str = "rbac.authorization.k8s.io";
const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
const AUTOUPDATE: (&str, &str) = ("rbac.authorization.kubernetes.io/autoupdate", "true");
const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const CONTROLLER_PREFIX: &str = "system:controller:";

// Verb sets (sorted, as upstream shows them).
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const READ_UPDATE: &[&str] = &["get", "list", "patch", "update", "watch"];
const LIST_WATCH: &[&str] = &["list", "watch"];
const CREATE: &[&str] = &["create"];
const UPDATE: &[&str] = &["update"];
const PATCH_UPDATE: &[&str] = &["patch", "update"];
const GET: &[&str] = &["get"];
const ALL: &[&str] = &["*"];

// API groups.
const CORE: &[&str] = &[""];
const APPS: &[&str] = &["apps"];
const APPS_EXT: &[&str] = &["apps", "extensions"];
const EXT: &[&str] = &["extensions"];
const AUTHN: &[&str] = &["authentication.k8s.io"];
const AUTHZ: &[&str] = &["authorization.k8s.io"];
const AUTOSCALING: &[&str] = &["autoscaling"];
const BATCH: &[&str] = &["batch"];
const CERTS: &[&str] = &["certificates.k8s.io"];
const COORD: &[&str] = &["coordination.k8s.io"];
const DISCOVERY: &[&str] = &["discovery.k8s.io"];
const NETWORKING: &[&str] = &["networking.k8s.io"];
const POLICY: &[&str] = &["policy"];
const STORAGE: &[&str] = &["storage.k8s.io"];
const RBAC_G: &[&str] = &[RBAC];
const ANY: &[&str] = &["*"];

/// A resource rule, in the field order of the API's JSON.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

/// A resource rule restricted to some object names.
fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

/// A non-resource URL rule.
fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": paths})
}

/// Upstream's `eventsRule()`: writing events in both event APIs.
fn events() -> Value {
    rule(
        &["create", "patch", "update"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

fn metadata(name: &str, namespace: Option<&str>, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = Map::new();
    labels.insert(BOOTSTRAP_LABEL.0.into(), BOOTSTRAP_LABEL.1.into());
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), ns.into());
    }
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert("annotations".into(), json!({AUTOUPDATE.0: AUTOUPDATE.1}));
    Value::Object(meta)
}

fn cluster_role(name: &str, extra_labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"kind": "ClusterRole", "apiVersion": API_VERSION, "metadata": metadata(name, None, extra_labels), "rules": rules})
}

/// An aggregated ClusterRole: no rules of its own; the server fills them from the roles it selects.
fn aggregated(name: &str, extra_labels: &[(&str, &str)], selects: &str) -> Value {
    json!({"kind": "ClusterRole", "apiVersion": API_VERSION, "metadata": metadata(name, None, extra_labels),
           "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]}})
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({"kind": "Role", "apiVersion": API_VERSION, "metadata": metadata(name, Some(namespace), &[]), "rules": rules})
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": name})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": RBAC, "name": name})
}

fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

/// A ClusterRoleBinding to the ClusterRole `role`; no subjects leaves the field out.
fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    let mut b = json!({"kind": "ClusterRoleBinding", "apiVersion": API_VERSION, "metadata": metadata(name, None, &[])});
    if !subjects.is_empty() {
        b["subjects"] = Value::Array(subjects);
    }
    b["roleRef"] = json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": role});
    b
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({"kind": "RoleBinding", "apiVersion": API_VERSION, "metadata": metadata(name, Some(namespace), &[]),
           "subjects": subjects, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role}})
}

/// Upstream's bootstrap ClusterRoles (testdata/cluster-roles.yaml), in its (name) order, with the
/// v1.33 default feature gates: KubeletFineGrainedAuthz and MultiCIDRServiceAllocator on;
/// DynamicResourceAllocation, ClusterTrustBundle and the other beta-off/alpha gates off.
#[rustfmt::skip]
fn policy_cluster_roles() -> Vec<Value> {
    let approver = |signer: &str| vec![named(&["approve"], CERTS, &["signers"], &[signer])];
    vec![
        aggregated("admin", &[], AGG_ADMIN),
        cluster_role("cluster-admin", &[], vec![rule(ALL, ANY, &["*"]), urls(ALL, &["*"])]),
        aggregated("edit", &[(AGG_ADMIN, "true")], AGG_EDIT),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGG_ADMIN, "true")],
            vec![
                rule(CREATE, AUTHZ, &["localsubjectaccessreviews"]),
                rule(READ_WRITE, RBAC_G, &["rolebindings", "roles"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGG_EDIT, "true")],
            vec![
                rule(READ, CORE, &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
                rule(&["impersonate"], CORE, &["serviceaccounts"]),
                rule(WRITE, CORE, &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
                rule(CREATE, CORE, &["pods/eviction"]),
                rule(
                    WRITE,
                    CORE,
                    &[
                        "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                        "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy",
                    ],
                ),
                rule(CREATE, CORE, &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    APPS,
                    &[
                        "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                        "replicasets/scale", "statefulsets", "statefulsets/scale",
                    ],
                ),
                rule(WRITE, AUTOSCALING, &["horizontalpodautoscalers"]),
                rule(WRITE, BATCH, &["cronjobs", "jobs"]),
                rule(
                    WRITE,
                    EXT,
                    &[
                        "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                        "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                    ],
                ),
                rule(WRITE, POLICY, &["poddisruptionbudgets"]),
                rule(WRITE, NETWORKING, &["ingresses", "networkpolicies"]),
                rule(READ_WRITE, COORD, &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGG_VIEW, "true")],
            vec![
                rule(
                    READ,
                    CORE,
                    &[
                        "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                        "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    CORE,
                    &[
                        "bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                        "replicationcontrollers/status", "resourcequotas", "resourcequotas/status",
                    ],
                ),
                rule(READ, CORE, &["namespaces"]),
                rule(READ, DISCOVERY, &["endpointslices"]),
                rule(
                    READ,
                    APPS,
                    &[
                        "controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                        "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                        "statefulsets/scale", "statefulsets/status",
                    ],
                ),
                rule(READ, AUTOSCALING, &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
                rule(READ, BATCH, &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
                rule(
                    READ,
                    EXT,
                    &[
                        "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
                        "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale",
                        "replicasets/status", "replicationcontrollers/scale",
                    ],
                ),
                rule(READ, POLICY, &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
                rule(READ, NETWORKING, &["ingresses", "ingresses/status", "networkpolicies"]),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![rule(CREATE, AUTHN, &["tokenreviews"]), rule(CREATE, AUTHZ, &["subjectaccessreviews"])],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(CREATE, AUTHZ, &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(CREATE, AUTHN, &["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(CREATE, CERTS, &["certificatesigningrequests/nodeclient"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(CREATE, CERTS, &["certificatesigningrequests/selfnodeclient"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            &[],
            approver("kubernetes.io/kube-apiserver-client"),
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            &[],
            approver("kubernetes.io/kube-apiserver-client-kubelet"),
        ),
        cluster_role("system:certificates.k8s.io:kubelet-serving-approver", &[], approver("kubernetes.io/kubelet-serving")),
        cluster_role("system:certificates.k8s.io:legacy-unknown-approver", &[], approver("kubernetes.io/legacy-unknown")),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                GET,
                &[
                    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                    "/version", "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:heapster",
            &[],
            vec![rule(READ, CORE, &["events", "namespaces", "nodes", "pods"]), rule(READ, EXT, &["deployments"])],
        ),
        cluster_role("system:kube-aggregator", &[], vec![rule(READ, CORE, &["endpoints", "services"])]),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            vec![
                events(),
                rule(CREATE, COORD, &["leases"]),
                named(&["get", "update"], COORD, &["leases"], &["kube-controller-manager"]),
                rule(CREATE, CORE, &["secrets", "serviceaccounts"]),
                rule(&["delete"], CORE, &["secrets"]),
                rule(GET, CORE, &["configmaps", "namespaces", "secrets", "serviceaccounts"]),
                rule(UPDATE, CORE, &["secrets", "serviceaccounts"]),
                rule(CREATE, AUTHN, &["tokenreviews"]),
                rule(CREATE, AUTHZ, &["subjectaccessreviews"]),
                rule(LIST_WATCH, ANY, &["*"]),
                rule(CREATE, CORE, &["serviceaccounts/token"]),
            ],
        ),
        cluster_role("system:kube-dns", &[], vec![rule(LIST_WATCH, CORE, &["endpoints", "services"])]),
        cluster_role(
            "system:kube-scheduler",
            &[],
            vec![
                events(),
                rule(CREATE, COORD, &["leases"]),
                named(&["get", "list", "update", "watch"], COORD, &["leases"], &["kube-scheduler"]),
                rule(READ_WRITE, COORD, &["leasecandidates"]),
                rule(READ, CORE, &["nodes"]),
                rule(&["delete", "get", "list", "watch"], CORE, &["pods"]),
                rule(CREATE, CORE, &["bindings", "pods/binding"]),
                rule(PATCH_UPDATE, CORE, &["pods/status"]),
                rule(READ, CORE, &["replicationcontrollers", "services"]),
                rule(READ, APPS_EXT, &["replicasets"]),
                rule(READ, APPS, &["statefulsets"]),
                rule(READ, POLICY, &["poddisruptionbudgets"]),
                rule(READ, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
                rule(CREATE, AUTHN, &["tokenreviews"]),
                rule(CREATE, AUTHZ, &["subjectaccessreviews"]),
                rule(READ, STORAGE, &["csinodes"]),
                rule(READ, STORAGE, &["volumeattachments"]),
                rule(READ, CORE, &["namespaces"]),
                rule(READ, STORAGE, &["csidrivers"]),
                rule(READ, STORAGE, &["csistoragecapacities"]),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(READ, CORE, &["nodes"]),
                rule(&["proxy"], CORE, &["nodes"]),
                rule(ALL, CORE, &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"]),
                // KubeletFineGrainedAuthz (beta, on in v1.33).
                rule(ALL, CORE, &["nodes/configz", "nodes/healthz", "nodes/pods"]),
            ],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                GET,
                &["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"],
            )],
        ),
        cluster_role(
            "system:node",
            &[],
            vec![
                rule(CREATE, AUTHN, &["tokenreviews"]),
                rule(CREATE, AUTHZ, &["localsubjectaccessreviews", "subjectaccessreviews"]),
                rule(READ, CORE, &["services"]),
                rule(&["create", "get", "list", "watch"], CORE, &["nodes"]),
                rule(PATCH_UPDATE, CORE, &["nodes/status"]),
                rule(PATCH_UPDATE, CORE, &["nodes"]),
                rule(&["create", "patch", "update"], CORE, &["events"]),
                rule(READ, CORE, &["pods"]),
                rule(&["create", "delete"], CORE, &["pods"]),
                rule(PATCH_UPDATE, CORE, &["pods/status"]),
                rule(CREATE, CORE, &["pods/eviction"]),
                rule(READ, CORE, &["configmaps", "secrets"]),
                rule(GET, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
                rule(GET, CORE, &["endpoints"]),
                rule(&["create", "get", "list", "watch"], CERTS, &["certificatesigningrequests"]),
                rule(&["create", "delete", "get", "patch", "update"], COORD, &["leases"]),
                rule(GET, STORAGE, &["volumeattachments"]),
                rule(CREATE, CORE, &["serviceaccounts/token"]),
                rule(&["get", "patch", "update"], CORE, &["persistentvolumeclaims/status"]),
                rule(READ, STORAGE, &["csidrivers"]),
                rule(&["create", "delete", "get", "patch", "update"], STORAGE, &["csinodes"]),
                rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(&["create", "get", "list", "watch"], CERTS, &["certificatesigningrequests"])],
        ),
        cluster_role(
            "system:node-problem-detector",
            &[],
            vec![rule(GET, CORE, &["nodes"]), rule(&["patch"], CORE, &["nodes/status"]), events()],
        ),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule(LIST_WATCH, CORE, &["endpoints", "services"]),
                rule(READ, CORE, &["nodes"]),
                events(),
                // MultiCIDRServiceAllocator (GA in v1.33).
                rule(LIST_WATCH, NETWORKING, &["servicecidrs"]),
                rule(LIST_WATCH, DISCOVERY, &["endpointslices"]),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            &[],
            vec![
                rule(&["create", "delete", "get", "list", "watch"], CORE, &["persistentvolumes"]),
                rule(&["get", "list", "update", "watch"], CORE, &["persistentvolumeclaims"]),
                rule(READ, STORAGE, &["storageclasses"]),
                rule(&["watch"], CORE, &["events"]),
                events(),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(GET, &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                GET,
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(READ_UPDATE, CORE, &["persistentvolumes"]),
                rule(READ, STORAGE, &["storageclasses"]),
                rule(READ_UPDATE, CORE, &["persistentvolumeclaims"]),
            ],
        ),
        aggregated("view", &[(AGG_EDIT, "true")], AGG_VIEW),
    ]
}

/// The controller roles (testdata/controller-roles.yaml), as (name without `system:controller:`, rules),
/// in upstream's order. v1.33 defaults: no resource-claim-controller (DynamicResourceAllocation off),
/// no volumeattributesclass-protection-controller (VolumeAttributesClass off), no
/// device-taint-eviction-controller / storage-version-migrator-controller (alpha).
#[rustfmt::skip]
fn controller_rules() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "attachdetach-controller",
            vec![
                rule(LIST_WATCH, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
                rule(READ, CORE, &["nodes"]),
                rule(PATCH_UPDATE, CORE, &["nodes/status"]),
                rule(LIST_WATCH, CORE, &["pods"]),
                events(),
                rule(&["create", "delete", "get", "list", "watch"], STORAGE, &["volumeattachments"]),
                rule(READ, STORAGE, &["csidrivers"]),
                rule(READ, STORAGE, &["csinodes"]),
            ],
        ),
        (
            "certificate-controller",
            vec![
                rule(&["delete", "get", "list", "watch"], CERTS, &["certificatesigningrequests"]),
                rule(UPDATE, CERTS, &["certificatesigningrequests/approval", "certificatesigningrequests/status"]),
                named(&["approve"], CERTS, &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"]),
                named(
                    &["sign"],
                    CERTS,
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ],
                ),
                rule(CREATE, AUTHZ, &["subjectaccessreviews"]),
                events(),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![rule(&["escalate", "get", "list", "patch", "update", "watch"], RBAC_G, &["clusterroles"])],
        ),
        (
            "cronjob-controller",
            vec![
                rule(&["get", "list", "update", "watch"], BATCH, &["cronjobs"]),
                rule(&["create", "delete", "get", "list", "patch", "update", "watch"], BATCH, &["jobs"]),
                rule(UPDATE, BATCH, &["cronjobs/status"]),
                rule(UPDATE, BATCH, &["cronjobs/finalizers"]),
                rule(&["delete", "list", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule(READ, APPS_EXT, &["daemonsets"]),
                rule(UPDATE, APPS_EXT, &["daemonsets/status"]),
                rule(UPDATE, APPS_EXT, &["daemonsets/finalizers"]),
                rule(LIST_WATCH, CORE, &["nodes"]),
                rule(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
                rule(CREATE, CORE, &["pods/binding"]),
                rule(&["create", "delete", "get", "list", "patch", "update", "watch"], APPS, &["controllerrevisions"]),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(&["get", "list", "update", "watch"], APPS_EXT, &["deployments"]),
                rule(UPDATE, APPS_EXT, &["deployments/status"]),
                rule(UPDATE, APPS_EXT, &["deployments/finalizers"]),
                rule(&["create", "delete", "get", "list", "patch", "update", "watch"], APPS_EXT, &["replicasets"]),
                rule(&["get", "list", "update", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(READ, APPS_EXT, &["deployments"]),
                rule(READ, APPS_EXT, &["replicasets"]),
                rule(READ, CORE, &["replicationcontrollers"]),
                rule(READ, POLICY, &["poddisruptionbudgets"]),
                rule(READ, APPS, &["statefulsets"]),
                rule(UPDATE, POLICY, &["poddisruptionbudgets/status"]),
                rule(PATCH_UPDATE, CORE, &["pods/status"]),
                rule(GET, ANY, &["*/scale"]),
                events(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(READ, CORE, &["pods", "services"]),
                rule(&["create", "delete", "get", "list", "update", "watch"], CORE, &["endpoints"]),
                rule(CREATE, CORE, &["endpoints/restricted"]),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(READ, CORE, &["nodes", "pods", "services"]),
                rule(UPDATE, CORE, &["services/finalizers"]),
                rule(&["create", "delete", "get", "list", "update", "watch"], DISCOVERY, &["endpointslices"]),
                events(),
            ],
        ),
        (
            "endpointslicemirroring-controller",
            vec![
                rule(READ, CORE, &["endpoints", "services"]),
                rule(UPDATE, CORE, &["services/finalizers"]),
                rule(UPDATE, CORE, &["endpoints/finalizers"]),
                rule(&["create", "delete", "get", "list", "update", "watch"], DISCOVERY, &["endpointslices"]),
                events(),
            ],
        ),
        (
            "ephemeral-volume-controller",
            vec![
                rule(READ, CORE, &["pods"]),
                rule(UPDATE, CORE, &["pods/finalizers"]),
                rule(&["create", "get", "list", "watch"], CORE, &["persistentvolumeclaims"]),
                events(),
            ],
        ),
        (
            "expand-controller",
            vec![
                rule(READ_UPDATE, CORE, &["persistentvolumes"]),
                rule(PATCH_UPDATE, CORE, &["persistentvolumeclaims/status"]),
                rule(READ, CORE, &["persistentvolumeclaims"]),
                events(),
                rule(GET, CORE, &["services"]),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![rule(&["delete", "get", "list", "patch", "update", "watch"], ANY, &["*"]), events()],
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                rule(READ, AUTOSCALING, &["horizontalpodautoscalers"]),
                rule(UPDATE, AUTOSCALING, &["horizontalpodautoscalers/status"]),
                rule(&["get", "update"], ANY, &["*/scale"]),
                rule(LIST_WATCH, CORE, &["pods"]),
                rule(LIST_WATCH, &["metrics.k8s.io"], &["pods"]),
                rule(READ, &["custom.metrics.k8s.io"], &["*"]),
                rule(READ, &["external.metrics.k8s.io"], &["*"]),
                events(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(READ_UPDATE, BATCH, &["jobs"]),
                rule(UPDATE, BATCH, &["jobs/status"]),
                rule(UPDATE, BATCH, &["jobs/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                named(GET, CORE, &["configmaps"], &["kube-apiserver-legacy-service-account-token-tracking"]),
                rule(&["delete", "patch"], CORE, &["secrets"]),
            ],
        ),
        (
            "namespace-controller",
            vec![
                rule(&["delete", "get", "list", "watch"], CORE, &["namespaces"]),
                rule(UPDATE, CORE, &["namespaces/finalize", "namespaces/status"]),
                rule(&["delete", "deletecollection", "get", "list", "watch"], ANY, &["*"]),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(&["delete", "get", "list", "patch", "update", "watch"], CORE, &["nodes"]),
                rule(PATCH_UPDATE, CORE, &["nodes/status"]),
                rule(PATCH_UPDATE, CORE, &["pods/status"]),
                rule(&["delete", "get", "list", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                rule(&["create", "delete", "get", "list", "update", "watch"], CORE, &["persistentvolumes"]),
                rule(UPDATE, CORE, &["persistentvolumes/status"]),
                rule(&["get", "list", "update", "watch"], CORE, &["persistentvolumeclaims"]),
                rule(UPDATE, CORE, &["persistentvolumeclaims/status"]),
                rule(&["create", "delete", "get", "list", "watch"], CORE, &["pods"]),
                rule(READ, STORAGE, &["storageclasses"]),
                rule(LIST_WATCH, CORE, &["nodes"]),
                events(),
                rule(&["watch"], CORE, &["events"]),
                rule(GET, CORE, &["services"]),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["delete", "list", "watch"], CORE, &["pods"]),
                rule(READ, CORE, &["nodes"]),
                rule(&["patch"], CORE, &["pods/status"]),
            ],
        ),
        ("pv-protection-controller", vec![rule(&["get", "list", "update", "watch"], CORE, &["persistentvolumes"]), events()]),
        (
            "pvc-protection-controller",
            vec![
                rule(&["get", "list", "update", "watch"], CORE, &["persistentvolumeclaims"]),
                rule(READ, CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "update", "watch"], APPS_EXT, &["replicasets"]),
                rule(UPDATE, APPS_EXT, &["replicasets/status"]),
                rule(UPDATE, APPS_EXT, &["replicasets/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "replication-controller",
            vec![
                rule(&["get", "list", "update", "watch"], CORE, &["replicationcontrollers"]),
                rule(UPDATE, CORE, &["replicationcontrollers/status"]),
                rule(UPDATE, CORE, &["replicationcontrollers/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], CORE, &["pods"]),
                events(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![rule(LIST_WATCH, ANY, &["*"]), rule(UPDATE, CORE, &["resourcequotas/status"]), events()],
        ),
        ("root-ca-cert-publisher", vec![rule(&["create", "update"], CORE, &["configmaps"]), events()]),
        (
            "route-controller",
            vec![rule(LIST_WATCH, CORE, &["nodes"]), rule(&["patch"], CORE, &["nodes/status"]), events()],
        ),
        (
            "selinux-warning-controller",
            vec![
                events(),
                rule(READ, CORE, &["persistentvolumes"]),
                rule(READ, CORE, &["persistentvolumeclaims"]),
                rule(READ, CORE, &["pods"]),
                rule(READ, STORAGE, &["csidrivers"]),
            ],
        ),
        ("service-account-controller", vec![rule(CREATE, CORE, &["serviceaccounts"]), events()]),
        (
            "service-cidrs-controller",
            vec![
                rule(READ_UPDATE, NETWORKING, &["servicecidrs"]),
                rule(PATCH_UPDATE, NETWORKING, &["servicecidrs/finalizers"]),
                rule(PATCH_UPDATE, NETWORKING, &["servicecidrs/status"]),
                rule(READ, NETWORKING, &["ipaddresses"]),
                events(),
            ],
        ),
        (
            "service-controller",
            vec![
                rule(READ, CORE, &["services"]),
                rule(PATCH_UPDATE, CORE, &["services/status"]),
                rule(LIST_WATCH, CORE, &["nodes"]),
                events(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                rule(LIST_WATCH, CORE, &["pods"]),
                rule(READ, APPS, &["statefulsets"]),
                rule(UPDATE, APPS, &["statefulsets/status"]),
                rule(UPDATE, APPS, &["statefulsets/finalizers"]),
                rule(&["create", "delete", "get", "patch", "update"], CORE, &["pods"]),
                rule(&["create", "delete", "get", "list", "patch", "update", "watch"], APPS, &["controllerrevisions"]),
                rule(&["create", "get", "list", "watch"], CORE, &["persistentvolumeclaims"]),
                events(),
                // StatefulSetAutoDeletePVC (GA, still appended behind its gate in v1.33).
                rule(&["delete", "update"], CORE, &["persistentvolumeclaims"]),
                rule(UPDATE, CORE, &["pods/finalizers"]),
            ],
        ),
        ("ttl-after-finished-controller", vec![rule(&["delete", "get", "list", "watch"], BATCH, &["jobs"]), events()]),
        ("ttl-controller", vec![rule(&["list", "patch", "update", "watch"], CORE, &["nodes"]), events()]),
        (
            "validatingadmissionpolicy-status-controller",
            vec![
                rule(READ, &["admissionregistration.k8s.io"], &["validatingadmissionpolicies"]),
                rule(&["get", "patch", "update"], &["admissionregistration.k8s.io"], &["validatingadmissionpolicies/status"]),
                events(),
            ],
        ),
    ]
}

/// Every bootstrap ClusterRole: the policy roles, then the `system:controller:*` roles.
pub fn cluster_roles() -> Vec<serde_json::Value> {
    let mut roles = policy_cluster_roles();
    roles.extend(
        controller_rules()
            .into_iter()
            .map(|(name, rules)| cluster_role(&format!("{CONTROLLER_PREFIX}{name}"), &[], rules)),
    );
    roles
}

/// Every bootstrap ClusterRoleBinding: upstream's testdata/cluster-role-bindings.yaml, then one binding
/// per controller role to the kube-system service account of the same name.
pub fn cluster_role_bindings() -> Vec<serde_json::Value> {
    let same = |name: &str, subjects: Vec<Value>| cluster_binding(name, name, subjects);
    let mut bindings = vec![
        same("cluster-admin", vec![group("system:masters")]),
        same("system:basic-user", vec![group("system:authenticated")]),
        same("system:discovery", vec![group("system:authenticated")]),
        same(
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        same(
            "system:kube-dns",
            vec![service_account("kube-system", "kube-dns")],
        ),
        same("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        same("system:monitoring", vec![group("system:monitoring")]),
        // Kept without subjects since the Node authorizer took over (upstream leaves it empty).
        same("system:node", vec![]),
        same("system:node-proxier", vec![user("system:kube-proxy")]),
        same(
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        same(
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        same(
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
    ];
    bindings.extend(controller_rules().into_iter().map(|(name, _)| {
        let full = format!("{CONTROLLER_PREFIX}{name}");
        cluster_binding(&full, &full, vec![service_account("kube-system", name)])
    }));
    bindings
}

/// Roles in kube-system and kube-public.
pub fn namespaced_roles() -> Vec<serde_json::Value> {
    let leader_locking = || {
        vec![
            rule(
                &["create", "get", "list", "update", "watch"],
                COORD,
                &["leases"],
            ),
            rule(
                &["create", "get", "list", "update", "watch"],
                COORD,
                &["leasecandidates"],
            ),
        ]
    };
    vec![
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(READ, CORE, &["configmaps"]),
                named(UPDATE, CORE, &["configmaps"], &["cluster-info"]),
                events(),
            ],
        ),
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![named(
                READ,
                CORE,
                &["configmaps"],
                &["extension-apiserver-authentication"],
            )],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system:controller:bootstrap-signer",
            vec![rule(READ, CORE, &["secrets"])],
        ),
        role(
            "kube-system",
            "system:controller:cloud-provider",
            vec![rule(
                &["create", "get", "list", "watch"],
                CORE,
                &["configmaps"],
            )],
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&["delete", "get", "list", "watch"], CORE, &["secrets"]),
                events(),
            ],
        ),
    ]
}

/// RoleBindings in kube-system and kube-public.
pub fn namespaced_role_bindings() -> Vec<serde_json::Value> {
    let ks = "kube-system";
    vec![
        role_binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account(ks, "bootstrap-signer")],
        ),
        role_binding(
            ks,
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![
                user("system:kube-controller-manager"),
                user("system:kube-scheduler"),
            ],
        ),
        role_binding(
            ks,
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                user("system:kube-controller-manager"),
                service_account(ks, "kube-controller-manager"),
                service_account(ks, "leader-election-controller"),
            ],
        ),
        role_binding(
            ks,
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                user("system:kube-scheduler"),
                service_account(ks, "kube-scheduler"),
            ],
        ),
        role_binding(
            ks,
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account(ks, "bootstrap-signer")],
        ),
        role_binding(
            ks,
            "system:controller:cloud-provider",
            "system:controller:cloud-provider",
            vec![service_account(ks, "cloud-provider")],
        ),
        role_binding(
            ks,
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![service_account(ks, "token-cleaner")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn name(obj: &Value) -> &str {
        obj["metadata"]["name"].as_str().unwrap()
    }

    fn namespace(obj: &Value) -> &str {
        obj["metadata"]["namespace"].as_str().unwrap_or("")
    }

    fn find<'a>(objs: &'a [Value], n: &str) -> &'a Value {
        objs.iter()
            .find(|o| name(o) == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    }

    fn strs(v: &Value) -> Vec<&str> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    /// Whether one of `rules` allows verb on group/resource (RBAC's matching, wildcards included).
    fn allows(rules: &Value, verb: &str, group: &str, resource: &str) -> bool {
        let has = |list: &Value, want: &str| strs(list).iter().any(|s| *s == want || *s == "*");
        rules.as_array().into_iter().flatten().any(|r| {
            has(&r["verbs"], verb)
                && has(&r["apiGroups"], group)
                && has(&r["resources"], resource)
                && r.get("resourceNames").is_none()
        })
    }

    #[test]
    fn counts_match_upstream() {
        // Upstream v1.33 with default feature gates: cluster-roles.yaml 31, controller-roles.yaml 35,
        // cluster-role-bindings.yaml 12, controller-role-bindings.yaml 35, namespace-roles.yaml 7,
        // namespace-role-bindings.yaml 7.
        let controllers = cluster_roles()
            .iter()
            .filter(|r| name(r).starts_with(CONTROLLER_PREFIX))
            .count();
        assert_eq!(cluster_roles().len() - controllers, 31);
        assert_eq!(controllers, 35);
        let controller_bindings = cluster_role_bindings()
            .iter()
            .filter(|r| name(r).starts_with(CONTROLLER_PREFIX))
            .count();
        assert_eq!(cluster_role_bindings().len() - controller_bindings, 12);
        assert_eq!(controller_bindings, 35);
        assert_eq!(namespaced_roles().len(), 7);
        assert_eq!(namespaced_role_bindings().len(), 7);
    }

    #[test]
    fn names_unique_per_kind() {
        for objs in [
            cluster_roles(),
            cluster_role_bindings(),
            namespaced_roles(),
            namespaced_role_bindings(),
        ] {
            let mut seen = HashSet::new();
            for o in &objs {
                assert!(
                    seen.insert((namespace(o).to_string(), name(o).to_string())),
                    "duplicate {}",
                    name(o)
                );
            }
        }
    }

    #[test]
    fn every_object_is_a_complete_bootstrap_object() {
        let all = [
            (cluster_roles(), "ClusterRole"),
            (cluster_role_bindings(), "ClusterRoleBinding"),
            (namespaced_roles(), "Role"),
            (namespaced_role_bindings(), "RoleBinding"),
        ];
        for (objs, kind) in all {
            for o in &objs {
                assert_eq!(o["apiVersion"], API_VERSION);
                assert_eq!(o["kind"], kind);
                assert_eq!(
                    o["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                    "rbac-defaults",
                    "{}",
                    name(o)
                );
                assert_eq!(
                    o["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                    "true"
                );
                let namespaced = kind.starts_with("Role");
                assert_eq!(
                    o["metadata"].get("namespace").is_some(),
                    namespaced,
                    "{}",
                    name(o)
                );
                if namespaced {
                    assert!(["kube-system", "kube-public"].contains(&namespace(o)));
                }
            }
        }
    }

    #[test]
    fn rule_lists_are_sorted_as_upstream_builds_them() {
        let roles: Vec<Value> = cluster_roles()
            .into_iter()
            .chain(namespaced_roles())
            .collect();
        for r in &roles {
            for rule in r["rules"].as_array().into_iter().flatten() {
                assert!(!strs(&rule["verbs"]).is_empty(), "{}", name(r));
                for key in [
                    "verbs",
                    "apiGroups",
                    "resources",
                    "resourceNames",
                    "nonResourceURLs",
                ] {
                    let list = strs(&rule[key]);
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(list, sorted, "{} {key}", name(r));
                }
                // Either a resource rule or a URL rule, never both.
                assert_ne!(
                    rule.get("resources").is_some(),
                    rule.get("nonResourceURLs").is_some(),
                    "{}",
                    name(r)
                );
            }
        }
    }

    #[test]
    fn bindings_reference_existing_roles() {
        let cluster_role_names: HashSet<String> = cluster_roles()
            .iter()
            .map(|r| name(r).to_string())
            .collect();
        for b in cluster_role_bindings() {
            assert_eq!(b["roleRef"]["kind"], "ClusterRole");
            assert_eq!(b["roleRef"]["apiGroup"], RBAC);
            assert!(
                cluster_role_names.contains(b["roleRef"]["name"].as_str().unwrap()),
                "{}",
                name(&b)
            );
        }
        let roles = namespaced_roles();
        for b in namespaced_role_bindings() {
            let target = b["roleRef"]["name"].as_str().unwrap();
            let ok = match b["roleRef"]["kind"].as_str().unwrap() {
                "Role" => roles
                    .iter()
                    .any(|r| name(r) == target && namespace(r) == namespace(&b)),
                "ClusterRole" => cluster_role_names.contains(target),
                other => panic!("roleRef kind {other}"),
            };
            assert!(ok, "{} -> {target}", name(&b));
            for s in b["subjects"].as_array().unwrap() {
                match s["kind"].as_str().unwrap() {
                    "ServiceAccount" => {
                        assert!(s.get("namespace").is_some() && s.get("apiGroup").is_none())
                    }
                    "User" | "Group" => assert_eq!(s["apiGroup"], RBAC),
                    other => panic!("subject kind {other}"),
                }
            }
        }
    }

    #[test]
    fn controller_roles_are_bound_to_their_service_accounts() {
        let bindings = cluster_role_bindings();
        for r in cluster_roles()
            .iter()
            .filter(|r| name(r).starts_with(CONTROLLER_PREFIX))
        {
            let sa = &name(r)[CONTROLLER_PREFIX.len()..];
            let b = find(&bindings, name(r));
            assert_eq!(b["roleRef"]["name"], name(r));
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}])
            );
        }
    }

    #[test]
    fn cluster_admin_can_do_everything_and_masters_have_it() {
        let roles = cluster_roles();
        let admin = find(&roles, "cluster-admin");
        assert_eq!(
            admin["rules"],
            json!([
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ])
        );
        assert!(admin.get("aggregationRule").is_none());
        let bindings = cluster_role_bindings();
        let b = find(&bindings, "cluster-admin");
        assert_eq!(b["roleRef"]["name"], "cluster-admin");
        assert!(b["subjects"]
            .as_array()
            .unwrap()
            .contains(&group("system:masters")));
    }

    #[test]
    fn view_aggregates_from_its_source_role() {
        let roles = cluster_roles();
        let view = find(&roles, "view");
        assert_eq!(
            view["aggregationRule"]["clusterRoleSelectors"],
            json!([{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}])
        );
        assert!(view.get("rules").is_none());
        assert_eq!(view["metadata"]["labels"][AGG_EDIT], "true");
        let source = find(&roles, "system:aggregate-to-view");
        assert_eq!(source["metadata"]["labels"][AGG_VIEW], "true");
        assert!(allows(&source["rules"], "get", "", "pods"));
        assert!(!allows(&source["rules"], "get", "", "secrets"));
        assert!(!allows(&source["rules"], "create", "", "pods"));
    }

    #[test]
    fn admin_edit_view_chain() {
        let roles = cluster_roles();
        for (n, selects) in [("admin", AGG_ADMIN), ("edit", AGG_EDIT), ("view", AGG_VIEW)] {
            let r = find(&roles, n);
            assert!(r.get("rules").is_none(), "{n}");
            assert_eq!(
                r["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"][selects],
                "true"
            );
        }
        // Only these three aggregate.
        assert_eq!(
            roles
                .iter()
                .filter(|r| r.get("aggregationRule").is_some())
                .count(),
            3
        );
        assert_eq!(
            find(&roles, "edit")["metadata"]["labels"][AGG_ADMIN],
            "true"
        );
        let edit = &find(&roles, "system:aggregate-to-edit")["rules"];
        assert!(allows(edit, "create", "apps", "deployments"));
        assert!(allows(edit, "get", "", "secrets"));
        assert!(!allows(edit, "create", RBAC, "rolebindings"));
        let admin = &find(&roles, "system:aggregate-to-admin")["rules"];
        assert!(allows(admin, "create", RBAC, "rolebindings"));
    }

    #[test]
    fn discovery_and_public_info_are_bound_as_upstream() {
        let bindings = cluster_role_bindings();
        assert_eq!(
            find(&bindings, "system:discovery")["subjects"],
            json!([group("system:authenticated")])
        );
        assert_eq!(
            find(&bindings, "system:public-info-viewer")["subjects"],
            json!([
                group("system:authenticated"),
                group("system:unauthenticated")
            ])
        );
        assert!(find(&bindings, "system:node").get("subjects").is_none());
    }
}
