"""A machine joins the cluster as a node with `rkube agent` (kubeadm's TLS bootstrap): the join command that
`rkube token create --print-join-command` prints pins the cluster CA and carries a bootstrap token; the agent
gets its client certificate through an auto-approved CSR, registers its Node on its own containerd (started
under its directory, as README's one command does), runs pods, and serves `kubectl logs` once an administrator
approves its serving certificate. Runs once (embedded backend): the store does not matter here, containerd
does."""

from __future__ import annotations

import atexit
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from harness import RKUBE_BIN, Server, T, free_port, jget, poll, scenario, tail
from node import ManagedContainerd

NODE = "joined-node"

_fixture: dict = {}


def _stop(fixture: dict | None = None) -> None:
    """Stops what a scenario started (once: at its end, and at exit should it not get there)."""
    _fixture = globals()["_fixture"] if fixture is None else fixture
    if _fixture.get("stopped"):
        return
    _fixture["stopped"] = True
    agent = _fixture.get("agent")
    if agent is not None and agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
    server = _fixture.get("server")
    if server is not None:
        server.stop()
    containerd = _fixture.get("containerd")
    if containerd is not None:
        containerd.stop()
    # The agent's kube-proxy programmed this machine's nftables.
    subprocess.run([str(RKUBE_BIN), "proxy", "--cleanup"], capture_output=True, timeout=60)


def _start_agent(root: Path, *args: str, fixture: dict | None = None, proxy_mode: str = "nftables") -> subprocess.Popen:
    _fixture = globals()["_fixture"] if fixture is None else fixture
    log = open(root.parent / "agent.log", "ab")
    # No backtrace on an error exit (RUST_BACKTRACE=1 from the harness would bury its message).
    env = dict(os.environ, RUST_LOG="info", RUST_LIB_BACKTRACE="0")
    # --eviction-hard without the disk signals, as kubelet.py's node: this machine's disk must not decide.
    cmd = [str(RKUBE_BIN), "agent", *args, "--root-dir", str(root), "--own-containerd", "--node-name", NODE,
           "--eviction-hard", "memory.available<100Mi", "--proxy-mode", proxy_mode,
           "--kubelet-port", str(_fixture["kubelet_port"])]
    log.write(f"\n===== {' '.join(cmd)}\n".encode())
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _fixture["agent"] = proc
    return proc


def _csrs_by(t: T, requestor: str, signer: str) -> list[dict]:
    items = t.json("get", "csr").get("items", [])
    return [c for c in items if jget(c, "spec.username") == requestor and jget(c, "spec.signerName") == signer]


def _ready(t: T) -> bool:
    r = t.run("get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
    return r.rc == 0 and r.out == "True"


@scenario
def node_joins_with_bootstrap_token(t: T) -> None:
    """(embedded) `rkube token create --print-join-command` prints `rkube agent --server URL --token T
    --ca-cert-hash sha256:H`; with a wrong hash the agent refuses the server before sending its token. With the
    printed command the machine joins: its client CSR (requestor system:bootstrap:<id>) is AutoApproved and
    issued, the Node becomes Ready, the agent's kubeconfig (mode 0600) is system:node:<name> and may not list
    Secrets, a pod bound to it runs to Succeeded; `kubectl logs` works once `kubectl certificate approve`
    approves the pending kubelet-serving CSR. The node's kube-proxy runs as kube-system/kube-proxy (a token the
    agent got with the bootstrap token; it may not read Secrets) and programs the cluster's Services. Restarted
    without a token, the agent uses its stored credentials and serving certificate (no new CSR)."""
    if t.server.etcd is not None:
        return
    try:
        _join(t)
    finally:
        # The agent's kube-proxy programs this machine: nothing of it may outlive the scenario.
        _stop()


def _join(t: T) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rkube-join-"))
    server = Server("embedded", workdir, None)
    _fixture["server"] = server
    _fixture["kubelet_port"] = free_port()
    root = workdir / "agent"
    _fixture["containerd"] = ManagedContainerd(root)
    atexit.register(_stop)
    server.start()
    t = T(server, t.scenario)

    t.last_cmd = "rkube token create --print-join-command"
    p = subprocess.run([str(RKUBE_BIN), "token", "create", "--print-join-command", "--kubeconfig",
                        str(server.kubeconfig)], capture_output=True, text=True, timeout=60)
    t.eq(p.returncode, 0, f"rkube token create exit code ({p.stderr[-300:]})")
    m = t.match(p.stdout.strip(), r"^rkube agent --server (https://\S+) --token ([a-z0-9]{6})\.([a-z0-9]{16}) "
                r"--ca-cert-hash (sha256:[0-9a-f]{64})$", "the join command")
    url, tid, token, pin = m.group(1), m.group(2), f"{m.group(2)}.{m.group(3)}", m.group(4)
    t.eq(url, server.creds["server"], "the join command names the server (it listens on loopback only)")

    bad = _start_agent(root, "--server", url, "--token", token, "--ca-cert-hash", "sha256:" + "0" * 64)
    try:
        rc = bad.wait(60)
    except subprocess.TimeoutExpired:
        bad.kill()
        rc = None
    t.true(rc not in (None, 0), "with a wrong CA hash the agent exits with an error", rc)
    log = (workdir / "agent.log").read_text()
    t.contains(log, "the server sent no CA certificate whose public key hash is sha256:000", "why it refused")
    t.eq(_csrs_by(t, f"system:bootstrap:{tid}", "kubernetes.io/kube-apiserver-client-kubelet"), [],
         "the token was never used")

    agent = _start_agent(root, "--server", url, "--token", token, "--ca-cert-hash", pin)
    t.true(poll(lambda: _ready(t) or agent.poll() is not None, 120) and agent.poll() is None,
           "the joined node becomes Ready", tail(workdir / "agent.log", 40))
    client = _csrs_by(t, f"system:bootstrap:{tid}", "kubernetes.io/kube-apiserver-client-kubelet")
    t.eq(len(client), 1, "one client CSR from the bootstrap token")
    approved = next((c for c in jget(client[0], "status.conditions", []) if c.get("type") == "Approved"), {})
    t.eq((approved.get("reason"), bool(jget(client[0], "status.certificate"))), ("AutoApproved", True),
         "the client CSR was approved automatically and issued")

    kubeconfig = root / "kubelet.kubeconfig"
    t.eq(stat.S_IMODE(kubeconfig.stat().st_mode), 0o600, "the agent's kubeconfig is private")
    admin, t.kubeconfig = t.kubeconfig, kubeconfig
    try:
        who = t.json("auth", "whoami")
        t.eq((jget(who, "status.userInfo.username"), jget(who, "status.userInfo.groups")),
             (f"system:node:{NODE}", ["system:nodes", "system:authenticated"]), "the agent's identity")
        t.contains(t.fails("get", "secrets", "-A"), 'User "system:node:joined-node" cannot list resource "secrets"',
                   "the node may not list Secrets")
    finally:
        t.kubeconfig = admin

    proxy_kubeconfig = root / "kube-proxy.kubeconfig"
    t.eq(stat.S_IMODE(proxy_kubeconfig.stat().st_mode), 0o600, "kube-proxy's kubeconfig is private")
    t.kubeconfig = proxy_kubeconfig
    try:
        who = t.json("auth", "whoami")
        t.eq(jget(who, "status.userInfo.username"), "system:serviceaccount:kube-system:kube-proxy",
             "the node's kube-proxy runs as kubeadm's service account")
        t.contains(t.fails("get", "secrets", "-A"), 'User "system:serviceaccount:kube-system:kube-proxy" cannot list',
                   "kube-proxy may not list Secrets")
        t.ok("get", "endpointslices", "-A")
    finally:
        t.kubeconfig = admin
    api_ip = t.ok("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").strip()
    nft = lambda: subprocess.run(["nft", "list", "table", "ip", "kube-proxy"], capture_output=True, text=True,
                                 timeout=30).stdout
    t.true(poll(lambda: f"{api_ip} . tcp . 443 : goto pick-tcp-" in nft(), 60),
           "the joined node's kube-proxy programs the kubernetes Service", nft()[-600:] + tail(workdir / "agent.log", 20))

    serving_csrs = lambda: _csrs_by(t, f"system:node:{NODE}", "kubernetes.io/kubelet-serving")
    t.true(poll(lambda: bool(serving_csrs()), 30), "the kubelet asks for a serving certificate", t.ok("get", "csr"))
    serving = serving_csrs()
    t.eq(len(serving), 1, "one serving CSR")
    t.eq(jget(serving[0], "status.conditions"), None, "serving certificates are not approved automatically")

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "joined", "namespace": "default"},
           "spec": {"nodeName": NODE, "hostNetwork": True, "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "c", "image": "busybox:1.36", "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", "echo hello from the joined node"]}]}}
    t.create(json.dumps(pod))
    phase = lambda: t.run("get", "pod", "joined", "-o", "jsonpath={.status.phase}").out
    t.true(poll(lambda: phase() == "Succeeded", 90), "the pod runs to Succeeded on the joined node",
           t.run("get", "pod", "joined", "-o", "json").out[-1500:])
    t.true(t.run("logs", "joined").rc != 0, "no logs before the serving certificate is approved", "exit 0")
    name = serving[0]["metadata"]["name"]
    t.eq(t.ok("certificate", "approve", name).strip(),
         f"certificatesigningrequest.certificates.k8s.io/{name} approved", "approve the serving CSR")
    logs = lambda: t.run("logs", "joined").out.strip() == "hello from the joined node"
    t.true(poll(logs, 60), "kubectl logs reaches the joined node", t.run("logs", "joined").both())

    agent.send_signal(signal.SIGTERM)
    agent.wait(30)
    again = _start_agent(root)
    t.true(poll(lambda: "uses the credentials in" in (workdir / "agent.log").read_text().split("=====")[-1], 60)
           and again.poll() is None, "restarted without a token, the agent uses its stored credentials",
           tail(workdir / "agent.log", 30))
    t.true("runs no kube-proxy" not in (workdir / "agent.log").read_text().split("=====")[-1],
           "restarted, the agent runs kube-proxy with its stored token", tail(workdir / "agent.log", 30))
    t.true(poll(lambda: t.run("logs", "joined").out.strip() == "hello from the joined node", 60),
           "the restarted kubelet serves logs with its stored serving certificate",
           t.run("logs", "joined").both() + "\n" + tail(workdir / "agent.log", 30))
    t.eq((len(_csrs_by(t, f"system:bootstrap:{tid}", "kubernetes.io/kube-apiserver-client-kubelet")),
          len(_csrs_by(t, f"system:node:{NODE}", "kubernetes.io/kubelet-serving"))), (1, 1),
         "no new CSRs after the restart")
    t.run("delete", "pod", "joined", "--wait=false")


_rotation: dict = {}


def _cert_of(kubeconfig: Path) -> dict:
    """The serial and notAfter (epoch seconds) of the client certificate in a kubeconfig the agent wrote."""
    import base64
    import email.utils
    import yaml  # PyYAML, which the Python kubernetes client brings
    data = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["client-certificate-data"]
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-enddate"], input=base64.b64decode(data),
                         capture_output=True, timeout=30).stdout.decode()
    fields = dict(line.split("=", 1) for line in out.split("\n") if "=" in line)
    return {"serial": fields.get("serial", ""),
            "not_after": email.utils.parsedate_to_datetime(fields.get("notAfter", "").replace("GMT", "+0000"))
            .timestamp() if fields.get("notAfter") else 0.0}


@scenario
def node_client_certificate_rotation(t: T) -> None:
    """(embedded) A joined node renews its client certificate before it expires, as upstream's kubelet with
    rotateCertificates: on a server with --cluster-signing-duration 2m (certificates valid from 5 minutes back,
    as upstream's signer backdates them, so renewal comes 70-90% into that), the agent posts a CSR as
    system:node:<name> itself, the csrapproving controller approves it (AutoApproved: the node may renew its own
    identity, selfnodeclient), the agent's kubeconfig gets the new certificate (still system:node:<name>), and
    after the first certificate has expired the node still renews its Lease and runs a pod: its connections
    moved to the new certificate. The serving CSR posted at the start survives the rotation's closed
    connections: approved afterwards, `kubectl logs` reaches the kubelet"""
    if t.server.etcd is not None:
        return
    workdir = Path(tempfile.mkdtemp(prefix="rkube-rotation-"))
    server = Server("embedded", workdir, None)
    server.extra_args = ["--cluster-signing-duration", "2m"]
    _rotation["server"] = server
    _rotation["kubelet_port"] = free_port()
    root = workdir / "agent"
    _rotation["containerd"] = ManagedContainerd(root)
    atexit.register(_stop, _rotation)
    try:
        server.start()
        t = T(server, t.scenario)
        p = subprocess.run([str(RKUBE_BIN), "token", "create", "--print-join-command", "--kubeconfig",
                            str(server.kubeconfig)], capture_output=True, text=True, timeout=60)
        t.eq(p.returncode, 0, f"rkube token create exit code ({p.stderr[-300:]})")
        join = p.stdout.strip().split()[2:]
        agent = _start_agent(root, *join, fixture=_rotation, proxy_mode="none")
        t.true(poll(lambda: _ready(t) or agent.poll() is not None, 120) and agent.poll() is None,
               "the joined node becomes Ready", tail(workdir / "agent.log", 40))
        kubeconfig = root / "kubelet.kubeconfig"
        first = _cert_of(kubeconfig)
        left = first["not_after"] - time.time()
        t.true(0 < left <= 125, "the first certificate lives --cluster-signing-duration (2m) from its issue", left)

        renewals = lambda: _csrs_by(t, f"system:node:{NODE}", "kubernetes.io/kube-apiserver-client-kubelet")
        t.true(poll(lambda: any(jget(c, "status.certificate") for c in renewals()), 120),
               "the node posts a CSR for its own identity and it is issued",
               t.ok("get", "csr") + tail(workdir / "agent.log", 20))
        renewal = next(c for c in renewals() if jget(c, "status.certificate"))
        approved = next((c for c in jget(renewal, "status.conditions", []) if c.get("type") == "Approved"), {})
        t.eq(approved.get("reason"), "AutoApproved", "the renewal is approved by the csrapproving controller")
        t.true(poll(lambda: _cert_of(kubeconfig)["serial"] != first["serial"], 30),
               "the agent's kubeconfig holds the new certificate", (first, _cert_of(kubeconfig)))
        t.contains((workdir / "agent.log").read_text(), "rotated the client certificate", "the agent says so")
        admin, t.kubeconfig = t.kubeconfig, kubeconfig
        try:
            t.eq(jget(t.json("auth", "whoami"), "status.userInfo.username"), f"system:node:{NODE}",
                 "the new certificate is the same node")
        finally:
            t.kubeconfig = admin

        # The serving CSR the kubelet posted at its start waited through the rotation (its watch was on a
        # connection the rotation closed): approved now, the kubelet serves with it.
        def approve_serving() -> int:
            """Approves the kubelet's pending serving CSRs (it renews them too, each needing an approval)."""
            pending = [c for c in _csrs_by(t, f"system:node:{NODE}", "kubernetes.io/kubelet-serving")
                       if not jget(c, "status.conditions")]
            for csr in pending:
                t.run("certificate", "approve", csr["metadata"]["name"])
            return len(pending)

        t.true(approve_serving() >= 1, "the kubelet asked for a serving certificate", t.ok("get", "csr"))

        # Past the first certificate's expiry, the node still talks to the apiserver.
        time.sleep(max(0.0, first["not_after"] - time.time()) + 5)
        expired = time.time()
        renew_time = lambda: t.run("get", "lease", NODE, "-n", "kube-node-lease", "-o",
                                   "jsonpath={.spec.renewTime}").out
        import datetime
        parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else 0.0
        t.true(poll(lambda: parse(renew_time()) > expired, 40),
               "the node renews its Lease after its first certificate expired",
               renew_time() + "\n" + tail(workdir / "agent.log", 20))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after-rotation", "namespace": "default"},
               "spec": {"nodeName": NODE, "hostNetwork": True, "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{"name": "c", "image": "busybox:1.36", "imagePullPolicy": "Never",
                                        "command": ["echo", "rotated"]}]}}
        t.create(json.dumps(pod))
        phase = lambda: t.run("get", "pod", "after-rotation", "-o", "jsonpath={.status.phase}").out
        t.true(poll(lambda: phase() == "Succeeded", 90), "a pod bound to the node runs to Succeeded",
               t.run("get", "pod", "after-rotation", "-o", "json").out[-1500:] + tail(workdir / "agent.log", 20))
        t.true(poll(lambda: approve_serving() >= 0 and t.run("logs", "after-rotation").out.strip() == "rotated", 60),
               "kubectl logs reaches the kubelet, serving with its approved certificate",
               t.run("logs", "after-rotation").both() + "\n" + tail(workdir / "agent.log", 20))
        t.true(agent.poll() is None, "the agent runs on", tail(workdir / "agent.log", 20))
    finally:
        _stop(_rotation)
