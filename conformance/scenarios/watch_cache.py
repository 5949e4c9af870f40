"""Watches and the watch cache (issue #14): a slow watcher is bounded and ended, a watch across a cache
reload misses no event (etcd: the cache's storage watch falls behind compaction; etcd killed and restarted).

These drive the server with raw HTTPS/1.1 sockets (a watch that never reads needs a socket we control) and,
on etcd, etcd's own JSON gateway (writes that bypass rkube while it is stopped, compaction).
"""

import base64
import json
import os
import signal
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.client import HTTPSConnection
from pathlib import Path

from run import T, scenario, Failure, poll

# 20,000 ConfigMaps of ~1 KiB, as in the issue.
SLOW_OBJECTS = 20_000
WRITERS = 4


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _ssl_ctx(creds: dict) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(creds["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(creds["cert"]), str(creds["key"]))
    # HTTP/1.1 only: the watch is read as a chunked body off the socket.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class RawWatch:
    """A watch on a raw TLS socket: reads only when told to (a never-reading client until then)."""

    def __init__(self, creds: dict, path: str, rcvbuf: int | None = None):
        u = urllib.parse.urlparse(creds["server"])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # A small receive window, so that the server meets back-pressure early.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(20)
        raw.connect((u.hostname, u.port))
        self.sock = _ssl_ctx(creds).wrap_socket(raw, server_hostname=u.hostname)
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}\r\nAccept: application/json\r\n"
               f"User-Agent: rkube-conformance-watch\r\n\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        self.body = b""
        self.ended = False
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("watch response headers", "headers", repr(self.buf[:300]), f"GET {path}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        self.headers = head.decode(errors="replace")
        self.lines: list[dict] = []
        self._partial = b""

    def _decode_chunks(self) -> None:
        """Moves complete chunks from buf to body; sets ended on the last chunk."""
        while True:
            if b"\r\n" not in self.buf:
                return
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.buf = rest[size + 2:]

    def read_until(self, done, timeout: float) -> None:
        """Reads events until done(self) is true, the stream ends, or timeout seconds pass."""
        deadline = time.time() + timeout
        self.sock.settimeout(1)
        self._take_lines()  # the first reads may already hold events (or the whole answer)
        while not self.ended and not done(self) and time.time() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                continue
            if not chunk:
                self.ended = True
                break
            self.buf += chunk
            self._take_lines()

    def _take_lines(self) -> None:
        self._decode_chunks()
        *complete, self.body = self.body.split(b"\n")
        for line in complete:
            if line.strip():
                self.lines.append(json.loads(line))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _list_rv(t: T, path: str) -> tuple[int, dict]:
    status, body = t.https("GET", path)
    t.eq(status, 200, f"GET {path}")
    doc = json.loads(body)
    return int(doc["metadata"]["resourceVersion"]), doc


def _configmap(ns: str, name: str, size: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
                       "data": {"payload": "x" * size}}).encode()


def _write_many(t: T, ns: str, names: list[str], size: int) -> list[str]:
    """Creates ConfigMaps `names` over WRITERS keep-alive connections; returns the failures."""
    creds = t.server.creds
    u = urllib.parse.urlparse(creds["server"])
    failures: list[str] = []
    lock = threading.Lock()

    def writer(part: list[str]) -> None:
        conn = HTTPSConnection(u.hostname, u.port, context=_ssl_ctx(creds), timeout=30)
        try:
            for name in part:
                conn.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body=_configmap(ns, name, size),
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 201:
                    with lock:
                        failures.append(f"{name}: {r.status} {body[:200]!r}")
        except Exception as e:  # a dropped connection is a failure to report, not a crash
            with lock:
                failures.append(f"writer: {e!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(names[i::WRITERS],)) for i in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    return failures


class RssSampler:
    """Samples the server's RSS every 0.25 s in the background; keeps the peak."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.stop_flag = pid, _rss_kib(pid), False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self) -> None:
        while not self.stop_flag:
            try:
                self.peak = max(self.peak, _rss_kib(self.pid))
            except OSError:
                return
            time.sleep(0.25)

    def stop(self) -> int:
        self.stop_flag = True
        self.th.join(timeout=5)
        return self.peak


def _names_seen(events: list[dict]) -> set[str]:
    return {e["object"]["metadata"]["name"] for e in events if e.get("type") in ("ADDED", "MODIFIED")}


def _check_nothing_missed(t: T, ns: str, first: RawWatch, expected: set[str], what: str) -> str:
    """`first` either delivered every name in `expected` or ended; in the latter case a re-watch from the
    last resourceVersion it delivered (or, on 410, a re-list) must show the rest. Returns how it went."""
    seen = _names_seen(first.lines)
    if expected <= seen:
        return f"the watch delivered all {len(expected)} events"
    t.true(first.ended, f"{what}: a watch that did not deliver every event was ended "
           f"({len(seen & expected)} of {len(expected)} delivered)", first.lines[-1:] if first.lines else None)
    errors = [e for e in first.lines if e.get("type") == "ERROR"]
    t.eq(errors, [], f"{what}: the ended watch carried no ERROR event")
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in first.lines if e.get("type") != "ERROR"]
    last = max(rvs) if rvs else None
    how = f"the watch was ended after {len(seen & expected)} of {len(expected)} events"
    if last is None:
        return how + " (nothing delivered)"
    again = RawWatch(t.server.creds, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={last}"
                     f"&timeoutSeconds=30")
    try:
        t.eq(again.status, 200, f"{what}: re-watch from {last}")
        again.read_until(lambda w: (expected - seen) <= _names_seen(w.lines)
                         or any(e.get("type") == "ERROR" for e in w.lines), 60)
        errs = [e for e in again.lines if e.get("type") == "ERROR"]
        if errs:
            st = errs[0]["object"]
            t.eq((st.get("code"), st.get("reason")), (410, "Expired"), f"{what}: re-watch from {last} ERROR")
            _, doc = _list_rv(t, f"/api/v1/namespaces/{ns}/configmaps")
            listed = {i["metadata"]["name"] for i in doc["items"]}
            t.eq(sorted(expected - listed)[:5], [], f"{what}: names missing from the re-list after 410")
            return how + f"; re-watch from {last} answered 410 Expired and the re-list holds all {len(expected)}"
        missing = expected - seen - _names_seen(again.lines)
        arvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in again.lines]
        t.eq(sorted(missing)[:5], [], f"{what}: names missing after re-watching from {last} ({len(missing)} "
             f"missing; the re-watch delivered {len(again.lines)} events, resourceVersions "
             f"{min(arvs, default=None)}..{max(arvs, default=None)}, ended: {again.ended})")
        return how + f"; the re-watch from {last} delivered the other {len(expected - seen)}"
    finally:
        again.close()


@scenario
def watch_cache_slow_watcher(t: T) -> None:
    """A watcher that never reads while 20,000 ConfigMaps of 1 KiB are written: its queue is bounded, the
    watch is ended (no event skipped silently: a re-watch resumes or answers 410), server RSS printed."""
    ns = t.namespace()
    pid = t.server.proc.pid
    rv, _ = _list_rv(t, f"/api/v1/namespaces/{ns}/configmaps")
    rss_start = _rss_kib(pid)
    if os.environ.get("WATCH_CACHE_CONTROL"):
        # Control measurement (same writes, no watcher): the RSS the objects themselves cost.
        sampler = RssSampler(pid)
        failures = _write_many(t, ns, [f"cm-{i:05d}" for i in range(SLOW_OBJECTS)], 1024)
        peak = sampler.stop()
        t.eq(failures[:3], [], "ConfigMap creates")
        print(f"    control (no watcher): server RSS {rss_start // 1024} MiB before, peak {peak // 1024} MiB "
              f"while writing, {_rss_kib(pid) // 1024} MiB after", flush=True)
        t.run("delete", "namespace", ns, "--wait=false")
        return
    slow = RawWatch(t.server.creds, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}",
                    rcvbuf=4096)
    t.eq(slow.status, 200, "watch status")
    names = [f"cm-{i:05d}" for i in range(SLOW_OBJECTS)]
    sampler = RssSampler(pid)
    started = time.time()
    failures = _write_many(t, ns, names, 1024)
    took = time.time() - started
    peak = sampler.stop()
    rss_after = _rss_kib(pid)
    t.eq(failures[:3], [], "ConfigMap creates")
    try:
        # Now read: the stream must end by itself (the server ended the watch), or carry every event.
        slow.read_until(lambda w: len(_names_seen(w.lines)) >= SLOW_OBJECTS, 120)
        how = _check_nothing_missed(t, ns, slow, set(names), "slow watcher")
    finally:
        slow.close()
    print(f"    slow watcher: {SLOW_OBJECTS} ConfigMaps of 1 KiB written in {took:.1f}s; server RSS "
          f"{rss_start // 1024} MiB before, peak {peak // 1024} MiB while writing, {rss_after // 1024} MiB after; "
          f"{how}", flush=True)
    # Free the 20,000 objects for the scenarios that follow.
    t.run("delete", "namespace", ns, "--wait=false")


# One ConfigMap of 500 KiB updated 500 times: what a watcher that never reads can pin when events are large.
LARGE_UPDATES = 500
LARGE_SIZE = 500 * 1024


@scenario
def watch_cache_slow_watcher_large_objects(t: T) -> None:
    """A watcher that never reads while one 500 KiB ConfigMap is updated 500 times (250 MB of events): the
    memory held for it is bounded in bytes (server RSS printed), the watch ends or delivers the last update."""
    ns = t.namespace()
    pid = t.server.proc.pid
    creds = t.server.creds
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/configmaps", _configmap(ns, "big", 10),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 201, "create the ConfigMap")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    rss_start = _rss_kib(pid)
    slow = RawWatch(creds, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}", rcvbuf=4096)
    t.eq(slow.status, 200, "watch status")
    u = urllib.parse.urlparse(creds["server"])
    conn = HTTPSConnection(u.hostname, u.port, context=_ssl_ctx(creds), timeout=60)
    sampler = RssSampler(pid)
    last_rv = None
    try:
        for i in range(LARGE_UPDATES):
            patch = json.dumps({"data": {"payload": f"{i:06d}" + "z" * LARGE_SIZE}}).encode()
            conn.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/big", body=patch,
                         headers={"Content-Type": "application/merge-patch+json", "Accept": "application/json"})
            r = conn.getresponse()
            out = r.read()
            t.eq(r.status, 200, f"update {i}")
            last_rv = json.loads(out)["metadata"]["resourceVersion"]
    finally:
        conn.close()
        peak = sampler.stop()
    rss_after = _rss_kib(pid)
    try:
        slow.read_until(lambda w: any(e["object"]["metadata"].get("resourceVersion") == last_rv
                                      for e in w.lines if e.get("type") == "MODIFIED"), 120)
        got_last = any(e["object"]["metadata"].get("resourceVersion") == last_rv
                       for e in slow.lines if e.get("type") == "MODIFIED")
        t.true(got_last or slow.ended, "the never-reading watch delivered the last update or was ended",
               f"{len(slow.lines)} events read")
        how = (f"the watch delivered all {LARGE_UPDATES} updates" if got_last else
               f"the watch was ended after {len(slow.lines)} of {LARGE_UPDATES} updates")
    finally:
        slow.close()
    print(f"    slow watcher, large objects: server RSS {rss_start // 1024} MiB before, peak {peak // 1024} MiB "
          f"while writing {LARGE_UPDATES} x {LARGE_SIZE // 1024} KiB, {rss_after // 1024} MiB after; {how}",
          flush=True)
    t.run("delete", "namespace", ns, "--wait=false")


# ---- etcd: the cache's storage watch breaks


class EtcdGateway:
    """etcd's v3 JSON gateway: writes and compaction that bypass rkube."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def call(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def put(self, key: str, value: bytes) -> int:
        out = self.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                       "value": base64.b64encode(value).decode()})
        return int(out["header"]["revision"])

    def compact(self, revision: int) -> None:
        self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})


def _stored_configmap(ns: str, name: str, size: int) -> bytes:
    """A ConfigMap as rkube stores it (no resourceVersion: the store's revision is that)."""
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                                    "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                       "data": {"payload": "y" * size}}).encode()


def _log_size(t: T) -> int:
    try:
        return t.server.log.stat().st_size
    except OSError:
        return 0


def _log_since(t: T, offset: int) -> str:
    with open(t.server.log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


@scenario
def watch_cache_reload_after_compaction(t: T) -> None:
    """etcd: the cache's storage watch falls behind compaction (rkube stopped while 40 MB are written to etcd
    and compacted); the cache reloads, and an open watch got every event or was ended (re-watch/re-list shows all)."""
    if t.server.etcd is None:
        print("    (etcd only: on the embedded store the cache's watch cannot be broken from outside; "
              "covered by the Rust unit tests watch_cache::tests::*)", flush=True)
        return
    ns = t.namespace()
    gw = EtcdGateway(t.server.etcd.endpoint)
    rv, _ = _list_rv(t, f"/api/v1/namespaces/{ns}/configmaps")
    watch = RawWatch(t.server.creds, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}")
    t.eq(watch.status, 200, "watch status")
    before = [f"before-{i}" for i in range(20)]
    t.eq(_write_many(t, ns, before, 100), [], "creates before the gap")
    log_at = _log_size(t)
    # Stop rkube so that its etcd watch stops reading; etcd then holds the events for an unsynced watcher
    # and cancels it as compacted once the history is compacted past what it delivered.
    os.kill(t.server.proc.pid, signal.SIGSTOP)
    gap: list[str] = []
    try:
        last = 0
        for i in range(400):
            name = f"gap-{i:03d}"
            last = gw.put(f"/registry/configmaps/{ns}/{name}", _stored_configmap(ns, name, 100_000))
            gap.append(name)
        gw.compact(last)
    finally:
        os.kill(t.server.proc.pid, signal.SIGCONT)
    reloaded = poll(lambda: "reloading" in _log_since(t, log_at), 30)
    t.true(reloaded, "the cache's storage watch broke (fell behind compaction) and the cache reloaded",
           _log_since(t, log_at)[-2000:])
    ready = poll(lambda: t.https("GET", "/readyz")[0] == 200, 60)
    t.true(ready, "/readyz green again after the reload", t.https("GET", "/readyz"))
    after = [f"after-{i}" for i in range(20)]
    t.eq(_write_many(t, ns, after, 100), [], "creates after the reload")
    expected = set(before) | set(gap) | set(after)
    try:
        watch.read_until(lambda w: expected <= _names_seen(w.lines), 60)
        how = _check_nothing_missed(t, ns, watch, expected, "watch across a reload")
    finally:
        watch.close()
    print(f"    reload after compaction: {how}", flush=True)


@scenario
def watch_cache_etcd_restart(t: T) -> None:
    """etcd killed and restarted under an open watch: the cache re-watches from where it was; the client
    watch gets every event written before and after (or is ended and a re-watch/re-list shows all)."""
    if t.server.etcd is None:
        print("    (etcd only: see watch_cache::tests for the embedded store)", flush=True)
        return
    ns = t.namespace()
    rv, _ = _list_rv(t, f"/api/v1/namespaces/{ns}/configmaps")
    watch = RawWatch(t.server.creds, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}")
    t.eq(watch.status, 200, "watch status")
    before = [f"before-{i}" for i in range(20)]
    t.eq(_write_many(t, ns, before, 100), [], "creates before etcd is killed")
    etcd = t.server.etcd
    etcd.proc.send_signal(signal.SIGKILL)
    etcd.proc.wait(timeout=10)
    down = time.time()
    red = poll(lambda: t.https("GET", "/readyz")[0] != 200, 20)
    etcd.start()
    back = time.time()
    green = poll(lambda: t.https("GET", "/readyz")[0] == 200, 60)
    t.true(green, "/readyz green again after etcd's restart", t.https("GET", "/readyz"))
    ready_after = time.time() - back
    probes = iter(range(1000))
    ok = poll(lambda: not _write_many(t, ns, [f"probe-{next(probes)}"], 100), 30, interval=1)
    t.true(ok, "writes resume after etcd's restart", None)
    after = [f"after-{i}" for i in range(20)]
    t.eq(_write_many(t, ns, after, 100), [], "creates after etcd's restart")
    expected = set(before) | set(after)
    try:
        watch.read_until(lambda w: expected <= _names_seen(w.lines), 60)
        how = _check_nothing_missed(t, ns, watch, expected, "watch across an etcd restart")
    finally:
        watch.close()
    print(f"    etcd restart: /readyz went red: {red}; etcd down {back - down:.1f}s, ready {ready_after:.1f}s "
          f"after its return; {how}", flush=True)


@scenario
def watch_cache_window_bytes(t: T) -> None:
    """(embedded) `--watch-cache-bytes 1Mi` bounds each resource's event window in bytes: after 2 MiB of
    ConfigMap updates a watch from before them answers 410 Expired (and a re-list has the last update), one
    from a recent resourceVersion replays the rest; the suite's server (the default, 64Mi) replays them all"""
    if t.server.etcd is not None:
        return  # the window is the apiserver's, whatever the store: once is enough
    from harness import Server
    server = Server("embedded", Path(tempfile.mkdtemp(prefix="rkube-watch-bytes-")), None)
    server.extra_args = ["--watch-cache-bytes", "1Mi"]
    server.start()
    try:
        for tt, bounded in ((T(server, t.scenario), True), (t, False)):
            what = "--watch-cache-bytes 1Mi" if bounded else "the default window"
            ns = tt.namespace()
            status, body = tt.https("POST", f"/api/v1/namespaces/{ns}/configmaps", _configmap(ns, "w", 10),
                                    headers={"Content-Type": "application/json"})
            tt.eq(status, 201, "create the ConfigMap")
            first = json.loads(body)["metadata"]["resourceVersion"]
            rvs = []
            for i in range(20):  # 20 x 100 KiB
                patch = json.dumps({"data": {"payload": f"{i:02d}" + "y" * 100 * 1024}}).encode()
                status, body = tt.https("PATCH", f"/api/v1/namespaces/{ns}/configmaps/w", patch,
                                        headers={"Content-Type": "application/merge-patch+json"})
                tt.eq(status, 200, f"update {i}")
                rvs.append(json.loads(body)["metadata"]["resourceVersion"])
            old = RawWatch(server.creds if bounded else t.server.creds,
                           f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={first}&timeoutSeconds=10")
            try:
                old.read_until(lambda w: len(w.lines) >= 20 or any(e.get("type") == "ERROR" for e in w.lines), 30)
            finally:
                old.close()
            errors = [e["object"] for e in old.lines if e.get("type") == "ERROR"]
            if bounded:
                tt.eq([(e.get("code"), e.get("reason")) for e in errors], [(410, "Expired")],
                      f"{what}: a watch from before 2 MiB of updates")
                _, doc = _list_rv(tt, f"/api/v1/namespaces/{ns}/configmaps")
                w = next(i for i in doc["items"] if i["metadata"]["name"] == "w")
                tt.eq(w["data"]["payload"][:2], "19", f"{what}: the re-list has the last update")
            else:
                tt.eq([e["object"]["metadata"]["resourceVersion"] for e in old.lines], rvs,
                      f"{what}: a watch from before 2 MiB of updates replays all 20")
            recent = RawWatch(server.creds if bounded else t.server.creds,
                              f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rvs[16]}"
                              f"&timeoutSeconds=10")
            try:
                recent.read_until(lambda w: len(w.lines) >= 3, 30)
            finally:
                recent.close()
            tt.eq([e["object"]["metadata"]["resourceVersion"] for e in recent.lines], rvs[17:],
                  f"{what}: a watch from a recent resourceVersion replays the rest")
    finally:
        server.stop()
