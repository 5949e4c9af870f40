//! Jobs and CronJobs (upstream's `pkg/registry/batch/job/strategy.go`, `cronjob/strategy.go`).

use serde_json::{json, Value};

use super::{reset_status, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::workloads;
use crate::apiserver::status::Cause;

/// Jobs: a selector of their own uid unless `manualSelector`, and a template that is fixed once the
/// Job runs.
pub struct Jobs;

impl Strategy for Jobs {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Job
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::job_defaults(obj);
    }
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value) {
        reset_status(info, obj);
        job_selector(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::job(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::job_update(new, old, causes);
    }
}

/// CronJobs: a schedule and a Job template.
pub struct CronJobs;

impl Strategy for CronJobs {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::CronJob
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::cron_job(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::cron_job(obj, causes);
    }
}

/// Jobs get a selector of their own uid and the matching template labels, unless `manualSelector`.
fn job_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert(json!({}));
    if !template.get("metadata").is_some_and(Value::is_object) {
        template["metadata"] = json!({});
    }
    let meta = &mut template["metadata"];
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    let labels = &mut meta["labels"];
    labels["batch.kubernetes.io/controller-uid"] = uid.clone();
    labels["batch.kubernetes.io/job-name"] = name.clone();
    labels["controller-uid"] = uid;
    labels["job-name"] = name;
}
