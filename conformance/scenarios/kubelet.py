"""The kubelet on containerd through CRI: a server started as README's one command starts it on a machine
with containerd installed (it runs its own containerd, with local images: conformance/node.py), so this
machine is a node that runs real pods (runc, a CNI bridge).
Driven with stock kubectl: pods run, finish, fail, crash-loop, wait for missing images, get their
environment and volumes, log through the apiserver → kubelet path, reach each other by pod IP, pull from a
registry that wants credentials (their imagePullSecrets), and are stopped and removed on deletion. Runs once
(embedded backend): the store does not matter here."""

from __future__ import annotations

import atexit
import base64
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from harness import Server, T, free_port, https_raw, jget, kubectl_env, poll, scenario, stop_process, tail
from node import ManagedContainerd

NODE = "rkube-node"
POD_CIDR = "10.88.0.0/24"

_fixture: dict = {}


def node_t(t: T) -> T | None:
    """A T against the server with the kubelet (started on first use), or None on the etcd pass."""
    if t.server.etcd is not None:
        return None
    if "t" not in _fixture:
        workdir = Path(tempfile.mkdtemp(prefix="rkube-kubelet-"))
        server = Server("embedded", workdir, None)
        server.node = True
        # A free kubelet port rather than 10250, which another node on this machine may hold.
        _fixture["kubelet_port"] = free_port()
        # --own-containerd: as README's one command on a machine where containerd is installed but not
        # running, even if some containerd runs here.
        # --proxy-mode none: the proxy scenarios run `rkube proxy` in each mode in turn on this node.
        manifests = workdir / "manifests"
        manifests.mkdir()
        _fixture["manifests"] = manifests
        # --sync-frequency 5s: volume updates (kubelet_volume_updates) arrive within seconds, not a minute.
        # --eviction-hard without the disk signals: whether this machine's disk is 85% full must not decide
        # whether these scenarios run (kubelet_disk_pressure_eviction tests them on a disk of its own);
        # likewise --image-gc-high-threshold 100 (image GC off: busybox could not be pulled back;
        # kubelet_image_garbage_collection tests it on a node of its own).
        server.extra_args = ["--own-containerd", "--proxy-mode", "none", "--node-name", NODE, "--pod-cidr", POD_CIDR,
                             "--sync-frequency", "5s", "--eviction-hard", "memory.available<100Mi",
                             "--image-gc-high-threshold", "100",
                             "--kubelet-port", str(_fixture["kubelet_port"]), "--pod-manifest-path", str(manifests)]
        _fixture["server"] = server
        _fixture["containerd"] = ManagedContainerd(server.data_dir)
        atexit.register(_stop)
        server.start()
        _fixture["t"] = T(server, "kubelet")
    return T(_fixture["server"], t.scenario)


def _stop(fixture: dict | None = None) -> None:
    """Stops a node fixture's server and containerd (kubelet.py's node by default), and unmounts its
    kubelet directory if the fixture mounted one."""
    fixture = _fixture if fixture is None else fixture
    server = fixture.get("server")
    if server is not None:
        server.stop()
    containerd = fixture.get("containerd")
    if containerd is not None:
        containerd.stop()
    root = fixture.get("root")
    if root is not None:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def pod(name: str, command: list[str], restart: str = "Always", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5, **spec,
                     "containers": [{"name": "c", "image": "busybox:1.36", "command": command}]}}


def phase(t: T, ns: str, name: str) -> str:
    return t.run("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}").out


def wait_phase(t: T, ns: str, name: str, want: str, timeout: float = 60) -> dict:
    ok = poll(lambda: phase(t, ns, name) == want, timeout)
    obj = t.json("get", "pod", name, "-n", ns)
    t.true(ok, f"pod {name} reaches {want}", json.dumps(obj.get("status"), indent=1)[:1500])
    return obj


def server_log(t: T) -> str:
    return tail(t.server.log, 40)


@scenario
def kubelet_node_registers(t: T) -> None:
    """(embedded) `rkube server` on a machine with containerd installed starts it under the data dir, says so,
    and registers this machine as a Ready node with the runtime's version, the standard labels, the pod
    CIDR and a kubelet port, and renews its Lease"""
    t = node_t(t)
    if t is None:
        return
    log = t.server.log.read_text()
    t.contains(log, f"rkube started containerd on unix://{t.server.data_dir}/containerd/containerd.sock",
               "with no containerd on the default socket, the server says it started its own")
    t.contains(log, "rkube runs a kubelet on unix://", "the server says it runs a kubelet")
    ready = lambda: t.run("get", "node", NODE, "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}").out == "True"
    t.true(poll(ready, 60), "the node is Ready", server_log(t))
    node = t.json("get", "node", NODE)
    labels = node["metadata"]["labels"]
    t.eq((labels.get("kubernetes.io/hostname"), labels.get("kubernetes.io/os")), (NODE, "linux"), "labels")
    t.true(labels.get("kubernetes.io/arch") in ("amd64", "arm64"), "arch label", labels)
    info = node["status"]["nodeInfo"]
    t.true(info["containerRuntimeVersion"].startswith("containerd://1."), "runtime version from CRI", info)
    t.true(info["kernelVersion"] not in ("", "hollow"), "the machine's kernel", info)
    t.eq(node["spec"].get("podCIDR"), POD_CIDR, "podCIDR")
    t.eq(jget(node, "status.daemonEndpoints.kubeletEndpoint.Port"), _fixture["kubelet_port"], "kubelet port")
    t.true(int(node["status"]["capacity"]["pods"]) == 110, "pods capacity", node["status"]["capacity"])
    first = t.json("get", "lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"]
    t.true(poll(lambda: t.json("get", "lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != first, 30),
           "the Lease is renewed", first)
    row = t.ok("get", "node", NODE, "-o", "wide")
    t.match(row, rf"^{NODE}\s+Ready\s+<none>\s+\S+\s+v1\.33\.0\s+\S+\s+<none>\s+.+containerd://", "get node -o wide row")


@scenario
def kubelet_pod_runs(t: T) -> None:
    """(embedded) `kubectl run` with a local image: Running and Ready on the node, a pod IP from its CIDR, a
    containerd container ID the runtime really has; deleting it stops and removes the container and sandbox"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("run", "sleeper", "-n", ns, "--image=busybox", "--image-pull-policy=IfNotPresent", "--command", "--",
         "sleep", "3600")
    obj = wait_phase(t, ns, "sleeper", "Running")
    st = obj["status"]
    t.true(ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(POD_CIDR), "pod IP in the node's CIDR", st)
    t.eq(st.get("hostIP", "") != "", True, "hostIP set")
    cs = st["containerStatuses"][0]
    t.eq((cs["ready"], cs["started"], cs["restartCount"]), (True, True, 0), "container ready, started, no restarts")
    t.eq(cs["image"], "docker.io/library/busybox:latest", "the image as the pod names it, normalized")
    t.true(cs["imageID"] != "", "imageID from the runtime", cs)
    t.true("startedAt" in cs["state"]["running"], "running.startedAt", cs)
    cid = cs["containerID"]
    t.true(cid.startswith("containerd://"), "containerd container ID", cid)
    containerd = _fixture["containerd"]
    t.true(cid.removeprefix("containerd://") in containerd.containers(), "the container exists in containerd",
           containerd.containers())
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    t.eq(conds, {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                 "ContainersReady": "True", "PodScheduled": "True"}, "pod conditions")
    t.match(t.ok("get", "pod", "sleeper", "-n", ns, "-o", "wide"),
            rf"^sleeper\s+1/1\s+Running\s+0\s+\S+\s+{st['podIP']}\s+{NODE}\s", "get pod -o wide row")
    events = t.ok("get", "events", "-n", ns, "--field-selector", "involvedObject.name=sleeper")
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        t.contains(events, reason, f"{reason} event")
    before = len(containerd.containers())
    t.ok("delete", "pod", "sleeper", "-n", ns, timeout=60)
    t.true(t.run("get", "pod", "sleeper", "-n", ns).rc != 0, "the pod is gone once delete returns", "")
    gone = poll(lambda: cid.removeprefix("containerd://") not in containerd.containers()
                and len(containerd.containers()) <= before - 2, 30)
    t.true(gone, "the container and its sandbox are removed from containerd", containerd.containers())
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_pod_completes(t: T) -> None:
    """(embedded) restartPolicy Never: exit 0 → Succeeded (Completed), exit 3 → Failed (Error, exit code 3)"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.create(pod("ok", ["sh", "-c", "echo done; exit 0"], "Never"), ns)
    t.create(pod("bad", ["sh", "-c", "exit 3"], "Never"), ns)
    ok = wait_phase(t, ns, "ok", "Succeeded")
    term = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    t.eq((term["exitCode"], term["reason"]), (0, "Completed"), "terminated state of the succeeded pod")
    bad = wait_phase(t, ns, "bad", "Failed")
    term = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    t.eq((term["exitCode"], term["reason"]), (3, "Error"), "terminated state of the failed pod")
    rows = t.ok("get", "pods", "-n", ns)
    t.match(rows, r"^bad\s+0/1\s+Error\s+0\s", "the failed pod's row")
    t.match(rows, r"^ok\s+0/1\s+Completed\s+0\s", "the succeeded pod's row")
    ready = next(c for c in ok["status"]["conditions"] if c["type"] == "Ready")
    t.eq((ready["status"], ready.get("reason")), ("False", "PodCompleted"), "Ready condition of a completed pod")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_logs(t: T) -> None:
    """(embedded) `kubectl logs` goes apiserver → kubelet (TLS, client certificate, SubjectAccessReview):
    whole log, --tail, --timestamps, -f until the container exits, --previous refused with upstream's
    message, a user without nodes/proxy cannot read the kubelet directly"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.create(pod("talker", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 3; echo last"],
                 "Never"), ns)
    t.true(poll(lambda: "line 5" in t.run("logs", "talker", "-n", ns).out, 60), "logs appear",
           t.run("logs", "talker", "-n", ns).both())
    t.eq(t.ok("logs", "talker", "-n", ns, "--tail=2"), "line 4\nline 5\n", "--tail=2")
    t.match(t.ok("logs", "talker", "-n", ns, "--tail=1", "--timestamps"),
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 5$", "--timestamps prefixes the runtime's time")
    followed = t.run("logs", "-f", "talker", "-n", ns, timeout=60)
    t.eq(followed.rc, 0, "-f ends when the container exits")
    t.eq(followed.out, "".join(f"line {i}\n" for i in range(1, 6)) + "last\n", "-f streams to the end")
    wait_phase(t, ns, "talker", "Succeeded")
    err = t.fails("logs", "talker", "-n", ns, "--previous")
    t.contains(err, 'previous terminated container "c" in pod "talker" not found', "--previous without one")
    err = t.fails("logs", "talker", "-n", ns, "-c", "nope")
    t.contains(err, "container nope is not valid for pod talker", "unknown container")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_env_and_volumes(t: T) -> None:
    """(embedded) an init container fills an emptyDir the app container reads; env from values, fieldRef and
    a ConfigMap key with $(VAR) expansion; configMap, secret, downwardAPI and projected token volumes, and the
    kube-api-access volume ServiceAccount admission adds (token, ca.crt, namespace)"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("create", "configmap", "cfg", "-n", ns, "--from-literal=key=from-configmap")
    t.ok("create", "secret", "generic", "sec", "-n", ns, "--from-literal=password=s3cret")
    script = ("cat /work/f; echo VAR=$MY_VAR; echo KEY=$CM_KEY; echo CFG=$(cat /etc/cfg/key); "
              "echo SEC=$(cat /etc/sec/password); echo LABELS=$(cat /etc/info/labels); "
              "test -s /var/run/secrets/tok/token && echo TOKEN=yes; echo SVC=$KUBERNETES_SERVICE_HOST; "
              "cd /var/run/secrets/kubernetes.io/serviceaccount && echo SA-NS=$(cat namespace) && "
              "grep -q 'BEGIN CERTIFICATE' ca.crt && test -s token && echo SA-FILES=yes")
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols", "labels": {"app": "v"}},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": "busybox:1.36",
                                "command": ["sh", "-c", "echo written-by-init > /work/f"],
                                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{
                "name": "c", "image": "busybox:1.36", "command": ["sh", "-c", script],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "MY_VAR", "value": "in-$(POD)"},
                        {"name": "CM_KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}}],
                "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                 {"name": "cfg", "mountPath": "/etc/cfg"},
                                 {"name": "sec", "mountPath": "/etc/sec"},
                                 {"name": "info", "mountPath": "/etc/info"},
                                 {"name": "tok", "mountPath": "/var/run/secrets/tok"}]}],
            "volumes": [
                {"name": "work", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                            "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            ]}}
    t.create(manifest, ns)
    obj = wait_phase(t, ns, "vols", "Succeeded")
    init = obj["status"]["initContainerStatuses"][0]["state"]["terminated"]
    t.eq((init["exitCode"], init["reason"]), (0, "Completed"), "the init container completed")
    out = t.ok("logs", "vols", "-n", ns, "-c", "c")
    for line in ("written-by-init", "VAR=in-vols", "KEY=from-configmap", "CFG=from-configmap", "SEC=s3cret",
                 'LABELS=app="v"', "TOKEN=yes", "SVC=10.96.0.1", f"SA-NS={ns}", "SA-FILES=yes"):
        t.contains(out, line, line)
    # A missing ConfigMap holds the container with upstream's reason.
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocm"}, "spec": {"containers": [{
        "name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]}}, ns)
    reason = lambda: t.run("get", "pod", "nocm", "-n", ns, "-o",
                           "jsonpath={.status.containerStatuses[0].state.waiting.reason}").out
    t.true(poll(lambda: reason() == "CreateContainerConfigError", 60), "CreateContainerConfigError", reason())
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_volume_updates(t: T) -> None:
    """(embedded) a running pod's configMap, secret, projected and downwardAPI volumes follow their sources
    (the node runs with --sync-frequency 5s): a changed key, a removed one and a new one show in the files, a
    new label at once in the downward API file; files change as a whole through upstream's `..data` link; a
    subPath mount keeps the content it started with; a ConfigMap deleted under the pod leaves the files and
    the pod running and records FailedMount, as upstream's kubelet"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("create", "configmap", "cfg", "-n", ns, "--from-literal=a=1", "--from-literal=b=2")
    t.ok("create", "secret", "generic", "sec", "-n", ns, "--from-literal=p=old")
    spec = pod("watcher", ["sleep", "3600"])
    spec["metadata"]["labels"] = {"app": "w"}
    spec["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "sec", "mountPath": "/etc/sec"},
        {"name": "info", "mountPath": "/etc/info"},
        {"name": "proj", "mountPath": "/etc/proj"},
        {"name": "cfg", "mountPath": "/etc/sub/a", "subPath": "a"}]
    spec["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "proj", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "from-cm/a"}]}},
            {"serviceAccountToken": {"path": "token"}}]}}]
    t.create(spec, ns)
    wait_phase(t, ns, "watcher", "Running")

    def files() -> str:
        script = ("for f in /etc/cfg/a /etc/cfg/b /etc/cfg/c /etc/sec/p /etc/proj/from-cm/a /etc/sub/a; do "
                  "echo \"$f=$(cat $f 2>/dev/null || echo -)\"; done; echo \"labels=$(cat /etc/info/labels | tr '\\n' ' ')\"")
        return t.run("exec", "watcher", "-n", ns, "--", "sh", "-c", script).out

    before = files()
    for line in ("/etc/cfg/a=1", "/etc/cfg/b=2", "/etc/cfg/c=-", "/etc/sec/p=old", "/etc/proj/from-cm/a=1",
                 "/etc/sub/a=1", 'labels=app="w"'):
        t.contains(before, line, "before the updates")
    layout = t.ok("exec", "watcher", "-n", ns, "--", "sh", "-c",
                  "ls -a /etc/cfg; readlink /etc/cfg/a; readlink /etc/cfg/..data")
    t.contains(layout, "..data", "upstream's layout: a ..data link")
    t.contains(layout, "..data/a", "each key a link through ..data")
    t.true(re.search(r"^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$", layout, re.M) is not None,
           "..data names a timestamped version directory", layout)
    token = t.run("exec", "watcher", "-n", ns, "--", "test", "-s", "/etc/proj/token")
    t.true(token.rc == 0, "the projected token is there", token.both())

    # The sources change; the periodic sync brings the files up to date.
    t.ok("patch", "configmap", "cfg", "-n", ns, "--type=merge", "-p", '{"data":{"a":"changed","b":null,"c":"3"}}')
    t.ok("patch", "secret", "sec", "-n", ns, "--type=merge",
         "-p", json.dumps({"data": {"p": base64.b64encode(b"new").decode()}}))
    want = ("/etc/cfg/a=changed", "/etc/cfg/b=-", "/etc/cfg/c=3", "/etc/sec/p=new", "/etc/proj/from-cm/a=changed")
    t.true(poll(lambda: all(w in files() for w in want), 60), "ConfigMap and Secret updates reach the files",
           files())
    t.contains(files(), "/etc/sub/a=1", "a subPath mount keeps what it started with (as upstream)")

    # A label is in the downward API file as soon as the pod changes, not at the next periodic sync.
    t.ok("label", "pod", "watcher", "-n", ns, "tier=web")
    t.true(poll(lambda: 'tier="web"' in files(), 20), "a new label reaches the downward API file", files())

    # A ConfigMap deleted under a running pod: the files stay, the pod runs on, FailedMount is recorded.
    t.ok("delete", "configmap", "cfg", "-n", ns)
    events = lambda: t.run("get", "events", "-n", ns, "--field-selector", "involvedObject.name=watcher").out
    t.true(poll(lambda: 'configmap "cfg" not found' in events(), 60), "FailedMount for the deleted ConfigMap",
           events())
    t.contains(events(), "FailedMount", "the event's reason")
    t.contains(files(), "/etc/cfg/a=changed", "the files stay")
    t.eq(phase(t, ns, "watcher"), "Running", "the pod runs on")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_active_deadline(t: T) -> None:
    """(embedded) a running pod past its activeDeadlineSeconds is ended by the kubelet as upstream's: Failed,
    reason DeadlineExceeded, "Pod was active on the node longer than the specified deadline", its container
    stopped, a Normal DeadlineExceeded event"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.create(pod("deadline", ["sleep", "3600"], activeDeadlineSeconds=5), ns)
    wait_phase(t, ns, "deadline", "Running")
    obj = wait_phase(t, ns, "deadline", "Failed", timeout=60)
    t.eq((obj["status"].get("reason"), obj["status"].get("message")),
         ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline"), "upstream's status")
    state = obj["status"]["containerStatuses"][0]["state"]
    t.true("terminated" in state, "the container was stopped", json.dumps(state))
    events = t.run("get", "events", "-n", ns, "--field-selector", "involvedObject.name=deadline").out
    t.match(events, r"Normal\s+DeadlineExceeded", "the event")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_restarts_and_images(t: T) -> None:
    """(embedded) a crashing container under restartPolicy Always is restarted and backs off
    (CrashLoopBackOff, lastState, restartCount); a missing image with pull policy Never waits in
    ErrImageNeverPull, with IfNotPresent (no registry) in ErrImagePull/ImagePullBackOff; pods stay Pending"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.create(pod("crash", ["sh", "-c", "exit 1"]), ns)
    waiting = lambda name: t.run("get", "pod", name, "-n", ns, "-o",
                                 "jsonpath={.status.containerStatuses[0].state.waiting.reason}").out
    t.true(poll(lambda: waiting("crash") == "CrashLoopBackOff", 60), "CrashLoopBackOff", waiting("crash"))
    cs = t.json("get", "pod", "crash", "-n", ns)["status"]["containerStatuses"][0]
    t.true(cs["restartCount"] >= 1, "restarted at least once", cs)
    t.eq(cs["lastState"]["terminated"]["exitCode"], 1, "lastState holds the crash")
    t.match(cs["state"]["waiting"]["message"],
            r"^back-off \d+s restarting failed container=c pod=crash_" + ns + r"\(", "back-off message")
    t.contains(t.ok("get", "events", "-n", ns, "--field-selector", "involvedObject.name=crash"), "BackOff",
               "BackOff event")
    for name, policy, reasons in (("never", "Never", ("ErrImageNeverPull",)),
                                  ("absent", "IfNotPresent", ("ErrImagePull", "ImagePullBackOff"))):
        t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "rkube.local/nothere:1", "imagePullPolicy": policy}]}}, ns)
        t.true(poll(lambda: waiting(name) in reasons, 60), f"{policy}: waiting in {reasons}", waiting(name))
        t.eq(phase(t, ns, name), "Pending", f"{policy}: the pod stays Pending")
    msg = t.run("get", "pod", "never", "-n", ns, "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.message}").out
    t.eq(msg, 'Container image "rkube.local/nothere:1" is not present with pull policy of Never',
         "ErrImageNeverPull message")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_deployment_and_pod_network(t: T) -> None:
    """(embedded) a Deployment becomes 2/2 on the real node with two pod IPs; a pod reaches a web server in
    another pod by its IP over the CNI bridge"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("create", "deployment", "web", "-n", ns, "--image=busybox:1.36", "--replicas=2", "--",
         "sh", "-c", "echo hello-from-$(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    avail = lambda: t.run("get", "deployment", "web", "-n", ns, "-o", "jsonpath={.status.availableReplicas}").out
    t.true(poll(lambda: avail() == "2", 90), "the Deployment becomes 2/2", t.run("get", "pods", "-n", ns).both())
    pods = t.json("get", "pods", "-n", ns, "-l", "app=web")["items"]
    ips = sorted(p["status"]["podIP"] for p in pods)
    t.eq(len(set(ips)), 2, "two pod IPs")
    target = pods[0]
    t.create(pod("client", ["wget", "-qO-", f"http://{target['status']['podIP']}:8080/"], "Never"), ns)
    wait_phase(t, ns, "client", "Succeeded")
    t.eq(t.ok("logs", "client", "-n", ns).strip(), f"hello-from-{target['metadata']['name']}",
         "the client pod fetched the page from the other pod")
    t.ok("delete", "namespace", ns, "--wait=false")



@scenario
def kubelet_probes(t: T) -> None:
    """(embedded) probes: an exec readiness probe holds Ready until it passes, an httpGet readiness probe
    makes a web server's pod Ready, a failing tcpSocket probe keeps a pod unready with an Unhealthy event,
    a failing liveness probe gets the container killed and restarted"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    fast = {"periodSeconds": 1, "failureThreshold": 1}

    def container(command: str, **probes) -> dict:
        return {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", command], **probes}

    def create(name: str, c: dict) -> None:
        t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [c]}}, ns)

    create("later", container("sleep 4; touch /tmp/ready; exec sleep 3600",
                              readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, **fast}))
    create("web", container("echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
                            readinessProbe={"httpGet": {"path": "/index.html", "port": 8080}, **fast}))
    create("closed", container("exec sleep 3600", readinessProbe={"tcpSocket": {"port": 8081}, **fast}))
    create("dies", container("touch /tmp/alive; sleep 3; rm /tmp/alive; exec sleep 3600",
                             livenessProbe={"exec": {"command": ["test", "-f", "/tmp/alive"]}, **fast}))
    ready = lambda name: t.run("get", "pod", name, "-n", ns, "-o",
                               "jsonpath={.status.phase}/{.status.containerStatuses[0].ready}").out
    t.true(poll(lambda: ready("later") == "Running/false", 30), "running but not ready before the probe passes",
           ready("later"))
    t.true(poll(lambda: ready("later") == "Running/true", 60), "ready once the exec probe passes", ready("later"))
    t.true(poll(lambda: ready("web") == "Running/true", 60), "the httpGet probe makes the web pod ready",
           ready("web"))
    t.eq(ready("closed"), "Running/false", "a failing tcpSocket probe keeps the pod unready")
    events = lambda name: t.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}").out
    t.true(poll(lambda: "Readiness probe failed: dial tcp" in events("closed"), 30), "Unhealthy event",
           events("closed"))
    restarts = lambda: t.run("get", "pod", "dies", "-n", ns, "-o",
                             "jsonpath={.status.containerStatuses[0].restartCount}").out
    t.true(poll(lambda: restarts() not in ("", "0"), 60), "the liveness probe's failure restarts the container",
           restarts())
    t.contains(events("dies"), "Container c failed liveness probe, will be restarted", "Killing event")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_https_and_grpc_probes(t: T) -> None:
    """(embedded) an httpGet probe with scheme HTTPS passes against a server whose certificate the node
    does not verify (the apiserver's /readyz: upstream's prober skips verification) and fails against a
    plain-HTTP server; a grpc probe passes against a server of the gRPC health protocol (an etcd on the
    node, for a hostNetwork pod, whose IP is the node's) and fails with upstream's message where nothing
    listens"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    api_port = urllib.parse.urlparse(t.server.creds["server"]).port
    grpc_port, peer_port = free_port(), free_port()
    etcd_dir = Path(tempfile.mkdtemp(prefix="rkube-grpc-probe-"))
    etcd = subprocess.Popen(
        ["etcd", "--name=probe", f"--data-dir={etcd_dir / 'data'}",
         f"--listen-client-urls=http://0.0.0.0:{grpc_port}", f"--advertise-client-urls=http://127.0.0.1:{grpc_port}",
         f"--listen-peer-urls=http://127.0.0.1:{peer_port}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
         f"--initial-cluster=probe=http://127.0.0.1:{peer_port}"],
        stdout=subprocess.DEVNULL, stderr=open(etcd_dir / "etcd.log", "w"))
    fast = {"periodSeconds": 1, "failureThreshold": 1}
    try:
        def create(name: str, command: str, probe: dict, **spec) -> None:
            t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                      "spec": {"terminationGracePeriodSeconds": 1, **spec, "containers": [
                          {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", command],
                           "readinessProbe": {**probe, **fast}}]}}, ns)
        create("tls", "exec sleep 3600",
               {"httpGet": {"host": "127.0.0.1", "port": api_port, "path": "/readyz", "scheme": "HTTPS"}})
        create("plain", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
               {"httpGet": {"path": "/index.html", "port": 8080, "scheme": "HTTPS"}})
        create("grpc", "exec sleep 3600", {"grpc": {"port": grpc_port}}, hostNetwork=True)
        create("nogrpc", "exec sleep 3600", {"grpc": {"port": 9}})
        ready = lambda name: t.run("get", "pod", name, "-n", ns, "-o",
                                   "jsonpath={.status.phase}/{.status.containerStatuses[0].ready}").out
        t.true(poll(lambda: ready("tls") == "Running/true", 60),
               "an HTTPS probe passes against a certificate the node does not verify", ready("tls"))
        t.true(poll(lambda: ready("grpc") == "Running/true", 60),
               "a grpc probe passes against a gRPC health server", ready("grpc"))
        events = lambda name: t.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}").out
        t.true(poll(lambda: "Readiness probe failed: Get \"https://" in events("plain"), 30),
               "an HTTPS probe of a plain-HTTP server fails", events("plain"))
        t.true(poll(lambda: "Readiness probe failed: timeout: failed to connect service" in events("nogrpc"), 30),
               "a grpc probe where nothing listens fails with upstream's message", events("nogrpc"))
        t.eq((ready("plain"), ready("nogrpc")), ("Running/false", "Running/false"), "both stay unready")
    finally:
        etcd.kill()
        etcd.wait()
        t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_exec_attach_port_forward_cp(t: T) -> None:
    """(embedded) the streams go apiserver → kubelet → containerd's streaming server, relayed as upgraded
    connections, except kubectl's WebSocket v5 exec and attach, which the apiserver translates to SPDY:
    `kubectl exec` prints an env var from a ConfigMap and a Secret file, passes piped stdin (closed at its end),
    returns the command's exit code, over v5 and over kubectl 1.29's SPDY, gives a TTY with -it; `kubectl cp`
    copies in and out (3 MB intact); `kubectl attach -i`
    feeds a container's stdin; `kubectl port-forward` reaches httpd in the pod; the Python client's
    WebSocket exec works; errors as upstream (unknown container, missing command, a non-running container)"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("create", "configmap", "cfg", "-n", ns, "--from-literal=FOO=bar-from-configmap")
    t.ok("create", "secret", "generic", "sec", "-n", ns, "--from-literal=password=s3cret")
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "c", "image": "busybox:1.36",
                        "command": ["sh", "-c", "mkdir -p /www; echo served-from-pod > /www/index.html; "
                                                "exec httpd -f -p 8080 -h /www"],
                        "envFrom": [{"configMapRef": {"name": "cfg"}}],
                        "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec"}]}],
        "volumes": [{"name": "sec", "secret": {"secretName": "sec"}}]}}, ns)
    wait_phase(t, ns, "box", "Running")
    t.eq(t.ok("exec", "box", "-n", ns, "--", "sh", "-c", "echo $FOO"), "bar-from-configmap\n",
         "exec prints the ConfigMap's variable")
    t.eq(t.ok("exec", "box", "-n", ns, "--", "cat", "/etc/sec/password"), "s3cret", "a Secret file")
    t.eq(t.ok("exec", "-i", "box", "-n", ns, "--", "sh", "-c", "cat; echo done", stdin="line one\nline two\n"),
         "line one\nline two\ndone\n", "exec -i passes stdin to its end")
    r = t.run("exec", "box", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    t.eq((r.rc, r.out), (3, "out\n"), "the command's exit code and stdout")
    t.contains(r.err, "err", "its stderr")
    t.contains(r.err, "command terminated with exit code 3", "kubectl's report of the exit code")
    # kubectl 1.30+ asks for WebSocket v5 first, which the apiserver translates to SPDY for the kubelet (-v=4
    # shows what was negotiated, and any fallback to SPDY); kubectl 1.29 speaks SPDY, relayed as it is.
    r = t.run("exec", "-v=4", "-i", "box", "-n", ns, "--", "sh", "-c", "cat; exit 4", stdin="through v5\n")
    t.eq((r.rc, r.out), (4, "through v5\n"), "WebSocket v5: stdin closed on its end, then the exit code")
    t.contains(r.err, "The subprotocol is v5.channel.k8s.io", "kubectl negotiated WebSocket v5")
    t.true("fallback" not in r.err.lower(), "no fallback to SPDY", r.err[-2000:])
    text = "".join(f"line {i} of the piped input\n" for i in range(100_000))  # 2.9 MB
    t.eq(t.ok("exec", "-i", "box", "-n", ns, "--", "sha256sum", stdin=text, timeout=90).split()[0],
         hashlib.sha256(text.encode()).hexdigest(), "2.9 MB of stdin through WebSocket v5, whole and in order")
    kubectl_129 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29"
    if Path(kubectl_129).exists():
        r = t.run("exec", "-i", "box", "-n", ns, "--", "sh", "-c", "cat; exit 5", stdin="over spdy\n",
                  kubectl=kubectl_129)
        t.eq((r.rc, r.out), (5, "over spdy\n"), "kubectl 1.29's SPDY exec, relayed to the kubelet")
    # A TTY: kubectl needs a terminal for -it, which `script` gives it. script's stdin stays open and idle:
    # at its end of input script types an end-of-file character into the terminal, which kubectl would
    # forward and the container's terminal echo (`^@` before the output).
    cmd = " ".join(shlex.quote(a) for a in t.base_cmd() + ["exec", "-it", "box", "-n", ns, "--", "tty"])
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.PIPE, stdout=out,
                             stderr=subprocess.DEVNULL, text=True, env=kubectl_env(t.server.cache_dir))
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_process(p)
        assert p.stdin is not None
        p.stdin.close()
        out.seek(0)
        tty = out.read()
    t.match(tty, r"^/dev/pts/\d+\s*$", "exec -it runs the command on a terminal")
    err = t.fails("exec", "box", "-n", ns, "-c", "nope", "--", "true")
    t.contains(err, "container nope is not valid for pod box", "an unknown container (the apiserver's check)")
    err = t.fails("exec", "box", "-n", ns, "--", "no-such-command")
    t.contains(err, 'exec: "no-such-command": executable file not found in $PATH', "the runtime's error")

    # kubectl cp, both ways (tar in the container).
    local = Path(tempfile.mkdtemp(prefix="rkube-cp-"))
    (local / "in.txt").write_text("copied into the pod\n")
    t.ok("cp", str(local / "in.txt"), f"{ns}/box:/tmp/in.txt")
    t.eq(t.ok("exec", "box", "-n", ns, "--", "cat", "/tmp/in.txt"), "copied into the pod\n", "cp into the pod")
    t.ok("cp", f"{ns}/box:/tmp/in.txt", str(local / "out.txt"))
    t.eq((local / "out.txt").read_text(), "copied into the pod\n", "cp out of the pod")
    # 3 MB each way: many messages through the WebSocket/SPDY translation, in order and whole.
    big = os.urandom(3_000_000)
    (local / "big.bin").write_bytes(big)
    t.ok("cp", str(local / "big.bin"), f"{ns}/box:/tmp/big.bin", timeout=90)
    t.eq(t.ok("exec", "box", "-n", ns, "--", "sha256sum", "/tmp/big.bin").split()[0],
         hashlib.sha256(big).hexdigest(), "3 MB copied into the pod, intact")
    t.ok("cp", f"{ns}/box:/tmp/big.bin", str(local / "big.out"), timeout=90)
    t.true((local / "big.out").read_bytes() == big, "3 MB copied out of the pod, intact", len((local / "big.out").read_bytes()))

    # port-forward to httpd in the pod, through the apiserver's WebSocket tunnel (kubectl 1.31+ carries
    # port-forward's SPDY in a WebSocket; -v=6 shows what it negotiated, and no fallback to plain SPDY).
    t.ok("exec", "box", "-n", ns, "--", "sh", "-c", "head -c 3000000 /dev/urandom > /www/big")
    digest = t.ok("exec", "box", "-n", ns, "--", "sha256sum", "/www/big").split()[0]
    pf = t.bg("port-forward", "-v=6", "-n", ns, "pod/box", ":8080")
    t.true(pf.wait_for(lambda out: "Forwarding from 127.0.0.1:" in out, 30), "port-forward listens",
           pf.out + pf.err)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", pf.out).group(1))
    body = ""
    for _ in range(2):  # two connections through one forward
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            body = resp.read().decode()
        t.eq(body, "served-from-pod\n", "port-forward reaches httpd in the pod")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/big", timeout=30) as resp:
        t.eq(hashlib.sha256(resp.read()).hexdigest(), digest, "3 MB through the tunnel, intact")
    pf.stop()
    t.contains(pf.err, "negotiated protocol: portforward.k8s.io", "kubectl's WebSocket tunnel was taken")
    t.true("fallback" not in pf.err.lower(), "no fallback to SPDY", pf.err[-2000:])

    # attach -i: the container reads one line from its stdin and answers on stdout.
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "c", "image": "busybox:1.36", "stdin": True, "stdinOnce": True,
                        "command": ["sh", "-c", "read line; echo got: $line"]}]}}, ns)
    wait_phase(t, ns, "reader", "Running")
    r = t.run("attach", "-i", "reader", "-n", ns, stdin="hello over attach\n", timeout=60)
    t.contains(r.out, "got: hello over attach", "attach -i feeds stdin and streams stdout")
    wait_phase(t, ns, "reader", "Succeeded")
    err = t.fails("exec", "reader", "-n", ns, "--", "true")
    t.contains(err, "cannot exec into a container in a completed pod", "a completed pod (kubectl's check)")
    # A running pod's exited container: the kubelet refuses, and the v5 translation reports its words on the
    # error channel as upstream's apiserver does.
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "half"}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "runs", "image": "busybox:1.36", "command": ["sleep", "3600"]},
                       {"name": "done", "image": "busybox:1.36", "command": ["true"]}]}}, ns)
    def done_exited() -> bool:
        statuses = t.json("get", "pod", "half", "-n", ns)["status"].get("containerStatuses") or []
        return any(c["name"] == "done" and "terminated" in c.get("state", {}) for c in statuses)
    t.true(poll(done_exited, 60), "one container of the pod exits", "")
    err = t.fails("exec", "half", "-n", ns, "-c", "done", "--", "true")
    t.contains(err, "Internal error occurred: unable to upgrade connection: ", "the kubelet's refusal, translated")

    # The Python client's exec: WebSocket (v4.channel.k8s.io), relayed to containerd as it came.
    from kubernetes import config as k8s_config, client as k8s
    from kubernetes.stream import stream
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(t.kubeconfig)))
    out = stream(api.connect_get_namespaced_pod_exec, "box", ns, command=["sh", "-c", "echo py-$FOO"],
                 stderr=True, stdin=False, stdout=True, tty=False, _request_timeout=30)
    t.eq(out.strip(), "py-bar-from-configmap", "the Python client's WebSocket exec")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_pod_and_service_proxy(t: T) -> None:
    """(embedded) `pods/NAME[:PORT]/proxy` and `services/NAME[:PORT]/proxy` relay to httpd in a pod by its IP:
    `kubectl get --raw` reads a page by pod port number, container port name and the first declared port;
    `kubectl create --raw` and the admin's client certificate POST (and PUT, PATCH, DELETE) a body to a CGI
    that echoes method, query and body; a bare `.../proxy` redirects to `.../proxy/` and a backend's redirect
    stays under the proxy path; a Service made by `kubectl expose` and one with a named port are reached
    through their ready endpoints, also through `kubectl proxy`; upstream's errors for a missing pod, a pod
    without an IP, a port nothing listens on, a missing Service port and a Service without endpoints (503);
    a user bound to `view` may not proxy, one bound to `edit` may"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    # httpd with a CGI that answers every method with what it got (busybox runs cgi-bin/* as CGI).
    setup = ("mkdir -p /www/cgi-bin; echo served-by-proxy > /www/index.html; "
             "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
             "echo method=$REQUEST_METHOD query=$QUERY_STRING\\nhead -c ${CONTENT_LENGTH:-0}\\n' "
             "> /www/cgi-bin/echo; chmod +x /www/cgi-bin/echo; exec httpd -f -p 8080 -h /www")
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", setup],
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}, ns)
    ip = wait_phase(t, ns, "web", "Running")["status"]["podIP"]
    pods = f"/api/v1/namespaces/{ns}/pods"
    page = lambda path: t.run("get", "--raw", path)
    t.true(poll(lambda: page(f"{pods}/web:8080/proxy/").out == "served-by-proxy\n", 30),
           "get --raw pods/web:8080/proxy/ returns httpd's index", page(f"{pods}/web:8080/proxy/").both())
    t.eq(t.ok("get", "--raw", f"{pods}/web/proxy/"), "served-by-proxy\n", "no port: the pod's first declared port")
    t.eq(t.ok("get", "--raw", f"{pods}/http:web:http/proxy/index.html"), "served-by-proxy\n",
         "scheme:name:port with a container port's name")

    body = Path(tempfile.mkdtemp(prefix="rkube-proxy-")) / "body.txt"
    body.write_text("posted-through-kubectl")
    # kubectl streams the file without a length, so (as through upstream's proxy) the pod gets it chunked,
    # which busybox's CGI does not read: the method and query show, the body is checked below.
    out = t.ok("create", "--raw", f"{pods}/web:8080/proxy/cgi-bin/echo?a=1&watch=true", "-f", str(body))
    t.eq(out.strip().splitlines()[0], "method=POST query=a=1&watch=true",
         "kubectl create --raw POSTs; the query reaches the pod and its answer comes back")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        code, text = t.https(method, f"{pods}/web:8080/proxy/cgi-bin/echo?m={method}", body=b"raw-body",
                             headers={"Content-Type": "text/plain"})
        # busybox's httpd hands a CGI the body of a POST only.
        want = f"method={method} query=m={method}" + ("\nraw-body" if method == "POST" else "")
        t.eq((code, text.strip()), (200, want), f"{method} with the admin's client certificate reaches the pod")
    status, headers, _ = https_raw(t.server.creds, "GET", f"{pods}/web:8080/proxy?x=1")
    t.eq((status, headers.get("location")), (301, f"{pods}/web:8080/proxy/?x=1"),
         "a bare .../proxy is redirected to .../proxy/, as upstream")
    status, headers, _ = https_raw(t.server.creds, "GET", f"{pods}/web:8080/proxy/cgi-bin")
    t.eq((status, headers.get("location")), (302, f"{pods}/web:8080/proxy/cgi-bin/"),
         "httpd's redirect is rewritten to stay under the proxy path")

    t.contains(t.fails("get", "--raw", f"{pods}/nope:8080/proxy/"), 'pods "nope" not found', "a missing pod: 404")
    t.contains(t.fails("get", "--raw", f"{pods}/web:8081/proxy/"),
               f"error trying to reach service: dial tcp {ip}:8081: connect: connection refused",
               "a port nothing listens on: upstream's transport error")
    t.contains(t.fails("get", "--raw", f"{pods}/ftp:web:21/proxy/"), 'invalid pod request "ftp:web:21"',
               "an unknown scheme")
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"}, "spec": {
        "nodeSelector": {"no-such-label": "x"},
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}, ns)
    t.contains(t.fails("get", "--raw", f"{pods}/nowhere:80/proxy/"), "address not allowed",
               "a pod without an IP: 400, upstream's message")

    # Services: kubectl expose (an unnamed port), and one with a named port; both select the pod.
    svcs = f"/api/v1/namespaces/{ns}/services"
    t.ok("expose", "pod", "web", "-n", ns, "--name=web", "--port=80", "--target-port=8080")
    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "named"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "www", "port": 81, "targetPort": "http"}]}}, ns)
    t.true(poll(lambda: page(f"{svcs}/web:80/proxy/").out == "served-by-proxy\n", 60),
           "services/web:80/proxy/ reaches the ready endpoint", page(f"{svcs}/web:80/proxy/").both())
    t.eq(t.ok("get", "--raw", f"{svcs}/web/proxy/index.html"), "served-by-proxy\n", "the unnamed port by default")
    t.true(poll(lambda: page(f"{svcs}/named:www/proxy/").out == "served-by-proxy\n", 30),
           "services/named:www/proxy/ by the port's name", page(f"{svcs}/named:www/proxy/").both())
    t.eq(t.ok("get", "--raw", f"{svcs}/http:named:81/proxy/"), "served-by-proxy\n",
         "scheme:name:port with the port's number")
    t.contains(t.fails("get", "--raw", f"{svcs}/web:81/proxy/"), 'no service port 81 found for service "web"',
               "a port the Service does not have")
    t.contains(t.fails("get", "--raw", f"{svcs}/named/proxy/"), 'no endpoints available for service "named"',
               "no unnamed port among the named Service's endpoints")
    t.contains(t.fails("get", "--raw", f"{svcs}/missing/proxy/"), 'services "missing" not found', "a missing Service")
    t.ok("create", "service", "clusterip", "empty", "-n", ns, "--tcp=80:8080")
    code, text = t.https("GET", f"{svcs}/empty:80/proxy/")
    st = t.status_error(text, 503, "ServiceUnavailable", "a Service without endpoints")
    t.eq(st.get("message"), 'no endpoints available for service "empty"', "upstream's message")
    t.contains(t.fails("get", "--raw", f"{svcs}/empty/proxy/"),
               'Error from server (ServiceUnavailable): no endpoints available for service "empty"', "kubectl's report")

    # kubectl proxy in front: a plain-HTTP path to the same subresource.
    kp = t.bg("proxy", "--port=0")
    t.true(kp.wait_for(lambda out: "Starting to serve on" in out, 30), "kubectl proxy serves", kp.out + kp.err)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", kp.out).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{svcs}/web/proxy/", timeout=10) as resp:
        t.eq(resp.read().decode(), "served-by-proxy\n", "curl through kubectl proxy reaches the Service")
    req = urllib.request.Request(f"http://127.0.0.1:{port}{svcs}/web:80/proxy/cgi-bin/echo", data=b"via-kubectl-proxy",
                                 method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        t.eq(resp.read().decode().strip(), "method=POST query=\nvia-kubectl-proxy", "a POST through kubectl proxy")
    kp.stop()

    # RBAC: view grants neither pods/proxy nor services/proxy; edit grants both.
    t.ok("create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer", "-n", ns)
    t.ok("create", "rolebinding", "editor", "--clusterrole=edit", "--user=editor", "-n", ns)
    t.true(poll(lambda: t.run("auth", "can-i", "get", "pods", "-n", ns, "--as", "viewer").out.strip() == "yes", 15),
           "the view binding is in effect", t.last_cmd)
    err = t.fails("get", "--raw", f"{pods}/web:8080/proxy/", "--as", "viewer")
    t.contains(err, f'pods "web:8080" is forbidden: User "viewer" cannot get resource "pods/proxy" in API group "" '
                    f'in the namespace "{ns}"', "view does not grant pods/proxy")
    err = t.fails("get", "--raw", f"{svcs}/web:80/proxy/", "--as", "viewer")
    t.contains(err, f'services "web:80" is forbidden: User "viewer" cannot get resource "services/proxy" in API '
                    f'group "" in the namespace "{ns}"', "view does not grant services/proxy")
    err = t.fails("create", "--raw", f"{pods}/web:8080/proxy/cgi-bin/echo", "-f", str(body), "--as", "viewer")
    t.contains(err, 'cannot create resource "pods/proxy"', "a POST is authorized as create")
    as_editor = lambda path: t.run("get", "--raw", path, "--as", "editor")
    t.true(poll(lambda: as_editor(f"{pods}/web:8080/proxy/").out == "served-by-proxy\n", 15),
           "edit grants pods/proxy", as_editor(f"{pods}/web:8080/proxy/").both())
    t.eq(as_editor(f"{svcs}/web:80/proxy/").out, "served-by-proxy\n", "edit grants services/proxy")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_lifecycle_hooks_and_termination_messages(t: T) -> None:
    """(embedded) postStart runs after the container starts (the container sees its file); preStop runs
    before a deleted pod's container is stopped (it writes to a hostPath); a failing postStart kills the
    container (FailedPostStartHook, restarts); a termination message comes from terminationMessagePath,
    or from the log's tail under FallbackToLogsOnError"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    host_dir = Path(tempfile.mkdtemp(prefix="rkube-hooks-"))
    busybox = {"image": "busybox:1.36", "imagePullPolicy": "IfNotPresent"}
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hooks"}, "spec": {
        "terminationGracePeriodSeconds": 10,
        "containers": [{"name": "c", **busybox,
                        "command": ["sh", "-c", "while [ ! -f /tmp/started ]; do sleep 0.1; done; "
                                                "echo saw $(cat /tmp/started); trap 'exit 0' TERM; sleep 3600 & wait"],
                        "lifecycle": {
                            "postStart": {"exec": {"command": ["sh", "-c", "echo post-start > /tmp/started"]}},
                            "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop-ran > /host/prestop"]}}},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
        "volumes": [{"name": "host", "hostPath": {"path": str(host_dir)}}]}}, ns)
    wait_phase(t, ns, "hooks", "Running")
    t.true(poll(lambda: "saw post-start" in t.run("logs", "hooks", "-n", ns).out, 30),
           "the container saw what its postStart hook wrote", t.run("logs", "hooks", "-n", ns).both())
    t.ok("delete", "pod", "hooks", "-n", ns, "--timeout=60s")
    t.eq((host_dir / "prestop").read_text() if (host_dir / "prestop").exists() else "", "pre-stop-ran\n",
         "the preStop hook ran before the container was stopped")

    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "badhook"}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "c", **busybox, "command": ["sleep", "3600"],
                        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}}}]}}, ns)
    events = lambda: t.run("get", "events", "-n", ns, "--field-selector", "involvedObject.name=badhook").out
    t.true(poll(lambda: "FailedPostStartHook" in events(), 60), "a FailedPostStartHook event", events())
    restarts = lambda: t.run("get", "pod", "badhook", "-n", ns, "-o",
                             "jsonpath={.status.containerStatuses[0].restartCount}").out
    t.true(poll(lambda: restarts() not in ("", "0"), 60), "the killed container is restarted", restarts())

    never = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2}
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "msg"}, "spec": {**never,
        "containers": [{"name": "c", **busybox,
                        "command": ["sh", "-c", "printf bye-from-file > /dev/termination-log"]}]}}, ns)
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "custom"}, "spec": {**never,
        "containers": [{"name": "c", **busybox, "terminationMessagePath": "/tmp/why",
                        "command": ["sh", "-c", "printf custom-path > /tmp/why; exit 1"]}]}}, ns)
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fallback"}, "spec": {**never,
        "containers": [{"name": "c", **busybox, "terminationMessagePolicy": "FallbackToLogsOnError",
                        # stdout and stderr reach the log through two pipes: the pause keeps their order.
                        "command": ["sh", "-c", "echo log-line; sleep 0.5; echo failing >&2; exit 2"]}]}}, ns)
    for name, phase, message in (("msg", "Succeeded", "bye-from-file"), ("custom", "Failed", "custom-path"),
                                 ("fallback", "Failed", "log-line\nfailing\n")):
        obj = wait_phase(t, ns, name, phase)
        term = jget(obj, "status.containerStatuses.0.state.terminated") or {}
        t.eq(term.get("message"), message, f"{name}: the terminated state's message")
    t.ok("delete", "namespace", ns, "--wait=false")


@scenario
def kubelet_ephemeral_debug_containers(t: T) -> None:
    """(embedded) `kubectl debug POD --image=busybox --target=app` adds an ephemeral container the kubelet
    starts in the running pod, in the target's PID namespace (its `ps` shows the target's command as PID 1);
    `kubectl logs|exec -c` reach it; its status is in ephemeralContainerStatuses, never ready, and does not
    change the pod's readiness. One without a target has its own PID namespace, runs once and is not restarted
    when it exits; one whose image is missing waits with ErrImageNeverPull"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "target"}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}, ns)
    wait_phase(t, ns, "target", "Running")

    def eph(name: str) -> dict:
        obj = t.json("get", "pod", "target", "-n", ns)
        return next((s for s in jget(obj, "status.ephemeralContainerStatuses", []) or [] if s["name"] == name), {})

    out = t.run("debug", "target", "-n", ns, "--image=busybox:1.36", "-c", "dbg", "--target=app",
                "--profile=general", "--", "sh", "-c", "ps; sleep 3600")
    t.eq(out.rc, 0, f"kubectl debug exit code ({out.both()})")
    t.contains(out.both(), 'Targeting container "app"', "kubectl debug names the target")
    t.true(poll(lambda: "running" in (eph("dbg").get("state") or {}), 60), "the debug container runs",
           json.dumps(eph("dbg")) + "\n" + server_log(t))
    s = eph("dbg")
    t.eq((s.get("ready"), s.get("restartCount"), s.get("containerID", "").startswith("containerd://"),
          s.get("image")), (False, 0, True, "docker.io/library/busybox:1.36"), "the debug container's status")
    t.match(t.ok("logs", "target", "-c", "dbg", "-n", ns), r"^\s*1\s+\S+\s+sleep 3600\s*$",
            "the debug container sees the target's command as PID 1")
    t.contains(t.ok("exec", "target", "-c", "dbg", "-n", ns, "--", "cat", "/proc/1/cmdline"), "sleep",
               "kubectl exec into the debug container")
    row = t.row(t.table(t.ok("get", "pod", "target", "-n", ns)), "target", "get pod")
    t.eq((row.get("READY"), row.get("STATUS")), ("1/1", "Running"), "the pod's readiness is the app's alone")

    t.ok("debug", "target", "-n", ns, "--image=busybox:1.36", "-c", "alone", "--profile=general", "--",
         "sh", "-c", "echo alone; ps")
    done = lambda: (eph("alone").get("state") or {}).get("terminated", {}).get("reason") == "Completed"
    t.true(poll(done, 60), "a debug container without a target runs to completion", eph("alone"))
    alone = t.ok("logs", "target", "-c", "alone", "-n", ns)
    t.match(alone, r"^\s*1\s+\S+\s+.*sh -c echo alone", "without a target its own command is PID 1")
    t.not_contains(alone, "sleep 3600", "without a target it does not see the app's processes")
    first = eph("alone")

    t.ok("debug", "target", "-n", ns, "--image=rkube.invalid/missing:1", "--image-pull-policy=Never", "-c",
         "missing", "--profile=general", "--", "true")
    waiting = lambda: (eph("missing").get("state") or {}).get("waiting", {}).get("reason") == "ErrImageNeverPull"
    t.true(poll(waiting, 60), "a debug container whose image is missing waits with ErrImageNeverPull",
           eph("missing"))
    # The pod was synced again meanwhile (the new debug container): an exited one would have restarted.
    t.eq((eph("alone").get("restartCount"), eph("alone").get("containerID"), eph("alone").get("state")),
         (0, first.get("containerID"), first.get("state")), "an exited debug container is not restarted")
    t.ok("delete", "pod", "target", "-n", ns, "--wait=false")


@scenario
def kubelet_static_pods(t: T) -> None:
    """(embedded) A manifest in the kubelet's --pod-manifest-path runs as a static pod: its mirror pod
    `<name>-<node>` appears in the API (kubernetes.io/config.mirror = the config hash, a controller reference to
    the Node) with the running pod's status and logs; `kubectl delete` of the mirror pod does not stop the static
    pod (the mirror comes back, the container is not restarted); removing the manifest stops the pod and its
    mirror goes"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    manifest = _fixture["manifests"] / "static-web.yaml"
    manifest.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "static-web", "namespace": ns,
                                                        "labels": {"app": "static-web"}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [
            {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", "echo static-hello; sleep 3600"]}]}}))
    name = f"static-web-{NODE}"
    try:
        t.true(poll(lambda: phase(t, ns, name) == "Running", 90), "the static pod's mirror shows it Running",
               t.run("get", "pods", "-n", ns, "-o", "wide").both() + "\n" + server_log(t))
        mirror = t.json("get", "pod", name, "-n", ns)
        ann = mirror["metadata"].get("annotations", {})
        t.eq((ann.get("kubernetes.io/config.source"), ann.get("kubernetes.io/config.mirror") == ann.get(
            "kubernetes.io/config.hash"), len(ann.get("kubernetes.io/config.hash", ""))), ("file", True, 32),
            "the mirror pod's annotations")
        owner = (mirror["metadata"].get("ownerReferences") or [{}])[0]
        node_uid = t.ok("get", "node", NODE, "-o", "jsonpath={.metadata.uid}")
        t.eq((owner.get("kind"), owner.get("name"), owner.get("uid"), owner.get("controller")),
             ("Node", NODE, node_uid, True), "the mirror pod is owned by the Node")
        t.eq(jget(mirror, "spec.nodeName"), NODE, "bound to the node")
        t.eq(t.ok("logs", name, "-n", ns).strip(), "static-hello", "kubectl logs of the static pod")
        first = jget(mirror, "status.containerStatuses")[0]

        t.ok("delete", "pod", name, "-n", ns, "--wait=false")
        back = lambda: (t.run("get", "pod", name, "-n", ns, "-o", "jsonpath={.metadata.uid}").out
                        not in ("", mirror["metadata"]["uid"]))
        t.true(poll(back, 60), "a deleted mirror pod is recreated", t.run("get", "pods", "-n", ns).both())
        t.true(poll(lambda: phase(t, ns, name) == "Running", 60), "the recreated mirror shows the pod Running",
               t.run("get", "pod", name, "-n", ns, "-o", "yaml").out[-1200:])
        again = t.json("get", "pod", name, "-n", ns)
        now = jget(again, "status.containerStatuses")[0]
        t.eq((now.get("containerID"), now.get("restartCount")), (first.get("containerID"), 0),
             "deleting the mirror pod did not restart the static pod")
    finally:
        manifest.unlink(missing_ok=True)
    gone = lambda: t.run("get", "pod", name, "-n", ns).rc != 0
    t.true(poll(gone, 90), "removing the manifest removes the mirror pod", t.run("get", "pods", "-n", ns).both())
    containers = lambda: [c for c in _fixture["containerd"].containers()
                          if c in (first.get("containerID") or "").removeprefix("containerd://")]
    t.true(poll(lambda: not containers(), 60), "and the static pod's container", containers())


def _millicores(q: str) -> float:
    """A CPU quantity as kubectl top prints it (`123m`, `1`) in millicores."""
    return float(q[:-1]) if q.endswith("m") else float(q) * 1000


@scenario
def kubelet_top_and_hpa(t: T) -> None:
    """(embedded) metrics.k8s.io from the kubelet's CRI stats: discovery lists NodeMetrics and PodMetrics;
    `kubectl top node` shows the node, `kubectl top pod` a CPU-bound pod near its 200m limit and an idle one near
    zero (also by label and per container); a PodMetrics object carries the pod's labels; a missing pod is
    upstream's 404; reading metrics needs RBAC (view grants it through metrics-server's aggregated role); the
    kubelet's own /stats/summary and /metrics/resource answer only its authorized callers, also through the
    apiserver's nodes/proxy (which view does not grant). Then a
    HorizontalPodAutoscaler on 50% CPU scales the busy Deployment from 1 to its maximum 3 with upstream's
    SuccessfulRescale event and TARGETS, and back to 1 once the pods are idle"""
    t = node_t(t)
    if t is None:
        return
    ns = t.namespace()
    resources = t.ok("api-resources", "--api-group=metrics.k8s.io", "--no-headers")
    t.match(resources, r"^nodes\s+metrics\.k8s\.io/v1beta1\s+false\s+NodeMetrics$", "NodeMetrics discovered")
    t.match(resources, r"^pods\s+metrics\.k8s\.io/v1beta1\s+true\s+PodMetrics$", "PodMetrics discovered")
    t.contains(t.ok("explain", "podmetrics.containers"), "Metrics for all containers are collected",
               "kubectl explain reads metrics-server's definitions from the OpenAPI documents")

    def deployment(name: str, command: str) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {
                             "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", command],
                                             "resources": {"requests": {"cpu": "100m"},
                                                           "limits": {"cpu": "200m"}}}]}}}}

    t.create(deployment("burn", "while :; do :; done"), ns)
    t.create(pod("idle", ["sleep", "3600"]), ns)
    wait_phase(t, ns, "idle", "Running")

    top_nodes = lambda: t.run("top", "node", NODE)
    t.true(poll(lambda: top_nodes().rc == 0, 60), "kubectl top node answers once the kubelet has two samples",
           top_nodes().both())
    row = t.row(t.table(top_nodes().out), NODE, "top node")
    t.match(row.get("CPU(cores)", ""), r"^\d+m?$", "the node's CPU")
    t.match(row.get("MEMORY(bytes)", ""), r"^\d+Mi$", "the node's memory")
    t.match(row.get("CPU(%)", ""), r"^\d+%$", "the node's CPU share of allocatable")

    def top_pods(*args: str) -> dict:
        r = t.run("top", "pod", "-n", ns, *args)
        return {row["NAME"]: row for row in t.table(r.out)} if r.rc == 0 and r.out.strip() else {}

    busy = lambda: next((r for n, r in top_pods().items() if n.startswith("burn-")), None)
    t.true(poll(lambda: busy() is not None and _millicores(busy()["CPU(cores)"]) >= 120, 60),
           "the CPU-bound pod shows its usage", t.run("top", "pod", "-n", ns).both())
    cpu = _millicores(busy()["CPU(cores)"])
    t.true(cpu <= 260, "the CPU-bound pod stays near its 200m limit", cpu)
    t.true(poll(lambda: "idle" in top_pods(), 30), "the idle pod has metrics", top_pods())
    t.true(_millicores(top_pods()["idle"]["CPU(cores)"]) < 20, "the idle pod uses almost no CPU", top_pods())
    t.eq([n.split("-")[0] for n in top_pods("-l", "app=burn")], ["burn"], "top pod -l selects by label")
    containers = t.ok("top", "pod", "idle", "-n", ns, "--containers")
    t.match(containers, r"^idle\s+c\s+\d+m\s+\d+Mi\s*$", "top pod --containers")
    metrics = json.loads(t.ok("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/idle"))
    t.eq((metrics["kind"], metrics["apiVersion"], metrics["metadata"]["name"], metrics["window"],
          [c["name"] for c in metrics["containers"]]),
         ("PodMetrics", "metrics.k8s.io/v1beta1", "idle", "10s", ["c"]), "a PodMetrics object")
    missing = t.fails("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/nope")
    t.contains(missing, 'pods "nope" not found', "metrics of a pod that does not exist")

    user = f"system:serviceaccount:{ns}:default"
    t.contains(t.fails("top", "pod", "-n", ns, "--as", user),
               'cannot list resource "pods" in API group "metrics.k8s.io"', "reading metrics needs RBAC")
    t.ok("create", "rolebinding", "viewers", "-n", ns, "--clusterrole=view", f"--serviceaccount={ns}:default")
    t.true(poll(lambda: t.run("top", "pod", "idle", "-n", ns, "--as", user).rc == 0, 15),
           "view grants reading metrics (system:aggregated-metrics-reader)",
           t.run("top", "pod", "idle", "-n", ns, "--as", user).both())

    # The kubelet's own endpoints on its HTTPS port: an administrator's certificate reads them (the kubelet
    # asks the apiserver whether it may get nodes/stats and nodes/metrics); no certificate, no answer.
    creds = Path(tempfile.mkdtemp(prefix="rkube-kubelet-client-"))
    for key, name in (("client-certificate-data", "crt"), ("client-key-data", "key")):
        data = t.ok("config", "view", "--raw", "-o", f"jsonpath={{.users[0].user.{key}}}")
        (creds / name).write_bytes(base64.b64decode(data))
    url = f"https://127.0.0.1:{_fixture['kubelet_port']}"
    curl = lambda path, *args: subprocess.run(["curl", "-sk", "--max-time", "10", *args, url + path],
                                              capture_output=True, text=True, timeout=20).stdout
    auth = ("--cert", str(creds / "crt"), "--key", str(creds / "key"))
    summary = json.loads(curl("/stats/summary", *auth) or "{}")
    t.eq(jget(summary, "node.nodeName"), NODE, "the kubelet's /stats/summary")
    t.true(any(p["podRef"]["name"] == "idle" for p in summary.get("pods", [])), "the summary lists the pods",
           summary.get("pods"))
    t.contains(curl("/metrics/resource", *auth), "\nnode_cpu_usage_seconds_total ", "/metrics/resource")
    t.eq(curl("/stats/summary"), "", "no answer without a client certificate")
    # The same through the apiserver's node proxy, which needs nodes/proxy (view does not grant it).
    proxied = json.loads(t.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary"))
    t.eq(jget(proxied, "node.nodeName"), NODE, "nodes/proxy reaches the kubelet's summary")
    t.contains(t.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/metrics/resource"),
               "# TYPE container_cpu_usage_seconds_total counter", "nodes/proxy reaches /metrics/resource")
    t.contains(t.fails("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary", "--as", user),
               "forbidden", "nodes/proxy needs its own grant")

    t.ok("autoscale", "deployment", "burn", "-n", ns, "--cpu-percent=50", "--min=1", "--max=3")
    replicas = lambda: t.run("get", "deployment", "burn", "-n", ns, "-o", "jsonpath={.spec.replicas}").out
    t.true(poll(lambda: replicas() == "3", 120), "the HPA scales the busy Deployment to its maximum",
           t.run("describe", "hpa", "burn", "-n", ns).both())
    events = t.ok("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler")
    t.contains(events, "New size: 3; reason: cpu resource utilization (percentage of request) above target",
               "SuccessfulRescale event")
    row = t.row(t.table(t.ok("get", "hpa", "burn", "-n", ns)), "burn", "get hpa")
    t.match(row.get("TARGETS", ""), r"^cpu: \d+%/50%$", "TARGETS shows the measured utilization")
    t.eq((row.get("MINPODS"), row.get("MAXPODS")), ("1", "3"), "get hpa bounds")
    # Idle pods: down to the minimum once scale-down needs no stabilization window.
    t.ok("patch", "hpa", "burn", "-n", ns, "--type=merge", "-p",
         json.dumps({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}))
    t.ok("set", "resources", "deployment", "burn", "-n", ns, "--requests=cpu=200m")
    t.ok("patch", "deployment", "burn", "-n", ns, "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/template/spec/containers/0/command", "value": ["sleep", "3600"]}]))
    t.true(poll(lambda: replicas() == "1", 150), "the HPA scales the idle Deployment back to its minimum",
           t.run("describe", "hpa", "burn", "-n", ns).both())
    t.ok("delete", "namespace", ns, "--wait=false")


REGISTRY_USER, REGISTRY_PASSWORD = "user", "pass"


def _registry(t: T) -> tuple[subprocess.Popen, str, Path]:
    """A distribution registry (v2; Debian's docker-registry) on 127.0.0.1:<free port>, plain HTTP, that wants
    a user and password (htpasswd, bcrypt): the process, its host:port and its directory."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    t.true(binary is not None, "the distribution registry is installed (apt-get install docker-registry)", binary)
    workdir = Path(tempfile.mkdtemp(prefix="rkube-registry-"))
    hashed = subprocess.run(["htpasswd", "-Bbn", REGISTRY_USER, REGISTRY_PASSWORD], capture_output=True,
                            text=True, timeout=30)
    t.eq(hashed.returncode, 0, f"htpasswd -Bbn (apache2-utils): {hashed.stderr}")
    (workdir / "htpasswd").write_text(hashed.stdout)
    host = f"127.0.0.1:{free_port()}"
    (workdir / "config.yml").write_text(json.dumps({  # JSON is YAML
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
        "http": {"addr": host},
        "auth": {"htpasswd": {"realm": "rkube", "path": str(workdir / "htpasswd")}},
    }))
    proc = subprocess.Popen([binary, "serve", str(workdir / "config.yml")], stderr=subprocess.STDOUT,
                            stdout=open(workdir / "registry.log", "wb"), start_new_session=True, cwd=str(workdir))
    atexit.register(stop_process, proc)

    def answers() -> str:
        return subprocess.run(["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                               f"http://{host}/v2/"], capture_output=True, text=True, timeout=10).stdout

    t.true(poll(lambda: proc.poll() is None and answers() == "401", 30),
           "the registry answers /v2/ with 401 without credentials",
           answers() + "\n" + tail(workdir / "registry.log"))
    return proc, host, workdir


@scenario
def kubelet_registry_pulls(t: T) -> None:
    """(embedded) the kubelet pulls from a real registry that wants credentials (the distribution registry on
    127.0.0.1 with htpasswd, plain HTTP by containerd's certs.d/<host>/hosts.toml, the node's busybox pushed
    with skopeo as :1, :2, :3): without a pull secret the pull is refused (ErrImagePull/ImagePullBackOff, a
    Failed event with the registry's 401); with a `kubectl create secret docker-registry` secret in
    imagePullSecrets the pod runs (Pulling and Successfully pulled events, the image in containerd); a
    ServiceAccount's imagePullSecrets are copied into a pod that names it and its pull succeeds; a secret with a
    wrong password fails to pull under imagePullPolicy Always; the refused pod stays refused"""
    t = node_t(t)
    if t is None:
        return
    data = t.server.data_dir
    registry, host, workdir = _registry(t)
    certs = data / "containerd" / "certs.d" / host
    try:
        # The node's busybox archive (docker save format, built from busybox-static) into the registry.
        archive = data / "containerd" / "images" / "busybox.tar"
        if not archive.is_file():
            archive = next(iter(sorted(data.rglob("busybox.tar"))), archive)
        t.true(archive.is_file(), "the managed containerd's busybox archive", str(archive))
        for tag in ("1", "2", "3"):
            push = subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                                   "--dest-creds", f"{REGISTRY_USER}:{REGISTRY_PASSWORD}", f"docker-archive:{archive}",
                                   f"docker://{host}/rkube/busybox:{tag}"],
                                  capture_output=True, text=True, timeout=120)
            t.eq(push.returncode, 0, f"skopeo copy to {host}/rkube/busybox:{tag}: {push.stdout}{push.stderr}")
        tags = subprocess.run(["curl", "-s", "--max-time", "10", "-u", f"{REGISTRY_USER}:{REGISTRY_PASSWORD}",
                               f"http://{host}/v2/rkube/busybox/tags/list"],
                              capture_output=True, text=True, timeout=20)
        t.eq(sorted(json.loads(tags.stdout or "{}").get("tags") or []), ["1", "2", "3"], "the registry's tags")
        # containerd (1.6, config_path = DATA_DIR/containerd/certs.d) reads hosts.toml at each pull: plain HTTP.
        # (It would use HTTP for a loopback registry anyway; a registry elsewhere needs this file.)
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "hosts.toml").write_text(f'server = "http://{host}"\n\n[host."http://{host}"]\n'
                                          f'  capabilities = ["pull", "resolve"]\n')

        ns = t.namespace()
        image = lambda tag: f"{host}/rkube/busybox:{tag}"

        def create(name: str, tag: str, policy: str = "IfNotPresent", **spec) -> None:
            t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                      "spec": {"terminationGracePeriodSeconds": 1, **spec, "containers": [
                          {"name": "c", "image": image(tag), "imagePullPolicy": policy,
                           "command": ["sleep", "3600"]}]}}, ns)

        waiting = lambda name: t.run("get", "pod", name, "-n", ns, "-o",
                                     "jsonpath={.status.containerStatuses[0].state.waiting.reason}").out
        refused = ("ErrImagePull", "ImagePullBackOff")

        def events(name: str) -> list[dict]:
            r = t.run("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
            return json.loads(r.out).get("items", []) if r.rc == 0 and r.out else []

        def failed(name: str, tag: str) -> str:
            """The message of the pod's Warning Failed event for its image, once there is one."""
            prefix = f'Failed to pull image "{image(tag)}"'
            found = lambda: next((e["message"] for e in events(name) if e.get("type") == "Warning"
                                  and e.get("reason") == "Failed" and e.get("message", "").startswith(prefix)), "")
            t.true(poll(lambda: found() != "", 60), f"{name}: a Warning Failed event `{prefix}: ...`",
                   json.dumps([(e.get("type"), e.get("reason"), e.get("message")) for e in events(name)], indent=1))
            return found()

        def running(name: str) -> None:
            ok = poll(lambda: phase(t, ns, name) == "Running", 90)
            t.true(ok, f"{name} reaches Running", json.dumps(jget(t.json("get", "pod", name, "-n", ns),
                                                                  "status.containerStatuses"), indent=1)
                   + "\n" + "\n".join(f"{e.get('reason')}: {e.get('message')}" for e in events(name))
                   + "\nthe registry's log:\n" + tail(workdir / "registry.log", 6))

        # a. No credentials: the registry refuses; containerd says so (containerd 1.6:
        # `... failed to resolve reference "IMAGE": pulling from host HOST failed with status code
        # [manifests 1]: 401 Unauthorized`).
        create("anonymous", "1")
        t.true(poll(lambda: waiting("anonymous") in refused, 60), f"no pull secret: waiting in {refused}",
               waiting("anonymous") + "\n" + server_log(t))
        msg = failed("anonymous", "1")
        print(f"    containerd on a pull without credentials: {msg}", flush=True)
        t.contains(msg, f'failed to resolve reference "{image(1)}"', "the runtime's error names the reference")
        t.contains(msg, "401 Unauthorized", "the registry's 401 (unauthorized)")
        t.eq(phase(t, ns, "anonymous"), "Pending", "the refused pod stays Pending")

        # b. A docker-registry secret in the pod's imagePullSecrets: the kubelet passes its credentials.
        t.ok("create", "secret", "docker-registry", "regcred", f"--docker-server={host}",
             f"--docker-username={REGISTRY_USER}", f"--docker-password={REGISTRY_PASSWORD}", "-n", ns)
        create("withsecret", "2", imagePullSecrets=[{"name": "regcred"}])
        running("withsecret")
        said = " | ".join(e.get("message", "") for e in events("withsecret"))
        t.contains(said, f'Pulling image "{image(2)}"', "a Pulling event")
        t.contains(said, f'Successfully pulled image "{image(2)}"', "a Pulled event")
        t.contains(_fixture["containerd"].ctr("images", "ls", "-q").stdout, image(2), "containerd has the image")

        # c. A ServiceAccount's imagePullSecrets: the ServiceAccount admission copies them into the pod.
        t.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller"},
                  "imagePullSecrets": [{"name": "regcred"}]}, ns)
        create("viaaccount", "3", serviceAccountName="puller")
        t.eq(t.json("get", "pod", "viaaccount", "-n", ns)["spec"].get("imagePullSecrets"), [{"name": "regcred"}],
             "the ServiceAccount admission copied the account's imagePullSecrets into the pod")
        running("viaaccount")
        said = " | ".join(e.get("message", "") for e in events("viaaccount"))
        t.contains(said, f'Successfully pulled image "{image(3)}"', "pulled with the account's secret")

        # d. A wrong password: refused, even for an image the node has, under imagePullPolicy Always.
        t.ok("create", "secret", "docker-registry", "badcred", f"--docker-server={host}",
             f"--docker-username={REGISTRY_USER}", "--docker-password=wrong", "-n", ns)
        create("wrongpass", "2", "Always", imagePullSecrets=[{"name": "badcred"}])
        t.true(poll(lambda: waiting("wrongpass") in refused, 60), f"a wrong password: waiting in {refused}",
               waiting("wrongpass"))
        t.contains(failed("wrongpass", "2"), "401 Unauthorized", "the registry's 401 for the wrong password")
        t.eq(phase(t, ns, "wrongpass"), "Pending", "the pod with the wrong password stays Pending")

        # e. The secrets do not fix the first pod retroactively: it names none.
        t.true(waiting("anonymous") in refused, "the pod without a pull secret is still refused",
               waiting("anonymous"))
        t.ok("delete", "namespace", ns, "--wait=false")
    finally:
        stop_process(registry)
        shutil.rmtree(certs, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


_pressure: dict = {}


@scenario
def kubelet_disk_pressure_eviction(t: T) -> None:
    """(embedded) the eviction manager on a node of its own whose kubelet directory is a 64 MiB tmpfs, with
    --eviction-hard nodefs.available<50%: a file filling the disk gives the Node DiskPressure=True and the
    node.kubernetes.io/disk-pressure:NoSchedule taint, and a pod bound there is refused (Failed, Evicted, "The
    node had condition: [DiskPressure]. "); once it is gone both go. Then a pod filling its emptyDir is evicted
    with upstream's status (Failed, Evicted, "The node was low on resource: ephemeral-storage. Threshold
    quantity: 32Mi, ...", DisruptionTarget) and event while a quiet pod runs on, and the disk is given back"""
    if t.server.etcd is not None:
        return
    workdir = Path(tempfile.mkdtemp(prefix="rkube-pressure-"))
    root = workdir / "kubelet-root"
    root.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(root)], capture_output=True,
                       text=True)
    t.eq(m.returncode, 0, f"mounting a tmpfs for the kubelet ({m.stderr.strip()})")
    _pressure["root"] = root
    atexit.register(_stop, _pressure)
    server = Server("embedded", workdir, None)
    server.node = True
    node = "pressure-node"
    server.extra_args = ["--own-containerd", "--proxy-mode", "none", "--cluster-dns-port", "0", "--node-name", node,
                         "--kubelet-port", str(free_port()), "--root-dir", str(root),
                         "--eviction-hard", "nodefs.available<50%", "--eviction-pressure-transition-period", "5s"]
    _pressure["server"] = server
    _pressure["containerd"] = ManagedContainerd(server.data_dir)
    server.start()
    t = T(server, t.scenario)

    def condition(ty: str) -> str:
        return t.run("get", "node", node, "-o", f"jsonpath={{.status.conditions[?(@.type==\"{ty}\")].status}}").out

    def taints() -> str:
        return t.run("get", "node", node, "-o", "jsonpath={.spec.taints}").out

    t.true(poll(lambda: condition("Ready") == "True", 90), "the node is Ready", condition("Ready"))
    t.eq(condition("DiskPressure"), "False", "no disk pressure at first")

    # Disk filled from outside any pod: the node says so and takes nothing new.
    filler = root / "filler"
    filler.write_bytes(b"\0" * (40 << 20))
    t.true(poll(lambda: condition("DiskPressure") == "True", 60), "DiskPressure=True", condition("DiskPressure"))
    t.true(poll(lambda: "node.kubernetes.io/disk-pressure" in taints(), 30), "the disk-pressure taint", taints())
    t.contains(taints(), '"effect":"NoSchedule"', "a NoSchedule taint")
    ns = t.namespace()
    # hostNetwork: this scenario is about disk, not the pod network.
    refused = pod("refused", ["sleep", "3600"], hostNetwork=True)
    refused["spec"]["nodeName"] = node
    t.create(refused, ns)
    obj = wait_phase(t, ns, "refused", "Failed")
    t.eq((obj["status"].get("reason"), obj["status"].get("message")),
         ("Evicted", "The node had condition: [DiskPressure]. "), "refused as upstream's eviction admission")
    filler.unlink()
    t.true(poll(lambda: condition("DiskPressure") == "False", 60), "DiskPressure=False once the disk is free",
           condition("DiskPressure"))
    t.true(poll(lambda: "disk-pressure" not in taints(), 30), "the taint goes with it", taints())

    # A pod filling its emptyDir is the one evicted; a quiet one runs on.
    t.create(pod("quiet", ["sleep", "3600"], hostNetwork=True), ns)
    hog = pod("hog", ["sh", "-c", "dd if=/dev/zero of=/data/fill bs=1M count=40; sleep 3600"], hostNetwork=True)
    hog["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    hog["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    t.create(hog, ns)
    wait_phase(t, ns, "quiet", "Running")
    obj = wait_phase(t, ns, "hog", "Failed", timeout=90)
    status = obj["status"]
    t.eq(status.get("reason"), "Evicted", "the hog's reason")
    t.match(status.get("message", ""), r"^The node was low on resource: ephemeral-storage\. Threshold quantity: "
            r"32Mi, available: \d+(Ki|Mi)?\. ", "upstream's eviction message")
    target = next((c for c in status.get("conditions", []) if c["type"] == "DisruptionTarget"), {})
    t.eq((target.get("status"), target.get("reason")), ("True", "TerminationByKubelet"), "DisruptionTarget")
    events = t.run("get", "events", "-n", ns, "--field-selector", "involvedObject.name=hog").out
    t.contains(events, "Evicted", "the Evicted event")
    t.eq(phase(t, ns, "quiet"), "Running", "the quiet pod runs on")
    t.true(poll(lambda: condition("DiskPressure") == "False", 60), "the disk is given back",
           condition("DiskPressure"))
    t.ok("delete", "namespace", ns, "--wait=false")


def _pids_available() -> int:
    """What the kubelet reads as pid.available: min(pid_max, threads-max) less the tasks running."""
    read = lambda n: int(Path(f"/proc/sys/kernel/{n}").read_text())
    tasks = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    return min(read("pid_max"), read("threads-max")) - tasks


_pid_pressure: dict = {}


def _own_node(t: T, fixture: dict, node: str, *flags: str) -> T:
    """Starts a server of its own that is node `node` (its own containerd under its data dir, no proxy, no
    DNS), with the kubelet `flags`; `fixture` keeps the server and containerd for `_stop`. A T against it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"rkube-{node}-"))
    atexit.register(_stop, fixture)
    server = Server("embedded", workdir, None)
    server.node = True
    server.extra_args = ["--own-containerd", "--proxy-mode", "none", "--cluster-dns-port", "0", "--node-name", node,
                         "--kubelet-port", str(free_port()), *flags]
    fixture["server"] = server
    fixture["containerd"] = ManagedContainerd(server.data_dir)
    server.start()
    return T(server, t.scenario)


@scenario
def kubelet_pid_pressure_eviction(t: T) -> None:
    """(embedded) pid.available on a node of its own whose --eviction-soft is 1,000 below what this machine has
    free (grace period 20s, --eviction-max-pod-grace-period 5) and --eviction-hard 3,000 below: a pod forking
    2,000 processes gives the Node PIDPressure=True (reason KubeletHasInsufficientPID) and the
    node.kubernetes.io/pid-pressure taint at once, but is evicted only once the soft threshold has been met for
    its grace period; then one forking 4,000 (the hard threshold) is evicted (Failed, Evicted, "The node was low
    on resource: pids. Threshold quantity: ..., available: ...", upstream's ranking by process count) while a
    quiet pod runs on; then the pressure goes"""
    if t.server.etcd is not None:
        return
    node = "pid-pressure-node"
    available = _pids_available()
    soft, hard = available - 1000, available - 3000
    try:
        t = _own_node(t, _pid_pressure, node,
                      "--eviction-hard", f"pid.available<{hard}", "--eviction-soft", f"pid.available<{soft}",
                      "--eviction-soft-grace-period", "pid.available=20s", "--eviction-max-pod-grace-period", "5",
                      "--eviction-pressure-transition-period", "5s")

        def condition(ty: str, field: str = "status") -> str:
            return t.run("get", "node", node, "-o",
                         f"jsonpath={{.status.conditions[?(@.type==\"{ty}\")].{field}}}").out

        taints = lambda: t.run("get", "node", node, "-o", "jsonpath={.spec.taints}").out
        t.true(poll(lambda: condition("Ready") == "True", 90), "the node is Ready", condition("Ready"))
        t.eq((condition("PIDPressure"), condition("PIDPressure", "reason")), ("False", "KubeletHasSufficientPID"),
             "no PID pressure at first")
        ns = t.namespace()
        t.create(pod("quiet", ["sleep", "3600"], hostNetwork=True), ns)
        wait_phase(t, ns, "quiet", "Running")

        def fork(name: str, n: int) -> dict:
            t.create(pod(name, ["sh", "-c", f"for i in $(seq {n}); do sleep 3600 & done; wait"], hostNetwork=True),
                     ns)
            t.true(poll(lambda: condition("PIDPressure") == "True", 90), f"PIDPressure=True with {name}'s processes",
                   (condition("PIDPressure"), _pids_available(), soft, hard))
            t.eq(condition("PIDPressure", "reason"), "KubeletHasInsufficientPID", "upstream's reason")
            return t.json("get", "pod", name, "-n", ns)

        # The soft threshold: the condition at once, the eviction only after its grace period.
        seen = fork("soft-forker", 2000)
        t.eq(seen["status"].get("phase"), "Running", "the soft threshold's grace period: not evicted yet")
        time.sleep(8)  # well inside the 20s grace period, which began before the condition showed
        t.eq(phase(t, ns, "soft-forker"), "Running", "8s later, still within the grace period: not evicted yet")
        t.true(poll(lambda: "node.kubernetes.io/pid-pressure" in taints(), 30), "the pid-pressure taint", taints())
        status = wait_phase(t, ns, "soft-forker", "Failed", timeout=120)["status"]
        t.eq(status.get("reason"), "Evicted", "the soft threshold's grace period run, the pod is evicted")
        t.true(poll(lambda: condition("PIDPressure") == "False", 90), "the pressure goes with the processes",
               (condition("PIDPressure"), _pids_available(), soft))
        # The hard threshold evicts at once.
        fork("forker", 4000)
        obj = wait_phase(t, ns, "forker", "Failed", timeout=90)
        status = obj["status"]
        t.eq(status.get("reason"), "Evicted", "the forker's reason")
        t.match(status.get("message", ""), r"^The node was low on resource: pids\. Threshold quantity: \d+k?, "
                r"available: \d+k?\. $", "upstream's eviction message")
        t.eq(phase(t, ns, "quiet"), "Running", "the quiet pod runs on")
        t.true(poll(lambda: condition("PIDPressure") == "False", 90), "the pressure goes with the processes",
               (condition("PIDPressure"), _pids_available(), hard))
        t.ok("delete", "namespace", ns, "--wait=false")
    finally:
        _stop(_pid_pressure)
        _pid_pressure.clear()


def _image_archive(path: Path, tag: str, payload: bytes) -> None:
    """A one-layer image (a file of `payload`) as a docker archive `ctr images import` takes, tagged `tag`."""
    import io
    import tarfile

    def tar_of(entries: list[tuple[str, bytes]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    layer = tar_of([("payload", payload)])
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/payload"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    path.write_bytes(tar_of([("layer.tar", layer), (config_name, config), ("manifest.json", manifest)]))


_image_gc: dict = {}


@scenario
def kubelet_image_garbage_collection(t: T) -> None:
    """(embedded) image garbage collection on a node of its own with --image-gc-high-threshold 1
    --image-gc-low-threshold 0 (always over: every unused image is wanted gone), --minimum-image-ttl-duration 30s
    and --image-gc-period 3s: an image imported into containerd that no container uses is removed once it is 30s
    old, while busybox (a running pod's image) and the sandbox image stay; since the disk cannot be freed down to
    0%, the Node gets upstream's FreeDiskSpaceFailed Warning ("Failed to garbage collect required amount of
    images. Attempted to free N bytes, but only found M bytes eligible to free."). The pod runs on the pod
    network through a bridge of this node's own while kubelet.py's node has its own: two nodes on one machine"""
    if t.server.etcd is not None:
        return
    node = "image-gc-node"
    victim = "rkube.local/gc-victim:1"
    try:
        t = _own_node(t, _image_gc, node, "--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0",
                      "--minimum-image-ttl-duration", "30s", "--image-gc-period", "3s")
        containerd, workdir = _image_gc["containerd"], t.server.data_dir.parent
        ready = lambda: t.run("get", "node", node, "-o",
                              "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}").out
        t.true(poll(lambda: ready() == "True", 90), "the node is Ready", ready())
        # busybox is protected for 30s after the kubelet first saw it; a running pod keeps it after that.
        # On the pod network: this node's bridge is its own (rkube-<hash of its directory>), beside the one
        # of kubelet.py's node, which has another pod range.
        ns = t.namespace()
        t.create(pod("keeper", ["sleep", "3600"]), ns)
        keeper = wait_phase(t, ns, "keeper", "Running")
        cidr = t.ok("get", "node", node, "-o", "jsonpath={.spec.podCIDR}").strip()
        ip = jget(keeper, "status.podIP") or ""
        t.true(bool(cidr) and bool(ip) and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr),
               "the pod has an address of its node's pod range", (ip, cidr))
        t.true(len(containerd.bridges()) == 1 and containerd.bridges()[0].startswith("rkube-"),
               "the node's own bridge", containerd.bridges())
        archive = workdir / "victim.tar"
        _image_archive(archive, victim, os.urandom(1 << 20))
        imported = containerd.ctr("images", "import", str(archive), timeout=120)
        t.eq(imported.returncode, 0, f"ctr images import: {imported.stdout}{imported.stderr}")
        tags = lambda: containerd.ctr("images", "ls", "-q").stdout.split()
        t.contains(tags(), victim, "containerd has the unused image")
        t.true(poll(lambda: victim not in tags(), 90), "the unused image is removed once 30s old", tags())
        t.contains(tags(), "docker.io/library/busybox:1.36", "the running pod's image stays")
        t.contains(tags(), "rkube.local/pause:3.10", "the sandbox image stays")

        def warnings() -> list[tuple[str, str]]:
            r = t.run("get", "events", "-n", "default", "--field-selector",
                      f"involvedObject.kind=Node,involvedObject.name={node},type=Warning", "-o", "json")
            items = json.loads(r.out).get("items", []) if r.rc == 0 and r.out else []
            return [(e.get("reason", ""), e.get("message", "")) for e in items]

        failed = lambda: [m for r, m in warnings() if r == "FreeDiskSpaceFailed"]
        t.true(poll(lambda: failed() != [], 30), "a FreeDiskSpaceFailed Warning on the Node", warnings())
        t.match(failed()[0], r"^Failed to garbage collect required amount of images\. Attempted to free \d+ bytes, "
                r"but only found \d+ bytes eligible to free\.$", "upstream's message")
        t.eq(phase(t, ns, "keeper"), "Running", "the pod runs on")
        t.ok("delete", "namespace", ns, "--wait=false")
    finally:
        _stop(_image_gc)
        _image_gc.clear()
