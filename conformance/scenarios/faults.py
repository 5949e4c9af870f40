"""Faults and overload: kill -9 under write load, etcd paused and killed, a restart on a store of
100,000 objects, the in-flight (429) and request-timeout (504) answers.

Every check counts what it saw and prints the figures (restart-to-ready, outage timings) on lines that
start with `      ·`, so a CI log carries them; the assertions are about outcomes (nothing acknowledged is lost,
every request answered within the request timeout), never about how fast.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from run import RKUBE_BIN, Etcd, Failure, Server, T, load_creds, poll, scenario


def report(line: str) -> None:
    print(f"      · {line}", flush=True)


class Conn:
    """One persistent HTTPS connection with a kubeconfig's client certificate (reconnects when dropped)."""

    def __init__(self, creds: dict, timeout: float = 75.0):
        self.creds = creds
        self.timeout = timeout
        self.conn: http.client.HTTPSConnection | None = None

    def _connect(self) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context(cafile=str(self.creds["ca"]))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(self.creds["cert"]), str(self.creds["key"]))
        u = urllib.parse.urlparse(self.creds["server"])
        return http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=self.timeout)

    def request(self, method: str, path: str, body: dict | bytes | None = None,
                headers: dict | None = None) -> tuple[int, str, dict]:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        h = {"Accept": "application/json", "Content-Type": "application/json"}
        h.update(headers or {})
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=h)
            except (ssl.SSLError, ConnectionError, http.client.HTTPException):
                # The server closes idle keep-alive connections (as upstream, after 90 s): a request that
                # could not even be sent on a reused one is sent again on a new one, as HTTP clients do.
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            try:
                r = self.conn.getresponse()
                text = r.read().decode(errors="replace")
                return r.status, text, {k.lower(): v for k, v in r.getheaders()}
            except Exception:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def configmap(ns: str, name: str, size: int = 64) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"v": "x" * size}}


class Writers:
    """Threads creating ConfigMaps in `ns` as fast as the server takes them. Records every name the server
    acknowledged (201), the answers it gave otherwise, connection failures, and the slowest answer."""

    def __init__(self, creds: dict, ns: str, prefix: str, threads: int = 4):
        self.creds, self.ns, self.prefix, self.threads = creds, ns, prefix, threads
        self.acked: set[str] = set()
        self.statuses: dict[int, int] = {}
        self.conn_errors = 0
        self.slowest = 0.0
        self.last_ack = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self, i: int) -> None:
        conn = Conn(self.creds)
        n = 0
        path = f"/api/v1/namespaces/{self.ns}/configmaps"
        while not self._stop.is_set():
            name = f"{self.prefix}{i}-{n}"
            n += 1
            t0 = time.time()
            try:
                status, _, _ = conn.request("POST", path, configmap(self.ns, name))
            except Exception:
                with self._lock:
                    self.conn_errors += 1
                time.sleep(0.05)
                continue
            took = time.time() - t0
            with self._lock:
                self.slowest = max(self.slowest, took)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 201:
                    self.acked.add(name)
                    self.last_ack = time.time()
            if status != 201:
                time.sleep(0.05)
        conn.close()

    def start(self) -> "Writers":
        for i in range(self.threads):
            th = threading.Thread(target=self._run, args=(i,), daemon=True)
            th.start()
            self._workers.append(th)
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for th in self._workers:
            th.join(timeout=90)


def names_in(creds: dict, ns: str, resource: str = "configmaps") -> set[str]:
    """Every object name in a namespace, read in pages through the API."""
    conn = Conn(creds)
    names: set[str] = set()
    cont = ""
    try:
        while True:
            q = "limit=5000" + (f"&continue={urllib.parse.quote(cont)}" if cont else "")
            status, body, _ = conn.request("GET", f"/api/v1/namespaces/{ns}/{resource}?{q}")
            if status != 200:
                raise Failure(f"list {resource} in {ns}", 200, f"{status} {body[:300]}")
            doc = json.loads(body)
            names.update(i["metadata"]["name"] for i in doc.get("items", []))
            cont = doc.get("metadata", {}).get("continue", "")
            if not cont:
                return names
    finally:
        conn.close()


def readyz(creds: dict, verbose: bool = False) -> tuple[int, str]:
    try:
        status, body, _ = Conn(creds, timeout=10).request("GET", "/readyz" + ("?verbose" if verbose else ""))
        return status, body
    except Exception as e:
        return 0, repr(e)


def restart(t: T, extra: list[str]) -> None:
    t.server.stop()
    t.server.extra_args = extra
    t.server.start()


@scenario
def kill9_loses_no_acknowledged_write(t: T) -> None:
    """kill -9 of the server under write load, three times: after each restart on the same data every
    acknowledged create is there (restart-to-ready printed)."""
    ns = t.namespace()
    for cycle in range(1, 4):
        w = Writers(t.server.creds, ns, prefix=f"k{cycle}-").start()
        t.true(poll(lambda: w.count() >= 50, 30), "writes are acknowledged before the kill", w.statuses)
        time.sleep(1.0)  # kill in the middle of a steady stream of writes, not at its start
        os.kill(t.server.proc.pid, signal.SIGKILL)
        t.server.proc.wait(timeout=10)
        w.stop()
        t0 = time.time()
        t.server.start()
        ready = time.time() - t0
        stored = names_in(t.server.creds, ns)
        lost = sorted(w.acked - stored)
        t.eq(lost, [], f"kill -9 cycle {cycle}: acknowledged creates missing after the restart")
        report(f"{t.server.backend}: kill -9 cycle {cycle}: {len(w.acked)} creates acknowledged, "
               f"{len(lost)} lost; restart to /readyz {ready:.2f}s")


def user_creds(t: T, user: str, ns: str, role: str = "edit") -> dict:
    """A client certificate for `user` (no system:masters), bound to `role` in `ns`."""
    p = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
                        t.server.creds["server"], "--user", user], capture_output=True, text=True, timeout=30)
    t.eq(p.returncode, 0, f"rkube kubeconfig --user {user} ({p.stderr[-300:]})")
    path = t.server.workdir / f"{user}.kubeconfig"
    path.write_text(p.stdout)
    t.ok("create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}", "-n", ns)
    return load_creds(path, t.server.cache_dir)


@scenario
def overload_429_and_504(t: T) -> None:
    """(etcd) With --max-mutating-requests-inflight 1 and --request-timeout 2s and etcd paused: a write is
    answered 504 with upstream's Timeout Status; a second write meanwhile gets 429 `Too many requests`
    with Retry-After: 1 (at once with the max-in-flight filter, after a quarter of the request timeout
    in its priority level's queue with Priority and Fairness); system:masters is never refused, and
    with Priority and Fairness another level (the scheduler's) is still served. (The embedded store
    cannot be paused; the limiter's own tests cover it.)"""
    etcd = t.server.etcd
    if etcd is None:
        return
    ns = t.namespace()
    alice = user_creds(t, "overload-alice", ns)
    t.true(poll(lambda: Conn(alice).request("GET", f"/api/v1/namespaces/{ns}/configmaps")[0] == 200, 10),
           "the binding lets alice in", "")
    # Without the controller manager and the scheduler: their writes (leases, events, status) would
    # take the one mutating slot too, and alice's first write would be refused 429 instead.
    scheduler = user_creds(t, "system:kube-scheduler", ns, "view")
    limits = ["--max-requests-inflight", "1", "--max-mutating-requests-inflight", "1",
              "--request-timeout", "2s", "--controller-manager=false", "--scheduler=false"]
    restart(t, limits + ["--enable-priority-and-fairness=false"])
    first: dict = {}

    def slow_write() -> None:
        t0 = time.time()
        first["answer"] = Conn(alice).request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                              configmap(ns, "first"))
        first["took"] = time.time() - t0

    os.kill(etcd.proc.pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=slow_write, daemon=True)
        th.start()
        time.sleep(0.5)
        status, body, headers = Conn(alice).request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                                    configmap(ns, "second"))
        t.last_cmd = "POST configmap as alice while her first write waits on a paused etcd"
        t.eq(status, 429, "a second mutating request beyond the limit")
        t.eq(headers.get("retry-after"), "1", "Retry-After header")
        t.eq(body, "Too many requests, please try again later.\n", "upstream's 429 text")
        th.join(timeout=30)
        t.true("answer" in first, "the first write was answered", first)
        status, body, _ = first["answer"]
        t.eq(status, 504, "the write that outlived --request-timeout")
        st = t.status_error(body, 504, "Timeout", "504 body")
        t.eq(st.get("message"), "Timeout: request did not complete within requested timeout - "
             "context deadline exceeded", "upstream's timeout message")
        report(f"etcd paused: 504 after {first['took']:.2f}s (--request-timeout 2s), 429 at once")
        # The admin is in system:masters: never refused, still bounded by the deadline.
        t0 = time.time()
        status, _, _ = Conn(t.server.creds).request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                                    configmap(ns, "admin"))
        t.true(status in (504, 500, 503), "system:masters is not refused with 429 (answered by the deadline)",
               status)
        t.true(time.time() - t0 < 30, "the admin's request was answered within the deadline", time.time() - t0)
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
    # Priority and Fairness (the default): two seats in all, one per priority level.
    restart(t, limits)
    first.clear()
    os.kill(etcd.proc.pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=slow_write, daemon=True)
        th.start()
        time.sleep(0.5)
        t0 = time.time()
        status, body, headers = Conn(alice).request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                                    configmap(ns, "third"))
        waited = time.time() - t0
        t.last_cmd = "POST configmap as alice while her first write holds global-default's one seat"
        t.eq(status, 429, "a request its priority level has no seat for, once its wait is over")
        t.eq(body, "Too many requests, please try again later.\n", "upstream's 429 text")
        t.true(waited >= 0.5, "it waited in its level's queue (a quarter of --request-timeout)", waited)
        status, _, _ = Conn(scheduler).request("GET", f"/api/v1/namespaces/{ns}/configmaps?resourceVersion=0")
        t.eq(status, 200, "the scheduler's request (workload-high) is served meanwhile")
        th.join(timeout=30)
        t.eq(first.get("answer", (None,))[0], 504, "the write holding the seat ends at the deadline")
        report(f"Priority and Fairness: 429 after {waited:.2f}s in the queue; another level served")
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
        restart(t, [])


def outage(t: T, ns: str, what: str, begin, end) -> None:
    """Runs writers and a watch through one etcd outage (`begin` ... 10 s ... `end`) and checks: /readyz
    red then green, /livez green, every request answered within the request timeout, writes resume,
    nothing acknowledged lost, the watch either kept going or ended cleanly."""
    creds = t.server.creds
    w = Writers(creds, ns, prefix=f"{what}-").start()
    t.true(poll(lambda: w.count() >= 20, 30), "writes flow before the outage", w.statuses)
    begin()
    t0 = time.time()
    try:
        red = poll(lambda: readyz(creds)[0] == 500, 15)
        t.true(red, f"{what}: /readyz goes red", readyz(creds, True))
        red_after = time.time() - t0
        status, body = readyz(creds, True)
        t.contains(body, "[-]etcd failed: reason withheld", f"{what}: /readyz?verbose names etcd")
        status, _, _ = Conn(creds, timeout=10).request("GET", "/livez")
        t.eq(status, 200, f"{what}: /livez stays green")
        time.sleep(max(0.0, 10 - (time.time() - t0)))
    finally:
        end()
    t1 = time.time()
    green = poll(lambda: readyz(creds)[0] == 200, 60)
    t.true(green, f"{what}: /readyz green again", readyz(creds, True))
    green_after = time.time() - t1
    before = w.count()
    resumed = poll(lambda: w.count() > before + 10, 60)
    t.true(resumed, f"{what}: writes resume", w.statuses)
    resumed_after = time.time() - t1
    w.stop()
    stored = names_in(creds, ns)
    lost = sorted(w.acked - stored)
    t.eq(lost, [], f"{what}: acknowledged creates missing")
    t.true(w.slowest < 65, f"{what}: every request answered within the request timeout (60s)", w.slowest)
    codes = ", ".join(f"{k}×{v}" for k, v in sorted(w.statuses.items()))
    report(f"etcd {what}: /readyz red after {red_after:.1f}s, green {green_after:.1f}s after etcd's return, "
           f"writes resumed after {resumed_after:.1f}s; answers {codes}; dropped connections "
           f"{w.conn_errors}; slowest answer {w.slowest:.1f}s; {len(w.acked)} acknowledged, {len(lost)} lost")


@scenario
def etcd_pause_and_kill(t: T) -> None:
    """(etcd) etcd paused (SIGSTOP) for 10 s, then killed for 10 s, under write load: /readyz goes red and
    green again by itself, /livez stays up, requests fail within the request timeout, writes resume and
    nothing acknowledged is lost (timings printed)."""
    etcd = t.server.etcd
    if etcd is None:
        return
    ns = t.namespace()
    outage(t, ns, "pause", lambda: os.kill(etcd.proc.pid, signal.SIGSTOP),
           lambda: os.kill(etcd.proc.pid, signal.SIGCONT))

    def kill() -> None:
        os.kill(etcd.proc.pid, signal.SIGKILL)
        etcd.proc.wait(timeout=10)

    outage(t, ns, "kill", kill, etcd.start)


BIG_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "blobs.faults.example.com"},
    "spec": {"group": "faults.example.com", "scope": "Namespaced",
             "names": {"plural": "blobs", "singular": "blob", "kind": "Blob", "listKind": "BlobList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def fill(creds: dict, ns: str, total: int, threads: int = 8) -> float:
    """Creates `total` small ConfigMaps through the API; returns creates/s."""
    errors: list[str] = []
    t0 = time.time()

    def work(i: int) -> None:
        conn = Conn(creds)
        path = f"/api/v1/namespaces/{ns}/configmaps"
        for n in range(i, total, threads):
            for _ in range(5):
                try:
                    status, body, _ = conn.request("POST", path, configmap(ns, f"cm-{n:06d}", 32))
                except Exception as e:
                    status, body = 0, repr(e)
                if status in (201, 409):
                    break
                time.sleep(0.2)
            else:
                errors.append(f"cm-{n:06d}: {status} {body[:200]}")
                return
        conn.close()

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for th in workers:
        th.start()
    for th in workers:
        th.join(timeout=900)
    if errors:
        raise Failure("filling the store", "every create answered 201", errors[:5])
    return total / (time.time() - t0)


@scenario
def restart_with_100k_objects(t: T) -> None:
    """A server whose store holds 100,000 ConfigMaps and a 1.4 MiB custom object restarts: it listens at
    once (/livez), /readyz turns green when the cache is loaded, and every object is there
    (restart-to-ready printed). Runs on its own data dir (and etcd), not the shared server."""
    workdir = Path(tempfile.mkdtemp(prefix=f"rkube-big-{t.server.backend}-"))
    (workdir / "kubectl-cache").mkdir()
    etcd = Etcd(workdir) if t.server.etcd is not None else None
    srv = Server(t.server.backend, workdir, etcd)
    try:
        if etcd is not None:
            etcd.start()
        srv.start()
        creds = srv.creds
        conn = Conn(creds)
        status, body, _ = conn.request("POST", "/api/v1/namespaces",
                                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"}})
        t.eq(status, 201, f"create namespace big ({body[:200]})")
        total = 100_000
        rate = fill(creds, "big", total)
        status, body, _ = conn.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", BIG_CRD)
        t.eq(status, 201, f"create the CRD ({body[:300]})")
        blob = "b" * (1400 * 1024)
        obj = {"apiVersion": "faults.example.com/v1", "kind": "Blob", "metadata": {"name": "large"}, "data": blob}
        path = "/apis/faults.example.com/v1/namespaces/big/blobs"
        created = poll(lambda: conn.request("POST", path, obj)[0] in (201, 409), 30)
        t.true(created, "a 1.4 MiB custom object is stored", conn.request("GET", path + "/large")[0])
        conn.close()
        srv.stop()
        t0 = time.time()
        srv.proc = None
        proc = subprocess.Popen(srv.args(srv.kubeconfig), stdout=open(srv.log, "ab"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(workdir))
        srv.proc = proc
        # Listening at once: /livez answers while the cache is still loading.
        live = poll(lambda: _status(creds, "/livez") == 200, 30, interval=0.05)
        t.true(live, "/livez answers while the cache loads", _status(creds, "/livez"))
        live_after = time.time() - t0
        ready = poll(lambda: _status(creds, "/readyz") == 200, 600, interval=0.1)
        t.true(ready, "/readyz turns green once the cache is loaded", _status(creds, "/readyz"))
        ready_after = time.time() - t0
        names = {n for n in names_in(creds, "big") if n.startswith("cm-")}
        t.eq(len(names), total, "ConfigMaps listed after the restart")
        status, body, _ = Conn(creds).request("GET", path + "/large")
        t.eq(status, 200, "the large object after the restart")
        t.eq(len(json.loads(body).get("data", "")), len(blob), "the large object's size")
        report(f"{t.server.backend}: filled {total} ConfigMaps at {rate:.0f} creates/s; restart: /livez after "
               f"{live_after:.2f}s, /readyz after {ready_after:.2f}s")
    finally:
        srv.stop()
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _status(creds: dict, path: str) -> int:
    try:
        return Conn(creds, timeout=5).request("GET", path)[0]
    except Exception:
        return 0
