"""Built-in kinds one by one: create/get/describe/label/annotate/replace/delete (the `crud` walk), the
defaults and status the server fills in, imperative `kubectl create <kind>` (protobuf bodies), pod binding,
events, and the pod subresources no kubelet serves yet.
"""

from __future__ import annotations

import base64
import json
import re

from harness import DEPLOYMENT, JOB, LABELS, NODE, POD, ROOT_CA, SERVICE, T, crud, jget, poll, scenario


@scenario
def pod_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a pod (no scheduler: Pending, 0/1)."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["activeDeadlineSeconds"] = 600

    def check(o):
        t.eq(jget(o, "spec.activeDeadlineSeconds"), 600, "replace stored spec.activeDeadlineSeconds")
        t.eq(jget(o, "status.phase"), "Pending", "status.phase")

    crud(t, resource="pod", prefix="pod", plural="pods", kind="Pod", api_version="v1", name="web", ns=ns,
         manifest=POD.format(name="web", labels=LABELS),
         headers=["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
         row={"READY": "0/1", "STATUS": "Pending", "RESTARTS": "0"},
         wide_headers=["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                       "READINESS GATES"],
         wide_row={"IP": "<none>", "NODE": "<none>", "NOMINATED NODE": "<none>", "READINESS GATES": "<none>"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Status:\s+Pending$", r"^\s+Image:\s+registry\.k8s\.io/pause:3\.10$", r"^Events:(\s+<none>)?$"])


@scenario
def service_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a ClusterIP service."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["ports"].append({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443})

    def check(o):
        t.eq([p["port"] for p in jget(o, "spec.ports", [])], [80, 443], "replace stored the new port")

    crud(t, resource="service", prefix="service", plural="services", kind="Service", api_version="v1", name="web",
         ns=ns, manifest=SERVICE.format(name="web", labels=LABELS),
         headers=["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
         row={"TYPE": "ClusterIP", "EXTERNAL-IP": "<none>", "PORT(S)": "80/TCP"},
         wide_headers=["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
         wide_row={"SELECTOR": "app=web"}, mutate=mutate, check_mutated=check,
         describe=[r"^Type:\s+ClusterIP$", r"^Selector:\s+app=web$", r"^Port:\s+http\s+80/TCP$",
                   r"^TargetPort:\s+8080/TCP$"])


@scenario
def service_cluster_ip(t: T) -> None:
    """A ClusterIP service gets spec.clusterIP/clusterIPs allocated; protocol and type defaulted."""
    ns = t.namespace()
    bare = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n"
            "  ports:\n  - port: 80\n")
    t.create(bare.format(name="alloc"), ns)
    o = t.json("get", "svc", "alloc", "-n", ns)
    ip = jget(o, "spec.clusterIP", "")
    t.true(bool(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip)), "spec.clusterIP is an IPv4 address", ip)
    t.eq(jget(o, "spec.clusterIPs"), [ip], "spec.clusterIPs")
    t.eq(jget(o, "spec.type"), "ClusterIP", "spec.type defaulted")
    t.eq(jget(o, "spec.ports.0.protocol"), "TCP", "spec.ports[0].protocol defaulted")
    t.eq(jget(o, "spec.ports.0.targetPort"), 80, "spec.ports[0].targetPort defaulted to port")
    t.eq(jget(o, "spec.sessionAffinity"), "None", "spec.sessionAffinity defaulted")
    t.create(bare.format(name="alloc2"), ns)
    ip2 = t.ok("get", "svc", "alloc2", "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
    t.true(ip2 != ip and ip2 != "", "two services get different cluster IPs", (ip, ip2))
    out = t.ok("get", "svc", "alloc", "-n", ns)
    t.eq(t.row(t.table(out), "alloc", "get svc").get("CLUSTER-IP"), ip, "CLUSTER-IP column")


@scenario
def configmap_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a configmap."""
    ns = t.namespace()

    def mutate(o):
        o["data"]["c"] = "3"

    def check(o):
        t.eq(o.get("data"), {"a": "1", "b": "two words", "c": "3"}, "replace stored data")

    crud(t, resource="configmap", prefix="configmap", plural="configmaps", kind="ConfigMap", api_version="v1",
         name="settings", ns=ns,
         manifest=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n{LABELS}data:\n  a: \"1\"\n"
                  f"  b: two words\n",
         headers=["NAME", "DATA", "AGE"], row={"DATA": "2"}, wide_headers=["NAME", "DATA", "AGE"],
         mutate=mutate, check_mutated=check, describe=[r"^a:\n----\n1$", r"^b:\n----\ntwo words$"])


@scenario
def secret_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a secret."""
    ns = t.namespace()

    def mutate(o):
        o["data"]["token"] = base64.b64encode(b"s3cret").decode()

    def check(o):
        t.eq(o.get("data"), {"password": base64.b64encode(b"hunter2").decode(),
                             "token": base64.b64encode(b"s3cret").decode()}, "replace stored data")
        t.eq(o.get("type"), "Opaque", "type")
        t.true("stringData" not in o, "stringData is not stored", o)

    crud(t, resource="secret", prefix="secret", plural="secrets", kind="Secret", api_version="v1", name="creds",
         ns=ns,
         manifest=f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n{LABELS}type: Opaque\ndata:\n"
                  f"  password: {base64.b64encode(b'hunter2').decode()}\n",
         headers=["NAME", "TYPE", "DATA", "AGE"], row={"TYPE": "Opaque", "DATA": "1"},
         mutate=mutate, check_mutated=check, describe=[r"^Type:\s+Opaque$", r"^password:\s+7 bytes$"])


@scenario
def secret_string_data(t: T) -> None:
    """stringData is merged into base64 data on create and replace and never stored; type defaults to Opaque."""
    ns = t.namespace()
    t.create("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  user: admin\n  pass: hunter2\n", ns)
    o = t.json("get", "secret", "s", "-n", ns)
    t.eq(o.get("data"), {"pass": base64.b64encode(b"hunter2").decode(), "user": base64.b64encode(b"admin").decode()},
         "data from stringData")
    t.true("stringData" not in o, "stringData is not stored", o)
    t.eq(o.get("type"), "Opaque", "type defaulted")
    out = t.ok("get", "secret", "s", "-n", ns)
    t.eq(t.row(t.table(out), "s", "get secret").get("DATA"), "2", "DATA column")
    o["stringData"] = {"pass": "changed"}
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    t.eq(t.ok("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.pass}"), base64.b64encode(b"changed").decode(),
         "stringData wins over data on replace")


@scenario
def secret_base64_split_over_lines(t: T) -> None:
    """A Secret's base64 `data` split over lines (the Kubernetes docs' TLS Secret example) is accepted as Go's
    decoder accepts it (line breaks skipped); other invalid base64 is still refused with the decoder's error."""
    ns = t.namespace()
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    b64 = base64.b64encode(pem.encode()).decode()
    split = "\n".join(b64[i:i + 20] for i in range(0, len(b64), 20))
    t.ok("create", "-f", "-", "-n", ns, stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
         "data": {"tls.crt": split, "tls.key": "a2V5\r\n"}}))
    o = t.json("get", "secret", "tls", "-n", ns)
    t.eq(o["data"], {"tls.crt": b64, "tls.key": "a2V5"}, "the data is stored joined")
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"a": "not base64!"}}))
    t.contains(err, 'Secret in version "v1" cannot be handled as a Secret', "invalid base64 is refused")


@scenario
def component_statuses(t: T) -> None:
    """`kubectl get componentstatuses` lists scheduler, controller-manager and etcd-0 with a Healthy condition
    from a real check (the leader Leases held and fresh, the store answering), with upstream's deprecation
    warning; an unknown name is a 404; the raw list has upstream's shape."""
    rows = lambda: t.table(t.ok("get", "componentstatuses"))
    healthy = lambda: [(r["NAME"], r["STATUS"]) for r in rows()]
    want = [("scheduler", "Healthy"), ("controller-manager", "Healthy"), ("etcd-0", "Healthy")]
    t.true(poll(lambda: healthy() == want, 30), "all three healthy", healthy())
    r = t.run("get", "cs")
    t.contains(r.err, "Warning: v1 ComponentStatus is deprecated in v1.19+", "the deprecation warning")
    t.eq(t.row(t.table(r.out), "etcd-0", "etcd-0").get("MESSAGE"), '{"health":"true","reason":""}',
         "etcd-0's message as upstream")
    raw = json.loads(t.ok("get", "--raw", "/api/v1/componentstatuses"))
    t.eq((raw["kind"], raw["metadata"]), ("ComponentStatusList", {}), "the list's kind and empty metadata")
    t.eq(raw["items"][0]["conditions"], [{"type": "Healthy", "status": "True", "message": "ok"}],
         "the scheduler's condition")
    t.eq(t.json("get", "cs", "controller-manager")["metadata"]["name"], "controller-manager", "get one")
    t.contains(t.fails("get", "cs", "nope"), 'componentstatus "nope" not found', "an unknown component")


@scenario
def deployment_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a deployment (paused: the controller rolls nothing
    out, so the table shows 0/2 and 0 up to date)."""
    ns = t.namespace()
    manifest = DEPLOYMENT.format(name="web", labels=LABELS).replace("spec:\n  replicas: 2", "spec:\n  paused: true\n  replicas: 2")
    t.true("paused: true" in manifest, "the manifest is paused", manifest)

    def mutate(o):
        o["spec"]["replicas"] = 3

    def check(o):
        t.eq(jget(o, "spec.replicas"), 3, "replace stored spec.replicas")
        t.eq(jget(o, "metadata.generation"), 2, "metadata.generation incremented by the spec change")

    crud(t, resource="deployment", prefix="deployment.apps", plural="deployments.apps", kind="Deployment",
         api_version="apps/v1", name="web", ns=ns, manifest=manifest,
         headers=["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
         row={"READY": "0/2", "UP-TO-DATE": "0", "AVAILABLE": "0"},
         wide_headers=["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
         wide_row={"CONTAINERS": "web", "IMAGES": "registry.k8s.io/pause:3.10", "SELECTOR": "app=web"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Selector:\s+app=web$", r"^Replicas:\s+2 desired \| 0 updated \| 0 total \| 0 available \| "
                   r"\d+ unavailable$"])


@scenario
def deployment_defaults(t: T) -> None:
    """A deployment gets upstream's defaults (strategy, revisionHistoryLimit, progressDeadlineSeconds, pod spec)."""
    ns = t.namespace()
    t.create(DEPLOYMENT.format(name="defaults", labels=""), ns)
    o = t.json("get", "deploy", "defaults", "-n", ns)
    t.eq(jget(o, "spec.strategy"), {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "spec.strategy")
    t.eq(jget(o, "spec.revisionHistoryLimit"), 10, "spec.revisionHistoryLimit")
    t.eq(jget(o, "spec.progressDeadlineSeconds"), 600, "spec.progressDeadlineSeconds")
    t.eq(jget(o, "metadata.generation"), 1, "metadata.generation")
    ps = jget(o, "spec.template.spec", {})
    t.eq((ps.get("restartPolicy"), ps.get("dnsPolicy"), ps.get("schedulerName"),
          ps.get("terminationGracePeriodSeconds")), ("Always", "ClusterFirst", "default-scheduler", 30),
         "pod template spec defaults")
    out = t.ok("describe", "deploy", "defaults", "-n", ns)
    t.match(out, r"^StrategyType:\s+RollingUpdate$", "describe: StrategyType")
    t.match(out, r"^RollingUpdateStrategy:\s+25% max unavailable, 25% max surge$", "describe: RollingUpdateStrategy")


@scenario
def pod_defaults(t: T) -> None:
    """A pod gets upstream's defaults and status (phase Pending, qosClass BestEffort)."""
    ns = t.namespace()
    t.create(POD.format(name="defaults", labels=""), ns)
    o = t.json("get", "pod", "defaults", "-n", ns)
    s = o.get("spec", {})
    t.eq((s.get("restartPolicy"), s.get("dnsPolicy"), s.get("schedulerName"), s.get("terminationGracePeriodSeconds"),
          s.get("enableServiceLinks"), s.get("preemptionPolicy"), s.get("priority")),
         ("Always", "ClusterFirst", "default-scheduler", 30, True, "PreemptLowerPriority", 0), "pod spec defaults")
    c = jget(o, "spec.containers.0", {})
    t.eq((c.get("imagePullPolicy"), c.get("terminationMessagePath"), c.get("terminationMessagePolicy"),
          jget(c, "ports.0.protocol")), ("IfNotPresent", "/dev/termination-log", "File", "TCP"), "container defaults")
    t.eq(jget(o, "status.phase"), "Pending", "status.phase")
    t.eq(jget(o, "status.qosClass"), "BestEffort", "status.qosClass")


@scenario
def job_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a job (no controller: Running, 0/1)."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["activeDeadlineSeconds"] = 300

    def check(o):
        t.eq(jget(o, "spec.activeDeadlineSeconds"), 300, "replace stored spec.activeDeadlineSeconds")

    crud(t, resource="job", prefix="job.batch", plural="jobs.batch", kind="Job", api_version="batch/v1",
         name="hello", ns=ns, manifest=JOB.format(name="hello", labels=LABELS),
         headers=["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
         row={"STATUS": "Running", "COMPLETIONS": "0/1"},
         wide_headers=["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
         wide_row={"CONTAINERS": "hello", "IMAGES": "busybox:1.36"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Pods Statuses:\s+\d+ Active .*0 Succeeded / 0 Failed$"])


@scenario
def job_defaults(t: T) -> None:
    """A job without a selector gets upstream's generated controller-uid selector, pod labels and defaults."""
    ns = t.namespace()
    t.create(JOB.format(name="gen", labels=""), ns)
    o = t.json("get", "job", "gen", "-n", ns)
    uid = o["metadata"]["uid"]
    t.eq(jget(o, "spec.selector"), {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}, "spec.selector")
    labels = jget(o, "spec.template.metadata.labels", {})
    t.eq((labels.get("batch.kubernetes.io/controller-uid"), labels.get("batch.kubernetes.io/job-name"),
          labels.get("controller-uid"), labels.get("job-name")), (uid, "gen", uid, "gen"), "template labels")
    t.eq((jget(o, "spec.parallelism"), jget(o, "spec.completions"), jget(o, "spec.backoffLimit"),
          jget(o, "spec.completionMode"), jget(o, "spec.suspend")), (1, 1, 6, "NonIndexed", False), "job defaults")
    out = t.ok("describe", "job", "gen", "-n", ns)
    t.match(out, r"^Parallelism:\s+1$", "describe: Parallelism")
    t.match(out, r"^Completions:\s+1$", "describe: Completions")
    t.match(out, rf"^Selector:\s+batch.kubernetes.io/controller-uid={uid}$", "describe: Selector")


@scenario
def node_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a node (a plain object: no kubelet)."""

    def mutate(o):
        o["spec"]["unschedulable"] = True

    def check(o):
        t.eq(jget(o, "spec.unschedulable"), True, "replace stored spec.unschedulable")
        out = t.ok("get", "node", "worker-1")
        t.eq(t.row(t.table(out), "worker-1", "get node").get("STATUS"), "Ready,SchedulingDisabled",
             "STATUS of an unschedulable node")

    crud(t, resource="node", prefix="node", plural="nodes", kind="Node", api_version="v1", name="worker-1", ns=None,
         manifest=NODE.format(name="worker-1"),
         headers=["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
         row={"STATUS": "Ready", "ROLES": "worker", "VERSION": "v1.33.0"},
         wide_headers=["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                       "KERNEL-VERSION", "CONTAINER-RUNTIME"],
         wide_row={"INTERNAL-IP": "192.0.2.10", "EXTERNAL-IP": "<none>", "OS-IMAGE": "Debian GNU/Linux 12 (bookworm)",
                   "KERNEL-VERSION": "6.1.0", "CONTAINER-RUNTIME": "containerd://1.7.0"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Roles:\s+worker$", r"^PodCIDR:\s+10\.244\.1\.0/24$", r"^\s+InternalIP:\s+192\.0\.2\.10$"])


@scenario
def imperative_create(t: T) -> None:
    """kubectl create namespace/configmap/secret/deployment/job (typed clients: protobuf request bodies)."""
    ns = "imperative-create"
    t.eq(t.ok("create", "namespace", ns).strip(), f"namespace/{ns} created", "create namespace")
    t.eq(t.ok("create", "configmap", "c", "-n", ns, "--from-literal=a=1", "--from-literal=b=2").strip(),
         "configmap/c created", "create configmap --from-literal")
    t.eq(t.json("get", "cm", "c", "-n", ns).get("data"), {"a": "1", "b": "2"}, "configmap data")
    t.eq(t.ok("create", "secret", "generic", "s", "-n", ns, "--from-literal=password=hunter2").strip(),
         "secret/s created", "create secret generic")
    t.eq(t.ok("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.password}"),
         base64.b64encode(b"hunter2").decode(), "secret data")
    t.eq(t.ok("create", "deployment", "d", "-n", ns, "--image=registry.k8s.io/pause:3.10", "--replicas=2").strip(),
         "deployment.apps/d created", "create deployment")
    d = t.json("get", "deploy", "d", "-n", ns)
    t.eq((jget(d, "spec.replicas"), jget(d, "spec.selector.matchLabels"), jget(d, "spec.template.spec.containers.0.image")),
         (2, {"app": "d"}, "registry.k8s.io/pause:3.10"), "deployment spec")
    t.eq(t.ok("create", "job", "j", "-n", ns, "--image=busybox:1.36", "--", "echo", "hi").strip(), "job.batch/j created",
         "create job")
    t.eq(jget(t.json("get", "job", "j", "-n", ns), "spec.template.spec.containers.0.command"), ["echo", "hi"],
         "job command")
    out = t.ok("get", "cm,secret,deploy,job", "-n", ns, "-o", "name")
    t.eq(sorted(out.split()), ["configmap/c", f"configmap/{ROOT_CA}", "deployment.apps/d", "job.batch/j", "secret/s"],
         "get of several kinds")
    t.eq(t.ok("delete", "namespace", ns, timeout=120).strip(), f'namespace "{ns}" deleted', "delete namespace")


MORE_KINDS = [
    # (resource, kubectl prefix, headers, manifest)
    ("serviceaccounts", "serviceaccount", ["NAME", "SECRETS", "AGE"],
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}),
    ("roles", "role.rbac.authorization.k8s.io", ["NAME", "CREATED AT"],
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"},
      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    ("leases", "lease.coordination.k8s.io", ["NAME", "HOLDER", "AGE"],
     {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
      "spec": {"holderIdentity": "me", "leaseDurationSeconds": 40}}),
    ("statefulsets", "statefulset.apps", ["NAME", "READY", "AGE"],
     {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
      "spec": {"serviceName": "x", "selector": {"matchLabels": {"app": "x"}},
               "template": {"metadata": {"labels": {"app": "x"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}),
    ("daemonsets", "daemonset.apps",
     ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
     {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
      "spec": {"selector": {"matchLabels": {"app": "x"}},
               "template": {"metadata": {"labels": {"app": "x"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}),
    ("cronjobs", "cronjob.batch", ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
     {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
      "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
          "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}}),
    ("ingresses", "ingress.networking.k8s.io", ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
     {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
      "spec": {"rules": [{"host": "x.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
               "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}]}}),
]


@scenario
def more_builtin_kinds(t: T) -> None:
    """serviceaccounts, roles, leases, statefulsets, daemonsets, cronjobs, ingresses: create -f, get, delete."""
    ns = t.namespace()
    for resource, prefix, headers, manifest in MORE_KINDS:
        t.eq(t.create(manifest, ns), f"{prefix}/x created", f"create {resource}")
        out = t.ok("get", resource, "x", "-n", ns)
        t.headers(out, headers, f"get {resource}")
        listed = t.ok("get", resource, "-n", ns, "-o", "name").split()
        expected = [f"{prefix}/x"] + (["serviceaccount/default"] if resource == "serviceaccounts" else [])
        t.eq(sorted(listed), sorted(expected), f"get {resource} -o name")
        t.eq(t.ok("delete", resource, "x", "-n", ns).strip(), f'{prefix} "x" deleted', f"delete {resource}")


@scenario
def pod_binding(t: T) -> None:
    """POST pods/{name}/binding (what a scheduler does) sets spec.nodeName and the PodScheduled condition."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/pods/p/binding", body=json.dumps(binding).encode(),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 201, f"HTTP status of the binding (body {body})")
    st = json.loads(body)
    t.eq((st.get("kind"), st.get("status"), st.get("code")), ("Status", "Success", 201), "binding answer")
    o = t.json("get", "pod", "p", "-n", ns)
    t.eq(jget(o, "spec.nodeName"), "node-a", "spec.nodeName after binding")
    conds = {c.get("type"): c.get("status") for c in jget(o, "status.conditions", [])}
    t.eq(conds.get("PodScheduled"), "True", "PodScheduled condition")
    out = t.ok("get", "pod", "p", "-n", ns, "-o", "wide")
    t.eq(t.row(t.table(out), "p", "get pod -o wide").get("NODE"), "node-a", "NODE column")
    t.eq(sorted(n.split("/", 1)[1] for n in t.names(t.ok("get", "pods", "-n", ns, "--field-selector",
                                                          "spec.nodeName=node-a", "-o", "name"))), ["p"],
         "field selector spec.nodeName=node-a")
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/pods/p/binding", body=json.dumps(binding).encode(),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 409, "binding an already bound pod is a 409")
    t.status_error(body, 409, "Conflict", "second binding")


@scenario
def events(t: T) -> None:
    """core/v1 events can be created and listed (kubectl get events columns, describe shows them)."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    uid = t.ok("get", "pod", "p", "-n", ns, "-o", "jsonpath={.metadata.uid}")
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
          "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns, "uid": uid},
          "reason": "Testing", "message": "hello from the conformance suite", "type": "Normal", "count": 1,
          "source": {"component": "conformance"},
          "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z"}
    t.eq(t.create(ev, ns), "event/p.1 created", "create event")
    out = t.ok("get", "events", "-n", ns)
    t.headers(out, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "get events")
    r = t.table(out)[0]
    t.eq((r["TYPE"], r["REASON"], r["OBJECT"], r["MESSAGE"]),
         ("Normal", "Testing", "pod/p", "hello from the conformance suite"), "event row")
    out = t.ok("describe", "pod", "p", "-n", ns)
    t.match(out, r"^\s+Normal\s+Testing\s+\S+\s+conformance\s+hello from the conformance suite$",
            "describe pod lists the event")


@scenario
def events_one_object_two_versions(t: T) -> None:
    """an Event written as events.k8s.io/v1 is the same object as core/v1 (renamed fields), and back."""
    ns = t.namespace()
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
          "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Testing", "type": "Warning", "action": "Check",
          "note": "written through events.k8s.io", "reportingController": "conformance/suite",
          "reportingInstance": "suite-1", "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns}}
    t.eq(t.create(ev, ns), "event.events.k8s.io/e1 created", "create events.k8s.io/v1 Event")
    core = t.json("get", "events.v1.", "e1", "-n", ns)
    t.eq((core.get("apiVersion"), core.get("message"), jget(core, "involvedObject.name"), core.get("reportingComponent")),
         ("v1", "written through events.k8s.io", "p", "conformance/suite"), "read as core/v1")
    # kubectl's describe lists it (it reads core/v1 with an involvedObject field selector).
    rows = t.ok("get", "events", "-n", ns, "--field-selector", "involvedObject.name=p,reason=Testing", "-o", "name")
    t.eq(rows.split(), ["event/e1"], "core/v1 field selector finds it")
    # A change through core/v1 shows through events.k8s.io/v1.
    t.ok("patch", "events.v1.", "e1", "-n", ns, "--type=merge", "-p", '{"message": "changed through core"}')
    t.eq(t.ok("get", "events.v1.events.k8s.io", "e1", "-n", ns, "-o", "jsonpath={.note}"), "changed through core",
         "read back as events.k8s.io/v1")
    t.ok("delete", "events.v1.events.k8s.io", "e1", "-n", ns)
    t.fails("get", "events.v1.", "e1", "-n", ns)


@scenario
def imperative_create_all_kinds(t: T) -> None:
    """kubectl create <kind> for 16 kinds (protobuf bodies), fields read back as JSON."""
    ns = "imperative-all"
    t.eq(t.ok("create", "namespace", ns).strip(), f"namespace/{ns} created", "create namespace")
    n = ["-n", ns]
    cases = [
        (["configmap", "cm1", "--from-literal=k=v"], "configmap/cm1 created"),
        (["secret", "generic", "s1", "--from-literal=password=s3cr3t"], "secret/s1 created"),
        (["deployment", "d1", "--image=nginx:1.27"], "deployment.apps/d1 created"),
        (["job", "j1", "--image=busybox:1.36"], "job.batch/j1 created"),
        (["cronjob", "cj1", "--image=busybox:1.36", "--schedule=*/5 * * * *"], "cronjob.batch/cj1 created"),
        (["service", "clusterip", "svc1", "--tcp=80:8080"], "service/svc1 created"),
        (["serviceaccount", "sa1"], "serviceaccount/sa1 created"),
        (["role", "r1", "--verb=get,list", "--resource=pods"], "role.rbac.authorization.k8s.io/r1 created"),
        (["rolebinding", "rb1", "--role=r1", "--serviceaccount=" + ns + ":sa1"],
         "rolebinding.rbac.authorization.k8s.io/rb1 created"),
        (["quota", "q1", "--hard=cpu=1500m,pods=10"], "resourcequota/q1 created"),
        (["poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=50%"],
         "poddisruptionbudget.policy/pdb1 created"),
        (["ingress", "ing1", "--rule=foo.example.com/bar=svc1:80"], "ingress.networking.k8s.io/ing1 created"),
    ]
    for args, expected in cases:
        t.eq(t.ok("create", *args, *n).strip(), expected, f"create {args[0]}")
    for args, expected in [
        (["clusterrole", "imperative-all-cr", "--verb=get", "--resource=nodes"],
         "clusterrole.rbac.authorization.k8s.io/imperative-all-cr created"),
        (["clusterrolebinding", "imperative-all-crb", "--clusterrole=imperative-all-cr", "--user=alice"],
         "clusterrolebinding.rbac.authorization.k8s.io/imperative-all-crb created"),
        (["priorityclass", "imperative-all-pc", "--value=1000", "--description=conformance"],
         "priorityclass.scheduling.k8s.io/imperative-all-pc created"),
    ]:
        t.eq(t.ok("create", *args).strip(), expected, f"create {args[0]}")
    t.eq(t.json("get", "cm", "cm1", *n).get("data"), {"k": "v"}, "configmap data")
    t.eq(jget(t.json("get", "secret", "s1", *n), "data.password"), base64.b64encode(b"s3cr3t").decode(),
         "secret data is base64 of the literal")
    t.eq(jget(t.json("get", "deploy", "d1", *n), "spec.template.spec.containers.0.image"), "nginx:1.27",
         "deployment image")
    t.eq(jget(t.json("get", "job", "j1", *n), "spec.template.spec.containers.0.image"), "busybox:1.36", "job image")
    t.eq(jget(t.json("get", "cronjob", "cj1", *n), "spec.schedule"), "*/5 * * * *", "cronjob schedule")
    svc = t.json("get", "svc", "svc1", *n)
    t.eq((jget(svc, "spec.ports.0.port"), jget(svc, "spec.ports.0.targetPort"), jget(svc, "spec.type")),
         (80, 8080, "ClusterIP"), "service port/targetPort/type from --tcp=80:8080")
    t.eq(jget(t.json("get", "sa", "sa1", *n), "metadata.name"), "sa1", "serviceaccount stored")
    t.eq(jget(t.json("get", "role", "r1", *n), "rules"),
         [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], "role rules")
    rb = t.json("get", "rolebinding", "rb1", *n)
    t.eq((jget(rb, "roleRef.kind"), jget(rb, "roleRef.name"), jget(rb, "subjects.0.kind"), jget(rb, "subjects.0.name")),
         ("Role", "r1", "ServiceAccount", "sa1"), "rolebinding roleRef/subjects")
    t.eq(jget(t.json("get", "clusterrole", "imperative-all-cr"), "rules.0.resources"), ["nodes"], "clusterrole rules")
    t.eq(jget(t.json("get", "clusterrolebinding", "imperative-all-crb"), "subjects.0.name"), "alice",
         "clusterrolebinding subject")
    q = t.json("get", "quota", "q1", *n)
    t.eq(jget(q, "spec.hard"), {"cpu": "1500m", "pods": "10"}, "quota spec.hard")
    t.match(t.ok("get", "quota", "q1", *n, "-o", "yaml"), r"^\s+cpu: 1500m$", "quota yaml cpu: 1500m")
    pc = t.json("get", "priorityclass", "imperative-all-pc")
    t.eq((pc.get("value"), pc.get("description")), (1000, "conformance"), "priorityclass value/description")
    t.eq(jget(t.json("get", "pdb", "pdb1", *n), "spec.minAvailable"), "50%", "pdb minAvailable")
    ing = t.json("get", "ingress", "ing1", *n)
    t.eq((jget(ing, "spec.rules.0.host"), jget(ing, "spec.rules.0.http.paths.0.path"),
          jget(ing, "spec.rules.0.http.paths.0.backend.service.name")), ("foo.example.com", "/bar", "svc1"),
         "ingress rule")
    for args in (["clusterrolebinding", "imperative-all-crb"], ["clusterrole", "imperative-all-cr"],
                 ["priorityclass", "imperative-all-pc"]):
        t.ok("delete", *args)
    t.eq(t.ok("delete", "namespace", ns, timeout=120).strip(), f'namespace "{ns}" deleted', "delete namespace")


@scenario
def pod_streams_unscheduled(t: T) -> None:
    """logs/exec/attach of a pod no node runs yet answer as upstream's apiserver does before any kubelet is
    involved: empty logs, `does not have a host assigned`, container-name checks, 404 for a missing pod."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    r = t.run("logs", "p", "-n", ns)
    t.eq((r.rc, r.out, r.err), (0, "", ""), "logs of an unscheduled pod: empty")
    t.eq(t.fails("logs", "p", "-n", ns, "-c", "x"), "error: container x is not valid for pod p", "unknown container")
    t.eq(t.fails("exec", "p", "-n", ns, "--", "ls"),
         "Error from server (BadRequest): pod p does not have a host assigned", "exec")
    st, body = t.https("GET", f"/api/v1/namespaces/{ns}/pods/missing/log")
    t.eq((st, json.loads(body).get("message")), (404, 'pods "missing" not found'), "log of a missing pod")


@scenario
def pod_ephemeral_containers(t: T) -> None:
    """`kubectl debug POD --image=...` adds an ephemeral container through pods/ephemeralcontainers (defaulted
    as a pod's containers are); that subresource changes nothing else; once added, an ephemeral container
    can be neither changed nor removed, and ports are refused, with upstream's messages."""
    ns = t.namespace()
    t.ok("run", "target", "--image=busybox", "--restart=Never", "-n", ns)
    t.ok("debug", "target", "-n", ns, "--image=busybox", "-c", "dbg", "--profile=general")
    o = t.json("get", "pod", "target", "-n", ns)
    eph = jget(o, "spec.ephemeralContainers", [])
    t.eq([(c.get("name"), c.get("image"), c.get("terminationMessagePolicy")) for c in eph],
         [("dbg", "busybox", "File")], "the debug container is in the pod, defaulted")
    t.eq(json.loads(t.ok("get", "--raw", f"/api/v1/namespaces/{ns}/pods/target/ephemeralcontainers")).get("kind"),
         "Pod", "GET pods/ephemeralcontainers answers the Pod")
    # Only spec.ephemeralContainers is taken from a write to the subresource.
    t.ok("patch", "pod", "target", "-n", ns, "--subresource=ephemeralcontainers", "--type=merge",
         "-p", '{"metadata":{"labels":{"sneaked":"in"}},"spec":{"activeDeadlineSeconds":5}}')
    o = t.json("get", "pod", "target", "-n", ns)
    t.eq((jget(o, "metadata.labels", {}).get("sneaked"), jget(o, "spec.activeDeadlineSeconds")), (None, None),
         "labels and other spec fields are not written through the subresource")
    err = t.fails("patch", "pod", "target", "-n", ns, "--subresource=ephemeralcontainers", "--type=json",
                  "-p", '[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"nginx"}]')
    t.eq(err, f'The Pod "target" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers '
         f'"dbg" may not be changed', "an existing ephemeral container may not change")
    err = t.fails("patch", "pod", "target", "-n", ns, "--subresource=ephemeralcontainers", "--type=json",
                  "-p", '[{"op":"remove","path":"/spec/ephemeralContainers/0"}]')
    t.contains(err, 'existing ephemeral containers "dbg" may not be removed', "nor be removed")
    err = t.fails("patch", "pod", "target", "-n", ns, "--subresource=ephemeralcontainers", "--type=json", "-p",
                  '[{"op":"add","path":"/spec/ephemeralContainers/-","value":'
                  '{"name":"web","image":"nginx","ports":[{"containerPort":80}]}}]')
    t.eq(err, 'The Pod "target" is invalid: spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an '
         "Ephemeral Container", "ports are refused")
