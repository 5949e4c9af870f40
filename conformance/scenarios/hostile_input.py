"""Hostile input: bodies nested too deep, too large, not UTF-8 or not protobuf, malformed patches of every
type (the copy bomb included), bad selectors and query values. Each is answered with a 4xx metav1.Status
quickly, never a 5xx or a dropped connection, while /readyz keeps answering; and the seven malformed
requests upstream refuses are pinned with upstream's code and message."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse

from run import T, scenario, https, jget

CM = "/api/v1/namespaces/{ns}/configmaps"
JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
PB = "application/vnd.kubernetes.protobuf"


def rss_mb(t: T) -> float:
    """The server's resident memory in MiB (VmRSS)."""
    with open(f"/proc/{t.server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def refused(t: T, method: str, path: str, body: bytes | None, headers: dict, code: int, reason: str | None,
            what: str, message: str | None = None) -> dict:
    """Sends a hostile request; checks it is answered (not dropped) with a Status of `code` (any 4xx when
    `code` is 0), and `message` when given. Prints how long the answer took."""
    start = time.monotonic()
    try:
        status, text = t.https(method, path, body=body, headers=headers)
    except Exception as e:  # a dropped connection or a timeout is exactly what must not happen
        t.true(False, f"{what}: answered, not dropped", repr(e))
    took = time.monotonic() - start
    print(f"    {what}: {status} in {took * 1000:.0f} ms")
    if code:
        t.eq(status, code, f"{what}: HTTP status")
    else:
        t.true(400 <= status < 500, f"{what}: a 4xx", (status, text[:300]))
    try:
        st = json.loads(text)
    except json.JSONDecodeError:
        t.true(False, f"{what}: a metav1.Status body", text[:300])
    t.eq((st.get("kind"), st.get("status"), st.get("code")), ("Status", "Failure", status), f"{what}: Status")
    if reason:
        t.eq(st.get("reason"), reason, f"{what}: reason")
    if message is not None:
        t.eq(st.get("message"), message, f"{what}: message")
    return st


def cm_body(name: str, **extra) -> bytes:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "h"}},
           "data": {"k": "v"}}
    obj.update(extra)
    return json.dumps(obj).encode()


def unrecognized(kind: str, message: str, body: bytes) -> str:
    """Upstream's transformDecodeError for a created body whose kind could not be read: the message
    and the body's first 30 bytes (summarizeData: as text for a JSON object, else hex)."""
    head = body[:30]
    shown = head.decode() if body[:1] == b"{" else head.hex()
    if len(body) > 30:
        shown += " ..."
    return f"the object provided is unrecognized (must be of type {kind}): {message} ({shown})"


def make_cm(t: T, ns: str, name: str, labels: dict | None = None) -> None:
    obj = json.loads(cm_body(name))
    if labels is not None:
        obj["metadata"]["labels"] = labels
    status, text = t.https("POST", CM.format(ns=ns), body=json.dumps(obj).encode(), headers=JSON)
    t.eq(status, 201, f"create configmap {name}: {text[:200]}")


@scenario
def hostile_deep_bodies(t: T) -> None:
    """JSON and YAML nested 100,000 deep, a body over 3 MiB, invalid UTF-8, random and truncated protobuf: a 4xx Status each, fast, /readyz answering meanwhile"""
    ns = t.namespace()
    path = CM.format(ns=ns)
    deep_json = b"[" * 100_000 + b"]" * 100_000
    refused(t, "POST", path, deep_json, JSON, 400, "BadRequest", "JSON nested 100,000 deep",
            unrecognized("ConfigMap", "couldn't get version/kind; json parse error: invalid character '[' "
                         "exceeded max depth", deep_json))
    # 500 KB of YAML flow mappings nested 100,000 deep (libyaml's scanner is quadratic in that depth).
    deep_yaml = b"{a: " * 100_000 + b"}" * 100_000
    # /readyz from another thread while the deep YAML is being refused: it must keep answering.
    probes: list[tuple[int, float]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                status, _ = https(t.server.creds, "GET", "/readyz", timeout=10)
            except Exception:
                status = 0
            probes.append((status, time.monotonic() - start))
            time.sleep(0.02)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        for _ in range(3):
            refused(t, "POST", path, deep_yaml, YAML, 400, "BadRequest", "YAML nested 100,000 deep (500 KB)",
                    unrecognized("ConfigMap", "error converting YAML to JSON: yaml: exceeded max depth of 10000",
                                 deep_yaml))
    finally:
        time.sleep(0.1)
        stop.set()
        prober.join(timeout=15)
    t.true(len(probes) > 0 and all(s == 200 for s, _ in probes), "/readyz answered 200 throughout", probes[:20])
    print(f"    /readyz meanwhile: {len(probes)} probes, slowest {max(d for _, d in probes) * 1000:.0f} ms")
    # Over upstream's 3 MiB request body limit.
    big = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"' + b"x" * (3 * 1024 * 1024) + b'"}}'
    refused(t, "POST", path, big, JSON, 413, "RequestEntityTooLarge", "a body over 3 MiB",
            "Request entity too large: limit is 3145728")
    # Not UTF-8 inside a JSON string.
    refused(t, "POST", path, b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\xff\xfe"}}', JSON, 0, None,
            "invalid UTF-8 in a JSON body")
    refused(t, "POST", path, b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \xff\xfe\n", YAML, 0, None,
            "invalid UTF-8 in a YAML body")
    # Random bytes as protobuf, with and without the envelope's magic.
    rnd = os.urandom(4096)
    for label, body in (("random bytes", rnd), ("random bytes after the k8s magic", b"k8s\x00" + rnd)):
        refused(t, "POST", path, body, {"Content-Type": PB}, 0, None, f"{label} as protobuf")
    # A real protobuf ConfigMap, truncated at every eighth of its length.
    make_cm(t, ns, "pb-source")
    import http.client
    import ssl
    creds = t.server.creds
    ctx = ssl.create_default_context(cafile=str(creds["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(creds["cert"]), str(creds["key"]))
    u = urllib.parse.urlparse(creds["server"])
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
    conn.request("GET", f"{path}/pb-source", headers={"Accept": PB})
    r = conn.getresponse()
    pb = r.read()
    conn.close()
    t.eq((r.status, pb[:4]), (200, b"k8s\x00"), "a protobuf ConfigMap to truncate")
    for cut in range(1, 8):
        body = pb[: len(pb) * cut // 8]
        status, text = t.https("POST", path, body=body, headers={"Content-Type": PB})
        # A prefix can happen to be a valid shorter message (it then fails later as a duplicate or an
        # invalid object, still a 4xx); what must never happen is a 5xx or a dropped connection.
        t.true(400 <= status < 500, f"protobuf truncated to {cut}/8: a 4xx", (status, text[:300]))
    print(f"    truncated protobuf ({len(pb)} B) at 7 lengths: all 4xx")
    status, _ = t.https("GET", "/readyz")
    t.eq(status, 200, "/readyz afterwards")


@scenario
def hostile_patches(t: T) -> None:
    """Malformed patches of every type, the 17-copy doubling JSON patch (refused fast, memory flat) and a 10,001-operation patch: 4xx with upstream's codes"""
    ns = t.namespace()
    make_cm(t, ns, "target")
    path = f"{CM.format(ns=ns)}/target"
    jp = {"Content-Type": "application/json-patch+json"}
    mp = {"Content-Type": "application/merge-patch+json"}
    sp = {"Content-Type": "application/strategic-merge-patch+json"}
    # The copy bomb: each copy doubles /data; 17 of them would make it 131,072 times as large.
    ops = [{"op": "add", "path": "/data/seed", "value": "x" * 1500}]
    ops += [{"op": "copy", "from": "/data", "path": f"/data/c{i}"} for i in range(17)]
    bomb = json.dumps(ops).encode()
    before = rss_mb(t)
    st = refused(t, "PATCH", path, bomb, jp, 422, "Invalid", f"17-copy doubling JSON patch ({len(bomb)} B)")
    after = rss_mb(t)
    t.contains(st["message"], "Unable to complete the copy, the accumulated size increase of copy is",
               "copy bomb message (json-patch's AccumulatedCopySizeError)")
    t.contains(st["message"], "exceeding the limit 3145728", "copy bomb limit (JSONPatchMaxCopyBytes)")
    print(f"    server RSS around the copy bomb: {before:.1f} MiB before, {after:.1f} MiB after")
    t.true(after - before < 64, "server memory stays flat (< 64 MiB growth) across the copy bomb", (before, after))
    cm = json.loads(t.https("GET", path)[1])
    t.eq(sorted(cm.get("data", {})), ["k"], "the copy bomb changed nothing")
    # More operations than upstream's maxJSONPatchOperations.
    many = json.dumps([{"op": "test", "path": "/data/k", "value": "v"}] * 10_001).encode()
    refused(t, "PATCH", path, many, jp, 413, "RequestEntityTooLarge", "a JSON patch of 10,001 operations",
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001")
    ok = json.dumps([{"op": "test", "path": "/data/k", "value": "v"}] * 10_000).encode()
    status, _ = t.https("PATCH", path, body=ok, headers=jp)
    t.eq(status, 200, "a JSON patch of exactly 10,000 operations is applied")
    # Malformed bodies of every patch type.
    deep = b"[" * 100_000 + b"]" * 100_000
    for hdr, label in ((jp, "JSON patch"), (mp, "merge patch"), (sp, "strategic merge patch")):
        for body, what in ((b"{not json", "not JSON"), (deep, "nested 100,000 deep"), (b"\xff\xfe\xfd", "not UTF-8"),
                           (b"", "empty"), (b"null", "null"), (b"42", "a number")):
            refused(t, "PATCH", path, body, hdr, 0, None, f"{label}: {what}")
    for body, what in ((b'{"op":"add"}', "an object, not a list"), (b'[{"op":"explode","path":"/x"}]', "an unknown op"),
                       (b'[{"op":"add","path":"data/x","value":1}]', "a path without a leading slash"),
                       (b'[{"op":"remove","path":"/nope/deeper"}]', "a missing path"),
                       (b'[{"op":"copy","from":"/nope","path":"/data/x"}]', "copy from a missing path"),
                       (b'[{"op":"move","from":"/data","path":"/data/inside"}]', "a move into itself"),
                       (b'[{"op":"add","path":"/data/x","value":1}]', "a value of the wrong type")):
        refused(t, "PATCH", path, body, jp, 0, None, f"JSON patch: {what}")
    for body, what in ((b'{"metadata":{"$patch":"explode"}}', "an unknown $patch directive"),
                       (b'{"metadata":{"$retainKeys":"name"}}', "$retainKeys not a list"),
                       (b'{"metadata":{"$setElementOrder/finalizers":"x"}}', "$setElementOrder not a list"),
                       (b'{"data":{"k":{"deep":true}}}', "an object where a string goes")):
        refused(t, "PATCH", path, body, sp, 0, None, f"strategic merge patch: {what}")
    refused(t, "PATCH", path, b'{"data":{"k":[1,2]}}', mp, 0, None, "merge patch: a list where a string goes")
    # Server-side apply bodies are YAML too: the same depth bound before libyaml sees them.
    ap = {"Content-Type": "application/apply-patch+yaml"}
    refused(t, "PATCH", f"{path}?fieldManager=h", b"{a: " * 100_000 + b"}" * 100_000, ap, 400, "BadRequest",
            "apply patch: YAML nested 100,000 deep (500 KB)",
            "error decoding YAML: exceeded max depth of 10000")
    refused(t, "PATCH", f"{path}?fieldManager=h", b"- [x\n  : {", ap, 0, None, "apply patch: not YAML")
    refused(t, "PATCH", path, b"{}", {"Content-Type": "application/x-bogus-patch"}, 415, "UnsupportedMediaType",
            "an unknown patch content type")
    cm = json.loads(t.https("GET", path)[1])
    t.eq((cm["data"], cm["metadata"]["labels"]), ({"k": "v"}, {"app": "h"}), "the object after every refused patch")
    status, _ = t.https("GET", "/readyz")
    t.eq(status, 200, "/readyz afterwards")


@scenario
def hostile_queries(t: T) -> None:
    """Bad selectors and query values (limit, timeoutSeconds, watch, resourceVersion, continue, gracePeriodSeconds): a 400 Status each; huge numbers never overflow"""
    ns = t.namespace()
    make_cm(t, ns, "q")
    base = CM.format(ns=ns)
    q = urllib.parse.quote
    for query, what in ((f"labelSelector={q('a in (')}", "a label selector with an open set"),
                        (f"labelSelector={q('a=b=c')}", "a label selector with two ="),
                        (f"labelSelector={q('!')}", "a label selector of just !"),
                        (f"labelSelector={q('a' * 70 + '=b')}", "a label key over 63 characters"),
                        (f"fieldSelector={q('metadata.name')}", "a field selector without an operator"),
                        (f"fieldSelector={q('spec.nope=x')}", "a field selector on an unsupported field"),
                        ("limit=abc", "limit not a number"),
                        ("limit=99999999999999999999999", "limit beyond int64"),
                        ("timeoutSeconds=soon", "timeoutSeconds not a number"),
                        ("watch=maybe", "watch not a boolean"),
                        ("resourceVersion=abc", "resourceVersion not a number"),
                        ("continue=%00%01garbage", "a continue token that is not one"),
                        ("resourceVersionMatch=Sometimes&resourceVersion=1", "an unknown resourceVersionMatch")):
        refused(t, "GET", f"{base}?{query}", None, {}, 0, None, what)
    # Huge numbers: a watch with the largest timeoutSeconds still opens and answers (no overflow).
    status, _ = t.https("GET", f"{base}?limit=9223372036854775807")
    t.eq(status, 200, "limit=int64 max lists")
    import http.client
    import ssl
    creds = t.server.creds
    ctx = ssl.create_default_context(cafile=str(creds["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(creds["cert"]), str(creds["key"]))
    u = urllib.parse.urlparse(creds["server"])
    for tmo in ("9223372036854775807", "-1"):
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        conn.request("GET", f"{base}?watch=1&timeoutSeconds={tmo}", headers={"Accept": "application/json"})
        r = conn.getresponse()
        t.eq(r.status, 200, f"a watch with timeoutSeconds={tmo} opens")
        conn.close()
    for grace in ("9223372036854775807", "-9223372036854775808"):
        make_cm(t, ns, "graceful")
        status, text = t.https("DELETE", f"{base}/graceful?gracePeriodSeconds={grace}")
        t.eq(status, 200, f"DELETE with gracePeriodSeconds={grace}: {text[:200]}")
    refused(t, "DELETE", f"{base}/q?gracePeriodSeconds=soon", None, {}, 400, "BadRequest",
            "gracePeriodSeconds not a number")
    refused(t, "DELETE", f"{base}/q?propagationPolicy=Sometimes", None, {}, 400, "BadRequest",
            "an unknown propagationPolicy")
    status, _ = t.https("GET", f"{base}/q")
    t.eq(status, 200, "the configmap survives the refused deletes")
    status, _ = t.https("GET", "/readyz")
    t.eq(status, 200, "/readyz afterwards")


@scenario
def hostile_seven_malformed(t: T) -> None:
    """The seven malformed requests the issue found accepted, answered as upstream v1.33 answers them"""
    ns = t.namespace()
    base = CM.format(ns=ns)
    make_cm(t, ns, "keep", labels={"app": "h", "team": "x"})
    # 1. JSON patch `remove /metadata`: upstream's checkName refuses the nameless result (400); nothing lost.
    refused(t, "PATCH", f"{base}/keep", b'[{"op":"remove","path":"/metadata"}]',
            {"Content-Type": "application/json-patch+json"}, 400, "BadRequest", "JSON patch remove /metadata",
            "the name of the object () does not match the name on the URL (keep)")
    cm = json.loads(t.https("GET", f"{base}/keep")[1])
    t.eq(cm["metadata"].get("labels"), {"app": "h", "team": "x"}, "labels survive the refused patch")
    # 2. `labelSelector=a=b,in`: upstream's parser reads `in` after a comma as a key (an `exists`
    # requirement), so it is a valid selector: a=b AND the label `in` exists. Pinned as upstream answers.
    make_cm(t, ns, "ab", labels={"a": "b"})
    make_cm(t, ns, "ab-in", labels={"a": "b", "in": "x"})
    status, text = t.https("GET", f"{base}?labelSelector={urllib.parse.quote('a=b,in')}")
    t.eq(status, 200, "labelSelector=a=b,in is a valid selector upstream")
    t.eq([i["metadata"]["name"] for i in json.loads(text)["items"]], ["ab-in"], "a=b,in selects a=b with a label `in`")
    # 3. resourceVersion=-5 on a list: upstream parses it with strconv.ParseUint.
    refused(t, "GET", f"{base}?resourceVersion=-5", None, {}, 400, "BadRequest", "resourceVersion=-5 on a list",
            'invalid resource version: resourceVersion: Invalid value: "-5": strconv.ParseUint: parsing "-5": invalid syntax')
    # 4. resourceVersionMatch=Exact on a watch: validateWatchOptions (422).
    refused(t, "GET", f"{base}?watch=1&resourceVersionMatch=Exact&resourceVersion=1", None, {}, 422, "Invalid",
            "resourceVersionMatch=Exact on a watch",
            'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden '
            'for watch unless sendInitialEvents is provided, resourceVersionMatch: Unsupported value: "Exact": '
            'supported values: "NotOlderThan"]')
    # 5. A DELETE body with a mistyped gracePeriodSeconds: a 400, and the object is not deleted.
    refused(t, "DELETE", f"{base}/keep", b'{"gracePeriodSeconds":"soon"}', JSON, 400, "BadRequest",
            'DELETE body {"gracePeriodSeconds":"soon"}',
            "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64")
    status, _ = t.https("GET", f"{base}/keep")
    t.eq(status, 200, "the object survives the refused delete")
    # 6, 7. `kind` and `apiVersion` that are not strings: upstream's decoder reads them into strings first.
    refused(t, "POST", base, cm_body("kind5", kind=5), JSON, 400, "BadRequest", '"kind": 5 in a created body',
            unrecognized("ConfigMap", "couldn't get version/kind; json parse error: json: cannot unmarshal number "
                         "into Go struct field .kind of type string", cm_body("kind5", kind=5)))
    refused(t, "POST", base, cm_body("apiv", apiVersion=["v1"]), JSON, 400, "BadRequest",
            '"apiVersion": ["v1"] in a created body',
            unrecognized("ConfigMap", "couldn't get version/kind; json parse error: json: cannot unmarshal array "
                         "into Go struct field .apiVersion of type string", cm_body("apiv", apiVersion=["v1"])))
    names = sorted(i["metadata"]["name"] for i in json.loads(t.https("GET", base)[1])["items"])
    t.true("kind5" not in names and "apiv" not in names, "nothing was created by the refused bodies", names)
