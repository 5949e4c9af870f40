//! The audit policy (`audit.k8s.io/v1` `Policy`, read from `--audit-policy-file`) and upstream's
//! checker (`apiserver/pkg/audit/policy/checker.go`): the first rule that matches a request decides its
//! level and the stages left out; no rule matching means `None` (not logged).

use serde::{Deserialize, Serialize};

use crate::apiserver::authz::{Attributes, User};

/// How much of a request is logged (upstream's `audit.Level`), in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// When in a request's life an event is written (upstream's `audit.Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

/// One `resources` entry of a rule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule of the policy (upstream's `PolicyRule`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub level: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<String>,
}

/// A checked policy: rules with their levels and stages parsed.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: Vec<(Rule, Level, Vec<Stage>)>,
    omit_stages: Vec<Stage>,
}

/// What the policy says of one request: its level and the stages not to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
}

fn parse_level(s: &str) -> Option<Level> {
    Some(match s {
        "None" => Level::None,
        "Metadata" => Level::Metadata,
        "Request" => Level::Request,
        "RequestResponse" => Level::RequestResponse,
        _ => return None,
    })
}

fn parse_stages(field: &str, stages: &[String], errors: &mut Vec<String>) -> Vec<Stage> {
    let mut out = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        match s.as_str() {
            "RequestReceived" => out.push(Stage::RequestReceived),
            "ResponseStarted" => out.push(Stage::ResponseStarted),
            "ResponseComplete" => out.push(Stage::ResponseComplete),
            "Panic" => out.push(Stage::Panic),
            _ => errors.push(format!(
                "{field}[{i}]: Unsupported value: {s:?}: supported values: \"RequestReceived\", \"ResponseStarted\", \"ResponseComplete\", \"Panic\""
            )),
        }
    }
    out
}

impl Policy {
    /// Reads and checks a policy file (YAML or JSON); the error names the file and every problem, as
    /// upstream refuses to start on a bad policy.
    pub fn load(path: &std::path::Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading audit policy file {}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("audit policy file {}: {e}", path.display()))
    }

    /// Parses and validates a policy (upstream's `validation.ValidatePolicy`, and its reader's refusal of
    /// a policy without rules).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let doc: Document =
            serde_yaml::from_str(text).map_err(|e| format!("failed decoding: {e}"))?;
        if doc.kind != "Policy" || doc.api_version != "audit.k8s.io/v1" {
            return Err(format!(
                "expected kind \"Policy\" of apiVersion \"audit.k8s.io/v1\", got kind {:?} of apiVersion {:?}",
                doc.kind, doc.api_version
            ));
        }
        if doc.rules.is_empty() {
            return Err("loaded illegal policy with 0 rules".into());
        }
        let mut errors = Vec::new();
        let omit_stages = parse_stages("omitStages", &doc.omit_stages, &mut errors);
        let mut rules = Vec::new();
        for (i, rule) in doc.rules.into_iter().enumerate() {
            let field = format!("rules[{i}]");
            let level = parse_level(&rule.level);
            if level.is_none() {
                errors.push(format!(
                    "{field}.level: Unsupported value: {:?}: supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\"",
                    rule.level
                ));
            }
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                errors.push(format!(
                    "{field}.nonResourceURLs: Invalid value: {:?}: rules cannot apply to both regular resources and non-resource URLs",
                    rule.non_resource_urls
                ));
            }
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                let f = format!("{field}.nonResourceURLs[{j}]");
                if url.is_empty() {
                    errors.push(format!("{f}: Required value"));
                } else if url != "*" && !url.starts_with('/') {
                    errors.push(format!(
                        "{f}: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"
                    ));
                } else if url.find('*').is_some_and(|k| k != url.len() - 1) {
                    errors.push(format!(
                        "{f}: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"
                    ));
                }
            }
            for (j, gr) in rule.resources.iter().enumerate() {
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    errors.push(format!(
                        "{field}.resources[{j}].resourceNames: Invalid value: {:?}: using resourceNames requires at least one resource",
                        gr.resource_names
                    ));
                }
            }
            let stages = parse_stages(
                &format!("{field}.omitStages"),
                &rule.omit_stages,
                &mut errors,
            );
            rules.push((rule, level.unwrap_or(Level::None), stages));
        }
        if !errors.is_empty() {
            return Err(format!("invalid audit policy: [{}]", errors.join(", ")));
        }
        Ok(Policy { rules, omit_stages })
    }

    /// The first matching rule's level, with the policy's and that rule's omitted stages; `None` when
    /// no rule matches (upstream's `EvaluatePolicyRule`).
    pub fn evaluate(&self, user: &User, attrs: &Attributes) -> Evaluation {
        for (rule, level, stages) in &self.rules {
            if rule_matches(rule, user, attrs) {
                let mut omit = self.omit_stages.clone();
                omit.extend(stages.iter().filter(|s| !self.omit_stages.contains(s)));
                return Evaluation {
                    level: *level,
                    omit_stages: omit,
                };
            }
        }
        Evaluation {
            level: Level::None,
            omit_stages: self.omit_stages.clone(),
        }
    }
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn rule_matches(r: &Rule, user: &User, attrs: &Attributes) -> bool {
    if !r.users.is_empty() && !has(&r.users, &user.name) {
        return false;
    }
    if !r.user_groups.is_empty() && !user.groups.iter().any(|g| has(&r.user_groups, g)) {
        return false;
    }
    if !r.verbs.is_empty() && !has(&r.verbs, &attrs.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return matches_resource(r, attrs);
    }
    if !r.non_resource_urls.is_empty() {
        return !attrs.resource_request
            && r.non_resource_urls.iter().any(|spec| {
                spec == "*"
                    || *spec == attrs.path
                    || spec
                        .strip_suffix('*')
                        .is_some_and(|prefix| attrs.path.starts_with(prefix))
            });
    }
    true
}

fn matches_resource(r: &Rule, attrs: &Attributes) -> bool {
    if !attrs.resource_request {
        return false;
    }
    // A "" entry matches cluster-scoped requests, as upstream's.
    if !r.namespaces.is_empty() && !has(&r.namespaces, &attrs.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = attrs.combined_resource();
    for gr in r.resources.iter().filter(|gr| gr.group == attrs.api_group) {
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !has(&gr.resource_names, &attrs.name) {
            continue;
        }
        for res in &gr.resources {
            if *res == combined || res == "*" {
                return true;
            }
            if !attrs.subresource.is_empty() && res.strip_prefix("*/") == Some(&attrs.subresource) {
                return true;
            }
            if res.strip_suffix("/*") == Some(attrs.resource.as_str()) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            namespace: ns.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
- level: None
  verbs: [get]
  resources: [{group: "", resources: [events]}]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
  omitStages: [ResponseStarted]
- level: Request
  resources: [{group: "", resources: ["pods/log", "*/status"]}]
- level: Metadata
  resources: [{group: "apps", resources: ["deployments"], resourceNames: [web]}]
- level: None
  nonResourceURLs: ["/healthz*", /version]
- level: Metadata
  userGroups: ["system:authenticated"]
"#;

    #[test]
    fn first_matching_rule_wins() {
        let p = Policy::parse(POLICY).unwrap();
        let alice = User::new("alice", vec!["system:authenticated".into()]);
        let proxy = User::new("system:kube-proxy", vec!["system:authenticated".into()]);
        let cm = attrs("create", "", "configmaps", "", "ns", "c");
        assert_eq!(p.evaluate(&alice, &cm).level, Level::RequestResponse);
        assert_eq!(
            p.evaluate(&alice, &cm).omit_stages,
            vec![Stage::RequestReceived, Stage::ResponseStarted]
        );
        // The earlier None rule for the user wins over the configmaps rule.
        assert_eq!(p.evaluate(&proxy, &cm).level, Level::None);
        let ev = attrs("get", "", "events", "", "ns", "e");
        assert_eq!(p.evaluate(&alice, &ev).level, Level::None);
        let ev_list = attrs("list", "", "events", "", "ns", "");
        assert_eq!(p.evaluate(&alice, &ev_list).level, Level::Metadata);
        assert_eq!(
            p.evaluate(&alice, &attrs("get", "", "pods", "log", "ns", "p"))
                .level,
            Level::Request
        );
        assert_eq!(
            p.evaluate(&alice, &attrs("update", "", "pods", "status", "ns", "p"))
                .level,
            Level::Request
        );
        // resourceNames: only `web` matches that rule; the others fall to the group rule.
        let web = attrs("get", "apps", "deployments", "", "ns", "web");
        assert_eq!(p.evaluate(&alice, &web).level, Level::Metadata);
        let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
        let other = attrs("get", "apps", "deployments", "", "ns", "other");
        assert_eq!(p.evaluate(&anonymous, &web).level, Level::Metadata);
        assert_eq!(p.evaluate(&anonymous, &other).level, Level::None);
        let healthz = Attributes::for_path(&http::Method::GET, "/healthz/etcd");
        assert_eq!(p.evaluate(&alice, &healthz).level, Level::None);
        let api = Attributes::for_path(&http::Method::GET, "/api");
        assert_eq!(p.evaluate(&alice, &api).level, Level::Metadata);
        assert_eq!(p.evaluate(&anonymous, &api).level, Level::None);
    }

    #[test]
    fn bad_policies_are_refused() {
        let e =
            Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").unwrap_err();
        assert!(e.contains("0 rules"), "{e}");
        let e = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("rules[0].level: Unsupported value: \"Everything\""),
            "{e}"
        );
        let e = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: [\"/a*b\"], omitStages: [Later]}]\n",
        )
        .unwrap_err();
        assert!(e.contains("wildcards"), "{e}");
        assert!(e.contains("rules[0].omitStages[0]"), "{e}");
        let e = Policy::parse(
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
        )
        .unwrap_err();
        assert!(e.contains("audit.k8s.io/v1"), "{e}");
    }
}
