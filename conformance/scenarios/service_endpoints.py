"""Service endpoints and disruption budgets (issue #16): the EndpointSlice, Endpoints and disruption
controllers, driven through stock kubectl with hollow nodes giving pods IPs.

`kubectl expose` a Deployment and its Service gets an EndpointSlice and an Endpoints object listing
the pods' IPs; a PodDisruptionBudget gets its status, which `kubectl drain` (through pods/eviction)
respects. Each scenario has its own namespace; nodes are uncordoned before a scenario ends."""

from __future__ import annotations

import json

from harness import T, poll, scenario
from scenarios.nodes import nodes

SVC_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
EP_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
VIOLATES = "Cannot evict pod as it would violate the pod's disruption budget."


def _pods(t: T, ns: str, selector: str) -> list[dict]:
    return t.json("get", "pods", "-n", ns, "-l", selector)["items"]


def _running_ips(t: T, ns: str, selector: str, count: int, timeout: float = 60) -> dict[str, str]:
    """Waits until exactly `count` pods match, all Running, Ready, not terminating, with an IP;
    returns pod name -> IP."""
    def live() -> dict[str, str]:
        out = {}
        for p in _pods(t, ns, selector):
            st = p.get("status", {})
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
            if not p["metadata"].get("deletionTimestamp") and ready and st.get("podIP"):
                out[p["metadata"]["name"]] = st["podIP"]
        return out
    t.true(poll(lambda: len(live()) == count, timeout, interval=0.5), f"{count} pods Running and Ready with IPs",
           t.last_cmd)
    return live()


def _slices(t: T, ns: str, svc: str) -> list[dict]:
    return t.json("get", "endpointslices", "-n", ns, "-l", f"{SVC_LABEL}={svc}")["items"]


def _ready_addresses(slices: list[dict]) -> list[str]:
    return sorted(a for s in slices for e in (s.get("endpoints") or [])
                  if (e.get("conditions") or {}).get("ready") for a in e["addresses"])


def _endpoints_ips(t: T, ns: str, name: str) -> list[str]:
    r = t.run("get", "endpoints", name, "-n", ns, "-o", "json")
    if r.rc != 0:
        return []
    ep = json.loads(r.out)
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


@scenario
def ep_service_slices_and_endpoints(t: T):
    """an exposed Deployment's Service gets an EndpointSlice and Endpoints with the pods' IPs; scaling and named targetPorts follow"""
    nodes(t)
    ns = t.namespace()
    t.ok("create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80", "-n", ns)
    t.ok("expose", "deployment", "web", "--port=80", "-n", ns)
    ips = _running_ips(t, ns, "app=web", 3)
    want = sorted(ips.values())

    t.true(poll(lambda: _ready_addresses(_slices(t, ns, "web")) == want, 30), "slice lists the 3 pods' IPs as ready",
           (want, t.last_cmd))
    slices = _slices(t, ns, "web")
    t.eq(len(slices), 1, "one EndpointSlice for the Service")
    s = slices[0]
    svc = t.json("get", "service", "web", "-n", ns)
    meta = s["metadata"]
    t.true(meta["name"].startswith("web-") and meta.get("generateName") == "web-", "slice named by generateName web-",
           meta)
    t.eq(meta["labels"].get(MANAGED_BY), "endpointslice-controller.k8s.io", "managed-by label")
    t.eq(meta["labels"].get("app"), "web", "the Service's labels are copied")
    t.eq([(r["kind"], r["name"], r["uid"], r.get("controller"), r.get("blockOwnerDeletion"))
          for r in meta.get("ownerReferences", [])],
         [("Service", "web", svc["metadata"]["uid"], True, True)], "owned by the Service")
    t.eq(s["addressType"], "IPv4", "addressType")
    t.eq(s.get("ports"), [{"name": "", "port": 80, "protocol": "TCP"}], "ports resolved from the Service")
    by_pod = {e["targetRef"]["name"]: e for e in s["endpoints"]}
    t.eq(sorted(by_pod), sorted(ips), "one endpoint per pod, targetRef naming it")
    for name, e in by_pod.items():
        pod = t.json("get", "pod", name, "-n", ns)
        t.eq((e["addresses"], e.get("nodeName"), e["targetRef"]["kind"], e["targetRef"]["uid"]),
             ([ips[name]], pod["spec"]["nodeName"], "Pod", pod["metadata"]["uid"]), f"endpoint of {name}")
        t.eq(e["conditions"], {"ready": True, "serving": True, "terminating": False}, f"conditions of {name}")

    t.true(poll(lambda: _endpoints_ips(t, ns, "web") == want, 30), "Endpoints lists the 3 pods' IPs",
           (want, t.last_cmd))
    ep = t.json("get", "endpoints", "web", "-n", ns)
    t.eq(ep["metadata"]["labels"], {"app": "web", EP_MANAGED_BY: "endpoint-controller"}, "Endpoints labels")
    t.eq(ep["subsets"][0]["ports"], [{"port": 80, "protocol": "TCP"}], "Endpoints ports")
    row = t.ok("get", "endpoints", "web", "-n", ns)
    for ip in want:
        t.contains(row, f"{ip}:80", "kubectl get endpoints shows each address")

    # Scale down: one ready endpoint left; the leaving pods stay in the slice while they terminate,
    # not ready, and leave the Endpoints at once.
    t.ok("scale", "deployment", "web", "--replicas=1", "-n", ns)
    left = _running_ips(t, ns, "app=web", 1)
    t.true(poll(lambda: _ready_addresses(_slices(t, ns, "web")) == sorted(left.values()), 30),
           "slice has 1 ready endpoint after scaling to 1", t.last_cmd)
    t.true(poll(lambda: _endpoints_ips(t, ns, "web") == sorted(left.values()), 30),
           "Endpoints has 1 address after scaling to 1", t.last_cmd)
    for e in [e for s in _slices(t, ns, "web") for e in s.get("endpoints") or []]:
        if e["targetRef"]["name"] not in left:
            # serving follows the pod's own readiness, which the hollow kubelet drops as it stops the
            # containers (unit tests pin serving=true for a still-ready terminating pod).
            c = e["conditions"]
            t.eq((c["ready"], c["terminating"]), (False, True), f"terminating endpoint {e['targetRef']['name']}")

    # A named targetPort resolves per pod against the container port of that name.
    t.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "api"}},
        "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
            {"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}}}}, ns)
    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": {
        "selector": {"app": "api"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}, ns)
    api_ips = sorted(_running_ips(t, ns, "app=api", 2).values())
    t.true(poll(lambda: _ready_addresses(_slices(t, ns, "api")) == api_ips, 30), "api slice lists both pods",
           t.last_cmd)
    t.eq(_slices(t, ns, "api")[0].get("ports"), [{"name": "web", "port": 8080, "protocol": "TCP"}],
         "named targetPort resolved to the container port")
    t.true(poll(lambda: _endpoints_ips(t, ns, "api") == api_ips, 30), "api Endpoints lists both pods", t.last_cmd)
    t.eq(t.json("get", "endpoints", "api", "-n", ns)["subsets"][0]["ports"],
         [{"name": "web", "port": 8080, "protocol": "TCP"}], "Endpoints port resolved by name")

    # Deleting the Service removes its Endpoints (they have no owner reference: the controller
    # deletes them) and its EndpointSlices (owned by the Service: the garbage collector deletes them).
    t.ok("delete", "service", "api", "-n", ns)
    t.true(poll(lambda: t.run("get", "endpoints", "api", "-n", ns).rc != 0, 30),
           "Endpoints go with the Service", t.last_cmd)
    t.true(poll(lambda: _slices(t, ns, "api") == [], 30), "EndpointSlices go with the Service", t.last_cmd)
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def ep_kubernetes_service_slice(t: T):
    """the `kubernetes` Service in default has its EndpointSlice (the apiserver's, left alone by the controller)"""
    slices = _slices(t, "default", "kubernetes")
    t.eq([s["metadata"]["name"] for s in slices], ["kubernetes"], "one slice named kubernetes")
    s = slices[0]
    t.true(MANAGED_BY not in s["metadata"].get("labels", {}), "not managed by the endpointslice controller",
           s["metadata"])
    ep = t.json("get", "endpoints", "kubernetes", "-n", "default")
    ep_ips = sorted(a["ip"] for sub in ep["subsets"] for a in sub["addresses"])
    t.eq(sorted(a for e in s["endpoints"] for a in e["addresses"]), ep_ips, "slice and Endpoints agree")
    t.eq([p["name"] for p in s["ports"]], ["https"], "https port")
    t.eq(ep["metadata"]["labels"].get(EP_MANAGED_BY), None, "Endpoints not taken over by the endpoint controller")


def _pdb_status(t: T, ns: str) -> dict:
    return t.json("get", "pdb", "web", "-n", ns).get("status", {})


def _node_with_most(t: T, ns: str, selector: str) -> tuple[str, list[str]]:
    by_node: dict[str, list[str]] = {}
    for p in _pods(t, ns, selector):
        if not p["metadata"].get("deletionTimestamp"):
            by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p["metadata"]["name"])
    node = max((n for n in by_node if n), key=lambda n: len(by_node[n]))
    return node, by_node[node]


@scenario
def ep_pdb_status_and_drain(t: T):
    """a PDB's status counts healthy pods; `kubectl drain` evicts within it, a PDB allowing 0 blocks it, uncordon returns the node"""
    names = nodes(t)
    ns = t.namespace()
    try:
        t.ok("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns)
        _running_ips(t, ns, "app=web", 3)
        t.ok("create", "pdb", "web", "--selector=app=web", "--min-available=2", "-n", ns)
        t.true(poll(lambda: _pdb_status(t, ns).get("disruptionsAllowed") == 1, 30), "disruptionsAllowed 1",
               t.last_cmd)
        pdb = t.json("get", "pdb", "web", "-n", ns)
        st = pdb["status"]
        t.eq((st["currentHealthy"], st["desiredHealthy"], st["expectedPods"], st["observedGeneration"]),
             (3, 2, 3, pdb["metadata"]["generation"]), "currentHealthy, desiredHealthy, expectedPods, observedGeneration")
        cond = {c["type"]: c for c in st["conditions"]}["DisruptionAllowed"]
        t.eq((cond["status"], cond["reason"]), ("True", "SufficientPods"), "DisruptionAllowed condition")
        t.match(t.ok("get", "pdb", "web", "-n", ns), r"^web\s+2\s+N/A\s+1\s", "kubectl get pdb row")

        # Drain the node holding the most of its pods: evictions go through the budget, the
        # Deployment replaces the pods elsewhere, the node ends cordoned.
        node, victims = _node_with_most(t, ns, "app=web")
        r = t.run("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s",
                  "--pod-selector=app=web", "--grace-period=1", timeout=90)
        t.eq(r.rc, 0, f"drain {node} succeeds ({r.both()})")
        out = r.both()
        t.contains(out, f"node/{node} cordoned", "drain cordons")
        for v in victims:
            t.contains(out, f"pod/{v} evicted", f"drain evicts {v}")
        t.contains(out, f"node/{node} drained", "drain reports the node drained")
        t.eq(t.json("get", "node", node)["spec"].get("unschedulable"), True, "node cordoned")
        moved = _running_ips(t, ns, "app=web", 3)
        on_node = [p for p in _pods(t, ns, "app=web") if p["spec"].get("nodeName") == node]
        t.eq(on_node, [], "no pod of the Deployment left on the drained node")
        t.true(not set(victims) & set(moved), "the evicted pods were replaced", (victims, moved))
        t.true(poll(lambda: _pdb_status(t, ns).get("disruptionsAllowed") == 1
                    and _pdb_status(t, ns).get("currentHealthy") == 3, 30),
               "budget back to 1 allowed once replacements are ready", t.last_cmd)
        t.ok("uncordon", node)
        t.eq(t.json("get", "node", node)["spec"].get("unschedulable"), None, "uncordon clears spec.unschedulable")

        # A budget allowing nothing: drain refuses to evict and retries until its timeout.
        t.ok("patch", "pdb", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"minAvailable":3}}')
        def blocked() -> bool:
            p = t.json("get", "pdb", "web", "-n", ns)
            s = p.get("status", {})
            c = {c["type"]: c for c in s.get("conditions", [])}.get("DisruptionAllowed", {})
            return (s.get("observedGeneration") == p["metadata"]["generation"] and s.get("disruptionsAllowed") == 0
                    and (c.get("status"), c.get("reason")) == ("False", "InsufficientPods"))
        t.true(poll(blocked, 30), "disruptionsAllowed 0 with DisruptionAllowed False/InsufficientPods", t.last_cmd)
        node, held = _node_with_most(t, ns, "app=web")
        r = t.run("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=8s",
                  "--pod-selector=app=web", "--grace-period=1", timeout=60)
        t.true(r.rc != 0, "drain gives up at its timeout", r.both())
        t.contains(r.both(), VIOLATES, "drain reports the budget's refusal")
        for p in held:
            pod = t.json("get", "pod", p, "-n", ns)
            t.eq(pod["metadata"].get("deletionTimestamp"), None, f"{p} was not evicted")
        t.ok("uncordon", node)
        t.ok("delete", "namespace", ns, "--wait=false")
    finally:
        t.run("uncordon", *names)
