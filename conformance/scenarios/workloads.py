"""Workload controllers (issue #16): Deployments and ReplicaSets driven through stock kubectl.

Without hollow nodes no kubelet reports pods, so where a scenario needs Ready pods it patches
pods/status through the API with the admin kubeconfig, as a kubelet would (a real write through the
real API, never storage)."""

import json
import re

from harness import T, scenario, poll
from scenarios.nodes import nodes

HASH = "pod-template-hash"
REV = "deployment.kubernetes.io/revision"


def _items(t: T, ns: str, kind: str, selector: str = "app=web") -> list:
    return t.json("get", kind, "-n", ns, "-l", selector)["items"]


def _kubelet_ready(t: T, ns: str) -> None:
    """Report every pending pod Running and Ready, as the kubelet would (pods/status via the API)."""
    for p in _items(t, ns, "pods"):
        conds = (p.get("status") or {}).get("conditions") or []
        if p["metadata"].get("deletionTimestamp") or any(c["type"] == "Ready" for c in conds):
            continue
        status = {"status": {"phase": "Running", "podIP": "10.244.0.10",
                             "conditions": [{"type": "Ready", "status": "True"}]}}
        t.run("patch", "pod", p["metadata"]["name"], "-n", ns, "--subresource=status", "--type=merge",
              "-p", json.dumps(status))


def _settle(t: T, ns: str, cond, what: str, timeout: float = 30) -> None:
    def step() -> bool:
        _kubelet_ready(t, ns)
        return cond()
    t.true(poll(step, timeout, interval=0.5), what, t.last_cmd)


@scenario
def wl_deployment_rollout(t: T) -> None:
    """a Deployment creates a ReplicaSet with the hash label and owned pods; scale, set image, history, undo, delete."""
    nodes(t)  # the scheduler's events need somewhere to place the pods
    ns = t.namespace()
    t.ok("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns)
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 3, 30), "3 pods created", t.last_cmd)
    sets = _items(t, ns, "replicasets")
    t.eq(len(sets), 1, "one ReplicaSet")
    rs = sets[0]
    h = rs["metadata"]["labels"].get(HASH)
    t.true(bool(h) and rs["metadata"]["name"] == f"web-{h}", "ReplicaSet named web-<pod-template-hash>", rs["metadata"])
    t.eq(rs["spec"]["selector"]["matchLabels"].get(HASH), h, "ReplicaSet selector has the hash")
    t.eq(rs["metadata"]["annotations"].get(REV), "1", "first revision")
    refs = rs["metadata"]["ownerReferences"]
    t.eq([(r["kind"], r["name"], r.get("controller"), r.get("blockOwnerDeletion")) for r in refs],
         [("Deployment", "web", True, True)], "ReplicaSet owned by the Deployment")
    for p in _items(t, ns, "pods"):
        t.eq(p["metadata"]["labels"].get(HASH), h, "pod carries the hash label")
        t.true(p["metadata"]["name"].startswith(f"web-{h}-"), "pod generateName <rs>-", p["metadata"]["name"])
        t.eq([(r["kind"], r["uid"], r.get("controller")) for r in p["metadata"]["ownerReferences"]],
             [("ReplicaSet", rs["metadata"]["uid"], True)], "pod owned by the ReplicaSet")
    # Events as upstream's controllers record them (core/v1, one per pod, from the controller's name), and
    # the scheduler's (events.k8s.io/v1) in the same list that `kubectl describe` reads.
    pods = sorted(p["metadata"]["name"] for p in _items(t, ns, "pods"))
    def created_events() -> list:
        out = t.ok("describe", "replicaset", rs["metadata"]["name"], "-n", ns)
        return sorted(re.findall(r"Normal\s+SuccessfulCreate\s+\S+\s+replicaset-controller\s+Created pod: (\S+)", out))
    t.true(poll(lambda: created_events() == pods, 15), "describe rs lists a SuccessfulCreate per pod", created_events())
    t.true(poll(lambda: re.search(r"Normal\s+ScalingReplicaSet\s+\S+\s+deployment-controller\s+Scaled up replica set "
                                  + rs["metadata"]["name"] + " from 0 to 3",
                                  t.ok("describe", "deployment", "web", "-n", ns)) is not None, 15),
           "describe deployment lists ScalingReplicaSet", t.last_cmd)
    t.true(poll(lambda: re.search(r"Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned "
                                  + f"{ns}/{pods[0]} to ", t.ok("describe", "pod", pods[0], "-n", ns)) is not None, 15),
           "describe pod lists the scheduler's Scheduled event", t.last_cmd)

    t.ok("scale", "deployment", "web", "--replicas=6", "-n", ns)
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 6, 30), "6 pods after scale", t.last_cmd)
    _settle(t, ns, lambda: t.json("get", "deployment", "web", "-n", ns).get("status", {}).get("availableReplicas") == 6,
            "6 available")
    d = t.json("get", "deployment", "web", "-n", ns)
    conds = {c["type"]: (c["status"], c["reason"]) for c in d["status"]["conditions"]}
    t.eq(conds.get("Available"), ("True", "MinimumReplicasAvailable"), "Available condition")
    t.eq(conds.get("Progressing"), ("True", "NewReplicaSetAvailable"), "Progressing condition")

    t.ok("set", "image", "deployment/web", "nginx=nginx:1.27", "-n", ns)
    _settle(t, ns, lambda: len(_items(t, ns, "replicasets")) == 2
            and t.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=1s").rc == 0,
            "rollout to the new template finishes", timeout=60)
    revs = sorted(r["metadata"]["annotations"][REV] for r in _items(t, ns, "replicasets"))
    t.eq(revs, ["1", "2"], "revisions 1 and 2")
    hist = t.ok("rollout", "history", "deployment/web", "-n", ns)
    t.eq([line.split()[0] for line in hist.strip().splitlines()[2:]], ["1", "2"], "rollout history lists both")

    t.ok("rollout", "undo", "deployment/web", "-n", ns)
    _settle(t, ns, lambda: t.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=1s").rc == 0
            and any(r["metadata"]["annotations"][REV] == "3" for r in _items(t, ns, "replicasets")),
            "undo rolls back as revision 3", timeout=60)
    by_rev = {r["metadata"]["annotations"][REV]: r for r in _items(t, ns, "replicasets")}
    t.eq(by_rev["3"]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx", "revision 3 has the old image")
    t.eq(by_rev["3"]["metadata"]["labels"][HASH], h, "revision 3 is the first ReplicaSet again")

    t.ok("delete", "deployment", "web", "-n", ns)
    t.true(poll(lambda: not _items(t, ns, "replicasets") and not _items(t, ns, "pods"), 30),
           "garbage collector removes the ReplicaSets and pods", t.last_cmd)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def wl_replicaset_adopts_and_replaces(t: T) -> None:
    """a ReplicaSet adopts a matching orphan pod and replaces a deleted pod."""
    ns = t.namespace()
    t.ok("run", "orphan", "--image=nginx", "--labels=app=web", "-n", ns)
    t.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}, ns)
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 2 and all(
        p["metadata"].get("ownerReferences") for p in _items(t, ns, "pods")), 30),
        "the orphan is adopted and one pod created", t.last_cmd)
    t.ok("delete", "pod", "orphan", "-n", ns, "--grace-period=1")
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 2, 30), "a deleted pod is replaced", t.last_cmd)
    status = t.json("get", "replicaset", "web", "-n", ns)["status"]
    t.eq((status["replicas"], status.get("fullyLabeledReplicas"), status.get("observedGeneration")), (2, 2, 1),
         "ReplicaSet status")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def wl_replication_controller_and_any_owner(t: T) -> None:
    """a ReplicationController keeps its replicas (status written, events from replication-controller);
    deleting it removes its pods; the garbage collector follows any kind (a ConfigMap owned by a Secret
    goes with the Secret, a reference to a missing owner is dropped while a live one stays)."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
              "spec": {"replicas": 2, "selector": {"app": "web"},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"terminationGracePeriodSeconds": 1,
                                             "containers": [{"name": "c", "image": "nginx"}]}}}}, ns)
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 2, 30), "the RC creates 2 pods", t.last_cmd)
    rc = t.json("get", "rc", "rc", "-n", ns)
    for p in _items(t, ns, "pods"):
        t.eq([(r["kind"], r["uid"], r.get("controller")) for r in p["metadata"]["ownerReferences"]],
             [("ReplicationController", rc["metadata"]["uid"], True)], "pod owned by the RC")
    t.true(poll(lambda: (t.json("get", "rc", "rc", "-n", ns).get("status") or {}).get("replicas") == 2, 15),
           "RC status.replicas", t.last_cmd)
    t.true(poll(lambda: len(re.findall(r"SuccessfulCreate\s+\S+\s+replication-controller\s+Created pod:",
                                       t.ok("describe", "rc", "rc", "-n", ns))) == 2, 15),
           "describe rc lists a SuccessfulCreate per pod", t.last_cmd)
    t.ok("scale", "rc", "rc", "--replicas=1", "-n", ns)
    t.true(poll(lambda: len([p for p in _items(t, ns, "pods") if not p["metadata"].get("deletionTimestamp")]) == 1,
                30), "scaled to 1", t.last_cmd)
    t.ok("delete", "rc", "rc", "-n", ns, "--wait=false")
    t.true(poll(lambda: not _items(t, ns, "pods"), 30), "the RC's pods are collected", t.last_cmd)

    t.ok("create", "secret", "generic", "parent", "--from-literal=k=v", "-n", ns)
    uid = t.ok("get", "secret", "parent", "-n", ns, "-o", "jsonpath={.metadata.uid}")
    owner = {"apiVersion": "v1", "kind": "Secret", "name": "parent", "uid": uid}
    missing = {"apiVersion": "v1", "kind": "Secret", "name": "gone", "uid": "00000000-0000-0000-0000-000000000001"}
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "ownerReferences": [owner]}}, ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "half", "ownerReferences": [owner, missing]}}, ns)
    t.true(poll(lambda: [r["name"] for r in t.json("get", "cm", "half", "-n", ns)["metadata"].get(
        "ownerReferences", [])] == ["parent"], 30), "the dangling reference is dropped, the live one kept", t.last_cmd)
    t.ok("delete", "secret", "parent", "-n", ns)
    t.true(poll(lambda: t.run("get", "cm", "child", "half", "-n", ns, "--ignore-not-found", "-o", "name").out.strip() == "",
                30), "ConfigMaps owned by the deleted Secret are collected", t.last_cmd)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def wl_cascade_orphan_and_foreground(t: T) -> None:
    """`kubectl delete --cascade=orphan` leaves the ReplicaSet, released (no owner reference);
    `--cascade=foreground` deletes the pods before their ReplicaSet goes (the collector's finalizers)."""
    ns = t.namespace("cascade")
    # A short grace period: pods on a (hollow) node are deleted gracefully, and foreground waits for them.
    t.create({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "labels": {"app": "web"}},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"terminationGracePeriodSeconds": 1,
                                             "containers": [{"name": "c", "image": "busybox"}]}}}}, ns)
    t.true(poll(lambda: len(_items(t, ns, "rs")) == 1 and len(_items(t, ns, "pods")) == 2, 30),
           "the Deployment's ReplicaSet and pods", t.last_cmd)
    rs = _items(t, ns, "rs")[0]["metadata"]["name"]
    t.ok("delete", "deployment", "web", "-n", ns, "--cascade=orphan", "--timeout=30s")
    t.fails("get", "deployment", "web", "-n", ns)
    t.true(poll(lambda: not (t.json("get", "rs", rs, "-n", ns)["metadata"].get("ownerReferences")), 30),
           "the orphaned ReplicaSet lost its owner reference", t.last_cmd)
    t.eq(len(_items(t, ns, "pods")), 2, "the orphaned ReplicaSet keeps its pods")
    t.ok("delete", "rs", rs, "-n", ns, "--cascade=foreground", "--timeout=40s", timeout=60)
    t.fails("get", "rs", rs, "-n", ns)
    t.true(poll(lambda: len(_items(t, ns, "pods")) == 0, 30), "foreground deletion removed the pods", t.last_cmd)



RACE_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: races.scale.example.com}
spec:
  group: scale.example.com
  scope: Namespaced
  names: {plural: races, singular: race, kind: Race}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {replicas: {type: integer}, writes: {type: integer}}}
"""


@scenario
def wl_scale_races_status_writes(t: T) -> None:
    """A scale patch naming no resourceVersion succeeds while status writes race it (upstream re-applies
    it to the fresh object, as a controller's status updates race `kubectl scale`), and never
    overwrites the status those writes made. A custom resource, so that no controller writes too."""
    import threading
    ns = t.namespace()
    t.ok("apply", "-f", "-", stdin=RACE_CRD)
    try:
        t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/races.scale.example.com")
        t.ok("apply", "-n", ns, "-f", "-",
             stdin="apiVersion: scale.example.com/v1\nkind: Race\nmetadata: {name: r}\nspec: {replicas: 1}\n")
        base = f"/apis/scale.example.com/v1/namespaces/{ns}/races/r"
        merge = {"Content-Type": "application/merge-patch+json"}
        stop = threading.Event()
        codes: list[int] = []

        def write_status() -> None:
            while not stop.is_set() and len(codes) < 400:
                body = json.dumps({"status": {"writes": len(codes) + 1}}).encode()
                codes.append(t.https("PATCH", base + "/status", body, headers=merge)[0])

        writer = threading.Thread(target=write_status)
        writer.start()
        try:
            for n in range(2, 32):
                code, out = t.https("PATCH", base + "/scale", json.dumps({"spec": {"replicas": n}}).encode(),
                                    headers=merge)
                t.eq((code, (json.loads(out).get("spec") or {}).get("replicas")), (200, n),
                     f"scale patch to {n} during status writes")
        finally:
            stop.set()
            writer.join(timeout=60)
        t.true(bool(codes) and all(c == 200 for c in codes), "every status write succeeded", sorted(set(codes)))
        obj = json.loads(t.https("GET", base)[1])
        t.eq((obj["spec"]["replicas"], obj["status"].get("writes")), (31, len(codes)),
             "the last scale and the last status write both stand")
    finally:
        t.run("delete", "crd", "races.scale.example.com", "--wait=false")


@scenario
def wl_component_writes_name_their_manager(t: T) -> None:
    """Writes by the control plane's components are recorded under upstream's manager names (the first
    segment of their User-Agent): the ReplicaSet a Deployment makes and the Deployment's status are
    `kube-controller-manager`'s, never an empty manager."""
    ns = t.namespace()
    t.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "managed"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "managed"}},
        "template": {"metadata": {"labels": {"app": "managed"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}, ns)

    def managers(kind: str, selector: list[str]) -> list[tuple[str, str]]:
        items = t.json("get", kind, "-n", ns, *selector, "--show-managed-fields").get("items", [])
        return sorted((m.get("manager", ""), m.get("subresource", "")) for o in items
                      for m in o["metadata"].get("managedFields", []))

    t.true(poll(lambda: ("kube-controller-manager", "") in managers("rs", ["-l", "app=managed"]), 30),
           "the ReplicaSet is kube-controller-manager's", managers("rs", ["-l", "app=managed"]))
    t.true(poll(lambda: ("kube-controller-manager", "status") in managers("deploy", []), 30),
           "the Deployment's status is kube-controller-manager's", managers("deploy", []))
    every = managers("rs", []) + managers("deploy", [])
    t.true(all(m for m, _ in every), "no write recorded under an empty manager", every)
