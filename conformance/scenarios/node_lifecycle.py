"""The node lifecycle controller: a node whose heartbeats (its Lease in kube-node-lease, its Ready condition)
stop is marked Unknown with upstream's reason and message and tainted `node.kubernetes.io/unreachable`
(NoSchedule and NoExecute); pods that do not tolerate the NoExecute taint are evicted, tolerating ones
stay; a node that reports Ready again loses the taints. The server runs with a short
`--node-monitor-grace-period` here; the heartbeats are written as a kubelet writes them, through the API."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from harness import T, scenario, poll, jget


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def heartbeat(t: T, node: str) -> None:
    t.ok("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status", "lastHeartbeatTime": now()[:19] + "Z",
                        "lastTransitionTime": now()[:19] + "Z"}]}}))
    t.ok("patch", "lease", node, "-n", "kube-node-lease", "--type=merge", "-p",
         json.dumps({"spec": {"renewTime": now()}}))


def taints(t: T, node: str) -> list:
    return [(x.get("key"), x.get("effect")) for x in jget(t.json("get", "node", node), "spec.taints") or []]


@scenario
def node_lifecycle_unreachable(t: T) -> None:
    """A node that stops heartbeating is marked Unknown (NodeStatusUnknown, "Kubelet stopped posting node
    status.") and tainted unreachable NoSchedule+NoExecute; a pod without a toleration is evicted, a
    tolerating one stays; a fresh heartbeat removes the taints."""
    t.server.stop()
    # DefaultTolerationSeconds would give every pod 300 s on an unreachable node; 0 evicts at once.
    t.server.extra_args = ["--node-monitor-grace-period", "6s", "--default-unreachable-toleration-seconds", "0"]
    t.server.start()
    try:
        node = f"lc-node-{int(time.time())}"
        t.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
        t.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": node, "namespace": "kube-node-lease"},
                  "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now()}})
        heartbeat(t, node)
        ns = t.namespace("lifecycle")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}
        t.create(pod, ns)
        pod["metadata"]["name"] = "tolerant"
        pod["spec"]["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                       "effect": "NoExecute"}]
        t.create(pod, ns)
        started = time.monotonic()
        ready = lambda: jget(next((c for c in jget(t.json("get", "node", node), "status.conditions") or []
                                   if c.get("type") == "Ready"), {}), "status")
        t.true(poll(lambda: ready() == "Unknown", 45), "the silent node is marked Unknown", ready())
        print(f"      node marked Unknown {time.monotonic() - started:.1f}s after its last heartbeat (grace 6s)")
        cond = next(c for c in t.json("get", "node", node)["status"]["conditions"] if c["type"] == "Ready")
        t.eq((cond.get("reason"), cond.get("message")), ("NodeStatusUnknown", "Kubelet stopped posting node status."),
             "upstream's reason and message")
        want = {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
        t.true(poll(lambda: set(taints(t, node)) == want, 30), "unreachable taints", taints(t, node))
        t.true(poll(lambda: t.run("get", "pod", "victim", "-n", ns).rc != 0, 30),
               "the pod without a toleration is evicted", "")
        t.ok("get", "pod", "tolerant", "-n", ns)
        heartbeat(t, node)
        t.true(poll(lambda: taints(t, node) == [], 30), "a fresh heartbeat removes the taints", taints(t, node))
        t.ok("delete", "node", node)
    finally:
        t.server.stop()
        t.server.extra_args = []
        t.server.start()
