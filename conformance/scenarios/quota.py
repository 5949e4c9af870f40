"""ResourceQuota status (issue #16): the resource quota controller writes `status.hard` and `status.used`
as upstream's evaluators count them, so `kubectl describe quota` shows usage."""

from __future__ import annotations

import json

from harness import T, poll, scenario


@scenario
def quota_status_used(t: T) -> None:
    """a quota's status.used counts pods (their requests and limits, finished pods excluded), services,
    configmaps and count/<resource>.<group>, and follows deletions; describe shows Used and Hard."""
    ns = t.namespace()
    t.ok("create", "quota", "q", "-n", ns,
         "--hard=pods=10,requests.cpu=2,requests.memory=1Gi,limits.memory=2Gi,services=3,configmaps=10,"
         "count/deployments.apps=5")
    def pod(name: str, requests: dict, limits: dict | None = None) -> dict:
        res = {"requests": requests} | ({"limits": limits} if limits else {})
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "nginx", "resources": res}]}}
    t.create(pod("p1", {"cpu": "250m", "memory": "64Mi"}, {"memory": "128Mi"}), ns)
    t.create(pod("p2", {"cpu": "500m", "memory": "64Mi"}, {"memory": "64Mi"}), ns)
    t.ok("create", "service", "clusterip", "s1", "--tcp=80:80", "-n", ns)
    t.ok("create", "deployment", "d", "--image=nginx", "--replicas=0", "-n", ns)

    def used() -> dict:
        return (t.json("get", "quota", "q", "-n", ns).get("status") or {}).get("used") or {}
    want = {"pods": "2", "requests.cpu": "750m", "requests.memory": "128Mi", "limits.memory": "192Mi",
            "services": "1", "configmaps": "1", "count/deployments.apps": "1"}
    t.true(poll(lambda: used() == want, 30), "status.used counts the namespace's objects", (want, used()))
    hard = t.json("get", "quota", "q", "-n", ns)["status"]["hard"]
    t.eq(hard.get("requests.memory"), "1Gi", "status.hard mirrors spec.hard")
    out = t.ok("describe", "quota", "q", "-n", ns)
    t.match(out, r"^requests\.cpu\s+750m\s+2$", "describe quota shows Used and Hard")
    # A finished pod no longer counts; a deleted one neither.
    t.ok("patch", "pod", "p2", "-n", ns, "--subresource=status", "--type=merge", "-p",
         json.dumps({"status": {"phase": "Succeeded"}}))
    t.true(poll(lambda: used().get("pods") == "1" and used().get("requests.cpu") == "250m", 30),
           "a Succeeded pod is not counted", used())
    t.ok("delete", "pod", "p1", "-n", ns, "--grace-period=0", "--force")
    t.true(poll(lambda: used().get("pods") == "0" and used().get("requests.memory") == "0", 30),
           "a deleted pod is not counted", used())
    t.ok("delete", "namespace", ns, "--wait=false")
