"""kube-proxy in iptables and nftables mode, end to end in network namespaces this file creates (no address
outside them): a "node" namespace that `rkube proxy --netns` programs, a client namespace and three backend
namespaces routed through it, each backend a small HTTP server answering its own name. Services and
EndpointSlices are made with stock kubectl; traffic goes over real packets through the kernel's rules.
Runs once (embedded backend): the store does not matter here."""

from __future__ import annotations

import os
import subprocess
import uuid

from harness import RKUBE_BIN, T, poll, scenario
from scenarios import kubelet

BACKENDS = 3
# A tiny HTTP server answering its name on :8080 (new connection per request, as clients open them).
SERVER = """
import http.server, sys
name = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(name))); self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
# N GETs of a URL, one connection each; prints one answer (or error) per line.
CLIENT = """
import sys, urllib.request
for _ in range(int(sys.argv[2])):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
    except Exception as e:
        print("error", type(e).__name__)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=check)


class Topology:
    """node ⟷ client (10.201.0.0/24) and node ⟷ backend i (10.202.i.0/24), all in fresh namespaces."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node = f"rkp-node-{tag}"
        self.client = f"rkp-cl-{tag}"
        self.backends = [f"rkp-be{i}-{tag}" for i in range(1, BACKENDS + 1)]
        self.servers: list[subprocess.Popen] = []
        self.node_ip = "10.201.0.1"
        self.backend_ips = [f"10.202.{i}.2" for i in range(1, BACKENDS + 1)]
        try:
            self._build(tag)
        except Exception:
            self.remove()
            raise

    def _link(self, tag: str, peer: str, idx: int, node_ip: str, peer_ip: str) -> None:
        a, b = f"rkpn{idx}{tag}", f"rkpp{idx}{tag}"
        sh("ip", "link", "add", a, "netns", self.node, "type", "veth", "peer", "name", b, "netns", peer)
        sh("ip", "-n", self.node, "addr", "add", f"{node_ip}/24", "dev", a)
        sh("ip", "-n", self.node, "link", "set", a, "up")
        sh("ip", "-n", peer, "addr", "add", f"{peer_ip}/24", "dev", b)
        sh("ip", "-n", peer, "link", "set", b, "up")
        sh("ip", "-n", peer, "link", "set", "lo", "up")
        sh("ip", "-n", peer, "route", "add", "default", "via", node_ip)

    def _build(self, tag: str) -> None:
        for ns in [self.node, self.client, *self.backends]:
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.node, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self._link(tag, self.client, 0, self.node_ip, "10.201.0.2")
        for i, be in enumerate(self.backends, start=1):
            self._link(tag, be, i, f"10.202.{i}.1", f"10.202.{i}.2")
            self.servers.append(subprocess.Popen(["ip", "netns", "exec", be, "python3", "-c", SERVER, be],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def get(self, url: str, n: int) -> list[str]:
        p = sh("ip", "netns", "exec", self.client, "python3", "-c", CLIENT, url, str(n), check=False)
        return p.stdout.split("\n")[:-1] if p.returncode == 0 else [f"error {p.stderr[-200:]}"]

    def remove(self) -> None:
        for s in self.servers:
            s.kill()
            s.wait(timeout=10)
        for ns in [self.node, self.client, *self.backends]:
            sh("ip", "netns", "del", ns, check=False)


def slice_manifest(ns: str, svc: str, ips: list[str]) -> str:
    eps = "".join(f"- addresses: [\"{ip}\"]\n  conditions: {{ready: true}}\n  nodeName: rkp-node\n" for ip in ips)
    return (f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {svc}-manual\n"
            f"  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {svc}\n"
            f"addressType: IPv4\nports:\n- name: \"80-8080\"\n  port: 8080\n  protocol: TCP\nendpoints:\n{eps}")


def proxy_kubeconfig(t: T) -> str:
    path = t.server.workdir / "kube-proxy.kubeconfig"
    if not path.exists():
        p = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
                            t.server.creds["server"], "--user", "system:kube-proxy"],
                           capture_output=True, text=True, timeout=30)
        t.eq(p.returncode, 0, f"rkube kubeconfig --user system:kube-proxy ({p.stderr[-300:]})")
        path.write_text(p.stdout)
    return str(path)


def rules_in(topo: Topology, mode: str) -> str:
    if mode == "iptables":
        return sh("ip", "netns", "exec", topo.node, "iptables-save", check=False).stdout
    return sh("ip", "netns", "exec", topo.node, "nft", "list", "ruleset", check=False).stdout


def through_the_proxy(t: T, mode: str) -> None:
    if t.server.etcd is not None:
        return
    ns = t.namespace()
    topo = Topology()
    proxy = None
    try:
        t.ok("create", "service", "nodeport", "web", "--tcp=80:8080", "-n", ns)
        t.ok("create", "-f", "-", stdin=slice_manifest(ns, "web", topo.backend_ips))
        svc = t.json("get", "service", "web", "-n", ns, "-o", "json")
        cluster_ip = svc["spec"]["clusterIP"]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        log = open(t.server.workdir / f"proxy-{mode}.log", "w")
        proxy = subprocess.Popen([str(RKUBE_BIN), "proxy", "--kubeconfig", proxy_kubeconfig(t), "--proxy-mode", mode,
                                  "--netns", topo.node, "--hostname-override", "rkp-node",
                                  "--cluster-cidr", "10.202.0.0/16"], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{cluster_ip}/"
        t.last_cmd = f"GET {url} from the client namespace ({mode})"
        seen: set[str] = set()

        def spread() -> bool:
            seen.update(a for a in topo.get(url, 10) if not a.startswith("error"))
            return seen == set(topo.backends)

        t.true(poll(spread, 45, 0.5), f"{mode}: the cluster IP reaches all {BACKENDS} endpoints", sorted(seen))
        answers = topo.get(url, 30)
        t.true(all(a in topo.backends for a in answers), f"{mode}: every request through the cluster IP is answered",
               answers)
        counts = {b: answers.count(b) for b in topo.backends}
        t.true(all(c > 0 for c in counts.values()), f"{mode}: traffic spreads over the 3 endpoints", counts)
        nurl = f"http://{topo.node_ip}:{node_port}/"
        t.last_cmd = f"GET {nurl} from the client namespace ({mode})"
        answers = topo.get(nurl, 10)
        t.true(all(a in topo.backends for a in answers), f"{mode}: the node port reaches the endpoints", answers)
        if mode == "iptables":
            t.contains(rules_in(topo, mode), "-A KUBE-SERVICES -d " + cluster_ip + "/32 -p tcp -m comment --comment \""
                       + ns + "/web:80-8080 cluster IP\" -m tcp --dport 80 -j KUBE-SVC-", "upstream's chain shape")
        else:
            rules = rules_in(topo, mode)
            t.contains(rules, f"{cluster_ip} . tcp . 80 : goto pick-tcp-{BACKENDS}", "the service-ips verdict map")
            t.contains(rules, f"{cluster_ip} . 80 . 0 : 10.202.", "the endpoint map")

        # ClientIP affinity with the Local external policy (all endpoints are on this node): every request
        # of one client lands on one endpoint, through the cluster IP and the node port.
        t.ok("create", "service", "nodeport", "sticky", "--tcp=80:8080", "-n", ns)
        t.ok("patch", "service", "sticky", "-n", ns, "-p",
             '{"spec": {"sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local"}}')
        t.ok("create", "-f", "-", stdin=slice_manifest(ns, "sticky", topo.backend_ips))
        sticky = t.json("get", "service", "sticky", "-n", ns, "-o", "json")["spec"]
        for target in (f"http://{sticky['clusterIP']}/", f"http://{topo.node_ip}:{sticky['ports'][0]['nodePort']}/"):
            t.last_cmd = f"GET {target} with ClientIP affinity ({mode})"
            got: list[str] = []

            def one_backend() -> bool:
                got[:] = topo.get(target, 12)
                return len(set(got)) == 1 and got[0] in topo.backends

            t.true(poll(one_backend, 30, 0.5), f"{mode}: ClientIP affinity keeps a client on one endpoint", got)

        # One endpoint removed: it stops receiving traffic.
        gone = topo.backends[0]
        t.ok("replace", "-f", "-", stdin=slice_manifest(ns, "web", topo.backend_ips[1:]))
        t.last_cmd = f"GET {url} after {gone}'s endpoint was removed ({mode})"

        last: list[str] = []

        def drained() -> bool:
            last[:] = topo.get(url, 20)
            return all(a in topo.backends[1:] for a in last)

        t.true(poll(drained, 30, 0.5), f"{mode}: a removed endpoint stops receiving traffic", last)
        # No endpoints: the cluster IP rejects at once (REJECT, not a time-out).
        t.ok("delete", "endpointslice", "web-manual", "-n", ns)
        t.last_cmd = f"GET {url} with no endpoints ({mode})"
        t.true(poll(lambda: topo.get(url, 1)[0] in ("error URLError", "error ConnectionRefusedError"), 30, 0.5),
               f"{mode}: a Service without endpoints refuses connections", topo.get(url, 1))
        t.ok("delete", "service", "web", "-n", ns)
        t.true(poll(lambda: cluster_ip not in rules_in(topo, mode), 30, 0.5),
               f"{mode}: a deleted Service's rules go", rules_in(topo, mode)[-600:])
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
            sh(str(RKUBE_BIN), "proxy", "--cleanup", "--netns", topo.node, check=False)
            left = rules_in(topo, mode)
            t.true("KUBE-" not in left and "kube-proxy" not in left, f"{mode}: rkube proxy --cleanup removes its rules",
                   left[-400:])
        topo.remove()
        t.run("delete", "namespace", ns, "--wait=false")


@scenario
def proxy_iptables_netns(t: T) -> None:
    """`rkube proxy --proxy-mode iptables` programs a node namespace: a client namespace reaches 3 backend
    namespaces through the cluster IP (spread over all 3) and the node port; a removed endpoint stops getting
    traffic, no endpoints refuses, a deleted Service's rules go, --cleanup removes the rest."""
    through_the_proxy(t, "iptables")


@scenario
def proxy_nftables_netns(t: T) -> None:
    """`rkube proxy --proxy-mode nftables` does the same through one `ip kube-proxy` nftables table."""
    through_the_proxy(t, "nftables")


@scenario
def proxy_ipvs_fails_fast(t: T) -> None:
    """`rkube proxy --proxy-mode ipvs` on a kernel without IPVS exits at once with a clear message."""
    if t.server.etcd is not None:
        return
    if os.path.exists("/proc/net/ip_vs"):
        print("note: this kernel has IPVS; the fail-fast check does not apply")
        return
    t.last_cmd = "rkube proxy --proxy-mode ipvs"
    p = subprocess.run([str(RKUBE_BIN), "proxy", "--kubeconfig", proxy_kubeconfig(t), "--proxy-mode", "ipvs"],
                       capture_output=True, text=True, timeout=60)
    t.true(p.returncode != 0, "ipvs mode exits non-zero without kernel support", p.returncode)
    t.contains(p.stderr, "the IPVS proxy mode needs the kernel's IPVS (ip_vs) support", "the message says why")


def node_proxy(t: T, mode: str) -> subprocess.Popen:
    """A standalone `rkube proxy` for the kubelet scenarios' node (this machine), as system:kube-proxy."""
    log = open(t.server.workdir / f"node-proxy-{mode}.log", "w")
    return subprocess.Popen([str(RKUBE_BIN), "proxy", "--kubeconfig", proxy_kubeconfig(t), "--proxy-mode", mode,
                             "--hostname-override", kubelet.NODE, "--cluster-cidr", kubelet.POD_CIDR],
                            stdout=log, stderr=subprocess.STDOUT)


@scenario
def proxy_pods_reach_a_service(t: T) -> None:
    """(embedded) with the kubelet: a Deployment of 3 busybox httpd pods behind a Service; client pods'
    `wget http://web` (the name through the cluster DNS at kube-dns's 10.96.0.10, itself reached through the
    proxy) answers from the pods, spread over them, in iptables and then nftables mode (each proxy removed
    with --cleanup after)"""
    t = kubelet.node_t(t)
    if t is None:
        return
    ns = t.namespace()
    t.ok("create", "deployment", "web", "-n", ns, "--image=busybox:1.36", "--replicas=3", "--",
         "sh", "-c", "echo $(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    t.ok("expose", "deployment", "web", "-n", ns, "--port=80", "--target-port=8080")
    avail = lambda: t.run("get", "deployment", "web", "-n", ns, "-o", "jsonpath={.status.availableReplicas}").out
    t.true(poll(lambda: avail() == "3", 90), "the Deployment becomes 3/3", t.run("get", "pods", "-n", ns).both())
    names = {p["metadata"]["name"] for p in t.json("get", "pods", "-n", ns, "-l", "app=web")["items"]}
    for mode in ("iptables", "nftables"):
        proxy = node_proxy(t, mode)
        try:
            client = f"client-{mode}"
            # Retries until the proxy has synced, then 12 fetches, one connection each. (`timeout`, not
            # wget's -T, which crashes Debian's busybox-static.)
            fetch = "timeout 3 wget -qO- http://web/"
            script = (f"for i in $(seq 30); do {fetch} && break; sleep 1; done; "
                      f"for i in $(seq 12); do {fetch} || echo failed; done")
            t.create(kubelet.pod(client, ["sh", "-c", script], "Never"), ns)
            kubelet.wait_phase(t, ns, client, "Succeeded", timeout=90)
            lines = t.ok("logs", client, "-n", ns).split()
            t.true(len(lines) == 13 and set(lines) <= names,
                   f"{mode}: every fetch through the Service is answered by a web pod", lines)
            t.true(len(set(lines)) >= 2, f"{mode}: the fetches spread over the pods", lines)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            sh(str(RKUBE_BIN), "proxy", "--cleanup", check=False)
    t.ok("delete", "namespace", ns, "--wait=false")
