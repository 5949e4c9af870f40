"""pods/eviction (what `kubectl drain` calls): a pod covered by no PodDisruptionBudget, or not running,
is deleted at once; a running pod's budget must be current and allow a disruption, else upstream's 429
`Cannot evict pod as it would violate the pod's disruption budget.` with the budget's cause; an allowed
eviction takes one disruption from the budget, records the pod in `disruptedPods`, and deletes the pod.
The budget's status is the disruption controller's; the pods are marked Running as a kubelet would,
through `pods/status`."""

from __future__ import annotations

import json

from harness import T, jget, poll, scenario

JSON = {"Content-Type": "application/json"}


def evict(t: T, ns: str, pod: str, dry_run: bool = False) -> tuple[int, str]:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}}
    query = "?dryRun=All" if dry_run else ""
    return t.https("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction{query}",
                   body=json.dumps(body).encode(), headers=JSON)


def running_pod(t: T, ns: str, name: str) -> None:
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "db"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    # As a kubelet reports it: running and ready.
    t.ok("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))


@scenario
def eviction_respects_disruption_budgets(t: T) -> None:
    """pods/eviction deletes unprotected or pending pods at once and honours a PodDisruptionBudget: 429 while
    its status lags or allows nothing, one disruption taken (and the pod recorded) when it allows one."""
    ns = t.namespace("evict")
    # No budget: evicted (deleted) at once, answered with a Success Status.
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "free"},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    code, body = evict(t, ns, "free")
    t.eq((code, json.loads(body).get("status")), (201, "Success"), "eviction of an unprotected pod")
    t.fails("get", "pod", "free", "-n", ns)
    # The name in the body must be the URL's.
    code, body = t.https("POST", f"/api/v1/namespaces/{ns}/pods/x/eviction", headers=JSON, body=json.dumps(
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "y"}}).encode())
    st = t.status_error(body, 400, "BadRequest", "mismatched eviction name")
    t.eq(st["message"], "name in URL does not match name in Eviction object", "mismatch message")

    running_pod(t, ns, "db-0")
    t.ok("create", "pdb", "db", "-n", ns, "--selector=app=db", "--min-available=1")
    # The disruption controller now keeps the budget's status (the "still being processed" 429, for a
    # budget whose status lags its spec, can no longer be caught from here reliably).
    def status_is(want: dict) -> bool:
        pdb = t.json("get", "pdb", "db", "-n", ns)
        st = pdb.get("status", {})
        return st.get("observedGeneration") == pdb["metadata"]["generation"] and all(
            st.get(k) == v for k, v in want.items())
    # One healthy pod, one needed: the budget allows nothing.
    want = {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
    t.true(poll(lambda: status_is(want), 30), "the controller's status allows nothing", t.last_cmd)
    code, body = evict(t, ns, "db-0")
    st = t.status_error(body, 429, "TooManyRequests", "eviction the budget forbids")
    t.eq(st["message"], "Cannot evict pod as it would violate the pod's disruption budget.", "429 message")
    t.eq(jget(st, "details.causes"), [{"reason": "DisruptionBudget",
         "message": "The disruption budget db needs 1 healthy pods and has 1 currently"}], "needs-healthy cause")
    t.ok("get", "pod", "db-0", "-n", ns)
    # A second ready pod: one disruption allowed. A dry run changes nothing, a real eviction takes it
    # and deletes the pod (the controller then drops the deleted pod from disruptedPods).
    running_pod(t, ns, "db-2")
    want = {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}
    t.true(poll(lambda: status_is(want), 30), "the controller's status allows one", t.last_cmd)
    code, body = evict(t, ns, "db-0", dry_run=True)
    t.eq(code, 201, "dry-run eviction")
    t.eq(t.json("get", "pdb", "db", "-n", ns)["status"]["disruptionsAllowed"], 1, "dry run keeps the budget")
    t.ok("get", "pod", "db-0", "-n", ns)
    code, body = evict(t, ns, "db-0")
    t.eq((code, json.loads(body).get("status")), (201, "Success"), "allowed eviction")
    pdb = t.json("get", "pdb", "db", "-n", ns)
    t.eq(pdb["status"]["disruptionsAllowed"], 0, "the eviction took the disruption")
    t.fails("get", "pod", "db-0", "-n", ns)
    # Two budgets over one pod: upstream's 500 Status, answered as a body.
    running_pod(t, ns, "db-1")
    t.ok("create", "pdb", "db2", "-n", ns, "--selector=app=db", "--max-unavailable=1")
    code, body = evict(t, ns, "db-1")
    st = json.loads(body)
    t.eq((code, st.get("status"), st.get("code"), st.get("message")),
         (500, "Failure", 500, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."),
         "two budgets")
