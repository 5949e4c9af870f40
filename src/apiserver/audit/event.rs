//! The `audit.k8s.io/v1` `Event` as upstream serializes it: the fields in its Go struct's order, empty
//! optional ones left out, timestamps as `MicroTime` (RFC 3339 with microseconds, UTC).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::policy::{Level, Stage};
use crate::apiserver::authz::{Attributes, User};

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    /// Always present (upstream's field has no `omitempty`).
    pub user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UserInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            username: u.name.clone(),
            uid: u.uid.clone().unwrap_or_default(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// The object a resource request is about (upstream's `ObjectReference`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

impl ObjectRef {
    /// A resource request's reference (upstream's `LogRequestMetadata`); none for other requests.
    pub fn of(attrs: &Attributes) -> Option<ObjectRef> {
        attrs.resource_request.then(|| ObjectRef {
            resource: attrs.resource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            api_group: attrs.api_group.clone(),
            api_version: attrs.api_version.clone(),
            subresource: attrs.subresource.clone(),
            ..Default::default()
        })
    }

    /// Fills what the URL did not say from the request's object (a create's name), as upstream's
    /// `LogRequestObject` does.
    pub fn fill_from(&mut self, obj: &Value) {
        let meta = |k: &str| {
            obj.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        for (field, key) in [
            (&mut self.namespace, "namespace"),
            (&mut self.name, "name"),
            (&mut self.uid, "uid"),
            (&mut self.resource_version, "resourceVersion"),
        ] {
            if field.is_empty() {
                *field = meta(key);
            }
        }
    }
}

/// Upstream's `MicroTime` text: `2006-01-02T15:04:05.000000Z`.
pub fn micro_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The `responseStatus` of a response: the code alone for a success, upstream's bounded copy of the
/// `Status` (status, message, reason, details, code) for a failure.
pub fn response_status(code: u16, failure: Option<&crate::apiserver::status::ApiError>) -> Value {
    let mut s = serde_json::Map::new();
    s.insert("metadata".into(), Value::Object(Default::default()));
    if let Some(e) = failure {
        s.insert("status".into(), "Failure".into());
        if !e.message.is_empty() {
            s.insert("message".into(), e.message.clone().into());
        }
        if !e.reason.is_empty() {
            s.insert("reason".into(), e.reason.into());
        }
        if let Some(d) = &e.details {
            s.insert("details".into(), d.clone());
        }
    }
    s.insert("code".into(), code.into());
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_has_upstreams_shape() {
        let attrs = Attributes {
            verb: "create".into(),
            resource_request: true,
            api_version: "v1".into(),
            namespace: "ns".into(),
            resource: "configmaps".into(),
            ..Default::default()
        };
        let mut object_ref = ObjectRef::of(&attrs).unwrap();
        object_ref.fill_from(&serde_json::json!({"metadata": {"name": "c"}}));
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 1_234_000).unwrap();
        let event = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::Metadata,
            audit_id: "id".into(),
            stage: Stage::ResponseComplete,
            request_uri: "/api/v1/namespaces/ns/configmaps".into(),
            verb: "create".into(),
            user: UserInfo::from(&User::new("alice", vec!["system:authenticated".into()])),
            impersonated_user: None,
            source_ips: vec!["127.0.0.1".into()],
            user_agent: String::new(),
            object_ref: Some(object_ref),
            response_status: Some(response_status(201, None)),
            request_object: None,
            response_object: None,
            request_received_timestamp: micro_time(t),
            stage_timestamp: micro_time(t),
            annotations: [(
                "authorization.k8s.io/decision".to_string(),
                "allow".to_string(),
            )]
            .into(),
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns/configmaps","verb":"create","user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["127.0.0.1"],"objectRef":{"resource":"configmaps","namespace":"ns","name":"c","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2023-11-14T22:13:20.001234Z","stageTimestamp":"2023-11-14T22:13:20.001234Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#
        );
        let forbidden = crate::apiserver::status::ApiError::new(403, "Forbidden", "no");
        assert_eq!(
            response_status(403, Some(&forbidden)),
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "no", "reason": "Forbidden", "code": 403})
        );
    }
}
