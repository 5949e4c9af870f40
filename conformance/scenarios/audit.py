"""Auditing: `--audit-policy-file` (audit.k8s.io/v1 Policy) and `--audit-log-path` write upstream's
audit.k8s.io/v1 Events, one JSON line per stage; PodSecurity's `audit` mode annotates them."""

from __future__ import annotations

import json
import time

from harness import T, https_raw, poll, scenario

POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: None
  verbs: [get]
  resources: [{group: "", resources: [events]}]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Metadata
"""


def restart(t: T, args: list[str]) -> None:
    t.server.stop()
    t.server.extra_args = args
    t.server.start()


def events(t: T) -> list[dict]:
    path = t.server.workdir / "audit.log"
    if not path.exists():
        return []
    # Only complete lines: the writer may be appending the next batch while this reads.
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]


def find(t: T, pred, count: int = 1, timeout: float = 10) -> list[dict]:
    """The log's events that `pred` accepts, once there are `count` of them (the writer is asynchronous)."""
    found: list[dict] = []

    def ready() -> bool:
        nonlocal found
        found = [e for e in events(t) if pred(e)]
        return len(found) >= count

    poll(ready, timeout)
    return found


def ref(e: dict, resource: str, ns: str, name: str | None = None) -> bool:
    r = e.get("objectRef") or {}
    return r.get("resource") == resource and r.get("namespace") == ns and (name is None or r.get("name") == name)


@scenario
def audit_log_and_pod_security_audit(t: T) -> None:
    """A policy (None for health checks and for `get` of events, RequestResponse for configmaps, Metadata for
    the rest) and a log: a create is logged at both stages with its verb, objectRef, user, annotations and
    status (and the objects at RequestResponse); the `Audit-Id` header names the request's events; a
    forbidden request is logged with `authorization.k8s.io/decision: forbid`; the None rules suppress
    events; a watch gets ResponseStarted; a pod that violates `restricted` in a namespace with
    `pod-security.kubernetes.io/audit=restricted` is admitted and its event carries upstream's
    `audit-violations` and `enforce-policy` annotations (a Deployment's template only the first); failed
    credentials are logged at ResponseStarted without a user; a bad policy stops the start."""
    ns = t.namespace()
    workdir = t.server.workdir
    policy = workdir / "audit-policy.yaml"
    policy.write_text(POLICY)
    log = workdir / "audit.log"
    log.unlink(missing_ok=True)
    me = t.ok("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
    try:
        restart(t, ["--audit-policy-file", str(policy), "--audit-log-path", str(log)])

        # A create, at RequestResponse: both stages, one auditID, the objects.
        t.ok("create", "configmap", "audited", "-n", ns, "--from-literal=k=v")
        done = find(t, lambda e: e["verb"] == "create" and ref(e, "configmaps", ns, "audited"))
        t.true(len(done) == 1, "the create's ResponseComplete event", done)
        create = [e for e in events(t) if e["auditID"] == done[0]["auditID"]]
        t.eq([e["stage"] for e in create], ["RequestReceived", "ResponseComplete"], "the create's stages (one auditID)")
        received, done = create
        t.eq(received["objectRef"].get("name"), None, "at RequestReceived the create's name is not known yet")
        t.eq((done["kind"], done["apiVersion"], done["level"]), ("Event", "audit.k8s.io/v1", "RequestResponse"),
             "the event's kind and level")
        t.eq(done["requestURI"].split("?")[0], f"/api/v1/namespaces/{ns}/configmaps", "requestURI")
        t.eq(done["objectRef"], {"resource": "configmaps", "namespace": ns, "name": "audited", "apiVersion": "v1"},
             "objectRef (the name from the request's object)")
        t.eq(done["user"]["username"], me, "the user is the authenticated one")
        t.true("system:masters" in done["user"].get("groups", []), "the user's groups", done["user"])
        t.eq(done["responseStatus"], {"metadata": {}, "code": 201}, "responseStatus of a create")
        t.eq(done["requestObject"]["data"], {"k": "v"}, "requestObject at RequestResponse")
        t.eq(done["responseObject"]["metadata"]["name"], "audited", "responseObject at RequestResponse")
        t.eq(done["annotations"].get("authorization.k8s.io/decision"), "allow", "the authorization decision")
        t.true("authorization.k8s.io/decision" not in received.get("annotations", {}),
               "RequestReceived comes before authorization", received)
        t.true("responseStatus" not in received, "RequestReceived has no responseStatus", received)
        t.true(done["userAgent"].startswith("kubectl"), "the user agent", done["userAgent"])
        t.true(len(done["sourceIPs"]) >= 1 and done["sourceIPs"][0] == "127.0.0.1", "sourceIPs", done["sourceIPs"])
        t.true(done["stageTimestamp"] >= done["requestReceivedTimestamp"]
               and len(done["stageTimestamp"]) == len("2006-01-02T15:04:05.000000Z"),
               "MicroTime timestamps", (done["requestReceivedTimestamp"], done["stageTimestamp"]))

        # The Audit-Id response header names the request's events.
        status, headers, _ = https_raw(t.server.creds, "GET", f"/api/v1/namespaces/{ns}/configmaps/audited")
        t.eq(status, 200, "GET of the configmap")
        audit_id = headers.get("audit-id", "")
        t.true(len(audit_id) == 36, "an Audit-Id header (a UUID)", headers)
        got = find(t, lambda e: e["auditID"] == audit_id and e["stage"] == "ResponseComplete")
        t.true(len(got) == 1 and got[0]["verb"] == "get" and got[0]["responseStatus"]["code"] == 200,
               "the header's auditID is the GET's event", got)

        # A forbidden request (impersonating a user without rights).
        t.fails("get", "secrets", "-n", ns, "--as", "audit-nobody")
        denied = find(t, lambda e: (e.get("impersonatedUser") or {}).get("username") == "audit-nobody"
                      and e["stage"] == "ResponseComplete")
        t.true(len(denied) == 1, "the forbidden request is logged", denied)
        d = denied[0]
        t.eq((d["verb"], d["level"], d["user"]["username"]), ("list", "Metadata", me),
             "verb, level and the impersonating user")
        t.eq(d["annotations"].get("authorization.k8s.io/decision"), "forbid", "decision forbid")
        t.true("cannot list resource" in d["annotations"].get("authorization.k8s.io/reason", "")
               or d["annotations"].get("authorization.k8s.io/reason") == "",
               "the reason annotation", d["annotations"])
        t.eq((d["responseStatus"]["code"], d["responseStatus"].get("status"), d["responseStatus"].get("reason")),
             (403, "Failure", "Forbidden"), "responseStatus of a forbidden request")
        t.contains(d["responseStatus"].get("message", ""), 'User "audit-nobody" cannot list resource "secrets"',
                   "the forbidden message")

        # None rules: `get` of events and health checks are not logged; a list of events is.
        t.fails("get", "event", "no-such-event", "-n", ns)
        t.ok("get", "events", "-n", ns)
        t.https("GET", "/readyz")
        listed = find(t, lambda e: e["verb"] == "list" and ref(e, "events", ns) and e["stage"] == "ResponseComplete")
        t.true(len(listed) == 1, "a list of events is logged (Metadata)", listed)
        t.eq([e for e in events(t) if e["verb"] == "get" and ref(e, "events", ns)], [],
             "no event for a get of events (None)")
        t.eq([e for e in events(t) if e["requestURI"].startswith(("/readyz", "/healthz", "/livez"))], [],
             "no event for health checks (None)")

        # A watch: ResponseStarted when the stream starts, ResponseComplete when it ends.
        status, _ = t.https("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1")
        t.eq(status, 200, "the watch")
        watch = find(t, lambda e: e["verb"] == "watch" and ref(e, "configmaps", ns), 3)
        t.eq([e["stage"] for e in watch], ["RequestReceived", "ResponseStarted", "ResponseComplete"],
             "a watch's stages")

        # PodSecurity audit: admitted (enforce privileged), annotated with upstream's text.
        t.ok("label", "namespace", ns, "pod-security.kubernetes.io/audit=restricted",
             "pod-security.kubernetes.io/enforce=privileged")
        t.ok("run", "psa-pod", "-n", ns, "--image", "busybox", "--restart", "Never", "--", "sleep", "1")
        pod = find(t, lambda e: e["verb"] == "create" and ref(e, "pods", ns, "psa-pod")
                   and e["stage"] == "ResponseComplete")
        t.true(len(pod) == 1 and pod[0]["responseStatus"]["code"] == 201, "the pod was admitted", pod)
        ann = pod[0].get("annotations", {})
        t.eq(ann.get("pod-security.kubernetes.io/audit-violations"),
             'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container '
             '"psa-pod" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
             '(container "psa-pod" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true '
             '(pod or container "psa-pod" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
             'container "psa-pod" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
             '"Localhost")', "the audit-violations annotation")
        t.eq(ann.get("pod-security.kubernetes.io/enforce-policy"), "privileged:latest", "the enforce-policy annotation")
        t.ok("create", "deployment", "psa-deploy", "-n", ns, "--image", "busybox")
        dep = find(t, lambda e: e["verb"] == "create" and ref(e, "deployments", ns, "psa-deploy")
                   and e["stage"] == "ResponseComplete")
        t.true(len(dep) == 1, "the deployment's event", dep)
        dann = dep[0].get("annotations", {})
        t.true(dann.get("pod-security.kubernetes.io/audit-violations", "").startswith(
            'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false'),
            "a workload's template is audited too", dann)
        t.true("pod-security.kubernetes.io/enforce-policy" not in dann, "templates are never enforced", dann)
        # A namespace without the audit label: no audit-violations.
        other = t.namespace("plain")
        t.ok("run", "plain-pod", "-n", other, "--image", "busybox", "--restart", "Never")
        plain = find(t, lambda e: e["verb"] == "create" and ref(e, "pods", other, "plain-pod")
                     and e["stage"] == "ResponseComplete")
        t.true(len(plain) == 1 and "pod-security.kubernetes.io/audit-violations" not in plain[0].get("annotations", {}),
               "no audit annotation without the label", plain)

        # Credentials that fail: upstream's failed-authentication event (ResponseStarted, no user).
        status, headers, _ = https_raw(t.server.creds, "GET", f"/api/v1/namespaces/{ns}/secrets",
                                       headers={"Authorization": "Bearer not-a-token"}, client_cert=False)
        t.eq(status, 401, "a bogus bearer token")
        failed = find(t, lambda e: e["auditID"] == headers.get("audit-id"))
        t.true(len(failed) == 1 and failed[0]["stage"] == "ResponseStarted" and failed[0]["user"] == {}
               and failed[0]["verb"] == "list" and failed[0]["responseStatus"]["code"] == 401,
               "the failed authentication is logged once, without a user", failed)

        # A bad policy stops the start with the file's problem.
        bad = workdir / "audit-policy-bad.yaml"
        bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
        t.server.stop()
        t.server.extra_args = ["--audit-policy-file", str(bad), "--audit-log-path", str(log)]
        try:
            t.server.start(timeout=20)
            t.true(False, "a policy with an unknown level is refused at start", "the server started")
        except RuntimeError as e:
            t.contains(str(e), 'rules[0].level: Unsupported value: "Everything"', "the start-up error")
    finally:
        restart(t, [])
    time.sleep(0.5)
    before = len(events(t))
    t.ok("create", "configmap", "unaudited", "-n", ns)
    time.sleep(1)
    t.eq(len(events(t)), before, "without the flags nothing is logged")
