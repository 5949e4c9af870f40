"""Clients other than the current kubectl: older and newer kubectls, the Python `kubernetes` client and the
JavaScript `@kubernetes/client-node`, each driven as its users drive it.
"""

from __future__ import annotations

import json
import subprocess

from harness import HERE, OLD_KUBECTLS, Failure, T, poll, scenario


@scenario
def kubectl_version_skew(t: T) -> None:
    """Older and newer stock kubectls (1.27 .. 1.33) can list and get objects."""
    found = sorted(OLD_KUBECTLS.glob("kubectl.1.*")) if OLD_KUBECTLS.is_dir() else []
    if not found:
        return
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skew"}, "data": {"a": "b"}}, ns)
    for k in found:
        out = t.ok("get", "cm", "skew", "-n", ns, "-o", "jsonpath={.data.a}", kubectl=str(k))
        t.eq(out, "b", f"{k.name} get -o jsonpath")
        out = t.ok("get", "ns", "default", kubectl=str(k))
        t.headers(out, ["NAME", "STATUS", "AGE"], f"{k.name} get ns")


@scenario
def python_client(t: T) -> None:
    """The Python `kubernetes` client from PyPI, as its users drive it: typed CRUD, patches, watch, scale,
    errors as ApiException with metav1.Status bodies, the dynamic client with server-side apply, RBAC."""
    try:
        from kubernetes import client as k8s, config as k8s_config, dynamic, watch as k8s_watch
        from kubernetes.client.rest import ApiException
    except ImportError as e:
        raise Failure("the Python kubernetes client is installed (.ci/run installs it)", "import", str(e), "import kubernetes")
    api = k8s_config.new_client_from_config(config_file=str(t.kubeconfig))
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    ns = t.namespace()
    t.last_cmd = "python: CoreV1Api.create_namespaced_config_map / patch / replace"
    cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="py", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, cm)
    t.true(created.metadata.uid and created.metadata.creation_timestamp is not None, "typed create answer", created.metadata)
    t.eq(core.patch_namespaced_config_map("py", ns, {"data": {"b": "2"}}).data, {"a": "1", "b": "2"}, "dict patch")
    t.eq(core.patch_namespaced_config_map("py", ns, [{"op": "add", "path": "/data/c", "value": "3"}]).data,
         {"a": "1", "b": "2", "c": "3"}, "list body = JSON patch")
    live = core.read_namespaced_config_map("py", ns)
    live.data["d"] = "4"
    replaced = core.replace_namespaced_config_map("py", ns, live)
    t.true(int(replaced.metadata.resource_version) > int(created.metadata.resource_version), "replace bumps rv",
           replaced.metadata.resource_version)
    live.data["e"] = "stale"
    try:
        core.replace_namespaced_config_map("py", ns, live)
        raise Failure("a stale replace fails", "ApiException 409", "accepted", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["reason"]), (409, "Conflict"), "stale replace")
    try:
        core.read_namespaced_config_map("missing", ns)
        raise Failure("reading a missing object fails", "ApiException 404", "found", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["message"]), (404, 'configmaps "missing" not found'), "404")
    try:
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="Bad_Name")))
        raise Failure("an invalid name is refused", "ApiException 422", "created", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["reason"]), (422, "Invalid"), "422 Invalid")
    listed = core.list_namespaced_config_map(ns, label_selector="app=py")
    t.eq([c.metadata.name for c in listed.items], ["py"], "list with label_selector")

    t.last_cmd = "python: watch.Watch().stream(list_namespaced_config_map, resource_version=...)"
    w = k8s_watch.Watch()
    rv = listed.metadata.resource_version
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w", labels={"app": "py"})))
    core.delete_namespaced_config_map("w", ns)
    events = []
    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="app=py", resource_version=rv,
                       timeout_seconds=3):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    t.eq(events, [("ADDED", "w"), ("DELETED", "w")], "watch from a resourceVersion")

    t.last_cmd = "python: AppsV1Api deployment create / scale / delete"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox",
                                                          "resources": {"limits": {"cpu": "0.5"}}}]}}}}
    d = apps.create_namespaced_deployment(ns, dep)
    t.eq((d.spec.strategy.type, d.spec.template.spec.containers[0].resources.limits["cpu"]),
         ("RollingUpdate", "500m"), "defaults and canonical quantities")
    t.eq(apps.patch_namespaced_deployment_scale("d", ns, {"spec": {"replicas": 3}}).spec.replicas, 3, "patch scale")
    t.eq(apps.read_namespaced_deployment("d", ns).spec.replicas, 3, "scale reached the deployment")

    t.last_cmd = "python: dynamic.DynamicClient server_side_apply / get"
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    applied = cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "ssa", "namespace": ns}, "data": {"x": "y"}},
                                    field_manager="py-tool")
    t.eq([m.manager for m in applied.metadata.managedFields], ["py-tool"], "server-side apply manager")
    t.eq(cms.get(name="ssa", namespace=ns).data.x, "y", "dynamic get")

    t.last_cmd = "python: RBAC, a user bound to view"
    rbac = k8s.RbacAuthorizationV1Api(api)
    subject = getattr(k8s, "RbacV1Subject", None) or getattr(k8s, "V1Subject")  # renamed in client 24
    rbac.create_namespaced_role_binding(ns, k8s.V1RoleBinding(
        metadata=k8s.V1ObjectMeta(name="eve-view"),
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[subject(api_group="rbac.authorization.k8s.io", kind="User", name="eve")]))
    sar = k8s.V1SubjectAccessReview(spec=k8s.V1SubjectAccessReviewSpec(
        user="eve", resource_attributes=k8s.V1ResourceAttributes(namespace=ns, verb="list", resource="configmaps")))
    t.true(poll(lambda: k8s.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed, 10),
           "SubjectAccessReview allows eve to list configmaps", t.last_cmd)
    sar.spec.resource_attributes.verb = "delete"
    t.eq(k8s.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed, False, "but not delete")
    core.delete_namespace(ns)


JS_CLIENT = HERE / "js"


@scenario
def js_client(t: T) -> None:
    """The JavaScript client (@kubernetes/client-node, `npm install --prefix conformance/js`): typed create with
    Date timestamps, merge/JSON patch, server-side apply, 404 bodies, an informer (list + watch), and the
    discovery-driven KubernetesObjectApi."""
    t.last_cmd = "node conformance/js/client.mjs"
    if not (JS_CLIENT / "node_modules" / "@kubernetes" / "client-node").is_dir():
        raise Failure("the JavaScript client is installed (.ci/run installs it)", "npm install --prefix conformance/js",
                      "conformance/js/node_modules missing", t.last_cmd)
    ns = t.namespace()
    p = subprocess.run(["node", str(JS_CLIENT / "client.mjs"), str(t.kubeconfig), ns], capture_output=True,
                       text=True, timeout=90)
    t.eq(p.returncode, 0, f"node exit code ({p.stderr[-800:]})")
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    t.eq(seen, {
        "createdIsDate": True,
        "merge": {"a": "1", "b": "2"},
        "jsonPatch": {"a": "1", "b": "2", "c": "3"},
        "ssaManagers": ["js-tool/Apply"],
        "missing": {"code": 404, "reason": "NotFound"},
        "strategy": "RollingUpdate",
        "listed": ["js"],
        "informer": ["add js", "add js-2", "update js-2", "delete js-2"],
        "generic": "d",
        "genericList": 3,  # js, js-ssa and the root CA ConfigMap
        "genericDelete": "Success",
    }, "what the JavaScript client saw")
