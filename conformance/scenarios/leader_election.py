"""Several servers on one etcd: the controller manager leads through the `kube-system/kube-controller-manager`
Lease (upstream's leader election), so only one server runs the controllers, and another takes over when
the leader dies."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import T, Server, scenario, poll, jget, https

LEASE = ("lease", "kube-controller-manager", "-n", "kube-system")
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"


def holder(creds: dict) -> str:
    status, body = https(creds, "GET", LEASE_PATH)
    return (jget(json.loads(body), "spec.holderIdentity") or "") if status == 200 else ""


@scenario
def leader_failover_between_servers(t: T) -> None:
    """(etcd) A second server on the same etcd (own port and data dir, same CA) waits as a candidate; when the
    leading server is killed the second takes the kube-controller-manager Lease within the lease duration
    and its controllers work (a new namespace gets its `default` ServiceAccount); the first, restarted,
    leads again once the second stops."""
    if t.server.etcd is None:
        return
    t.true(poll(lambda: holder(t.server.creds) != "", 30), "the first server leads", "")
    first = holder(t.server.creds)
    t.eq(jget(t.json("get", *LEASE), "spec.leaseDurationSeconds"), 15, "upstream's lease duration")
    workdir = Path(tempfile.mkdtemp(prefix="rkube-second-"))
    second = Server(t.server.backend, workdir, t.server.etcd)
    # Same cluster, same CA and service account key: the first server's PKI.
    shutil.copytree(t.server.data_dir / "pki", second.data_dir / "pki")
    second.start()
    second_id = ""
    try:
        time.sleep(5)  # a few retry periods: a candidate must not take a lease that is being renewed
        t.eq(holder(second.creds), first, "the lease stays with the first server while it renews")
        t.server.stop()
        killed = time.monotonic()
        t.true(poll(lambda: holder(second.creds) not in ("", first), 60),
               "the second server took the lease after the first was killed", holder(second.creds))
        print(f"      fail-over: the second server leads {time.monotonic() - killed:.1f}s after the leader "
              "was killed (lease duration 15s)")
        second_id = holder(second.creds)
        # Its controllers run: a new namespace gets its default ServiceAccount.
        ns = f"failover-{int(time.time())}"
        https(second.creds, "POST", "/api/v1/namespaces",
              json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).encode(),
              headers={"Content-Type": "application/json"})
        t.true(poll(lambda: https(second.creds, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200,
                    30), "the new leader's service account controller works", ns)
        https(second.creds, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        if t.server.proc is None or t.server.proc.poll() is not None:
            t.server.start()
        second.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    # Later scenarios need running controllers: the restarted first server must lead again.
    t.true(poll(lambda: holder(t.server.creds) not in ("", second_id), 60),
           "the restarted first server leads again", holder(t.server.creds))
