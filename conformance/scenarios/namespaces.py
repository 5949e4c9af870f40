"""Namespaces: the bootstrap ones, CRUD, the protected ones, deletion cascading through a terminating
namespace, and what every new namespace gets (the `default` ServiceAccount, the root-CA ConfigMap).
"""

from __future__ import annotations

import json

from harness import DEPLOYMENT, JOB, LABELS, POD, Failure, T, check_meta, crud, jget, poll, scenario


@scenario
def bootstrap_namespaces(t: T) -> None:
    """default, kube-system, kube-public and kube-node-lease exist at start and are Active."""
    out = t.ok("get", "namespaces")
    t.headers(out, ["NAME", "STATUS", "AGE"], "get namespaces")
    rows = t.table(out)
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
        t.eq(t.row(rows, ns, "get namespaces").get("STATUS"), "Active", f"namespace {ns} STATUS")
    names = [r["NAME"] for r in rows]
    t.eq(names, sorted(names), "namespaces are listed sorted by name")
    obj = t.json("get", "namespace", "default")
    check_meta(t, obj, "Namespace", "v1", "default", None, "get namespace default")
    t.eq(jget(obj, "status.phase"), "Active", "status.phase")
    t.eq(jget(obj, "spec.finalizers"), ["kubernetes"], "spec.finalizers")
    t.eq(jget(obj, "metadata.labels"), {"kubernetes.io/metadata.name": "default"},
         "the kubernetes.io/metadata.name label upstream sets on every namespace")


@scenario
def namespace_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a namespace."""
    name = "crud-ns"

    def mutate(o):
        o["metadata"]["annotations"]["example.com/replaced"] = "true"

    def check(o):
        t.eq(o["metadata"]["annotations"].get("example.com/replaced"), "true", "replace stored the annotation")
        t.eq(jget(o, "status.phase"), "Active", "status.phase")

    crud(t, resource="namespace", prefix="namespace", plural="namespaces", kind="Namespace", api_version="v1",
         name=name, ns=None, manifest=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{LABELS}",
         headers=["NAME", "STATUS", "AGE"], row={"STATUS": "Active"}, mutate=mutate, check_mutated=check,
         describe=[r"^Status:\s+Active$", r"No resource quota\.", r"No LimitRange resource\."])


@scenario
def protected_namespaces(t: T) -> None:
    """default, kube-system and kube-public may not be deleted (Forbidden, even as a dry run)."""
    err = t.fails("delete", "namespace", "kube-public")
    t.eq(err, 'Error from server (Forbidden): namespaces "kube-public" is forbidden: this namespace may not be deleted',
         "delete namespace kube-public")
    for ns in ("default", "kube-system", "kube-public"):
        err = t.fails("delete", "namespace", ns, "--dry-run=server")
        t.eq(err, f'Error from server (Forbidden): namespaces "{ns}" is forbidden: this namespace may not be deleted',
             f"delete namespace {ns}")
    t.eq(t.ok("get", "ns", "default", "-o", "jsonpath={.status.phase}"), "Active", "default still Active")


@scenario
def namespace_delete_cascade(t: T) -> None:
    """deleting a namespace removes the objects in it, then the namespace."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, ns)
    t.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}, ns)
    t.create(POD.format(name="p", labels=""), ns)
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.create(JOB.format(name="j", labels=""), ns)
    out = t.ok("delete", "namespace", ns, timeout=120)
    t.eq(out.strip(), f'namespace "{ns}" deleted', "delete namespace output")
    t.eq(t.fails("get", "namespace", ns), f'Error from server (NotFound): namespaces "{ns}" not found',
         "namespace gone after delete returned")
    for path in (f"/api/v1/namespaces/{ns}/configmaps", f"/api/v1/namespaces/{ns}/secrets",
                 f"/api/v1/namespaces/{ns}/pods", f"/apis/apps/v1/namespaces/{ns}/deployments",
                 f"/apis/batch/v1/namespaces/{ns}/jobs"):
        t.eq(t.raw(path).get("items"), [], f"{path} is empty")


@scenario
def namespace_terminating(t: T) -> None:
    """a terminating namespace refuses new objects (Forbidden) and goes away once its content is gone."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, ns)
    t.eq(t.ok("delete", "namespace", ns, "--wait=false").strip(), f'namespace "{ns}" deleted', "delete output")
    phase = lambda: t.ok("get", "ns", ns, "-o", "jsonpath={.status.phase}")  # noqa: E731
    t.eq(phase(), "Terminating", "status.phase of a namespace being deleted")
    out = t.ok("get", "ns", ns)
    t.eq(t.row(t.table(out), ns, "get ns").get("STATUS"), "Terminating", "STATUS column")
    err = t.fails("create", "-n", ns, "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}))
    t.eq(err, f'Error from server (Forbidden): error when creating "STDIN": configmaps "late" is forbidden: unable '
              f'to create new content in namespace {ns} because it is being terminated', "create in terminating ns")
    if not poll(lambda: t.run("get", "cm", "held", "-n", ns, "-o", "jsonpath={.metadata.deletionTimestamp}").out != "",
                30):
        raise Failure("the held configmap gets a deletionTimestamp", "deletionTimestamp set",
                      t.run("get", "cm", "held", "-n", ns, "-o", "yaml").out, t.last_cmd)
    o = t.json("get", "cm", "held", "-n", ns)
    o["metadata"]["finalizers"] = []
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    gone = poll(lambda: t.run("get", "ns", ns).rc != 0, 60)
    t.true(gone, "namespace goes away once its last object is gone", t.run("get", "ns", ns, "-o", "yaml").out)


@scenario
def namespace_defaults(t: T) -> None:
    """Every namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (the cluster CA),
    re-created when deleted, as upstream's service-account and root-ca-cert-publisher controllers do."""
    ns = t.namespace()

    def present(kind: str, name: str) -> bool:
        return t.run("get", kind, name, "-n", ns, "-o", "name").rc == 0
    t.true(poll(lambda: present("serviceaccount", "default"), 10), "default ServiceAccount appears", t.last_cmd)
    t.true(poll(lambda: present("configmap", "kube-root-ca.crt"), 10), "kube-root-ca.crt appears", t.last_cmd)
    ca = t.json("get", "configmap", "kube-root-ca.crt", "-n", ns)["data"]["ca.crt"]
    t.eq(ca.strip(), t.server.creds["ca"].read_text().strip(), "kube-root-ca.crt holds the cluster CA")
    t.true(t.ok("create", "token", "default", "-n", ns).count(".") == 2, "create token default", t.last_cmd)
    t.ok("delete", "serviceaccount", "default", "-n", ns)
    t.ok("delete", "configmap", "kube-root-ca.crt", "-n", ns)
    t.true(poll(lambda: present("serviceaccount", "default"), 10), "default ServiceAccount re-created", t.last_cmd)
    t.true(poll(lambda: present("configmap", "kube-root-ca.crt"), 10), "kube-root-ca.crt re-created", t.last_cmd)
    t.ok("patch", "configmap", "kube-root-ca.crt", "-n", ns, "--type=merge", "-p", '{"data":{"ca.crt":"x"}}')
    t.true(poll(lambda: t.json("get", "configmap", "kube-root-ca.crt", "-n", ns)["data"]["ca.crt"].strip()
                == t.server.creds["ca"].read_text().strip(), 10), "an edited kube-root-ca.crt is restored",
           t.last_cmd)
