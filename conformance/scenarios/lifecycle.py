"""An object's life: generateName, finalizers and wait --for=delete, wait --for=condition, force delete,
replace --force, the status subresource and generation, and persistence across a server restart.
"""

from __future__ import annotations

import base64
import json
import time

from harness import DEPLOYMENT, NOT_FOUND, POD, SUSPENDED_CRONJOB, TS_RE, Failure, T, jget, load_creds, scenario


@scenario
def wait_for_delete(t: T) -> None:
    """delete with a finalizer leaves a terminating object; wait --for=delete returns once replace drops it."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}, ns)
    out = t.ok("delete", "cm", "held", "-n", ns, "--wait=false")
    t.eq(out.strip(), 'configmap "held" deleted', "delete --wait=false output")
    o = t.json("get", "cm", "held", "-n", ns)
    t.true(bool(TS_RE.match(jget(o, "metadata.deletionTimestamp", ""))), "deletionTimestamp is set", o["metadata"])
    t.eq(jget(o, "metadata.finalizers"), ["example.com/hold"], "finalizers kept")
    w = t.bg("wait", "--for=delete", "cm/held", "-n", ns, "--timeout=60s")
    time.sleep(1.5)
    t.true(w.proc.poll() is None, "kubectl wait still waiting while the finalizer is there",
           f"exited {w.proc.poll()}: {w.out} {w.err}")
    o["metadata"]["finalizers"] = []
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    rc = w.wait_exit(30)
    t.eq(rc, 0, f"kubectl wait exit code (stdout={w.out!r} stderr={w.err!r})")
    t.eq(w.out.strip(), "configmap/held condition met", "kubectl wait output")
    t.eq(t.fails("get", "cm", "held", "-n", ns), NOT_FOUND.format(res="configmaps", name="held"), "gone after wait")


@scenario
def generate_name(t: T) -> None:
    """metadata.generateName gets a random 5-character suffix; create prints the generated name."""
    ns = t.namespace()
    m = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    names = set()
    for _ in range(3):
        out = t.create(m, ns)
        names.add(t.match(out, r"^configmap/(gen-[a-z0-9]{5}) created$", "create output with generateName").group(1))
    t.eq(len(names), 3, "three distinct generated names")
    listed = {n.split("/", 1)[1] for n in t.names(t.ok("get", "cm", "-n", ns, "-o", "name"))}
    t.true(names <= listed, "generated objects are listed", listed)
    o = t.json("get", "cm", sorted(names)[0], "-n", ns)
    t.eq(jget(o, "metadata.generateName"), "gen-", "metadata.generateName kept")


@scenario
def pod_force_delete(t: T) -> None:
    """delete --grace-period=0 --force prints upstream's warning and `force deleted`."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    r = t.run("delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
    t.eq(r.rc, 0, f"exit code ({r.both()})")
    t.eq(r.out.strip(), 'pod "p" force deleted', "stdout")
    t.contains(r.err, "Warning: Immediate deletion does not wait for confirmation that the running resource has "
                      "been terminated.", "stderr warning")
    t.eq(t.fails("get", "pod", "p", "-n", ns), NOT_FOUND.format(res="pods", name="p"), "gone")


@scenario
def replace_force(t: T) -> None:
    """replace --force deletes and re-creates the object (new uid)."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"}, "data": {"v": "1"}}, ns)
    old = t.json("get", "cm", "f", "-n", ns)
    out = t.ok("replace", "--force", "-n", ns, "-f", "-",
               stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"},
                                 "data": {"v": "2"}}))
    t.eq(out.splitlines(), ['configmap "f" deleted', "configmap/f replaced"], "replace --force output")
    new = t.json("get", "cm", "f", "-n", ns)
    t.eq(new.get("data"), {"v": "2"}, "data after replace --force")
    t.true(new["metadata"]["uid"] != old["metadata"]["uid"], "a new uid after replace --force",
           (old["metadata"]["uid"], new["metadata"]["uid"]))


@scenario
def wait_for_condition(t: T) -> None:
    """wait --for=condition=Available and --for=jsonpath return once a status write makes them true."""
    ns = t.namespace()
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.create(POD.format(name="p", labels=""), ns)
    w1 = t.bg("wait", "--for=condition=Available", "deploy/d", "-n", ns, "--timeout=60s")
    w2 = t.bg("wait", "--for=jsonpath={.status.phase}=Running", "pod/p", "-n", ns, "--timeout=60s")
    time.sleep(1.5)
    t.true(w1.proc.poll() is None and w2.proc.poll() is None, "both waits still waiting",
           (w1.out, w1.err, w2.out, w2.err))
    d = t.json("get", "deploy", "d", "-n", ns)
    d["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
                   "observedGeneration": 1, "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(d))
    t.eq(w1.wait_exit(30), 0, f"wait --for=condition exit code (stdout={w1.out!r} stderr={w1.err!r})")
    t.eq(w1.out.strip(), "deployment.apps/d condition met", "wait --for=condition output")
    p = t.json("get", "pod", "p", "-n", ns)
    p["status"]["phase"] = "Running"
    t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(p))
    t.eq(w2.wait_exit(30), 0, f"wait --for=jsonpath exit code (stdout={w2.out!r} stderr={w2.err!r})")
    t.eq(w2.out.strip(), "pod/p condition met", "wait --for=jsonpath output")
    r = t.run("wait", "--for=condition=Ready", "pod/p", "-n", ns, "--timeout=2s")
    t.eq(r.rc, 1, "wait that times out exits 1")
    t.eq(r.err.strip(), "error: timed out waiting for the condition on pods/p", "wait timeout message")


@scenario
def status_subresource(t: T) -> None:
    """replace ignores status changes; replace --subresource=status changes only status; generation tracks spec
    (on a suspended CronJob, whose status no controller writes)."""
    ns = t.namespace()
    t.create(dict(SUSPENDED_CRONJOB, metadata={"name": "st"}), ns)
    o = t.json("get", "cronjob", "st", "-n", ns)
    before = o.get("status", {})
    t.eq(jget(o, "metadata.generation"), 1, "generation after create")
    o["spec"]["schedule"] = "0 0 2 1 *"
    o["status"] = {"lastScheduleTime": "2024-01-01T00:00:00Z"}
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    o = t.json("get", "cronjob", "st", "-n", ns)
    t.eq(jget(o, "spec.schedule"), "0 0 2 1 *", "spec.schedule replaced")
    t.eq(o.get("status", {}), before, "status unchanged by a main-resource replace")
    t.eq(jget(o, "metadata.generation"), 2, "generation after a spec change")
    o["spec"]["schedule"] = "0 0 3 1 *"
    o["status"] = {"lastScheduleTime": "2024-01-02T00:00:00Z",
                   "active": [{"apiVersion": "batch/v1", "kind": "Job", "name": "st-1", "namespace": ns}]}
    out = t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(o))
    t.eq(out.strip(), "cronjob.batch/st replaced", "replace --subresource=status output")
    o = t.json("get", "cronjob", "st", "-n", ns)
    t.eq(jget(o, "spec.schedule"), "0 0 2 1 *", "spec unchanged by a status replace")
    t.eq(jget(o, "status.lastScheduleTime"), "2024-01-02T00:00:00Z", "status replaced")
    t.eq(jget(o, "metadata.generation"), 2, "generation unchanged by a status write")
    out = t.ok("get", "cronjob", "st", "-n", ns)
    r = t.row(t.table(out), "st", "get cronjob")
    t.eq((r["SUSPEND"], r["ACTIVE"]), ("True", "1"), "table columns reflect spec and status")
    st = t.raw(f"/apis/batch/v1/namespaces/{ns}/cronjobs/st/status")
    t.eq((st.get("kind"), jget(st, "status.lastScheduleTime")), ("CronJob", "2024-01-02T00:00:00Z"), "GET .../status")


@scenario
def persistence_across_restart(t: T) -> None:
    """data persists across a server restart on the same data dir; the old kubeconfig still works (same CA)."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"k": "v"}}, ns)
    t.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keep"},
              "data": {"k": base64.b64encode(b"v").decode()}}, ns)
    t.create(DEPLOYMENT.format(name="keep", labels=""), ns)
    before = t.json("get", "cm", "keep", "-n", ns)
    srv = t.server
    srv.stop()
    t.true(srv.proc.poll() is not None, "server stopped", srv.proc.poll())
    second = srv.workdir / "admin-after-restart.kubeconfig"
    try:
        srv.start(kubeconfig=second)
    except RuntimeError as e:
        raise Failure("server restarts on the same data dir", "ready", str(e), " ".join(srv.args(second))) from None
    after = t.json("get", "cm", "keep", "-n", ns)  # with the kubeconfig written by the first start
    t.eq(after.get("data"), {"k": "v"}, "configmap data after restart")
    t.eq(after["metadata"]["uid"], before["metadata"]["uid"], "uid after restart")
    t.eq(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"], "resourceVersion after restart")
    t.eq(t.ok("get", "secret", "keep", "-n", ns, "-o", "jsonpath={.data.k}"), base64.b64encode(b"v").decode(),
         "secret after restart")
    t.eq(t.ok("get", "deploy", "keep", "-n", ns, "-o", "name").strip(), "deployment.apps/keep", "deployment after restart")
    out = t.ok("get", "ns")
    names = [r["NAME"] for r in t.table(out)]
    t.eq(len(names), len(set(names)), "no duplicated namespaces after restart")
    for n in ("default", "kube-system", ns):
        t.true(n in names, f"namespace {n} after restart", names)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}, ns)
    rv_new = int(t.ok("get", "cm", "new", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"))
    t.true(rv_new > int(before["metadata"]["resourceVersion"]), "resourceVersions keep growing after restart",
           (before["metadata"]["resourceVersion"], rv_new))
    if second.exists():
        c1 = load_creds(srv.kubeconfig, srv.cache_dir)["ca"].read_bytes()
        c2 = load_creds(second, srv.cache_dir)["ca"].read_bytes()
        t.eq(c1, c2, "the CA in the kubeconfig written after restart is the same CA")
