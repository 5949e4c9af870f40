"""Cluster DNS (issue #18): `rkube dns` against the shared server, queried with a real DNS client (dig).

The DNS runs as its own process with a least-privilege identity (a user bound to a copy of CoreDNS's
`system:coredns` ClusterRole: list/watch only), listens on a free loopback port, and forwards names
outside the cluster domain to a fake upstream resolver this scenario runs on loopback (so forwarding is
checked without sending anything off this machine). Objects are made with stock kubectl."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

from harness import RKUBE_BIN, T, free_port, poll, scenario, stop_process, tail

FAKE_ANSWER = "192.0.2.77"
ROLE = "rkube-dns-scenario"
USER = "rkube-dns-scenario"


class FakeUpstream:
    """A UDP resolver on loopback answering every A question with FAKE_ANSWER (others: no records)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.questions: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            i, labels = 12, []
            while i < len(data) and data[i] != 0:
                n = data[i]
                labels.append(data[i + 1:i + 1 + n].decode(errors="replace"))
                i += 1 + n
            question = data[12:i + 5]
            if len(question) < i + 5 - 12:
                continue
            qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
            self.questions.append(".".join(labels))
            answers = b""
            if qtype == 1:
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(FAKE_ANSWER)
            header = data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if answers else 0, 0, 0)
            self.sock.sendto(header + question + answers, peer)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()


def _dig(port: int, *args: str) -> str:
    p = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+time=3", "+tries=1", *args],
                       capture_output=True, text=True, timeout=20)
    return p.stdout


def _short(port: int, name: str, qtype: str = "A", *extra: str) -> list[str]:
    return sorted(line for line in _dig(port, "+short", name, qtype, *extra).splitlines() if line and not line.startswith(";"))


def _status(port: int, name: str, qtype: str = "A") -> str:
    out = _dig(port, name, qtype)
    for line in out.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    return "no answer: " + out[-300:]


@scenario
def dns_service_records(t: T) -> None:
    """`rkube dns` with a list/watch-only identity: ClusterIP A (UDP, TCP), headless A of ready endpoints and endpoint hostnames, SRV of named ports, ExternalName CNAME chased upstream, PTR, pod names, NXDOMAIN with the SOA, forwarding, and Services/endpoints changes followed."""
    t.true(shutil.which("dig") is not None, "dig is installed (bind9-dnsutils, see .ci/run)", shutil.which("dig"))
    ns = t.namespace()
    zone = f"{ns}.svc.cluster.local"
    # The identity: a user bound to a copy of CoreDNS's ClusterRole (system:coredns in kubeadm).
    t.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": ROLE},
              "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                         "verbs": ["list", "watch"]},
                        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                         "verbs": ["list", "watch"]}]})
    t.ok("create", "clusterrolebinding", ROLE, f"--clusterrole={ROLE}", f"--user={USER}")
    workdir = Path(tempfile.mkdtemp(prefix="rkube-dns-"))
    kc = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
                         f"https://127.0.0.1:{t.server.port}", "--user", USER],
                        capture_output=True, text=True, timeout=30)
    t.eq(kc.returncode, 0, "rkube kubeconfig --user exits 0")
    kubeconfig = workdir / "dns.kubeconfig"
    kubeconfig.write_text(kc.stdout)

    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
              "spec": {"selector": {"app": "web"},
                       "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                 {"name": "dns", "port": 53, "protocol": "UDP"}]}}, ns)
    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
              "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}, ns)
    t.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
              "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
              "endpoints": [{"addresses": ["10.88.7.1"], "hostname": "db-0", "conditions": {"ready": True}},
                            {"addresses": ["10.88.7.2"], "conditions": {"ready": True}},
                            {"addresses": ["10.88.7.3"], "conditions": {"ready": False}}]}, ns)
    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
              "spec": {"type": "ExternalName", "externalName": "db.example.test"}}, ns)
    web_ip = t.json("get", "service", "web", "-n", ns)["spec"]["clusterIP"]

    upstream = FakeUpstream()
    port = free_port()
    log = workdir / "dns.log"
    proc = subprocess.Popen([str(RKUBE_BIN), "dns", "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}",
                             "--upstream", f"127.0.0.1:{upstream.port}"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t.last_cmd = f"dig @127.0.0.1 -p {port} +short web.{zone} A"
        t.true(poll(lambda: _short(port, f"web.{zone}") == [web_ip], 30),
               "the Service's ClusterIP is answered once the DNS has listed", f"{_short(port, f'web.{zone}')}\n{tail(log)}")
        t.eq(_short(port, f"web.{zone}", "A", "+tcp"), [web_ip], "the same over TCP")
        t.eq(_short(port, f"WEB.{ns.upper()}.svc.cluster.local"), [web_ip], "names are case-insensitive")
        ttl = _dig(port, "+noall", "+answer", f"web.{zone}", "A").split()
        t.eq(ttl[1] if len(ttl) > 1 else ttl, "5", "TTL 5 (CoreDNS kubernetes plugin default)")
        t.eq(_short(port, f"web.{zone}", "AAAA"), [], "no AAAA for an IPv4 Service")
        t.eq(_status(port, f"web.{zone}", "AAAA"), "NOERROR", "AAAA of an IPv4 Service is NODATA")

        t.eq(_short(port, f"db.{zone}"), ["10.88.7.1", "10.88.7.2"], "headless: the ready endpoints only")
        t.eq(_short(port, f"db-0.db.{zone}"), ["10.88.7.1"], "an endpoint by its hostname")
        t.eq(_short(port, f"10-88-7-2.db.{zone}"), ["10.88.7.2"], "an endpoint by its dashed address")

        t.eq(_short(port, f"_http._tcp.web.{zone}", "SRV"), [f"0 100 80 web.{zone}."], "SRV of a named TCP port")
        t.eq(_short(port, f"_dns._udp.web.{zone}", "SRV"), [f"0 100 53 web.{zone}."], "SRV of a named UDP port")
        t.eq(_short(port, f"web.{zone}", "SRV"), [f"0 50 53 web.{zone}.", f"0 50 80 web.{zone}."],
             "SRV of the bare Service name: every port")
        srv_full = _dig(port, "+noall", "+additional", f"_http._tcp.web.{zone}", "SRV")
        t.contains(srv_full, web_ip, "the SRV target's A record is in the additional section")
        t.eq(_short(port, f"_pg._tcp.db.{zone}", "SRV"),
             [f"0 50 5432 10-88-7-2.db.{zone}.", f"0 50 5432 db-0.db.{zone}."], "headless SRV: one target per endpoint")

        t.eq(_short(port, f"ext.{zone}", "CNAME"), ["db.example.test."], "ExternalName: a CNAME")
        t.eq(_dig(port, "+short", f"ext.{zone}", "A").split(), ["db.example.test.", FAKE_ANSWER],
             "ExternalName A: the CNAME and its target resolved upstream")

        ptr = sorted(x for x in _dig(port, "+short", "-x", web_ip).splitlines() if x)
        t.eq(ptr, [f"web.{zone}."], "PTR of the ClusterIP")
        t.eq(_short(port, f"10-88-7-9.{ns}.pod.cluster.local"), ["10.88.7.9"], "a pod name in an existing namespace")

        t.eq(_status(port, f"nope.{zone}"), "NXDOMAIN", "an unknown Service is NXDOMAIN")
        t.eq(_status(port, "web.no-such-namespace.svc.cluster.local"), "NXDOMAIN", "an unknown namespace is NXDOMAIN")
        auth = _dig(port, "+noall", "+authority", f"nope.{zone}", "A")
        t.contains(auth, "ns.dns.cluster.local. hostmaster.cluster.local.", "NXDOMAIN carries the zone's SOA")

        t.eq(_short(port, "anything.example.test"), [FAKE_ANSWER], "a name outside the cluster domain is forwarded")
        t.true("anything.example.test" in upstream.questions, "the upstream got the forwarded question",
               upstream.questions)
        print("    note: forwarding is checked against a loopback resolver; the host's own resolvers are not queried")

        # Changes are followed through the watches.
        t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late"},
                  "spec": {"ports": [{"port": 80}]}}, ns)
        late_ip = t.json("get", "service", "late", "-n", ns)["spec"]["clusterIP"]
        t.true(poll(lambda: _short(port, f"late.{zone}") == [late_ip], 15), "a Service created later appears",
               _short(port, f"late.{zone}"))
        t.ok("delete", "service", "late", "-n", ns)
        t.true(poll(lambda: _status(port, f"late.{zone}") == "NXDOMAIN", 15), "a deleted Service goes",
               _status(port, f"late.{zone}"))
        t.ok("patch", "endpointslice", "db-1", "-n", ns, "--type=json", "-p",
             json.dumps([{"op": "replace", "path": "/endpoints/1/conditions/ready", "value": False}]))
        t.true(poll(lambda: _short(port, f"db.{zone}") == ["10.88.7.1"], 15),
               "an endpoint that stops being ready leaves the headless answer", _short(port, f"db.{zone}"))
        t.true(proc.poll() is None, "rkube dns still runs", tail(log))
    finally:
        stop_process(proc, timeout=10)
        upstream.stop()
        t.run("delete", "clusterrolebinding", ROLE)
        t.run("delete", "clusterrole", ROLE)
        t.run("delete", "namespace", ns, "--wait=false")
        shutil.rmtree(workdir, ignore_errors=True)


def _logs_when_done(t: T, ns: str, name: str) -> str:
    from scenarios.kubelet import wait_phase
    wait_phase(t, ns, name, "Succeeded", timeout=90)
    return t.ok("logs", name, "-n", ns)


@scenario
def dns_on_the_node(t: T) -> None:
    """(embedded) `rkube server` running a node runs the cluster DNS on port 53: the kube-dns Service (10.96.0.10, no selector) with an EndpointSlice naming the node's address; ClusterFirst pods get it with the cluster search path and ndots:5 and resolve a Service name through it over the pod network; Default and None pods get the host's and their own dnsConfig."""
    from scenarios.kubelet import NODE, node_t, pod
    t = node_t(t)
    if t is None:
        return
    log = t.server.log.read_text()
    t.contains(log, "rkube runs the cluster DNS on port 53", "the server says it runs the cluster DNS")
    svc = t.json("get", "service", "kube-dns", "-n", "kube-system")
    t.eq(svc["spec"]["clusterIP"], "10.96.0.10", "kube-dns at kubeadm's 10.96.0.10")
    t.eq(svc["spec"].get("selector"), None, "kube-dns has no selector (the DNS is not a pod)")
    t.eq(sorted((p["name"], p["protocol"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]),
         [("dns", "UDP", 53, 53), ("dns-tcp", "TCP", 53, 53)], "kube-dns ports as upstream's addon")
    t.eq((svc["metadata"]["labels"].get("k8s-app"), svc["metadata"]["labels"].get("kubernetes.io/name")),
         ("kube-dns", "CoreDNS"), "kube-dns labels as upstream's addon")
    slices = t.json("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")["items"]
    t.eq(len(slices), 1, "one EndpointSlice for kube-dns")
    addresses = t.json("get", "node", NODE)["status"]["addresses"]
    node_ip = next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")
    endpoint = slices[0]["endpoints"][0]
    t.eq((endpoint["addresses"], endpoint.get("nodeName")), ([node_ip], NODE), "the endpoint is the node's address")
    t.true(node_ip != "127.0.0.1", "pods can reach the endpoint (not loopback)", node_ip)
    t.eq(sorted((p["name"], p["protocol"], p["port"]) for p in slices[0]["ports"]),
         [("dns", "UDP", 53), ("dns-tcp", "TCP", 53)], "the endpoint's ports are the DNS's")

    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}, ns)
    web_ip = t.json("get", "service", "web", "-n", ns)["spec"]["clusterIP"]
    # The DNS is asked at the node's address: without kube-proxy 10.96.0.10 does not route yet.
    script = f"cat /etc/resolv.conf; echo ---; nslookup web.{ns}.svc.cluster.local {node_ip}; true"
    t.create(pod("cluster-first", ["sh", "-c", script], "Never"), ns)
    t.create(pod("default", ["cat", "/etc/resolv.conf"], "Never", dnsPolicy="Default"), ns)
    t.create(pod("none", ["cat", "/etc/resolv.conf"], "Never", dnsPolicy="None",
                 dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["a.example"],
                            "options": [{"name": "ndots", "value": "2"}]}), ns)
    out = _logs_when_done(t, ns, "cluster-first")
    conf, _, lookup = out.partition("---")
    host_servers = [l.split()[1] for l in Path("/etc/resolv.conf").read_text().splitlines()
                    if l.startswith("nameserver") and len(l.split()) > 1]
    t.eq([l for l in conf.splitlines() if l.startswith("nameserver")], ["nameserver 10.96.0.10"],
         "ClusterFirst: the cluster DNS is the only nameserver")
    t.match(conf, rf"^search {ns}\.svc\.cluster\.local svc\.cluster\.local cluster\.local\b",
            "ClusterFirst: the cluster search path first")
    t.match(conf, r"^options ndots:5$", "ClusterFirst: ndots:5")
    t.contains(lookup, web_ip, "the pod resolves the Service name through the cluster DNS")
    default = _logs_when_done(t, ns, "default")
    for s in host_servers[:3]:
        t.contains(default, f"nameserver {s}", "Default: the host's nameservers")
    t.not_contains(default, "10.96.0.10", "Default: not the cluster DNS")
    none = _logs_when_done(t, ns, "none")
    t.contains(none, "nameserver 192.0.2.53", "None: the pod's nameserver")
    t.contains(none, "search a.example", "None: the pod's search")
    t.contains(none, "options ndots:2", "None: the pod's options")
    t.not_contains(none, "cluster.local", "None: nothing of the cluster's")
    t.ok("delete", "namespace", ns, "--wait=false")
