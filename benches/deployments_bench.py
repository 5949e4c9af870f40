#!/usr/bin/env python3
"""Bench (not a test): reaction latency. Creates N Deployments of R replicas at once through the API (the
Python `kubernetes` client, so no kubectl start-up is measured) and prints p50/p99 of the time from each
Deployment's create request to all its pods created, and to all its pods Running and Ready (nodes must
run them: `rkube server --hollow-nodes K`). Usage:
  KUBECONFIG=... python3 benches/deployments_bench.py [N] [R]
Uses a fresh namespace and deletes it afterwards."""
import sys, threading, time, uuid
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config, watch

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
R = int(sys.argv[2]) if len(sys.argv) > 2 else 3
config.load_kube_config()
core, apps = client.CoreV1Api(), client.AppsV1Api()
ns = "bench-" + uuid.uuid4().hex[:6]
core.create_namespace({"metadata": {"name": ns}})
created_at, seen, running = {}, {}, {}
lock = threading.Lock()


def owner(pod) -> str:
    return pod.metadata.labels.get("app", "")


def watcher():
    for ev in watch.Watch().stream(core.list_namespaced_pod, ns, timeout_seconds=300):
        pod, now = ev["object"], time.time()
        ready = pod.status and pod.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        with lock:
            seen.setdefault(owner(pod), {}).setdefault(pod.metadata.name, now)
            if ready:
                running.setdefault(owner(pod), {}).setdefault(pod.metadata.name, now)


threading.Thread(target=watcher, daemon=True).start()
time.sleep(1)


def create(i):
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"d{i}"},
            "spec": {"replicas": R, "selector": {"matchLabels": {"app": f"d{i}"}},
                     "template": {"metadata": {"labels": {"app": f"d{i}"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    t0 = time.time()
    apps.create_namespaced_deployment(ns, body)
    created_at[f"d{i}"] = t0


start = time.time()
with ThreadPoolExecutor(16) as ex:
    list(ex.map(create, range(N)))
print(f"created {N} Deployments in {(time.time() - start) * 1000:.0f} ms")
deadline = time.time() + 120
while time.time() < deadline:
    with lock:
        if sum(len(v) >= R for v in running.values()) >= N:
            break
    time.sleep(0.1)
core.delete_namespace(ns)


def report(what, table):
    lat = sorted(sorted(table[d].values())[R - 1] - created_at[d] for d in created_at if len(table.get(d, {})) >= R)
    if not lat:
        print(f"{what}: none")
        return
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"{len(lat)}/{N} deployments x {R} replicas: create -> {what} p50 {q(0.5)*1000:.0f} ms, "
          f"p99 {q(0.99)*1000:.0f} ms, max {lat[-1]*1000:.0f} ms")


report("all pods created", seen)
report("all pods Running+Ready", running)
