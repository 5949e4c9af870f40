#!/usr/bin/env python3
"""Bench (not a test): the Node authorizer's relation check. With N pods in one namespace (spread over
100 node names, the last one bound to node n1 and using Secret `s`), times GETs of `s` over one keep-alive
HTTPS connection, as the admin (no relation check) and as the kubelet `system:node:n1` (the check scans the
namespace's pods), and prints ms per GET, two rounds each. Usage:
  rkube kubeconfig --data-dir D --server URL --user system:node:n1 --group system:nodes > n1.kubeconfig
  python3 benches/node_authorizer_bench.py ADMIN_KUBECONFIG n1.kubeconfig [N]
Uses a fresh namespace and deletes it afterwards."""
import base64, http.client, json, ssl, sys, tempfile, time, urllib.parse, uuid

import yaml

ADMIN, NODE = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
GETS = 500


def connect(path: str) -> http.client.HTTPSConnection:
    kc = yaml.safe_load(open(path))
    user, cluster = kc["users"][0]["user"], kc["clusters"][0]["cluster"]
    d = tempfile.mkdtemp()
    for key, name in (("client-certificate-data", "cert"), ("client-key-data", "key"),
                      ("certificate-authority-data", "ca")):
        open(f"{d}/{name}", "wb").write(base64.b64decode(user.get(key) or cluster.get(key)))
    ctx = ssl.create_default_context(cafile=f"{d}/ca")
    ctx.check_hostname = False
    ctx.load_cert_chain(f"{d}/cert", f"{d}/key")
    u = urllib.parse.urlparse(cluster["server"])
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx)


def call(c: http.client.HTTPSConnection, method: str, path: str, body: dict | None = None) -> int:
    c.request(method, path, body=json.dumps(body) if body else None,
              headers={"Content-Type": "application/json", "Accept": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status


ns = "bench-" + uuid.uuid4().hex[:6]
admin = connect(ADMIN)
assert call(admin, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}}) == 201
# The ServiceAccount admission needs it; the controller manager may be off.
call(admin, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "default"}})
assert call(admin, "POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"}, "data": {"a": "Yg=="}}) == 201
try:
    start = time.time()
    for i in range(N):
        spec = {"nodeName": f"n{i % 100}", "containers": [{"name": "c", "image": "x"}]}
        if i == N - 1:
            spec.update(nodeName="n1", volumes=[{"name": "s", "secret": {"secretName": "s"}}])
        code = call(admin, "POST", f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": f"p{i}"}, "spec": spec})
        assert code == 201, code
    print(f"{N} pods created in {time.time() - start:.1f}s")
    node = connect(NODE)
    for who, c in (("admin", admin), ("node n1", node)) * 2:
        assert call(c, "GET", f"/api/v1/namespaces/{ns}/secrets/s") == 200, who
        start = time.time()
        for _ in range(GETS):
            call(c, "GET", f"/api/v1/namespaces/{ns}/secrets/s")
        print(f"GET secret as {who}: {(time.time() - start) / GETS * 1e3:.2f} ms ({N} pods in the namespace)")
finally:
    call(admin, "DELETE", f"/api/v1/namespaces/{ns}")
