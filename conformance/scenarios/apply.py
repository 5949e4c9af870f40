"""Writes from manifests: patch of every type, client-side and server-side apply (conflicts, managedFields,
prune, directories), diff, dry-run, multi-document and kind: List manifests, bulk delete.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from harness import DEPLOYMENT, NOT_FOUND, ROOT_CA, SUSPENDED_CRONJOB, T, jget, poll, scenario


@scenario
def patch(t: T) -> None:
    """kubectl patch: strategic (lists merge by name), merge, json; status subresource; no-op; not found."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}}, ns)
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "-p", '{"data":{"b":"2"}}').strip(), "configmap/p patched",
         "strategic patch output")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]').strip(),
         "configmap/p patched", "json patch output")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"c":"3"}}').strip(),
         "configmap/p patched", "merge patch output")
    t.eq(t.json("get", "cm", "p", "-n", ns).get("data"), {"b": "2", "c": "3"}, "data after three patches")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"c":"3"}}').strip(),
         "configmap/p patched (no change)", "no-op patch output")
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.ok("patch", "deploy", "d", "-n", ns, "-p",
         '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/pause:3.9"}]}}}}')
    t.ok("patch", "deploy", "d", "-n", ns, "-p",
         '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:1.36"}]}}}}')
    d = t.json("get", "deploy", "d", "-n", ns)
    t.eq(sorted((c["name"], c["image"]) for c in jget(d, "spec.template.spec.containers", [])),
         [("side", "busybox:1.36"), ("web", "registry.k8s.io/pause:3.9")],
         "strategic merge patch merges containers by name")
    t.eq(jget(d, "metadata.generation"), 3, "generation after two spec patches")
    # The status write goes to a suspended CronJob: no controller writes its status (the Deployment's
    # is the deployment controller's).
    t.create(SUSPENDED_CRONJOB, ns)
    out = t.ok("patch", "cronjob", "cj", "-n", ns, "--subresource=status", "--type=merge", "-p",
               '{"status":{"lastScheduleTime":"2024-01-01T00:00:00Z"}}')
    t.eq(out.strip(), "cronjob.batch/cj patched", "status patch output")
    cj = t.json("get", "cronjob", "cj", "-n", ns)
    t.eq((jget(cj, "status.lastScheduleTime"), jget(cj, "metadata.generation")), ("2024-01-01T00:00:00Z", 1),
         "status patched, generation same")
    t.eq(t.fails("patch", "cm", "nope", "-n", ns, "-p", '{"data":{"x":"y"}}'),
         NOT_FOUND.format(res="configmaps", name="nope"), "patch of a missing object")
    err = t.fails("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"metadata":{"resourceVersion":"1"},"data":{"x":"y"}}')
    t.eq(err, 'Error from server (Conflict): Operation cannot be fulfilled on configmaps "p": the object has been '
              'modified; please apply your changes to the latest version and try again', "patch with a stale resourceVersion")


@scenario
def apply(t: T) -> None:
    """kubectl apply (client-side): created / unchanged / configured, and keys dropped from the manifest go."""
    ns = t.namespace()
    m1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  a: \"1\"\n  b: \"2\"\n"
    m2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  a: \"10\"\n"
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m1).strip(), "configmap/q created", "first apply")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m1).strip(), "configmap/q unchanged", "same apply again")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m2).strip(), "configmap/q configured", "changed apply")
    t.eq(t.json("get", "cm", "q", "-n", ns).get("data"), {"a": "10"}, "apply removed the dropped key")
    ann = jget(t.json("get", "cm", "q", "-n", ns), "metadata.annotations", {})
    t.true("kubectl.kubernetes.io/last-applied-configuration" in ann, "last-applied-configuration annotation", ann)


@scenario
def apply_server_side(t: T) -> None:
    """kubectl apply --server-side creates, then updates, and records managedFields."""
    ns = t.namespace()
    out = t.ok("apply", "--server-side", "-n", ns, "-f", "-",
               stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: v\n")
    t.eq(out.strip(), "configmap/ssa serverside-applied", "server-side apply output")
    o = t.json("get", "cm", "ssa", "-n", ns, "--show-managed-fields")
    managers = [m.get("manager") for m in jget(o, "metadata.managedFields", [])]
    t.true("kubectl" in managers, "managedFields record the kubectl field manager", managers)
    out = t.ok("apply", "--server-side", "-n", ns, "-f", "-",
               stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: w\n")
    t.eq(t.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.k}"), "w", "second server-side apply")


@scenario
def manifests_and_bulk_delete(t: T) -> None:
    """create -f with several YAML documents; get -f; delete -f; delete -l; delete --all."""
    ns = t.namespace()
    docs = "\n---\n".join([
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    group: one\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    group: one\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\ndata:\n  k: dg==\n",
    ])
    out = t.ok("create", "-n", ns, "-f", "-", stdin=docs)
    t.eq(out.splitlines(), ["configmap/a created", "configmap/b created", "secret/c created"], "create of 3 documents")
    out = t.ok("get", "-n", ns, "-f", "-", "-o", "name", stdin=docs)
    t.eq(out.splitlines(), ["configmap/a", "configmap/b", "secret/c"], "get -f")
    for n in ("d", "e", "f"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"group": "two"}}}, ns)
    out = t.ok("delete", "-n", ns, "-f", "-", stdin=docs)
    t.eq(out.splitlines(), ['configmap "a" deleted', 'configmap "b" deleted', 'secret "c" deleted'], "delete -f")
    out = t.ok("delete", "cm", "-n", ns, "-l", "group=two,name!=x")
    t.eq(sorted(out.splitlines()), ['configmap "d" deleted', 'configmap "e" deleted', 'configmap "f" deleted'],
         "delete -l")
    for n in ("g", "h"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}, ns)
    out = t.ok("delete", "cm", "--all", "-n", ns)
    t.eq(sorted(out.splitlines()), ['configmap "g" deleted', 'configmap "h" deleted', f'configmap "{ROOT_CA}" deleted'],
         "delete --all")
    t.true(poll(lambda: t.ok("get", "cm", "-n", ns, "-o", "name").split() == [f"configmap/{ROOT_CA}"], 10),
           "nothing left but the root CA ConfigMap, which its controller puts back", t.last_cmd)


@scenario
def create_list_manifest(t: T) -> None:
    """create -f of a kind: List document (kubectl validates it against the server's OpenAPI v2)."""
    ns = t.namespace()
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}} for n in ("d", "e")]}
    out = t.ok("create", "-n", ns, "-f", "-", stdin=json.dumps(lst))
    t.eq(out.splitlines(), ["configmap/d created", "configmap/e created"], "create of a List")


@scenario
def dry_run(t: T) -> None:
    """create/replace/delete --dry-run=server answer as if done and change nothing."""
    ns = t.namespace()
    m = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"v": "1"}}
    out = t.ok("create", "-n", ns, "--dry-run=server", "-f", "-", stdin=json.dumps(m))
    t.eq(out.strip(), "configmap/dry created (server dry run)", "create --dry-run=server output")
    t.eq(t.fails("get", "cm", "dry", "-n", ns), NOT_FOUND.format(res="configmaps", name="dry"), "nothing created")
    o = json.loads(t.ok("create", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(m)))
    t.eq((jget(o, "metadata.name"), jget(o, "data.v")), ("dry", "1"), "dry-run answer carries the object")
    t.true(bool(jget(o, "metadata.creationTimestamp")), "dry-run answer is defaulted by the server", o["metadata"])
    t.create(m, ns)
    before = t.json("get", "cm", "dry", "-n", ns)
    changed = json.loads(json.dumps(before))
    changed["data"]["v"] = "2"
    out = t.ok("replace", "--dry-run=server", "-f", "-", stdin=json.dumps(changed))
    t.eq(out.strip(), "configmap/dry replaced (server dry run)", "replace --dry-run=server output")
    out = t.ok("delete", "cm", "dry", "-n", ns, "--dry-run=server")
    t.eq(out.strip(), 'configmap "dry" deleted (server dry run)', "delete --dry-run=server output")
    after = t.json("get", "cm", "dry", "-n", ns)
    t.eq((after.get("data"), after["metadata"]["resourceVersion"]),
         (before.get("data"), before["metadata"]["resourceVersion"]), "object untouched by dry runs")


@scenario
def patch_types(t: T) -> None:
    """patch --type=json (failing test op changes nothing), merge, strategic env var by merge key."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}}, ns)
    rv = jget(t.json("get", "cm", "p", "-n", ns), "metadata.resourceVersion")
    err = t.fails("patch", "cm", "p", "-n", ns, "--type=json", "-p",
                  '[{"op":"test","path":"/data/a","value":"2"},{"op":"replace","path":"/data/a","value":"3"}]')
    t.contains(err, "The request is invalid: the server rejected our request due to an error in our request",
               "failing json patch test op is rejected by the server (422)")
    o = t.json("get", "cm", "p", "-n", ns)
    t.eq((o.get("data"), jget(o, "metadata.resourceVersion")), ({"a": "1"}, rv), "nothing changed by the failed patch")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=json", "-p",
              '[{"op":"test","path":"/data/a","value":"1"},{"op":"replace","path":"/data/a","value":"3"}]').strip(),
         "configmap/p patched", "json patch with a passing test op")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"a":null,"b":"x"}}').strip(),
         "configmap/p patched", "merge patch")
    t.eq(t.json("get", "cm", "p", "-n", ns).get("data"), {"b": "x"}, "merge patch: null deletes, new key added")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}]},
                                            {"name": "side", "image": "busybox:1.36"}]}}}}
    t.create(dep, ns)
    out = t.ok("patch", "deploy", "d", "-n", ns, "--type=strategic", "-p",
               '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}')
    t.eq(out.strip(), "deployment.apps/d patched", "strategic patch output")
    cs = jget(t.json("get", "deploy", "d", "-n", ns), "spec.template.spec.containers", [])
    t.eq([(c["name"], c["image"], sorted(c.get("env") or [], key=lambda e: e["name"])) for c in cs],
         [("web", "nginx:1.27", [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
          ("side", "busybox:1.36", [])], "env var merged into the web container by name")


def _apply_dir_manifests(d: Path, ns: str, version: int, changed: set[int]) -> None:
    """50 files: a namespace, then deployments, services and configmaps (round robin)."""
    (d / "00-ns.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    for i in range(1, 50):
        v = f"v{version}" if i in changed else "v1"
        kind = i % 3
        if kind == 0:
            body = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\n"
                    f"data:\n  version: {v}\n")
        elif kind == 1:
            body = (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\n  namespace: {ns}\n"
                    f"spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n"
                    f"    metadata:\n      labels:\n        app: dep-{i}\n        version: {v}\n    spec:\n"
                    f"      containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n")
        else:
            body = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\n"
                    f"  labels:\n    version: {v}\nspec:\n  selector:\n    app: x\n  ports:\n  - port: 80\n")
        (d / f"{i:02d}.yaml").write_text(body)


def _rvs(t: T, ns: str) -> dict:
    out = {}
    for kind in ("deploy", "svc", "cm"):
        for item in t.json("get", kind, "-n", ns).get("items", []):
            if kind == "cm" and item["metadata"]["name"] == ROOT_CA:
                continue  # the root-CA publisher's, not applied
            meta = item["metadata"]
            if kind == "deploy":
                # The Deployment controller keeps writing them (status, the revision annotation): what
                # a no-op apply must leave alone is the generation and kubectl's managedFields entries
                # (a write by the apply would stamp its manager's time).
                entries = [m for m in meta.get("managedFields", []) if m.get("manager", "").startswith("kubectl")]
                out[f"{kind}/{meta['name']}"] = json.dumps([meta.get("generation"), entries], sort_keys=True)
            else:
                out[f"{kind}/{meta['name']}"] = meta["resourceVersion"]
    return out


@scenario
def apply_directory(t: T) -> None:
    """apply -f DIR of 50 manifests: all created; again all unchanged (same RVs); edited files configured."""
    ns = "apply-directory"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _apply_dir_manifests(d, ns, 1, set())
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        t.eq(len(lines), 50, "apply of 50 files prints 50 lines")
        t.true(all(ln.endswith(" created") for ln in lines), "every line says created", lines)
        t.eq(lines[0], f"namespace/{ns} created", "namespace first")
        before = _rvs(t, ns)
        t.true(len(before) == 49, "all 49 namespaced objects stored", sorted(before))
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        t.eq(len(lines), 50, "second apply prints 50 lines")
        bad = [ln for ln in lines if not ln.endswith(" unchanged")]
        t.eq(bad, [], "second apply: every line unchanged")
        t.eq(_rvs(t, ns), before, "resourceVersions unchanged by a no-op apply (Deployments: generation and managedFields)")
        changed = {3, 4, 5}
        _apply_dir_manifests(d, ns, 2, changed)
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        configured = sorted(ln for ln in lines if ln.endswith(" configured"))
        t.eq(configured, ["configmap/cm-3 configured", "deployment.apps/dep-4 configured", "service/svc-5 configured"],
             "only the edited objects are configured")
        t.eq(len([ln for ln in lines if ln.endswith(" unchanged")]), 47, "the rest unchanged")
        t.eq(jget(t.json("get", "cm", "cm-3", "-n", ns), "data.version"), "v2", "edited configmap stored")
    t.ok("delete", "namespace", ns, timeout=120)


@scenario
def apply_server_side_conflicts(t: T) -> None:
    """SSA from two managers: conflict text, --force-conflicts, managedFields show the new owner."""
    ns = t.namespace()
    m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"{x}\"\n"
    t.eq(t.ok("apply", "--server-side", "--field-manager=a", "-n", ns, "-f", "-", stdin=m.format(x="1")).strip(),
         "configmap/ssa serverside-applied", "apply as a")
    err = t.fails("apply", "--server-side", "--field-manager=b", "-n", ns, "-f", "-", stdin=m.format(x="2"))
    # upstream (apiserver fieldmanager printManager) adds "using v1" only for Update-operation managers
    t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "a": .data.x', "conflict message")
    t.contains(err, "--force-conflicts", "conflict message explains --force-conflicts")
    t.eq(t.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.x}"), "1", "value unchanged after conflict")
    t.eq(t.ok("apply", "--server-side", "--field-manager=b", "--force-conflicts", "-n", ns, "-f", "-",
              stdin=m.format(x="2")).strip(), "configmap/ssa serverside-applied", "apply --force-conflicts as b")
    y = t.ok("get", "cm", "ssa", "-n", ns, "-o", "yaml", "--show-managed-fields")
    t.match(y, r"^  x: \"2\"$", "value from b")
    o = t.json("get", "cm", "ssa", "-n", ns, "--show-managed-fields")
    owners = [mf.get("manager") for mf in jget(o, "metadata.managedFields", [])
              if "f:x" in json.dumps(mf.get("fieldsV1", {}))]
    t.eq(owners, ["b"], "manager b owns .data.x")
    t.contains(y, "manager: b", "yaml --show-managed-fields shows manager b")
    # a field owned by an Update manager (kubectl create): "using v1" (the identifier drops the time)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "upd"}, "data": {"x": "1"}}, ns)
    err = t.fails("apply", "--server-side", "--field-manager=b", "-n", ns, "-f", "-",
                  stdin=m.format(x="2").replace("name: ssa", "name: upd"))
    t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.x',
         "conflict with an Update manager")


@scenario
def apply_client_side_then_server_side(t: T) -> None:
    """`kubectl apply -f pod.yaml`, then with the file changed `kubectl apply --server-side -f pod.yaml`: upgraded
    without conflicts (upstream's lastAppliedManager lets kubectl take over what the last-applied annotation
    lists), the annotation kept and synced to the applied config, kubectl's own managedFields migration
    accepted (kubectl-last-applied owns the annotation); another field manager still conflicts"""
    ns = t.namespace()
    pod = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: test-pod\n  labels:\n    app: {app}\nspec:\n"
           "  containers:\n  - name: c\n    image: {image}\n")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=pod.format(app="a", image="busybox:1.35")).strip(),
         "pod/test-pod created", "client-side apply")
    changed = pod.format(app="b", image="busybox:1.36")
    err = t.fails("apply", "--server-side", "--field-manager=other", "-n", ns, "-f", "-", stdin=changed)
    t.contains(err, '"kubectl-client-side-apply" using v1', "a non-kubectl manager conflicts")
    t.eq(t.ok("apply", "--server-side", "-n", ns, "-f", "-", stdin=changed).strip(),
         "pod/test-pod serverside-applied", "kubectl's server-side apply upgrades")
    o = t.json("get", "pod", "test-pod", "-n", ns, "--show-managed-fields")
    t.eq((jget(o, "metadata.labels.app"), o["spec"]["containers"][0]["image"]), ("b", "busybox:1.36"),
         "the changed fields applied")
    last = json.loads(jget(o, "metadata.annotations", {}).get("kubectl.kubernetes.io/last-applied-configuration",
                                                              "null"))
    t.eq((jget(last, "metadata.labels.app"), jget(last, "spec.containers", [{}])[0].get("image")),
         ("b", "busybox:1.36"), "the last-applied annotation is kept, now the server-side config")
    managers = {mf["manager"]: mf["operation"] for mf in o["metadata"]["managedFields"]}
    t.eq(managers.get("kubectl"), "Apply", f"kubectl applies: {managers}")
    csa = [json.dumps(mf.get("fieldsV1", {})) for mf in o["metadata"]["managedFields"]
           if mf["manager"] == "kubectl-client-side-apply"]
    t.true(not any("f:image" in f or "f:app" in f for f in csa), "kubectl took the applied fields over", csa)


@scenario
def diff_manifest(t: T) -> None:
    """kubectl diff -f shows -/+ lines for a change (exit 1) and nothing for an identical one (exit 0)."""
    ns = t.namespace()
    m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: df\n  namespace: {ns}\ndata:\n  k: {v}\n"
    t.ok("apply", "-f", "-", stdin=m.format(ns=ns, v="old"))
    r = t.run("diff", "-f", "-", stdin=m.format(ns=ns, v="new"))
    t.eq(r.rc, 1, "diff exit code when different")
    t.match(r.out, r"^-  k: old$", "diff - line")
    t.match(r.out, r"^\+  k: new$", "diff + line")
    r = t.run("diff", "-f", "-", stdin=m.format(ns=ns, v="old"))
    t.eq((r.rc, r.out), (0, ""), "diff of an unchanged manifest")
    t.eq(t.ok("get", "cm", "df", "-n", ns, "-o", "jsonpath={.data.k}"), "old", "diff changes nothing")


@scenario
def dry_run_defaults(t: T) -> None:
    """create --dry-run=server -o yaml of a Deployment shows the defaults and stores nothing."""
    ns = t.namespace()
    y = t.ok("create", "deployment", "dr", "-n", ns, "--image=nginx:1.27", "--dry-run=server", "-o", "yaml")
    t.match(y, r"^    type: RollingUpdate$", "strategy RollingUpdate")
    t.match(y, r"^  revisionHistoryLimit: 10$", "revisionHistoryLimit 10")
    t.match(y, r"^  progressDeadlineSeconds: 600$", "progressDeadlineSeconds 600")
    t.eq(t.fails("get", "deploy", "dr", "-n", ns), NOT_FOUND.format(res="deployments.apps", name="dr"),
         "nothing stored")


@scenario
def apply_prune(t: T) -> None:
    """apply --prune -l: objects applied before with the label but absent from the files are deleted; others kept."""
    ns = t.namespace()
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{app: pr}}\ndata: {{a: \"1\"}}\n"
    dep = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pd\n  labels: {app: pr}\nspec:\n"
           "  selector: {matchLabels: {app: pd}}\n  template:\n    metadata: {labels: {app: pd}}\n"
           "    spec: {containers: [{name: c, image: nginx}]}\n")
    full = "---\n".join([cm.format(n="p1"), cm.format(n="p2"), dep])
    out = t.ok("apply", "-n", ns, "-l", "app=pr", "--prune", "-f", "-", stdin=full)
    t.eq(out.strip().splitlines(), ["configmap/p1 created", "configmap/p2 created", "deployment.apps/pd created"],
         "first apply")
    t.ok("create", "cm", "unrelated", "-n", ns, "--from-literal=a=b")
    t.ok("label", "cm", "unrelated", "-n", ns, "app=pr")
    t.ok("create", "cm", "other-label", "-n", ns, "--from-literal=a=b")
    out = t.ok("apply", "-n", ns, "-l", "app=pr", "--prune", "-f", "-", stdin=cm.format(n="p1"))
    t.eq(sorted(out.strip().splitlines()), ["configmap/p1 unchanged", "configmap/p2 pruned",
                                            "deployment.apps/pd pruned"], "apply of one file prunes the rest")
    t.eq(t.names(t.ok("get", "cm,deploy", "-n", ns, "-o", "name")),
         {"configmap/p1", "configmap/unrelated", "configmap/other-label", f"configmap/{ROOT_CA}"},
         "objects never applied (no last-applied annotation) are kept")


@scenario
def create_kind_list_file(t: T) -> None:
    """create -f FILE of a kind: List (mixed kinds) creates every item."""
    ns = t.namespace()
    lst = ("apiVersion: v1\nkind: List\nitems:\n"
           "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: l1\n  data:\n    a: \"1\"\n"
           "- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: l2\n  stringData:\n    b: two\n")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "list.yaml"
        f.write_text(lst)
        out = t.ok("create", "-n", ns, "-f", str(f))
    t.eq(out.splitlines(), ["configmap/l1 created", "secret/l2 created"], "create -f of a List file")
    t.eq(jget(t.json("get", "secret", "l2", "-n", ns), "data.b"), base64.b64encode(b"two").decode(), "secret item")
