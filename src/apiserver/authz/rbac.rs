//! RBAC as upstream evaluates it: ClusterRoleBindings first, then the RoleBindings of the request's
//! namespace; a binding applies when one of its subjects names the user, one of the user's groups, or the
//! user's service account; the first rule of the bound role that allows the request decides.
//!
//! The same rule resolution answers SelfSubjectRulesReview (`kubectl auth can-i --list`) and the
//! escalation check: a user may only write a Role (or bind one) whose permissions they already hold,
//! unless they may `escalate` (or `bind`) it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::apiserver::authz::{Attributes, Decision, User, RBAC_GROUP};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::registry::watch_cache::ResourceCache;

/// One rule of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl PolicyRule {
    pub fn from_value(v: &Value) -> Self {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn list_of(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(PolicyRule::from_value).collect())
            .unwrap_or_default()
    }

    /// Upstream's `RuleAllows`.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !has_or_star(&self.verbs, &attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return self
                .non_resource_urls
                .iter()
                .any(|u| url_matches(u, &attrs.path));
        }
        let combined = attrs.combined_resource();
        has_or_star(&self.api_groups, &attrs.api_group)
            && self.resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!attrs.subresource.is_empty()
                        && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
            })
            && (self.resource_names.is_empty() || self.resource_names.contains(&attrs.name))
    }

    /// Upstream's `BreakdownRule`: one rule per group × resource × verb (× name), and per URL × verb.
    fn breakdown(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let one = |names: Vec<String>| PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: names,
                        non_resource_urls: vec![],
                    };
                    if self.resource_names.is_empty() {
                        out.push(one(vec![]));
                    } else {
                        out.extend(self.resource_names.iter().map(|n| one(vec![n.clone()])));
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(PolicyRule {
                    verbs: vec![verb.clone()],
                    non_resource_urls: vec![url.clone()],
                    ..Default::default()
                });
            }
        }
        out
    }

    /// Upstream's `ruleCovers`: whether this rule grants everything `sub` (one broken-down rule) does.
    fn covers(&self, sub: &PolicyRule) -> bool {
        let verbs = has_star_or_all(&self.verbs, &sub.verbs);
        let groups = has_star_or_all(&self.api_groups, &sub.api_groups);
        let resources = self.resources.iter().any(|r| r == "*")
            || sub.resources.iter().all(|r| {
                self.resources.contains(r)
                    || r.split_once('/')
                        .is_some_and(|(_, s)| self.resources.contains(&format!("*/{s}")))
            });
        let urls = sub
            .non_resource_urls
            .iter()
            .all(|u| self.non_resource_urls.iter().any(|o| url_matches(o, u)));
        let names = self.resource_names.is_empty()
            || (!sub.resource_names.is_empty()
                && sub
                    .resource_names
                    .iter()
                    .all(|n| self.resource_names.contains(n)));
        verbs && groups && resources && names && urls
    }

    /// Upstream's `CompactString`, as escalation errors print a rule.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |label: &str, list: &[String]| {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", go_quoted(list)));
            }
        };
        add("APIGroups", &self.api_groups);
        add("Resources", &self.resources);
        add("NonResourceURLs", &self.non_resource_urls);
        add("ResourceNames", &self.resource_names);
        add("Verbs", &self.verbs);
        format!("{{{}}}", parts.join(", "))
    }
}

fn has_or_star(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

fn has_star_or_all(owner: &[String], wanted: &[String]) -> bool {
    owner.iter().any(|x| x == "*") || wanted.iter().all(|w| owner.contains(w))
}

/// A non-resource URL rule: exact, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// The rules of `requested` that `owner` does not grant, broken down and then compacted as upstream
/// prints them (sorted descriptions).
pub fn missing_rights(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<String> {
    let missing: Vec<PolicyRule> = requested
        .iter()
        .flat_map(PolicyRule::breakdown)
        .filter(|sub| !owner.iter().any(|o| o.covers(sub)))
        .collect();
    // CompactRules: simple resource rules (one group, one resource, at most one name) merge their verbs.
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut other: Vec<PolicyRule> = Vec::new();
    for rule in missing {
        let is_simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty();
        if !is_simple {
            other.push(rule);
            continue;
        }
        match simple.iter_mut().find(|s| {
            s.api_groups == rule.api_groups
                && s.resources == rule.resources
                && s.resource_names == rule.resource_names
        }) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    let descriptions: BTreeSet<String> = other
        .iter()
        .chain(simple.iter())
        .map(PolicyRule::compact_string)
        .collect();
    descriptions.into_iter().collect()
}

/// The RBAC objects parsed once, valid while the four resources stay at the revisions in `key`: every
/// authorization reads this instead of parsing roles and bindings again.
pub struct Snapshot {
    key: [i64; 4],
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    /// By (namespace, name).
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_role_bindings: Vec<Binding>,
    /// By namespace.
    role_bindings: HashMap<String, Vec<Binding>>,
}

/// A ClusterRoleBinding or RoleBinding, parsed once: whom it names, and the rules of the role it
/// points at (resolved when the snapshot is built; the snapshot is rebuilt when any role changes).
struct Binding {
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    name: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
    /// `None`: the role does not exist, and the binding grants nothing.
    rules: Option<Arc<Vec<PolicyRule>>>,
}

struct Subject {
    kind: String,
    name: String,
    /// A ServiceAccount's namespace (the binding's when the subject names none).
    namespace: String,
    /// A ServiceAccount's user name, `system:serviceaccount:<ns>:<name>` (empty without a namespace).
    service_account_user: String,
}

impl Binding {
    fn parse(binding: &Value, rules: Option<Arc<Vec<PolicyRule>>>) -> Self {
        let namespace = text(binding, "/metadata/namespace").to_string();
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| {
                let kind = text(s, "/kind").to_string();
                let name = text(s, "/name").to_string();
                let ns = match text(s, "/namespace") {
                    "" => namespace.as_str(),
                    n => n,
                };
                let service_account_user = if kind == "ServiceAccount" && !ns.is_empty() {
                    format!("system:serviceaccount:{ns}:{name}")
                } else {
                    String::new()
                };
                Subject {
                    kind,
                    name,
                    namespace: ns.to_string(),
                    service_account_user,
                }
            })
            .collect();
        Binding {
            name: text(binding, "/metadata/name").to_string(),
            role_kind: text(binding, "/roleRef/kind").to_string(),
            role_name: text(binding, "/roleRef/name").to_string(),
            namespace,
            subjects,
            rules,
        }
    }
}

/// The latest snapshot, kept by the [`super::Authorizer`].
#[derive(Default)]
pub struct SnapshotCache(std::sync::Mutex<Option<Arc<Snapshot>>>);

/// In the order of [`Snapshot::key`].
const RESOURCES: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

impl Snapshot {
    fn build(key: [i64; 4], objects: [Vec<Arc<Value>>; 4]) -> Self {
        let [cluster_roles, roles, cluster_role_bindings, role_bindings] = objects;
        let cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>> = cluster_roles
            .iter()
            .map(|r| {
                let name = text(r, "/metadata/name").to_string();
                (name, Arc::new(PolicyRule::list_of(r)))
            })
            .collect();
        let roles: HashMap<(String, String), Arc<Vec<PolicyRule>>> = roles
            .iter()
            .map(|r| {
                let ns = text(r, "/metadata/namespace").to_string();
                let name = text(r, "/metadata/name").to_string();
                ((ns, name), Arc::new(PolicyRule::list_of(r)))
            })
            .collect();
        let mut snapshot = Snapshot {
            key,
            cluster_roles,
            roles,
            cluster_role_bindings: Vec::new(),
            role_bindings: HashMap::new(),
        };
        let parse = |b: &Value| {
            let rules = b.get("roleRef").and_then(|r| {
                snapshot
                    .role_ref_rules(r, text(b, "/metadata/namespace"))
                    .ok()
            });
            Binding::parse(b, rules)
        };
        let cluster: Vec<Binding> = cluster_role_bindings.iter().map(|b| parse(b)).collect();
        let mut by_namespace: HashMap<String, Vec<Binding>> = HashMap::new();
        for rb in &role_bindings {
            let binding = parse(rb);
            by_namespace
                .entry(binding.namespace.clone())
                .or_default()
                .push(binding);
        }
        snapshot.cluster_role_bindings = cluster;
        snapshot.role_bindings = by_namespace;
        snapshot
    }

    /// The rules a roleRef points at, or upstream's not-found text.
    fn role_ref_rules(&self, role_ref: &Value, ns: &str) -> Result<Arc<Vec<PolicyRule>>, String> {
        let name = text(role_ref, "/name");
        match text(role_ref, "/kind") {
            "ClusterRole" => self
                .cluster_roles
                .get(name)
                .cloned()
                .ok_or_else(|| format!("clusterroles.{RBAC_GROUP} {name:?} not found")),
            "Role" => self
                .roles
                .get(&(ns.to_string(), name.to_string()))
                .cloned()
                .ok_or_else(|| format!("roles.{RBAC_GROUP} {name:?} not found")),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }
}

/// The RBAC objects as the watch cache holds them right now.
pub struct Rbac {
    snapshot: Arc<Snapshot>,
}

/// Where an allowing rule came from, in upstream's words (`ClusterRoleBinding "x" of ClusterRole "y" to
/// Group "z"`).
fn describe_binding(binding: &Binding, subject: &Subject) -> String {
    let (ns, name) = (&binding.namespace, &binding.name);
    let (role_kind, role_name) = (&binding.role_kind, &binding.role_name);
    let subject_kind = &subject.kind;
    let subject_name = if subject.kind == "ServiceAccount" {
        format!("{}/{}", subject.name, subject.namespace)
    } else {
        subject.name.clone()
    };
    if ns.is_empty() {
        format!("ClusterRoleBinding {name:?} of {role_kind} {role_name:?} to {subject_kind} {subject_name:?}")
    } else {
        format!(
            "RoleBinding {:?} of {role_kind} {role_name:?} to {subject_kind} {subject_name:?}",
            format!("{name}/{ns}")
        )
    }
}

/// Upstream's `appliesToUser`.
fn subject_applies(subject: &Subject, user: &User) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            !subject.service_account_user.is_empty() && user.name == subject.service_account_user
        }
        _ => false,
    }
}

impl Rbac {
    /// The current snapshot: the kept one while no RBAC object changed since, else a fresh one.
    pub fn from_cache(registry: &Registry, kept: &SnapshotCache) -> Self {
        let caches = RESOURCES.map(|plural| -> Option<(String, Arc<ResourceCache>)> {
            let info = registry.catalog.find(RBAC_GROUP, "v1", plural)?;
            let cache = registry.cache.resource(&info.storage_prefix)?;
            Some((info.storage_prefix, cache))
        });
        let mut key = [0i64; 4];
        for (k, c) in key.iter_mut().zip(&caches) {
            *k = c.as_ref().map_or(0, |(_, cache)| cache.revision());
        }
        let mut kept = kept.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = kept.as_ref().filter(|s| s.key == key) {
            return Rbac {
                snapshot: snapshot.clone(),
            };
        }
        let objects = caches.map(|c| match c {
            Some((prefix, cache)) => cache.list(&prefix, 0).0,
            None => Vec::new(),
        });
        let snapshot = Arc::new(Snapshot::build(key, objects));
        *kept = Some(snapshot.clone());
        Rbac { snapshot }
    }

    /// The rules a roleRef points at, or upstream's not-found text.
    pub fn role_ref_rules(
        &self,
        role_ref: &Value,
        ns: &str,
    ) -> Result<Arc<Vec<PolicyRule>>, String> {
        self.snapshot.role_ref_rules(role_ref, ns)
    }

    /// Visits the rules that apply to `user` in `namespace` (cluster-wide ones first), each with the
    /// binding and subject that grant it; stops when `visit` returns false.
    fn visit(
        &self,
        user: &User,
        namespace: &str,
        mut visit: impl FnMut(&Binding, &Subject, &PolicyRule) -> bool,
    ) {
        let local = if namespace.is_empty() {
            None
        } else {
            self.snapshot.role_bindings.get(namespace)
        };
        let bindings = self
            .snapshot
            .cluster_role_bindings
            .iter()
            .chain(local.into_iter().flatten());
        for binding in bindings {
            let Some(rules) = &binding.rules else {
                continue;
            };
            let Some(subject) = binding.subjects.iter().find(|s| subject_applies(s, user)) else {
                continue;
            };
            for rule in rules.iter() {
                if !visit(binding, subject, rule) {
                    return;
                }
            }
        }
    }

    pub fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let mut decision = Decision {
            allowed: false,
            reason: String::new(),
        };
        self.visit(user, &attrs.namespace, |binding, subject, rule| {
            if rule.allows(attrs) {
                decision = Decision {
                    allowed: true,
                    reason: format!("RBAC: allowed by {}", describe_binding(binding, subject)),
                };
                return false;
            }
            true
        });
        decision
    }

    /// Every rule that applies to `user` in `namespace` (upstream's `RulesFor`).
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit(user, namespace, |_, _, rule| {
            rules.push(rule.clone());
            true
        });
        rules
    }

    /// Upstream's `ConfirmNoEscalation`: Err with its message when `requested` grants more than the user
    /// holds in `namespace`.
    pub fn confirm_no_escalation(
        &self,
        user: &User,
        namespace: &str,
        requested: &[PolicyRule],
    ) -> Result<(), String> {
        let owned = self.rules_for(user, namespace);
        let missing = missing_rights(&owned, requested);
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            go_quoted(&user.groups),
            missing.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_value(&v)
    }

    fn resource(verb: &str, group: &str, res: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_allow_as_upstream() {
        let pods =
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
        assert!(pods.allows(&resource("get", "", "pods", "", "p")));
        assert!(!pods.allows(&resource("delete", "", "pods", "", "p")));
        // a resource rule does not reach subresources
        assert!(!pods.allows(&resource("get", "", "pods", "log", "p")));
        let logs = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}));
        assert!(logs.allows(&resource("get", "", "pods", "log", "p")));
        let named = rule(
            json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}),
        );
        assert!(named.allows(&resource("patch", "apps", "deployments", "", "web")));
        assert!(!named.allows(&resource("list", "apps", "deployments", "", "")));
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*", "/version"]}));
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(urls.allows(&path("/apis/apps/v1")));
        assert!(urls.allows(&path("/version")));
        assert!(!urls.allows(&path("/api")));
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let user = User::new(
            "system:serviceaccount:team:builder",
            vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
        );
        // A subject as a binding in namespace `ns` names it.
        let applies = |subject: Value, ns: &str| {
            let b = Binding::parse(
                &json!({"metadata": {"namespace": ns}, "subjects": [subject]}),
                None,
            );
            subject_applies(&b.subjects[0], &user)
        };
        assert!(applies(
            json!({"kind": "ServiceAccount", "name": "builder"}),
            "team"
        ));
        assert!(!applies(
            json!({"kind": "ServiceAccount", "name": "builder"}),
            "other"
        ));
        assert!(!applies(
            json!({"kind": "ServiceAccount", "name": "builder"}),
            ""
        ));
        assert!(applies(
            json!({"kind": "ServiceAccount", "name": "builder", "namespace": "team"}),
            ""
        ));
        assert!(applies(
            json!({"kind": "Group", "name": "system:serviceaccounts"}),
            ""
        ));
        assert!(!applies(json!({"kind": "User", "name": "builder"}), "team"));
    }

    #[test]
    fn escalation_lists_missing_rights_compacted_and_sorted() {
        let owner = vec![rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}),
        )];
        let requested = vec![
            rule(
                json!({"verbs": ["get", "list", "delete", "create"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})),
        ];
        assert_eq!(
            missing_rights(&owner, &requested),
            vec![
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete" "create"]}"#,
                r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
            ]
        );
        let star = vec![rule(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
        )];
        assert!(missing_rights(&star, &requested[..1]).is_empty());
        // named grants cover only those names; a subresource wildcard covers that subresource
        let named = vec![rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"], "resourceNames": ["a"]}),
        )];
        let want = vec![rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"], "resourceNames": ["a"]}),
        )];
        assert!(missing_rights(&named, &want).is_empty());
        let unnamed = vec![rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]}),
        )];
        assert_eq!(missing_rights(&named, &unnamed).len(), 1);
    }

    #[test]
    fn allowing_bindings_are_described_as_upstream() {
        let crb = Binding::parse(
            &json!({"metadata": {"name": "cluster-admin"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                    "subjects": [{"kind": "Group", "name": "system:masters"}]}),
            None,
        );
        assert_eq!(
            describe_binding(&crb, &crb.subjects[0]),
            r#"ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
        );
        let rb = Binding::parse(
            &json!({"metadata": {"name": "rb", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "r"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
            None,
        );
        assert_eq!(
            describe_binding(&rb, &rb.subjects[0]),
            r#"RoleBinding "rb/team" of Role "r" to ServiceAccount "sa/team""#
        );
    }
}
