//! Impersonation (`kubectl --as bob --as-group devs`): the `Impersonate-User`, `Impersonate-Group`,
//! `Impersonate-Uid` and `Impersonate-Extra-<key>` headers make a request act as someone else, once the
//! real requester may `impersonate` each of them (users, groups, serviceaccounts, uids, userextras), as
//! upstream's impersonation filter does.

use http::HeaderMap;

use crate::apiserver::authz::{Attributes, Authorizer, User, ALL_AUTHENTICATED};
use crate::apiserver::status::{ApiError, ApiResult};

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const ANONYMOUS: &str = "system:anonymous";
const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";

/// One thing a request asks to act as.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Target {
    /// What the requester must be allowed to `impersonate` for this target.
    fn attributes(&self) -> Attributes {
        let (group, resource, subresource, namespace, name) = match self {
            Target::User(n) => ("", "users", "", "", n.as_str()),
            Target::ServiceAccount { namespace, name } => {
                ("", "serviceaccounts", "", namespace.as_str(), name.as_str())
            }
            Target::Group(n) => ("", "groups", "", "", n.as_str()),
            Target::Extra { key, value } => (
                "authentication.k8s.io",
                "userextras",
                key.as_str(),
                "",
                value.as_str(),
            ),
            Target::Uid(u) => ("authentication.k8s.io", "uids", "", "", u.as_str()),
        };
        Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            namespace: namespace.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
            ..Default::default()
        }
    }
}

/// `system:serviceaccount:<ns>:<name>` → (ns, name).
pub fn split_service_account(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':'))
        .then(|| (ns.to_string(), name.to_string()))
}

/// Go's `%v` of the requests, for the "without impersonating a user" error.
fn describe(targets: &[Target]) -> String {
    let items: Vec<String> = targets
        .iter()
        .map(|t| match t {
            Target::Group(n) => format!("{{Group  {n}    }}"),
            Target::Extra { key, value } => {
                format!("{{UserExtra  {value}  authentication.k8s.io/v1  {key}}}")
            }
            Target::Uid(u) => format!("{{UID  {u}  authentication.k8s.io/v1  }}"),
            Target::User(n) => format!("{{User  {n}    }}"),
            Target::ServiceAccount { namespace, name } => {
                format!("{{ServiceAccount {namespace} {name}    }}")
            }
        })
        .collect();
    format!("[{}]", items.join(" "))
}

fn targets(headers: &HeaderMap) -> ApiResult<Vec<Target>> {
    let mut out = Vec::new();
    let user = headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !user.is_empty() {
        out.push(match split_service_account(user) {
            Some((namespace, name)) => Target::ServiceAccount { namespace, name },
            None => Target::User(user.to_string()),
        });
    }
    for g in headers.get_all(GROUP_HEADER) {
        if let Ok(g) = g.to_str() {
            out.push(Target::Group(g.to_string()));
        }
    }
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        let key = percent_decode(key);
        if let Ok(value) = value.to_str() {
            out.push(Target::Extra {
                key,
                value: value.to_string(),
            });
        }
    }
    if let Some(uid) = headers
        .get(UID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|u| !u.is_empty())
    {
        out.push(Target::Uid(uid.to_string()));
    }
    if user.is_empty() && !out.is_empty() {
        return Err(ApiError::internal(format!(
            "requested {} without impersonating a user",
            describe(&out)
        )));
    }
    Ok(out)
}

/// Extra keys travel percent-encoded in header names (upstream's `unescapeExtraKey`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// The user the request acts as: `requester` itself without impersonation headers, otherwise the
/// impersonated identity, once every part of it is authorized. 403 (upstream's message) when not.
pub fn resolve(authorizer: &Authorizer, requester: User, headers: &HeaderMap) -> ApiResult<User> {
    let targets = targets(headers)?;
    if targets.is_empty() {
        return Ok(requester);
    }
    let groups_given = targets.iter().any(|t| matches!(t, Target::Group(_)));
    let mut user = User::default();
    for target in &targets {
        match target {
            Target::User(n) => user.name = n.clone(),
            Target::ServiceAccount { namespace, name } => {
                user.name = format!("system:serviceaccount:{namespace}:{name}");
                if !groups_given {
                    user.groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Target::Group(g) => user.groups.push(g.clone()),
            Target::Extra { key, value } => user
                .extra
                .entry(key.clone())
                .or_default()
                .push(value.clone()),
            Target::Uid(u) => user.uid = Some(u.clone()),
        }
        let attrs = target.attributes();
        let decision = authorizer.authorize(&requester, &attrs);
        if !decision.allowed {
            return Err(attrs.forbidden(&requester.name, &decision.reason));
        }
    }
    if user.name != ANONYMOUS {
        if !user
            .groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            user.groups.push(ALL_AUTHENTICATED.into());
        }
    } else if !user.in_group(ALL_UNAUTHENTICATED) {
        user.groups.push(ALL_UNAUTHENTICATED.into());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_targets() {
        let mut h = HeaderMap::new();
        h.insert(
            USER_HEADER,
            "system:serviceaccount:team:ci".parse().unwrap(),
        );
        h.append(GROUP_HEADER, "devs".parse().unwrap());
        h.append(GROUP_HEADER, "ops".parse().unwrap());
        h.insert("impersonate-extra-scopes%2fx", "a".parse().unwrap());
        let t = targets(&h).unwrap();
        assert_eq!(
            t,
            vec![
                Target::ServiceAccount {
                    namespace: "team".into(),
                    name: "ci".into()
                },
                Target::Group("devs".into()),
                Target::Group("ops".into()),
                Target::Extra {
                    key: "scopes/x".into(),
                    value: "a".into()
                },
            ]
        );
        let mut only_group = HeaderMap::new();
        only_group.insert(GROUP_HEADER, "devs".parse().unwrap());
        let err = targets(&only_group).unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains("without impersonating a user"));
    }

    #[test]
    fn forbidden_impersonation_reads_as_upstream() {
        let attrs = Target::User("bob".into()).attributes();
        let e = attrs.forbidden("alice", "");
        assert_eq!(
            e.message,
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let path = Attributes::for_path(&http::Method::GET, "/metrics");
        assert_eq!(
            path.forbidden("bob", "").message,
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
    }
}
