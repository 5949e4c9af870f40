"""Admission plugins as upstream's kube-apiserver runs them by default: LimitRanger, ServiceAccount, ResourceQuota,
Priority, DefaultTolerationSeconds and PodSecurity, each checked by its effect on the stored object and by upstream's
exact refusal (or warning) text."""

from __future__ import annotations

import json
import re
import threading

from harness import NOT_FOUND, T, https, jget, poll, scenario


def _pod(name: str, resources: dict | None = None, **spec) -> dict:
    c = {"name": "c", "image": "registry.k8s.io/pause:3.10"}
    if resources is not None:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [c], **spec}}


def _create_err(name_res: str, name: str, msg: str) -> str:
    return f'Error from server (Forbidden): error when creating "STDIN": {name_res} "{name}" is forbidden: {msg}'


@scenario
def limit_range_defaults_and_bounds(t: T) -> None:
    """A Container LimitRange defaults requests/limits of a pod that sets none (with upstream's
    kubernetes.io/limit-ranger annotation), fills only what a pod leaves out, and refuses a pod above max or below
    min with upstream's LimitRanger text; nothing refused is stored."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
              "spec": {"limits": [{"type": "Container",
                                   "default": {"cpu": "500m", "memory": "256Mi"},
                                   "defaultRequest": {"cpu": "250m", "memory": "128Mi"},
                                   "max": {"cpu": "1", "memory": "1Gi"},
                                   "min": {"cpu": "100m", "memory": "64Mi"}}]}}, ns)
    t.create(_pod("plain"), ns)
    p = t.json("get", "pod", "plain", "-n", ns)
    t.eq(jget(p, "spec.containers.0.resources"),
         {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "250m", "memory": "128Mi"}},
         "a pod without resources gets the LimitRange's default and defaultRequest")
    t.eq(jget(p, "metadata.annotations", {}).get("kubernetes.io/limit-ranger"),
         "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c",
         "the kubernetes.io/limit-ranger annotation")
    t.eq(jget(p, "status.qosClass"), "Burstable", "the defaulted pod is Burstable")

    # Only what the pod leaves out is filled in: a cpu limit (which API defaulting copies into the cpu
    # request) leaves memory alone for LimitRanger to default.
    t.create(_pod("cpu-only", {"limits": {"cpu": "300m"}}), ns)
    p = t.json("get", "pod", "cpu-only", "-n", ns)
    t.eq(jget(p, "spec.containers.0.resources"),
         {"limits": {"cpu": "300m", "memory": "256Mi"}, "requests": {"cpu": "300m", "memory": "128Mi"}},
         "a pod's own cpu limit/request are kept, memory is defaulted")
    t.eq(jget(p, "metadata.annotations", {}).get("kubernetes.io/limit-ranger"),
         "LimitRanger plugin set: memory request for container c; memory limit for container c",
         "the annotation names only what was set")

    # Above max: the limit is checked before the request (the request is 2 as well, from API defaulting).
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("big", {"limits": {"cpu": "2"}})))
    t.eq(err, _create_err("pods", "big", "maximum cpu usage per Container is 1, but limit is 2"), "above max")
    t.eq(t.fails("get", "pod", "big", "-n", ns), NOT_FOUND.format(res="pods", name="big"), "refused pod not stored")
    # Below min.
    err = t.fails("create", "-f", "-", "-n", ns,
                  stdin=json.dumps(_pod("small", {"requests": {"cpu": "50m"}, "limits": {"cpu": "50m"}})))
    t.eq(err, _create_err("pods", "small", "minimum cpu usage per Container is 100m, but request is 50m"),
         "below min")
    t.eq(t.fails("get", "pod", "small", "-n", ns), NOT_FOUND.format(res="pods", name="small"),
         "refused pod not stored")
    names = t.names(t.ok("get", "pods", "-n", ns, "-o", "name"))
    t.eq(names, {"pod/plain", "pod/cpu-only"}, "only the admitted pods exist")
    t.ok("delete", "namespace", ns, "--wait=false")


def _quota_used(t: T, ns: str, name: str) -> dict:
    return (t.json("get", "quota", name, "-n", ns).get("status") or {}).get("used") or {}


@scenario
def resource_quota_denies_and_counts(t: T) -> None:
    """ResourceQuota admission: object counts (configmaps, with kube-root-ca.crt counted) refuse the first object
    over the limit with upstream's `exceeded quota` text; a burst of concurrent creates admits exactly the
    remaining room; a compute quota refuses a pod without a cpu request (`must specify requests.cpu`) and one
    over the limit; status.used is exact throughout."""
    ns = t.namespace()
    existing = len(t.names(t.ok("get", "configmaps", "-n", ns, "-o", "name")))
    t.true(existing >= 1, "the namespace holds kube-root-ca.crt, which quota counts", existing)
    hard = existing + 2
    t.ok("create", "quota", "q", "-n", ns, f"--hard=configmaps={hard}")
    t.true(poll(lambda: _quota_used(t, ns, "q") == {"configmaps": str(existing)}, 30),
           "status.used counts the existing configmaps", _quota_used(t, ns, "q"))
    t.ok("create", "configmap", "c1", "-n", ns)
    t.ok("create", "configmap", "c2", "-n", ns)
    err = t.fails("create", "configmap", "c3", "-n", ns)
    t.eq(err, f'error: failed to create configmap: configmaps "c3" is forbidden: exceeded quota: q, requested: '
              f'configmaps=1, used: configmaps={hard}, limited: configmaps={hard}', "the configmap over the quota")
    err = t.fails("create", "-f", "-", "-n", ns,
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c4"}}))
    t.eq(err, _create_err("configmaps", "c4", f"exceeded quota: q, requested: configmaps=1, used: configmaps={hard}, "
                                              f"limited: configmaps={hard}"), "create -f over the quota")
    t.eq(len(t.names(t.ok("get", "configmaps", "-n", ns, "-o", "name"))), hard, "nothing refused was stored")
    t.true(poll(lambda: _quota_used(t, ns, "q") == {"configmaps": str(hard)}, 30), "status.used is exact",
           _quota_used(t, ns, "q"))
    out = t.ok("describe", "quota", "q", "-n", ns)
    t.match(out, rf"^configmaps\s+{hard}\s+{hard}$", "describe shows Used = Hard")
    # Deleting one makes room again (once the controller has recounted).
    t.ok("delete", "configmap", "c1", "-n", ns)
    t.true(poll(lambda: _quota_used(t, ns, "q") == {"configmaps": str(hard - 1)}, 30),
           "status.used follows the deletion", _quota_used(t, ns, "q"))
    t.ok("create", "configmap", "c5", "-n", ns)

    # A burst of concurrent creates: exactly the remaining room is admitted, the rest is 403 exceeded quota.
    existing_secrets = len(t.names(t.ok("get", "secrets", "-n", ns, "-o", "name")))
    room, burst = 5, 12
    limit = existing_secrets + room
    t.ok("create", "quota", "burst", "-n", ns, f"--hard=count/secrets={limit}")
    t.true(poll(lambda: _quota_used(t, ns, "burst") == {"count/secrets": str(existing_secrets)}, 30),
           "status.used of the secrets quota is populated", _quota_used(t, ns, "burst"))
    results: list[tuple[int, str] | None] = [None] * burst
    gate = threading.Barrier(burst)

    def post(i: int) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}"},
                           "stringData": {"k": "v"}}).encode()
        gate.wait(timeout=30)
        try:
            results[i] = https(t.server.creds, "POST", f"/api/v1/namespaces/{ns}/secrets", body=body,
                               headers={"Content-Type": "application/json"}, timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = (0, repr(e))
    threads = [threading.Thread(target=post, args=(i,)) for i in range(burst)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=90)
    t.last_cmd = f"{burst} concurrent HTTPS POST /api/v1/namespaces/{ns}/secrets"
    codes = [r[0] if r else None for r in results]
    t.eq(sorted(codes), sorted([201] * room + [403] * (burst - room)),
         f"{room} of {burst} concurrent creates are admitted, the rest refused")
    for i, r in enumerate(results):
        if r and r[0] == 403:
            st = t.status_error(r[1], 403, "Forbidden", f"refused secret s{i}")
            t.eq(st.get("message"), f'secrets "s{i}" is forbidden: exceeded quota: burst, requested: count/secrets=1, '
                                    f'used: count/secrets={limit}, limited: count/secrets={limit}',
                 "message of a refused concurrent create")
    stored = len(t.names(t.ok("get", "secrets", "-n", ns, "-o", "name")))
    t.eq(stored, limit, "secrets stored = the quota's hard limit")
    t.true(poll(lambda: _quota_used(t, ns, "burst") == {"count/secrets": str(limit)}, 30),
           "status.used equals the number stored", _quota_used(t, ns, "burst"))

    # Compute quota: a pod must name a cpu request, and requests add up.
    t.ok("create", "quota", "compute", "-n", ns, "--hard=requests.cpu=1")
    t.true(poll(lambda: _quota_used(t, ns, "compute") == {"requests.cpu": "0"}, 30),
           "status.used of the compute quota is populated", _quota_used(t, ns, "compute"))
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("nocpu")))
    t.eq(err, _create_err("pods", "nocpu", "failed quota: compute: must specify requests.cpu for: c"),
         "a pod without a cpu request under a requests.cpu quota")
    t.create(_pod("half", {"requests": {"cpu": "500m"}}), ns)
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("more", {"requests": {"cpu": "600m"}})))
    t.eq(err, _create_err("pods", "more", "exceeded quota: compute, requested: requests.cpu=600m, used: "
                                          "requests.cpu=500m, limited: requests.cpu=1"), "a pod over the cpu quota")
    t.eq(t.fails("get", "pod", "more", "-n", ns), NOT_FOUND.format(res="pods", name="more"), "refused pod not stored")
    t.true(poll(lambda: _quota_used(t, ns, "compute") == {"requests.cpu": "500m"}, 30),
           "status.used counts the admitted pod's request", _quota_used(t, ns, "compute"))
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def resource_quota_charges_updates(t: T) -> None:
    """ResourceQuota admission on updates, as upstream's service evaluator: turning a ClusterIP Service of 3
    ports into a NodePort one asks for 3 node ports (the intent, before any is allocated) and is refused over a
    quota of 2 with upstream's text, storing nothing; a 1-port Service may turn NodePort and is counted."""
    ns = t.namespace()
    t.ok("create", "quota", "q", "-n", ns, "--hard=services.nodeports=2")
    t.true(poll(lambda: _quota_used(t, ns, "q") == {"services.nodeports": "0"}, 30),
           "status.used of the node port quota is populated", _quota_used(t, ns, "q"))
    t.ok("create", "service", "clusterip", "three", "--tcp=80:80,81:81,82:82", "-n", ns)
    err = t.fails("patch", "service", "three", "-n", ns, "-p", '{"spec":{"type":"NodePort"}}')
    t.eq(err, 'Error from server (Forbidden): services "three" is forbidden: exceeded quota: q, requested: '
              'services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2',
         "the update over the quota")
    t.eq(t.ok("get", "service", "three", "-n", ns, "-o", "jsonpath={.spec.type}"), "ClusterIP",
         "the refused update stored nothing")
    t.ok("create", "service", "clusterip", "one", "--tcp=80:80", "-n", ns)
    t.ok("patch", "service", "one", "-n", ns, "-p", '{"spec":{"type":"NodePort"}}')
    t.true(poll(lambda: _quota_used(t, ns, "q") == {"services.nodeports": "1"}, 30),
           "the admitted update is counted", _quota_used(t, ns, "q"))
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def priority_class_admission(t: T) -> None:
    """Priority admission: the built-in system-*-critical classes exist with upstream's values; a pod's
    priorityClassName resolves to spec.priority; a missing class, or a spec.priority that disagrees, is refused
    with upstream's text; a globalDefault class names itself on pods without a class, and only one may exist;
    without one a pod gets priority 0 and PreemptLowerPriority."""
    for name, value, desc in (
            ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their "
                                                 "current node."),
            ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, but "
                                                    "can be moved to another node if necessary.")):
        pc = t.json("get", "priorityclass", name)
        t.eq((pc.get("value"), pc.get("description"), pc.get("globalDefault", False), pc.get("preemptionPolicy")),
             (value, desc, False, "PreemptLowerPriority"), f"built-in PriorityClass {name}")
    ns = t.namespace()
    t.create(_pod("crit", priorityClassName="system-cluster-critical"), ns)
    s = t.json("get", "pod", "crit", "-n", ns)["spec"]
    t.eq((s.get("priorityClassName"), s.get("priority"), s.get("preemptionPolicy")),
         ("system-cluster-critical", 2000000000, "PreemptLowerPriority"), "priority resolved from the class")
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("x", priorityClassName="missing")))
    t.eq(err, _create_err("pods", "x", "no PriorityClass with name missing was found"), "a missing class")
    t.eq(t.fails("get", "pod", "x", "-n", ns), NOT_FOUND.format(res="pods", name="x"), "refused pod not stored")
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("y", priority=5)))
    t.eq(err, _create_err("pods", "y", "the integer value of priority (5) must not be provided in pod spec; priority "
                                       "admission controller computed 0 from the given PriorityClass name"),
         "a spec.priority that disagrees with the class")
    t.create(_pod("none"), ns)
    s = t.json("get", "pod", "none", "-n", ns)["spec"]
    t.eq((s.get("priorityClassName"), s.get("priority"), s.get("preemptionPolicy")),
         (None, 0, "PreemptLowerPriority"), "no class and no default: priority 0")

    default, second = f"{ns}-default", f"{ns}-second"
    try:
        t.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": default},
                  "value": 1000, "globalDefault": True, "preemptionPolicy": "Never"})
        err = t.fails("create", "-f", "-", stdin=json.dumps(
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": second},
             "value": 2000, "globalDefault": True}))
        t.eq(err, _create_err("priorityclasses.scheduling.k8s.io", second,
                              f"PriorityClass {default} is already marked as default. Only one default can exist"),
             "a second global default")
        t.create(_pod("defaulted"), ns)
        s = t.json("get", "pod", "defaulted", "-n", ns)["spec"]
        t.eq((s.get("priorityClassName"), s.get("priority"), s.get("preemptionPolicy")),
             (default, 1000, "Never"), "a pod without a class gets the global default's name, value and policy")
        t.create(_pod("explicit", priorityClassName="system-node-critical"), ns)
        s = t.json("get", "pod", "explicit", "-n", ns)["spec"]
        t.eq((s.get("priorityClassName"), s.get("priority")), ("system-node-critical", 2000001000),
             "an explicit class wins over the global default")
    finally:
        t.run("delete", "priorityclass", default, second, "--ignore-not-found")
    t.create(_pod("after"), ns)
    t.eq(t.json("get", "pod", "after", "-n", ns)["spec"].get("priority"), 0, "default class deleted: priority 0 again")
    t.ok("delete", "namespace", ns, "--wait=false")


NOT_READY = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 300}


@scenario
def default_toleration_seconds(t: T) -> None:
    """DefaultTolerationSeconds: a new pod gets NoExecute tolerations for node.kubernetes.io/not-ready and
    node.kubernetes.io/unreachable (operator Exists, 300 s), appended after its own; a pod that already tolerates
    one of them (or everything) keeps its own and gets only what is missing."""
    ns = t.namespace()
    t.create(_pod("plain"), ns)
    t.eq(jget(t.json("get", "pod", "plain", "-n", ns), "spec.tolerations"), [NOT_READY, UNREACHABLE],
         "the two default tolerations")
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 60}
    other = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    t.create(_pod("own", tolerations=[other, own]), ns)
    t.eq(jget(t.json("get", "pod", "own", "-n", ns), "spec.tolerations"), [other, own, NOT_READY],
         "a pod's own unreachable toleration is kept; only not-ready is appended")
    t.create(_pod("all", tolerations=[{"operator": "Exists"}]), ns)
    t.eq(jget(t.json("get", "pod", "all", "-n", ns), "spec.tolerations"), [{"operator": "Exists"}],
         "a pod tolerating every taint gets nothing added")
    t.ok("delete", "namespace", ns, "--wait=false")


RESTRICTED_VIOLATIONS = (
    'privileged (container "c" must not set securityContext.privileged=true), '
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


def _warnings(err: str) -> list[str]:
    return [ln[len("Warning: "):] for ln in err.splitlines() if ln.startswith("Warning: ")]


@scenario
def pod_security_restricted(t: T) -> None:
    """PodSecurity admission: enforce=restricted refuses a privileged pod with upstream's full violation list
    (baseline checks first, then restricted, each sorted by check id) and admits a compliant one; a Deployment with
    the same template is admitted with a warning; warn=baseline admits a hostNetwork pod with a `would violate`
    warning; raising enforce warns about existing pods; an invalid level label is refused as Invalid."""
    ns = t.namespace("enforce")
    t.ok("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    bad = _pod("p")
    bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(bad))
    t.eq(err, _create_err("pods", "p", f'violates PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}'),
         "a privileged pod under enforce=restricted")
    t.eq(t.fails("get", "pod", "p", "-n", ns), NOT_FOUND.format(res="pods", name="p"), "refused pod not stored")
    good = _pod("ok", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    good["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False,
                                                       "capabilities": {"drop": ["ALL"]}}
    r = t.run("create", "-f", "-", "-n", ns, stdin=json.dumps(good))
    t.eq((r.rc, r.out.strip(), _warnings(r.err)), (0, "pod/ok created", []), "a compliant pod, without warnings")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}}, "spec": bad["spec"]}}}
    r = t.run("create", "-f", "-", "-n", ns, stdin=json.dumps(dep))
    t.eq((r.rc, r.out.strip()), (0, "deployment.apps/d created"), "a Deployment is not refused")
    t.eq(_warnings(r.err), [f'would violate PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}'],
         "but warned about (warn defaults to the enforce level)")

    ns2 = t.namespace("warn")
    t.ok("label", "namespace", ns2, "pod-security.kubernetes.io/warn=baseline")
    r = t.run("create", "-f", "-", "-n", ns2, stdin=json.dumps(_pod("h", hostNetwork=True)))
    t.eq((r.rc, r.out.strip()), (0, "pod/h created"), "warn=baseline admits a hostNetwork pod")
    t.eq(_warnings(r.err), ['would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'],
         "the baseline warning")
    r = t.run("label", "namespace", ns2, "pod-security.kubernetes.io/enforce=restricted")
    t.eq((r.rc, r.out.strip()), (0, f"namespace/{ns2} labeled"), "raising enforce is allowed")
    t.eq(_warnings(r.err), [
        f'existing pods in namespace "{ns2}" violate the new PodSecurity enforce level "restricted:latest"',
        "h: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile"], "warnings about the existing pod")
    err = t.fails("label", "namespace", ns2, "pod-security.kubernetes.io/audit=foo")
    # A 422 without details (PodSecurity answers in its webhook's shape): kubectl prints the message after
    # "The request is invalid: ".
    t.eq(err, f'The request is invalid: Namespace "{ns2}" is invalid: '
              f'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "foo": must be one of privileged, '
              f'baseline, restricted', "an invalid level label")
    err = t.fails("label", "namespace", ns2, "pod-security.kubernetes.io/enforce-version=v2", "--overwrite")
    t.eq(err, f'The request is invalid: Namespace "{ns2}" is invalid: '
              f'metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "v2": must be "latest" '
              f'or "v1.x"', "an invalid version label")
    labels = t.json("get", "namespace", ns2)["metadata"].get("labels", {})
    t.true("pod-security.kubernetes.io/audit" not in labels and "pod-security.kubernetes.io/enforce-version"
           not in labels, "refused labels are not stored", labels)
    for n in (ns, ns2):
        t.ok("delete", "namespace", n, "--wait=false")


@scenario
def service_account_admission(t: T) -> None:
    """ServiceAccount admission: a pod runs as `default` unless it names an account, gets upstream's projected
    kube-api-access-* volume mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
    container (not when the pod or its account opts out), its account's image pull secrets; a missing account is
    refused with upstream's text; the kubelet's 3607 s pod token is extended to a year with a warnafter claim."""
    import base64
    ns = t.namespace()
    t.true(poll(lambda: t.run("get", "serviceaccount", "default", "-n", ns).rc == 0, 30), "default SA appears",
           t.last_cmd)
    t.create(_pod("plain", initContainers=[{"name": "init", "image": "registry.k8s.io/pause:3.10"}]), ns)
    p = t.json("get", "pod", "plain", "-n", ns)
    t.eq((jget(p, "spec.serviceAccountName"), jget(p, "spec.serviceAccount")), ("default", "default"),
         "the default service account")
    vols = jget(p, "spec.volumes", [])
    t.eq(len(vols), 1, "one volume added")
    name = vols[0]["name"]
    t.true(re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", name) is not None,
           "named kube-api-access-<5 chars>", name)
    t.eq(vols[0]["projected"], {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}, "upstream's token volume source")
    mount = {"name": name, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    t.eq(jget(p, "spec.containers.0.volumeMounts"), [mount], "mounted in the container")
    t.eq(jget(p, "spec.initContainers.0.volumeMounts"), [mount], "and in the init container")

    err = t.fails("create", "-f", "-", "-n", ns, stdin=json.dumps(_pod("lost", serviceAccountName="missing")))
    t.eq(err, _create_err("pods", "lost", f'error looking up service account {ns}/missing: '
                                          f'serviceaccount "missing" not found'), "a missing account is refused")
    t.eq(t.run("get", "pod", "lost", "-n", ns).rc, 1, "nothing stored")

    t.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
              "automountServiceAccountToken": False, "imagePullSecrets": [{"name": "regcred"}]}, ns)
    t.create(_pod("quiet", serviceAccountName="quiet"), ns)
    p = t.json("get", "pod", "quiet", "-n", ns)
    t.eq(jget(p, "spec.volumes"), None, "the account opts out: no token volume")
    t.eq(jget(p, "spec.imagePullSecrets"), [{"name": "regcred"}], "the account's image pull secrets")
    t.create(_pod("loud", serviceAccountName="quiet", automountServiceAccountToken=True), ns)
    t.eq(len(t.json("get", "pod", "loud", "-n", ns)["spec"]["volumes"]), 1, "the pod's own choice wins")
    t.create(_pod("off", automountServiceAccountToken=False), ns)
    t.eq(jget(t.json("get", "pod", "off", "-n", ns), "spec.volumes"), None, "the pod opts out")

    def claims_of(tok: str) -> dict:
        part = tok.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    tok = t.ok("create", "token", "default", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=plain",
               "--duration=3607s").strip()
    c = claims_of(tok)
    t.eq(c["exp"] - c["iat"], 365 * 24 * 3600, "a pod's 3607 s token lives a year")
    t.eq(c["kubernetes.io"].get("warnafter"), c["iat"] + 3607, "and says when it was due for a refresh")
    tok = t.ok("create", "token", "default", "-n", ns, "--duration=3607s").strip()
    c = claims_of(tok)
    t.eq((c["exp"] - c["iat"], "warnafter" in c["kubernetes.io"]), (3607, False), "not extended without a pod")
    t.ok("delete", "namespace", ns, "--wait=false")
