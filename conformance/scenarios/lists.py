"""Lists: label and field selectors, chunked lists with `continue`, lists over the default page size, and
objects near the size limit.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse

from harness import POD, ROOT_CA, Failure, T, jget, scenario


@scenario
def label_selectors(t: T) -> None:
    """-l with =, ==, !=, in, notin, exists, !exists and combinations."""
    ns = t.namespace()
    objs = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "db"}, "c": {"env": "prod"}, "d": {}}
    for n, labels in objs.items():
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": labels}}, ns)
    cases = [
        ("env=prod", {"a", "c"}), ("env==prod", {"a", "c"}), ("env!=prod", {"b", "d"}),
        ("env in (dev,staging)", {"b"}), ("env notin (prod)", {"b", "d"}), ("tier", {"a", "b"}),
        ("!tier", {"c", "d"}), ("env=prod,tier=web", {"a"}), ("env=prod,!tier", {"c"}),
        ("env in (prod,dev),tier notin (web)", {"b", "c"}),
    ]
    for sel, want in cases:
        out = t.ok("get", "cm", "-n", ns, "-l", sel, "-o", "name")
        got = {n.split("/", 1)[1] for n in t.names(out)}
        # the root CA ConfigMap has no labels, like "d"
        want = want | ({ROOT_CA} if "d" in want else set())
        t.eq(sorted(got), sorted(want), f"-l {sel!r}")
    r = t.run("get", "cm", "-n", ns, "-l", "env=nomatch")
    t.eq((r.rc, r.out, r.err.strip()), (0, "", f"No resources found in {ns} namespace."), "-l with no match")
    status, body = t.https("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=" + urllib.parse.quote("env in (prod"))
    t.eq(status, 400, "a malformed labelSelector is a 400")
    t.status_error(body, 400, "BadRequest", "malformed labelSelector")


@scenario
def field_selectors(t: T) -> None:
    """--field-selector on metadata.name/namespace, and status.phase for pods (set via --subresource=status)."""
    ns = t.namespace()
    for n in ("one", "two", "three"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}, ns)
    sel = lambda *a: sorted(n.split("/", 1)[1] for n in t.names(t.ok("get", *a, "-o", "name")))  # noqa: E731
    t.eq(sel("cm", "-n", ns, "--field-selector", "metadata.name=two"), ["two"], "metadata.name=two")
    t.eq(sel("cm", "-n", ns, "--field-selector", "metadata.name!=two"), ["kube-root-ca.crt", "one", "three"],
         "metadata.name!=two")
    t.eq(sel("cm", "-A", "--field-selector", f"metadata.namespace={ns},metadata.name=one"), ["one"],
         "metadata.namespace + metadata.name")
    for n in ("run", "wait"):
        t.create(POD.format(name=n, labels=""), ns)
    pod = t.json("get", "pod", "run", "-n", ns)
    pod["status"]["phase"] = "Running"
    pod["status"]["podIP"] = "10.244.0.5"
    pod["status"]["podIPs"] = [{"ip": "10.244.0.5"}]
    out = t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(pod))
    t.eq(out.strip(), "pod/run replaced", "replace --subresource=status output")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase=Running"), ["run"], "status.phase=Running")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase=Pending"), ["wait"], "status.phase=Pending")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase!=Running"), ["wait"], "status.phase!=Running")
    t.eq(sel("pods", "-n", ns, "--field-selector", "spec.nodeName="), ["run", "wait"], "spec.nodeName= (unscheduled)")
    out = t.ok("get", "pod", "run", "-n", ns, "-o", "wide")
    t.eq(t.row(t.table(out), "run", "get pod -o wide").get("IP"), "10.244.0.5", "IP column from status.podIP")
    err = t.fails("get", "cm", "-n", ns, "--field-selector", "spec.foo=bar")
    t.match(err, r"^Error from server \(BadRequest\): .*spec\.foo", "unsupported field selector")


@scenario
def chunked_list(t: T) -> None:
    """get --chunk-size=2 over 10 objects lists all 10 in several requests carrying `continue`."""
    ns = t.namespace()
    for i in range(10):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"chunk-{i:02d}"}}, ns)
    r = t.run("get", "cm", "-n", ns, "--chunk-size=2", "-o", "name", "-v=6")
    if r.rc != 0:
        raise Failure("exit code 0", "exit 0", r.both(), r.cmd)
    names = [ln for ln in r.out.splitlines() if ln]
    t.eq(names, [f"configmap/chunk-{i:02d}" for i in range(10)] + [f"configmap/{ROOT_CA}"],
         "all 11 configmaps (with the root CA one), in order, once each")
    reqs = re.findall(r"/configmaps\?[^\s\"]*", r.err)
    t.true(len(reqs) >= 5, "at least 5 list requests at --chunk-size=2", r.err)
    t.true(all("limit=2" in q for q in reqs), "every request has limit=2", reqs)
    t.true(sum("continue=" in q for q in reqs) >= 4, "at least 4 requests carry continue=", reqs)
    out = t.ok("get", "cm", "-n", ns, "--chunk-size=3")
    t.eq([r["NAME"] for r in t.table(out)], [f"chunk-{i:02d}" for i in range(10)] + [ROOT_CA],
         "chunked table output")
    first = t.raw(f"/api/v1/namespaces/{ns}/configmaps?limit=3")
    t.eq([i["metadata"]["name"] for i in first["items"]], ["chunk-00", "chunk-01", "chunk-02"], "first page")
    t.true(bool(jget(first, "metadata.continue")), "first page has metadata.continue", first.get("metadata"))
    seen = [i["metadata"]["name"] for i in first["items"]]
    cont = jget(first, "metadata.continue")
    pages = 1
    while cont and pages < 10:
        page = t.raw(f"/api/v1/namespaces/{ns}/configmaps?limit=3&continue={urllib.parse.quote(cont)}")
        t.eq(jget(page, "metadata.resourceVersion"), jget(first, "metadata.resourceVersion"),
             "every page is served at the first page's resourceVersion")
        seen += [i["metadata"]["name"] for i in page["items"]]
        cont = jget(page, "metadata.continue")
        pages += 1
    t.eq(seen, [f"chunk-{i:02d}" for i in range(10)] + [ROOT_CA], "pages add up to the whole list")
    t.eq(pages, 4, "11 objects at limit=3 take 4 pages")
    status, body = t.https("GET", f"/api/v1/namespaces/{ns}/configmaps?limit=3&continue=garbage")
    t.eq(status, 400, "a malformed continue token is a 400")
    t.last_cmd = f"kubectl get --raw '/api/v1/namespaces/{ns}/configmaps?limit=3'"
    t.eq(jget(first, "metadata.remainingItemCount"), 8, "metadata.remainingItemCount of the first page")


@scenario
def large_list(t: T) -> None:
    """600 objects: kubectl's default --chunk-size=500 takes two pages; the namespace deletes them all."""
    ns = t.namespace()
    docs = "\n---\n".join(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i:03d}\ndata:\n  i: \"{i}\"\n"
                           for i in range(600))
    start = time.time()
    out = t.ok("create", "-n", ns, "-f", "-", stdin=docs, timeout=180)
    t.eq(len(out.splitlines()), 600, "600 created lines")
    created = time.time() - start
    r = t.run("get", "cm", "-n", ns, "--no-headers", "-v=6", timeout=60)
    t.eq(r.rc, 0, f"get exit code ({r.err[-500:]})")
    t.eq(len(r.out.splitlines()), 601, "600 rows and the root CA ConfigMap")
    reqs = re.findall(r"/configmaps\?[^\s\"]*", r.err)
    t.eq(len(reqs), 2, f"two pages at the default chunk size (requests: {reqs})")
    t.true("limit=500" in reqs[0] and "continue=" in reqs[1], "limit=500 then continue", reqs)
    t.true(created < 120, "600 creates in under 2 minutes", f"{created:.1f}s")
    out = t.ok("delete", "namespace", ns, timeout=120)
    t.eq(out.strip(), f'namespace "{ns}" deleted', "delete of a namespace with 600 objects")
    t.eq(t.raw(f"/api/v1/namespaces/{ns}/configmaps").get("items"), [], "all 600 gone")


@scenario
def large_objects(t: T) -> None:
    """a 900 KB configmap round-trips byte for byte; one over 1 MiB of data is Invalid (Too long)."""
    ns = t.namespace()
    blob = "".join(chr(ord("a") + (i * 7919) % 26) for i in range(900 * 1024))
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"blob": blob}}, ns)
    got = t.json("get", "cm", "big", "-n", ns)
    t.true(jget(got, "data.blob") == blob, "900 KB of data read back unchanged", len(jget(got, "data.blob", "")))
    err = t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"blob": blob + blob[:200 * 1024]}}))
    t.match(err, r'^The ConfigMap "huge" is invalid: .*Too long', "over 1 MiB of data")
