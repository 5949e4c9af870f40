"""The control plane as separate processes, as upstream deploys it: `rkube server --controller-manager=false
--scheduler=false` serves the API only; `rkube controller-manager --kubeconfig F` and `rkube scheduler
--kubeconfig F` run apart with kubeconfigs for upstream's identities (system:kube-controller-manager,
system:kube-scheduler) and nothing more, and the cluster works: the controller manager's own identity may
only watch, so pods appearing proves each controller writes as its kube-system service account (tokens
through TokenRequest). Runs once (embedded backend): the backend does not matter here."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import KUBECTL, RKUBE_BIN, Server, T, kubectl_env, poll, scenario, stop_process


@scenario
def standalone_controller_manager_and_scheduler(t: T) -> None:
    """(embedded) an API-only server plus standalone `rkube controller-manager` and `rkube scheduler` with
    least-privilege kubeconfigs: a Deployment becomes 2/2 on hollow nodes, both Leases are held by the
    standalone processes, a new namespace gets its ServiceAccount and kube-root-ca.crt."""
    if t.server.etcd is not None:
        return
    workdir = Path(tempfile.mkdtemp(prefix="rkube-standalone-"))
    server = Server("embedded", workdir, None)
    server.extra_args = ["--controller-manager=false", "--scheduler=false", "--hollow-nodes", "2"]
    procs: list[subprocess.Popen] = []
    env = kubectl_env(server.cache_dir)

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", str(server.kubeconfig), *args], capture_output=True,
                              text=True, timeout=30, env=env)

    def holder(lease: str) -> str:
        r = kubectl("get", "lease", lease, "-n", "kube-system", "-o", "jsonpath={.spec.holderIdentity}")
        return r.stdout if r.returncode == 0 else ""

    try:
        server.start()
        url = f"https://127.0.0.1:{server.port}"
        # The API-only server runs no controller: no Lease is taken, no pod is created.
        kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
        t.eq((holder("kube-controller-manager"), holder("kube-scheduler")), ("", ""),
             "no controller manager or scheduler runs in the API-only server")
        t.eq(kubectl("get", "pods", "-o", "name").stdout.strip(), "", "no pods without a controller manager")
        for component, user in [("controller-manager", "system:kube-controller-manager"),
                                ("scheduler", "system:kube-scheduler")]:
            kc = workdir / f"{component}.kubeconfig"
            out = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(server.data_dir), "--server", url,
                                  "--user", user], capture_output=True, text=True, timeout=30)
            t.true(out.returncode == 0, f"rkube kubeconfig --user {user}", out.stderr)
            kc.write_text(out.stdout)
            log = open(workdir / f"{component}.log", "ab")
            procs.append(subprocess.Popen([str(RKUBE_BIN), component, "--kubeconfig", str(kc)], stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))

        def available() -> bool:
            r = kubectl("get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}")
            return r.stdout == "2"
        t.true(poll(available, 60), "the Deployment becomes 2/2 with the standalone processes",
               kubectl("get", "deployment,rs,pods", "-o", "wide").stdout
               + (workdir / "controller-manager.log").read_text()[-2000:])
        pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
        t.true(all(p["spec"].get("nodeName", "").startswith("hollow-node-") for p in pods),
               "the standalone scheduler placed the pods", [p["spec"].get("nodeName") for p in pods])
        for lease in ("kube-controller-manager", "kube-scheduler"):
            h = holder(lease)
            t.true(h != "" and not h.endswith((server.data_dir / "instance-id").read_text().strip()),
                   f"the standalone process holds the {lease} Lease", h)
        kubectl("create", "namespace", "standalone-ns")
        t.true(poll(lambda: kubectl("get", "serviceaccount", "default", "-n", "standalone-ns").returncode == 0
                    and kubectl("get", "configmap", "kube-root-ca.crt", "-n", "standalone-ns").returncode == 0, 30),
               "a new namespace gets its default ServiceAccount and kube-root-ca.crt", "")
        ca = kubectl("get", "configmap", "kube-root-ca.crt", "-n", "standalone-ns", "-o",
                     "jsonpath={.data.ca\\.crt}").stdout
        t.eq(ca.strip(), (server.data_dir / "pki" / "ca.crt").read_text().strip(),
             "kube-root-ca.crt is the cluster CA (from the kubeconfig)")
    finally:
        for p in procs:
            stop_process(p)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
