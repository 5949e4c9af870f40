//! The apps and batch workloads (and ReplicationControllers): selectors, templates, strategies, immutability.
//!
//! Ports upstream v1.33's `pkg/apis/apps/validation`, `pkg/apis/batch/validation`, the
//! ReplicationController part of `pkg/apis/core/validation`, the label-selector rules of
//! `apimachinery/pkg/apis/meta/v1/validation`, and the selector-immutability checks the apps
//! registry strategies add on update. Messages are upstream's; where upstream prints a Go value
//! (`%#v` of a struct, map or slice) the same rendering is produced, e.g.
//! `v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`.
//! Values upstream can only print with a pointer address are rendered as close as possible.
//!
//! Validation runs after defaulting. Where a field upstream always defaults is nevertheless
//! missing, the default is assumed rather than reported, so a client never gets an error upstream
//! could not produce. Update checks compare values semantically: absent, null, empty and zero
//! values are alike, so a no-op update (kubectl apply/label/annotate/scale sending the object
//! back) is never rejected.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::apiserver::registry::validation::fields::label_selector_causes;
use crate::apiserver::registry::validation::pod::validate_pod_spec;
use crate::apiserver::registry::validation::{
    is_dns1123_label, label_value_errors, name_errors, qualified_name_errors, NameRule,
};
use crate::apiserver::status::Cause;

const NEGATIVE: &str = "must be greater than or equal to 0";
const MISMATCH: &str = "`selector` does not match template `labels`";
const IMMUTABLE: &str = "field is immutable";
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const STS_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
/// Upstream's `apimachinery/pkg/util/validation.TotalAnnotationSizeLimitB`.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// The apps strategies add `ValidateImmutableField(spec.selector)` for apps/v1 (Deployments,
/// ReplicaSets, DaemonSets).
///
/// Upstream's RS/DS/STS/Job/RC strategies validate the spec twice on update, so their causes
/// list each spec error twice; kubectl prints them once and the Status message (ToAggregate)
/// lists them once. The repetition is not reproduced: status.rs does not deduplicate messages.
pub fn selector_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (n, o) = (spec_field(new, "selector"), spec_field(old, "selector"));
    if !same(n, o) {
        causes.push(invalid_raw("spec.selector", &go_selector(n), IMMUTABLE));
    }
}

/// StatefulSet updates may change only a few spec fields.
pub fn stateful_set_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if sts_fixed_spec(new) != sts_fixed_spec(old) {
        causes.push(Cause::forbidden("spec", STS_FORBIDDEN));
    }
}

/// A ControllerRevision's `data` is immutable.
pub fn controller_revision_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (n, o) = (get(Some(new), "data"), get(Some(old), "data"));
    if !same(n, o) {
        causes.push(invalid_raw("data", &go_raw_object(n), IMMUTABLE));
    }
}

// ---------------------------------------------------------------------------------------------------------
// JSON access: null is absent
// ---------------------------------------------------------------------------------------------------------

fn get<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    v.and_then(|v| v.get(key)).filter(|x| !x.is_null())
}

fn get_str<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

fn get_int(v: Option<&Value>, key: &str) -> Option<i64> {
    get(v, key).and_then(as_int)
}

fn obj_of(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn arr_of(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn spec_field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    get(get(Some(obj), "spec"), key)
}

fn labels_of(template: Option<&Value>) -> Option<&Value> {
    get(get(template, "metadata"), "labels")
}

/// Upstream's `ValidateNonnegativeField` on `v[key]`, when set.
fn nonneg(v: Option<&Value>, key: &str, field: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = get_int(v, key) {
        if n < 0 {
            causes.push(Cause::invalid(field, &json!(n), NEGATIVE));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Causes with values printed as Go prints them
// ---------------------------------------------------------------------------------------------------------

/// `Invalid value: <shown>[: detail]` with `shown` already rendered.
fn invalid_raw(field: &str, shown: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        format!("Invalid value: {shown}")
    } else {
        format!("Invalid value: {shown}: {detail}")
    };
    Cause {
        reason: "FieldValueInvalid",
        message,
        field: field.into(),
    }
}

fn invalid_str(field: &str, value: &str, detail: &str) -> Cause {
    invalid_raw(field, &go_quote(value), detail)
}

/// `field.Invalid(path, field.OmitValueType{}, detail)`: no value shown.
fn invalid_omit(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {detail}"),
        field: field.into(),
    }
}

fn unsupported_raw(field: &str, shown: &str, supported: &[&str]) -> Cause {
    let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    Cause {
        reason: "FieldValueNotSupported",
        message: format!(
            "Unsupported value: {shown}: supported values: {}",
            quoted.join(", ")
        ),
        field: field.into(),
    }
}

fn unsupported_str(field: &str, value: &str, supported: &[&str]) -> Cause {
    unsupported_raw(field, &go_quote(value), supported)
}

/// Go's `strconv.Quote` (what `%q` and `%#v` print for strings).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn str_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A scalar as a field error prints it: strings quoted, numbers bare, absent as `null`.
fn go_scalar(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => go_quote(s),
        Some(other) => other.to_string(),
    }
}

/// `%#v` of a `map[string]string` (keys sorted, as Go's fmt does).
fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut entries: Vec<(&String, String)> =
                m.iter().map(|(k, v)| (k, str_value(v))).collect();
            entries.sort();
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
    }
}

fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(a) => {
            let parts: Vec<String> = a.iter().map(|x| go_quote(&str_value(x))).collect();
            format!("[]string{{{}}}", parts.join(", "))
        }
    }
}

fn go_int32_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]int32(nil)".into(),
        Some(a) => {
            let parts: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            format!("[]int32{{{}}}", parts.join(", "))
        }
    }
}

/// `%#v` of a `metav1.LabelSelector`.
fn go_label_selector(sel: &Value) -> String {
    let exprs = match get(Some(sel), "matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(get_str(Some(e), "key").unwrap_or("")),
                        go_quote(get_str(Some(e), "operator").unwrap_or("")),
                        go_string_slice(get(Some(e), "values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(get(Some(sel), "matchLabels")),
        exprs
    )
}

/// A `*metav1.LabelSelector` field: `null` when unset.
fn go_selector(sel: Option<&Value>) -> String {
    sel.map_or_else(|| "null".into(), go_label_selector)
}

/// `%#v` of an `intstr.IntOrString`.
fn go_intstr(v: &Value) -> String {
    match v {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            as_int(other).unwrap_or(0)
        ),
    }
}

/// A pointer field inside a struct printed with `%#v`: `(*T)(nil)` or an address.
fn go_ptr(ty: &str, present: bool) -> String {
    if present {
        format!("(*{ty})(0xc000010000)")
    } else {
        format!("(*{ty})(nil)")
    }
}

/// `%#v` of an update strategy struct: `{Type:"…", RollingUpdate:(*…)(…)}`.
fn go_strategy(ty: &str, strategy: Option<&Value>, rolling_ty: &str) -> String {
    format!(
        "{ty}{{Type:{}, RollingUpdate:{}}}",
        go_quote(get_str(strategy, "type").unwrap_or("")),
        go_ptr(rolling_ty, get(strategy, "rollingUpdate").is_some())
    )
}

/// A `runtime.Object` decoded from raw JSON (ControllerRevision data).
fn go_raw_object(v: Option<&Value>) -> String {
    let Some(v) = v else { return "null".into() };
    let raw = serde_json::to_string(v).unwrap_or_default();
    let bytes: Vec<String> = raw.bytes().map(|b| format!("0x{b:x}")).collect();
    format!(
        "runtime.Unknown{{TypeMeta:runtime.TypeMeta{{APIVersion:\"\", Kind:\"\"}}, Raw:[]uint8{{{}}}, ContentEncoding:\"\", ContentType:\"application/json\"}}",
        bytes.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------------------
// Label selectors (metav1.LabelSelector)
// ---------------------------------------------------------------------------------------------------------

enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// Upstream's `labels.Selector` as `LabelSelectorAsSelector` builds it.
enum Selector {
    /// A nil selector: matches nothing.
    Nothing,
    /// An empty selector: matches everything.
    Everything,
    Requirements(Vec<Requirement>),
}

impl Selector {
    fn is_empty(&self) -> bool {
        matches!(self, Selector::Everything)
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Everything => true,
            Selector::Requirements(reqs) => reqs.iter().all(|r| {
                let value = labels.and_then(|l| l.get(&r.key)).map(str_value);
                let listed = value
                    .as_deref()
                    .is_some_and(|v| r.values.iter().any(|x| x == v));
                match r.op {
                    Op::In => listed,
                    Op::NotIn => !listed,
                    Op::Exists => value.is_some(),
                    Op::DoesNotExist => value.is_none(),
                }
            }),
        }
    }
}

/// Upstream's `ValidateLabelSelector` (label values validated strictly) for the selector at `path`.
fn selector_problems(sel: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    label_selector_causes(sel, path, &mut out);
    out
}

fn selector_is_empty(sel: &Value) -> bool {
    obj_of(get(Some(sel), "matchLabels")).is_none_or(Map::is_empty)
        && arr_of(get(Some(sel), "matchExpressions")).is_empty()
}

/// Upstream's `LabelSelectorAsSelector`: `None` when the selector does not convert.
fn as_selector(sel: Option<&Value>) -> Option<Selector> {
    let Some(sel) = sel else {
        return Some(Selector::Nothing);
    };
    if !selector_problems(sel, "").is_empty() {
        return None;
    }
    if selector_is_empty(sel) {
        return Some(Selector::Everything);
    }
    let mut reqs = Vec::new();
    for (k, v) in obj_of(get(Some(sel), "matchLabels")).into_iter().flatten() {
        reqs.push(Requirement {
            key: k.clone(),
            op: Op::In,
            values: vec![str_value(v)],
        });
    }
    for e in arr_of(get(Some(sel), "matchExpressions")) {
        let op = match get_str(Some(e), "operator").unwrap_or("") {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            _ => Op::DoesNotExist,
        };
        reqs.push(Requirement {
            key: get(Some(e), "key").map(str_value).unwrap_or_default(),
            op,
            values: arr_of(get(Some(e), "values"))
                .iter()
                .map(str_value)
                .collect(),
        });
    }
    Some(Selector::Requirements(reqs))
}

/// `spec.selector` of Deployments, ReplicaSets and StatefulSets: required, valid, non-empty.
fn required_selector(spec: Option<&Value>, kind: &str, causes: &mut Vec<Cause>) {
    match get(spec, "selector") {
        None => causes.push(Cause::required("spec.selector")),
        Some(sel) => {
            causes.extend(selector_problems(sel, "spec.selector"));
            if selector_is_empty(sel) {
                causes.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(sel),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
}

fn mismatch(template: Option<&Value>, path: &str) -> Cause {
    invalid_raw(
        &format!("{path}.metadata.labels"),
        &go_string_map(labels_of(template)),
        MISMATCH,
    )
}

// ---------------------------------------------------------------------------------------------------------
// Pod templates
// ---------------------------------------------------------------------------------------------------------

/// Upstream's `ValidateLabels` for a template's labels at `path`.
fn template_labels(labels: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    for (k, v) in obj_of(labels).into_iter().flatten() {
        for e in qualified_name_errors(k) {
            causes.push(invalid_str(path, k, &e));
        }
        let value = str_value(v);
        for e in label_value_errors(&value) {
            causes.push(invalid_str(path, &value, &e));
        }
    }
}

/// Upstream's `ValidateAnnotations` for a template's annotations at `path`.
fn template_annotations(annotations: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(ann) = obj_of(annotations) else {
        return;
    };
    let mut total = 0;
    for (k, v) in ann {
        for e in qualified_name_errors(&k.to_lowercase()) {
            causes.push(invalid_str(path, k, &e));
        }
        total += k.len() + str_value(v).len();
    }
    if total > ANNOTATIONS_LIMIT {
        causes.push(Cause::too_long(path, ANNOTATIONS_LIMIT));
    }
}

/// Upstream's `ValidatePodTemplateSpec` for the template at `path` (e.g. `spec.template`).
fn pod_template(template: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let meta = get(template, "metadata");
    template_labels(get(meta, "labels"), &format!("{path}.labels"), causes);
    template_annotations(
        get(meta, "annotations"),
        &format!("{path}.annotations"),
        causes,
    );
    let spec = get(template, "spec");
    validate_pod_spec(spec, &format!("{path}.spec"), causes);
    if !arr_of(get(spec, "ephemeralContainers")).is_empty() {
        causes.push(Cause::forbidden(
            &format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Controllers whose pods run forever: restartPolicy `Always`, no activeDeadlineSeconds.
fn always_restarts(template: Option<&Value>, kind: &str, causes: &mut Vec<Cause>) {
    let spec = get(template, "spec");
    // An absent policy is defaulted to Always upstream.
    let policy = get(spec, "restartPolicy").map_or_else(|| "Always".into(), str_value);
    if policy != "Always" {
        causes.push(unsupported_str(
            "spec.template.spec.restartPolicy",
            &policy,
            &["Always"],
        ));
    }
    if get(spec, "activeDeadlineSeconds").is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// Upstream's `ValidatePodTemplateSpecForReplicaSet` (Deployments and ReplicaSets).
fn replica_set_template(spec: Option<&Value>, sel: &Selector, causes: &mut Vec<Cause>) {
    let template = get(spec, "template");
    if !sel.is_empty() && !sel.matches(obj_of(labels_of(template))) {
        causes.push(mismatch(template, "spec.template"));
    }
    pod_template(template, "spec.template", causes);
    always_restarts(template, "ReplicaSet", causes);
}

// ---------------------------------------------------------------------------------------------------------
// Int-or-percent fields of rolling updates
// ---------------------------------------------------------------------------------------------------------

fn valid_percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(0))
}

/// Upstream's `getIntOrPercentValue`.
fn intstr_value(v: &Value) -> i64 {
    match v {
        Value::String(s) => valid_percent(s).unwrap_or_else(|| s.parse().unwrap_or(0)),
        other => as_int(other).unwrap_or(0),
    }
}

/// Upstream's `ValidatePositiveIntOrPercent`.
fn int_or_percent(v: &Value, field: &str, causes: &mut Vec<Cause>) {
    match v {
        Value::String(s) => {
            if valid_percent(s).is_none() {
                causes.push(invalid_raw(field, &go_intstr(v), PERCENT_MSG));
            }
        }
        Value::Number(_) => {
            let n = as_int(v).unwrap_or(0);
            if n < 0 {
                causes.push(Cause::invalid(field, &json!(n), NEGATIVE));
            }
        }
        _ => causes.push(invalid_raw(
            field,
            &go_intstr(v),
            "must be an integer or percentage (e.g '5%%')",
        )),
    }
}

/// Upstream's `IsNotMoreThan100Percent`.
fn not_over_100(v: &Value, field: &str, causes: &mut Vec<Cause>) {
    if let Value::String(s) = v {
        if valid_percent(s).is_some_and(|p| p > 100) {
            causes.push(invalid_raw(
                field,
                &go_intstr(v),
                "must not be greater than 100%",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Deployments and ReplicaSets
// ---------------------------------------------------------------------------------------------------------

pub fn deployment(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    nonneg(spec, "replicas", "spec.replicas", causes);
    required_selector(spec, "deployment", causes);
    let sel = get(spec, "selector");
    match as_selector(sel) {
        None => causes.push(invalid_raw(
            "spec.selector",
            &go_selector(sel),
            "invalid label selector",
        )),
        Some(s) => replica_set_template(spec, &s, causes),
    }
    deployment_strategy(get(spec, "strategy"), causes);
    nonneg(spec, "minReadySeconds", "spec.minReadySeconds", causes);
    nonneg(
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        causes,
    );
    if let Some(pds) = get_int(spec, "progressDeadlineSeconds") {
        nonneg(
            spec,
            "progressDeadlineSeconds",
            "spec.progressDeadlineSeconds",
            causes,
        );
        if pds <= get_int(spec, "minReadySeconds").unwrap_or(0) {
            causes.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                &json!(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn deployment_strategy(strategy: Option<&Value>, causes: &mut Vec<Cause>) {
    let ty = get(strategy, "type").map(str_value).unwrap_or_default();
    match ty.as_str() {
        "Recreate" => {
            if get(strategy, "rollingUpdate").is_some() {
                causes.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        // An empty type and missing rolling-update fields are defaulted upstream.
        "" | "RollingUpdate" => {
            let path = "spec.strategy.rollingUpdate";
            let ru = get(strategy, "rollingUpdate");
            let quarter = json!("25%");
            let mu = get(ru, "maxUnavailable").unwrap_or(&quarter);
            let ms = get(ru, "maxSurge").unwrap_or(&quarter);
            int_or_percent(mu, &format!("{path}.maxUnavailable"), causes);
            int_or_percent(ms, &format!("{path}.maxSurge"), causes);
            if intstr_value(mu) == 0 && intstr_value(ms) == 0 {
                causes.push(invalid_raw(
                    &format!("{path}.maxUnavailable"),
                    &go_intstr(mu),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            not_over_100(mu, &format!("{path}.maxUnavailable"), causes);
        }
        _ => causes.push(unsupported_raw(
            "spec.strategy",
            &go_strategy(
                "apps.DeploymentStrategy",
                strategy,
                "apps.RollingUpdateDeployment",
            ),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

pub fn replica_set(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    nonneg(spec, "replicas", "spec.replicas", causes);
    nonneg(spec, "minReadySeconds", "spec.minReadySeconds", causes);
    // Upstream's ReplicaSet message does say "deployment".
    required_selector(spec, "deployment", causes);
    let sel = get(spec, "selector");
    match as_selector(sel) {
        None => causes.push(invalid_raw(
            "spec.selector",
            &go_selector(sel),
            "invalid label selector",
        )),
        Some(s) => replica_set_template(spec, &s, causes),
    }
}

// ---------------------------------------------------------------------------------------------------------
// StatefulSets
// ---------------------------------------------------------------------------------------------------------

pub fn stateful_set(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    // An empty policy is defaulted to OrderedReady upstream.
    if let Some(pmp) = get(spec, "podManagementPolicy").map(str_value) {
        if !matches!(pmp.as_str(), "" | "OrderedReady" | "Parallel") {
            causes.push(invalid_str(
                "spec.podManagementPolicy",
                &pmp,
                "must be 'OrderedReady' or 'Parallel'",
            ));
        }
    }
    let strategy = get(spec, "updateStrategy");
    let ty = get(strategy, "type").map(str_value).unwrap_or_default();
    let rolling = get(strategy, "rollingUpdate");
    match ty.as_str() {
        "OnDelete" => {
            if let Some(ru) = rolling {
                causes.push(invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    &format!(
                        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)(nil)}}",
                        get_int(Some(ru), "partition").unwrap_or(0)
                    ),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "" | "RollingUpdate" => nonneg(
            rolling,
            "partition",
            "spec.updateStrategy.rollingUpdate.partition",
            causes,
        ),
        _ => causes.push(invalid_raw(
            "spec.updateStrategy",
            &go_strategy(
                "apps.StatefulSetUpdateStrategy",
                strategy,
                "apps.RollingUpdateStatefulSetStrategy",
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    let retention = get(spec, "persistentVolumeClaimRetentionPolicy");
    for key in ["whenDeleted", "whenScaled"] {
        // An empty policy is defaulted to Retain upstream.
        let policy = get(retention, key).map(str_value).unwrap_or_default();
        if !matches!(policy.as_str(), "" | "Retain" | "Delete") {
            causes.push(unsupported_str(
                &format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                &policy,
                &["Retain", "Delete"],
            ));
        }
    }
    nonneg(spec, "replicas", "spec.replicas", causes);
    nonneg(spec, "minReadySeconds", "spec.minReadySeconds", causes);
    nonneg(
        get(spec, "ordinals"),
        "start",
        "spec.ordinals.start",
        causes,
    );
    if let Some(service) = get_str(spec, "serviceName").filter(|s| !s.is_empty()) {
        for e in name_errors(service, NameRule::Label) {
            causes.push(invalid_str("spec.serviceName", service, &e));
        }
    }
    required_selector(spec, "statefulset", causes);
    let sel = get(spec, "selector");
    let template = get(spec, "template");
    match as_selector(sel) {
        None => causes.push(invalid_raw("spec.selector", &go_selector(sel), "")),
        Some(s) => {
            if !s.is_empty() && !s.matches(obj_of(labels_of(template))) {
                causes.push(mismatch(template, "spec.template"));
            }
            // v1.33 validates only the template's metadata for StatefulSets, not its pod spec.
            let meta = get(template, "metadata");
            template_labels(get(meta, "labels"), "spec.template.labels", causes);
            template_annotations(
                get(meta, "annotations"),
                "spec.template.annotations",
                causes,
            );
        }
    }
    always_restarts(template, "StatefulSet", causes);
}

/// The spec of a StatefulSet without the fields an update may change, defaults assumed, canonical.
fn sts_fixed_spec(obj: &Value) -> Option<Value> {
    let mut spec = get(Some(obj), "spec").cloned().unwrap_or_else(|| json!({}));
    let m = spec.as_object_mut()?;
    for k in [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ] {
        m.remove(k);
    }
    if m.get("podManagementPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        m.insert("podManagementPolicy".into(), json!("OrderedReady"));
    }
    if m.get("revisionHistoryLimit").is_none_or(Value::is_null) {
        m.insert("revisionHistoryLimit".into(), json!(10));
    }
    if let Some(vcts) = m
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for vct in vcts.iter_mut().filter(|v| v.is_object()) {
            if !vct.get("spec").is_some_and(Value::is_object) {
                vct["spec"] = json!({});
            }
            if vct["spec"].get("volumeMode").is_none_or(Value::is_null) {
                vct["spec"]["volumeMode"] = json!("Filesystem");
            }
            if !vct.get("status").is_some_and(Value::is_object) {
                vct["status"] = json!({});
            }
            if vct["status"]
                .get("phase")
                .is_none_or(|p| p.is_null() || p == "")
            {
                vct["status"]["phase"] = json!("Pending");
            }
        }
    }
    canon(&spec)
}

// ---------------------------------------------------------------------------------------------------------
// DaemonSets
// ---------------------------------------------------------------------------------------------------------

pub fn daemon_set(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    let sel = get(spec, "selector");
    if let Some(s) = sel {
        causes.extend(selector_problems(s, "spec.selector"));
    }
    let template = get(spec, "template");
    if let Some(s) = as_selector(sel) {
        if !s.matches(obj_of(labels_of(template))) {
            causes.push(mismatch(template, "spec.template"));
        }
    }
    if let Some(s) = sel.filter(|s| selector_is_empty(s)) {
        causes.push(invalid_raw(
            "spec.selector",
            &go_label_selector(s),
            "empty selector is invalid for daemonset",
        ));
    }
    pod_template(template, "spec.template", causes);
    always_restarts(template, "DaemonSet", causes);
    nonneg(spec, "minReadySeconds", "spec.minReadySeconds", causes);
    daemon_set_strategy(get(spec, "updateStrategy"), causes);
    nonneg(
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        causes,
    );
}

fn daemon_set_strategy(strategy: Option<&Value>, causes: &mut Vec<Cause>) {
    let ty = get(strategy, "type").map(str_value).unwrap_or_default();
    match ty.as_str() {
        "OnDelete" => {}
        // An empty type and a missing rollingUpdate (1 unavailable, 0 surge) are defaulted upstream.
        "" | "RollingUpdate" => {
            let path = "spec.updateStrategy.rollingUpdate";
            let ru = get(strategy, "rollingUpdate");
            let (one, zero) = (json!(1), json!(0));
            let mu = get(ru, "maxUnavailable").unwrap_or(&one);
            let ms = get(ru, "maxSurge").unwrap_or(&zero);
            let (mu_path, ms_path) = (format!("{path}.maxUnavailable"), format!("{path}.maxSurge"));
            int_or_percent(mu, &mu_path, causes);
            int_or_percent(ms, &ms_path, causes);
            not_over_100(mu, &mu_path, causes);
            not_over_100(ms, &ms_path, causes);
            match (intstr_value(mu) != 0, intstr_value(ms) != 0) {
                (true, true) => causes.push(invalid_raw(
                    &ms_path,
                    &go_intstr(ms),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => causes.push(Cause::required_detail(
                    &mu_path,
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        _ => causes.push(unsupported_raw(
            "spec.updateStrategy",
            &go_strategy(
                "apps.DaemonSetUpdateStrategy",
                strategy,
                "apps.RollingUpdateDaemonSet",
            ),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------
// ReplicationControllers and ControllerRevisions
// ---------------------------------------------------------------------------------------------------------

pub fn replication_controller(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    nonneg(spec, "minReadySeconds", "spec.minReadySeconds", causes);
    let template = get(spec, "template");
    let labels = obj_of(labels_of(template));
    // Upstream defaults an empty selector to the template's labels.
    let selector = obj_of(get(spec, "selector"))
        .filter(|m| !m.is_empty())
        .or(labels)
        .cloned()
        .unwrap_or_default();
    if selector.is_empty() {
        causes.push(Cause::required("spec.selector"));
    }
    nonneg(spec, "replicas", "spec.replicas", causes);
    let Some(t) = template else {
        causes.push(Cause::required("spec.template"));
        return;
    };
    let matches = selector.iter().all(|(k, v)| {
        labels
            .and_then(|l| l.get(k))
            .is_some_and(|x| str_value(x) == str_value(v))
    });
    if !selector.is_empty() && !matches {
        causes.push(mismatch(template, "spec.template"));
    }
    pod_template(template, "spec.template", causes);
    if get_int(spec, "replicas").unwrap_or(1) > 1 {
        let volumes = arr_of(get(get(Some(t), "spec"), "volumes"));
        for (i, vol) in volumes.iter().enumerate() {
            let pd = get(Some(vol), "gcePersistentDisk");
            if pd.is_some() && get(pd, "readOnly") != Some(&json!(true)) {
                causes.push(Cause::invalid(
                    &format!("spec.template.spec.volumes[{i}].gcePersistentDisk.readOnly"),
                    &json!(false),
                    "must be true for replicated pods > 1; GCE PD can only be mounted on multiple machines if it is read-only",
                ));
            }
        }
    }
    always_restarts(template, "ReplicationController", causes);
}

pub fn controller_revision(obj: &Value, causes: &mut Vec<Cause>) {
    if get(Some(obj), "data").is_none() {
        causes.push(Cause::required_detail("data", "data is mandatory"));
    }
    nonneg(Some(obj), "revision", "revision", causes);
}

// ---------------------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------------------

const MAX_PARALLELISM_INDEXED: i64 = 100_000;
const MAX_FAILED_INDEXES: i64 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
const PARALLELISM_LIMIT_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_FAILED_INDEXES_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_POD_FAILURE_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
const MAX_POD_CONDITION_PATTERNS: usize = 20;
const MAX_MANAGED_BY: usize = 63;
const MAX_SUCCEEDED_INDEXES: usize = 64 * 1024;
const MAX_SUCCESS_RULES: usize = 20;

pub fn job(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    generated_selector(obj, spec, causes);
    job_spec_and_selector(spec, causes);
    let completions = get_int(spec, "completions").unwrap_or(0);
    if get_str(spec, "completionMode") == Some("Indexed") && completions > 0 {
        let name = get_str(get(Some(obj), "metadata"), "name").unwrap_or("");
        let hostname = format!("{name}-{}", completions - 1);
        if !is_dns1123_label(&hostname) {
            causes.push(invalid_str(
                "metadata.name",
                name,
                &format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
}

/// Upstream's `ValidateJobSpec`: the spec, a required selector, and the template it must select.
fn job_spec_and_selector(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    job_spec(spec, "spec", causes);
    let sel = get(spec, "selector");
    match sel {
        None => causes.push(Cause::required("spec.selector")),
        Some(s) => causes.extend(selector_problems(s, "spec.selector")),
    }
    let template = get(spec, "template");
    if let Some(s) = as_selector(sel) {
        if !s.matches(obj_of(labels_of(template))) {
            causes.push(mismatch(template, "spec.template"));
        }
    }
}

/// Upstream's `validateGeneratedSelector`: a generated selector and the labels it selects.
fn generated_selector(obj: &Value, spec: Option<&Value>, causes: &mut Vec<Cause>) {
    if get(spec, "manualSelector") == Some(&json!(true)) {
        return;
    }
    let Some(sel) = get(spec, "selector") else {
        return;
    };
    let meta = get(Some(obj), "metadata");
    let uid = get(meta, "uid").map(str_value).unwrap_or_default();
    let name = get(meta, "name").map(str_value).unwrap_or_default();
    if uid.is_empty() {
        causes.push(Cause::required("metadata.uid"));
    }
    let labels = labels_of(get(spec, "template"));
    let expected = [
        ("controller-uid", &uid),
        ("job-name", &name),
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
    ];
    for (key, want) in expected {
        let field = format!("spec.template.metadata.labels[{key}]");
        let detail = format!("must be '{want}'");
        match get(labels, key).map(str_value) {
            None => causes.push(Cause::required_detail(&field, &detail)),
            Some(v) if &v != want => {
                causes.push(invalid_raw(&field, &go_string_map(labels), &detail))
            }
            Some(_) => {}
        }
    }
    let expected: Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if let Some(s) = as_selector(Some(sel)) {
        if !s.matches(Some(&expected)) {
            causes.push(invalid_raw(
                "spec.selector",
                &go_label_selector(sel),
                "`selector` not auto-generated",
            ));
        }
    }
}

/// Upstream's `validateJobSpec` for a Job's spec or a CronJob's job template spec at `path`.
fn job_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonneg(spec, key, &format!("{path}.{key}"), causes);
    }
    let parallelism = get_int(spec, "parallelism");
    let completions = get_int(spec, "completions");
    let per_index = get_int(spec, "backoffLimitPerIndex");
    let max_failed = get_int(spec, "maxFailedIndexes");
    if max_failed.is_some() {
        nonneg(
            spec,
            "maxFailedIndexes",
            &format!("{path}.maxFailedIndexes"),
            causes,
        );
        if per_index.is_none() {
            causes.push(Cause::required_detail(
                &format!("{path}.backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(managed_by) = get(spec, "managedBy").map(str_value) {
        managed_by_problems(&managed_by, &format!("{path}.managedBy"), causes);
    }
    let mode = get(spec, "completionMode").map(str_value);
    let indexed = mode.as_deref() == Some("Indexed");
    if let Some(mode) = &mode {
        if mode != "NonIndexed" && mode != "Indexed" {
            causes.push(unsupported_str(
                &format!("{path}.completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
    }
    if indexed {
        if completions.is_none() {
            causes.push(Cause::required_detail(
                &format!("{path}.completions"),
                "when completion mode is Indexed",
            ));
        }
        if let Some(p) = parallelism.filter(|p| *p > MAX_PARALLELISM_INDEXED) {
            causes.push(Cause::invalid(
                &format!("{path}.parallelism"),
                &json!(p),
                &format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
            ));
        }
        if let (Some(c), Some(m)) = (completions, max_failed) {
            if m > c {
                causes.push(Cause::invalid(
                    &format!("{path}.maxFailedIndexes"),
                    &json!(m),
                    "must be less than or equal to completions",
                ));
            }
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
            causes.push(Cause::invalid(
                &format!("{path}.maxFailedIndexes"),
                &json!(m),
                &format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
            ));
        }
        if completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) && per_index.is_some() {
            let suffix = format!(
                "when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
            );
            if max_failed.is_none() {
                causes.push(Cause::required_detail(
                    &format!("{path}.maxFailedIndexes"),
                    &format!(
                        "must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"
                    ),
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > PARALLELISM_LIMIT_HIGH_COMPLETIONS) {
                causes.push(Cause::invalid(
                    &format!("{path}.parallelism"),
                    &json!(p),
                    &format!(
                        "must be less than or equal to {PARALLELISM_LIMIT_HIGH_COMPLETIONS} {suffix}"
                    ),
                ));
            }
            if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_HIGH_COMPLETIONS) {
                causes.push(Cause::invalid(
                    &format!("{path}.maxFailedIndexes"),
                    &json!(m),
                    &format!(
                        "must be less than or equal to {MAX_FAILED_INDEXES_HIGH_COMPLETIONS} {suffix}"
                    ),
                ));
            }
        }
    } else if mode.as_deref().is_none_or(|m| m == "NonIndexed") {
        if let Some(b) = per_index {
            causes.push(Cause::invalid(
                &format!("{path}.backoffLimitPerIndex"),
                &json!(b),
                "requires indexed completion mode",
            ));
        }
        if let Some(m) = max_failed {
            causes.push(Cause::invalid(
                &format!("{path}.maxFailedIndexes"),
                &json!(m),
                "requires indexed completion mode",
            ));
        }
    }
    let template = get(spec, "template");
    let failure_policy = get(spec, "podFailurePolicy");
    if let Some(pfp) = failure_policy {
        pod_failure_policy(
            pfp,
            template,
            per_index.is_some(),
            &format!("{path}.podFailurePolicy"),
            causes,
        );
    }
    if let Some(sp) = get(spec, "successPolicy") {
        let sp_path = format!("{path}.successPolicy");
        if indexed {
            success_policy(sp, completions, &sp_path, causes);
        } else {
            causes.push(invalid_raw(
                &sp_path,
                &go_success_policy(sp),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(prp) = get(spec, "podReplacementPolicy").map(str_value) {
        let field = format!("{path}.podReplacementPolicy");
        if failure_policy.is_some() {
            if prp != "Failed" {
                causes.push(unsupported_str(&field, &prp, &["Failed"]));
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            causes.push(unsupported_str(
                &field,
                &prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template_path = format!("{path}.template");
    pod_template(template, &template_path, causes);
    let policy_field = format!("{template_path}.spec.restartPolicy");
    // An absent policy is defaulted to Always upstream.
    let policy =
        get(get(template, "spec"), "restartPolicy").map_or_else(|| "Always".into(), str_value);
    match policy.as_str() {
        "Always" | "" => causes.push(Cause::required_detail(
            &policy_field,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {
            if failure_policy.is_some() && policy != "Never" {
                causes.push(invalid_str(
                    &policy_field,
                    &policy,
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => causes.push(unsupported_str(
            &policy_field,
            other,
            &["OnFailure", "Never"],
        )),
    }
}

/// Upstream's `IsDomainPrefixedPath` plus the 63-character limit, for `managedBy`.
fn managed_by_problems(value: &str, field: &str, causes: &mut Vec<Cause>) {
    if value.is_empty() {
        causes.push(Cause::required(field));
    } else {
        match value.split_once('/') {
            Some((host, path)) if !host.is_empty() && !path.is_empty() => {
                for e in name_errors(host, NameRule::Subdomain) {
                    causes.push(invalid_str(field, host, &e));
                }
                let path_ok = path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
                if !path_ok {
                    causes.push(invalid_str(
                        field,
                        path,
                        "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                    ));
                }
            }
            _ => causes.push(invalid_str(
                field,
                value,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )),
        }
    }
    if value.len() > MAX_MANAGED_BY {
        causes.push(Cause::too_long(field, MAX_MANAGED_BY));
    }
}

fn pod_failure_policy(
    pfp: &Value,
    template: Option<&Value>,
    has_per_index: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    const ACTIONS: [&str; 4] = ["Count", "FailIndex", "FailJob", "Ignore"];
    let rules_path = format!("{path}.rules");
    let rules = arr_of(get(Some(pfp), "rules"));
    if rules.len() > MAX_POD_FAILURE_RULES {
        causes.push(Cause::too_many(
            &rules_path,
            rules.len(),
            MAX_POD_FAILURE_RULES,
        ));
    }
    let tspec = get(template, "spec");
    let names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| arr_of(get(tspec, k)))
        .filter_map(|c| get(Some(c), "name").map(str_value))
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let action_path = format!("{rule_path}.action");
        let action = get(Some(rule), "action").map(str_value).unwrap_or_default();
        if action.is_empty() {
            causes.push(Cause::required_detail(
                &action_path,
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            ));
        } else if action == "FailIndex" {
            if !has_per_index {
                causes.push(invalid_str(
                    &action_path,
                    &action,
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
        } else if !ACTIONS.contains(&action.as_str()) {
            causes.push(unsupported_str(&action_path, &action, &ACTIONS));
        }
        let exit_codes = get(Some(rule), "onExitCodes");
        if let Some(ec) = exit_codes {
            on_exit_codes(ec, &names, &format!("{rule_path}.onExitCodes"), causes);
        }
        let conditions = arr_of(get(Some(rule), "onPodConditions"));
        if !conditions.is_empty() {
            on_pod_conditions(conditions, &format!("{rule_path}.onPodConditions"), causes);
        }
        match (exit_codes.is_some(), !conditions.is_empty()) {
            (true, true) => causes.push(invalid_omit(
                &rule_path,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => causes.push(invalid_omit(
                &rule_path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
}

fn on_exit_codes(ec: &Value, names: &[String], path: &str, causes: &mut Vec<Cause>) {
    let op_path = format!("{path}.operator");
    let op = get(Some(ec), "operator").map(str_value).unwrap_or_default();
    if op.is_empty() {
        causes.push(Cause::required_detail(
            &op_path,
            "valid values: [\"In\" \"NotIn\"]",
        ));
    } else if op != "In" && op != "NotIn" {
        causes.push(unsupported_str(&op_path, &op, &["In", "NotIn"]));
    }
    if let Some(name) = get(Some(ec), "containerName").map(str_value) {
        if !names.contains(&name) {
            causes.push(invalid_str(
                &format!("{path}.containerName"),
                &name,
                "must be one of the container or initContainer names in the pod template",
            ));
        }
    }
    let values_path = format!("{path}.values");
    let raw = get(Some(ec), "values");
    let values = arr_of(raw);
    if values.is_empty() {
        causes.push(invalid_raw(
            &values_path,
            &go_int32_slice(raw),
            "at least one value is required",
        ));
    } else if values.len() > MAX_EXIT_CODE_VALUES {
        causes.push(Cause::too_many(
            &values_path,
            values.len(),
            MAX_EXIT_CODE_VALUES,
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut ordered = true;
    let mut previous: Option<i64> = None;
    for (j, v) in values.iter().enumerate() {
        let code = as_int(v).unwrap_or(0);
        let value_path = format!("{values_path}[{j}]");
        if op == "In" && code == 0 {
            causes.push(Cause::invalid(
                &value_path,
                &json!(0),
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(code) {
            causes.push(Cause::duplicate(&value_path, &json!(code)));
        }
        if previous.is_some_and(|p| p > code) {
            ordered = false;
        }
        previous = Some(code);
    }
    if !ordered {
        causes.push(invalid_raw(
            &values_path,
            &go_int32_slice(raw),
            "must be ordered",
        ));
    }
}

fn on_pod_conditions(conditions: &[Value], path: &str, causes: &mut Vec<Cause>) {
    if conditions.len() > MAX_POD_CONDITION_PATTERNS {
        causes.push(Cause::too_many(
            path,
            conditions.len(),
            MAX_POD_CONDITION_PATTERNS,
        ));
    }
    for (j, pattern) in conditions.iter().enumerate() {
        let pattern_path = format!("{path}[{j}]");
        let ty = get(Some(pattern), "type")
            .map(str_value)
            .unwrap_or_default();
        for e in qualified_name_errors(&ty) {
            causes.push(invalid_str(&format!("{pattern_path}.type"), &ty, &e));
        }
        // An empty status is defaulted to True upstream.
        let status = get(Some(pattern), "status")
            .map(str_value)
            .unwrap_or_default();
        if !matches!(status.as_str(), "" | "False" | "True" | "Unknown") {
            causes.push(unsupported_str(
                &format!("{pattern_path}.status"),
                &status,
                &["False", "True", "Unknown"],
            ));
        }
    }
}

fn go_success_policy(sp: &Value) -> String {
    let rules = match get(Some(sp), "rules").and_then(Value::as_array) {
        None => "[]batch.SuccessPolicyRule(nil)".to_string(),
        Some(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|r| {
                    format!(
                        "batch.SuccessPolicyRule{{SucceededIndexes:{}, SucceededCount:{}}}",
                        go_ptr("string", get(Some(r), "succeededIndexes").is_some()),
                        go_ptr("int32", get(Some(r), "succeededCount").is_some())
                    )
                })
                .collect();
            format!("[]batch.SuccessPolicyRule{{{}}}", parts.join(", "))
        }
    };
    format!("batch.SuccessPolicy{{Rules:{rules}}}")
}

fn success_policy(sp: &Value, completions: Option<i64>, path: &str, causes: &mut Vec<Cause>) {
    let rules_path = format!("{path}.rules");
    let rules = arr_of(get(Some(sp), "rules"));
    if rules.is_empty() {
        causes.push(Cause::required_detail(
            &rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_SUCCESS_RULES {
        causes.push(Cause::too_many(&rules_path, rules.len(), MAX_SUCCESS_RULES));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let indexes = get(Some(rule), "succeededIndexes").map(str_value);
        let count = get_int(Some(rule), "succeededCount");
        if indexes.is_none() && count.is_none() {
            causes.push(Cause::required_detail(
                &rule_path,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(ix) = &indexes {
            let ix_path = format!("{rule_path}.succeededIndexes");
            if ix.len() > MAX_SUCCEEDED_INDEXES {
                causes.push(Cause::too_long(&ix_path, MAX_SUCCEEDED_INDEXES));
            }
            if let Some(c) = completions {
                match indexes_total(ix, c) {
                    Ok(t) => total = t,
                    Err(e) => causes.push(invalid_str(
                        &ix_path,
                        ix,
                        &format!("error parsing succeededIndexes: {e}"),
                    )),
                }
            }
        }
        if let Some(n) = count {
            let count_path = format!("{rule_path}.succeededCount");
            nonneg(Some(rule), "succeededCount", &count_path, causes);
            if let Some(c) = completions.filter(|c| n > *c) {
                causes.push(Cause::invalid(
                    &count_path,
                    &json!(n),
                    &format!(
                        "must be less than or equal to {c} (the number of specified completions)"
                    ),
                ));
            }
            if indexes.is_some() && n > total {
                causes.push(Cause::invalid(
                    &count_path,
                    &json!(n),
                    &format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
}

/// Upstream's `validateIndexesFormat`: the number of indexes in `1,3-5`-style intervals.
fn indexes_total(s: &str, completions: i64) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for interval in s.split(',') {
        let (x, y) = index_interval(interval, completions)?;
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

fn index_interval(s: &str, completions: i64) -> Result<(i64, i64), String> {
    let limits: Vec<&str> = s.split('-').collect();
    if limits.len() > 2 {
        return Err(format!("the fragment {} violates the requirement that an index interval can have at most two parts separated by '-'", go_quote(s)));
    }
    let parse = |p: &str| -> Result<i64, String> {
        let n = go_atoi(p).map_err(|_| {
            format!(
                "cannot convert string to integer for index: {}",
                go_quote(p)
            )
        })?;
        if n >= completions {
            return Err(format!("too large index: {}", go_quote(p)));
        }
        Ok(n)
    };
    let x = parse(limits[0])?;
    if let Some(hi) = limits.get(1) {
        let y = parse(hi)?;
        if x >= y {
            return Err(format!("non-increasing order, previous: {x}, current: {y}"));
        }
        return Ok((x, y));
    }
    Ok((x, x))
}

/// Job updates: upstream's `ValidateJobSpecUpdate`.
pub fn job_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (ns, os) = (get(Some(new), "spec"), get(Some(old), "spec"));
    let (nc, oc) = (get(ns, "completions"), get(os, "completions"));
    if !same_scalar(nc, oc) {
        // Elastic Indexed Jobs may change completions together with parallelism.
        if get_str(ns, "completionMode") == Some("Indexed") {
            if let Some(c) = nc.and_then(as_int) {
                if Some(c) != get_int(ns, "parallelism") {
                    causes.push(Cause::invalid(
                        "spec.completions",
                        &json!(c),
                        "can only be modified in tandem with spec.parallelism",
                    ));
                }
            }
        } else {
            causes.push(invalid_raw("spec.completions", &go_scalar(nc), IMMUTABLE));
        }
    }
    let (n, o) = (get(ns, "selector"), get(os, "selector"));
    if !same(n, o) {
        causes.push(invalid_raw("spec.selector", &go_selector(n), IMMUTABLE));
    }
    job_template_update(new, old, causes);
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        let (n, o) = (get(ns, key), get(os, key));
        let changed = match n.or(o) {
            Some(Value::Object(_)) => !same(n, o),
            _ => !same_scalar(n, o),
        };
        if changed {
            let shown = match (key, n) {
                (_, None) => "null".to_string(),
                ("podFailurePolicy", Some(_)) => "batch.PodFailurePolicy{...}".to_string(),
                ("successPolicy", Some(p)) => go_success_policy(p),
                (_, Some(v)) => go_scalar(Some(v)),
            };
            causes.push(invalid_raw(&format!("spec.{key}"), &shown, IMMUTABLE));
        }
    }
}

/// The pod template is immutable, except the scheduling directives of a suspended Job that never
/// started (node affinity, node selector, tolerations, scheduling gates, labels, annotations).
fn job_template_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let template_of = |obj: &Value| -> Value {
        let mut t = spec_field(obj, "template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(spec) = t.get_mut("spec").filter(|s| s.is_object()) {
            crate::apiserver::registry::defaults::pod_spec_defaults(spec);
        }
        t
    };
    let (nt, mut ot) = (template_of(new), template_of(old));
    let suspended = spec_field(old, "suspend") == Some(&json!(true));
    let started = get(get(Some(old), "status"), "startTime").is_some();
    if suspended && !started && ot.is_object() {
        if !ot.get("spec").is_some_and(Value::is_object) {
            ot["spec"] = json!({});
        }
        let new_affinity = get(get(Some(&nt), "spec"), "affinity");
        let new_node_affinity = get(new_affinity, "nodeAffinity").cloned();
        let ospec = &mut ot["spec"];
        let old_has_affinity = ospec.get("affinity").is_some_and(|a| !a.is_null());
        match (new_affinity.is_some(), old_has_affinity) {
            (false, true) => {
                if let Some(a) = ospec["affinity"].as_object_mut() {
                    a.remove("nodeAffinity");
                }
            }
            (true, false) => {
                let mut a = Map::new();
                if let Some(na) = new_node_affinity {
                    a.insert("nodeAffinity".into(), na);
                }
                ospec["affinity"] = Value::Object(a);
            }
            (true, true) => {
                if let Some(a) = ospec["affinity"].as_object_mut() {
                    match new_node_affinity {
                        Some(na) => a.insert("nodeAffinity".into(), na),
                        None => a.remove("nodeAffinity"),
                    };
                }
            }
            (false, false) => {}
        }
        for key in ["nodeSelector", "tolerations", "schedulingGates"] {
            copy_key(&nt["spec"], ospec, key);
        }
        if !ot.get("metadata").is_some_and(Value::is_object) {
            ot["metadata"] = json!({});
        }
        for key in ["labels", "annotations"] {
            copy_key(&nt["metadata"], &mut ot["metadata"], key);
        }
    }
    if canon(&nt) != canon(&ot) {
        causes.push(invalid_raw(
            "spec.template",
            "core.PodTemplateSpec{...}",
            IMMUTABLE,
        ));
    }
}

/// `to[key] = from[key]` (removed when `from` lacks it).
fn copy_key(from: &Value, to: &mut Value, key: &str) {
    let Some(m) = to.as_object_mut() else { return };
    match from.get(key) {
        Some(v) => m.insert(key.into(), v.clone()),
        None => m.remove(key),
    };
}

// ---------------------------------------------------------------------------------------------------------
// CronJobs
// ---------------------------------------------------------------------------------------------------------

pub fn cron_job(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = get(Some(obj), "spec");
    let schedule = get(spec, "schedule").map(str_value).unwrap_or_default();
    if schedule.is_empty() {
        causes.push(Cause::required("spec.schedule"));
    } else {
        if let Err(e) = parse_cron(&schedule) {
            causes.push(invalid_str("spec.schedule", &schedule, &e));
        }
        if schedule.contains("TZ") {
            causes.push(invalid_str(
                "spec.schedule",
                &schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonneg(
        spec,
        "startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
        causes,
    );
    if let Some(tz) = get(spec, "timeZone") {
        time_zone(&str_value(tz), causes);
    }
    // An empty policy is defaulted to Allow upstream.
    let policy = get(spec, "concurrencyPolicy")
        .map(str_value)
        .unwrap_or_default();
    if !matches!(policy.as_str(), "" | "Allow" | "Forbid" | "Replace") {
        causes.push(unsupported_str(
            "spec.concurrencyPolicy",
            &policy,
            &["Allow", "Forbid", "Replace"],
        ));
    }
    let job_template_spec = get(get(spec, "jobTemplate"), "spec");
    job_spec(job_template_spec, "spec.jobTemplate.spec", causes);
    if let Some(sel) = get(job_template_spec, "selector") {
        causes.push(invalid_raw(
            "spec.jobTemplate.spec.selector",
            &go_label_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if get(job_template_spec, "manualSelector") == Some(&json!(true)) {
        causes.push(unsupported_raw(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        ));
    }
    nonneg(
        spec,
        "successfulJobsHistoryLimit",
        "spec.successfulJobsHistoryLimit",
        causes,
    );
    nonneg(
        spec,
        "failedJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
        causes,
    );
    // The controller appends an 11-character suffix to name its Jobs (names of at most 63).
    let name = get_str(get(Some(obj), "metadata"), "name").unwrap_or("");
    if name.len() > 52 {
        causes.push(invalid_str(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
}

fn time_zone(tz: &str, causes: &mut Vec<Cause>) {
    let field = "spec.timeZone";
    if tz.is_empty() {
        causes.push(invalid_str(
            field,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 14
            && p != "."
            && p != ".."
            && !p.starts_with('-')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !tz.split('/').all(part_ok) {
        causes.push(invalid_str(field, tz, &format!("unknown time zone {tz}")));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        causes.push(invalid_str(
            field,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if !time_zone_known(tz) {
        causes.push(invalid_str(field, tz, &format!("unknown time zone {tz}")));
    }
}

/// Go's `time.LoadLocation` succeeds: the zone is in the tz database. Without a database on this
/// host, every syntactically valid name is accepted.
fn time_zone_known(name: &str) -> bool {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return true;
    }
    if name.contains("..") || name.starts_with(['/', '\\']) {
        return false;
    }
    let mut have_db = false;
    for dir in [
        "/usr/share/zoneinfo/",
        "/usr/share/lib/zoneinfo/",
        "/usr/lib/locale/TZ/",
        "/etc/zoneinfo/",
    ] {
        if !std::path::Path::new(dir).is_dir() {
            continue;
        }
        have_db = true;
        let mut magic = [0u8; 4];
        let is_zone = std::fs::File::open(format!("{dir}{name}"))
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|_| &magic == b"TZif");
        if is_zone {
            return true;
        }
    }
    !have_db
}

// ---------------------------------------------------------------------------------------------------------
// Cron schedules: github.com/robfig/cron/v3's ParseStandard, with its error texts
// ---------------------------------------------------------------------------------------------------------

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MONTHS: &[(&str, u64)] = &[
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];
const DAYS: &[(&str, u64)] = &[
    ("sun", 0),
    ("mon", 1),
    ("tue", 2),
    ("wed", 3),
    ("thu", 4),
    ("fri", 5),
    ("sat", 6),
];
const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Bounds {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

fn parse_cron(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec.to_string();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            return Err("expected exactly 5 fields, found 0: []".into());
        };
        let loc = &spec[eq + 1..space];
        if loc.contains("..") || loc.starts_with(['/', '\\']) {
            return Err(format!(
                "provided bad location {loc}: time: invalid location name"
            ));
        }
        if !time_zone_known(loc) {
            return Err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ));
        }
        spec = spec[space..].trim().to_string();
    }
    if spec.starts_with('@') {
        return match spec.as_str() {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => match spec.strip_prefix("@every ") {
                Some(d) => go_parse_duration(d)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}")),
                None => Err(format!("unrecognized descriptor: {spec}")),
            },
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (field, bounds) in fields.iter().zip(FIELDS.iter()) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            cron_range(expr, bounds)?;
        }
    }
    Ok(())
}

fn cron_range(expr: &str, b: &Bounds) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (b.min, b.max)
    } else {
        let start = cron_int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => cron_int_or_name(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if low_and_high.len() == 1 {
                end = b.max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn cron_int_or_name(expr: &str, b: &Bounds) -> Result<u64, String> {
    let lower = expr.to_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => cron_int(expr),
    }
}

fn cron_int(expr: &str) -> Result<u64, String> {
    match go_atoi(expr) {
        Err(e) => Err(format!("failed to parse int from {expr}: {e}")),
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(n as u64),
    }
}

/// Go's `strconv.Atoi`, with its error texts.
fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

/// The quoting of Go's `time` package errors.
fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x80 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration`, checking only (the value is not needed).
fn go_parse_duration(orig: &str) -> Result<(), String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let s = orig.strip_prefix(['-', '+']).unwrap_or(orig);
    if s == "0" {
        return Ok(());
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let b = s.as_bytes();
    let is_num = |c: u8| c == b'.' || c.is_ascii_digit();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < b.len() {
        if !is_num(b[i]) {
            return Err(invalid());
        }
        let start = i;
        let mut v: u128 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v * 10 + u128::from(b[i] - b'0');
            if v > 1 << 63 {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i != start;
        let mut post = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            post = i != frac;
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_start = i;
        while i < b.len() && !is_num(b[i]) {
            i += 1;
        }
        if i == unit_start {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let unit = &s[unit_start..i];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(unit),
                    time_quote(orig)
                ))
            }
        };
        total += v * scale;
        if total > 1 << 63 {
            return Err(invalid());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Semantic equality for update checks
// ---------------------------------------------------------------------------------------------------------

/// A canonical form where absent, null, empty and zero values are alike (as they are after
/// upstream's decoding and storage round-trip), integral floats are integers and keys are sorted.
fn canon(v: &Value) -> Option<Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) => {
            if n.as_f64() == Some(0.0) {
                None
            } else {
                Some(as_int(v).map_or_else(|| v.clone(), |i| json!(i)))
            }
        }
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.iter().map(|x| canon(x).unwrap_or(Value::Null)).collect(),
        )),
        Value::Object(m) => {
            let mut entries: Vec<(&String, Value)> = m
                .iter()
                .filter_map(|(k, x)| canon(x).map(|c| (k, c)))
                .collect();
            if entries.is_empty() {
                return None;
            }
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Some(Value::Object(
                entries.into_iter().map(|(k, x)| (k.clone(), x)).collect(),
            ))
        }
        other => Some(other.clone()),
    }
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    a.and_then(canon) == b.and_then(canon)
}

/// Equality of optional scalars (pointer fields: unset differs from zero).
fn same_scalar(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| {
        v.filter(|x| !x.is_null())
            .map(|x| as_int(x).map_or_else(|| x.clone(), |i| json!(i)))
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::defaults::pod_spec_defaults;
    use crate::apiserver::registry::validation::by_kind::{validate, validate_update};

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::display).collect()
    }

    fn check(group: &str, plural: &str, obj: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(group, plural, obj, &mut causes);
        messages(&causes)
    }

    fn check_update(group: &str, plural: &str, new: &Value, old: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(group, plural, new, &mut causes);
        validate_update(group, plural, new, old, &mut causes);
        messages(&causes)
    }

    fn template(labels: Value, restart: &str) -> Value {
        let mut spec = json!({
            "containers": [{"name": "nginx", "image": "nginx"}],
            "restartPolicy": restart,
        });
        pod_spec_defaults(&mut spec);
        json!({"metadata": {"creationTimestamp": null, "labels": labels}, "spec": spec})
    }

    /// `kubectl create deployment web --image=nginx`, after defaults.
    fn deployment_web() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(json!({"app": "web"}), "Always"),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            }
        })
    }

    fn stateful_set_web() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(json!({"app": "web"}), "Always"),
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10,
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            }
        })
    }

    fn daemon_set_fluentd() -> Value {
        json!({
            "metadata": {"name": "fluentd", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"name": "fluentd"}},
                "template": template(json!({"name": "fluentd"}), "Always"),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "revisionHistoryLimit": 10,
            }
        })
    }

    /// `kubectl create job j --image=busybox`, after defaults and selector generation.
    fn job_j() -> Value {
        let uid = "0b1c2d3e-0000-4000-8000-000000000001";
        json!({
            "metadata": {"name": "j", "namespace": "default", "uid": uid},
            "spec": {
                "parallelism": 1, "completions": 1, "backoffLimit": 6,
                "completionMode": "NonIndexed", "suspend": false,
                "podReplacementPolicy": "TerminatingOrFailed",
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                "template": template(json!({
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": "j",
                    "controller-uid": uid,
                    "job-name": "j",
                }), "OnFailure"),
            }
        })
    }

    fn cron_job_c(schedule: &str) -> Value {
        json!({
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {
                "schedule": schedule,
                "concurrencyPolicy": "Allow", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"name": "c"}, "spec": {"template": template(json!(null), "OnFailure")}},
            }
        })
    }

    #[test]
    fn valid_objects_pass() {
        assert_eq!(
            check("apps", "deployments", &deployment_web()),
            Vec::<String>::new()
        );
        assert_eq!(
            check("apps", "statefulsets", &stateful_set_web()),
            Vec::<String>::new()
        );
        assert_eq!(
            check("apps", "daemonsets", &daemon_set_fluentd()),
            Vec::<String>::new()
        );
        assert_eq!(check("batch", "jobs", &job_j()), Vec::<String>::new());
        for s in [
            "*/5 * * * *",
            "0 0 * * MON-FRI",
            "@hourly",
            "@every 1h30m",
            "5,10-20/2 1 1-31 jan-dec sun",
        ] {
            assert_eq!(
                check("batch", "cronjobs", &cron_job_c(s)),
                Vec::<String>::new(),
                "{s}"
            );
        }
        let mut rs = deployment_web();
        rs["spec"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k == "replicas" || k == "selector" || k == "template");
        assert_eq!(check("apps", "replicasets", &rs), Vec::<String>::new());
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 2, "template": template(json!({"app": "rc"}), "Always")}});
        assert_eq!(
            check("", "replicationcontrollers", &rc),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deployment_errors() {
        let mut d = deployment_web();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]);

        let mut d = deployment_web();
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]);

        let mut d = deployment_web();
        d["spec"]["selector"] = json!({});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ]);

        let mut d = deployment_web();
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]);

        let mut d = deployment_web();
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": "0%"});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
        ]);

        let mut d = deployment_web();
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": "120%", "maxSurge": "x"});
        assert_eq!(check("apps", "deployments", &d), vec![
            format!("spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"x\"}}: {PERCENT_MSG}"),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"120%\"}: must not be greater than 100%".into(),
        ]);

        let mut d = deployment_web();
        d["spec"]["strategy"]["type"] = json!("Recreate");
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ]);

        let mut d = deployment_web();
        d["spec"]["strategy"] = json!({"type": "Blue"});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Blue\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
        ]);

        let mut d = deployment_web();
        d["spec"]["minReadySeconds"] = json!(10);
        d["spec"]["progressDeadlineSeconds"] = json!(5);
        d["spec"]["revisionHistoryLimit"] = json!(-2);
        assert_eq!(
            check("apps", "deployments", &d),
            vec![
            "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
            "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
        ]
        );

        let mut d = deployment_web();
        d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
        ]);
    }

    #[test]
    fn match_expressions() {
        let mut d = deployment_web();
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}, {"key": "tier", "operator": "DoesNotExist"}]});
        assert_eq!(check("apps", "deployments", &d), Vec::<String>::new());

        d["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]);

        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["web"]}, {"key": "x", "operator": "In"}, {"key": "y", "operator": "Exists", "values": ["a"]}]});
        assert_eq!(check("apps", "deployments", &d), vec![
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator",
            "spec.selector.matchExpressions[1].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[2].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Equals\", Values:[]string{\"web\"}}, v1.LabelSelectorRequirement{Key:\"x\", Operator:\"In\", Values:[]string(nil)}, v1.LabelSelectorRequirement{Key:\"y\", Operator:\"Exists\", Values:[]string{\"a\"}}}}: invalid label selector",
        ]);

        d["spec"]["selector"] = json!({"matchLabels": {"app": "a b"}});
        let msgs = check("apps", "deployments", &d);
        assert!(
            msgs[0].starts_with(
                "spec.selector.matchLabels: Invalid value: \"a b\": a valid label must be"
            ),
            "{msgs:?}"
        );
    }

    #[test]
    fn empty_selector_messages_per_kind() {
        let mut rs = deployment_web();
        rs["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(check("apps", "replicasets", &rs), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ]);
        let mut s = stateful_set_web();
        s["spec"]["selector"] = json!({});
        assert_eq!(check("apps", "statefulsets", &s), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset",
        ]);
        let mut ds = daemon_set_fluentd();
        ds["spec"]["selector"] = json!({});
        assert_eq!(check("apps", "daemonsets", &ds), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset",
        ]);
    }

    #[test]
    fn stateful_set_rules() {
        let mut s = stateful_set_web();
        s["spec"]["podManagementPolicy"] = json!("Random");
        s["spec"]["updateStrategy"] =
            json!({"type": "OnDelete", "rollingUpdate": {"partition": 2}});
        s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Keep");
        s["spec"]["ordinals"] = json!({"start": -1});
        s["spec"]["serviceName"] = json!("Nginx");
        s["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(check("apps", "statefulsets", &s), vec![
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
            "spec.updateStrategy.rollingUpdate: Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:2, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'",
            "spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
            "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0",
            "spec.serviceName: Invalid value: \"Nginx\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ]);
        let mut s = stateful_set_web();
        s["spec"]["updateStrategy"] = json!({"type": "Canary"});
        assert_eq!(check("apps", "statefulsets", &s), vec![
            "spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:\"Canary\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'",
        ]);
    }

    #[test]
    fn stateful_set_updates() {
        let old = stateful_set_web();
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        new["spec"]["minReadySeconds"] = json!(3);
        new["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = json!("Delete");
        new["spec"]["ordinals"] = json!({"start": 2});
        // kubectl sends back what it read: null and absent, defaulted VCT fields alike.
        new["spec"]["volumeClaimTemplates"][0]["metadata"]["creationTimestamp"] = Value::Null;
        new["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = json!("Filesystem");
        new["spec"]["volumeClaimTemplates"][0]["status"] = json!({"phase": "Pending"});
        assert_eq!(
            check_update("apps", "statefulsets", &new, &old),
            Vec::<String>::new()
        );

        for (k, v) in [
            ("serviceName", json!("other")),
            ("podManagementPolicy", json!("Parallel")),
            ("selector", json!({"matchLabels": {"app": "web", "x": "y"}})),
        ] {
            let mut new = old.clone();
            new["spec"][k] = v;
            let msgs = check_update("apps", "statefulsets", &new, &old);
            assert_eq!(
                msgs.last().map(String::as_str),
                Some(format!("spec: Forbidden: {STS_FORBIDDEN}").as_str()),
                "{k}"
            );
        }
    }

    #[test]
    fn daemon_set_rules() {
        let mut ds = daemon_set_fluentd();
        ds["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 0});
        assert_eq!(check("apps", "daemonsets", &ds), vec![
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
        ]);
        ds["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 1, "maxSurge": "10%"});
        assert_eq!(check("apps", "daemonsets", &ds), vec![
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"10%\"}: may not be set when maxUnavailable is non-zero",
        ]);
        ds["spec"]["updateStrategy"] = json!({"type": "Surge"});
        assert_eq!(check("apps", "daemonsets", &ds), vec![
            "spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Surge\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\"",
        ]);
        // A missing selector only shows as a mismatch, as upstream.
        let mut ds = daemon_set_fluentd();
        ds["spec"].as_object_mut().unwrap().remove("selector");
        ds["spec"]["updateStrategy"] = json!({"type": "RollingUpdate"});
        assert_eq!(check("apps", "daemonsets", &ds), vec![
            "spec.template.metadata.labels: Invalid value: map[string]string{\"name\":\"fluentd\"}: `selector` does not match template `labels`",
        ]);
    }

    #[test]
    fn selector_immutable() {
        let old = deployment_web();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web2"});
        assert_eq!(check_update("apps", "deployments", &new, &old), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        ]);
        // Scale, image change, label change, explicit nulls: all allowed.
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["selector"]["matchExpressions"] = Value::Null;
        new["metadata"]["labels"]["x"] = json!("y");
        assert_eq!(
            check_update("apps", "deployments", &new, &old),
            Vec::<String>::new()
        );
        let ds = daemon_set_fluentd();
        let mut ds2 = ds.clone();
        ds2["spec"]["selector"]["matchLabels"]["name"] = json!("x");
        ds2["spec"]["template"]["metadata"]["labels"]["name"] = json!("x");
        assert_eq!(check_update("apps", "daemonsets", &ds2, &ds).len(), 1);
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"selector": {"a": "b"}, "template": template(json!({"a": "b"}), "Always")}});
        let mut rc2 = rc.clone();
        rc2["spec"]["selector"] = json!({"a": "b", "c": "d"});
        rc2["spec"]["template"]["metadata"]["labels"]["c"] = json!("d");
        assert_eq!(
            check_update("", "replicationcontrollers", &rc2, &rc),
            Vec::<String>::new()
        );
    }

    #[test]
    fn update_reports_spec_errors_once() {
        let mut rs = deployment_web();
        rs["spec"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k == "replicas" || k == "selector" || k == "template");
        let mut bad = rs.clone();
        bad["spec"]["replicas"] = json!(-1);
        let msg = "spec.replicas: Invalid value: -1: must be greater than or equal to 0";
        assert_eq!(check_update("apps", "replicasets", &bad, &rs), vec![msg]);
        let mut bad = job_j();
        bad["spec"]["parallelism"] = json!(-1);
        let msg = "spec.parallelism: Invalid value: -1: must be greater than or equal to 0";
        assert_eq!(check_update("batch", "jobs", &bad, &job_j()), vec![msg]);
    }

    #[test]
    fn replication_controller_rules() {
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"selector": {"a": "b"}, "replicas": -1, "template": template(json!({"a": "c"}), "OnFailure")}});
        assert_eq!(check("", "replicationcontrollers", &rc), vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]);
        let rc = json!({"metadata": {"name": "rc"}, "spec": {}});
        assert_eq!(
            check("", "replicationcontrollers", &rc),
            vec![
                "spec.selector: Required value",
                "spec.template: Required value",
            ]
        );
    }

    #[test]
    fn job_rules() {
        let mut j = job_j();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        j["spec"]["backoffLimitPerIndex"] = json!(1);
        j["spec"]["parallelism"] = json!(-1);
        assert_eq!(check("batch", "jobs", &j), vec![
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]);
        let mut j = job_j();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Sometimes");
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["completions"] = json!(3);
        // (The pod spec's own restartPolicy check may report the value too, as upstream does.)
        assert_eq!(
            check("batch", "jobs", &j).last().map(String::as_str),
            Some("spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"")
        );
        let mut j = job_j();
        j["spec"]["podFailurePolicy"] = json!({"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]});
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(check("batch", "jobs", &j), vec![
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
        ]);
        j["spec"]["podReplacementPolicy"] = json!("Failed");
        assert_eq!(check("batch", "jobs", &j), Vec::<String>::new());
        let mut j = job_j();
        j["spec"]["podReplacementPolicy"] = json!("Failed");
        j["spec"]["podFailurePolicy"] = json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 3, 1]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "Explode"},
        ]});
        assert_eq!(check("batch", "jobs", &j), vec![
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 3, 1}: must be ordered",
            "spec.podFailurePolicy.rules[2].action: Unsupported value: \"Explode\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
            "spec.podFailurePolicy.rules[2]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ]);
        // A selector that no longer selects the generated labels.
        let mut j = job_j();
        j["spec"]["selector"] = json!({"matchLabels": {"job-name": "other"}});
        assert_eq!(check("batch", "jobs", &j), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"job-name\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"0b1c2d3e-0000-4000-8000-000000000001\", \"batch.kubernetes.io/job-name\":\"j\", \"controller-uid\":\"0b1c2d3e-0000-4000-8000-000000000001\", \"job-name\":\"j\"}: `selector` does not match template `labels`",
        ]);
        // Manual selectors need only match the template.
        let mut j = job_j();
        j["spec"]["manualSelector"] = json!(true);
        j["spec"]["selector"] = json!({"matchLabels": {"job-name": "j"}});
        assert_eq!(check("batch", "jobs", &j), Vec::<String>::new());
    }

    #[test]
    fn job_updates() {
        let old = job_j();
        // Labels, annotations, parallelism, suspend: allowed; a no-op with nulls: allowed.
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"x": "y"});
        new["spec"]["parallelism"] = json!(0);
        new["spec"]["suspend"] = json!(true);
        new["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
        new["spec"]["template"]["spec"]["nodeName"] = Value::Null;
        assert_eq!(
            check_update("batch", "jobs", &new, &old),
            Vec::<String>::new()
        );

        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:2");
        new["spec"]["completions"] = json!(2);
        new["spec"]["completionMode"] = json!("Indexed");
        assert_eq!(check_update("batch", "jobs", &new, &old), vec![
            "spec.completions: Invalid value: 2: can only be modified in tandem with spec.parallelism",
            "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",
            "spec.completionMode: Invalid value: \"Indexed\": field is immutable",
        ]);
        let mut new = old.clone();
        new["spec"]["completions"] = json!(3);
        new["spec"]["selector"]["matchLabels"]["job-name"] = json!("j");
        assert_eq!(check_update("batch", "jobs", &new, &old), vec![
            "spec.completions: Invalid value: 3: field is immutable",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"0b1c2d3e-0000-4000-8000-000000000001\", \"job-name\":\"j\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        ]);

        // A suspended Job that never started may change its scheduling directives.
        let mut old = job_j();
        old["spec"]["suspend"] = json!(true);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        new["spec"]["template"]["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists"}]);
        new["spec"]["template"]["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}});
        new["spec"]["template"]["metadata"]["annotations"] = json!({"a": "b"});
        assert_eq!(
            check_update("batch", "jobs", &new, &old),
            Vec::<String>::new()
        );
        new["spec"]["template"]["spec"]["affinity"]["podAffinity"] =
            json!({"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k"}]});
        assert_eq!(check_update("batch", "jobs", &new, &old).len(), 1);
        old["status"] = json!({"startTime": "2025-01-01T00:00:00Z"});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_eq!(
            check_update("batch", "jobs", &new, &old),
            vec!["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",]
        );
    }

    #[test]
    fn cron_job_rules() {
        let cases = [
            ("bad", "spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]"),
            ("61 * * * *", "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"),
            ("* * 0 * *", "spec.schedule: Invalid value: \"* * 0 * *\": beginning of range (0) below minimum (1): 0"),
            ("5-1 * * * *", "spec.schedule: Invalid value: \"5-1 * * * *\": beginning of range (5) beyond end of range (1): 5-1"),
            ("*/0 * * * *", "spec.schedule: Invalid value: \"*/0 * * * *\": step of range should be a positive number: */0"),
            ("a * * * *", "spec.schedule: Invalid value: \"a * * * *\": failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax"),
            ("1-2-3 * * * *", "spec.schedule: Invalid value: \"1-2-3 * * * *\": too many hyphens: 1-2-3"),
            ("@weekdays", "spec.schedule: Invalid value: \"@weekdays\": unrecognized descriptor: @weekdays"),
            ("@every 5", "spec.schedule: Invalid value: \"@every 5\": failed to parse duration @every 5: time: missing unit in duration \"5\""),
            ("@every 5x", "spec.schedule: Invalid value: \"@every 5x\": failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\""),
            ("TZ=UTC */5 * * * *", "spec.schedule: Invalid value: \"TZ=UTC */5 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ];
        for (schedule, want) in cases {
            assert_eq!(
                check("batch", "cronjobs", &cron_job_c(schedule)),
                vec![want],
                "{schedule}"
            );
        }
        assert_eq!(check("batch", "cronjobs", &cron_job_c("TZ=../../etc/passwd * * * * *")), vec![
            "spec.schedule: Invalid value: \"TZ=../../etc/passwd * * * * *\": provided bad location ../../etc/passwd: time: invalid location name",
            "spec.schedule: Invalid value: \"TZ=../../etc/passwd * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ]);
        let mut c = cron_job_c("*/5 * * * *");
        c["spec"]["concurrencyPolicy"] = json!("Sometimes");
        c["spec"]["startingDeadlineSeconds"] = json!(-5);
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        c["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        c["spec"]["failedJobsHistoryLimit"] = json!(-1);
        c["metadata"]["name"] = json!("c".repeat(53));
        assert_eq!(check("batch", "cronjobs", &c), vec![
            "spec.startingDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0".to_string(),
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".into(),
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"".into(),
            "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated".into(),
            "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0".into(),
            format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "c".repeat(53)),
        ]);
        let mut c = cron_job_c("*/5 * * * *");
        c["spec"]["timeZone"] = json!("Mars/Olympus_Mons");
        let msgs = check("batch", "cronjobs", &c);
        if std::path::Path::new("/usr/share/zoneinfo").is_dir() {
            assert_eq!(msgs, vec!["spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone Mars/Olympus_Mons"]);
            c["spec"]["timeZone"] = json!("Europe/Berlin");
            assert_eq!(check("batch", "cronjobs", &c), Vec::<String>::new());
        }
        c["spec"]["timeZone"] = json!("../etc/passwd");
        assert_eq!(
            check("batch", "cronjobs", &c),
            vec![
                "spec.timeZone: Invalid value: \"../etc/passwd\": unknown time zone ../etc/passwd"
            ]
        );
        c["spec"]["timeZone"] = json!("Local");
        assert_eq!(check("batch", "cronjobs", &c), vec!["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]);
    }

    #[test]
    fn controller_revisions() {
        let cr = json!({"metadata": {"name": "r"}, "revision": -1});
        assert_eq!(
            check("apps", "controllerrevisions", &cr),
            vec![
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let old = json!({"metadata": {"name": "r"}, "revision": 1, "data": {"a": 1}});
        let mut new = old.clone();
        new["data"] = json!({"a": 2});
        let msgs = check_update("apps", "controllerrevisions", &new, &old);
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].starts_with("data: Invalid value: runtime.Unknown{")
                && msgs[0].ends_with(": field is immutable")
        );
    }

    #[test]
    fn odd_json_never_panics() {
        for v in [
            json!(null),
            json!("x"),
            json!({"spec": 5}),
            json!({"spec": {"selector": "x", "template": [1], "strategy": 3, "updateStrategy": {"rollingUpdate": {"maxSurge": true}}, "schedule": 7, "jobTemplate": {"spec": {"podFailurePolicy": {"rules": [5]}}}}}),
        ] {
            for (g, p) in [
                ("apps", "deployments"),
                ("apps", "replicasets"),
                ("apps", "statefulsets"),
                ("apps", "daemonsets"),
                ("apps", "controllerrevisions"),
                ("batch", "jobs"),
                ("batch", "cronjobs"),
                ("", "replicationcontrollers"),
            ] {
                let mut causes = Vec::new();
                validate(g, p, &v, &mut causes);
                validate_update(g, p, &v, &json!({"spec": {"template": 1}}), &mut causes);
            }
        }
    }
}
