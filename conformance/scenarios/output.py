"""What kubectl prints: -o json|yaml|wide|name|jsonpath|custom-columns, --all-namespaces, `get all`, and
protobuf answers for Accept: application/vnd.kubernetes.protobuf.
"""

from __future__ import annotations

import json

from harness import DEPLOYMENT, JOB, PB, POD, ROOT_CA, SERVICE, Failure, T, https_raw, jget, parse_tables, scenario


@scenario
def output_formats(t: T) -> None:
    """get -o json|yaml|wide|name|jsonpath|custom-columns, --show-labels, -L, --no-headers, --sort-by."""
    ns = t.namespace()
    for n, v in (("beta", "2"), ("alpha", "1")):
        t.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": n, "labels": {"app": "fmt", "rank": v}}, "data": {"k": v, "other": "x"}}, ns)
    o = t.json("get", "cm", "alpha", "-n", ns)
    t.eq(o.get("data"), {"k": "1", "other": "x"}, "-o json data")
    out = t.ok("get", "cm", "alpha", "-n", ns, "-o", "yaml")
    for line in ("apiVersion: v1", "kind: ConfigMap", "  name: alpha", f"  namespace: {ns}", "data:", '  k: "1"',
                 "  other: x"):
        t.true(line in out.splitlines(), f"-o yaml has line {line!r}", out)
    out = t.ok("get", "cm", "-n", ns, "-o", "wide")
    t.headers(out, ["NAME", "DATA", "AGE"], "get cm -o wide")
    t.eq([r["NAME"] for r in t.table(out)], ["alpha", "beta", ROOT_CA], "rows sorted by name")
    # from here on only the scenario's own ConfigMaps (the namespace also holds the root CA one)
    t.eq(t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "name"), "configmap/alpha\nconfigmap/beta\n", "-o name")
    t.eq(t.ok("get", "cm", "alpha", "-n", ns, "-o", "jsonpath={.data.k}"), "1", "-o jsonpath single")
    t.eq(t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", 'jsonpath={range .items[*]}{.metadata.name}={.data.k}{"\\n"}{end}'),
         "alpha=1\nbeta=2\n", "-o jsonpath range")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "custom-columns=NAME:.metadata.name,RANK:.metadata.labels.rank,K:.data.k")
    t.headers(out, ["NAME", "RANK", "K"], "custom-columns")
    rows = t.table(out)
    t.eq([(r["NAME"], r["RANK"], r["K"]) for r in rows], [("alpha", "1", "1"), ("beta", "2", "2")],
         "custom-columns rows")
    out = t.ok("get", "cm", "alpha", "-n", ns, "--show-labels")
    t.headers(out, ["NAME", "DATA", "AGE", "LABELS"], "--show-labels")
    t.eq(t.table(out)[0]["LABELS"], "app=fmt,rank=1", "LABELS column")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-L", "rank")
    t.headers(out, ["NAME", "DATA", "AGE", "RANK"], "-L rank")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "--no-headers")
    t.eq([ln.split()[0] for ln in out.splitlines()], ["alpha", "beta"], "--no-headers rows")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "--sort-by=.metadata.labels.rank", "-o", "name")
    t.eq(out, "configmap/alpha\nconfigmap/beta\n", "--sort-by")
    out = t.ok("get", "cm", "alpha", "-n", ns, "-o", "go-template={{.metadata.name}}:{{index .data \"k\"}}")
    t.eq(out, "alpha:1", "-o go-template")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "json")
    lst = json.loads(out)
    t.eq((lst.get("kind"), lst.get("apiVersion")), ("List", "v1"), "list -o json kind/apiVersion")
    t.eq([i["metadata"]["name"] for i in lst.get("items", [])], ["alpha", "beta"], "list -o json items")
    t.eq({i.get("kind") for i in lst["items"]}, {"ConfigMap"}, "items carry kind")
    raw = t.raw(f"/api/v1/namespaces/{ns}/configmaps")
    t.eq((raw.get("kind"), raw.get("apiVersion")), ("ConfigMapList", "v1"), "raw list kind/apiVersion")
    t.true(str(jget(raw, "metadata.resourceVersion", "")).isdigit(), "raw list metadata.resourceVersion", raw.get("metadata"))


@scenario
def all_namespaces(t: T) -> None:
    """get -A / --all-namespaces shows a NAMESPACE column and objects of every namespace."""
    a, b = t.namespace("a"), t.namespace("b")
    for ns in (a, b):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "labels": {"x": "allns"}}}, ns)
        t.create(POD.format(name="p", labels=""), ns)
    out = t.ok("get", "cm", "-A", "-l", "x=allns")
    t.headers(out, ["NAMESPACE", "NAME", "DATA", "AGE"], "get cm -A")
    t.eq([(r["NAMESPACE"], r["NAME"], r["DATA"]) for r in t.table(out)], [(a, "same", "0"), (b, "same", "0")],
         "rows of get cm -A")
    out = t.ok("get", "pods", "--all-namespaces")
    t.headers(out, ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"], "get pods --all-namespaces")
    got = {(r["NAMESPACE"], r["NAME"]) for r in t.table(out)}
    t.true({(a, "p"), (b, "p")} <= got, "both pods listed", got)
    lst = t.json("get", "cm", "-A", "-l", "x=allns")
    t.eq(sorted(i["metadata"]["namespace"] for i in lst["items"]), [a, b], "-A -o json namespaces")
    raw = t.raw("/api/v1/configmaps?labelSelector=x%3Dallns")
    t.eq(len(raw.get("items", [])), 2, "cluster-wide list /api/v1/configmaps")


@scenario
def get_all(t: T) -> None:
    """get all in a namespace shows pods, services, deployments, jobs with upstream headers."""
    ns = t.namespace()
    t.create(POD.format(name="p1", labels=""), ns)
    t.create(SERVICE.format(name="s1", labels=""), ns)
    t.create(DEPLOYMENT.format(name="d1", labels=""), ns)
    t.create(JOB.format(name="j1", labels=""), ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-in-all"}}, ns)
    out = t.ok("get", "all", "-n", ns)
    tables = parse_tables(out)
    by_prefix = {}
    for tb in tables:
        for r in tb:
            by_prefix[r["NAME"].split("/")[0]] = (tb.headers, r)
    expect = {
        "pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "pod/p1"),
        "service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], "service/s1"),
        "deployment.apps": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "deployment.apps/d1"),
        "job.batch": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], "job.batch/j1"),
    }
    for prefix, (hdr, name) in expect.items():
        if prefix not in by_prefix:
            raise Failure(f"get all shows {name}", name, out, t.last_cmd)
        got_hdr, r = by_prefix[prefix]
        t.eq(got_hdr, hdr, f"get all: headers of the {prefix} table")
        t.eq(r["NAME"], name, f"get all: {prefix} row")
    t.not_contains(out, "configmap", "configmaps are not in category all")


@scenario
def protobuf_responses(t: T) -> None:
    """Accept: protobuf for get/list/watch answers k8s\\x00-framed protobuf; errors too; /version/ is JSON."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"}, "data": {"k": "v"}}, ns)
    creds = t.server.creds
    for what, path in (("get", f"/api/v1/namespaces/{ns}/configmaps/pb"), ("list", f"/api/v1/namespaces/{ns}/configmaps")):
        t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
        st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB})
        t.eq(st, 200, f"protobuf {what}: status")
        t.eq(h.get("content-type"), PB, f"protobuf {what}: Content-Type")
        t.eq(body[:4], b"k8s\x00", f"protobuf {what}: body magic")
        t.true(b"pb" in body and b"ConfigMap" in body, f"protobuf {what}: body names the object", body[:200])
    path = f"/api/v1/namespaces/{ns}/configmaps?watch=1&fieldSelector=metadata.name%3Dpb"
    t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB}, read=4)
    t.eq(st, 200, "protobuf watch: status")
    t.eq(h.get("content-type"), PB + ";stream=watch", "protobuf watch: Content-Type")
    t.true(len(body) == 4, "protobuf watch: length prefix", body)
    n = int.from_bytes(body, "big")
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB}, read=4 + n)
    t.true(len(body) == 4 + n, "protobuf watch: one whole frame", body[:200])
    frame = body[4:]
    # the frame is a bare metav1.WatchEvent (type = field 1) whose object carries the k8s\x00 envelope
    t.eq(frame[:7], b"\n\x05ADDED", "protobuf watch frame: WatchEvent type ADDED")
    t.true(b"k8s\x00" in frame and b"pb" in frame, "protobuf watch frame: enveloped object", frame[:200])
    path = f"/api/v1/namespaces/{ns}/configmaps/missing"
    t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB})
    t.eq(st, 404, "protobuf error: status")
    t.eq(h.get("content-type"), PB, "protobuf error: Content-Type")
    t.eq(body[:4], b"k8s\x00", "protobuf error: body magic")
    t.true(b"NotFound" in body, "protobuf error: a Status with reason NotFound", body[:200])
    t.last_cmd = "HTTPS GET /version/"
    st, h, body = https_raw(creds, "GET", "/version/", headers={"Accept": "application/json"})
    t.eq(st, 200, "/version/ status")
    t.true(json.loads(body).get("gitVersion", "").startswith("v1.33."), "/version/ gitVersion", body[:300])


@scenario
def objects_in_go_field_order(t: T) -> None:
    """Objects come back in upstream's field order whatever order they were sent in: `kind`, `apiVersion`,
    `metadata` (name, namespace, uid, resourceVersion, creationTimestamp, labels, managedFields), then the
    Go struct's fields (a Pod's volumes, initContainers, containers, ...), map keys sorted; a custom
    resource sorted at every level, as upstream's unstructured encoder writes it. Raw bodies compared as
    text on create, get, list and watch."""
    ns = t.namespace()
    js = {"Content-Type": "application/json"}
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listed_rv = json.loads(t.https("GET", path)[1])["metadata"]["resourceVersion"]
    sent = (b'{"data":{"b":"2","a":"1"},"metadata":{"labels":{"z":"1","a":"2"},"name":"order"},'
            b'"apiVersion":"v1","kind":"ConfigMap"}')
    status, text = t.https("POST", path, body=sent, headers=js)
    t.eq(status, 201, f"create (body {text[:300]})")
    md = json.loads(text)["metadata"]
    head = (f'{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"order","namespace":"{ns}",'
            f'"uid":"{md["uid"]}","resourceVersion":"{md["resourceVersion"]}",'
            f'"creationTimestamp":"{md["creationTimestamp"]}","labels":{{"a":"2","z":"1"}},"managedFields":[')
    tail = '"data":{"a":"1","b":"2"}}'
    for what, answer in (("create", text), ("get", t.https("GET", f"{path}/order")[1])):
        t.true(answer.startswith(head), f"{what}: kind, apiVersion, metadata in Go's order", answer[:400])
        t.true(answer.rstrip("\n").endswith(tail), f"{what}: data after metadata, keys sorted", answer[-200:])
    # The same object sent back with its keys reversed is no change: no new resourceVersion.
    got = json.loads(t.https("GET", f"{path}/order")[1])
    reverse = lambda o: {k: reverse(v) for k, v in reversed(o.items())} if isinstance(o, dict) else o  # noqa: E731
    status, text = t.https("PUT", f"{path}/order", body=json.dumps(reverse(got)).encode(), headers=js)
    t.eq((status, json.loads(text)["metadata"]["resourceVersion"]), (200, md["resourceVersion"]),
         "a PUT of the same object in another key order changes nothing")
    listed = t.https("GET", path + "?fieldSelector=metadata.name%3Dorder")[1]
    t.contains(listed, '"items":[' + head, "list: the item in Go's order")
    status, _, raw = https_raw(t.server.creds, "GET",
                               f"{path}?watch=1&resourceVersion={listed_rv}&fieldSelector=metadata.name%3Dorder",
                               read=len(head) + 40)
    t.true(raw.decode(errors="replace").startswith('{"type":"ADDED","object":' + head[:60]),
           "watch: the event's object in Go's order", raw[:200])

    # A Pod sent with its spec inside out: Go's order (initContainers, tag 20, sits before containers).
    pod = {"status": {}, "spec": {"restartPolicy": "Never", "containers": [{"image": "busybox", "name": "c"}],
                                  "initContainers": [{"image": "busybox", "name": "i"}]},
           "metadata": {"name": "order"}, "apiVersion": "v1", "kind": "Pod"}
    status, text = t.https("POST", f"/api/v1/namespaces/{ns}/pods", body=json.dumps(pod).encode(), headers=js)
    t.eq(status, 201, f"create pod (body {text[:300]})")
    o = json.loads(text)
    t.eq(list(o)[:4], ["kind", "apiVersion", "metadata", "spec"], "pod: top-level order")
    spec = list(o["spec"])
    t.eq(spec[:5], ["volumes", "initContainers", "containers", "restartPolicy", "terminationGracePeriodSeconds"],
         "pod: spec in PodSpec's order")
    t.eq(list(o["spec"]["containers"][0])[:2], ["name", "image"], "pod: container in Container's order")

    # A custom resource: unstructured, so sorted at every level.
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "orders.order.example.com"},
           "spec": {"group": "order.example.com", "scope": "Namespaced",
                    "names": {"plural": "orders", "singular": "order", "kind": "Order"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    t.create(crd)
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/orders.order.example.com")
    cr = b'{"spec":{"z":1,"a":{"y":true,"b":[{"k":1,"c":2}]}},"metadata":{"name":"x"},"kind":"Order","apiVersion":"order.example.com/v1"}'
    status, text = t.https("POST", f"/apis/order.example.com/v1/namespaces/{ns}/orders", body=cr, headers=js)
    t.eq(status, 201, f"create the custom resource (body {text[:300]})")
    t.true(text.startswith('{"apiVersion":"order.example.com/v1","kind":"Order","metadata":{"creationTimestamp":'),
           "custom resource: keys sorted", text[:200])
    t.true(text.rstrip("\n").endswith('"spec":{"a":{"b":[{"c":2,"k":1}],"y":true},"z":1}}'),
           "custom resource: spec sorted at every level", text[-200:])
    t.ok("delete", "crd", "orders.order.example.com", "--wait=false")
