//! One handler per verb on a resource's collection or object, over the generic store: list (and
//! watch), get, create, update, patch, delete, deletecollection. Each negotiates its answer's form,
//! checks the resource has the verb, decodes the body and encodes the store's answer.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::apiserver::admission;
use crate::apiserver::authz::{self, User};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::decode::{delete_options, read_body, typed_body};
use crate::apiserver::http::handlers::App;
use crate::apiserver::http::negotiate::{
    encode_list, encode_object, json_response, negotiate, with_warnings, Output,
};
use crate::apiserver::http::request::Query;
use crate::apiserver::http::watch::watch_response;
use crate::apiserver::registry::managed_fields::manager_name;
use crate::apiserver::registry::patch::PatchType;
use crate::apiserver::registry::store::{Deleted, Ownership, PatchOptions, WriteHooks};
use crate::apiserver::status::{ApiError, ApiResult};

/// A request on one resource, as the verb handlers see it.
pub(crate) struct Call<'a> {
    pub app: &'a App,
    pub info: &'a ResourceInfo,
    pub headers: &'a HeaderMap,
    pub ns: Option<&'a str>,
    /// `status` or `finalize`, for writes to those subresources.
    pub sub: Option<&'a str>,
    pub q: &'a Query,
    pub user: Option<&'a User>,
    /// Whether the kind has a protobuf form (custom resources have none).
    pub protobuf: bool,
    /// What admission warned about, for the answer's `Warning` headers.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

impl Call<'_> {
    /// 405 unless the resource serves `verb`.
    fn need(&self, verb: &str) -> ApiResult<()> {
        if self.info.has_verb(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_supported(self.info, verb))
        }
    }

    fn output(&self) -> ApiResult<Output> {
        negotiate(self.headers, self.protobuf)
    }

    /// The field manager a write records: `?fieldManager=` or one derived from the user agent.
    fn manager(&self) -> String {
        manager_name(
            self.q.field_manager.as_deref(),
            self.headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        )
    }

    /// The answer to a write: 201 when it created the object, else 200, with the decoder's and
    /// admission's warnings.
    fn written(&self, out: Output, obj: &Value, created: bool, warnings: &[String]) -> Response {
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut all = warnings.to_vec();
        all.extend(self.take_warnings());
        with_warnings(encode_object(status, out, self.info, obj, self.q), &all)
    }

    /// Admission's warnings, sent with the response.
    fn keep_warnings(&self, warnings: Vec<String>) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(warnings);
    }

    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The admission attributes of this request's write (an update when there is a stored object).
    fn attributes<'s>(&'s self, old: Option<&'s Value>) -> admission::Attributes<'s> {
        admission::Attributes {
            info: self.info,
            ns: self.ns,
            name: old
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(Value::as_str)
                .unwrap_or(""),
            sub: self.sub,
            op: if old.is_some() {
                admission::Operation::Update
            } else {
                admission::Operation::Create
            },
            user: self.user,
            authorizer: Some(&self.app.authorizer),
            dry_run: self.q.dry_run,
        }
    }

    /// RBAC's escalation check on a role or binding write (nothing for other kinds), run by the store
    /// on exactly the object it stores.
    fn escalation_check(&self, new: &Value, old: Option<&Value>) -> ApiResult<()> {
        match self.user {
            Some(user) => {
                authz::escalation::check(&self.app.authorizer, user, self.info, self.ns, new, old)
            }
            None => Ok(()),
        }
    }
}

/// The store runs the request's checks and admission on the object it writes.
#[async_trait::async_trait]
impl WriteHooks for Call<'_> {
    fn check(&self, new: &Value, old: Option<&Value>) -> ApiResult<()> {
        self.escalation_check(new, old)
    }

    async fn admit(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let mut warnings = Vec::new();
        let chain = &self.app.admission;
        let result = chain
            .admit(
                &self.app.registry,
                &self.attributes(old),
                obj,
                old,
                &mut warnings,
            )
            .await;
        self.keep_warnings(warnings);
        result
    }

    async fn validate(&self, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let mut warnings = Vec::new();
        let chain = &self.app.admission;
        let result = chain
            .validate(
                &self.app.registry,
                &self.attributes(old),
                obj,
                old,
                &mut warnings,
            )
            .await;
        self.keep_warnings(warnings);
        result
    }
}

/// GET on a collection: a list, or a watch with `?watch=true`.
pub(crate) async fn list(call: &Call<'_>) -> ApiResult<Response> {
    let out = call.output()?;
    let reg = &call.app.registry;
    if call.q.watch {
        call.need("watch")?;
        return watch_response(reg, call.info, call.ns, call.q, out).await;
    }
    call.need("list")?;
    let l = reg.list(call.info, call.ns, call.q).await?;
    Ok(encode_list(out, call.info, &l, call.q))
}

/// GET on an object: the object, or a watch of it with `?watch=true`.
pub(crate) async fn get(call: &Call<'_>, name: &str) -> ApiResult<Response> {
    let out = call.output()?;
    let reg = &call.app.registry;
    if call.q.watch {
        call.need("watch")?;
        let mut q = call.q.clone();
        let sel = format!("metadata.name={name}");
        q.field_selector = Some(match q.field_selector.as_deref() {
            Some(f) if !f.is_empty() => format!("{f},{sel}"),
            _ => sel,
        });
        return watch_response(reg, call.info, call.ns, &q, out).await;
    }
    call.need("get")?;
    let obj = reg.get(call.info, call.ns, name).await?;
    Ok(encode_object(StatusCode::OK, out, call.info, &obj, call.q))
}

/// POST on a collection.
pub(crate) async fn create(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    call.need("create")?;
    let out = call.output()?;
    let bytes = read_body(body).await?;
    let (obj, warnings) = typed_body(call.info, call.headers, &bytes, call.q).await?;
    let manager = call.manager();
    let created = call
        .app
        .registry
        .create_checked(
            call.info,
            call.ns,
            obj,
            call.q.dry_run,
            Ownership::Update(&manager),
            Some(call),
        )
        .await?;
    Ok(call.written(out, &created, true, &warnings))
}

/// PUT on an object (or its status/finalize subresource); creates where the kind allows.
pub(crate) async fn update(call: &Call<'_>, name: &str, body: Body) -> ApiResult<Response> {
    call.need("update")?;
    let out = call.output()?;
    let bytes = read_body(body).await?;
    let (obj, warnings) = typed_body(call.info, call.headers, &bytes, call.q).await?;
    let manager = call.manager();
    let (obj, created) = call
        .app
        .registry
        .update_checked(
            call.info,
            call.ns,
            name,
            obj,
            call.sub,
            call.q.dry_run,
            Ownership::Update(&manager),
            Some(call),
        )
        .await?;
    Ok(call.written(out, &obj, created, &warnings))
}

/// PATCH on an object (JSON, merge, strategic merge patch, or server-side apply).
pub(crate) async fn patch(call: &Call<'_>, name: &str, body: Body) -> ApiResult<Response> {
    call.need("patch")?;
    let out = call.output()?;
    let ct = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"))
    })?;
    if kind == PatchType::Strategic && call.info.custom().is_some() {
        // Custom resources have no Go struct to take patch strategies from (upstream's message).
        return Err(ApiError::new(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
    }
    let bytes = read_body(body).await?;
    let manager = call.manager();
    // RBAC's escalation check and admission run on the patched object inside the guarded write.
    let opts = PatchOptions {
        manager: &manager,
        force: call.q.force,
        check: Some(call),
    };
    let (obj, warnings, created) = call
        .app
        .registry
        .patch_as(
            call.info, call.ns, name, kind, &bytes, call.sub, call.q, &opts,
        )
        .await?;
    Ok(call.written(out, &obj, created, &warnings))
}

/// DELETE on an object: the object while finalizers or a grace period hold it, then the deleted
/// object or a success Status, as the kind's strategy says.
pub(crate) async fn delete(call: &Call<'_>, name: &str, body: Body) -> ApiResult<Response> {
    call.need("delete")?;
    let out = call.output()?;
    let opts = delete_options(call.headers, body, call.q).await?;
    let info = call.info;
    let a = admission::Attributes {
        name,
        op: admission::Operation::Delete,
        ..call.attributes(None)
    };
    call.app
        .admission
        .admit_delete(&call.app.registry, &a)
        .await?;
    match call.app.registry.delete(info, call.ns, name, &opts).await? {
        Deleted::Pending(obj) => Ok(encode_object(StatusCode::OK, out, info, &obj, call.q)),
        Deleted::Gone(obj) if info.strategy.returns_deleted_object() => {
            Ok(encode_object(StatusCode::OK, out, info, &obj, call.q))
        }
        Deleted::Gone(obj) => {
            let mut details = json!({"name": name, "kind": info.plural, "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""))});
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
    }
}

/// DELETE on a collection.
pub(crate) async fn delete_collection(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    call.need("deletecollection")?;
    let out = call.output()?;
    let opts = delete_options(call.headers, body, call.q).await?;
    let l = call
        .app
        .registry
        .delete_collection(call.info, call.ns, call.q, &opts)
        .await?;
    Ok(encode_list(out, call.info, &l, call.q))
}
