"""CustomResourceDefinitions: a CRD is served at once (discovery, tables, schema defaults and pruning,
validation, status, deletion). (CRDs shadowing built-ins are in security.py.)
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from harness import T, jget, parse_json_stream, poll, scenario
from scenarios.webhooks import JsonServer, certs


CRONTAB_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Image, type: string, priority: 1, jsonPath: .spec.image}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string, pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'}
              image: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
"""


@scenario
def custom_resources(t: T) -> None:
    """a CRD is served at once: established condition, discovery, table columns, schema defaults/pruning/
    validation, merge/JSON patches (strategic refused), scale, server-side apply, explain, deletion cascade."""
    ns = t.namespace()
    t.eq(t.ok("apply", "-f", "-", stdin=CRONTAB_CRD).strip(),
         "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created", "apply CRD")
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/crontabs.stable.example.com")
    api = t.ok("api-resources", "--api-group=stable.example.com")
    t.match(api, r"^crontabs\s+ct\s+stable\.example\.com/v1\s+true\s+CronTab\s*$", "api-resources row")
    ct = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: my-cron}\n"
          "spec: {cronSpec: '* * * * */5', image: my-awesome-cron-image}\n")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=ct).strip(), "crontab.stable.example.com/my-cron created", "apply CR")
    rows = t.table(t.ok("get", "ct", "-n", ns))
    t.eq([(r["NAME"], r["SPEC"], r["REPLICAS"]) for r in rows], [("my-cron", "* * * * */5", "1")],
         "printer columns, replicas defaulted by the schema")
    t.headers(t.ok("get", "crontabs", "-n", ns, "-o", "wide"), ["NAME", "SPEC", "REPLICAS", "IMAGE", "AGE"], "wide")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=ct).strip(), "crontab.stable.example.com/my-cron unchanged",
         "re-apply is a no-op")
    t.ok("patch", "ct", "my-cron", "-n", ns, "--type=merge", "-p", '{"spec":{"image":"img2"}}')
    t.ok("patch", "ct", "my-cron", "-n", ns, "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
    err = t.fails("patch", "ct", "my-cron", "-n", ns, "-p", '{"spec":{"image":"img3"}}')
    t.contains(err, "application/strategic-merge-patch+json is not supported by stable.example.com/v1, Kind=CronTab: "
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
               "strategic merge patch on a custom resource")
    t.eq(t.ok("scale", "ct/my-cron", "-n", ns, "--replicas=3").strip(), "crontab.stable.example.com/my-cron scaled",
         "scale")
    obj = t.json("get", "ct", "my-cron", "-n", ns)
    t.eq((jget(obj, "spec.image"), jget(obj, "spec.replicas")), ("img2", 3), "patches and scale stored")
    bad = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\n"
           "spec: {cronSpec: '* * * *', replicas: string, foo: 1}\n")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=bad)
    t.contains(err, 'strict decoding error: unknown field "spec.foo"', "unknown field in a custom resource")
    err = t.fails("create", "-n", ns, "--validate=false", "-f", "-", stdin=bad)
    t.contains(err, 'The CronTab "bad" is invalid: ', "schema validation")
    t.contains(err, '* spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
               "type error")
    ssa = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: applied}\n"
           "spec: {cronSpec: '*/1 * * * *', image: x}\n")
    t.eq(t.ok("apply", "--server-side", "-n", ns, "-f", "-", stdin=ssa).strip(),
         "crontab.stable.example.com/applied serverside-applied", "server-side apply")
    t.contains(t.ok("explain", "crontab.spec"), "replicas\t<integer>", "explain from the CRD schema")
    t.true("crontab.stable.example.com/my-cron" in t.ok("get", "all", "-n", ns, "-o", "name"),
           "category all", t.last_cmd)
    t.ok("delete", "crd", "crontabs.stable.example.com")
    # With kubectl's discovery cache still listing the kind, upstream answers the list itself with a 404.
    t.match(t.fails("get", "crontabs", "-n", ns),
            r'^(error: the server doesn\'t have a resource type "crontabs"|Error from server \(NotFound\): Unable to '
            r'list "stable\.example\.com/v1, Resource=crontabs": the server could not find the requested resource)$',
            "the resource is gone with its CRD")
    t.ok("apply", "-f", "-", stdin=CRONTAB_CRD)
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/crontabs.stable.example.com")
    t.eq(t.ok("get", "crontabs", "-A", "-o", "name").strip(), "", "custom resources were deleted with their CRD")
    t.ok("delete", "crd", "crontabs.stable.example.com")


def _widget_crd(group: str) -> dict:
    """A CRD whose spec has a `list-type: map` list keyed by two keys (port, protocol), a `list-type: set`
    and a list without a list type."""
    item = {"type": "object", "required": ["port"], "properties": {
        "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}, "name": {"type": "string"}}}
    spec = {"type": "object", "properties": {
        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["port", "protocol"], "items": item},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "properties": {"spec": spec}}}}]}}


@scenario
def crd_server_side_apply_list_types(t: T) -> None:
    """server-side apply on a custom resource follows its CRD schema (kubectl apply --server-side with two
    field managers): each manager owns its own item of a `list-type: map` list keyed by two keys (both items
    kept, managedFields `k:{"port":..,"protocol":..}`), changing the other's item is a conflict with upstream's
    message, a `set` merges by value, and a list without `x-kubernetes-list-type` is atomic: a second manager
    conflicts on the whole list and a forced apply replaces it whole."""
    group = "ssa.example.com"
    crd = f"widgets.{group}"
    ns = t.namespace()

    def cr(spec: dict) -> str:
        return json.dumps({"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})

    def ssa(manager: str, spec: dict, *extra: str) -> str:
        return t.ok("apply", "--server-side", f"--field-manager={manager}", *extra, "-n", ns, "-f", "-",
                    stdin=cr(spec)).strip()

    def owned(obj: dict, manager: str) -> dict:
        sets = [mf.get("fieldsV1", {}) for mf in jget(obj, "metadata.managedFields", []) if mf["manager"] == manager]
        return jget(sets[0] if sets else {}, "f:spec", {})

    a_port = {"port": 80, "protocol": "TCP", "name": "a"}
    b_port = {"port": 80, "protocol": "UDP", "name": "b"}
    try:
        t.ok("apply", "-f", "-", stdin=json.dumps(_widget_crd(group)))
        t.ok("wait", "--for", "condition=established", "--timeout=20s", f"crd/{crd}")
        t.eq(ssa("A", {"ports": [a_port], "tags": ["x"], "args": ["x", "y"]}),
             f"widget.{group}/w serverside-applied", "apply as A")
        t.eq(ssa("B", {"ports": [b_port], "tags": ["z"]}), f"widget.{group}/w serverside-applied",
             "apply as B: its own port item (same port, other protocol) and tag")
        o = t.json("get", "widget", "w", "-n", ns, "--show-managed-fields")
        t.eq(jget(o, "spec.ports"), [a_port, b_port], "both managers' items of the map-list kept")
        t.eq(jget(o, "spec.tags"), ["x", "z"], "the set merged by value")
        item = {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}
        t.eq(owned(o, "A").get("f:ports"), {'k:{"port":80,"protocol":"TCP"}': item},
             "A owns its item, keyed by both keys")
        t.eq(owned(o, "B"), {"f:ports": {'k:{"port":80,"protocol":"UDP"}': item}, "f:tags": {'v:"z"': {}}},
             "B owns its item and its set member")
        t.eq(owned(o, "A").get("f:args"), {}, "A owns the unannotated list as one leaf")

        err = t.fails("apply", "--server-side", "--field-manager=B", "-n", ns, "-f", "-",
                      stdin=cr({"ports": [b_port, dict(a_port, name="x")], "tags": ["z"]}))
        t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "A": '
                                  '.spec.ports[port=80,protocol="TCP"].name', "conflict on A's item")
        t.contains(err, "--force-conflicts", "the conflict explains --force-conflicts")

        err = t.fails("apply", "--server-side", "--field-manager=B", "-n", ns, "-f", "-",
                      stdin=cr({"ports": [b_port], "tags": ["z"], "args": ["z"]}))
        t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "A": .spec.args',
             "an atomic list conflicts as a whole")
        t.eq(ssa("B", {"ports": [b_port], "tags": ["z"], "args": ["z"]}, "--force-conflicts"),
             f"widget.{group}/w serverside-applied", "forced apply as B")
        o = t.json("get", "widget", "w", "-n", ns, "--show-managed-fields")
        t.eq(jget(o, "spec.args"), ["z"], "the atomic list replaced whole")
        t.eq((jget(o, "spec.ports"), jget(o, "spec.tags")), ([a_port, b_port], ["x", "z"]),
             "the keyed list and the set untouched")
        t.eq(("f:args" in owned(o, "A"), owned(o, "B").get("f:args")), (False, {}), "B took the atomic list over")

        t.eq(ssa("A", {"tags": ["x"]}), f"widget.{group}/w serverside-applied", "A stops applying its port")
        t.eq(jget(t.json("get", "widget", "w", "-n", ns), "spec.ports"), [b_port],
             "only A's item removed from the map-list")
    finally:
        t.run("delete", "crd", crd, "--ignore-not-found")
    t.ok("delete", "namespace", ns, "--wait=false")


def _versions_crd(group: str, plural: str, kind: str, v1_field: str, v2_field: str,
                  conversion: dict | None = None) -> dict:
    """A CRD of two served versions (v1 stored, deprecated; v2) and an unserved v3; each version's schema has
    its own spec field (the same one under None conversion)."""
    def version(name: str, field: str, served: bool, storage: bool) -> dict:
        v = {"name": name, "served": served, "storage": storage,
             "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                 "spec": {"type": "object", "properties": {field: {"type": "string"}}}}}}}
        if name == "v1":
            v["deprecated"] = True
        return v
    spec = {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [version("v1", v1_field, True, True), version("v2", v2_field, True, False),
                         version("v3", v2_field, False, False)]}
    if conversion:
        spec["conversion"] = conversion
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"}, "spec": spec}


def _cr(group: str, version: str, kind: str, name: str, spec: dict, labels: dict | None = None) -> str:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = labels
    return json.dumps({"apiVersion": f"{group}/{version}", "kind": kind, "metadata": meta, "spec": spec})


@scenario
def crd_versions_none_conversion(t: T) -> None:
    """a CRD with two served versions and `None` conversion: an object created as v1 reads as v2 with only its
    apiVersion changed (raw bodies compared), lists and watches serve either version, one created as v2 is stored
    as the storage version v1, an unserved version is 404, the deprecated v1 answers with upstream's Warning, and
    moving the storage version to v2 appends it to status.storedVersions."""
    group, plural, kind = "none.conversion.example.com", "gadgets", "Gadget"
    crd = f"{plural}.{group}"
    ns = t.namespace()
    t.create(_versions_crd(group, plural, kind, "color", "color"))
    t.ok("wait", "--for", "condition=established", "--timeout=20s", f"crd/{crd}")
    t.eq(jget(t.json("get", "crd", crd), "status.storedVersions"), ["v1"], "storedVersions: the storage version")

    r = t.run("create", "-n", ns, "-f", "-", stdin=_cr(group, "v1", kind, "a", {"color": "red"}))
    t.eq(r.rc, 0, "create through v1")
    t.contains(r.err, f"Warning: {group}/v1 {kind} is deprecated; use {group}/v2 {kind}",
               "the deprecated version's warning")
    base = f"/apis/{group}/{{v}}/namespaces/{ns}/{plural}"
    as_v1 = t.raw(base.format(v="v1") + "/a")
    as_v2 = t.raw(base.format(v="v2") + "/a")
    t.eq(as_v2.get("apiVersion"), f"{group}/v2", "read through v2: apiVersion rewritten")
    t.eq({**as_v2, "apiVersion": as_v1.get("apiVersion")}, as_v1, "read through v2: nothing but apiVersion changes")

    # Created through v2: stored as v1 (read back through v1 as v1, the same object through both).
    t.create(_cr(group, "v2", kind, "b", {"color": "blue"}), ns)
    b1 = t.raw(base.format(v="v1") + "/b")
    t.eq((b1.get("apiVersion"), jget(b1, "spec.color")), (f"{group}/v1", "blue"), "created as v2, read as v1")
    t.eq(jget(t.raw(base.format(v="v2") + "/b"), "metadata.uid"), jget(b1, "metadata.uid"), "one object")

    # Lists through both versions (the cache, and a paged list from storage).
    for v in ("v1", "v2"):
        items = t.raw(base.format(v=v))["items"]
        t.eq(sorted((jget(i, "metadata.name"), i.get("apiVersion")) for i in items),
             [("a", f"{group}/{v}"), ("b", f"{group}/{v}")], f"list through {v}")
        paged = t.raw(base.format(v=v) + "?limit=1")["items"]
        t.eq([i.get("apiVersion") for i in paged], [f"{group}/{v}"], f"a paged list through {v}")
    out = t.ok("get", f"{plural}.v2.{group}", "-n", ns, "-o", "jsonpath={.items[*].apiVersion}")
    t.eq(out.split(), [f"{group}/v2", f"{group}/v2"], "kubectl get through v2")

    # A watch through v2 sees objects written through v1 as v2.
    out = t.ok("get", "--raw", base.format(v="v2") + "?watch=true&timeoutSeconds=2")
    events = parse_json_stream(out)
    t.eq(sorted((e["type"], jget(e, "object.apiVersion")) for e in events),
         [("ADDED", f"{group}/v2"), ("ADDED", f"{group}/v2")], "watch through v2")
    w = t.bg("get", "--raw", base.format(v="v2") + "?watch=true&timeoutSeconds=20")
    t.create(_cr(group, "v1", kind, "c", {"color": "green"}), ns)
    got = w.wait_for(lambda o: any(jget(e, "object.metadata.name") == "c" for e in parse_json_stream(o)), 15)
    t.true(got, "the watch through v2 sees the object created through v1", w.out)
    live = [e for e in parse_json_stream(w.out) if jget(e, "object.metadata.name") == "c"]
    t.eq([jget(e, "object.apiVersion") for e in live[:1]], [f"{group}/v2"], "a live event converted to v2")
    w.stop()

    # v3 is not served.
    err = t.fails("get", "--raw", base.format(v="v3"))
    t.contains(err, "NotFound", "an unserved version is not found")

    # Storage moves to v2: storedVersions keeps v1 and appends v2; objects written now are stored as v2 and still
    # read as v1 through v1.
    t.ok("patch", "crd", crd, "--type=json", "-p",
         '[{"op":"replace","path":"/spec/versions/0/storage","value":false},'
         '{"op":"replace","path":"/spec/versions/1/storage","value":true}]')
    t.eq(jget(t.json("get", "crd", crd), "status.storedVersions"), ["v1", "v2"], "storedVersions after the move")
    t.create(_cr(group, "v1", kind, "d", {"color": "white"}), ns)
    t.eq(t.raw(base.format(v="v1") + "/d").get("apiVersion"), f"{group}/v1", "stored as v2, read as v1")
    t.ok("delete", "crd", crd)
    t.ok("delete", "namespace", ns, "--wait=false")


def _conversion_review(path: str, review: dict) -> dict:
    """The conversion webhook: /convert renames spec.cronSpec (v1) to spec.schedule (v2) and back; /fail refuses."""
    req = review.get("request") or {}
    uid = req.get("uid")
    if path == "/fail":
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                "response": {"uid": uid, "result": {"status": "Failure", "message": "conversion refused by test"}}}
    desired = req["desiredAPIVersion"]
    out = []
    for obj in req.get("objects") or []:
        obj = json.loads(json.dumps(obj))
        spec = obj.get("spec") or {}
        if desired.endswith("/v2") and "cronSpec" in spec:
            spec["schedule"] = spec.pop("cronSpec")
        elif desired.endswith("/v1") and "schedule" in spec:
            spec["cronSpec"] = spec.pop("schedule")
        obj["apiVersion"] = desired
        # Metadata other than labels and annotations is the apiserver's: a change is undone.
        obj.setdefault("metadata", {})["resourceVersion"] = "1"
        out.append(obj)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": uid, "result": {"status": "Success"}, "convertedObjects": out}}


@scenario
def crd_conversion_webhook(t: T) -> None:
    """`Webhook` conversion over HTTPS (caBundle-verified): an object created as v1 reads as v2 with the field the
    webhook renamed (get, list, watch; the ConversionReview v1 as upstream sends it), one created as v2 is stored as
    v1 (read back through v1), a webhook answering Failure fails the read with upstream's 500 and message; the CRD
    validation of spec.conversion with upstream's messages."""
    group, plural, kind = "webhook.conversion.example.com", "crontabs", "CronTab"
    crd = f"{plural}.{group}"
    d = Path(tempfile.mkdtemp(prefix="conversion-", dir=str(t.server.workdir)))
    certs(d)
    hook = JsonServer(d, _conversion_review)
    ca = base64.b64encode((d / "ca.crt").read_bytes()).decode()
    ns = t.namespace()

    def conversion(path: str) -> dict:
        return {"strategy": "Webhook", "webhook": {
            "clientConfig": {"url": f"https://127.0.0.1:{hook.port}{path}", "caBundle": ca},
            "conversionReviewVersions": ["v1"]}}
    try:
        # CRD validation of spec.conversion.
        bad = _versions_crd(group, plural, kind, "cronSpec", "schedule", {"strategy": "Webhook"})
        err = t.fails("create", "-f", "-", stdin=json.dumps(bad))
        t.contains(err, f'The CustomResourceDefinition "{crd}" is invalid: ', "a Webhook strategy without a webhook")
        t.contains(err, "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                   "webhook required")
        t.contains(err, "spec.conversion.conversionReviewVersions: Required value", "review versions required")
        bad = _versions_crd(group, plural, kind, "cronSpec", "schedule",
                            {"strategy": "None", "webhook": conversion("/convert")["webhook"]})
        err = t.fails("create", "-f", "-", stdin=json.dumps(bad))
        t.contains(err, "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set "
                        "to Webhook", "a webhook under None")

        t.create(_versions_crd(group, plural, kind, "cronSpec", "schedule", conversion("/convert")))
        t.ok("wait", "--for", "condition=established", "--timeout=20s", f"crd/{crd}")
        base = f"/apis/{group}/{{v}}/namespaces/{ns}/{plural}"

        t.create(_cr(group, "v1", kind, "a", {"cronSpec": "* * * * */5"}, {"app": "x"}), ns)
        a2 = t.raw(base.format(v="v2") + "/a")
        t.eq((a2.get("apiVersion"), a2.get("spec")), (f"{group}/v2", {"schedule": "* * * * */5"}),
             "read as v2: the webhook's conversion")
        a1 = t.raw(base.format(v="v1") + "/a")
        t.eq(a2.get("metadata"), a1.get("metadata"), "the webhook cannot change metadata but labels and annotations")
        # (Controllers may read the objects through v2 too: the review of interest is the one with "a".)
        path, review = next(((p, r) for p, r in reversed(hook.seen)
                             if [jget(o, "metadata.name") for o in r["request"]["objects"]] == ["a"]), ("", {}))
        t.eq(path, "/convert?timeout=30s", "the webhook's path, with upstream's timeout")
        req = review.get("request") or {}
        t.eq((review.get("apiVersion"), review.get("kind"), req.get("desiredAPIVersion"),
              [jget(o, "spec.cronSpec") for o in req.get("objects") or []]),
             ("apiextensions.k8s.io/v1", "ConversionReview", f"{group}/v2", ["* * * * */5"]),
             "the ConversionReview sent")
        t.true(bool(req.get("uid")), "the review has a uid", req)

        # Created through v2: converted to v1 for storage.
        t.create(_cr(group, "v2", kind, "b", {"schedule": "0 * * * *"}), ns)
        b1 = t.raw(base.format(v="v1") + "/b")
        t.eq((b1.get("apiVersion"), b1.get("spec")), (f"{group}/v1", {"cronSpec": "0 * * * *"}),
             "created as v2, stored and read as v1")

        # A list through v2: every item converted, in one review.
        before = len(hook.seen)
        items = t.raw(base.format(v="v2"))["items"]
        t.eq(sorted((jget(i, "metadata.name"), i.get("apiVersion"), i.get("spec")) for i in items),
             [("a", f"{group}/v2", {"schedule": "* * * * */5"}), ("b", f"{group}/v2", {"schedule": "0 * * * *"})],
             "list through v2")
        t.true(any(len(r["request"]["objects"]) == 2 for _, r in hook.seen[before:]), "one review for the list",
               [len(r["request"]["objects"]) for _, r in hook.seen[before:]])
        out = t.ok("get", "--raw", base.format(v="v2") + "?watch=true&timeoutSeconds=2")
        t.eq(sorted((jget(e, "object.metadata.name"), jget(e, "object.spec.schedule")) for e in parse_json_stream(out)),
             [("a", "* * * * */5"), ("b", "0 * * * *")], "watch through v2")

        # The webhook answers Failure: upstream's message, a 500.
        t.ok("patch", "crd", crd, "--type=merge", "-p", json.dumps({"spec": {"conversion": conversion("/fail")}}))
        t.true(poll(lambda: t.run("get", "--raw", base.format(v="v2") + "/a").rc != 0, 10),
               "the failing webhook is used", t.last_cmd)
        code, body = t.https("GET", base.format(v="v2") + "/a")
        t.eq(code, 500, "a failed conversion is a 500")
        st = json.loads(body)
        t.eq(st.get("message"), f"conversion webhook for {group}/v1, Kind={kind} failed: conversion refused by test",
             "upstream's message")
        err = t.fails("create", "-n", ns, "-f", "-", stdin=_cr(group, "v2", kind, "c", {"schedule": "1 * * * *"}))
        t.eq(err, 'Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
                  f"conversion webhook for {group}/v2, Kind={kind} failed: conversion refused by test",
             "a write that cannot be converted to the storage version")
        t.eq(t.raw(base.format(v="v1") + "/a").get("spec"), {"cronSpec": "* * * * */5"},
             "the storage version needs no webhook")
    finally:
        t.run("delete", "crd", crd, "--ignore-not-found")
        hook.stop()
    t.ok("delete", "namespace", ns, "--wait=false")


RULES_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scalers.rules.example.com
spec:
  group: rules.example.com
  scope: Namespaced
  names: {plural: scalers, singular: scaler, kind: Scaler}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - {rule: "self.minReplicas <= self.replicas", message: "replicas must be at least minReplicas"}
            - rule: "self.replicas <= 10"
              messageExpression: "'replicas ' + string(self.replicas) + ' is over 10'"
              reason: FieldValueForbidden
              fieldPath: .replicas
            properties:
              replicas: {type: integer}
              minReplicas: {type: integer}
              mode:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: immutable}
          status:
            type: object
            x-kubernetes-validations:
            - rule: "self.ready <= 5"
            properties:
              ready: {type: integer}
"""


def _rules_crd(name: str, spec_schema: dict) -> str:
    plural, group = name.split(".", 1)
    return json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural[:-1], "kind": plural[:-1].capitalize()},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": spec_schema}}}}]}})


@scenario
def crd_validation_rules(t: T) -> None:
    """x-kubernetes-validations (CEL) on custom resources: a rule refuses an invalid object with its message,
    messageExpression/reason/fieldPath shape the cause, a transition rule (`self == oldSelf`) refuses an update,
    status writes are checked too; CRDs with a rule that does not compile, an oldSelf rule below an atomic list,
    or a rule too costly for unbounded lists are refused with upstream's messages."""
    ns = t.namespace()
    t.eq(t.ok("apply", "-f", "-", stdin=RULES_CRD).strip(),
         "customresourcedefinition.apiextensions.k8s.io/scalers.rules.example.com created", "apply CRD with rules")
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/scalers.rules.example.com")

    def cr(name: str, spec: dict) -> str:
        return _cr("rules.example.com", "v1", "Scaler", name, spec)

    t.eq(t.ok("create", "-n", ns, "-f", "-", stdin=cr("good", {"replicas": 3, "minReplicas": 1, "mode": "a"})).strip(),
         "scaler.rules.example.com/good created", "a valid object is accepted")
    t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=cr("bad", {"replicas": 1, "minReplicas": 2})),
         'The Scaler "bad" is invalid: spec: Invalid value: "object": replicas must be at least minReplicas',
         "a failing rule refuses the object with its message")
    t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=cr("big", {"replicas": 12, "minReplicas": 1})),
         'The Scaler "big" is invalid: spec.replicas: Forbidden: replicas 12 is over 10',
         "messageExpression, reason and fieldPath")
    t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=cr("both", {"replicas": 11, "minReplicas": 12})),
         'The Scaler "both" is invalid: \n'
         '* spec: Invalid value: "object": replicas must be at least minReplicas\n'
         '* spec.replicas: Forbidden: replicas 11 is over 10',
         "every failing rule is reported")
    t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=cr("typed", {"replicas": "three", "minReplicas": 1})),
         'The Scaler "typed" is invalid: \n'
         '* spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"\n'
         '* <nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
         'correct the existing errors to complete validation',
         "a type error keeps the rules from running")
    t.eq(t.fails("patch", "scaler", "good", "-n", ns, "--type=merge", "-p", '{"spec":{"mode":"b"}}'),
         'The Scaler "good" is invalid: spec.mode: Invalid value: "string": immutable',
         "a transition rule refuses the update")
    t.ok("patch", "scaler", "good", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":4}}')
    t.eq(jget(t.json("get", "scaler", "good", "-n", ns), "spec.replicas"), 4, "an update keeping the rules is stored")
    t.eq(t.fails("patch", "scaler", "good", "-n", ns, "--subresource=status", "--type=merge",
                 "-p", '{"status":{"ready":7}}'),
         'The Scaler "good" is invalid: status: Invalid value: "object": failed rule: self.ready <= 5',
         "rules are evaluated on status writes")
    t.ok("patch", "scaler", "good", "-n", ns, "--subresource=status", "--type=merge", "-p", '{"status":{"ready":2}}')

    broken = _rules_crd("brokens.rules.example.com", {
        "type": "object", "x-kubernetes-validations": [{"rule": "self.replicas >"}],
        "properties": {"replicas": {"type": "integer"}}})
    t.eq(t.fails("create", "-f", "-", stdin=broken),
         'The CustomResourceDefinition "brokens.rules.example.com" is invalid: '
         "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
         'apiextensions.ValidationRule{Rule:"self.replicas >", Message:"", MessageExpression:"", '
         "Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: "
         "compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>' expecting "
         "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, "
         "IDENTIFIER}\n | self.replicas >\n | ...............^",
         "a rule that does not compile refuses the CRD")
    atomic = _rules_crd("atomics.rules.example.com", {
        "type": "object", "properties": {"tags": {"type": "array", "maxItems": 5, "items": {
            "type": "string", "maxLength": 10, "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}})
    t.eq(t.fails("create", "-f", "-", stdin=atomic),
         'The CustomResourceDefinition "atomics.rules.example.com" is invalid: '
         "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0]"
         '.rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema '
         "within spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags]",
         "oldSelf below a list that cannot correlate items")
    costly = _rules_crd("costlies.rules.example.com", {
        "type": "object", "x-kubernetes-validations": [{"rule": "self.tags.all(x, self.tags.exists(y, x == y))"}],
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}}})
    err = t.fails("create", "-f", "-", stdin=costly)
    t.contains(err, "* spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: "
                    "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the "
                    "rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are "
                    "declared)", "a nested iteration of an unbounded list is too costly")
    t.contains(err, "* spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule "
                    "cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x",
               "the schema's total cost")
    t.ok("delete", "crd", "scalers.rules.example.com")
