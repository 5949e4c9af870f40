"""Service cluster IP and node port allocation (upstream's ipallocator over IPAddress objects and the
portallocator bitmap): unique under concurrency, upstream's 422s for requested values, released on delete
and on type changes."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

from harness import T, Server, scenario, poll

RANGE = "10.96.0.0/16"


def svc(name: str, ty: str = "ClusterIP", cluster_ip: str | None = None, node_port: int | None = None) -> str:
    spec: dict = {"type": ty, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if node_port:
        spec["ports"][0]["nodePort"] = node_port
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})


def ip_address(t: T, ip: str) -> dict | None:
    r = t.run("get", "ipaddress", ip, "-o", "json")
    return json.loads(r.out) if r.rc == 0 else None


def create_parallel(t: T, ns: str, names: list[str], ty: str, kubeconfigs: list[str | None]) -> list:
    """Creates the Services at once, one kubectl per thread (round-robin over `kubeconfigs`)."""
    results: list = [None] * len(names)

    def one(i: int) -> None:
        extra = ["--kubeconfig", kubeconfigs[i % len(kubeconfigs)]] if kubeconfigs[i % len(kubeconfigs)] else []
        results[i] = t.run(*extra, "create", "-n", ns, "-f", "-", stdin=svc(names[i], ty), timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(names))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    return results


def check_distinct(t: T, ns: str, names: list[str], results: list) -> None:
    for name, r in zip(names, results):
        t.true(r is not None and r.rc == 0, f"service {name} created", r.both() if r else "no result")
    items = [s for s in t.json("get", "svc", "-n", ns)["items"] if s["metadata"]["name"] in names]
    ips = [s["spec"]["clusterIP"] for s in items]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in items]
    t.eq(len(set(ips)), len(names), f"{len(names)} distinct cluster IPs")
    t.eq(len(set(ports)), len(names), f"{len(names)} distinct node ports")
    for s in items:
        ip = s["spec"]["clusterIP"]
        a = ip_address(t, ip)
        t.true(a is not None, f"IPAddress {ip} exists", ip)
        ref = a["spec"]["parentRef"]
        t.eq(ref, {"group": "", "resource": "services", "namespace": ns, "name": s["metadata"]["name"]},
             f"IPAddress {ip}'s parentRef")
        t.true(30000 <= s["spec"]["ports"][0]["nodePort"] <= 32767, "node port in range",
               s["spec"]["ports"][0]["nodePort"])


@scenario
def service_alloc_concurrent_creates(t: T) -> None:
    """20 NodePort Services created at once by 20 kubectl processes get 20 distinct cluster IPs and node
    ports, each IP an IPAddress object (upstream's labels, the Service as parentRef); deleting them
    deletes the IPAddress objects."""
    ns = t.namespace()
    names = [f"par-{i}" for i in range(20)]
    results = create_parallel(t, ns, names, "NodePort", [None])
    check_distinct(t, ns, names, results)
    ip = t.ok("get", "svc", "par-0", "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
    a = ip_address(t, ip)
    t.eq(a["metadata"]["labels"], {"ipaddress.kubernetes.io/ip-family": "IPv4",
                                   "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"},
         "upstream's IPAddress labels")
    # The random pick leaves the low part of the range (10.96.0.1-10.96.1.0) to static requests.
    t.ok("delete", "svc", "--all", "-n", ns)
    t.true(poll(lambda: ip_address(t, ip) is None, 15), "IPAddress deleted with its Service", ip)
    t.ok("delete", "ns", ns, "--wait=false")


@scenario
def service_alloc_requested_values(t: T) -> None:
    """A requested cluster IP or node port in use, or out of range, is upstream's 422; a freed IP and a
    port freed by NodePort→ClusterIP can be taken again; headless and ExternalName Services hold no
    IPAddress; `kubernetes` holds 10.96.0.1 and the default ServiceCIDR is Ready."""
    ns = t.namespace()
    a = ip_address(t, "10.96.0.1")
    t.true(a is not None and a["spec"]["parentRef"]["name"] == "kubernetes", "kubernetes holds 10.96.0.1", a)
    cidr = t.json("get", "servicecidr", "kubernetes")
    t.eq(cidr["spec"]["cidrs"], [RANGE], "default ServiceCIDR")
    t.eq([c["status"] for c in cidr["status"]["conditions"] if c["type"] == "Ready"], ["True"],
         "default ServiceCIDR Ready")

    t.create(svc("fixed", cluster_ip="10.96.0.50"), ns)
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("taken", cluster_ip="10.96.0.50"))
    t.contains(err, 'The Service "taken" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.50"}: '
                    "failed to allocate IP 10.96.0.50: provided IP is already allocated", "IP in use: 422")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("outside", cluster_ip="10.0.0.5"))
    # 1.33's MultiCIDR allocator: no ServiceCIDR contains the address.
    t.contains(err, 'The Service "outside" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: '
                    "failed to allocate IP 10.0.0.5: the provided network does not match the current range",
               "IP outside the range: 422")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("bcast", cluster_ip="10.96.255.255"))
    t.contains(err, "failed to allocate IP 10.96.255.255: the provided network does not match the current range",
               "the broadcast address is never allocated")
    # The failed creates left nothing behind; deleting the holder frees the address for another.
    t.eq(ip_address(t, "10.0.0.5"), None, "no IPAddress for a rejected request")
    t.ok("delete", "svc", "fixed", "-n", ns)
    t.true(poll(lambda: ip_address(t, "10.96.0.50") is None, 15), "IPAddress released on delete", "")
    t.create(svc("reuse", cluster_ip="10.96.0.50"), ns)
    t.eq(ip_address(t, "10.96.0.50")["spec"]["parentRef"]["name"], "reuse", "the freed IP is taken again")

    # A Service that fails validation after the allocation gives the allocation back.
    bad = json.loads(svc("badport", cluster_ip="10.96.0.51"))
    bad["spec"]["ports"][0]["port"] = 0
    t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(bad))
    t.eq(ip_address(t, "10.96.0.51"), None, "allocation reverted when validation fails")

    t.create(svc("np1", "NodePort", node_port=30080), ns)
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("np2", "NodePort", node_port=30080))
    t.contains(err, 'The Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
                    "provided port is already allocated", "node port in use: 422")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("np3", "NodePort", node_port=8080))
    t.contains(err, 'The Service "np3" is invalid: spec.ports[0].nodePort: Invalid value: 8080: '
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
               "node port out of range: 422")
    # The rejected np2 did not keep an IP either: only np1 and reuse hold addresses in this namespace.
    held = [a for a in t.json("get", "ipaddress")["items"] if a["spec"]["parentRef"]["namespace"] == ns]
    t.eq(sorted(a["spec"]["parentRef"]["name"] for a in held), ["np1", "reuse"], "IPAddresses of the namespace")
    # NodePort→ClusterIP releases the port: another Service takes it.
    t.ok("patch", "svc", "np1", "-n", ns, "-p", '{"spec": {"type": "ClusterIP"}}')
    t.eq(t.ok("get", "svc", "np1", "-n", ns, "-o", "jsonpath={.spec.ports[0].nodePort}"), "", "node port dropped")
    t.create(svc("np4", "NodePort", node_port=30080), ns)
    # ClusterIP→NodePort allocates one; changing it takes the new one and frees the old.
    t.ok("patch", "svc", "np1", "-n", ns, "-p", '{"spec": {"type": "NodePort"}}')
    port = int(t.ok("get", "svc", "np1", "-n", ns, "-o", "jsonpath={.spec.ports[0].nodePort}"))
    t.true(30000 <= port <= 32767 and port != 30080, "ClusterIP→NodePort allocates a free port", port)
    t.ok("patch", "svc", "np1", "-n", ns, "--type", "json",
         "-p", '[{"op": "replace", "path": "/spec/ports/0/nodePort", "value": 30081}]')
    t.create(svc("np5", "NodePort", node_port=port), ns)
    err = t.fails("create", "-n", ns, "-f", "-", stdin=svc("np6", "NodePort", node_port=30081))
    t.contains(err, "provided port is already allocated", "the changed-to port is held")

    # Headless: no address at all; ExternalName: none either, and ClusterIP→ExternalName frees it.
    headless = json.loads(svc("headless"))
    headless["spec"]["clusterIP"] = "None"
    t.create(json.dumps(headless), ns)
    t.eq(t.ok("get", "svc", "headless", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"), "None", "headless")
    t.eq(ip_address(t, "None"), None, "no IPAddress for a headless Service")
    held = [a for a in t.json("get", "ipaddress")["items"] if a["spec"]["parentRef"]["name"] == "headless"]
    t.eq(held, [], "headless holds no IPAddress")
    t.create(svc("toext", cluster_ip="10.96.0.52"), ns)
    t.ok("patch", "svc", "toext", "-n", ns, "-p",
         '{"spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": "", "clusterIPs": null}}')
    t.true(poll(lambda: ip_address(t, "10.96.0.52") is None, 15), "ClusterIP→ExternalName releases the IP", "")
    t.ok("patch", "svc", "toext", "-n", ns, "-p",
         '{"spec": {"type": "ClusterIP", "externalName": null, "clusterIP": "10.96.0.52"}}')
    t.eq(ip_address(t, "10.96.0.52")["spec"]["parentRef"]["name"], "toext", "ExternalName→ClusterIP allocates")
    t.ok("delete", "ns", ns, "--wait=false")


@scenario
def service_alloc_two_servers_one_etcd(t: T) -> None:
    """(etcd) Two servers on one etcd: 20 Services created at once, alternately through each, get distinct
    cluster IPs and node ports (the IPAddress create and the guarded bitmap write are decided by etcd, not
    by either server's cache)."""
    if t.server.etcd is None:
        return
    workdir = Path(tempfile.mkdtemp(prefix="rkube-alloc-"))
    second = Server(t.server.backend, workdir, t.server.etcd)
    shutil.copytree(t.server.data_dir / "pki", second.data_dir / "pki")
    second.start()
    try:
        ns = t.namespace()
        names = [f"two-{i}" for i in range(20)]
        results = create_parallel(t, ns, names, "NodePort", [None, str(second.kubeconfig)])
        check_distinct(t, ns, names, results)
        t.ok("delete", "ns", ns, "--wait=false")
    finally:
        second.stop()
        shutil.rmtree(workdir, ignore_errors=True)
