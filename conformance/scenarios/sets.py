"""DaemonSets and StatefulSets (issue #16) on hollow nodes, driven with stock kubectl.

The hollow nodes come from scenarios.nodes (3 per server, shared with other scenarios): the DaemonSet
is pinned to those three by a required node affinity on their hostnames (so a Node another scenario
left behind cannot hold its rollout), and a taint added here is removed before the scenario ends.
Pods get a 1 s grace period because hollow nodes honour it and sets delete pods one at a time.
"""

from __future__ import annotations

import json

from harness import T, parse_json_stream, poll, scenario
from scenarios.nodes import nodes

HASH = "controller-revision-hash"


def _pods(t: T, ns: str, selector: str) -> list[dict]:
    return t.json("get", "pods", "-n", ns, "-l", selector)["items"]


def _running_ready(p: dict) -> bool:
    st = p.get("status", {})
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
    return st.get("phase") == "Running" and ready and not p["metadata"].get("deletionTimestamp")


def _daemonset(names: list[str], image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "ds"}},
        "template": {"metadata": {"labels": {"app": "ds"}}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": names}]}]}}},
            "containers": [{"name": "c", "image": image}]}}}}


def _ds_status(t: T, ns: str) -> dict:
    return t.json("get", "ds", "ds", "-n", ns).get("status", {})


def _statefulset(name: str, replicas: int, extra: dict | None = None, claims: bool = False) -> dict:
    spec = {"serviceName": name, "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox"}]}}}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        spec["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    spec.update(extra or {})
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}


def _watch_events(b) -> list[tuple[str, str, dict]]:
    """(type, pod name, object) of a `get pods -w --output-watch-events -o json` stream."""
    return [(e["type"], e["object"]["metadata"]["name"], e["object"]) for e in parse_json_stream(b.out)
            if "object" in e]


@scenario
def sets_daemonset_per_node(t: T):
    """a DaemonSet runs one pod per hollow node, keeps off a tainted node, and rolls a new image node by node"""
    names = nodes(t)
    ns = t.namespace()
    try:
        t.create(_daemonset(names, "busybox"), ns)
        t.true(poll(lambda: sum(map(_running_ready, _pods(t, ns, "app=ds"))) == 3, 60),
               "3 daemon pods Running and Ready", t.last_cmd)
        out = t.ok("rollout", "status", "ds/ds", "-n", ns, "--timeout=60s")
        t.contains(out, 'daemon set "ds" successfully rolled out', "rollout status")
        pods = _pods(t, ns, "app=ds")
        t.eq(sorted(p["spec"]["nodeName"] for p in pods), sorted(names), "one pod on each node")
        for p in pods:
            terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"]
            t.eq(terms, [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                           "values": [p["spec"]["nodeName"]]}]}],
                 "pod pinned by a matchFields node affinity (bound by the scheduler)")
            tols = {(x.get("key"), x.get("effect")) for x in p["spec"].get("tolerations", [])}
            for want in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                         ("node.kubernetes.io/unschedulable", "NoSchedule")):
                t.true(want in tols, f"daemon toleration {want}", tols)
            t.true(HASH in p["metadata"]["labels"] and "pod-template-generation" in p["metadata"]["labels"],
                   "pod carries the revision hash and template generation", p["metadata"]["labels"])
            t.true(p["metadata"]["name"].startswith("ds-"), "pod named ds-<random>", p["metadata"]["name"])
        h1 = pods[0]["metadata"]["labels"][HASH]
        revs = t.json("get", "controllerrevisions", "-n", ns)["items"]
        t.eq([(r["metadata"]["name"], r["revision"]) for r in revs], [(f"ds-{h1}", 1)], "one ControllerRevision")
        st = _ds_status(t, ns)
        t.eq((st.get("desiredNumberScheduled"), st.get("currentNumberScheduled"), st.get("numberReady"),
              st.get("numberAvailable"), st.get("updatedNumberScheduled"), st.get("numberMisscheduled")),
             (3, 3, 3, 3, 3, 0), "DaemonSet status")
        ev = t.ok("get", "events.events.k8s.io", "-n", ns)
        t.match(ev, r"Normal\s+SuccessfulCreate\s+daemonset/ds\s+Created pod: ds-", "SuccessfulCreate event")

        # A NoSchedule taint the DaemonSet does not tolerate: the pod there may stay (misscheduled) ...
        t.ok("taint", "node", names[0], "sets=x:NoSchedule")
        t.true(poll(lambda: (_ds_status(t, ns).get("desiredNumberScheduled"),
                             _ds_status(t, ns).get("numberMisscheduled")) == (2, 1), 30),
               "tainted node: desired 2, misscheduled 1", t.last_cmd)
        on_tainted = next(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == names[0])
        t.true(t.run("get", "pod", on_tainted, "-n", ns).rc == 0, "the pod on the tainted node stays", t.last_cmd)
        # ... but once deleted it is not replaced there.
        t.ok("delete", "pod", on_tainted, "-n", ns, "--timeout=30s")
        t.true(poll(lambda: _ds_status(t, ns).get("numberMisscheduled") == 0, 30), "nothing misscheduled",
               t.last_cmd)
        t.eq(sorted(p["spec"].get("nodeName", "") for p in _pods(t, ns, "app=ds")), sorted(names[1:]),
             "no daemon pod on the tainted node")

        # set image rolls the two eligible nodes (maxUnavailable 1).
        t.ok("set", "image", "ds/ds", "c=busybox:1.36", "-n", ns)
        out = t.ok("rollout", "status", "ds/ds", "-n", ns, "--timeout=90s", timeout=100)
        t.contains(out, 'daemon set "ds" successfully rolled out', "rollout status after set image")
        pods = _pods(t, ns, "app=ds")
        t.eq(sorted((p["spec"]["nodeName"], p["spec"]["containers"][0]["image"]) for p in pods if _running_ready(p)),
             sorted((n, "busybox:1.36") for n in names[1:]), "new image on the eligible nodes")
        h2 = pods[0]["metadata"]["labels"][HASH]
        t.true(h2 != h1, "new revision hash", (h1, h2))
        hist = t.ok("rollout", "history", "ds/ds", "-n", ns)
        t.eq([line.split()[0] for line in hist.strip().splitlines()[2:]], ["1", "2"], "rollout history")
        ev = t.ok("get", "events.events.k8s.io", "-n", ns)
        t.match(ev, r"Normal\s+SuccessfulDelete\s+daemonset/ds\s+Deleted pod: ds-", "SuccessfulDelete event")

        # The taint goes: the node gets a pod at the new revision.
        t.ok("taint", "node", names[0], "sets=x:NoSchedule-")
        t.true(poll(lambda: sorted(p["spec"].get("nodeName", "") for p in _pods(t, ns, "app=ds")
                                   if _running_ready(p)) == sorted(names), 60),
               "a pod on every node again", t.last_cmd)
        t.ok("rollout", "status", "ds/ds", "-n", ns, "--timeout=60s")
        t.eq({p["metadata"]["labels"][HASH] for p in _pods(t, ns, "app=ds")}, {h2}, "all pods at the new revision")
    finally:
        t.run("taint", "node", names[0], "sets=x:NoSchedule-")
        t.run("delete", "namespace", ns, "--wait=false")


@scenario
def sets_statefulset_ordered(t: T):
    """a StatefulSet creates db-0, db-1, db-2 in order with their claims, which the PersistentVolume controller
    binds to the volumes an administrator made (one per hollow node, local to it), each pod scheduled to its
    volume's node (VolumeBinding); scale-down removes db-2 then db-1"""
    names = nodes(t)
    ns = t.namespace()
    volumes = [f"{ns}-pv-{i}" for i in range(3)]
    try:
        for name, node in zip(volumes, names):
            t.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/{name}"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
        w = t.bg("get", "pods", "-n", ns, "-l", "app=db", "-w", "--output-watch-events", "-o", "json")
        t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {
            "clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}, ns)
        t.create(_statefulset("db", 3, claims=True), ns)
        t.true(poll(lambda: sum(map(_running_ready, _pods(t, ns, "app=db"))) == 3, 90),
               "3 pods Running and Ready", t.last_cmd)
        out = t.ok("rollout", "status", "sts/db", "-n", ns, "--timeout=30s")
        t.contains(out, "partitioned roll out complete: 3 new pods have been updated", "rollout status")

        # Order: each pod appears only after the one before it was Running and Ready.
        w.wait_for(lambda _: sum(1 for e in _watch_events(w) if e[0] == "ADDED") >= 3, 10)
        events = _watch_events(w)
        first_added = {n: i for i, (ty, n, _) in reversed(list(enumerate(events))) if ty == "ADDED"}
        first_ready = {n: i for i, (_, n, o) in reversed(list(enumerate(events))) if _running_ready(o)}
        t.eq(sorted(first_added), ["db-0", "db-1", "db-2"], "pods seen by the watch")
        for prev, nxt in (("db-0", "db-1"), ("db-1", "db-2")):
            t.true(first_ready.get(prev, 1 << 30) < first_added[nxt],
                   f"{nxt} created after {prev} was Running and Ready",
                   [(ty, n, o.get("status", {}).get("phase")) for ty, n, o in events])

        pods = {p["metadata"]["name"]: p for p in _pods(t, ns, "app=db")}
        for i in range(3):
            p = pods[f"db-{i}"]
            labels = p["metadata"]["labels"]
            t.eq((labels.get("statefulset.kubernetes.io/pod-name"), labels.get("apps.kubernetes.io/pod-index")),
                 (f"db-{i}", str(i)), "identity labels")
            t.eq((p["spec"].get("hostname"), p["spec"].get("subdomain")), (f"db-{i}", "db"), "hostname, subdomain")
            vols = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in p["spec"]["volumes"]}
            t.eq(vols.get("data"), f"data-db-{i}", "claim volume")
        sts = t.json("get", "sts", "db", "-n", ns)
        st = sts["status"]
        t.eq((st.get("replicas"), st.get("readyReplicas"), st.get("currentReplicas"), st.get("updatedReplicas"),
              st.get("availableReplicas"), st.get("observedGeneration")), (3, 3, 3, 3, 3, sts["metadata"]["generation"]),
             "StatefulSet status")
        t.true(st.get("currentRevision") == st.get("updateRevision") and st["currentRevision"].startswith("db-"),
               "current = update revision db-<hash>", st)
        t.eq({p["metadata"]["labels"][HASH] for p in pods.values()}, {st["currentRevision"]}, "pods at the revision")
        pvcs = {c["metadata"]["name"]: c for c in t.json("get", "pvc", "-n", ns)["items"]}
        t.eq(sorted(pvcs), ["data-db-0", "data-db-1", "data-db-2"], "claims from the template")
        pvs = {v["metadata"]["name"]: v for v in t.json("get", "pv")["items"] if v["metadata"]["name"] in volumes}
        for i in range(3):
            claim = pvcs[f"data-db-{i}"]
            t.eq(claim.get("status", {}).get("phase"), "Bound", f"data-db-{i} is bound")
            volume = pvs.get(claim["spec"].get("volumeName", ""), {})
            node = volume.get("spec", {}).get("nodeAffinity", {}).get("required", {}).get(
                "nodeSelectorTerms", [{}])[0].get("matchExpressions", [{}])[0].get("values", [None])[0]
            t.eq(pods[f"db-{i}"]["spec"].get("nodeName"), node, f"db-{i} runs on its volume's node")
        t.eq(pvcs["data-db-0"]["metadata"]["labels"], {"app": "db"}, "claim labels")
        t.true(not pvcs["data-db-0"]["metadata"].get("ownerReferences"), "Retain policy: claims not owned",
               pvcs["data-db-0"]["metadata"])
        ev = t.ok("get", "events.events.k8s.io", "-n", ns)
        t.match(ev, r"Normal\s+SuccessfulCreate\s+statefulset/db\s+create Pod db-0 in StatefulSet db successful",
                "pod event")
        t.match(ev, r"Normal\s+SuccessfulCreate\s+statefulset/db\s+create Claim data-db-0 Pod db-0 in StatefulSet "
                r"db success", "claim event")

        # Scale down: highest ordinal first, one at a time.
        t.ok("scale", "sts", "db", "--replicas=1", "-n", ns)
        t.true(poll(lambda: [p["metadata"]["name"] for p in _pods(t, ns, "app=db")] == ["db-0"], 60),
               "only db-0 left", t.last_cmd)
        w.wait_for(lambda _: sum(1 for e in _watch_events(w) if e[0] == "DELETED") >= 2, 10)
        events = _watch_events(w)
        gone = [n for ty, n, _ in events if ty == "DELETED"]
        t.eq(gone, ["db-2", "db-1"], "deleted in descending order")
        db1_terminating = next(i for i, (_, n, o) in enumerate(events)
                               if n == "db-1" and o["metadata"].get("deletionTimestamp"))
        db2_deleted = next(i for i, (ty, n, _) in enumerate(events) if n == "db-2" and ty == "DELETED")
        t.true(db2_deleted < db1_terminating, "db-1 terminated only after db-2 was gone", (db2_deleted, db1_terminating))
        t.eq(sorted(c["metadata"]["name"] for c in t.json("get", "pvc", "-n", ns)["items"]),
             ["data-db-0", "data-db-1", "data-db-2"], "claims retained after scale-down")
        t.ok("rollout", "status", "sts/db", "-n", ns, "--timeout=30s")
    finally:
        t.run("delete", "namespace", ns, "--wait=false")
        t.run("delete", "pv", *volumes, "--wait=false")


@scenario
def sets_statefulset_partition(t: T):
    """a StatefulSet rolling update with a partition updates only ordinals at or above it; history lists revisions"""
    nodes(t)
    ns = t.namespace()
    try:
        t.create(_statefulset("web", 3, {"podManagementPolicy": "Parallel", "updateStrategy": {
            "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}), ns)
        t.true(poll(lambda: sum(map(_running_ready, _pods(t, ns, "app=web"))) == 3, 60),
               "3 pods Running and Ready", t.last_cmd)
        t.ok("rollout", "status", "sts/web", "-n", ns, "--timeout=30s")
        rev1 = t.json("get", "sts", "web", "-n", ns)["status"]["updateRevision"]

        t.ok("set", "image", "sts/web", "c=busybox:1.36", "-n", ns)

        def images() -> dict:
            return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                    for p in _pods(t, ns, "app=web") if _running_ready(p)}
        want = {"web-0": "busybox", "web-1": "busybox", "web-2": "busybox:1.36"}
        t.true(poll(lambda: images() == want, 60), "only web-2 (ordinal >= partition 2) updated", t.last_cmd)
        out = t.ok("rollout", "status", "sts/web", "-n", ns, "--timeout=30s")
        t.contains(out, "partitioned roll out complete: 1 new pods have been updated", "partitioned rollout status")
        st = t.json("get", "sts", "web", "-n", ns)["status"]
        rev2 = st["updateRevision"]
        t.eq((st["currentRevision"], st.get("updatedReplicas"), st.get("currentReplicas")), (rev1, 1, 2),
             "current revision stays while partitioned")
        t.true(rev2 != rev1, "a new update revision", st)
        pods = {p["metadata"]["name"]: p["metadata"]["labels"][HASH] for p in _pods(t, ns, "app=web")}
        t.eq(pods, {"web-0": rev1, "web-1": rev1, "web-2": rev2}, "pod revisions")
        revs = sorted((r["revision"], r["metadata"]["name"]) for r in
                      t.json("get", "controllerrevisions", "-n", ns)["items"])
        t.eq(revs, [(1, rev1), (2, rev2)], "ControllerRevisions")
        hist = t.ok("rollout", "history", "sts/web", "-n", ns)
        t.eq([line.split()[0] for line in hist.strip().splitlines()[2:]], ["1", "2"], "rollout history")

        # Partition 0: the rest follow, highest first; the current revision moves.
        t.ok("patch", "sts", "web", "-n", ns, "--type=merge", "-p",
             json.dumps({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}))
        t.true(poll(lambda: set(images().values()) == {"busybox:1.36"} and len(images()) == 3, 60),
               "all pods updated", t.last_cmd)
        t.true(poll(lambda: t.json("get", "sts", "web", "-n", ns)["status"].get("currentRevision") == rev2, 30),
               "currentRevision becomes the update revision", t.last_cmd)
        t.ok("rollout", "status", "sts/web", "-n", ns, "--timeout=30s")
    finally:
        t.run("delete", "namespace", ns, "--wait=false")
