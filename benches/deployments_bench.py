#!/usr/bin/env python3
"""Bench (not a test): create N Deployments of R replicas at once and print p50/p99 of the time from
each Deployment's create to all its pods created (from a pods watch). Usage:
  KUBECONFIG=... python3 benches/deployments_bench.py [N] [R]
Runs against any server; uses a fresh namespace and deletes it afterwards."""
import json, subprocess, sys, threading, time, uuid
from concurrent.futures import ThreadPoolExecutor

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
R = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ns = "bench-" + uuid.uuid4().hex[:6]
subprocess.run(["kubectl", "create", "ns", ns], check=True, capture_output=True)
created_at, pods = {}, {}
done = threading.Event()
w = subprocess.Popen(["kubectl", "get", "pods", "-n", ns, "-w", "--output-watch-events", "-o", "json"],
                     stdout=subprocess.PIPE, text=True)

def watch():
    dec, buf = json.JSONDecoder(), ""
    for line in w.stdout:
        buf += line
        try:
            ev, _ = dec.raw_decode(buf.strip())
        except ValueError:
            continue
        buf = ""
        if ev.get("type") == "ADDED":
            d = ev["object"]["metadata"]["name"].split("-")[0]
            pods.setdefault(d, []).append(time.time())

threading.Thread(target=watch, daemon=True).start()
time.sleep(1)
manifest = lambda i: json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"d{i}"},
    "spec": {"replicas": R, "selector": {"matchLabels": {"app": f"d{i}"}},
             "template": {"metadata": {"labels": {"app": f"d{i}"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})

def create(i):
    t0 = time.time()
    subprocess.run(["kubectl", "create", "-n", ns, "-f", "-"], input=manifest(i), text=True, check=True, capture_output=True)
    created_at[f"d{i}"] = t0

with ThreadPoolExecutor(32) as ex:
    list(ex.map(create, range(N)))
deadline = time.time() + 120
while time.time() < deadline and sum(len(v) >= R for v in pods.values()) < N:
    time.sleep(0.1)
lat = sorted(sorted(pods[d])[R - 1] - created_at[d] for d in created_at if len(pods.get(d, [])) >= R)
w.kill()
subprocess.run(["kubectl", "delete", "ns", ns, "--wait=false"], capture_output=True)
if not lat:
    sys.exit("no Deployment got its pods")
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{len(lat)}/{N} deployments x {R} replicas: create -> all pods created p50 {q(0.5)*1000:.0f} ms, "
      f"p99 {q(0.99)*1000:.0f} ms, max {lat[-1]*1000:.0f} ms")
