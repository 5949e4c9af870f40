//! What a request asks for: the resource path (group, version, namespace, resource, name, subresource) and
//! the query parameters of upstream's ListOptions / DeleteOptions / CreateOptions, parsed once at the edge.

use crate::apiserver::status::{ApiError, ApiResult};

/// A path under `/api` or `/apis`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Where a path points: discovery documents or a resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api`
    LegacyRoot,
    /// `/apis`
    GroupsRoot,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    GroupVersion(String, String),
    Resource(ResourcePath),
}

/// Namespace subresources: `/api/v1/namespaces/<name>/status` names the namespace itself.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses a request path (without the query string).
pub fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(Target::LegacyRoot),
        ["apis"] => return Some(Target::GroupsRoot),
        ["apis", g] => return Some(Target::Group((*g).to_string())),
        ["api", v] => return Some(Target::GroupVersion(String::new(), (*v).to_string())),
        ["apis", g, v] => return Some(Target::GroupVersion((*g).to_string(), (*v).to_string())),
        ["api", v, rest @ ..] => (String::new(), (*v).to_string(), rest),
        ["apis", g, v, rest @ ..] => ((*g).to_string(), (*v).to_string(), rest),
        _ => return None,
    };
    let mut rp = ResourcePath {
        group,
        version,
        ..Default::default()
    };
    let mut rest: &[&str] = rest;
    if rest.len() >= 3 && rest[0] == "namespaces" && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
        rp.namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    match rest {
        [r] => rp.resource = (*r).to_string(),
        [r, n] => {
            rp.resource = (*r).to_string();
            rp.name = Some((*n).to_string());
        }
        [r, n, s, ..] => {
            rp.resource = (*r).to_string();
            rp.name = Some((*n).to_string());
            rp.subresource = Some((*s).to_string());
        }
        _ => return None,
    }
    Some(Target::Resource(rp))
}

/// How `resourceVersionMatch` asks to interpret `resourceVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RvMatch {
    Unset,
    NotOlderThan,
    Exact,
}

/// Upstream's query parameters, as far as the registry uses them.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub watch: bool,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<RvMatch>,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// PATCH `force` (server-side apply takes conflicting fields); `Some` whenever given.
    pub force: Option<bool>,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub include_object: Option<String>,
    pub pretty: bool,
    pub field_validation: FieldValidation,
    /// `container` of pods/log, exec and attach.
    pub container: Option<String>,
    /// The query as sent (pods/log passes its options on to the kubelet).
    pub raw: String,
}

/// The longest `timeoutSeconds` honoured (ten years): past it a deadline could overflow.
pub const MAX_TIMEOUT_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// What to do with unknown fields in a request body (`fieldValidation`); upstream's default is Warn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value {v:?} for query parameter {name}"
        ))),
    }
}

fn parse_int<T: std::str::FromStr>(name: &str, v: &str) -> ApiResult<T> {
    v.parse::<T>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid value {v:?} for query parameter {name}: not an integer"
        ))
    })
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        q.raw = raw.to_string();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            let v = v.as_ref();
            match k.as_ref() {
                "watch" => q.watch = parse_bool("watch", v)?,
                "labelSelector" => q.label_selector = Some(v.to_string()),
                "fieldSelector" => q.field_selector = Some(v.to_string()),
                "resourceVersion" => q.resource_version = Some(v.to_string()),
                "resourceVersionMatch" => {
                    q.resource_version_match = Some(match v {
                        "" => RvMatch::Unset,
                        "NotOlderThan" => RvMatch::NotOlderThan,
                        "Exact" => RvMatch::Exact,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                            )))
                        }
                    })
                }
                // Upstream treats a limit of zero or less as no limit.
                "limit" => q.limit = usize::try_from(parse_int::<i64>("limit", v)?).unwrap_or(0),
                "continue" if !v.is_empty() => q.continue_token = Some(v.to_string()),
                // An int64 upstream: a negative timeout ends the watch at once (Go's timer fires
                // immediately), and a huge one is bounded so no deadline arithmetic can overflow.
                "timeoutSeconds" => {
                    let t = parse_int::<i64>("timeoutSeconds", v)?;
                    q.timeout_seconds = Some(t.clamp(0, MAX_TIMEOUT_SECONDS) as u64);
                }
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", v)?,
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool("sendInitialEvents", v)?),
                "dryRun" => {
                    if v == "All" {
                        q.dry_run = true
                    } else if !v.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: dryRun: Unsupported value: {v:?}: supported values: \"All\""
                        )));
                    }
                }
                "fieldManager" => q.field_manager = Some(v.to_string()),
                "force" => q.force = Some(parse_bool("force", v)?),
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_int("gracePeriodSeconds", v)?),
                "propagationPolicy" => q.propagation_policy = Some(v.to_string()),
                "includeObject" => q.include_object = Some(v.to_string()),
                "pretty" => q.pretty = parse_bool("pretty", v)?,
                "container" => q.container = Some(v.to_string()),
                "fieldValidation" => {
                    q.field_validation = match v {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                            )))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The requested resourceVersion as a number; `None` for unset or "". Upstream parses it as an
    /// unsigned integer (`strconv.ParseUint`), so `-5` is refused with Go's message, as its storage
    /// layer answers ("invalid resource version: ..."); one past i64 stands for "newer than any".
    pub fn resource_version_number(&self) -> ApiResult<Option<i64>> {
        match self.resource_version.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => match s.parse::<u64>() {
                Ok(n) => Ok(Some(i64::try_from(n).unwrap_or(i64::MAX))),
                Err(e) => {
                    let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    };
                    Err(ApiError::bad_request(format!(
                        "invalid resource version: resourceVersion: Invalid value: {s:?}: strconv.ParseUint: parsing {s:?}: {why}"
                    )))
                }
            },
        }
    }

    /// Upstream's `validateWatchOptions` for `resourceVersionMatch` (v1.33, WatchList enabled): on a
    /// watch it is only allowed as `NotOlderThan` together with `sendInitialEvents`. A 422 naming every
    /// problem, as upstream's field.ErrorList does.
    pub fn validate_watch(&self) -> ApiResult<()> {
        let Some(m) = self.resource_version_match.filter(|m| *m != RvMatch::Unset) else {
            return Ok(());
        };
        let name = match m {
            RvMatch::Exact => "Exact",
            _ => "NotOlderThan",
        };
        let mut errs = Vec::new();
        if self.send_initial_events.is_some() && m != RvMatch::NotOlderThan {
            errs.push("resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_string());
        }
        if self.send_initial_events.is_none() {
            errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".to_string());
        }
        if m != RvMatch::NotOlderThan {
            errs.push(format!("resourceVersionMatch: Unsupported value: {name:?}: supported values: \"NotOlderThan\""));
        }
        if self.continue_token.is_some() {
            errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided".to_string());
        }
        let joined = match errs.len() {
            0 => return Ok(()),
            1 => errs.remove(0),
            _ => format!("[{}]", errs.join(", ")),
        };
        Err(ApiError::new(
            422,
            "Invalid",
            format!("ListOptions.meta.k8s.io \"\" is invalid: {joined}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_path(path) {
            Some(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("/api"), Some(Target::LegacyRoot));
        assert_eq!(parse_path("/apis/"), Some(Target::GroupsRoot));
        assert_eq!(parse_path("/apis/apps"), Some(Target::Group("apps".into())));
        assert_eq!(
            parse_path("/api/v1/"),
            Some(Target::GroupVersion("".into(), "v1".into()))
        );
        let r = res("/api/v1/namespaces/default/pods/x/status");
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("default"), "pods", Some("x"), Some("status"))
        );
        let r = res("/api/v1/namespaces/foo");
        assert_eq!(
            (r.namespace, r.resource.as_str(), r.name.as_deref()),
            (None, "namespaces", Some("foo"))
        );
        let r = res("/api/v1/namespaces/foo/finalize");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("foo"), Some("finalize"))
        );
        let r = res("/apis/apps/v1/namespaces/ns/deployments");
        assert_eq!(
            (r.group.as_str(), r.namespace.as_deref(), r.name),
            ("apps", Some("ns"), None)
        );
        let r = res("/api/v1/namespaces/ns/pods");
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_deref()),
            ("pods", Some("ns"))
        );
        assert_eq!(parse_path("/foo"), None);
    }

    #[test]
    fn query() {
        let q = Query::parse(Some(
            "watch=1&labelSelector=a%3Db&limit=500&continue=abc&dryRun=All",
        ))
        .unwrap();
        assert!(q.watch && q.dry_run);
        assert_eq!(q.label_selector.as_deref(), Some("a=b"));
        assert_eq!(q.limit, 500);
        assert!(Query::parse(Some("limit=x")).is_err());
        assert!(Query::parse(Some("dryRun=Some")).is_err());
        let q = Query::parse(Some("timeoutSeconds=-3&limit=-1")).unwrap();
        assert_eq!((q.timeout_seconds, q.limit), (Some(0), 0));
        let q = Query::parse(Some("timeoutSeconds=9223372036854775807")).unwrap();
        assert_eq!(q.timeout_seconds, Some(MAX_TIMEOUT_SECONDS as u64));
        let e = Query::parse(Some("resourceVersion=-5"))
            .unwrap()
            .resource_version_number()
            .unwrap_err();
        assert_eq!(e.message, "invalid resource version: resourceVersion: Invalid value: \"-5\": strconv.ParseUint: parsing \"-5\": invalid syntax");
        let e = Query::parse(Some("watch=1&resourceVersionMatch=Exact"))
            .unwrap()
            .validate_watch()
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (422, "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided, resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]"));
        let q = Query::parse(Some("fieldManager=m&force=true")).unwrap();
        assert_eq!(
            (q.field_manager.as_deref(), q.force),
            (Some("m"), Some(true))
        );
    }
}
