"""ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) with CEL, driven by stock kubectl: a policy and its
bindings judge writes with upstream's exact denial and warning texts; params come from a ConfigMap; a binding's
namespaceSelector limits where it applies; policies and bindings are validated (CEL compiled) at create.

Policies and bindings are cluster-wide, and the server is shared by every scenario of a run, so each binding here
selects only namespaces this scenario labels, and everything is deleted at the end."""

from __future__ import annotations

import json

from harness import NOT_FOUND, T, scenario

PAUSE = "registry.k8s.io/pause:3.10"
POLICY = "replicas-limit.example.com"
PARAM_POLICY = "replicas-param.example.com"


def _rules() -> dict:
    return {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                               "resources": ["deployments"]}]}


def _policy(name: str, validations: list, **spec) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {"failurePolicy": "Fail", "matchConstraints": _rules(), "validations": validations, **spec}}


def _binding(name: str, policy: str, actions: list, ns_label: str, **spec) -> dict:
    key, value = ns_label.split("=")
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": policy, "validationActions": actions,
                     "matchResources": {"namespaceSelector": {"matchLabels": {key: value}}}, **spec}}


def _warnings(err: str) -> list[str]:
    return [ln[len("Warning: "):] for ln in err.splitlines() if ln.startswith("Warning: ")]


def _denied(policy: str, binding: str, why: str) -> str:
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {why}"


@scenario
def validating_admission_policy(t: T) -> None:
    """A `replicas <= 5` policy on deployments with a Deny binding: `kubectl create deployment --replicas=6` is
    refused with upstream's text (dry runs too) and nothing is stored, 3 replicas are admitted, an update above 5 is
    refused; the binding's namespaceSelector leaves other namespaces alone; a Warn binding admits with upstream's
    `Warning:` line; a ConfigMap paramKind (`params.data.maxReplicas`) with a messageExpression, and its missing
    param refused under parameterNotFoundAction Deny; a DELETE rule judges the stored object (`oldObject`); invalid
    policies and bindings are refused at create."""
    created: list[tuple[str, str]] = []

    def make(obj: dict) -> None:
        t.create(obj)
        created.append((obj["kind"].lower(), obj["metadata"]["name"]))

    try:
        ns = t.namespace("deny")
        t.ok("label", "namespace", ns, "vap-scenario=deny")
        other = t.namespace("warn")
        t.ok("label", "namespace", other, "vap-scenario=warn")

        make(_policy(POLICY, [{"expression": "object.spec.replicas <= 5"}]))
        make(_binding("replicas-limit-deny", POLICY, ["Deny"], "vap-scenario=deny"))

        expr_denial = _denied(POLICY, "replicas-limit-deny", "failed expression: object.spec.replicas <= 5")
        err = t.fails("create", "deployment", "big", f"--image={PAUSE}", "--replicas=6", "-n", ns)
        t.eq(err, f'error: failed to create deployment: deployments.apps "big" is forbidden: {expr_denial}',
             "6 replicas refused with upstream's ValidatingAdmissionPolicy text")
        t.eq(t.fails("get", "deployment", "big", "-n", ns), NOT_FOUND.format(res="deployments.apps", name="big"),
             "the refused deployment is not stored")
        err = t.fails("create", "deployment", "big", f"--image={PAUSE}", "--replicas=6", "-n", ns,
                      "--dry-run=server")
        t.eq(err, f'error: failed to create deployment: deployments.apps "big" is forbidden: {expr_denial}',
             "a server-side dry run is judged too")
        # From a manifest: a 422 Invalid whose only cause has no field, printed by kubectl as upstream's is.
        dep = json.loads(t.ok("create", "deployment", "big", f"--image={PAUSE}", "--replicas=6", "-n", ns,
                              "--dry-run=client", "-o", "json"))
        err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(dep))
        t.eq(err, f'The deployments "big" is invalid: : {expr_denial}', "a manifest's refusal (422 Invalid)")
        status = t.run("create", "-f", "-", "-n", ns, "-v=6", stdin=json.dumps(dep))
        t.contains(status.err, "422", "the refusal is a 422")

        r = t.run("create", "deployment", "small", f"--image={PAUSE}", "--replicas=3", "-n", ns)
        t.eq((r.rc, r.out.strip(), _warnings(r.err)), (0, "deployment.apps/small created", []),
             "3 replicas are admitted")
        err = t.fails("patch", "deployment", "small", "-n", ns, "-p", '{"spec":{"replicas":7}}')
        t.eq(err, f'The deployments "small" is invalid: : {expr_denial}',
             "an update above the limit is refused")
        t.eq(t.ok("get", "deployment", "small", "-n", ns, "-o", "jsonpath={.spec.replicas}"), "3",
             "the refused update changed nothing")

        # The Deny binding selects only its namespace: the other one is judged by a Warn binding.
        make(_binding("replicas-limit-warn", POLICY, ["Warn"], "vap-scenario=warn"))
        r = t.run("create", "deployment", "big", f"--image={PAUSE}", "--replicas=6", "-n", other)
        t.eq((r.rc, r.out.strip()), (0, "deployment.apps/big created"), "a Warn binding admits")
        t.eq(_warnings(r.err), [f"Validation failed for ValidatingAdmissionPolicy '{POLICY}' with binding "
                                "'replicas-limit-warn': failed expression: object.spec.replicas <= 5"],
             "with upstream's warning")
        plain = t.namespace("plain")
        r = t.run("create", "deployment", "big", f"--image={PAUSE}", "--replicas=6", "-n", plain)
        t.eq((r.rc, r.out.strip(), _warnings(r.err)), (0, "deployment.apps/big created", []),
             "a namespace no binding selects is not judged")

        # Params: the limit from a ConfigMap in the request's namespace.
        pns = t.namespace("params")
        t.ok("label", "namespace", pns, "vap-scenario=params")
        make(_policy(PARAM_POLICY, [{
            "expression": "object.spec.replicas <= int(params.data.maxReplicas)",
            "messageExpression": "'replicas must be at most ' + params.data.maxReplicas",
            "reason": "Forbidden"}], paramKind={"apiVersion": "v1", "kind": "ConfigMap"}))
        make(_binding("replicas-param-deny", PARAM_POLICY, ["Deny"], "vap-scenario=params",
                      paramRef={"name": "replica-limits", "parameterNotFoundAction": "Deny"}))
        err = t.fails("create", "deployment", "one", f"--image={PAUSE}", "--replicas=1", "-n", pns)
        t.eq(err, 'error: failed to create deployment: deployments.apps "one" is forbidden: ' + _denied(
            PARAM_POLICY, "replicas-param-deny",
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"),
            "a missing param under parameterNotFoundAction: Deny")
        t.ok("create", "configmap", "replica-limits", "--from-literal=maxReplicas=2", "-n", pns)
        err = t.fails("create", "deployment", "three", f"--image={PAUSE}", "--replicas=3", "-n", pns)
        t.eq(err, 'error: failed to create deployment: deployments.apps "three" is forbidden: ' + _denied(
            PARAM_POLICY, "replicas-param-deny", "replicas must be at most 2"),
            "the param's limit, with the messageExpression's text")
        t.ok("create", "deployment", "two", f"--image={PAUSE}", "--replicas=2", "-n", pns)

        # Deletes: `object` is null and `oldObject` the stored object.
        keep = _policy("keep-configmaps.example.com", [{
            "expression": "object == null && !('keep' in oldObject.metadata.labels)",
            "message": "configmaps labelled keep may not be deleted", "reason": "Forbidden"}],
            matchConstraints={"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"],
                                                 "resources": ["configmaps"]}]})
        make(keep)
        make(_binding("keep-configmaps", "keep-configmaps.example.com", ["Deny"], "vap-scenario=deny"))
        t.ok("create", "configmap", "kept", "--from-literal=a=b", "-n", ns)
        t.ok("label", "configmap", "kept", "keep=yes", "-n", ns)
        t.ok("create", "configmap", "gone", "--from-literal=a=b", "-n", ns)
        t.ok("label", "configmap", "gone", "other=yes", "-n", ns)
        err = t.fails("delete", "configmap", "kept", "-n", ns)
        t.contains(err, 'configmaps "kept" is forbidden: ' + _denied(
            "keep-configmaps.example.com", "keep-configmaps", "configmaps labelled keep may not be deleted"),
            "a delete judged on the stored object")
        t.ok("get", "configmap", "kept", "-n", ns)
        t.eq(t.ok("delete", "configmap", "gone", "-n", ns).strip(), 'configmap "gone" deleted',
             "a delete the policy allows")

        # Validation at create: nothing to validate, CEL that does not compile, Deny with Warn.
        err = t.fails("create", "-f", "-", stdin=json.dumps(_policy("empty.example.com", [])))
        t.contains(err, "spec.validations: Required value: validations or auditAnnotations must contain at least "
                        "one item", "a policy without validations is refused")
        err = t.fails("create", "-f", "-", stdin=json.dumps(
            _policy("broken.example.com", [{"expression": "object.spec.replicas <="}])))
        t.contains(err, 'spec.validations[0].expression: Invalid value: "object.spec.replicas <=": '
                        'compilation failed: ERROR: <input>:1:', "CEL that does not compile is refused")
        err = t.fails("create", "-f", "-", stdin=json.dumps(
            _binding("both", POLICY, ["Deny", "Warn"], "vap-scenario=deny")))
        t.contains(err, "must not contain both Deny and Warn", "a binding with both Deny and Warn is refused")
        t.eq(t.fails("get", "validatingadmissionpolicy", "broken.example.com"),
             NOT_FOUND.format(res="validatingadmissionpolicies.admissionregistration.k8s.io",
                              name="broken.example.com"), "the refused policy is not stored")
    finally:
        for kind, name in reversed(created):
            t.run("delete", kind, name, "--ignore-not-found")
    for n in (ns, other, plain, pns):
        t.ok("delete", "namespace", n, "--wait=false")
