"""PersistentVolumes and claims (the persistentvolume-binder controller): a claim binds to the smallest volume
that satisfies it, both objects record the binding as upstream's, a released volume follows its reclaim
policy, and a claim that cannot bind says why in upstream's events. No nodes needed."""

from __future__ import annotations

import os
import re
import shutil

from harness import T, poll, scenario

RWO = ["ReadWriteOnce"]


def _pv(name: str, size: str, *, labels: dict | None = None, policy: str = "Retain", path: str | None = None,
        cls: str | None = None, claim_ref: dict | None = None, node_affinity: dict | None = None) -> dict:
    spec: dict = {"capacity": {"storage": size}, "accessModes": RWO, "persistentVolumeReclaimPolicy": policy,
                  "hostPath": {"path": path or f"/mnt/rkube-conformance/{name}"}}
    if cls is not None:
        spec["storageClassName"] = cls
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    if node_affinity is not None:
        spec["nodeAffinity"] = node_affinity
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels or {}},
            "spec": spec}


def _pvc(name: str, size: str, *, selector: dict | None = None, volume: str | None = None,
         cls: str | None = None, annotations: dict | None = None) -> dict:
    spec: dict = {"accessModes": RWO, "resources": {"requests": {"storage": size}}}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if volume is not None:
        spec["volumeName"] = volume
    if cls is not None:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


def _phase(t: T, kind: str, name: str, ns: str | None = None) -> str:
    r = t.run("get", kind, name, *(["-n", ns] if ns else []), "-o", "jsonpath={.status.phase}")
    return r.out.strip() if r.rc == 0 else f"<{r.err.strip()}>"


def _settle_foreign_claims(t: T, ns: str) -> None:
    """Volumes are cluster-wide: an unbound claim another scenario left behind (its namespace still being
    deleted) could take this scenario's volumes. Give such claims a moment to go (best effort)."""
    def foreign_pending() -> bool:
        items = t.json("get", "pvc", "-A").get("items", [])
        return not any(c["metadata"]["namespace"] != ns and (c.get("status") or {}).get("phase") == "Pending"
                       for c in items)
    poll(foreign_pending, 30)


def _cleanup(t: T, ns: str, volumes: list[str], classes: list[str] = ()) -> None:
    t.run("delete", "namespace", ns, "--wait=false")
    if volumes:
        t.run("delete", "pv", *volumes, "--ignore-not-found", "--wait=false")
    if classes:
        t.run("delete", "storageclass", *classes, "--ignore-not-found")


@scenario
def volumes_static_binding(t: T) -> None:
    """claims bind to the smallest matching PersistentVolume (size, selector), get and describe show the
    binding both ways, an unsatisfiable claim stays Pending with FailedBinding, a deleted claim's Retain
    volume becomes Released"""
    ns = t.namespace()
    small, mid, big = f"{ns}-1g", f"{ns}-5g", f"{ns}-10g"
    try:
        _settle_foreign_claims(t, ns)
        t.create(_pv(small, "1Gi"))
        t.create(_pv(mid, "5Gi"))
        t.create(_pv(big, "10Gi", labels={"tier": "fast"}))
        for v in (small, mid, big):
            t.true(poll(lambda v=v: _phase(t, "pv", v) == "Available", 30), f"{v} becomes Available",
                   _phase(t, "pv", v))
        pv = t.json("get", "pv", small)
        t.true(bool(pv["status"].get("lastPhaseTransitionTime")), "status.lastPhaseTransitionTime is set",
               pv["status"])

        t.create(_pvc("data", "3Gi"), ns)
        t.true(poll(lambda: _phase(t, "pvc", "data", ns) == "Bound", 30), "the 3Gi claim is Bound",
               _phase(t, "pvc", "data", ns))
        out = t.ok("get", "pvc", "data", "-n", ns)
        t.headers(out, ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                        "VOLUMEATTRIBUTESCLASS", "AGE"], "kubectl get pvc")
        row = t.row(t.table(out), "data", "kubectl get pvc")
        t.eq((row["STATUS"], row["VOLUME"], row["CAPACITY"], row["ACCESS MODES"]), ("Bound", mid, "5Gi", "RWO"),
             "the 3Gi claim got the smallest volume that fits (5Gi)")
        out = t.ok("get", "pv", mid)
        row = t.row(t.table(out), mid, "kubectl get pv")
        t.eq((row["STATUS"], row["CLAIM"], row["RECLAIM POLICY"], row["CAPACITY"]),
             ("Bound", f"{ns}/data", "Retain", "5Gi"), "kubectl get pv shows the claim")

        claim = t.json("get", "pvc", "data", "-n", ns)
        pv = t.json("get", "pv", mid)
        ref = pv["spec"].get("claimRef") or {}
        t.eq({k: ref.get(k) for k in ("kind", "apiVersion", "namespace", "name", "uid")},
             {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": "data",
              "uid": claim["metadata"]["uid"]}, "the volume's claimRef")
        t.true(bool(ref.get("resourceVersion")), "claimRef.resourceVersion is set", ref)
        t.eq((pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/bound-by-controller"), "yes",
             "the volume is bound-by-controller")
        ann = claim["metadata"].get("annotations") or {}
        t.eq((ann.get("pv.kubernetes.io/bind-completed"), ann.get("pv.kubernetes.io/bound-by-controller")),
             ("yes", "yes"), "the claim's binding annotations")
        t.eq((claim["spec"].get("volumeName"), claim["status"].get("capacity"), claim["status"].get("accessModes")),
             (mid, {"storage": "5Gi"}, RWO), "the claim's volumeName, capacity and access modes")
        t.eq(pv["status"].get("phase"), "Bound", "the volume's phase")

        # A selector narrows the choice to labelled volumes, whatever their size.
        t.create(_pvc("fast", "1Gi", selector={"tier": "fast"}), ns)
        t.true(poll(lambda: _phase(t, "pvc", "fast", ns) == "Bound", 30), "the selector claim is Bound",
               _phase(t, "pvc", "fast", ns))
        t.eq(t.ok("get", "pvc", "fast", "-n", ns, "-o", "jsonpath={.spec.volumeName}"), big,
             "the selector claim got the labelled volume")

        # Nothing is large enough: Pending, and upstream's event says why.
        t.create(_pvc("huge", "50Gi"), ns)
        msg = "no persistent volumes available for this claim and no storage class is set"
        t.true(poll(lambda: msg in t.ok("get", "events", "-n", ns), 30), "FailedBinding event recorded",
               t.ok("get", "events", "-n", ns))
        t.match(t.ok("get", "events", "-n", ns),
                r"Normal\s+FailedBinding\s+persistentvolumeclaim/huge\s+" + msg, "kubectl get events")
        t.match(t.ok("describe", "pvc", "huge", "-n", ns),
                r"Normal\s+FailedBinding\s+.*persistentvolume-controller\s+" + msg, "kubectl describe pvc")
        t.eq(_phase(t, "pvc", "huge", ns), "Pending", "the 50Gi claim stays Pending")
        t.eq(_phase(t, "pv", small), "Available", "the 1Gi volume is still Available")

        # The claim goes; the Retain volume keeps its data and its claimRef, Released.
        t.ok("delete", "pvc", "data", "-n", ns)
        t.true(poll(lambda: _phase(t, "pv", mid) == "Released", 30), "the Retain volume becomes Released",
               _phase(t, "pv", mid))
        row = t.row(t.table(t.ok("get", "pv", mid)), mid, "kubectl get pv")
        t.eq((row["STATUS"], row["CLAIM"]), ("Released", f"{ns}/data"), "a Released volume still names its claim")
        # A new claim of the same name does not get it back: Released volumes are not offered.
        t.create(_pvc("data", "3Gi"), ns)
        t.true(poll(lambda: _phase(t, "pvc", "data", ns) == "Pending"
                    and "persistentvolumeclaim/data" in t.ok("get", "events", "-n", ns), 30),
               "the new claim waits", _phase(t, "pvc", "data", ns))
        t.eq(_phase(t, "pv", mid), "Released", "the Released volume stays Released")
    finally:
        _cleanup(t, ns, [small, mid, big])


@scenario
def volumes_prebound_and_reclaim_delete(t: T) -> None:
    """a claim naming its volume and a volume reserved for a claim bind to each other; reclaim policy Delete
    on hostPath volumes: outside /tmp the volume is Failed with upstream's VolumeFailedDelete, under /tmp the
    directory and the volume are deleted"""
    ns = t.namespace()
    keep, tmpv, reserved = f"{ns}-keep", f"{ns}-tmp", f"{ns}-reserved"
    # Unique per server: the two backends' passes run side by side on one machine.
    tmp_dir = f"/tmp/rkube-conformance-{ns}-{t.server.port}"
    try:
        _settle_foreign_claims(t, ns)
        os.makedirs(f"{tmp_dir}/sub", exist_ok=True)
        with open(f"{tmp_dir}/sub/file", "w") as f:
            f.write("data")
        t.create(_pv(keep, "1Gi", policy="Delete", path=f"/mnt/rkube-conformance/{keep}"))
        t.create(_pv(tmpv, "1Gi", policy="Delete", path=tmp_dir))
        t.create(_pv(reserved, "2Gi", claim_ref={"namespace": ns, "name": "wants-reserved"}))
        t.true(poll(lambda: _phase(t, "pv", reserved) == "Available", 30),
               "a volume reserved by claimRef (no uid) is Available", _phase(t, "pv", reserved))

        t.create(_pvc("c-keep", "1Gi", volume=keep), ns)
        t.create(_pvc("c-tmp", "1Gi", volume=tmpv), ns)
        t.create(_pvc("wants-reserved", "1Gi"), ns)
        for c in ("c-keep", "c-tmp", "wants-reserved"):
            t.true(poll(lambda c=c: _phase(t, "pvc", c, ns) == "Bound", 30), f"{c} is Bound",
                   _phase(t, "pvc", c, ns))
        t.eq(t.ok("get", "pvc", "wants-reserved", "-n", ns, "-o", "jsonpath={.spec.volumeName}"), reserved,
             "the reserved volume went to its claim")
        pv = t.json("get", "pv", reserved)
        t.eq(((pv["spec"].get("claimRef") or {}).get("uid"),
              (pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/bound-by-controller")),
             (t.json("get", "pvc", "wants-reserved", "-n", ns)["metadata"]["uid"], None),
             "a reservation gets the claim's uid, not bound-by-controller")
        ann = t.json("get", "pvc", "c-keep", "-n", ns)["metadata"].get("annotations") or {}
        t.eq((ann.get("pv.kubernetes.io/bind-completed"), ann.get("pv.kubernetes.io/bound-by-controller")),
             ("yes", None), "a claim that named its volume is bind-completed, not bound-by-controller")

        t.ok("delete", "pvc", "c-keep", "c-tmp", "-n", ns)
        t.true(poll(lambda: _phase(t, "pv", keep) == "Failed", 30), "the hostPath volume outside /tmp is Failed",
               _phase(t, "pv", keep))
        msg = f"host_path deleter only supports /tmp/.+ but received provided /mnt/rkube-conformance/{keep}"
        pv = t.json("get", "pv", keep)
        t.eq(pv["status"].get("message"), msg, "the Failed volume's status.message")
        row = t.row(t.table(t.ok("get", "pv", keep)), keep, "kubectl get pv")
        t.eq((row["STATUS"], row["CLAIM"], row["RECLAIM POLICY"]), ("Failed", f"{ns}/c-keep", "Delete"),
             "kubectl get pv shows it Failed")
        out = t.ok("describe", "pv", keep)
        t.match(out, r"^Message:\s+" + re.escape(msg) + "$", "describe pv: Message")
        t.match(t.ok("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={keep}"),
                r"Warning\s+VolumeFailedDelete\s+persistentvolume/" + keep + r"\s+host_path deleter only supports",
                "the VolumeFailedDelete event")

        t.true(poll(lambda: t.run("get", "pv", tmpv).rc != 0, 30), "the hostPath volume under /tmp is deleted",
               t.run("get", "pv", tmpv).both())
        t.true(not os.path.exists(tmp_dir), "its directory is removed", tmp_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        _cleanup(t, ns, [keep, tmpv, reserved])


@scenario
def volumes_claims_waiting(t: T) -> None:
    """a WaitForFirstConsumer class keeps its claim Pending with upstream's WaitForFirstConsumer event (and
    ProvisioningFailed once a node is selected, the class having no provisioner); an external provisioner's
    class gets ExternalProvisioning and the storage-provisioner annotations; a missing class ProvisioningFailed"""
    ns = t.namespace()
    local, external, vol = f"{ns}-local", f"{ns}-external", f"{ns}-local-1"
    try:
        _settle_foreign_claims(t, ns)
        t.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": local},
                  "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"})
        t.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": external},
                  "provisioner": "example.com/external"})
        affinity = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [f"{ns}-node"]}]}]}}
        t.create(_pv(vol, "1Gi", cls=local, node_affinity=affinity))
        t.true(poll(lambda: _phase(t, "pv", vol) == "Available", 30), "the local volume is Available",
               _phase(t, "pv", vol))

        t.create(_pvc("wait", "1Gi", cls=local), ns)
        wffc = "waiting for first consumer to be created before binding"
        t.true(poll(lambda: wffc in t.ok("get", "events", "-n", ns), 30), "WaitForFirstConsumer event",
               t.ok("get", "events", "-n", ns))
        t.match(t.ok("describe", "pvc", "wait", "-n", ns),
                r"Normal\s+WaitForFirstConsumer\s+.*persistentvolume-controller\s+" + wffc, "kubectl describe pvc")
        t.eq((_phase(t, "pvc", "wait", ns), _phase(t, "pv", vol)), ("Pending", "Available"),
             "the claim waits and the volume stays Available")

        # The scheduler's selected node (one that does not exist here): no volume can serve it, and the
        # class has no provisioner.
        t.ok("annotate", "pvc", "wait", "-n", ns, "volume.kubernetes.io/selected-node=nowhere")
        nomatch = "no volume plugin matched name: kubernetes.io/no-provisioner"
        t.true(poll(lambda: nomatch in t.ok("get", "events", "-n", ns), 30), "ProvisioningFailed event",
               t.ok("get", "events", "-n", ns))
        t.match(t.ok("get", "events", "-n", ns), r"Warning\s+ProvisioningFailed\s+persistentvolumeclaim/wait\s+"
                + nomatch, "kubectl get events")
        t.eq(_phase(t, "pvc", "wait", ns), "Pending", "still Pending")

        t.create(_pvc("ext", "1Gi", cls=external), ns)
        waiting = ("Waiting for a volume to be created either by the external provisioner 'example.com/external' "
                   "or manually by the system administrator. If volume creation is delayed, please verify that "
                   "the provisioner is running and correctly registered.")
        t.true(poll(lambda: waiting in t.ok("get", "events", "-n", ns), 30), "ExternalProvisioning event",
               t.ok("get", "events", "-n", ns))
        ann = t.json("get", "pvc", "ext", "-n", ns)["metadata"].get("annotations") or {}
        t.eq((ann.get("volume.kubernetes.io/storage-provisioner"),
              ann.get("volume.beta.kubernetes.io/storage-provisioner")),
             ("example.com/external", "example.com/external"), "the storage-provisioner annotations")
        t.eq(_phase(t, "pvc", "ext", ns), "Pending", "the external claim waits")

        t.create(_pvc("nosuch", "1Gi", cls=f"{ns}-missing"), ns)
        missing = f'storageclass.storage.k8s.io "{ns}-missing" not found'
        t.true(poll(lambda: missing in t.ok("get", "events", "-n", ns), 30), "ProvisioningFailed for a missing class",
               t.ok("get", "events", "-n", ns))
        t.eq(_phase(t, "pvc", "nosuch", ns), "Pending", "a claim of a missing class stays Pending")
    finally:
        _cleanup(t, ns, [vol], [local, external])
