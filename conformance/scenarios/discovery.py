"""Discovery and the server's self-description: health endpoints, /version, api-versions, api-resources,
and kubectl explain reading the served OpenAPI.
"""

from __future__ import annotations

import json

import subprocess

from harness import RKUBE_BIN, T, jget, scenario


@scenario
def health_endpoints(t: T) -> None:
    """get --raw /healthz, /livez and /readyz answer `ok`."""
    for p in ("/healthz", "/livez", "/readyz"):
        t.eq(t.ok("get", "--raw", p), "ok", f"get --raw {p}")


@scenario
def version(t: T) -> None:
    """kubectl version shows Server Version v1.33.x; /version is a version.Info."""
    out = t.ok("version")
    t.match(out, r"^Client Version: v1\.\d+\.\d+", "Client Version line")
    t.match(out, r"^Server Version: v1\.33\.\d+", "Server Version line")
    t.not_contains(out + t.run("version").err, "WARNING: version difference", "no version-skew warning")
    v = json.loads(t.ok("version", "-o", "json"))
    sv = v.get("serverVersion", {})
    t.eq((sv.get("major"), sv.get("minor")), ("1", "33"), "serverVersion major/minor")
    t.true(sv.get("gitVersion", "").startswith("v1.33."), "serverVersion.gitVersion", sv)
    for k in ("gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"):
        t.true(k in sv, f"serverVersion has {k}", sv)


@scenario
def api_versions(t: T) -> None:
    """kubectl api-versions lists v1, apps/v1, batch/v1 (sorted, one per line)."""
    out = t.ok("api-versions")
    lines = out.split()
    for gv in ("v1", "apps/v1", "batch/v1"):
        t.true(gv in lines, f"api-versions contains {gv}", out)
    t.eq(lines, sorted(lines), "api-versions is sorted")
    api = t.raw("/api")
    t.eq(api.get("kind"), "APIVersions", "/api kind")
    t.eq(api.get("versions"), ["v1"], "/api versions")
    groups = t.raw("/apis")
    t.eq(groups.get("kind"), "APIGroupList", "/apis kind")
    names = {g["name"]: g for g in groups.get("groups", [])}
    for g in ("apps", "batch"):
        t.true(g in names, f"/apis has group {g}", list(names))
        t.eq(jget(names[g], "preferredVersion.groupVersion"), f"{g}/v1", f"{g} preferredVersion")


@scenario
def api_resources(t: T) -> None:
    """kubectl api-resources shows the upstream NAME/SHORTNAMES/APIVERSION/NAMESPACED/KIND rows."""
    out = t.ok("api-resources")
    t.headers(out, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], "api-resources")
    rows = t.table(out)
    expected = {
        "pods": ("po", "v1", "true", "Pod"),
        "services": ("svc", "v1", "true", "Service"),
        "configmaps": ("cm", "v1", "true", "ConfigMap"),
        "secrets": ("", "v1", "true", "Secret"),
        "namespaces": ("ns", "v1", "false", "Namespace"),
        "nodes": ("no", "v1", "false", "Node"),
        "deployments": ("deploy", "apps/v1", "true", "Deployment"),
        "jobs": ("", "batch/v1", "true", "Job"),
    }
    for name, (short, av, namespaced, kind) in expected.items():
        r = t.row(rows, name, "api-resources")
        t.eq((r["SHORTNAMES"], r["APIVERSION"], r["NAMESPACED"], r["KIND"]), (short, av, namespaced, kind),
             f"api-resources row {name}")
    out = t.ok("api-resources", "--api-group=apps", "-o", "name")
    t.true("deployments.apps" in out.split(), "api-resources --api-group=apps -o name lists deployments.apps", out)
    out = t.ok("api-resources", "--namespaced=false", "-o", "name")
    t.true("nodes" in out.split() and "namespaces" in out.split() and "pods" not in out.split(),
           "api-resources --namespaced=false", out)
    res = t.raw("/api/v1")
    t.eq(res.get("kind"), "APIResourceList", "/api/v1 kind")
    pods = next((r for r in res.get("resources", []) if r.get("name") == "pods"), None)
    t.true(pods is not None, "/api/v1 lists pods", res)
    for verb in ("create", "delete", "get", "list", "update", "watch"):
        t.true(verb in pods.get("verbs", []), f"pods verbs include {verb}", pods)
    t.true("all" in pods.get("categories", []), "pods are in category all", pods)
    t.true(any(r.get("name") == "pods/status" for r in res["resources"]), "/api/v1 lists pods/status", res)


@scenario
def discovery_storage_version_hash(t: T) -> None:
    """`get --raw /api/v1` and `/apis/G/V` list each stored resource with upstream's storageVersionHash, fields
    in upstream's order (compared as raw text); events.k8s.io Events share core Events' hash (one store),
    bindings (nothing stored) and subresources carry none"""
    core = t.ok("get", "--raw", "/api/v1")
    t.contains(core, '{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap",'
               '"verbs":["create","delete","deletecollection","get","list","patch","update","watch"],'
               '"shortNames":["cm"],"storageVersionHash":"qFsyl6wFWjQ="}', "configmaps, byte for byte")
    t.contains(core, '{"name":"replicationcontrollers/scale","singularName":"","namespaced":true,'
               '"group":"autoscaling","version":"v1","kind":"Scale","verbs":["get","patch","update"]}',
               "a subresource of another group: group and version before kind")
    by_name = {r["name"]: r for r in json.loads(core)["resources"]}
    t.eq(by_name["pods"].get("storageVersionHash"), "xPOwRZ+Yhw8=", "pods")
    t.eq(by_name["events"].get("storageVersionHash"), "r2yiGXH7wu8=", "core events")
    t.true("storageVersionHash" not in by_name["bindings"], "bindings: none", by_name["bindings"])
    t.true("storageVersionHash" not in by_name["pods/log"], "subresources: none", by_name["pods/log"])
    events = {r["name"]: r for r in json.loads(t.ok("get", "--raw", "/apis/events.k8s.io/v1"))["resources"]}
    t.eq(events["events"].get("storageVersionHash"), "r2yiGXH7wu8=", "events.k8s.io events: core Events' hash")
    apps = {r["name"]: r for r in json.loads(t.ok("get", "--raw", "/apis/apps/v1"))["resources"]}
    t.eq(apps["deployments"].get("storageVersionHash"), "8aSe+NMegvE=", "deployments")


@scenario
def metrics_endpoint(t: T) -> None:
    """`get --raw /metrics`: Prometheus text with apiserver_request_total by upstream's labels (LIST of pods
    counted after a `kubectl get pods`), the duration histogram, apiserver_storage_objects and process
    metrics; RBAC's non-resource rule: a user in system:monitoring may read it, one without may not"""
    ns = t.namespace()
    t.ok("get", "pods", "-n", ns)
    out = t.ok("get", "--raw", "/metrics")
    t.match(out, r'^apiserver_request_total\{code="200",component="apiserver",dry_run="",group="",resource="pods",'
                 r'scope="namespace",subresource="",verb="LIST",version="v1"\} [1-9][0-9]*$', "the LIST of pods counted")
    t.match(out, r'^apiserver_request_duration_seconds_bucket\{.*resource="pods".*verb="LIST".*le="\+Inf"\} [1-9]',
            "the duration histogram")
    t.match(out, r'^apiserver_storage_objects\{resource="namespaces"\} [1-9][0-9]*$', "stored objects per resource")
    t.match(out, r"^# TYPE apiserver_request_total counter$", "TYPE lines")
    t.match(out, r"^process_resident_memory_bytes [1-9]", "process metrics")
    admin = t.kubeconfig
    for user, group, allowed in (("prom", "system:monitoring", True), ("nobody", "devs", False)):
        p = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
                            t.server.creds["server"], "--user", user, "--group", group],
                           capture_output=True, text=True, timeout=30)
        t.eq(p.returncode, 0, f"rkube kubeconfig --user {user} ({p.stderr[-300:]})")
        kc = t.server.workdir / f"{user}.kubeconfig"
        kc.write_text(p.stdout)
        t.kubeconfig = kc
        try:
            r = t.run("get", "--raw", "/metrics")
        finally:
            t.kubeconfig = admin
        if allowed:
            t.true(r.rc == 0 and "apiserver_request_total" in r.out, "system:monitoring reads /metrics", r.err)
        else:
            t.true(r.rc != 0 and "Forbidden" in r.err, "others may not", r.err)


@scenario
def explain(t: T) -> None:
    """kubectl explain reads the server's OpenAPI v3 schema."""
    out = t.ok("explain", "configmap.data")
    t.match(out, r"^KIND:\s+ConfigMap$", "explain KIND")
    t.match(out, r"^VERSION:\s+v1$", "explain VERSION")
    t.match(out, r"^FIELD: data <map\[string\]string>$", "explain FIELD")
    out = t.ok("explain", "deployment.spec.replicas")
    t.match(out, r"^GROUP:\s+apps$", "explain GROUP")
    t.match(out, r"^FIELD: replicas <integer>$", "explain deployment.spec.replicas")


@scenario
def explain_description(t: T) -> None:
    """kubectl explain deploy.spec.replicas prints the field's description."""
    out = t.ok("explain", "deploy.spec.replicas")
    t.match(out, r"^FIELD: replicas <integer>$", "FIELD line")
    t.match(out, r"^DESCRIPTION:$", "DESCRIPTION header")
    t.contains(out, "Number of desired pods", "description text")
