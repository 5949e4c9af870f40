#!/usr/bin/env python3
"""kubectl conformance suite for rkube.

Starts a real `rkube server` (once on the embedded store, once on a real etcd
that this script starts itself), then drives it with stock kubectl and checks
the real output: the text kubectl prints, the JSON it returns, the HTTP answers.

Usage:
    python3 conformance/run.py [--backend embedded|etcd|both] [-k SUBSTRING] [--keep] [-v] [--list]
                               [--results FILE]

Environment:
    RKUBE_BIN   path of the rkube binary (default: target/release/rkube in the repo)
    KUBECTL     kubectl to drive the server with (default: kubectl on PATH)
    ETCD_BIN    etcd binary (default: etcd on PATH, else /usr/bin/etcd)

Prints a PASS/FAIL line per scenario and backend as it goes (with the command, expected and actual
output of a failure), writes the markdown table conformance/RESULTS.md after a full run (all scenarios,
both backends; --results FILE for any run), and prints `N passed, N failed` as its last line
(N counts scenario x backend). Exits 1 if anything failed.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_MD = HERE / "RESULTS.md"

KUBECTL = os.environ.get("KUBECTL", "kubectl")
RKUBE_BIN = Path(os.environ.get("RKUBE_BIN", str(REPO / "target" / "release" / "rkube")))
ETCD_BIN = os.environ.get("ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
OLD_KUBECTLS = Path("/usr/lib/google-cloud-sdk/bin")

VERBOSE = False

UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
AGE_RE = re.compile(r"^(\d+(s|m|h|d|y))+$|^<unknown>$|^<invalid>$")


# --------------------------------------------------------------------------------------------
# Failures


class Failure(Exception):
    """A scenario expectation that did not hold."""

    def __init__(self, what: str, expected, actual, cmd: str | None = None):
        super().__init__(what)
        self.what = what
        self.expected = expected
        self.actual = actual
        self.cmd = cmd

    def render(self) -> str:
        lines = [f"check:    {self.what}"]
        if self.cmd:
            lines.append(f"command:  {self.cmd}")
        lines.append("expected: " + _indent(str(self.expected)))
        lines.append("actual:   " + _indent(str(self.actual)))
        return "\n".join(lines)

    def short(self) -> str:
        act = str(self.actual).strip().replace("\n", " ⏎ ")
        if len(act) > 160:
            act = act[:157] + "..."
        return f"{self.what}: got {act}"


def _indent(s: str) -> str:
    s = s.rstrip("\n")
    if len(s) > 4000:
        s = s[:4000] + "\n... (truncated)"
    return s.replace("\n", "\n          ")


# --------------------------------------------------------------------------------------------
# Processes: etcd and the rkube server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(lines[-n:])


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class Etcd:
    def __init__(self, workdir: Path):
        self.dir = workdir / "etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.log = workdir / "etcd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            ETCD_BIN,
            "--name", "rkube-conformance",
            "--data-dir", str(self.dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"rkube-conformance={peer}",
            "--initial-cluster-state", "new",
        ]
        env = dict(os.environ)
        if os.uname().machine in ("aarch64", "arm64"):
            env["ETCD_UNSUPPORTED_ARCH"] = "arm64"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{tail(self.log)}")
            try:
                import urllib.request
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                    if b"true" in r.read():
                        return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy in 30s:\n{tail(self.log)}")

    def stop(self) -> None:
        stop_process(self.proc)


class Server:
    """One `rkube server` process plus what is needed to talk to it."""

    def __init__(self, backend: str, workdir: Path, etcd: Etcd | None):
        self.backend = backend
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.etcd = etcd
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log = workdir / "rkube.log"
        self.cache_dir = workdir / "kubectl-cache"
        self.creds: dict | None = None
        # more `rkube server` flags for the next start (scenarios that restart with other limits reset it)
        self.extra_args: list[str] = []

    def args(self, kubeconfig: Path) -> list[str]:
        a = [str(RKUBE_BIN), "server", "--data-dir", str(self.data_dir), "--secure-port", str(self.port),
             "--bind-address", "127.0.0.1", "--write-kubeconfig", str(kubeconfig)]
        if self.etcd is not None:
            a += ["--storage", "etcd", "--etcd-endpoints", self.etcd.endpoint]
        return a + self.extra_args

    def start(self, kubeconfig: Path | None = None, timeout: float = 60.0) -> None:
        kubeconfig = kubeconfig or self.kubeconfig
        self.starts += 1
        log = open(self.log, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(self.args(kubeconfig))}\n".encode())
        log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(self.args(kubeconfig), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=str(self.workdir))
        deadline = time.time() + timeout
        last = "no answer yet"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rkube server exited with code {self.proc.returncode}; log tail:\n{tail(self.log)}")
            if kubeconfig.exists() or self.creds is not None:
                try:
                    # a restart may keep the kubeconfig written by the first start: probe with that one
                    creds = load_creds(kubeconfig, self.cache_dir) if kubeconfig.exists() else self.creds
                    status, body = https(creds, "GET", "/readyz")
                    last = f"{status} {body[:200]!r}"
                    if status == 200:
                        if self.creds is None:
                            self.creds = creds
                        return
                except Exception as e:  # not listening yet, kubeconfig half written, ...
                    last = repr(e)
            time.sleep(0.2)
        raise RuntimeError(f"rkube server not ready after {timeout:.0f}s (last /readyz: {last}); log tail:\n{tail(self.log)}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


# --------------------------------------------------------------------------------------------
# Talking to the server: raw HTTPS with the kubeconfig's credentials, and kubectl


def load_creds(kubeconfig: Path, cache_dir: Path) -> dict:
    out = subprocess.run([KUBECTL, "config", "view", "--raw", "-o", "json", "--kubeconfig", str(kubeconfig)],
                         capture_output=True, text=True, timeout=30, env=kubectl_env(cache_dir))
    if out.returncode != 0:
        raise RuntimeError(f"kubectl config view failed: {out.stderr}")
    cfg = json.loads(out.stdout)
    ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    d = Path(tempfile.mkdtemp(prefix="creds-", dir=str(cache_dir.parent)))

    def material(data_key: str, file_key: str, src: dict, name: str) -> Path:
        if src.get(data_key):
            p = d / name
            p.write_bytes(base64.b64decode(src[data_key]))
            return p
        return Path(src[file_key])

    return {
        "server": cluster["server"],
        "ca": material("certificate-authority-data", "certificate-authority", cluster, "ca.crt"),
        "cert": material("client-certificate-data", "client-certificate", user, "client.crt"),
        "key": material("client-key-data", "client-key", user, "client.key"),
    }


def https(creds: dict, method: str, path: str, body: bytes | None = None, client_cert: bool = True,
          headers: dict | None = None, timeout: float = 10.0) -> tuple[int, str]:
    import http.client
    ctx = ssl.create_default_context(cafile=str(creds["ca"]))
    ctx.check_hostname = False  # the serving cert is for 127.0.0.1/localhost; we check the CA chain only
    if client_cert:
        ctx.load_cert_chain(str(creds["cert"]), str(creds["key"]))
    u = urllib.parse.urlparse(creds["server"])
    conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=timeout)
    try:
        h = {"Accept": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def kubectl_env(cache_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["KUBECACHEDIR"] = str(cache_dir)
    env["HOME"] = str(cache_dir.parent)
    return env


@dataclass
class Result:
    cmd: str
    rc: int
    out: str
    err: str

    def both(self) -> str:
        return (self.out + ("\n" if self.out and self.err else "") + self.err).strip()


class Background:
    """A kubectl process running in the background (get -w, wait) whose output is collected."""

    def __init__(self, cmd: list[str], env: dict, display: str):
        self.display = display
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     start_new_session=True)
        self._out: list[str] = []
        self._err: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True)]
        for th in self._threads:
            th.start()

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in iter(lambda: stream.read1(4096), b""):
            with self._lock:
                sink.append(raw.decode(errors="replace"))

    @property
    def out(self) -> str:
        with self._lock:
            return "".join(self._out)

    @property
    def err(self) -> str:
        with self._lock:
            return "".join(self._err)

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.out):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.1)
                return pred(self.out)
            time.sleep(0.05)
        return pred(self.out)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to end and for all its output to be collected."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for th in self._threads:
            th.join(timeout=5)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        for th in self._threads:
            th.join(timeout=2)


class T:
    """What a scenario gets: kubectl and HTTPS against one running server, plus assertions."""

    def __init__(self, server: Server, scenario: str):
        self.server = server
        self.scenario = scenario
        self.kubeconfig = server.kubeconfig
        self.last_cmd: str | None = None
        self.background: list[Background] = []
        self._ns_count = 0

    # ---- running things

    def base_cmd(self, kubectl: str = KUBECTL) -> list[str]:
        return [kubectl, "--kubeconfig", str(self.kubeconfig)]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 45, kubectl: str = KUBECTL) -> Result:
        cmd = self.base_cmd(kubectl) + list(args)
        display = "kubectl " + " ".join(_shq(a) for a in args)
        if kubectl != KUBECTL:
            display = Path(kubectl).name + display[len("kubectl"):]
        if stdin is not None:
            display += "  <<< " + (stdin if len(stdin) < 300 else stdin[:300] + "...").replace("\n", "⏎")
        self.last_cmd = display
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                               env=kubectl_env(self.server.cache_dir))
        except subprocess.TimeoutExpired as e:
            raise Failure(f"command finished within {timeout}s", "exit", f"timed out; stdout={_s(e.stdout)!r} "
                          f"stderr={_s(e.stderr)!r}", display) from None
        r = Result(display, p.returncode, p.stdout, p.stderr)
        if VERBOSE:
            print(f"    $ {display}\n      rc={r.rc}\n      " + _indent(r.both()), flush=True)
        return r

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 45, kubectl: str = KUBECTL) -> str:
        """Run kubectl, require exit 0, return stdout."""
        r = self.run(*args, stdin=stdin, timeout=timeout, kubectl=kubectl)
        if r.rc != 0:
            raise Failure("exit code 0", "exit 0", f"exit {r.rc}\n{r.both()}", r.cmd)
        return r.out

    def fails(self, *args: str, stdin: str | None = None, timeout: float = 45) -> str:
        """Run kubectl, require a non-zero exit, return stderr."""
        r = self.run(*args, stdin=stdin, timeout=timeout)
        if r.rc == 0:
            raise Failure("non-zero exit", "an error", f"exit 0\n{r.both()}", r.cmd)
        return r.err.strip()

    def json(self, *args: str) -> dict:
        out = self.ok(*args, "-o", "json")
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise Failure("output is JSON", "valid JSON", f"{e}: {out[:500]}", self.last_cmd) from None

    def raw(self, path: str) -> dict:
        out = self.ok("get", "--raw", path)
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise Failure("raw answer is JSON", "valid JSON", f"{e}: {out[:500]}", self.last_cmd) from None

    def https(self, method: str, path: str, body: bytes | None = None, client_cert: bool = True,
              headers: dict | None = None) -> tuple[int, str]:
        self.last_cmd = f"HTTPS {method} {path}" + ("" if client_cert else " (no client certificate)")
        return https(self.server.creds, method, path, body=body, client_cert=client_cert, headers=headers)

    def bg(self, *args: str) -> Background:
        display = "kubectl " + " ".join(_shq(a) for a in args)
        b = Background(self.base_cmd() + list(args), kubectl_env(self.server.cache_dir), display)
        self.background.append(b)
        return b

    def create(self, manifest: str | dict, ns: str | None = None) -> str:
        if isinstance(manifest, dict):
            manifest = json.dumps(manifest)
        args = ["create", "-f", "-"] + (["-n", ns] if ns else [])
        return self.ok(*args, stdin=manifest).strip()

    def namespace(self, suffix: str = "") -> str:
        """Create a fresh namespace for this scenario (from a manifest) and return its name."""
        self._ns_count += 1
        name = re.sub(r"[^a-z0-9-]", "-", self.scenario.lower().replace("_", "-"))[:40].strip("-")
        if suffix:
            name = f"{name}-{suffix}"
        elif self._ns_count > 1:
            name = f"{name}-{self._ns_count}"
        out = self.create(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
        self.eq(out, f"namespace/{name} created", "create namespace output")
        # As on any cluster, controllers add a `default` ServiceAccount and the `kube-root-ca.crt`
        # ConfigMap to a new namespace; wait for them so that scenarios see a settled namespace.
        for kind, obj in (("serviceaccount", "default"), ("configmap", ROOT_CA)):
            settled = poll(lambda: self.run("get", kind, obj, "-n", name, "-o", "name").rc == 0, 15)
            self.true(settled, f"namespace {name} gets its {kind} {obj}", self.last_cmd)
        return name

    def cleanup(self) -> None:
        for b in self.background:
            b.stop()

    # ---- assertions

    def eq(self, actual, expected, what: str) -> None:
        if actual != expected:
            raise Failure(what, repr(expected), repr(actual), self.last_cmd)

    def contains(self, text: str, needle: str, what: str) -> None:
        if needle not in text:
            raise Failure(what, f"text containing {needle!r}", text, self.last_cmd)

    def not_contains(self, text: str, needle: str, what: str) -> None:
        if needle in text:
            raise Failure(what, f"text without {needle!r}", text, self.last_cmd)

    def match(self, text: str, pattern: str, what: str, flags: int = re.M) -> re.Match:
        m = re.search(pattern, text, flags)
        if not m:
            raise Failure(what, f"text matching /{pattern}/", text, self.last_cmd)
        return m

    def true(self, cond: bool, what: str, actual) -> None:
        if not cond:
            raise Failure(what, "true", actual, self.last_cmd)

    def names(self, out: str) -> set[str]:
        return {line.strip() for line in out.splitlines() if line.strip()}

    def table(self, out: str, what: str = "table") -> list[dict]:
        tables = parse_tables(out)
        if len(tables) != 1:
            raise Failure(f"{what}: one table", "one table", out, self.last_cmd)
        return tables[0]

    def headers(self, out: str, expected: list[str], what: str) -> None:
        first = out.splitlines()[0] if out.strip() else ""
        got = header_columns(first)
        if got != expected:
            raise Failure(f"{what}: column headers", "  ".join(expected), out, self.last_cmd)

    def row(self, rows: list[dict], name: str, what: str) -> dict:
        for r in rows:
            if r.get("NAME") == name:
                return r
        raise Failure(f"{what}: a row named {name}", name, rows, self.last_cmd)

    def status_error(self, body: str, code: int, reason: str, what: str) -> dict:
        try:
            st = json.loads(body)
        except json.JSONDecodeError:
            raise Failure(f"{what}: body is a metav1.Status", "JSON", body, self.last_cmd) from None
        exp = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
        got = {k: st.get(k) for k in exp}
        if got != exp:
            raise Failure(f"{what}: Status fields", exp, st, self.last_cmd)
        return st


def _s(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def _shq(a: str) -> str:
    return a if re.fullmatch(r"[\w./=:,@%+-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def header_columns(line: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r"\S+(?: \S+)*", line)]


class Table(list):
    """Rows of one kubectl table (dicts keyed by column header), with .headers."""

    headers: list[str] = []


def parse_tables(out: str) -> list[Table]:
    """Parse kubectl's column output (one or more tables separated by blank lines)."""
    tables: list[Table] = []
    for block in re.split(r"\n\s*\n", out.strip("\n")):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        cols = [(m.group(0), m.start()) for m in re.finditer(r"\S+(?: \S+)*", lines[0])]
        tb = Table()
        tb.headers = [c for c, _ in cols]
        for ln in lines[1:]:
            row = {}
            for i, (name, start) in enumerate(cols):
                end = cols[i + 1][1] if i + 1 < len(cols) else None
                row[name] = (ln[start:end] if end is not None else ln[start:]).strip()
            tb.append(row)
        tables.append(tb)
    return tables


def parse_json_stream(text: str) -> list[dict]:
    """Decode concatenated JSON documents (kubectl -w -o json prints one after another)."""
    dec = json.JSONDecoder()
    i, out = 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out  # a document still being written
        out.append(obj)


def jget(obj, path: str, default=None):
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
    return cur


def poll(fn: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(interval)
    return fn()


# --------------------------------------------------------------------------------------------
# Scenarios

SCENARIOS: list[Callable[[T], None]] = []

# The ConfigMap every namespace gets from the root-CA publisher.
ROOT_CA = "kube-root-ca.crt"


def scenario(fn: Callable[[T], None]) -> Callable[[T], None]:
    SCENARIOS.append(fn)
    return fn


def doc(fn) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


NOT_FOUND = 'Error from server (NotFound): {res} "{name}" not found'


def check_meta(t: T, obj: dict, kind: str, api_version: str, name: str, ns: str | None, what: str) -> None:
    t.eq(obj.get("kind"), kind, f"{what}: kind")
    t.eq(obj.get("apiVersion"), api_version, f"{what}: apiVersion")
    md = obj.get("metadata", {})
    t.eq(md.get("name"), name, f"{what}: metadata.name")
    t.eq(md.get("namespace"), ns, f"{what}: metadata.namespace")
    t.true(bool(UID_RE.match(md.get("uid", ""))), f"{what}: metadata.uid is a UUID", md.get("uid"))
    t.true(str(md.get("resourceVersion", "")).isdigit(), f"{what}: metadata.resourceVersion is a decimal string",
           md.get("resourceVersion"))
    t.true(bool(TS_RE.match(md.get("creationTimestamp", ""))), f"{what}: metadata.creationTimestamp is RFC 3339 UTC",
           md.get("creationTimestamp"))


def crud(t: T, *, resource: str, prefix: str, plural: str, kind: str, api_version: str, name: str,
         ns: str | None, manifest: str, headers: list[str], row: dict, mutate: Callable[[dict], None],
         check_mutated: Callable[[dict], None], wide_headers: list[str] | None = None,
         wide_row: dict | None = None, describe: list[str] = ()) -> None:
    """create -f / get / get -o json / describe / label / annotate / replace -f / delete for one kind."""
    nsargs = ["-n", ns] if ns else []
    # create
    t.eq(t.create(manifest, ns), f"{prefix}/{name} created", "create -f output")
    # get (table)
    out = t.ok("get", resource, name, *nsargs)
    t.headers(out, headers, f"get {resource}")
    r = t.row(t.table(out), name, f"get {resource}")
    for col, val in row.items():
        t.eq(r.get(col), val, f"get {resource}: column {col}")
    t.true(bool(AGE_RE.match(r.get("AGE", "0s"))), f"get {resource}: AGE column", r.get("AGE"))
    if wide_headers:
        out = t.ok("get", resource, name, *nsargs, "-o", "wide")
        t.headers(out, wide_headers, f"get {resource} -o wide")
        r = t.row(t.table(out), name, f"get {resource} -o wide")
        for col, val in (wide_row or {}).items():
            t.eq(r.get(col), val, f"get {resource} -o wide: column {col}")
    # get -o json
    obj = t.json("get", resource, name, *nsargs)
    check_meta(t, obj, kind, api_version, name, ns, f"get {resource} -o json")
    uid, rv = obj["metadata"]["uid"], obj["metadata"]["resourceVersion"]
    # list contains it
    lst = t.json("get", resource, *nsargs)
    t.eq(lst.get("kind"), "List", f"get {resource} -o json (list): kind")
    t.true(name in [i["metadata"]["name"] for i in lst.get("items", [])], f"list of {resource} contains {name}",
           [i["metadata"]["name"] for i in lst.get("items", [])])
    # describe
    out = t.ok("describe", resource, name, *nsargs)
    t.match(out, rf"^Name:\s+{re.escape(name)}$", f"describe {resource}: Name line")
    if ns:
        t.match(out, rf"^Namespace:\s+{re.escape(ns)}$", f"describe {resource}: Namespace line")
    t.match(out, r"^Labels:\s+app=conformance", f"describe {resource}: Labels line")
    for pat in describe:
        t.match(out, pat, f"describe {resource}")
    # label
    t.eq(t.ok("label", resource, name, *nsargs, "tier=backend").strip(), f"{prefix}/{name} labeled", "label output")
    t.eq(t.ok("get", resource, name, *nsargs, "-o", "jsonpath={.metadata.labels.tier}"), "backend",
         "label is stored")
    # overwriting without --overwrite fails with kubectl's own message
    err = t.fails("label", resource, name, *nsargs, "tier=frontend")
    t.contains(err, "'tier' already has a value (backend), and --overwrite is false", "label without --overwrite")
    t.eq(t.ok("label", resource, name, *nsargs, "tier=frontend", "--overwrite").strip(), f"{prefix}/{name} labeled",
         "label --overwrite output")
    t.eq(t.ok("label", resource, name, *nsargs, "tier-").strip(), f"{prefix}/{name} unlabeled", "label removal output")
    labels = jget(t.json("get", resource, name, *nsargs), "metadata.labels", {})
    t.true("tier" not in labels and labels.get("app") == "conformance", "labels after removing tier", labels)
    # annotate
    t.eq(t.ok("annotate", resource, name, *nsargs, "example.com/note=hello world").strip(),
         f"{prefix}/{name} annotated", "annotate output")
    t.eq(t.ok("get", resource, name, *nsargs, "-o", "jsonpath={.metadata.annotations.example\\.com/note}"),
         "hello world", "annotation is stored")
    # replace -f
    obj = t.json("get", resource, name, *nsargs)
    obj["metadata"].setdefault("labels", {})["replaced"] = "yes"
    mutate(obj)
    t.eq(t.ok("replace", "-f", "-", stdin=json.dumps(obj)).strip(), f"{prefix}/{name} replaced", "replace output")
    new = t.json("get", resource, name, *nsargs)
    t.eq(new["metadata"].get("labels", {}).get("replaced"), "yes", "replace stored the new label")
    t.eq(new["metadata"]["uid"], uid, "uid unchanged by replace")
    t.true(int(new["metadata"]["resourceVersion"]) > int(rv), "resourceVersion grew with each write",
           f"{rv} -> {new['metadata']['resourceVersion']}")
    check_mutated(new)
    # delete
    out = t.ok("delete", resource, name, *nsargs, timeout=60).strip()
    t.eq(out, f'{prefix} "{name}" deleted', "delete output")
    err = t.fails("get", resource, name, *nsargs)
    t.eq(err, NOT_FOUND.format(res=plural, name=name), "get after delete")


LABELS = "  labels:\n    app: conformance\n"


@scenario
def bootstrap_namespaces(t: T) -> None:
    """default, kube-system, kube-public and kube-node-lease exist at start and are Active."""
    out = t.ok("get", "namespaces")
    t.headers(out, ["NAME", "STATUS", "AGE"], "get namespaces")
    rows = t.table(out)
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
        t.eq(t.row(rows, ns, "get namespaces").get("STATUS"), "Active", f"namespace {ns} STATUS")
    names = [r["NAME"] for r in rows]
    t.eq(names, sorted(names), "namespaces are listed sorted by name")
    obj = t.json("get", "namespace", "default")
    check_meta(t, obj, "Namespace", "v1", "default", None, "get namespace default")
    t.eq(jget(obj, "status.phase"), "Active", "status.phase")
    t.eq(jget(obj, "spec.finalizers"), ["kubernetes"], "spec.finalizers")
    t.eq(jget(obj, "metadata.labels"), {"kubernetes.io/metadata.name": "default"},
         "the kubernetes.io/metadata.name label upstream sets on every namespace")


@scenario
def health_endpoints(t: T) -> None:
    """get --raw /healthz, /livez and /readyz answer `ok`."""
    for p in ("/healthz", "/livez", "/readyz"):
        t.eq(t.ok("get", "--raw", p), "ok", f"get --raw {p}")


@scenario
def anonymous_is_unauthorized(t: T) -> None:
    """A request without a client certificate gets 401 and a metav1.Status Unauthorized."""
    for path in ("/api", "/api/v1/namespaces", "/apis/apps/v1/deployments"):
        status, body = t.https("GET", path, client_cert=False)
        t.eq(status, 401, f"HTTP status of anonymous GET {path}")
        st = t.status_error(body, 401, "Unauthorized", f"anonymous GET {path}")
        t.eq(st.get("message"), "Unauthorized", "message")
    status, body = t.https("GET", "/api")
    t.eq(status, 200, "the same request with the admin client certificate")


@scenario
def version(t: T) -> None:
    """kubectl version shows Server Version v1.33.x; /version is a version.Info."""
    out = t.ok("version")
    t.match(out, r"^Client Version: v1\.\d+\.\d+", "Client Version line")
    t.match(out, r"^Server Version: v1\.33\.\d+", "Server Version line")
    t.not_contains(out + t.run("version").err, "WARNING: version difference", "no version-skew warning")
    v = json.loads(t.ok("version", "-o", "json"))
    sv = v.get("serverVersion", {})
    t.eq((sv.get("major"), sv.get("minor")), ("1", "33"), "serverVersion major/minor")
    t.true(sv.get("gitVersion", "").startswith("v1.33."), "serverVersion.gitVersion", sv)
    for k in ("gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"):
        t.true(k in sv, f"serverVersion has {k}", sv)


@scenario
def api_versions(t: T) -> None:
    """kubectl api-versions lists v1, apps/v1, batch/v1 (sorted, one per line)."""
    out = t.ok("api-versions")
    lines = out.split()
    for gv in ("v1", "apps/v1", "batch/v1"):
        t.true(gv in lines, f"api-versions contains {gv}", out)
    t.eq(lines, sorted(lines), "api-versions is sorted")
    api = t.raw("/api")
    t.eq(api.get("kind"), "APIVersions", "/api kind")
    t.eq(api.get("versions"), ["v1"], "/api versions")
    groups = t.raw("/apis")
    t.eq(groups.get("kind"), "APIGroupList", "/apis kind")
    names = {g["name"]: g for g in groups.get("groups", [])}
    for g in ("apps", "batch"):
        t.true(g in names, f"/apis has group {g}", list(names))
        t.eq(jget(names[g], "preferredVersion.groupVersion"), f"{g}/v1", f"{g} preferredVersion")


@scenario
def api_resources(t: T) -> None:
    """kubectl api-resources shows the upstream NAME/SHORTNAMES/APIVERSION/NAMESPACED/KIND rows."""
    out = t.ok("api-resources")
    t.headers(out, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], "api-resources")
    rows = t.table(out)
    expected = {
        "pods": ("po", "v1", "true", "Pod"),
        "services": ("svc", "v1", "true", "Service"),
        "configmaps": ("cm", "v1", "true", "ConfigMap"),
        "secrets": ("", "v1", "true", "Secret"),
        "namespaces": ("ns", "v1", "false", "Namespace"),
        "nodes": ("no", "v1", "false", "Node"),
        "deployments": ("deploy", "apps/v1", "true", "Deployment"),
        "jobs": ("", "batch/v1", "true", "Job"),
    }
    for name, (short, av, namespaced, kind) in expected.items():
        r = t.row(rows, name, "api-resources")
        t.eq((r["SHORTNAMES"], r["APIVERSION"], r["NAMESPACED"], r["KIND"]), (short, av, namespaced, kind),
             f"api-resources row {name}")
    out = t.ok("api-resources", "--api-group=apps", "-o", "name")
    t.true("deployments.apps" in out.split(), "api-resources --api-group=apps -o name lists deployments.apps", out)
    out = t.ok("api-resources", "--namespaced=false", "-o", "name")
    t.true("nodes" in out.split() and "namespaces" in out.split() and "pods" not in out.split(),
           "api-resources --namespaced=false", out)
    res = t.raw("/api/v1")
    t.eq(res.get("kind"), "APIResourceList", "/api/v1 kind")
    pods = next((r for r in res.get("resources", []) if r.get("name") == "pods"), None)
    t.true(pods is not None, "/api/v1 lists pods", res)
    for verb in ("create", "delete", "get", "list", "update", "watch"):
        t.true(verb in pods.get("verbs", []), f"pods verbs include {verb}", pods)
    t.true("all" in pods.get("categories", []), "pods are in category all", pods)
    t.true(any(r.get("name") == "pods/status" for r in res["resources"]), "/api/v1 lists pods/status", res)


@scenario
def kubectl_version_skew(t: T) -> None:
    """Older and newer stock kubectls (1.27 .. 1.33) can list and get objects."""
    found = sorted(OLD_KUBECTLS.glob("kubectl.1.*")) if OLD_KUBECTLS.is_dir() else []
    if not found:
        return
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skew"}, "data": {"a": "b"}}, ns)
    for k in found:
        out = t.ok("get", "cm", "skew", "-n", ns, "-o", "jsonpath={.data.a}", kubectl=str(k))
        t.eq(out, "b", f"{k.name} get -o jsonpath")
        out = t.ok("get", "ns", "default", kubectl=str(k))
        t.headers(out, ["NAME", "STATUS", "AGE"], f"{k.name} get ns")


@scenario
def namespace_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a namespace."""
    name = "crud-ns"

    def mutate(o):
        o["metadata"]["annotations"]["example.com/replaced"] = "true"

    def check(o):
        t.eq(o["metadata"]["annotations"].get("example.com/replaced"), "true", "replace stored the annotation")
        t.eq(jget(o, "status.phase"), "Active", "status.phase")

    crud(t, resource="namespace", prefix="namespace", plural="namespaces", kind="Namespace", api_version="v1",
         name=name, ns=None, manifest=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{LABELS}",
         headers=["NAME", "STATUS", "AGE"], row={"STATUS": "Active"}, mutate=mutate, check_mutated=check,
         describe=[r"^Status:\s+Active$", r"No resource quota\.", r"No LimitRange resource\."])


POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
{labels}spec:
  containers:
  - name: app
    image: registry.k8s.io/pause:3.10
    ports:
    - containerPort: 80
"""


@scenario
def pod_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a pod (no scheduler: Pending, 0/1)."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["activeDeadlineSeconds"] = 600

    def check(o):
        t.eq(jget(o, "spec.activeDeadlineSeconds"), 600, "replace stored spec.activeDeadlineSeconds")
        t.eq(jget(o, "status.phase"), "Pending", "status.phase")

    crud(t, resource="pod", prefix="pod", plural="pods", kind="Pod", api_version="v1", name="web", ns=ns,
         manifest=POD.format(name="web", labels=LABELS),
         headers=["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
         row={"READY": "0/1", "STATUS": "Pending", "RESTARTS": "0"},
         wide_headers=["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                       "READINESS GATES"],
         wide_row={"IP": "<none>", "NODE": "<none>", "NOMINATED NODE": "<none>", "READINESS GATES": "<none>"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Status:\s+Pending$", r"^\s+Image:\s+registry\.k8s\.io/pause:3\.10$", r"^Events:\s+<none>$"])


SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: {name}
{labels}spec:
  type: ClusterIP
  selector:
    app: web
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 8080
"""


@scenario
def service_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a ClusterIP service."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["ports"].append({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443})

    def check(o):
        t.eq([p["port"] for p in jget(o, "spec.ports", [])], [80, 443], "replace stored the new port")

    crud(t, resource="service", prefix="service", plural="services", kind="Service", api_version="v1", name="web",
         ns=ns, manifest=SERVICE.format(name="web", labels=LABELS),
         headers=["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
         row={"TYPE": "ClusterIP", "EXTERNAL-IP": "<none>", "PORT(S)": "80/TCP"},
         wide_headers=["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
         wide_row={"SELECTOR": "app=web"}, mutate=mutate, check_mutated=check,
         describe=[r"^Type:\s+ClusterIP$", r"^Selector:\s+app=web$", r"^Port:\s+http\s+80/TCP$",
                   r"^TargetPort:\s+8080/TCP$"])


@scenario
def service_cluster_ip(t: T) -> None:
    """A ClusterIP service gets spec.clusterIP/clusterIPs allocated; protocol and type defaulted."""
    ns = t.namespace()
    bare = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n"
            "  ports:\n  - port: 80\n")
    t.create(bare.format(name="alloc"), ns)
    o = t.json("get", "svc", "alloc", "-n", ns)
    ip = jget(o, "spec.clusterIP", "")
    t.true(bool(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip)), "spec.clusterIP is an IPv4 address", ip)
    t.eq(jget(o, "spec.clusterIPs"), [ip], "spec.clusterIPs")
    t.eq(jget(o, "spec.type"), "ClusterIP", "spec.type defaulted")
    t.eq(jget(o, "spec.ports.0.protocol"), "TCP", "spec.ports[0].protocol defaulted")
    t.eq(jget(o, "spec.ports.0.targetPort"), 80, "spec.ports[0].targetPort defaulted to port")
    t.eq(jget(o, "spec.sessionAffinity"), "None", "spec.sessionAffinity defaulted")
    t.create(bare.format(name="alloc2"), ns)
    ip2 = t.ok("get", "svc", "alloc2", "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
    t.true(ip2 != ip and ip2 != "", "two services get different cluster IPs", (ip, ip2))
    out = t.ok("get", "svc", "alloc", "-n", ns)
    t.eq(t.row(t.table(out), "alloc", "get svc").get("CLUSTER-IP"), ip, "CLUSTER-IP column")


@scenario
def configmap_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a configmap."""
    ns = t.namespace()

    def mutate(o):
        o["data"]["c"] = "3"

    def check(o):
        t.eq(o.get("data"), {"a": "1", "b": "two words", "c": "3"}, "replace stored data")

    crud(t, resource="configmap", prefix="configmap", plural="configmaps", kind="ConfigMap", api_version="v1",
         name="settings", ns=ns,
         manifest=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n{LABELS}data:\n  a: \"1\"\n"
                  f"  b: two words\n",
         headers=["NAME", "DATA", "AGE"], row={"DATA": "2"}, wide_headers=["NAME", "DATA", "AGE"],
         mutate=mutate, check_mutated=check, describe=[r"^a:\n----\n1$", r"^b:\n----\ntwo words$"])


@scenario
def secret_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a secret."""
    ns = t.namespace()

    def mutate(o):
        o["data"]["token"] = base64.b64encode(b"s3cret").decode()

    def check(o):
        t.eq(o.get("data"), {"password": base64.b64encode(b"hunter2").decode(),
                             "token": base64.b64encode(b"s3cret").decode()}, "replace stored data")
        t.eq(o.get("type"), "Opaque", "type")
        t.true("stringData" not in o, "stringData is not stored", o)

    crud(t, resource="secret", prefix="secret", plural="secrets", kind="Secret", api_version="v1", name="creds",
         ns=ns,
         manifest=f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n{LABELS}type: Opaque\ndata:\n"
                  f"  password: {base64.b64encode(b'hunter2').decode()}\n",
         headers=["NAME", "TYPE", "DATA", "AGE"], row={"TYPE": "Opaque", "DATA": "1"},
         mutate=mutate, check_mutated=check, describe=[r"^Type:\s+Opaque$", r"^password:\s+7 bytes$"])


@scenario
def secret_string_data(t: T) -> None:
    """stringData is merged into base64 data on create and replace and never stored; type defaults to Opaque."""
    ns = t.namespace()
    t.create("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  user: admin\n  pass: hunter2\n", ns)
    o = t.json("get", "secret", "s", "-n", ns)
    t.eq(o.get("data"), {"pass": base64.b64encode(b"hunter2").decode(), "user": base64.b64encode(b"admin").decode()},
         "data from stringData")
    t.true("stringData" not in o, "stringData is not stored", o)
    t.eq(o.get("type"), "Opaque", "type defaulted")
    out = t.ok("get", "secret", "s", "-n", ns)
    t.eq(t.row(t.table(out), "s", "get secret").get("DATA"), "2", "DATA column")
    o["stringData"] = {"pass": "changed"}
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    t.eq(t.ok("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.pass}"), base64.b64encode(b"changed").decode(),
         "stringData wins over data on replace")


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
{labels}spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
"""


@scenario
def deployment_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a deployment (no controller: 0/2)."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["replicas"] = 3

    def check(o):
        t.eq(jget(o, "spec.replicas"), 3, "replace stored spec.replicas")
        t.eq(jget(o, "metadata.generation"), 2, "metadata.generation incremented by the spec change")

    crud(t, resource="deployment", prefix="deployment.apps", plural="deployments.apps", kind="Deployment",
         api_version="apps/v1", name="web", ns=ns, manifest=DEPLOYMENT.format(name="web", labels=LABELS),
         headers=["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
         row={"READY": "0/2", "UP-TO-DATE": "0", "AVAILABLE": "0"},
         wide_headers=["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
         wide_row={"CONTAINERS": "web", "IMAGES": "registry.k8s.io/pause:3.10", "SELECTOR": "app=web"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Selector:\s+app=web$", r"^Replicas:\s+2 desired \| 0 updated \| 0 total \| 0 available \| "
                   r"0 unavailable$"])


@scenario
def deployment_defaults(t: T) -> None:
    """A deployment gets upstream's defaults (strategy, revisionHistoryLimit, progressDeadlineSeconds, pod spec)."""
    ns = t.namespace()
    t.create(DEPLOYMENT.format(name="defaults", labels=""), ns)
    o = t.json("get", "deploy", "defaults", "-n", ns)
    t.eq(jget(o, "spec.strategy"), {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "spec.strategy")
    t.eq(jget(o, "spec.revisionHistoryLimit"), 10, "spec.revisionHistoryLimit")
    t.eq(jget(o, "spec.progressDeadlineSeconds"), 600, "spec.progressDeadlineSeconds")
    t.eq(jget(o, "metadata.generation"), 1, "metadata.generation")
    ps = jget(o, "spec.template.spec", {})
    t.eq((ps.get("restartPolicy"), ps.get("dnsPolicy"), ps.get("schedulerName"),
          ps.get("terminationGracePeriodSeconds")), ("Always", "ClusterFirst", "default-scheduler", 30),
         "pod template spec defaults")
    out = t.ok("describe", "deploy", "defaults", "-n", ns)
    t.match(out, r"^StrategyType:\s+RollingUpdate$", "describe: StrategyType")
    t.match(out, r"^RollingUpdateStrategy:\s+25% max unavailable, 25% max surge$", "describe: RollingUpdateStrategy")


@scenario
def pod_defaults(t: T) -> None:
    """A pod gets upstream's defaults and status (phase Pending, qosClass BestEffort)."""
    ns = t.namespace()
    t.create(POD.format(name="defaults", labels=""), ns)
    o = t.json("get", "pod", "defaults", "-n", ns)
    s = o.get("spec", {})
    t.eq((s.get("restartPolicy"), s.get("dnsPolicy"), s.get("schedulerName"), s.get("terminationGracePeriodSeconds"),
          s.get("enableServiceLinks"), s.get("preemptionPolicy"), s.get("priority")),
         ("Always", "ClusterFirst", "default-scheduler", 30, True, "PreemptLowerPriority", 0), "pod spec defaults")
    c = jget(o, "spec.containers.0", {})
    t.eq((c.get("imagePullPolicy"), c.get("terminationMessagePath"), c.get("terminationMessagePolicy"),
          jget(c, "ports.0.protocol")), ("IfNotPresent", "/dev/termination-log", "File", "TCP"), "container defaults")
    t.eq(jget(o, "status.phase"), "Pending", "status.phase")
    t.eq(jget(o, "status.qosClass"), "BestEffort", "status.qosClass")


JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
{labels}spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox:1.36
        command: ["sh", "-c", "echo hello"]
"""


@scenario
def job_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a job (no controller: Running, 0/1)."""
    ns = t.namespace()

    def mutate(o):
        o["spec"]["activeDeadlineSeconds"] = 300

    def check(o):
        t.eq(jget(o, "spec.activeDeadlineSeconds"), 300, "replace stored spec.activeDeadlineSeconds")

    crud(t, resource="job", prefix="job.batch", plural="jobs.batch", kind="Job", api_version="batch/v1",
         name="hello", ns=ns, manifest=JOB.format(name="hello", labels=LABELS),
         headers=["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
         row={"STATUS": "Running", "COMPLETIONS": "0/1", "DURATION": ""},
         wide_headers=["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
         wide_row={"CONTAINERS": "hello", "IMAGES": "busybox:1.36"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Pods Statuses:\s+0 Active .*0 Succeeded / 0 Failed$"])


@scenario
def job_defaults(t: T) -> None:
    """A job without a selector gets upstream's generated controller-uid selector, pod labels and defaults."""
    ns = t.namespace()
    t.create(JOB.format(name="gen", labels=""), ns)
    o = t.json("get", "job", "gen", "-n", ns)
    uid = o["metadata"]["uid"]
    t.eq(jget(o, "spec.selector"), {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}, "spec.selector")
    labels = jget(o, "spec.template.metadata.labels", {})
    t.eq((labels.get("batch.kubernetes.io/controller-uid"), labels.get("batch.kubernetes.io/job-name"),
          labels.get("controller-uid"), labels.get("job-name")), (uid, "gen", uid, "gen"), "template labels")
    t.eq((jget(o, "spec.parallelism"), jget(o, "spec.completions"), jget(o, "spec.backoffLimit"),
          jget(o, "spec.completionMode"), jget(o, "spec.suspend")), (1, 1, 6, "NonIndexed", False), "job defaults")
    out = t.ok("describe", "job", "gen", "-n", ns)
    t.match(out, r"^Parallelism:\s+1$", "describe: Parallelism")
    t.match(out, r"^Completions:\s+1$", "describe: Completions")
    t.match(out, rf"^Selector:\s+batch.kubernetes.io/controller-uid={uid}$", "describe: Selector")


NODE = """apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    app: conformance
    kubernetes.io/hostname: {name}
    node-role.kubernetes.io/worker: ""
spec:
  podCIDR: 10.244.1.0/24
status:
  addresses:
  - type: InternalIP
    address: 192.0.2.10
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: kubelet is posting ready status
    lastHeartbeatTime: "2025-01-01T00:00:00Z"
    lastTransitionTime: "2025-01-01T00:00:00Z"
  nodeInfo:
    architecture: amd64
    bootID: ""
    containerRuntimeVersion: containerd://1.7.0
    kernelVersion: 6.1.0
    kubeProxyVersion: ""
    kubeletVersion: v1.33.0
    machineID: ""
    operatingSystem: linux
    osImage: Debian GNU/Linux 12 (bookworm)
    systemUUID: ""
"""


@scenario
def node_crud(t: T) -> None:
    """create/get/describe/label/annotate/replace/delete a node (a plain object: no kubelet)."""

    def mutate(o):
        o["spec"]["unschedulable"] = True

    def check(o):
        t.eq(jget(o, "spec.unschedulable"), True, "replace stored spec.unschedulable")
        out = t.ok("get", "node", "worker-1")
        t.eq(t.row(t.table(out), "worker-1", "get node").get("STATUS"), "Ready,SchedulingDisabled",
             "STATUS of an unschedulable node")

    crud(t, resource="node", prefix="node", plural="nodes", kind="Node", api_version="v1", name="worker-1", ns=None,
         manifest=NODE.format(name="worker-1"),
         headers=["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
         row={"STATUS": "Ready", "ROLES": "worker", "VERSION": "v1.33.0"},
         wide_headers=["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                       "KERNEL-VERSION", "CONTAINER-RUNTIME"],
         wide_row={"INTERNAL-IP": "192.0.2.10", "EXTERNAL-IP": "<none>", "OS-IMAGE": "Debian GNU/Linux 12 (bookworm)",
                   "KERNEL-VERSION": "6.1.0", "CONTAINER-RUNTIME": "containerd://1.7.0"},
         mutate=mutate, check_mutated=check,
         describe=[r"^Roles:\s+worker$", r"^PodCIDR:\s+10\.244\.1\.0/24$", r"^\s+InternalIP:\s+192\.0\.2\.10$"])


@scenario
def imperative_create(t: T) -> None:
    """kubectl create namespace/configmap/secret/deployment/job (typed clients: protobuf request bodies)."""
    ns = "imperative-create"
    t.eq(t.ok("create", "namespace", ns).strip(), f"namespace/{ns} created", "create namespace")
    t.eq(t.ok("create", "configmap", "c", "-n", ns, "--from-literal=a=1", "--from-literal=b=2").strip(),
         "configmap/c created", "create configmap --from-literal")
    t.eq(t.json("get", "cm", "c", "-n", ns).get("data"), {"a": "1", "b": "2"}, "configmap data")
    t.eq(t.ok("create", "secret", "generic", "s", "-n", ns, "--from-literal=password=hunter2").strip(),
         "secret/s created", "create secret generic")
    t.eq(t.ok("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.password}"),
         base64.b64encode(b"hunter2").decode(), "secret data")
    t.eq(t.ok("create", "deployment", "d", "-n", ns, "--image=registry.k8s.io/pause:3.10", "--replicas=2").strip(),
         "deployment.apps/d created", "create deployment")
    d = t.json("get", "deploy", "d", "-n", ns)
    t.eq((jget(d, "spec.replicas"), jget(d, "spec.selector.matchLabels"), jget(d, "spec.template.spec.containers.0.image")),
         (2, {"app": "d"}, "registry.k8s.io/pause:3.10"), "deployment spec")
    t.eq(t.ok("create", "job", "j", "-n", ns, "--image=busybox:1.36", "--", "echo", "hi").strip(), "job.batch/j created",
         "create job")
    t.eq(jget(t.json("get", "job", "j", "-n", ns), "spec.template.spec.containers.0.command"), ["echo", "hi"],
         "job command")
    out = t.ok("get", "cm,secret,deploy,job", "-n", ns, "-o", "name")
    t.eq(sorted(out.split()), ["configmap/c", f"configmap/{ROOT_CA}", "deployment.apps/d", "job.batch/j", "secret/s"],
         "get of several kinds")
    t.eq(t.ok("delete", "namespace", ns, timeout=120).strip(), f'namespace "{ns}" deleted', "delete namespace")


MORE_KINDS = [
    # (resource, kubectl prefix, headers, manifest)
    ("serviceaccounts", "serviceaccount", ["NAME", "SECRETS", "AGE"],
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}),
    ("roles", "role.rbac.authorization.k8s.io", ["NAME", "CREATED AT"],
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"},
      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    ("leases", "lease.coordination.k8s.io", ["NAME", "HOLDER", "AGE"],
     {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
      "spec": {"holderIdentity": "me", "leaseDurationSeconds": 40}}),
    ("statefulsets", "statefulset.apps", ["NAME", "READY", "AGE"],
     {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
      "spec": {"serviceName": "x", "selector": {"matchLabels": {"app": "x"}},
               "template": {"metadata": {"labels": {"app": "x"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}),
    ("daemonsets", "daemonset.apps",
     ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
     {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
      "spec": {"selector": {"matchLabels": {"app": "x"}},
               "template": {"metadata": {"labels": {"app": "x"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}),
    ("cronjobs", "cronjob.batch", ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
     {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
      "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
          "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}}),
    ("ingresses", "ingress.networking.k8s.io", ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
     {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"},
      "spec": {"rules": [{"host": "x.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
               "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}]}}),
]


@scenario
def more_builtin_kinds(t: T) -> None:
    """serviceaccounts, roles, leases, statefulsets, daemonsets, cronjobs, ingresses: create -f, get, delete."""
    ns = t.namespace()
    for resource, prefix, headers, manifest in MORE_KINDS:
        t.eq(t.create(manifest, ns), f"{prefix}/x created", f"create {resource}")
        out = t.ok("get", resource, "x", "-n", ns)
        t.headers(out, headers, f"get {resource}")
        listed = t.ok("get", resource, "-n", ns, "-o", "name").split()
        expected = [f"{prefix}/x"] + (["serviceaccount/default"] if resource == "serviceaccounts" else [])
        t.eq(sorted(listed), sorted(expected), f"get {resource} -o name")
        t.eq(t.ok("delete", resource, "x", "-n", ns).strip(), f'{prefix} "x" deleted', f"delete {resource}")


@scenario
def auth_can_i(t: T) -> None:
    """kubectl auth can-i / auth whoami answer for the admin client certificate."""
    t.eq(t.ok("auth", "can-i", "create", "pods").strip(), "yes", "auth can-i create pods")
    t.eq(t.ok("auth", "can-i", "delete", "nodes").strip(), "yes", "auth can-i delete nodes")
    out = t.ok("auth", "whoami")
    t.headers(out, ["ATTRIBUTE", "VALUE"], "auth whoami")
    t.match(out, r"^Username\s+\S+", "auth whoami Username row")


@scenario
def patch(t: T) -> None:
    """kubectl patch: strategic (lists merge by name), merge, json; status subresource; no-op; not found."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}}, ns)
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "-p", '{"data":{"b":"2"}}').strip(), "configmap/p patched",
         "strategic patch output")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]').strip(),
         "configmap/p patched", "json patch output")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"c":"3"}}').strip(),
         "configmap/p patched", "merge patch output")
    t.eq(t.json("get", "cm", "p", "-n", ns).get("data"), {"b": "2", "c": "3"}, "data after three patches")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"c":"3"}}').strip(),
         "configmap/p patched (no change)", "no-op patch output")
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.ok("patch", "deploy", "d", "-n", ns, "-p",
         '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/pause:3.9"}]}}}}')
    t.ok("patch", "deploy", "d", "-n", ns, "-p",
         '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:1.36"}]}}}}')
    d = t.json("get", "deploy", "d", "-n", ns)
    t.eq(sorted((c["name"], c["image"]) for c in jget(d, "spec.template.spec.containers", [])),
         [("side", "busybox:1.36"), ("web", "registry.k8s.io/pause:3.9")],
         "strategic merge patch merges containers by name")
    t.eq(jget(d, "metadata.generation"), 3, "generation after two spec patches")
    out = t.ok("patch", "deploy", "d", "-n", ns, "--subresource=status", "--type=merge", "-p",
               '{"status":{"readyReplicas":1,"replicas":1}}')
    t.eq(out.strip(), "deployment.apps/d patched", "status patch output")
    d = t.json("get", "deploy", "d", "-n", ns)
    t.eq((jget(d, "status.readyReplicas"), jget(d, "metadata.generation")), (1, 3), "status patched, generation same")
    t.eq(t.fails("patch", "cm", "nope", "-n", ns, "-p", '{"data":{"x":"y"}}'),
         NOT_FOUND.format(res="configmaps", name="nope"), "patch of a missing object")
    err = t.fails("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"metadata":{"resourceVersion":"1"},"data":{"x":"y"}}')
    t.eq(err, 'Error from server (Conflict): Operation cannot be fulfilled on configmaps "p": the object has been '
              'modified; please apply your changes to the latest version and try again', "patch with a stale resourceVersion")


@scenario
def apply(t: T) -> None:
    """kubectl apply (client-side): created / unchanged / configured, and keys dropped from the manifest go."""
    ns = t.namespace()
    m1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  a: \"1\"\n  b: \"2\"\n"
    m2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  a: \"10\"\n"
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m1).strip(), "configmap/q created", "first apply")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m1).strip(), "configmap/q unchanged", "same apply again")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=m2).strip(), "configmap/q configured", "changed apply")
    t.eq(t.json("get", "cm", "q", "-n", ns).get("data"), {"a": "10"}, "apply removed the dropped key")
    ann = jget(t.json("get", "cm", "q", "-n", ns), "metadata.annotations", {})
    t.true("kubectl.kubernetes.io/last-applied-configuration" in ann, "last-applied-configuration annotation", ann)


@scenario
def apply_server_side(t: T) -> None:
    """kubectl apply --server-side creates, then updates, and records managedFields."""
    ns = t.namespace()
    out = t.ok("apply", "--server-side", "-n", ns, "-f", "-",
               stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: v\n")
    t.eq(out.strip(), "configmap/ssa serverside-applied", "server-side apply output")
    o = t.json("get", "cm", "ssa", "-n", ns, "--show-managed-fields")
    managers = [m.get("manager") for m in jget(o, "metadata.managedFields", [])]
    t.true("kubectl" in managers, "managedFields record the kubectl field manager", managers)
    out = t.ok("apply", "--server-side", "-n", ns, "-f", "-",
               stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: w\n")
    t.eq(t.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.k}"), "w", "second server-side apply")


@scenario
def output_formats(t: T) -> None:
    """get -o json|yaml|wide|name|jsonpath|custom-columns, --show-labels, -L, --no-headers, --sort-by."""
    ns = t.namespace()
    for n, v in (("beta", "2"), ("alpha", "1")):
        t.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": n, "labels": {"app": "fmt", "rank": v}}, "data": {"k": v, "other": "x"}}, ns)
    o = t.json("get", "cm", "alpha", "-n", ns)
    t.eq(o.get("data"), {"k": "1", "other": "x"}, "-o json data")
    out = t.ok("get", "cm", "alpha", "-n", ns, "-o", "yaml")
    for line in ("apiVersion: v1", "kind: ConfigMap", "  name: alpha", f"  namespace: {ns}", "data:", '  k: "1"',
                 "  other: x"):
        t.true(line in out.splitlines(), f"-o yaml has line {line!r}", out)
    out = t.ok("get", "cm", "-n", ns, "-o", "wide")
    t.headers(out, ["NAME", "DATA", "AGE"], "get cm -o wide")
    t.eq([r["NAME"] for r in t.table(out)], ["alpha", "beta", ROOT_CA], "rows sorted by name")
    # from here on only the scenario's own ConfigMaps (the namespace also holds the root CA one)
    t.eq(t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "name"), "configmap/alpha\nconfigmap/beta\n", "-o name")
    t.eq(t.ok("get", "cm", "alpha", "-n", ns, "-o", "jsonpath={.data.k}"), "1", "-o jsonpath single")
    t.eq(t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", 'jsonpath={range .items[*]}{.metadata.name}={.data.k}{"\\n"}{end}'),
         "alpha=1\nbeta=2\n", "-o jsonpath range")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "custom-columns=NAME:.metadata.name,RANK:.metadata.labels.rank,K:.data.k")
    t.headers(out, ["NAME", "RANK", "K"], "custom-columns")
    rows = t.table(out)
    t.eq([(r["NAME"], r["RANK"], r["K"]) for r in rows], [("alpha", "1", "1"), ("beta", "2", "2")],
         "custom-columns rows")
    out = t.ok("get", "cm", "alpha", "-n", ns, "--show-labels")
    t.headers(out, ["NAME", "DATA", "AGE", "LABELS"], "--show-labels")
    t.eq(t.table(out)[0]["LABELS"], "app=fmt,rank=1", "LABELS column")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-L", "rank")
    t.headers(out, ["NAME", "DATA", "AGE", "RANK"], "-L rank")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "--no-headers")
    t.eq([ln.split()[0] for ln in out.splitlines()], ["alpha", "beta"], "--no-headers rows")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "--sort-by=.metadata.labels.rank", "-o", "name")
    t.eq(out, "configmap/alpha\nconfigmap/beta\n", "--sort-by")
    out = t.ok("get", "cm", "alpha", "-n", ns, "-o", "go-template={{.metadata.name}}:{{index .data \"k\"}}")
    t.eq(out, "alpha:1", "-o go-template")
    out = t.ok("get", "cm", "-n", ns, "-l", "app=fmt", "-o", "json")
    lst = json.loads(out)
    t.eq((lst.get("kind"), lst.get("apiVersion")), ("List", "v1"), "list -o json kind/apiVersion")
    t.eq([i["metadata"]["name"] for i in lst.get("items", [])], ["alpha", "beta"], "list -o json items")
    t.eq({i.get("kind") for i in lst["items"]}, {"ConfigMap"}, "items carry kind")
    raw = t.raw(f"/api/v1/namespaces/{ns}/configmaps")
    t.eq((raw.get("kind"), raw.get("apiVersion")), ("ConfigMapList", "v1"), "raw list kind/apiVersion")
    t.true(str(jget(raw, "metadata.resourceVersion", "")).isdigit(), "raw list metadata.resourceVersion", raw.get("metadata"))


@scenario
def all_namespaces(t: T) -> None:
    """get -A / --all-namespaces shows a NAMESPACE column and objects of every namespace."""
    a, b = t.namespace("a"), t.namespace("b")
    for ns in (a, b):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "labels": {"x": "allns"}}}, ns)
        t.create(POD.format(name="p", labels=""), ns)
    out = t.ok("get", "cm", "-A", "-l", "x=allns")
    t.headers(out, ["NAMESPACE", "NAME", "DATA", "AGE"], "get cm -A")
    t.eq([(r["NAMESPACE"], r["NAME"], r["DATA"]) for r in t.table(out)], [(a, "same", "0"), (b, "same", "0")],
         "rows of get cm -A")
    out = t.ok("get", "pods", "--all-namespaces")
    t.headers(out, ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"], "get pods --all-namespaces")
    got = {(r["NAMESPACE"], r["NAME"]) for r in t.table(out)}
    t.true({(a, "p"), (b, "p")} <= got, "both pods listed", got)
    lst = t.json("get", "cm", "-A", "-l", "x=allns")
    t.eq(sorted(i["metadata"]["namespace"] for i in lst["items"]), [a, b], "-A -o json namespaces")
    raw = t.raw("/api/v1/configmaps?labelSelector=x%3Dallns")
    t.eq(len(raw.get("items", [])), 2, "cluster-wide list /api/v1/configmaps")


@scenario
def get_all(t: T) -> None:
    """get all in a namespace shows pods, services, deployments, jobs with upstream headers."""
    ns = t.namespace()
    t.create(POD.format(name="p1", labels=""), ns)
    t.create(SERVICE.format(name="s1", labels=""), ns)
    t.create(DEPLOYMENT.format(name="d1", labels=""), ns)
    t.create(JOB.format(name="j1", labels=""), ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-in-all"}}, ns)
    out = t.ok("get", "all", "-n", ns)
    tables = parse_tables(out)
    by_prefix = {}
    for tb in tables:
        for r in tb:
            by_prefix[r["NAME"].split("/")[0]] = (tb.headers, r)
    expect = {
        "pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "pod/p1"),
        "service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], "service/s1"),
        "deployment.apps": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "deployment.apps/d1"),
        "job.batch": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], "job.batch/j1"),
    }
    for prefix, (hdr, name) in expect.items():
        if prefix not in by_prefix:
            raise Failure(f"get all shows {name}", name, out, t.last_cmd)
        got_hdr, r = by_prefix[prefix]
        t.eq(got_hdr, hdr, f"get all: headers of the {prefix} table")
        t.eq(r["NAME"], name, f"get all: {prefix} row")
    t.not_contains(out, "configmap", "configmaps are not in category all")


@scenario
def label_selectors(t: T) -> None:
    """-l with =, ==, !=, in, notin, exists, !exists and combinations."""
    ns = t.namespace()
    objs = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "db"}, "c": {"env": "prod"}, "d": {}}
    for n, labels in objs.items():
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": labels}}, ns)
    cases = [
        ("env=prod", {"a", "c"}), ("env==prod", {"a", "c"}), ("env!=prod", {"b", "d"}),
        ("env in (dev,staging)", {"b"}), ("env notin (prod)", {"b", "d"}), ("tier", {"a", "b"}),
        ("!tier", {"c", "d"}), ("env=prod,tier=web", {"a"}), ("env=prod,!tier", {"c"}),
        ("env in (prod,dev),tier notin (web)", {"b", "c"}),
    ]
    for sel, want in cases:
        out = t.ok("get", "cm", "-n", ns, "-l", sel, "-o", "name")
        got = {n.split("/", 1)[1] for n in t.names(out)}
        # the root CA ConfigMap has no labels, like "d"
        want = want | ({ROOT_CA} if "d" in want else set())
        t.eq(sorted(got), sorted(want), f"-l {sel!r}")
    r = t.run("get", "cm", "-n", ns, "-l", "env=nomatch")
    t.eq((r.rc, r.out, r.err.strip()), (0, "", f"No resources found in {ns} namespace."), "-l with no match")
    status, body = t.https("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=" + urllib.parse.quote("env in (prod"))
    t.eq(status, 400, "a malformed labelSelector is a 400")
    t.status_error(body, 400, "BadRequest", "malformed labelSelector")


@scenario
def field_selectors(t: T) -> None:
    """--field-selector on metadata.name/namespace, and status.phase for pods (set via --subresource=status)."""
    ns = t.namespace()
    for n in ("one", "two", "three"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}, ns)
    sel = lambda *a: sorted(n.split("/", 1)[1] for n in t.names(t.ok("get", *a, "-o", "name")))  # noqa: E731
    t.eq(sel("cm", "-n", ns, "--field-selector", "metadata.name=two"), ["two"], "metadata.name=two")
    t.eq(sel("cm", "-n", ns, "--field-selector", "metadata.name!=two"), ["kube-root-ca.crt", "one", "three"],
         "metadata.name!=two")
    t.eq(sel("cm", "-A", "--field-selector", f"metadata.namespace={ns},metadata.name=one"), ["one"],
         "metadata.namespace + metadata.name")
    for n in ("run", "wait"):
        t.create(POD.format(name=n, labels=""), ns)
    pod = t.json("get", "pod", "run", "-n", ns)
    pod["status"]["phase"] = "Running"
    pod["status"]["podIP"] = "10.244.0.5"
    pod["status"]["podIPs"] = [{"ip": "10.244.0.5"}]
    out = t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(pod))
    t.eq(out.strip(), "pod/run replaced", "replace --subresource=status output")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase=Running"), ["run"], "status.phase=Running")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase=Pending"), ["wait"], "status.phase=Pending")
    t.eq(sel("pods", "-n", ns, "--field-selector", "status.phase!=Running"), ["wait"], "status.phase!=Running")
    t.eq(sel("pods", "-n", ns, "--field-selector", "spec.nodeName="), ["run", "wait"], "spec.nodeName= (unscheduled)")
    out = t.ok("get", "pod", "run", "-n", ns, "-o", "wide")
    t.eq(t.row(t.table(out), "run", "get pod -o wide").get("IP"), "10.244.0.5", "IP column from status.podIP")
    err = t.fails("get", "cm", "-n", ns, "--field-selector", "spec.foo=bar")
    t.match(err, r"^Error from server \(BadRequest\): .*spec\.foo", "unsupported field selector")


@scenario
def watch(t: T) -> None:
    """get -w --output-watch-events shows ADDED, MODIFIED, DELETED; a table watch shows a new row."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w1"}, "data": {"v": "1"}}, ns)
    b = t.bg("get", "cm", "w1", "-n", ns, "-w", "--output-watch-events", "-o", "json")

    def events():
        return [(e.get("type"), jget(e, "object.data.v")) for e in parse_json_stream(b.out)]

    if not b.wait_for(lambda _: ("ADDED", "1") in events(), 20):
        raise Failure("watch shows the initial ADDED event", "ADDED v=1", f"{events()} stderr={b.err}", b.display)
    obj = t.json("get", "cm", "w1", "-n", ns)
    obj["data"]["v"] = "2"
    t.ok("replace", "-f", "-", stdin=json.dumps(obj))
    if not b.wait_for(lambda _: ("MODIFIED", "2") in events(), 20):
        raise Failure("watch shows MODIFIED after replace", "MODIFIED v=2", f"{events()} stderr={b.err}", b.display)
    t.ok("delete", "cm", "w1", "-n", ns)
    if not b.wait_for(lambda _: any(e[0] == "DELETED" for e in events()), 20):
        raise Failure("watch shows DELETED after delete", "DELETED", f"{events()} stderr={b.err}", b.display)
    b.stop()
    # table-mode watch over the namespace: a new object appears as a new row
    b2 = t.bg("get", "cm", "-n", ns, "-w")
    b2.wait_for(lambda out: "NAME" in out or "No resources" in b2.err, 3)
    time.sleep(0.5)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w2"}, "data": {"a": "b"}}, ns)
    if not b2.wait_for(lambda out: re.search(r"^w2\s+1\s+\S+$", out, re.M) is not None, 20):
        raise Failure("table watch shows the new configmap row", "a row `w2   1   0s`", f"{b2.out!r} stderr={b2.err}",
                      b2.display)
    b2.stop()
    # raw watch from a resourceVersion: the stream starts after it
    rv = t.ok("get", "cm", "w2", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
    b3 = t.bg("get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}")
    time.sleep(1)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w3"}}, ns)
    ok = b3.wait_for(lambda out: any(jget(e, "object.metadata.name") == "w3" for e in parse_json_stream(out)), 20)
    evs = [(e.get("type"), jget(e, "object.metadata.name")) for e in parse_json_stream(b3.out)]
    if not ok:
        raise Failure("raw watch from resourceVersion sees the new object", "ADDED w3", f"{evs} stderr={b3.err}",
                      b3.display)
    t.eq(evs[0], ("ADDED", "w3"), "raw watch from the latest resourceVersion starts with the new object only")
    b3.stop()


@scenario
def watch_resume_and_timeout(t: T) -> None:
    """a watch from an older resourceVersion replays the changes since; timeoutSeconds ends the stream."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r"}, "data": {"v": "1"}}, ns)
    rv1 = t.ok("get", "cm", "r", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
    for v in ("2", "3"):
        o = t.json("get", "cm", "r", "-n", ns)
        o["data"]["v"] = v
        t.ok("replace", "-f", "-", stdin=json.dumps(o))
    t.ok("delete", "cm", "r", "-n", ns)
    start = time.time()
    out = t.ok("get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv1}&timeoutSeconds=2",
               timeout=30)
    took = time.time() - start
    evs = [(e.get("type"), jget(e, "object.data.v")) for e in parse_json_stream(out)]
    t.eq([e for e in evs if e[0] != "BOOKMARK"], [("MODIFIED", "2"), ("MODIFIED", "3"), ("DELETED", "3")],
         "events replayed after the older resourceVersion")
    t.true(took < 10, "timeoutSeconds=2 ends the watch", f"{took:.1f}s")
    rvs = [int(jget(e, "object.metadata.resourceVersion", "0")) for e in parse_json_stream(out)]
    t.eq(rvs, sorted(rvs), "events come in resourceVersion order")
    t.true(all(r > int(rv1) for r in rvs), "all events are newer than the resourceVersion asked for", (rv1, rvs))
    lst = t.raw(f"/api/v1/namespaces/{ns}/configmaps?resourceVersion={rv1}&resourceVersionMatch=Exact")
    t.eq([(i["metadata"]["name"], jget(i, "data.v")) for i in lst.get("items", [])], [(ROOT_CA, None), ("r", "1")],
         "list at an exact older resourceVersion shows the state then")
    t.eq(jget(lst, "metadata.resourceVersion"), rv1, "list metadata.resourceVersion is the one asked for")


@scenario
def watch_selector_transitions(t: T) -> None:
    """a watch with -l sees DELETED when an object stops matching and ADDED when it matches again."""
    ns = t.namespace()
    b = t.bg("get", "cm", "-n", ns, "-l", "app=x", "-w", "--output-watch-events", "-o", "json")
    time.sleep(1)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "labels": {"app": "x"}}}, ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "labels": {"app": "y"}}}, ns)

    def events():
        return [(e.get("type"), jget(e, "object.metadata.name"), jget(e, "object.metadata.labels.app"))
                for e in parse_json_stream(b.out)]

    if not b.wait_for(lambda _: ("ADDED", "s", "x") in events(), 20):
        raise Failure("watch -l shows the matching object", "ADDED s", f"{events()} stderr={b.err}", b.display)
    o = t.json("get", "cm", "s", "-n", ns)
    o["metadata"]["labels"]["app"] = "y"
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    if not b.wait_for(lambda _: any(e[0] == "DELETED" and e[1] == "s" for e in events()), 20):
        raise Failure("watch -l shows DELETED when the object stops matching", "DELETED s",
                      f"{events()} stderr={b.err}", b.display)
    o = t.json("get", "cm", "s", "-n", ns)
    o["metadata"]["labels"]["app"] = "x"
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    if not b.wait_for(lambda _: [e[0] for e in events() if e[1] == "s"] == ["ADDED", "DELETED", "ADDED"], 20):
        raise Failure("watch -l shows ADDED when the object matches again", "ADDED, DELETED, ADDED",
                      f"{events()} stderr={b.err}", b.display)
    t.true(all(e[1] != "other" for e in events()), "the non-matching object never shows", events())


@scenario
def pod_binding(t: T) -> None:
    """POST pods/{name}/binding (what a scheduler does) sets spec.nodeName and the PodScheduled condition."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/pods/p/binding", body=json.dumps(binding).encode(),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 201, f"HTTP status of the binding (body {body})")
    st = json.loads(body)
    t.eq((st.get("kind"), st.get("status"), st.get("code")), ("Status", "Success", 201), "binding answer")
    o = t.json("get", "pod", "p", "-n", ns)
    t.eq(jget(o, "spec.nodeName"), "node-a", "spec.nodeName after binding")
    conds = {c.get("type"): c.get("status") for c in jget(o, "status.conditions", [])}
    t.eq(conds.get("PodScheduled"), "True", "PodScheduled condition")
    out = t.ok("get", "pod", "p", "-n", ns, "-o", "wide")
    t.eq(t.row(t.table(out), "p", "get pod -o wide").get("NODE"), "node-a", "NODE column")
    t.eq(sorted(n.split("/", 1)[1] for n in t.names(t.ok("get", "pods", "-n", ns, "--field-selector",
                                                          "spec.nodeName=node-a", "-o", "name"))), ["p"],
         "field selector spec.nodeName=node-a")
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/pods/p/binding", body=json.dumps(binding).encode(),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 409, "binding an already bound pod is a 409")
    t.status_error(body, 409, "Conflict", "second binding")


@scenario
def wait_for_delete(t: T) -> None:
    """delete with a finalizer leaves a terminating object; wait --for=delete returns once replace drops it."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}, ns)
    out = t.ok("delete", "cm", "held", "-n", ns, "--wait=false")
    t.eq(out.strip(), 'configmap "held" deleted', "delete --wait=false output")
    o = t.json("get", "cm", "held", "-n", ns)
    t.true(bool(TS_RE.match(jget(o, "metadata.deletionTimestamp", ""))), "deletionTimestamp is set", o["metadata"])
    t.eq(jget(o, "metadata.finalizers"), ["example.com/hold"], "finalizers kept")
    w = t.bg("wait", "--for=delete", "cm/held", "-n", ns, "--timeout=60s")
    time.sleep(1.5)
    t.true(w.proc.poll() is None, "kubectl wait still waiting while the finalizer is there",
           f"exited {w.proc.poll()}: {w.out} {w.err}")
    o["metadata"]["finalizers"] = []
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    rc = w.wait_exit(30)
    t.eq(rc, 0, f"kubectl wait exit code (stdout={w.out!r} stderr={w.err!r})")
    t.eq(w.out.strip(), "configmap/held condition met", "kubectl wait output")
    t.eq(t.fails("get", "cm", "held", "-n", ns), NOT_FOUND.format(res="configmaps", name="held"), "gone after wait")


@scenario
def chunked_list(t: T) -> None:
    """get --chunk-size=2 over 10 objects lists all 10 in several requests carrying `continue`."""
    ns = t.namespace()
    for i in range(10):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"chunk-{i:02d}"}}, ns)
    r = t.run("get", "cm", "-n", ns, "--chunk-size=2", "-o", "name", "-v=6")
    if r.rc != 0:
        raise Failure("exit code 0", "exit 0", r.both(), r.cmd)
    names = [ln for ln in r.out.splitlines() if ln]
    t.eq(names, [f"configmap/chunk-{i:02d}" for i in range(10)] + [f"configmap/{ROOT_CA}"],
         "all 11 configmaps (with the root CA one), in order, once each")
    reqs = re.findall(r"/configmaps\?[^\s\"]*", r.err)
    t.true(len(reqs) >= 5, "at least 5 list requests at --chunk-size=2", r.err)
    t.true(all("limit=2" in q for q in reqs), "every request has limit=2", reqs)
    t.true(sum("continue=" in q for q in reqs) >= 4, "at least 4 requests carry continue=", reqs)
    out = t.ok("get", "cm", "-n", ns, "--chunk-size=3")
    t.eq([r["NAME"] for r in t.table(out)], [f"chunk-{i:02d}" for i in range(10)] + [ROOT_CA],
         "chunked table output")
    first = t.raw(f"/api/v1/namespaces/{ns}/configmaps?limit=3")
    t.eq([i["metadata"]["name"] for i in first["items"]], ["chunk-00", "chunk-01", "chunk-02"], "first page")
    t.true(bool(jget(first, "metadata.continue")), "first page has metadata.continue", first.get("metadata"))
    seen = [i["metadata"]["name"] for i in first["items"]]
    cont = jget(first, "metadata.continue")
    pages = 1
    while cont and pages < 10:
        page = t.raw(f"/api/v1/namespaces/{ns}/configmaps?limit=3&continue={urllib.parse.quote(cont)}")
        t.eq(jget(page, "metadata.resourceVersion"), jget(first, "metadata.resourceVersion"),
             "every page is served at the first page's resourceVersion")
        seen += [i["metadata"]["name"] for i in page["items"]]
        cont = jget(page, "metadata.continue")
        pages += 1
    t.eq(seen, [f"chunk-{i:02d}" for i in range(10)] + [ROOT_CA], "pages add up to the whole list")
    t.eq(pages, 4, "11 objects at limit=3 take 4 pages")
    status, body = t.https("GET", f"/api/v1/namespaces/{ns}/configmaps?limit=3&continue=garbage")
    t.eq(status, 400, "a malformed continue token is a 400")
    t.last_cmd = f"kubectl get --raw '/api/v1/namespaces/{ns}/configmaps?limit=3'"
    t.eq(jget(first, "metadata.remainingItemCount"), 8, "metadata.remainingItemCount of the first page")


@scenario
def large_list(t: T) -> None:
    """600 objects: kubectl's default --chunk-size=500 takes two pages; the namespace deletes them all."""
    ns = t.namespace()
    docs = "\n---\n".join(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i:03d}\ndata:\n  i: \"{i}\"\n"
                           for i in range(600))
    start = time.time()
    out = t.ok("create", "-n", ns, "-f", "-", stdin=docs, timeout=180)
    t.eq(len(out.splitlines()), 600, "600 created lines")
    created = time.time() - start
    r = t.run("get", "cm", "-n", ns, "--no-headers", "-v=6", timeout=60)
    t.eq(r.rc, 0, f"get exit code ({r.err[-500:]})")
    t.eq(len(r.out.splitlines()), 601, "600 rows and the root CA ConfigMap")
    reqs = re.findall(r"/configmaps\?[^\s\"]*", r.err)
    t.eq(len(reqs), 2, f"two pages at the default chunk size (requests: {reqs})")
    t.true("limit=500" in reqs[0] and "continue=" in reqs[1], "limit=500 then continue", reqs)
    t.true(created < 120, "600 creates in under 2 minutes", f"{created:.1f}s")
    out = t.ok("delete", "namespace", ns, timeout=120)
    t.eq(out.strip(), f'namespace "{ns}" deleted', "delete of a namespace with 600 objects")
    t.eq(t.raw(f"/api/v1/namespaces/{ns}/configmaps").get("items"), [], "all 600 gone")


@scenario
def large_objects(t: T) -> None:
    """a 900 KB configmap round-trips byte for byte; one over 1 MiB of data is Invalid (Too long)."""
    ns = t.namespace()
    blob = "".join(chr(ord("a") + (i * 7919) % 26) for i in range(900 * 1024))
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"blob": blob}}, ns)
    got = t.json("get", "cm", "big", "-n", ns)
    t.true(jget(got, "data.blob") == blob, "900 KB of data read back unchanged", len(jget(got, "data.blob", "")))
    err = t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"blob": blob + blob[:200 * 1024]}}))
    t.match(err, r'^The ConfigMap "huge" is invalid: .*Too long', "over 1 MiB of data")


@scenario
def many_watchers(t: T) -> None:
    """10 concurrent watches on one namespace all see a new object."""
    ns = t.namespace()
    ws = [t.bg("get", "cm", "-n", ns, "-w", "--output-watch-events", "-o", "name") for _ in range(10)]
    time.sleep(2)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}}, ns)
    missing = [i for i, w in enumerate(ws) if not w.wait_for(lambda out: "configmap/seen" in out, 20)]
    t.eq(missing, [], f"watchers that did not see the object (stderr of the first: {ws[missing[0]].err if missing else ''})")


@scenario
def error_not_found(t: T) -> None:
    """get of a missing object prints `Error from server (NotFound): pods "nope" not found`."""
    ns = t.namespace()
    t.eq(t.fails("get", "pod", "nope", "-n", ns), 'Error from server (NotFound): pods "nope" not found', "get pod nope")
    t.eq(t.fails("get", "deploy", "nope", "-n", ns), 'Error from server (NotFound): deployments.apps "nope" not found',
         "get deploy nope")
    t.eq(t.fails("get", "node", "nope"), 'Error from server (NotFound): nodes "nope" not found', "get node nope")
    t.eq(t.fails("delete", "cm", "nope", "-n", ns), 'Error from server (NotFound): configmaps "nope" not found',
         "delete cm nope")
    status, body = t.https("GET", f"/api/v1/namespaces/{ns}/pods/nope")
    t.eq(status, 404, "HTTP status")
    st = t.status_error(body, 404, "NotFound", "GET missing pod")
    t.eq(st.get("message"), 'pods "nope" not found', "Status message")
    t.eq(st.get("details"), {"name": "nope", "kind": "pods"}, "Status details")
    status, body = t.https("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    st = t.status_error(body, 404, "NotFound", "GET missing deployment")
    t.eq(st.get("details"), {"name": "nope", "group": "apps", "kind": "deployments"}, "Status details with group")
    err = t.fails("get", "foos")
    t.eq(err, 'error: the server doesn\'t have a resource type "foos"', "unknown resource type")
    status, body = t.https("GET", "/api/v1/foos")
    t.eq(status, 404, "unknown resource path is a 404")


@scenario
def error_already_exists(t: T) -> None:
    """creating an object twice prints `Error from server (AlreadyExists): ... already exists`."""
    ns = t.namespace()
    m = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}}
    t.create(m, ns)
    err = t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(m))
    t.eq(err, 'Error from server (AlreadyExists): error when creating "STDIN": configmaps "dup" already exists',
         "second create")
    err = t.fails("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": ns}}))
    t.eq(err, f'Error from server (AlreadyExists): error when creating "STDIN": namespaces "{ns}" already exists',
         "create namespace twice")
    t.create(DEPLOYMENT.format(name="dup", labels=""), ns)
    err = t.fails("create", "-n", ns, "-f", "-", stdin=DEPLOYMENT.format(name="dup", labels=""))
    t.eq(err, 'Error from server (AlreadyExists): error when creating "STDIN": deployments.apps "dup" already exists',
         "second create of a deployment")


RFC1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                     "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                     "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
RFC1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


@scenario
def error_invalid(t: T) -> None:
    """invalid names and specs print upstream's `The X "n" is invalid: field: ...` messages."""
    ns = t.namespace()
    err = t.fails("create", "-n", ns, "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}))
    t.eq(err, f'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {RFC1123_SUBDOMAIN}',
         "configmap with an invalid name")
    err = t.fails("create", "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad.Name"}}))
    t.eq(err, f'The Namespace "Bad.Name" is invalid: metadata.name: Invalid value: "Bad.Name": {RFC1123_LABEL}',
         "namespace with an invalid name")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}}))
    t.eq(err, 'The Pod "empty" is invalid: spec.containers: Required value', "pod without containers")
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/configmaps",
                           body=json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "Bad_Name"}}).encode(),
                           headers={"Content-Type": "application/json"})
    t.eq(status, 422, "HTTP status of an invalid object")
    st = t.status_error(body, 422, "Invalid", "invalid configmap")
    t.eq(jget(st, "details.causes.0.field"), "metadata.name", "details.causes[0].field")
    t.eq(jget(st, "details.causes.0.reason"), "FieldValueInvalid", "details.causes[0].reason")


@scenario
def error_invalid_workloads(t: T) -> None:
    """workload validation: a deployment whose selector does not match its template labels is Invalid."""
    ns = t.namespace()
    bad = DEPLOYMENT.format(name="bad", labels="").replace("        app: web\n", "        app: other\n")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=bad)
    t.match(err, r'^The Deployment "bad" is invalid: spec\.template\.metadata\.labels: Invalid value: '
                 r'(map\[string\]string\{"app":"other"\}|\{"app":"other"\}): `selector` does not match template '
                 r'`labels`$', "deployment with a selector that does not match")
    t.eq(t.fails("get", "deploy", "bad", "-n", ns), NOT_FOUND.format(res="deployments.apps", name="bad"),
         "nothing stored")


@scenario
def workload_update_validation(t: T) -> None:
    """immutable workload fields (deployment selector, job template), template and strategy rules, cron syntax."""
    ns = t.namespace()
    t.ok("create", "deployment", "web", "-n", ns, "--image=nginx")
    before = t.json("get", "deploy", "web", "-n", ns)["metadata"]["resourceVersion"]
    err = t.fails("patch", "deploy", "web", "-n", ns, "-p", '{"spec":{"selector":{"matchLabels":{"app":"x"}}}}')
    t.contains(err, 'The Deployment "web" is invalid: ', "selector change")
    t.contains(err, '* spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, '
                    'MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable', "selector change")
    err = t.fails("patch", "deploy", "web", "-n", ns, "--type=merge",
                  "-p", '{"spec":{"template":{"spec":{"restartPolicy":"OnFailure"}}}}')
    t.eq(err, 'The Deployment "web" is invalid: spec.template.spec.restartPolicy: Unsupported value: "OnFailure": '
              'supported values: "Always"', "template restartPolicy")
    err = t.fails("patch", "deploy", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"strategy":{"type":"Recreate"}}}')
    t.eq(err, 'The Deployment "web" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when '
              "strategy `type` is 'Recreate'", "Recreate with rollingUpdate")
    t.eq(t.json("get", "deploy", "web", "-n", ns)["metadata"]["resourceVersion"], before,
         "rejected updates change nothing")
    for cmd in (["scale", "deploy", "web", "--replicas=3"], ["set", "image", "deploy/web", "nginx=nginx:1.27"],
                ["label", "deploy", "web", "tier=front"], ["annotate", "deploy", "web", "note=x"]):
        t.ok(*cmd, "-n", ns)
    err = t.fails("create", "cronjob", "c2", "-n", ns, "--image=busybox", "--schedule=bad")
    t.eq(err, 'error: failed to create cronjob: CronJob.batch "c2" is invalid: spec.schedule: Invalid value: "bad": '
              "expected exactly 5 fields, found 1: [bad]", "bad cron schedule")
    t.ok("create", "cronjob", "c1", "-n", ns, "--image=busybox", "--schedule=*/5 * * * *")
    t.ok("create", "job", "j", "-n", ns, "--image=busybox", "--", "echo", "hi")
    err = t.fails("set", "image", "job/j", "-n", ns, "j=busybox:2")
    t.match(err, r'^error: failed to patch image update to pod template: Job\.batch "j" is invalid: spec\.template: '
                 r'Invalid value: .*: field is immutable$', "job template change")
    t.ok("label", "job", "j", "-n", ns, "a=b")


@scenario
def pod_validation(t: T) -> None:
    """pod spec rules (restartPolicy, ports, volume mounts, requests vs limits) and what a pod update may change."""
    ns = t.namespace()
    err = t.fails("run", "bad1", "-n", ns, "--image=nginx", "--restart=Never",
                  "--overrides", '{"spec":{"restartPolicy":"Sometimes"}}')
    t.eq(err, 'The Pod "bad1" is invalid: spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
              '"Always", "OnFailure", "Never"', "restartPolicy")
    err = t.fails("run", "bad2", "-n", ns, "--image=nginx", "--port=70000")
    t.eq(err, 'The Pod "bad2" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be '
              'between 1 and 65535, inclusive', "containerPort range")
    bad3 = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bad3}\nspec:\n  containers:\n  - name: c\n"
            "    image: nginx\n    resources: {requests: {cpu: \"2\"}, limits: {cpu: \"1\"}}\n"
            "    volumeMounts: [{name: missing, mountPath: /data}]\n")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=bad3)
    t.contains(err, 'The Pod "bad3" is invalid: \n', "several causes")
    t.contains(err, '* spec.containers[0].volumeMounts[0].name: Not found: "missing"', "volume mount")
    t.contains(err, '* spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu '
                    'limit of 1', "requests above limits")
    bad4 = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bad4}\nspec:\n  containers:\n  - name: c\n"
            "    image: nginx\n    resources: {limits: {cpu: abc}}\n")
    t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=bad4),
         'Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as a Pod: '
         "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
         "a quantity that does not parse is refused at decoding")
    for name in ("bad1", "bad2", "bad3", "bad4"):
        t.eq(t.fails("get", "pod", name, "-n", ns), NOT_FOUND.format(res="pods", name=name), "nothing stored")
    t.ok("run", "nginx", "-n", ns, "--image=nginx")
    err = t.fails("patch", "pod", "nginx", "-n", ns,
                  "-p", '{"spec":{"containers":[{"name":"nginx","ports":[{"containerPort":81}]}]}}')
    t.eq(err, 'The Pod "nginx" is invalid: spec: Forbidden: pod updates may not change fields other than '
              '`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,'
              '`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` '
              '(allow it to be set to 1 if it was previously negative)', "pod spec change")
    for cmd in (["label", "pod", "nginx", "a=b"], ["annotate", "pod", "nginx", "x=y"],
                ["set", "image", "pod/nginx", "nginx=nginx:1.27"]):
        t.ok(*cmd, "-n", ns)
    pod = t.json("get", "pod", "nginx", "-n", ns)
    t.eq(jget(pod, "spec.containers")[0]["image"], "nginx:1.27", "image updates are allowed")
    out = t.ok("replace", "-n", ns, "-f", "-", stdin=json.dumps(pod))
    t.eq(out.strip(), "pod/nginx replaced", "replace with the pod's own body")


@scenario
def immutable_fields(t: T) -> None:
    """fields that may not change once set: service clusterIP, immutable configmaps, secret type, roleRef,
    priority class value; node ports out of range; quota and ingress rules."""
    ns = t.namespace()
    t.ok("create", "service", "clusterip", "s", "-n", ns, "--tcp=80:8080")
    err = t.fails("patch", "svc", "s", "-n", ns, "-p", '{"spec":{"clusterIP":"10.96.99.99"}}')
    t.eq(err, 'The Service "s" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.99.99"}: may not '
              'change once set', "service clusterIP")
    err = t.fails("create", "service", "nodeport", "np", "-n", ns, "--tcp=80:8080", "--node-port=80")
    t.eq(err, 'error: failed to create NodePort service: Service "np" is invalid: spec.ports[0].nodePort: Invalid '
              'value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767',
         "node port range")
    t.ok("create", "service", "nodeport", "np", "-n", ns, "--tcp=80:8080")
    t.ok("patch", "svc", "np", "-n", ns, "-p", '{"spec":{"type":"ClusterIP"}}')
    svc = t.json("get", "svc", "np", "-n", ns)
    t.eq([p.get("nodePort") for p in jget(svc, "spec.ports")], [None], "a ClusterIP service has no node ports")
    t.ok("create", "configmap", "c", "-n", ns, "--from-literal=a=b")
    t.ok("patch", "cm", "c", "-n", ns, "-p", '{"immutable":true}')
    err = t.fails("patch", "cm", "c", "-n", ns, "-p", '{"data":{"a":"c"}}')
    t.eq(err, 'The ConfigMap "c" is invalid: data: Forbidden: field is immutable when `immutable` is set',
         "immutable configmap")
    t.eq(jget(t.json("get", "cm", "c", "-n", ns), "data"), {"a": "b"}, "immutable data kept")
    t.ok("create", "secret", "generic", "sec", "-n", ns, "--from-literal=p=q")
    err = t.fails("patch", "secret", "sec", "-n", ns, "-p", '{"type":"foo"}')
    t.eq(err, 'The Secret "sec" is invalid: type: Invalid value: "foo": field is immutable', "secret type")
    t.ok("create", "rolebinding", "rb", "-n", ns, "--clusterrole=view", "--user=jane")
    err = t.fails("patch", "rolebinding", "rb", "-n", ns, "-p", '{"roleRef":{"name":"edit"}}')
    t.eq(err, 'The RoleBinding "rb" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:'
              '"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef', "roleRef")
    pc = f"{ns}-high"
    t.ok("create", "priorityclass", pc, "--value=1000")
    err = t.fails("patch", "priorityclass", pc, "-p", '{"value":2000}')
    t.eq(err, f'The PriorityClass "{pc}" is invalid: value: Forbidden: may not be changed in an update.',
         "priority class value")
    t.ok("delete", "priorityclass", pc)
    err = t.fails("create", "quota", "q", "-n", ns, "--hard=pods=10,foo=1")
    t.eq(err, 'error: failed to create quota: ResourceQuota "q" is invalid: [spec.hard[foo]: Invalid value: "foo": '
              'must be a standard resource type or fully qualified, spec.hard[foo]: Invalid value: "foo": must be a '
              'standard resource for quota]', "quota resource names")
    err = t.fails("create", "ingress", "ing2", "-n", ns, "--rule=Foo.com/bar=svc:80")
    t.match(err, r'^error: failed to create ingress: Ingress\.networking\.k8s\.io "ing2" is invalid: '
                 r'spec\.rules\[0\]\.host: Invalid value: "Foo\.com": a lowercase RFC 1123 subdomain must', "host")


CRONTAB_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Image, type: string, priority: 1, jsonPath: .spec.image}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string, pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'}
              image: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
"""


@scenario
def custom_resources(t: T) -> None:
    """a CRD is served at once: established condition, discovery, table columns, schema defaults/pruning/
    validation, merge/JSON patches (strategic refused), scale, server-side apply, explain, deletion cascade."""
    ns = t.namespace()
    t.eq(t.ok("apply", "-f", "-", stdin=CRONTAB_CRD).strip(),
         "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created", "apply CRD")
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/crontabs.stable.example.com")
    api = t.ok("api-resources", "--api-group=stable.example.com")
    t.match(api, r"^crontabs\s+ct\s+stable\.example\.com/v1\s+true\s+CronTab\s*$", "api-resources row")
    ct = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: my-cron}\n"
          "spec: {cronSpec: '* * * * */5', image: my-awesome-cron-image}\n")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=ct).strip(), "crontab.stable.example.com/my-cron created", "apply CR")
    rows = t.table(t.ok("get", "ct", "-n", ns))
    t.eq([(r["NAME"], r["SPEC"], r["REPLICAS"]) for r in rows], [("my-cron", "* * * * */5", "1")],
         "printer columns, replicas defaulted by the schema")
    t.headers(t.ok("get", "crontabs", "-n", ns, "-o", "wide"), ["NAME", "SPEC", "REPLICAS", "IMAGE", "AGE"], "wide")
    t.eq(t.ok("apply", "-n", ns, "-f", "-", stdin=ct).strip(), "crontab.stable.example.com/my-cron unchanged",
         "re-apply is a no-op")
    t.ok("patch", "ct", "my-cron", "-n", ns, "--type=merge", "-p", '{"spec":{"image":"img2"}}')
    t.ok("patch", "ct", "my-cron", "-n", ns, "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
    err = t.fails("patch", "ct", "my-cron", "-n", ns, "-p", '{"spec":{"image":"img3"}}')
    t.contains(err, "application/strategic-merge-patch+json is not supported by stable.example.com/v1, Kind=CronTab: "
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
               "strategic merge patch on a custom resource")
    t.eq(t.ok("scale", "ct/my-cron", "-n", ns, "--replicas=3").strip(), "crontab.stable.example.com/my-cron scaled",
         "scale")
    obj = t.json("get", "ct", "my-cron", "-n", ns)
    t.eq((jget(obj, "spec.image"), jget(obj, "spec.replicas")), ("img2", 3), "patches and scale stored")
    bad = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\n"
           "spec: {cronSpec: '* * * *', replicas: string, foo: 1}\n")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=bad)
    t.contains(err, 'strict decoding error: unknown field "spec.foo"', "unknown field in a custom resource")
    err = t.fails("create", "-n", ns, "--validate=false", "-f", "-", stdin=bad)
    t.contains(err, 'The CronTab "bad" is invalid: ', "schema validation")
    t.contains(err, '* spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
               "type error")
    ssa = ("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: applied}\n"
           "spec: {cronSpec: '*/1 * * * *', image: x}\n")
    t.eq(t.ok("apply", "--server-side", "-n", ns, "-f", "-", stdin=ssa).strip(),
         "crontab.stable.example.com/applied serverside-applied", "server-side apply")
    t.contains(t.ok("explain", "crontab.spec"), "replicas\t<integer>", "explain from the CRD schema")
    t.true("crontab.stable.example.com/my-cron" in t.ok("get", "all", "-n", ns, "-o", "name"),
           "category all", t.last_cmd)
    t.ok("delete", "crd", "crontabs.stable.example.com")
    # With kubectl's discovery cache still listing the kind, upstream answers the list itself with a 404.
    t.match(t.fails("get", "crontabs", "-n", ns),
            r'^(error: the server doesn\'t have a resource type "crontabs"|Error from server \(NotFound\): Unable to '
            r'list "stable\.example\.com/v1, Resource=crontabs": the server could not find the requested resource)$',
            "the resource is gone with its CRD")
    t.ok("apply", "-f", "-", stdin=CRONTAB_CRD)
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/crontabs.stable.example.com")
    t.eq(t.ok("get", "crontabs", "-A", "-o", "name").strip(), "", "custom resources were deleted with their CRD")
    t.ok("delete", "crd", "crontabs.stable.example.com")


@scenario
def protected_namespaces(t: T) -> None:
    """default, kube-system and kube-public may not be deleted (Forbidden, even as a dry run)."""
    err = t.fails("delete", "namespace", "kube-public")
    t.eq(err, 'Error from server (Forbidden): namespaces "kube-public" is forbidden: this namespace may not be deleted',
         "delete namespace kube-public")
    for ns in ("default", "kube-system", "kube-public"):
        err = t.fails("delete", "namespace", ns, "--dry-run=server")
        t.eq(err, f'Error from server (Forbidden): namespaces "{ns}" is forbidden: this namespace may not be deleted',
             f"delete namespace {ns}")
    t.eq(t.ok("get", "ns", "default", "-o", "jsonpath={.status.phase}"), "Active", "default still Active")


@scenario
def error_bad_requests(t: T) -> None:
    """raw API: namespace/name mismatches and malformed bodies are 400 BadRequest; deletecollection works."""
    ns = t.namespace()
    js = {"Content-Type": "application/json"}
    cm = lambda name, **md: json.dumps({"apiVersion": "v1", "kind": "ConfigMap",  # noqa: E731
                                        "metadata": {"name": name, **md}}).encode()
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/configmaps", body=cm("m", namespace="other"), headers=js)
    st = t.status_error(body, 400, "BadRequest", "POST with another namespace in the body")
    t.eq(st.get("message"), "the namespace of the provided object does not match the namespace sent on the request",
         "namespace mismatch message")
    status, body = t.https("POST", f"/api/v1/namespaces/{ns}/configmaps", body=b'{"apiVersion": "v1", "kind": ',
                           headers=js)
    t.status_error(body, 400, "BadRequest", "POST of malformed JSON")
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"del": "yes"}}}, ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"del": "yes"}}}, ns)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}}, ns)
    status, body = t.https("PUT", f"/api/v1/namespaces/{ns}/configmaps/a", body=cm("b"), headers=js)
    st = t.status_error(body, 400, "BadRequest", "PUT with another name in the body")
    t.eq(st.get("message"), "the name of the object (b) does not match the name on the URL (a)", "name mismatch")
    status, body = t.https("DELETE", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=del%3Dyes")
    t.eq(status, 200, f"deletecollection status (body {body[:300]})")
    left = sorted(n.split("/", 1)[1] for n in t.names(t.ok("get", "cm", "-n", ns, "-o", "name")))
    t.eq(left, ["keep", ROOT_CA], "deletecollection removed only the selected objects")


@scenario
def error_missing_namespace(t: T) -> None:
    """creating in a missing namespace prints `Error from server (NotFound): ... namespaces "x" not found`."""
    err = t.fails("create", "-n", "no-such-ns", "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    t.eq(err, 'Error from server (NotFound): error when creating "STDIN": namespaces "no-such-ns" not found',
         "create in a missing namespace")
    r = t.run("get", "cm", "-n", "no-such-ns")
    t.eq((r.rc, r.out, r.err.strip()), (0, "", "No resources found in no-such-ns namespace."),
         "listing a missing namespace is an empty list")


@scenario
def error_conflict(t: T) -> None:
    """replace with a stale resourceVersion prints upstream's Conflict message."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": "1"}}, ns)
    stale = t.json("get", "cm", "c", "-n", ns)
    fresh = json.loads(json.dumps(stale))
    fresh["data"]["v"] = "2"
    t.ok("replace", "-f", "-", stdin=json.dumps(fresh))
    stale["data"]["v"] = "3"
    err = t.fails("replace", "-f", "-", stdin=json.dumps(stale))
    t.eq(err, 'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
              'configmaps "c": the object has been modified; please apply your changes to the latest version and '
              'try again', "stale replace")
    t.eq(t.ok("get", "cm", "c", "-n", ns, "-o", "jsonpath={.data.v}"), "2", "the stale write did not land")
    # an update without resourceVersion is unconditional
    del stale["metadata"]["resourceVersion"]
    t.ok("replace", "-f", "-", stdin=json.dumps(stale))
    t.eq(t.ok("get", "cm", "c", "-n", ns, "-o", "jsonpath={.data.v}"), "3", "unconditional replace landed")
    # replace of an object that does not exist
    err = t.fails("replace", "-n", ns, "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost"}}))
    t.eq(err, 'Error from server (NotFound): error when replacing "STDIN": configmaps "ghost" not found',
         "replace of a missing object")


@scenario
def error_unknown_field(t: T) -> None:
    """unknown fields are rejected with upstream's strict-decoding BadRequest; --validate=false drops them."""
    ns = t.namespace()
    bad = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "spec": {"x": 1}})
    err = t.fails("create", "-n", ns, "-f", "-", stdin=bad)
    t.eq(err, 'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be '
              'handled as a ConfigMap: strict decoding error: unknown field "spec"', "create with an unknown field")
    out = t.ok("create", "-n", ns, "--validate=false", "-f", "-", stdin=bad)
    t.eq(out.strip(), "configmap/u created", "create --validate=false")
    t.true("spec" not in t.json("get", "cm", "u", "-n", ns), "the unknown field is dropped", t.last_cmd)


@scenario
def generate_name(t: T) -> None:
    """metadata.generateName gets a random 5-character suffix; create prints the generated name."""
    ns = t.namespace()
    m = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    names = set()
    for _ in range(3):
        out = t.create(m, ns)
        names.add(t.match(out, r"^configmap/(gen-[a-z0-9]{5}) created$", "create output with generateName").group(1))
    t.eq(len(names), 3, "three distinct generated names")
    listed = {n.split("/", 1)[1] for n in t.names(t.ok("get", "cm", "-n", ns, "-o", "name"))}
    t.true(names <= listed, "generated objects are listed", listed)
    o = t.json("get", "cm", sorted(names)[0], "-n", ns)
    t.eq(jget(o, "metadata.generateName"), "gen-", "metadata.generateName kept")


@scenario
def manifests_and_bulk_delete(t: T) -> None:
    """create -f with several YAML documents; get -f; delete -f; delete -l; delete --all."""
    ns = t.namespace()
    docs = "\n---\n".join([
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    group: one\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    group: one\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\ndata:\n  k: dg==\n",
    ])
    out = t.ok("create", "-n", ns, "-f", "-", stdin=docs)
    t.eq(out.splitlines(), ["configmap/a created", "configmap/b created", "secret/c created"], "create of 3 documents")
    out = t.ok("get", "-n", ns, "-f", "-", "-o", "name", stdin=docs)
    t.eq(out.splitlines(), ["configmap/a", "configmap/b", "secret/c"], "get -f")
    for n in ("d", "e", "f"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"group": "two"}}}, ns)
    out = t.ok("delete", "-n", ns, "-f", "-", stdin=docs)
    t.eq(out.splitlines(), ['configmap "a" deleted', 'configmap "b" deleted', 'secret "c" deleted'], "delete -f")
    out = t.ok("delete", "cm", "-n", ns, "-l", "group=two,name!=x")
    t.eq(sorted(out.splitlines()), ['configmap "d" deleted', 'configmap "e" deleted', 'configmap "f" deleted'],
         "delete -l")
    for n in ("g", "h"):
        t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}, ns)
    out = t.ok("delete", "cm", "--all", "-n", ns)
    t.eq(sorted(out.splitlines()), ['configmap "g" deleted', 'configmap "h" deleted', f'configmap "{ROOT_CA}" deleted'],
         "delete --all")
    t.true(poll(lambda: t.ok("get", "cm", "-n", ns, "-o", "name").split() == [f"configmap/{ROOT_CA}"], 10),
           "nothing left but the root CA ConfigMap, which its controller puts back", t.last_cmd)


@scenario
def create_list_manifest(t: T) -> None:
    """create -f of a kind: List document (kubectl validates it against the server's OpenAPI v2)."""
    ns = t.namespace()
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}} for n in ("d", "e")]}
    out = t.ok("create", "-n", ns, "-f", "-", stdin=json.dumps(lst))
    t.eq(out.splitlines(), ["configmap/d created", "configmap/e created"], "create of a List")


@scenario
def dry_run(t: T) -> None:
    """create/replace/delete --dry-run=server answer as if done and change nothing."""
    ns = t.namespace()
    m = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"v": "1"}}
    out = t.ok("create", "-n", ns, "--dry-run=server", "-f", "-", stdin=json.dumps(m))
    t.eq(out.strip(), "configmap/dry created (server dry run)", "create --dry-run=server output")
    t.eq(t.fails("get", "cm", "dry", "-n", ns), NOT_FOUND.format(res="configmaps", name="dry"), "nothing created")
    o = json.loads(t.ok("create", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(m)))
    t.eq((jget(o, "metadata.name"), jget(o, "data.v")), ("dry", "1"), "dry-run answer carries the object")
    t.true(bool(jget(o, "metadata.creationTimestamp")), "dry-run answer is defaulted by the server", o["metadata"])
    t.create(m, ns)
    before = t.json("get", "cm", "dry", "-n", ns)
    changed = json.loads(json.dumps(before))
    changed["data"]["v"] = "2"
    out = t.ok("replace", "--dry-run=server", "-f", "-", stdin=json.dumps(changed))
    t.eq(out.strip(), "configmap/dry replaced (server dry run)", "replace --dry-run=server output")
    out = t.ok("delete", "cm", "dry", "-n", ns, "--dry-run=server")
    t.eq(out.strip(), 'configmap "dry" deleted (server dry run)', "delete --dry-run=server output")
    after = t.json("get", "cm", "dry", "-n", ns)
    t.eq((after.get("data"), after["metadata"]["resourceVersion"]),
         (before.get("data"), before["metadata"]["resourceVersion"]), "object untouched by dry runs")


@scenario
def concurrent_conflicts(t: T) -> None:
    """8 concurrent replaces from the same resourceVersion: exactly one wins, the others get Conflict."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "race"}, "data": {"v": "0"}}, ns)
    base = t.json("get", "cm", "race", "-n", ns)
    procs = []
    for i in range(8):
        o = json.loads(json.dumps(base))
        o["data"]["v"] = str(i + 1)
        p = subprocess.Popen(t.base_cmd() + ["replace", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=kubectl_env(t.server.cache_dir))
        procs.append((p, json.dumps(o)))
    results = []
    for p, body in procs:
        out, err = p.communicate(body, timeout=60)
        results.append((p.returncode, out.strip(), err.strip()))
    t.last_cmd = "8 x kubectl replace -f - (same resourceVersion, in parallel)"
    wins = [r for r in results if r[0] == 0]
    t.eq(len(wins), 1, f"exactly one replace succeeds (results: {results})")
    for rc, out, err in results:
        if rc != 0:
            t.contains(err, "Error from server (Conflict)", "the losers get Conflict")
    final = t.ok("get", "cm", "race", "-n", ns, "-o", "jsonpath={.data.v}")
    t.true(final != "0", "the winner's write is stored", final)
    # and 8 concurrent creates of distinct objects all land
    procs = [subprocess.Popen(t.base_cmd() + ["create", "-n", ns, "-f", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=kubectl_env(t.server.cache_dir)) for _ in range(8)]
    for i, p in enumerate(procs):
        p.communicate(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"par-{i}"}}),
                      timeout=60)
    got = {n for n in t.names(t.ok("get", "cm", "-n", ns, "-o", "name")) if n.startswith("configmap/par-")}
    t.eq(len(got), 8, "8 parallel creates all stored")


@scenario
def events(t: T) -> None:
    """core/v1 events can be created and listed (kubectl get events columns, describe shows them)."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    uid = t.ok("get", "pod", "p", "-n", ns, "-o", "jsonpath={.metadata.uid}")
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
          "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns, "uid": uid},
          "reason": "Testing", "message": "hello from the conformance suite", "type": "Normal", "count": 1,
          "source": {"component": "conformance"},
          "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z"}
    t.eq(t.create(ev, ns), "event/p.1 created", "create event")
    out = t.ok("get", "events", "-n", ns)
    t.headers(out, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "get events")
    r = t.table(out)[0]
    t.eq((r["TYPE"], r["REASON"], r["OBJECT"], r["MESSAGE"]),
         ("Normal", "Testing", "pod/p", "hello from the conformance suite"), "event row")
    out = t.ok("describe", "pod", "p", "-n", ns)
    t.match(out, r"^\s+Normal\s+Testing\s+\S+\s+conformance\s+hello from the conformance suite$",
            "describe pod lists the event")


@scenario
def explain(t: T) -> None:
    """kubectl explain reads the server's OpenAPI v3 schema."""
    out = t.ok("explain", "configmap.data")
    t.match(out, r"^KIND:\s+ConfigMap$", "explain KIND")
    t.match(out, r"^VERSION:\s+v1$", "explain VERSION")
    t.match(out, r"^FIELD: data <map\[string\]string>$", "explain FIELD")
    out = t.ok("explain", "deployment.spec.replicas")
    t.match(out, r"^GROUP:\s+apps$", "explain GROUP")
    t.match(out, r"^FIELD: replicas <integer>$", "explain deployment.spec.replicas")


@scenario
def pod_force_delete(t: T) -> None:
    """delete --grace-period=0 --force prints upstream's warning and `force deleted`."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    r = t.run("delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
    t.eq(r.rc, 0, f"exit code ({r.both()})")
    t.eq(r.out.strip(), 'pod "p" force deleted', "stdout")
    t.contains(r.err, "Warning: Immediate deletion does not wait for confirmation that the running resource has "
                      "been terminated.", "stderr warning")
    t.eq(t.fails("get", "pod", "p", "-n", ns), NOT_FOUND.format(res="pods", name="p"), "gone")


@scenario
def replace_force(t: T) -> None:
    """replace --force deletes and re-creates the object (new uid)."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"}, "data": {"v": "1"}}, ns)
    old = t.json("get", "cm", "f", "-n", ns)
    out = t.ok("replace", "--force", "-n", ns, "-f", "-",
               stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"},
                                 "data": {"v": "2"}}))
    t.eq(out.splitlines(), ['configmap "f" deleted', "configmap/f replaced"], "replace --force output")
    new = t.json("get", "cm", "f", "-n", ns)
    t.eq(new.get("data"), {"v": "2"}, "data after replace --force")
    t.true(new["metadata"]["uid"] != old["metadata"]["uid"], "a new uid after replace --force",
           (old["metadata"]["uid"], new["metadata"]["uid"]))


@scenario
def wait_for_condition(t: T) -> None:
    """wait --for=condition=Available and --for=jsonpath return once a status write makes them true."""
    ns = t.namespace()
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.create(POD.format(name="p", labels=""), ns)
    w1 = t.bg("wait", "--for=condition=Available", "deploy/d", "-n", ns, "--timeout=60s")
    w2 = t.bg("wait", "--for=jsonpath={.status.phase}=Running", "pod/p", "-n", ns, "--timeout=60s")
    time.sleep(1.5)
    t.true(w1.proc.poll() is None and w2.proc.poll() is None, "both waits still waiting",
           (w1.out, w1.err, w2.out, w2.err))
    d = t.json("get", "deploy", "d", "-n", ns)
    d["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
                   "observedGeneration": 1, "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(d))
    t.eq(w1.wait_exit(30), 0, f"wait --for=condition exit code (stdout={w1.out!r} stderr={w1.err!r})")
    t.eq(w1.out.strip(), "deployment.apps/d condition met", "wait --for=condition output")
    p = t.json("get", "pod", "p", "-n", ns)
    p["status"]["phase"] = "Running"
    t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(p))
    t.eq(w2.wait_exit(30), 0, f"wait --for=jsonpath exit code (stdout={w2.out!r} stderr={w2.err!r})")
    t.eq(w2.out.strip(), "pod/p condition met", "wait --for=jsonpath output")
    r = t.run("wait", "--for=condition=Ready", "pod/p", "-n", ns, "--timeout=2s")
    t.eq(r.rc, 1, "wait that times out exits 1")
    t.eq(r.err.strip(), "error: timed out waiting for the condition on pods/p", "wait timeout message")


@scenario
def namespace_delete_cascade(t: T) -> None:
    """deleting a namespace removes the objects in it, then the namespace."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, ns)
    t.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}, ns)
    t.create(POD.format(name="p", labels=""), ns)
    t.create(DEPLOYMENT.format(name="d", labels=""), ns)
    t.create(JOB.format(name="j", labels=""), ns)
    out = t.ok("delete", "namespace", ns, timeout=120)
    t.eq(out.strip(), f'namespace "{ns}" deleted', "delete namespace output")
    t.eq(t.fails("get", "namespace", ns), f'Error from server (NotFound): namespaces "{ns}" not found',
         "namespace gone after delete returned")
    for path in (f"/api/v1/namespaces/{ns}/configmaps", f"/api/v1/namespaces/{ns}/secrets",
                 f"/api/v1/namespaces/{ns}/pods", f"/apis/apps/v1/namespaces/{ns}/deployments",
                 f"/apis/batch/v1/namespaces/{ns}/jobs"):
        t.eq(t.raw(path).get("items"), [], f"{path} is empty")


@scenario
def namespace_terminating(t: T) -> None:
    """a terminating namespace refuses new objects (Forbidden) and goes away once its content is gone."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, ns)
    t.eq(t.ok("delete", "namespace", ns, "--wait=false").strip(), f'namespace "{ns}" deleted', "delete output")
    phase = lambda: t.ok("get", "ns", ns, "-o", "jsonpath={.status.phase}")  # noqa: E731
    t.eq(phase(), "Terminating", "status.phase of a namespace being deleted")
    out = t.ok("get", "ns", ns)
    t.eq(t.row(t.table(out), ns, "get ns").get("STATUS"), "Terminating", "STATUS column")
    err = t.fails("create", "-n", ns, "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}))
    t.eq(err, f'Error from server (Forbidden): error when creating "STDIN": configmaps "late" is forbidden: unable '
              f'to create new content in namespace {ns} because it is being terminated', "create in terminating ns")
    if not poll(lambda: t.run("get", "cm", "held", "-n", ns, "-o", "jsonpath={.metadata.deletionTimestamp}").out != "",
                30):
        raise Failure("the held configmap gets a deletionTimestamp", "deletionTimestamp set",
                      t.run("get", "cm", "held", "-n", ns, "-o", "yaml").out, t.last_cmd)
    o = t.json("get", "cm", "held", "-n", ns)
    o["metadata"]["finalizers"] = []
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    gone = poll(lambda: t.run("get", "ns", ns).rc != 0, 60)
    t.true(gone, "namespace goes away once its last object is gone", t.run("get", "ns", ns, "-o", "yaml").out)


@scenario
def status_subresource(t: T) -> None:
    """replace ignores status changes; replace --subresource=status changes only status; generation tracks spec."""
    ns = t.namespace()
    t.create(DEPLOYMENT.format(name="st", labels=""), ns)
    o = t.json("get", "deploy", "st", "-n", ns)
    before = o.get("status", {})
    t.eq(jget(o, "metadata.generation"), 1, "generation after create")
    o["spec"]["replicas"] = 3
    o["status"] = {"replicas": 5, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 5}
    t.ok("replace", "-f", "-", stdin=json.dumps(o))
    o = t.json("get", "deploy", "st", "-n", ns)
    t.eq(jget(o, "spec.replicas"), 3, "spec.replicas replaced")
    t.eq(o.get("status", {}), before, "status unchanged by a main-resource replace")
    t.eq(jget(o, "metadata.generation"), 2, "generation after a spec change")
    o["spec"]["replicas"] = 7
    o["status"] = {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 3,
                   "observedGeneration": 2}
    out = t.ok("replace", "--subresource=status", "-f", "-", stdin=json.dumps(o))
    t.eq(out.strip(), "deployment.apps/st replaced", "replace --subresource=status output")
    o = t.json("get", "deploy", "st", "-n", ns)
    t.eq(jget(o, "spec.replicas"), 3, "spec unchanged by a status replace")
    t.eq((jget(o, "status.readyReplicas"), jget(o, "status.observedGeneration")), (2, 2), "status replaced")
    t.eq(jget(o, "metadata.generation"), 2, "generation unchanged by a status write")
    out = t.ok("get", "deploy", "st", "-n", ns)
    r = t.row(t.table(out), "st", "get deploy")
    t.eq((r["READY"], r["UP-TO-DATE"], r["AVAILABLE"]), ("2/3", "3", "2"), "table columns reflect status")
    st = t.raw(f"/apis/apps/v1/namespaces/{ns}/deployments/st/status")
    t.eq((st.get("kind"), jget(st, "status.readyReplicas")), ("Deployment", 2), "GET .../status")


@scenario
def persistence_across_restart(t: T) -> None:
    """data persists across a server restart on the same data dir; the old kubeconfig still works (same CA)."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"k": "v"}}, ns)
    t.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keep"},
              "data": {"k": base64.b64encode(b"v").decode()}}, ns)
    t.create(DEPLOYMENT.format(name="keep", labels=""), ns)
    before = t.json("get", "cm", "keep", "-n", ns)
    srv = t.server
    srv.stop()
    t.true(srv.proc.poll() is not None, "server stopped", srv.proc.poll())
    second = srv.workdir / "admin-after-restart.kubeconfig"
    try:
        srv.start(kubeconfig=second)
    except RuntimeError as e:
        raise Failure("server restarts on the same data dir", "ready", str(e), " ".join(srv.args(second))) from None
    after = t.json("get", "cm", "keep", "-n", ns)  # with the kubeconfig written by the first start
    t.eq(after.get("data"), {"k": "v"}, "configmap data after restart")
    t.eq(after["metadata"]["uid"], before["metadata"]["uid"], "uid after restart")
    t.eq(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"], "resourceVersion after restart")
    t.eq(t.ok("get", "secret", "keep", "-n", ns, "-o", "jsonpath={.data.k}"), base64.b64encode(b"v").decode(),
         "secret after restart")
    t.eq(t.ok("get", "deploy", "keep", "-n", ns, "-o", "name").strip(), "deployment.apps/keep", "deployment after restart")
    out = t.ok("get", "ns")
    names = [r["NAME"] for r in t.table(out)]
    t.eq(len(names), len(set(names)), "no duplicated namespaces after restart")
    for n in ("default", "kube-system", ns):
        t.true(n in names, f"namespace {n} after restart", names)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}, ns)
    rv_new = int(t.ok("get", "cm", "new", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"))
    t.true(rv_new > int(before["metadata"]["resourceVersion"]), "resourceVersions keep growing after restart",
           (before["metadata"]["resourceVersion"], rv_new))
    if second.exists():
        c1 = load_creds(srv.kubeconfig, srv.cache_dir)["ca"].read_bytes()
        c2 = load_creds(second, srv.cache_dir)["ca"].read_bytes()
        t.eq(c1, c2, "the CA in the kubeconfig written after restart is the same CA")


# --------------------------------------------------------------------------------------------
# Runner


# --------------------------------------------------------------------------------------------
# Protobuf clients (kubectl create <kind>, auth, tokens) and raw protobuf requests


def https_raw(creds: dict, method: str, path: str, headers: dict | None = None, client_cert: bool = True,
              read: int | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Like https() but returns (status, lower-cased headers, raw body bytes); read=N stops after N bytes."""
    import http.client
    ctx = ssl.create_default_context(cafile=str(creds["ca"]))
    ctx.check_hostname = False
    if client_cert:
        ctx.load_cert_chain(str(creds["cert"]), str(creds["key"]))
    u = urllib.parse.urlparse(creds["server"])
    conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if read is None:
            body = r.read()
        else:
            body = b""
            while len(body) < read:
                chunk = r.read1(read - len(body)) if hasattr(r, "read1") else r.read(read - len(body))
                if not chunk:
                    break
                body += chunk
        return r.status, hdrs, body
    finally:
        conn.close()


PB = "application/vnd.kubernetes.protobuf"


@scenario
def imperative_create_all_kinds(t: T) -> None:
    """kubectl create <kind> for 16 kinds (protobuf bodies), fields read back as JSON."""
    ns = "imperative-all"
    t.eq(t.ok("create", "namespace", ns).strip(), f"namespace/{ns} created", "create namespace")
    n = ["-n", ns]
    cases = [
        (["configmap", "cm1", "--from-literal=k=v"], "configmap/cm1 created"),
        (["secret", "generic", "s1", "--from-literal=password=s3cr3t"], "secret/s1 created"),
        (["deployment", "d1", "--image=nginx:1.27"], "deployment.apps/d1 created"),
        (["job", "j1", "--image=busybox:1.36"], "job.batch/j1 created"),
        (["cronjob", "cj1", "--image=busybox:1.36", "--schedule=*/5 * * * *"], "cronjob.batch/cj1 created"),
        (["service", "clusterip", "svc1", "--tcp=80:8080"], "service/svc1 created"),
        (["serviceaccount", "sa1"], "serviceaccount/sa1 created"),
        (["role", "r1", "--verb=get,list", "--resource=pods"], "role.rbac.authorization.k8s.io/r1 created"),
        (["rolebinding", "rb1", "--role=r1", "--serviceaccount=" + ns + ":sa1"],
         "rolebinding.rbac.authorization.k8s.io/rb1 created"),
        (["quota", "q1", "--hard=cpu=1500m,pods=10"], "resourcequota/q1 created"),
        (["poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=50%"],
         "poddisruptionbudget.policy/pdb1 created"),
        (["ingress", "ing1", "--rule=foo.example.com/bar=svc1:80"], "ingress.networking.k8s.io/ing1 created"),
    ]
    for args, expected in cases:
        t.eq(t.ok("create", *args, *n).strip(), expected, f"create {args[0]}")
    for args, expected in [
        (["clusterrole", "imperative-all-cr", "--verb=get", "--resource=nodes"],
         "clusterrole.rbac.authorization.k8s.io/imperative-all-cr created"),
        (["clusterrolebinding", "imperative-all-crb", "--clusterrole=imperative-all-cr", "--user=alice"],
         "clusterrolebinding.rbac.authorization.k8s.io/imperative-all-crb created"),
        (["priorityclass", "imperative-all-pc", "--value=1000", "--description=conformance"],
         "priorityclass.scheduling.k8s.io/imperative-all-pc created"),
    ]:
        t.eq(t.ok("create", *args).strip(), expected, f"create {args[0]}")
    t.eq(t.json("get", "cm", "cm1", *n).get("data"), {"k": "v"}, "configmap data")
    t.eq(jget(t.json("get", "secret", "s1", *n), "data.password"), base64.b64encode(b"s3cr3t").decode(),
         "secret data is base64 of the literal")
    t.eq(jget(t.json("get", "deploy", "d1", *n), "spec.template.spec.containers.0.image"), "nginx:1.27",
         "deployment image")
    t.eq(jget(t.json("get", "job", "j1", *n), "spec.template.spec.containers.0.image"), "busybox:1.36", "job image")
    t.eq(jget(t.json("get", "cronjob", "cj1", *n), "spec.schedule"), "*/5 * * * *", "cronjob schedule")
    svc = t.json("get", "svc", "svc1", *n)
    t.eq((jget(svc, "spec.ports.0.port"), jget(svc, "spec.ports.0.targetPort"), jget(svc, "spec.type")),
         (80, 8080, "ClusterIP"), "service port/targetPort/type from --tcp=80:8080")
    t.eq(jget(t.json("get", "sa", "sa1", *n), "metadata.name"), "sa1", "serviceaccount stored")
    t.eq(jget(t.json("get", "role", "r1", *n), "rules"),
         [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], "role rules")
    rb = t.json("get", "rolebinding", "rb1", *n)
    t.eq((jget(rb, "roleRef.kind"), jget(rb, "roleRef.name"), jget(rb, "subjects.0.kind"), jget(rb, "subjects.0.name")),
         ("Role", "r1", "ServiceAccount", "sa1"), "rolebinding roleRef/subjects")
    t.eq(jget(t.json("get", "clusterrole", "imperative-all-cr"), "rules.0.resources"), ["nodes"], "clusterrole rules")
    t.eq(jget(t.json("get", "clusterrolebinding", "imperative-all-crb"), "subjects.0.name"), "alice",
         "clusterrolebinding subject")
    q = t.json("get", "quota", "q1", *n)
    t.eq(jget(q, "spec.hard"), {"cpu": "1500m", "pods": "10"}, "quota spec.hard")
    t.match(t.ok("get", "quota", "q1", *n, "-o", "yaml"), r"^\s+cpu: 1500m$", "quota yaml cpu: 1500m")
    pc = t.json("get", "priorityclass", "imperative-all-pc")
    t.eq((pc.get("value"), pc.get("description")), (1000, "conformance"), "priorityclass value/description")
    t.eq(jget(t.json("get", "pdb", "pdb1", *n), "spec.minAvailable"), "50%", "pdb minAvailable")
    ing = t.json("get", "ingress", "ing1", *n)
    t.eq((jget(ing, "spec.rules.0.host"), jget(ing, "spec.rules.0.http.paths.0.path"),
          jget(ing, "spec.rules.0.http.paths.0.backend.service.name")), ("foo.example.com", "/bar", "svc1"),
         "ingress rule")
    for args in (["clusterrolebinding", "imperative-all-crb"], ["clusterrole", "imperative-all-cr"],
                 ["priorityclass", "imperative-all-pc"]):
        t.ok("delete", *args)
    t.eq(t.ok("delete", "namespace", ns, timeout=120).strip(), f'namespace "{ns}" deleted', "delete namespace")


@scenario
def auth_whoami_and_tokens(t: T) -> None:
    """auth whoami = kubernetes-admin; create token works as a Bearer token until the SA is deleted (401)."""
    out = t.ok("auth", "whoami")
    t.match(out, r"^Username\s+kubernetes-admin$", "auth whoami Username")
    t.eq(t.ok("auth", "can-i", "create", "pods").strip(), "yes", "auth can-i create pods")
    ns = t.namespace()
    t.ok("create", "serviceaccount", "tok", "-n", ns)
    tok = t.ok("create", "token", "tok", "-n", ns).strip()
    t.true(tok.count(".") == 2, "create token prints a JWT", tok[:80])
    st, _, body = https_raw(t.server.creds, "GET", "/api/v1/namespaces", client_cert=False,
                            headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
    t.last_cmd = "HTTPS GET /api/v1/namespaces with the token as Bearer"
    t.eq(st, 403, "GET /api/v1/namespaces with the token of a service account nobody granted anything")
    t.eq(json.loads(body).get("message"), f'namespaces is forbidden: User "system:serviceaccount:{ns}:tok" cannot '
         'list resource "namespaces" in API group "" at the cluster scope', "forbidden message")
    t.ok("create", "clusterrolebinding", f"{ns}-tok-view", "--clusterrole=view", f"--serviceaccount={ns}:tok")

    last: list = []

    def listed() -> bool:
        last[:] = https_raw(t.server.creds, "GET", "/api/v1/namespaces", client_cert=False,
                            headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
        return last[0] == 200
    t.true(poll(listed, 10), "the token lists namespaces once the account is bound to view", last)
    t.eq(json.loads(last[2]).get("kind"), "NamespaceList", "answer is a NamespaceList")
    t.eq(t.ok("delete", "serviceaccount", "tok", "-n", ns).strip(), 'serviceaccount "tok" deleted', "delete sa")
    st, _, body = https_raw(t.server.creds, "GET", "/api/v1/namespaces", client_cert=False,
                            headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
    t.last_cmd = "HTTPS GET /api/v1/namespaces with the token of a deleted service account"
    t.eq(st, 401, "token of a deleted service account is rejected")
    t.ok("delete", "clusterrolebinding", f"{ns}-tok-view")


@scenario
def python_client(t: T) -> None:
    """The Python `kubernetes` client from PyPI, as its users drive it: typed CRUD, patches, watch, scale,
    errors as ApiException with metav1.Status bodies, the dynamic client with server-side apply, RBAC."""
    try:
        from kubernetes import client as k8s, config as k8s_config, dynamic, watch as k8s_watch
        from kubernetes.client.rest import ApiException
    except ImportError as e:
        raise Failure("the Python kubernetes client is installed (.ci/run installs it)", "import", str(e), "import kubernetes")
    api = k8s_config.new_client_from_config(config_file=str(t.kubeconfig))
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    ns = t.namespace()
    t.last_cmd = "python: CoreV1Api.create_namespaced_config_map / patch / replace"
    cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="py", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, cm)
    t.true(created.metadata.uid and created.metadata.creation_timestamp is not None, "typed create answer", created.metadata)
    t.eq(core.patch_namespaced_config_map("py", ns, {"data": {"b": "2"}}).data, {"a": "1", "b": "2"}, "dict patch")
    t.eq(core.patch_namespaced_config_map("py", ns, [{"op": "add", "path": "/data/c", "value": "3"}]).data,
         {"a": "1", "b": "2", "c": "3"}, "list body = JSON patch")
    live = core.read_namespaced_config_map("py", ns)
    live.data["d"] = "4"
    replaced = core.replace_namespaced_config_map("py", ns, live)
    t.true(int(replaced.metadata.resource_version) > int(created.metadata.resource_version), "replace bumps rv",
           replaced.metadata.resource_version)
    live.data["e"] = "stale"
    try:
        core.replace_namespaced_config_map("py", ns, live)
        raise Failure("a stale replace fails", "ApiException 409", "accepted", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["reason"]), (409, "Conflict"), "stale replace")
    try:
        core.read_namespaced_config_map("missing", ns)
        raise Failure("reading a missing object fails", "ApiException 404", "found", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["message"]), (404, 'configmaps "missing" not found'), "404")
    try:
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="Bad_Name")))
        raise Failure("an invalid name is refused", "ApiException 422", "created", t.last_cmd)
    except ApiException as e:
        t.eq((e.status, json.loads(e.body)["reason"]), (422, "Invalid"), "422 Invalid")
    listed = core.list_namespaced_config_map(ns, label_selector="app=py")
    t.eq([c.metadata.name for c in listed.items], ["py"], "list with label_selector")

    t.last_cmd = "python: watch.Watch().stream(list_namespaced_config_map, resource_version=...)"
    w = k8s_watch.Watch()
    rv = listed.metadata.resource_version
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w", labels={"app": "py"})))
    core.delete_namespaced_config_map("w", ns)
    events = []
    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="app=py", resource_version=rv,
                       timeout_seconds=3):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    t.eq(events, [("ADDED", "w"), ("DELETED", "w")], "watch from a resourceVersion")

    t.last_cmd = "python: AppsV1Api deployment create / scale / delete"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox",
                                                          "resources": {"limits": {"cpu": "0.5"}}}]}}}}
    d = apps.create_namespaced_deployment(ns, dep)
    t.eq((d.spec.strategy.type, d.spec.template.spec.containers[0].resources.limits["cpu"]),
         ("RollingUpdate", "500m"), "defaults and canonical quantities")
    t.eq(apps.patch_namespaced_deployment_scale("d", ns, {"spec": {"replicas": 3}}).spec.replicas, 3, "patch scale")
    t.eq(apps.read_namespaced_deployment("d", ns).spec.replicas, 3, "scale reached the deployment")

    t.last_cmd = "python: dynamic.DynamicClient server_side_apply / get"
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    applied = cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "ssa", "namespace": ns}, "data": {"x": "y"}},
                                    field_manager="py-tool")
    t.eq([m.manager for m in applied.metadata.managedFields], ["py-tool"], "server-side apply manager")
    t.eq(cms.get(name="ssa", namespace=ns).data.x, "y", "dynamic get")

    t.last_cmd = "python: RBAC, a user bound to view"
    rbac = k8s.RbacAuthorizationV1Api(api)
    subject = getattr(k8s, "RbacV1Subject", None) or getattr(k8s, "V1Subject")  # renamed in client 24
    rbac.create_namespaced_role_binding(ns, k8s.V1RoleBinding(
        metadata=k8s.V1ObjectMeta(name="eve-view"),
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[subject(api_group="rbac.authorization.k8s.io", kind="User", name="eve")]))
    sar = k8s.V1SubjectAccessReview(spec=k8s.V1SubjectAccessReviewSpec(
        user="eve", resource_attributes=k8s.V1ResourceAttributes(namespace=ns, verb="list", resource="configmaps")))
    t.true(poll(lambda: k8s.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed, 10),
           "SubjectAccessReview allows eve to list configmaps", t.last_cmd)
    sar.spec.resource_attributes.verb = "delete"
    t.eq(k8s.AuthorizationV1Api(api).create_subject_access_review(sar).status.allowed, False, "but not delete")
    core.delete_namespace(ns)


JS_CLIENT = Path(__file__).resolve().parent / "js"


@scenario
def js_client(t: T) -> None:
    """The JavaScript client (@kubernetes/client-node, `npm install --prefix conformance/js`): typed create with
    Date timestamps, merge/JSON patch, server-side apply, 404 bodies, an informer (list + watch), and the
    discovery-driven KubernetesObjectApi."""
    t.last_cmd = "node conformance/js/client.mjs"
    if not (JS_CLIENT / "node_modules" / "@kubernetes" / "client-node").is_dir():
        raise Failure("the JavaScript client is installed (.ci/run installs it)", "npm install --prefix conformance/js",
                      "conformance/js/node_modules missing", t.last_cmd)
    ns = t.namespace()
    p = subprocess.run(["node", str(JS_CLIENT / "client.mjs"), str(t.kubeconfig), ns], capture_output=True,
                       text=True, timeout=90)
    t.eq(p.returncode, 0, f"node exit code ({p.stderr[-800:]})")
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    t.eq(seen, {
        "createdIsDate": True,
        "merge": {"a": "1", "b": "2"},
        "jsonPatch": {"a": "1", "b": "2", "c": "3"},
        "ssaManagers": ["js-tool/Apply"],
        "missing": {"code": 404, "reason": "NotFound"},
        "strategy": "RollingUpdate",
        "listed": ["js"],
        "informer": ["add js", "add js-2", "update js-2", "delete js-2"],
        "generic": "d",
        "genericList": 3,  # js, js-ssa and the root CA ConfigMap
        "genericDelete": "Success",
    }, "what the JavaScript client saw")


@scenario
def user_kubeconfig(t: T) -> None:
    """`rkube kubeconfig --user alice --group devs` issues a client certificate for a new user from the cluster
    CA: whoami names her and her groups, RBAC refuses her until a binding grants her group something."""
    ns = t.namespace()
    t.last_cmd = "rkube kubeconfig --user alice --group devs"
    p = subprocess.run([str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
                        t.server.creds["server"], "--user", "alice", "--group", "devs"],
                       capture_output=True, text=True, timeout=30)
    t.eq(p.returncode, 0, f"rkube kubeconfig exit code ({p.stderr[-300:]})")
    alice = t.server.workdir / "alice.kubeconfig"
    alice.write_text(p.stdout)
    admin, t.kubeconfig = t.kubeconfig, alice
    try:
        out = t.ok("auth", "whoami")
        t.match(out, r"^Username\s+alice$", "whoami names the new user")
        t.match(out, r"^Groups\s+\[devs system:authenticated\]$", "whoami lists her groups")
        err = t.fails("get", "configmaps", "-n", ns)
        t.eq(err, f'Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource '
                  f'"configmaps" in API group "" in the namespace "{ns}"', "no rights yet")
        t.kubeconfig = admin
        t.ok("create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs", "-n", ns)
        t.kubeconfig = alice
        t.true(poll(lambda: t.run("get", "configmaps", "-n", ns, "-o", "name").rc == 0, 10),
               "the group's binding lets her list", t.last_cmd)
        t.eq(t.ok("create", "configmap", "mine", "-n", ns).strip(), "configmap/mine created", "edit lets her create")
        err = t.fails("create", "role", "r", "--verb=get", "--resource=pods", "-n", ns)
        t.contains(err, 'cannot create resource "roles" in API group "rbac.authorization.k8s.io"',
                   "edit does not include roles")
    finally:
        t.kubeconfig = admin


@scenario
def pod_streams_unscheduled(t: T) -> None:
    """logs/exec/attach of a pod no node runs yet answer as upstream's apiserver does before any kubelet is
    involved: empty logs, `does not have a host assigned`, container-name checks, 404 for a missing pod."""
    ns = t.namespace()
    t.create(POD.format(name="p", labels=""), ns)
    r = t.run("logs", "p", "-n", ns)
    t.eq((r.rc, r.out, r.err), (0, "", ""), "logs of an unscheduled pod: empty")
    t.eq(t.fails("logs", "p", "-n", ns, "-c", "x"), "error: container x is not valid for pod p", "unknown container")
    t.eq(t.fails("exec", "p", "-n", ns, "--", "ls"),
         "Error from server (BadRequest): pod p does not have a host assigned", "exec")
    st, body = t.https("GET", f"/api/v1/namespaces/{ns}/pods/missing/log")
    t.eq((st, json.loads(body).get("message")), (404, 'pods "missing" not found'), "log of a missing pod")


@scenario
def namespace_defaults(t: T) -> None:
    """Every namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (the cluster CA),
    re-created when deleted, as upstream's service-account and root-ca-cert-publisher controllers do."""
    ns = t.namespace()

    def present(kind: str, name: str) -> bool:
        return t.run("get", kind, name, "-n", ns, "-o", "name").rc == 0
    t.true(poll(lambda: present("serviceaccount", "default"), 10), "default ServiceAccount appears", t.last_cmd)
    t.true(poll(lambda: present("configmap", "kube-root-ca.crt"), 10), "kube-root-ca.crt appears", t.last_cmd)
    ca = t.json("get", "configmap", "kube-root-ca.crt", "-n", ns)["data"]["ca.crt"]
    t.eq(ca.strip(), t.server.creds["ca"].read_text().strip(), "kube-root-ca.crt holds the cluster CA")
    t.true(t.ok("create", "token", "default", "-n", ns).count(".") == 2, "create token default", t.last_cmd)
    t.ok("delete", "serviceaccount", "default", "-n", ns)
    t.ok("delete", "configmap", "kube-root-ca.crt", "-n", ns)
    t.true(poll(lambda: present("serviceaccount", "default"), 10), "default ServiceAccount re-created", t.last_cmd)
    t.true(poll(lambda: present("configmap", "kube-root-ca.crt"), 10), "kube-root-ca.crt re-created", t.last_cmd)
    t.ok("patch", "configmap", "kube-root-ca.crt", "-n", ns, "--type=merge", "-p", '{"data":{"ca.crt":"x"}}')
    t.true(poll(lambda: t.json("get", "configmap", "kube-root-ca.crt", "-n", ns)["data"]["ca.crt"].strip()
                == t.server.creds["ca"].read_text().strip(), 10), "an edited kube-root-ca.crt is restored",
           t.last_cmd)


@scenario
def rbac_enforced(t: T) -> None:
    """RBAC as upstream: default roles, Forbidden texts, role/rolebinding grants, view aggregation, escalation
    prevention, impersonation rights, can-i --list and SubjectAccessReview."""
    rows = t.table(t.ok("get", "clusterroles"))
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"):
        t.row(rows, name, "default cluster roles")
    crb = t.json("get", "clusterrolebinding", "cluster-admin")
    t.eq(crb["subjects"], [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}],
         "cluster-admin is bound to system:masters")
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    r = t.run("auth", "can-i", "list", "pods", "-n", ns, "--as", "bob")
    t.eq((r.rc, r.out.strip()), (1, "no"), "can-i list pods as bob before any grant")
    err = t.fails("get", "pods", "-n", ns, "--as", "bob")
    t.eq(err, f'Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource "pods" in API '
              f'group "" in the namespace "{ns}"', "list forbidden")
    t.eq(t.ok("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", ns).strip(),
         "role.rbac.authorization.k8s.io/pod-reader created", "create role")
    t.ok("create", "rolebinding", "bob-reads", "--role=pod-reader", "--user=bob", "-n", ns)
    t.true(poll(lambda: t.run("auth", "can-i", "list", "pods", "-n", ns, "--as", "bob").out.strip() == "yes", 10),
           "can-i list pods as bob once bound", t.run("auth", "can-i", "list", "pods", "-n", ns, "--as", "bob").both())
    t.true("p" in t.ok("get", "pods", "-n", ns, "--as", "bob", "-o", "name"), "bob lists pods", t.last_cmd)
    err = t.fails("delete", "pod", "p", "-n", ns, "--as", "bob")
    t.eq(err, f'Error from server (Forbidden): pods "p" is forbidden: User "bob" cannot delete resource "pods" in '
              f'API group "" in the namespace "{ns}"', "delete forbidden")
    err = t.fails("get", "pods", "-n", "default", "--as", "bob")
    t.contains(err, 'in the namespace "default"', "a RoleBinding grants only in its namespace")
    err = t.fails("get", "nodes", "--as", "bob")
    t.eq(err, 'Error from server (Forbidden): nodes is forbidden: User "bob" cannot list resource "nodes" in API '
              'group "" at the cluster scope', "cluster-scoped forbidden")
    rules = t.table(t.ok("auth", "can-i", "--list", "-n", ns, "--as", "bob"), "can-i --list")
    t.true(any(r.get("Resources") == "pods" and r.get("Verbs") == "[get list watch]" for r in rules),
           "can-i --list shows the role's rule", rules)

    # view: aggregated from the aggregate-to-view roles, picks up a new one, and excludes secrets
    t.ok("create", "rolebinding", "carol-views", "--clusterrole=view", "--user=carol", "-n", ns)
    t.true(poll(lambda: t.run("auth", "can-i", "list", "deployments.apps", "-n", ns, "--as", "carol")
                .out.strip() == "yes", 10), "view lets carol list deployments", t.last_cmd)
    for verb, res in (("list", "secrets"), ("delete", "pods"), ("create", "configmaps")):
        t.eq(t.run("auth", "can-i", verb, res, "-n", ns, "--as", "carol").out.strip(), "no", f"view: {verb} {res}")
    t.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": f"{ns}-leases", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
              "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list"]}]})
    t.true(poll(lambda: t.run("auth", "can-i", "list", "leases", "-n", ns, "--as", "carol")
                .out.strip() == "yes", 10), "view aggregates a new aggregate-to-view role", t.last_cmd)
    t.true(any(r.get("resources") == ["leases"] for r in t.json("get", "clusterrole", "view")["rules"]),
           "view's rules list the aggregated rule", t.last_cmd)
    t.ok("delete", "clusterrole", f"{ns}-leases")
    t.true(poll(lambda: t.run("auth", "can-i", "list", "leases", "-n", ns, "--as", "carol")
                .out.strip() == "no", 10), "view drops the rule of a deleted aggregated role", t.last_cmd)

    # escalation: bob may manage roles in the namespace but not grant what he does not hold
    t.ok("create", "role", "role-manager", "--verb=create,update,patch,get", "--resource=roles,rolebindings",
         "-n", ns)
    t.ok("create", "rolebinding", "bob-manages", "--role=role-manager", "--user=bob", "-n", ns)
    t.true(poll(lambda: t.run("auth", "can-i", "create", "roles", "-n", ns, "--as", "bob").out.strip() == "yes", 10),
           "bob may create roles", t.last_cmd)
    t.ok("create", "role", "small", "--verb=get", "--resource=pods", "-n", ns, "--as", "bob")
    err = t.fails("create", "role", "big", "--verb=get,delete", "--resource=pods,secrets", "-n", ns, "--as", "bob")
    t.eq(err, f'Error from server (Forbidden): roles.rbac.authorization.k8s.io "big" is forbidden: user "bob" '
              f'(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
              f'{{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}}\n'
              f'{{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}}', "escalation refused")
    err = t.fails("create", "rolebinding", "bob-admin", "--clusterrole=admin", "--user=bob", "-n", ns, "--as", "bob")
    t.contains(err, 'rolebindings.rbac.authorization.k8s.io "bob-admin" is forbidden: user "bob" '
                    '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:',
               "binding a bigger role refused")

    # impersonation needs the impersonate verb: the admin has it, a plain service account does not
    t.ok("create", "serviceaccount", "imp", "-n", ns)
    tok = t.ok("create", "token", "imp", "-n", ns).strip()
    t.last_cmd = f"HTTPS GET /api/v1/namespaces/{ns}/pods as the service account, Impersonate-User: bob"
    st, _, body = https_raw(t.server.creds, "GET", f"/api/v1/namespaces/{ns}/pods", client_cert=False,
                            headers={"Authorization": f"Bearer {tok}", "Impersonate-User": "bob",
                                     "Accept": "application/json"})
    t.eq(st, 403, "impersonation without the impersonate verb")
    t.eq(json.loads(body).get("message"), f'users "bob" is forbidden: User "system:serviceaccount:{ns}:imp" cannot '
         'impersonate resource "users" in API group "" at the cluster scope', "impersonation forbidden message")
    out = t.ok("auth", "whoami", "--as", "dave", "--as-group", "devs")
    t.match(out, r"^Username\s+dave$", "whoami as dave")
    t.match(out, r"^Groups\s+\[devs system:authenticated\]$", "whoami groups as upstream adds them")

    # SubjectAccessReview answers for someone else, with RBAC's reason
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "bob", "resourceAttributes": {"namespace": ns, "verb": "get", "resource": "pods"}}}
    got = json.loads(t.ok("create", "-f", "-", "-o", "json", stdin=json.dumps(sar)))
    t.eq(got["status"], {"allowed": True, "reason": f'RBAC: allowed by RoleBinding "bob-reads/{ns}" of Role '
                                                    f'"pod-reader" to User "bob"'}, "SubjectAccessReview status")


@scenario
def protobuf_responses(t: T) -> None:
    """Accept: protobuf for get/list/watch answers k8s\\x00-framed protobuf; errors too; /version/ is JSON."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"}, "data": {"k": "v"}}, ns)
    creds = t.server.creds
    for what, path in (("get", f"/api/v1/namespaces/{ns}/configmaps/pb"), ("list", f"/api/v1/namespaces/{ns}/configmaps")):
        t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
        st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB})
        t.eq(st, 200, f"protobuf {what}: status")
        t.eq(h.get("content-type"), PB, f"protobuf {what}: Content-Type")
        t.eq(body[:4], b"k8s\x00", f"protobuf {what}: body magic")
        t.true(b"pb" in body and b"ConfigMap" in body, f"protobuf {what}: body names the object", body[:200])
    path = f"/api/v1/namespaces/{ns}/configmaps?watch=1&fieldSelector=metadata.name%3Dpb"
    t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB}, read=4)
    t.eq(st, 200, "protobuf watch: status")
    t.eq(h.get("content-type"), PB + ";stream=watch", "protobuf watch: Content-Type")
    t.true(len(body) == 4, "protobuf watch: length prefix", body)
    n = int.from_bytes(body, "big")
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB}, read=4 + n)
    t.true(len(body) == 4 + n, "protobuf watch: one whole frame", body[:200])
    frame = body[4:]
    # the frame is a bare metav1.WatchEvent (type = field 1) whose object carries the k8s\x00 envelope
    t.eq(frame[:7], b"\n\x05ADDED", "protobuf watch frame: WatchEvent type ADDED")
    t.true(b"k8s\x00" in frame and b"pb" in frame, "protobuf watch frame: enveloped object", frame[:200])
    path = f"/api/v1/namespaces/{ns}/configmaps/missing"
    t.last_cmd = f"HTTPS GET {path} (Accept: {PB})"
    st, h, body = https_raw(creds, "GET", path, headers={"Accept": PB})
    t.eq(st, 404, "protobuf error: status")
    t.eq(h.get("content-type"), PB, "protobuf error: Content-Type")
    t.eq(body[:4], b"k8s\x00", "protobuf error: body magic")
    t.true(b"NotFound" in body, "protobuf error: a Status with reason NotFound", body[:200])
    t.last_cmd = "HTTPS GET /version/"
    st, h, body = https_raw(creds, "GET", "/version/", headers={"Accept": "application/json"})
    t.eq(st, 200, "/version/ status")
    t.true(json.loads(body).get("gitVersion", "").startswith("v1.33."), "/version/ gitVersion", body[:300])


# --------------------------------------------------------------------------------------------
# Patches, apply, diff, dry-run defaults, validation


@scenario
def patch_types(t: T) -> None:
    """patch --type=json (failing test op changes nothing), merge, strategic env var by merge key."""
    ns = t.namespace()
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}}, ns)
    rv = jget(t.json("get", "cm", "p", "-n", ns), "metadata.resourceVersion")
    err = t.fails("patch", "cm", "p", "-n", ns, "--type=json", "-p",
                  '[{"op":"test","path":"/data/a","value":"2"},{"op":"replace","path":"/data/a","value":"3"}]')
    t.contains(err, "The request is invalid: the server rejected our request due to an error in our request",
               "failing json patch test op is rejected by the server (422)")
    o = t.json("get", "cm", "p", "-n", ns)
    t.eq((o.get("data"), jget(o, "metadata.resourceVersion")), ({"a": "1"}, rv), "nothing changed by the failed patch")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=json", "-p",
              '[{"op":"test","path":"/data/a","value":"1"},{"op":"replace","path":"/data/a","value":"3"}]').strip(),
         "configmap/p patched", "json patch with a passing test op")
    t.eq(t.ok("patch", "cm", "p", "-n", ns, "--type=merge", "-p", '{"data":{"a":null,"b":"x"}}').strip(),
         "configmap/p patched", "merge patch")
    t.eq(t.json("get", "cm", "p", "-n", ns).get("data"), {"b": "x"}, "merge patch: null deletes, new key added")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}]},
                                            {"name": "side", "image": "busybox:1.36"}]}}}}
    t.create(dep, ns)
    out = t.ok("patch", "deploy", "d", "-n", ns, "--type=strategic", "-p",
               '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}')
    t.eq(out.strip(), "deployment.apps/d patched", "strategic patch output")
    cs = jget(t.json("get", "deploy", "d", "-n", ns), "spec.template.spec.containers", [])
    t.eq([(c["name"], c["image"], sorted(c.get("env") or [], key=lambda e: e["name"])) for c in cs],
         [("web", "nginx:1.27", [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
          ("side", "busybox:1.36", [])], "env var merged into the web container by name")


def _apply_dir_manifests(d: Path, ns: str, version: int, changed: set[int]) -> None:
    """50 files: a namespace, then deployments, services and configmaps (round robin)."""
    (d / "00-ns.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    for i in range(1, 50):
        v = f"v{version}" if i in changed else "v1"
        kind = i % 3
        if kind == 0:
            body = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\n"
                    f"data:\n  version: {v}\n")
        elif kind == 1:
            body = (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\n  namespace: {ns}\n"
                    f"spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n"
                    f"    metadata:\n      labels:\n        app: dep-{i}\n        version: {v}\n    spec:\n"
                    f"      containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n")
        else:
            body = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\n"
                    f"  labels:\n    version: {v}\nspec:\n  selector:\n    app: x\n  ports:\n  - port: 80\n")
        (d / f"{i:02d}.yaml").write_text(body)


def _rvs(t: T, ns: str) -> dict:
    out = {}
    for kind in ("deploy", "svc", "cm"):
        for item in t.json("get", kind, "-n", ns).get("items", []):
            if kind == "cm" and item["metadata"]["name"] == ROOT_CA:
                continue  # the root-CA publisher's, not applied
            out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


@scenario
def apply_directory(t: T) -> None:
    """apply -f DIR of 50 manifests: all created; again all unchanged (same RVs); edited files configured."""
    ns = "apply-directory"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _apply_dir_manifests(d, ns, 1, set())
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        t.eq(len(lines), 50, "apply of 50 files prints 50 lines")
        t.true(all(ln.endswith(" created") for ln in lines), "every line says created", lines)
        t.eq(lines[0], f"namespace/{ns} created", "namespace first")
        before = _rvs(t, ns)
        t.true(len(before) == 49, "all 49 namespaced objects stored", sorted(before))
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        t.eq(len(lines), 50, "second apply prints 50 lines")
        bad = [ln for ln in lines if not ln.endswith(" unchanged")]
        t.eq(bad, [], "second apply: every line unchanged")
        t.eq(_rvs(t, ns), before, "resourceVersions unchanged by a no-op apply")
        changed = {3, 4, 5}
        _apply_dir_manifests(d, ns, 2, changed)
        lines = t.ok("apply", "-f", str(d), timeout=120).splitlines()
        configured = sorted(ln for ln in lines if ln.endswith(" configured"))
        t.eq(configured, ["configmap/cm-3 configured", "deployment.apps/dep-4 configured", "service/svc-5 configured"],
             "only the edited objects are configured")
        t.eq(len([ln for ln in lines if ln.endswith(" unchanged")]), 47, "the rest unchanged")
        t.eq(jget(t.json("get", "cm", "cm-3", "-n", ns), "data.version"), "v2", "edited configmap stored")
    t.ok("delete", "namespace", ns, timeout=120)


@scenario
def apply_server_side_conflicts(t: T) -> None:
    """SSA from two managers: conflict text, --force-conflicts, managedFields show the new owner."""
    ns = t.namespace()
    m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"{x}\"\n"
    t.eq(t.ok("apply", "--server-side", "--field-manager=a", "-n", ns, "-f", "-", stdin=m.format(x="1")).strip(),
         "configmap/ssa serverside-applied", "apply as a")
    err = t.fails("apply", "--server-side", "--field-manager=b", "-n", ns, "-f", "-", stdin=m.format(x="2"))
    # upstream (apiserver fieldmanager printManager) adds "using v1" only for Update-operation managers
    t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "a": .data.x', "conflict message")
    t.contains(err, "--force-conflicts", "conflict message explains --force-conflicts")
    t.eq(t.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.x}"), "1", "value unchanged after conflict")
    t.eq(t.ok("apply", "--server-side", "--field-manager=b", "--force-conflicts", "-n", ns, "-f", "-",
              stdin=m.format(x="2")).strip(), "configmap/ssa serverside-applied", "apply --force-conflicts as b")
    y = t.ok("get", "cm", "ssa", "-n", ns, "-o", "yaml", "--show-managed-fields")
    t.match(y, r"^  x: \"2\"$", "value from b")
    o = t.json("get", "cm", "ssa", "-n", ns, "--show-managed-fields")
    owners = [mf.get("manager") for mf in jget(o, "metadata.managedFields", [])
              if "f:x" in json.dumps(mf.get("fieldsV1", {}))]
    t.eq(owners, ["b"], "manager b owns .data.x")
    t.contains(y, "manager: b", "yaml --show-managed-fields shows manager b")
    # a field owned by an Update manager (kubectl create): "using v1" (the identifier drops the time)
    t.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "upd"}, "data": {"x": "1"}}, ns)
    err = t.fails("apply", "--server-side", "--field-manager=b", "-n", ns, "-f", "-",
                  stdin=m.format(x="2").replace("name: ssa", "name: upd"))
    t.eq(err.splitlines()[0], 'error: Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.x',
         "conflict with an Update manager")


@scenario
def diff_manifest(t: T) -> None:
    """kubectl diff -f shows -/+ lines for a change (exit 1) and nothing for an identical one (exit 0)."""
    ns = t.namespace()
    m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: df\n  namespace: {ns}\ndata:\n  k: {v}\n"
    t.ok("apply", "-f", "-", stdin=m.format(ns=ns, v="old"))
    r = t.run("diff", "-f", "-", stdin=m.format(ns=ns, v="new"))
    t.eq(r.rc, 1, "diff exit code when different")
    t.match(r.out, r"^-  k: old$", "diff - line")
    t.match(r.out, r"^\+  k: new$", "diff + line")
    r = t.run("diff", "-f", "-", stdin=m.format(ns=ns, v="old"))
    t.eq((r.rc, r.out), (0, ""), "diff of an unchanged manifest")
    t.eq(t.ok("get", "cm", "df", "-n", ns, "-o", "jsonpath={.data.k}"), "old", "diff changes nothing")


@scenario
def dry_run_defaults(t: T) -> None:
    """create --dry-run=server -o yaml of a Deployment shows the defaults and stores nothing."""
    ns = t.namespace()
    y = t.ok("create", "deployment", "dr", "-n", ns, "--image=nginx:1.27", "--dry-run=server", "-o", "yaml")
    t.match(y, r"^    type: RollingUpdate$", "strategy RollingUpdate")
    t.match(y, r"^  revisionHistoryLimit: 10$", "revisionHistoryLimit 10")
    t.match(y, r"^  progressDeadlineSeconds: 600$", "progressDeadlineSeconds 600")
    t.eq(t.fails("get", "deploy", "dr", "-n", ns), NOT_FOUND.format(res="deployments.apps", name="dr"),
         "nothing stored")


@scenario
def validate_unknown_field(t: T) -> None:
    """unknown spec.foo: --validate=warn prints a Warning and creates; default validation fails (strict)."""
    ns = t.namespace()
    m = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  foo: bar\n  selector:\n"
         "    matchLabels:\n      app: v\n  template:\n    metadata:\n      labels:\n        app: v\n    spec:\n"
         "      containers:\n      - name: c\n        image: nginx:1.27\n")
    r = t.run("create", "-n", ns, "--validate=warn", "-f", "-", stdin=m.format(name="warned"))
    t.eq(r.rc, 0, "create --validate=warn exit code")
    t.eq(r.out.strip(), "deployment.apps/warned created", "create --validate=warn output")
    t.contains(r.err, 'Warning: unknown field "spec.foo"', "--validate=warn warning")
    err = t.fails("create", "-n", ns, "-f", "-", stdin=m.format(name="strict"))
    t.contains(err, 'strict decoding error: unknown field "spec.foo"', "default validation error")
    t.eq(t.fails("get", "deploy", "strict", "-n", ns), NOT_FOUND.format(res="deployments.apps", name="strict"),
         "nothing stored on strict failure")


@scenario
def duplicate_fields(t: T) -> None:
    """repeated JSON keys: Strict → 400 listing duplicate and unknown fields in document order; Warn → warnings."""
    ns = t.namespace()
    body = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","labels":{"a":"1","a":"2"}},'
            '"data":{"x":"1"},"foo":1,"data":{"y":"2"}}')
    path = f"/api/v1/namespaces/{ns}/configmaps"
    err = t.fails("create", "--raw", path + "?fieldValidation=Strict", "-f", "-", stdin=body)
    t.eq(err, 'Error from server (BadRequest): ConfigMap in version "v1" cannot be handled as a ConfigMap: strict '
              'decoding error: duplicate field "metadata.labels.a", unknown field "foo", duplicate field "data"',
         "strict create with duplicate fields")
    t.eq(t.fails("get", "cm", "dup", "-n", ns), NOT_FOUND.format(res="configmaps", name="dup"),
         "nothing stored on strict failure")
    r = t.run("create", "--raw", path + "?fieldValidation=Warn", "-f", "-", stdin=body)
    t.eq(r.rc, 0, "warn create exit code")
    t.eq([ln for ln in r.err.splitlines() if ln.startswith("Warning:")],
         ['Warning: duplicate field "metadata.labels.a"', 'Warning: unknown field "foo"',
          'Warning: duplicate field "data"'], "warn create warnings")
    cm = t.json("get", "cm", "dup", "-n", ns)
    t.eq((cm.get("data"), jget(cm, "metadata.labels")), ({"y": "2"}, {"a": "2"}), "the last value of a key wins")


@scenario
def apply_prune(t: T) -> None:
    """apply --prune -l: objects applied before with the label but absent from the files are deleted; others kept."""
    ns = t.namespace()
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{app: pr}}\ndata: {{a: \"1\"}}\n"
    dep = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pd\n  labels: {app: pr}\nspec:\n"
           "  selector: {matchLabels: {app: pd}}\n  template:\n    metadata: {labels: {app: pd}}\n"
           "    spec: {containers: [{name: c, image: nginx}]}\n")
    full = "---\n".join([cm.format(n="p1"), cm.format(n="p2"), dep])
    out = t.ok("apply", "-n", ns, "-l", "app=pr", "--prune", "-f", "-", stdin=full)
    t.eq(out.strip().splitlines(), ["configmap/p1 created", "configmap/p2 created", "deployment.apps/pd created"],
         "first apply")
    t.ok("create", "cm", "unrelated", "-n", ns, "--from-literal=a=b")
    t.ok("label", "cm", "unrelated", "-n", ns, "app=pr")
    t.ok("create", "cm", "other-label", "-n", ns, "--from-literal=a=b")
    out = t.ok("apply", "-n", ns, "-l", "app=pr", "--prune", "-f", "-", stdin=cm.format(n="p1"))
    t.eq(sorted(out.strip().splitlines()), ["configmap/p1 unchanged", "configmap/p2 pruned",
                                            "deployment.apps/pd pruned"], "apply of one file prunes the rest")
    t.eq(t.names(t.ok("get", "cm,deploy", "-n", ns, "-o", "name")),
         {"configmap/p1", "configmap/unrelated", "configmap/other-label", f"configmap/{ROOT_CA}"},
         "objects never applied (no last-applied annotation) are kept")


@scenario
def explain_description(t: T) -> None:
    """kubectl explain deploy.spec.replicas prints the field's description."""
    out = t.ok("explain", "deploy.spec.replicas")
    t.match(out, r"^FIELD: replicas <integer>$", "FIELD line")
    t.match(out, r"^DESCRIPTION:$", "DESCRIPTION header")
    t.contains(out, "Number of desired pods", "description text")


@scenario
def create_kind_list_file(t: T) -> None:
    """create -f FILE of a kind: List (mixed kinds) creates every item."""
    ns = t.namespace()
    lst = ("apiVersion: v1\nkind: List\nitems:\n"
           "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: l1\n  data:\n    a: \"1\"\n"
           "- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: l2\n  stringData:\n    b: two\n")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "list.yaml"
        f.write_text(lst)
        out = t.ok("create", "-n", ns, "-f", str(f))
    t.eq(out.splitlines(), ["configmap/l1 created", "secret/l2 created"], "create -f of a List file")
    t.eq(jget(t.json("get", "secret", "l2", "-n", ns), "data.b"), base64.b64encode(b"two").decode(), "secret item")


# --------------------------------------------------------------------------------------------
# Scenario modules: conformance/scenarios/*.py add more scenarios (in file-name order, after the ones
# above). They import what they need from this file as `run` (`from run import T, scenario, ...`).

def _load_scenario_modules() -> None:
    import importlib
    sys.modules.setdefault("run", sys.modules[__name__])
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for p in sorted((HERE / "scenarios").glob("*.py")):
        if not p.name.startswith("_"):
            importlib.import_module(f"scenarios.{p.stem}")


_load_scenario_modules()


@dataclass
class Outcome:
    ok: bool
    seconds: float
    failure: str = ""
    short: str = ""


@dataclass
class BackendRun:
    name: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    startup_error: str = ""


def run_backend(backend: str, selected: list[Callable[[T], None]], keep: bool) -> BackendRun:
    res = BackendRun(backend)
    workdir = Path(tempfile.mkdtemp(prefix=f"rkube-conformance-{backend}-"))
    (workdir / "kubectl-cache").mkdir()
    etcd = Etcd(workdir) if backend == "etcd" else None
    server = Server(backend, workdir, etcd)
    print(f"== backend {backend} (workdir {workdir})", flush=True)
    try:
        try:
            if etcd is not None:
                etcd.start()
                print(f"   etcd ready at {etcd.endpoint}", flush=True)
            t0 = time.time()
            server.start()
            print(f"   rkube ready on 127.0.0.1:{server.port} in {time.time() - t0:.1f}s", flush=True)
        except Exception as e:
            res.startup_error = str(e)
            print(f"   SERVER FAILED TO START: {e}", flush=True)
            for fn in selected:
                res.outcomes[fn.__name__] = Outcome(False, 0.0, f"server failed to start:\n{e}",
                                                    "server failed to start")
                print(f"FAIL  {backend:8s} {fn.__name__}  (server failed to start)", flush=True)
            return res
        for fn in selected:
            name = fn.__name__
            if server.proc is None or server.proc.poll() is not None:
                try:
                    print(f"   (server is down: restarting it before {name})", flush=True)
                    server.start()
                except Exception as e:
                    res.outcomes[name] = Outcome(False, 0.0, f"server down and could not restart:\n{e}",
                                                 "server down")
                    print(f"FAIL  {backend:8s} {name}  (server down)", flush=True)
                    continue
            t = T(server, name)
            start = time.time()
            try:
                fn(t)
                oc = Outcome(True, time.time() - start)
            except Failure as f:
                oc = Outcome(False, time.time() - start, f.render(), f.short())
            except Exception as e:  # a bug in the scenario or an unexpected answer shape
                oc = Outcome(False, time.time() - start,
                             f"unexpected {type(e).__name__}: {e}\nlast command: {t.last_cmd}\n"
                             + traceback.format_exc(limit=4), f"{type(e).__name__}: {e}")
            finally:
                t.cleanup()
            if not oc.ok and server.proc is not None and server.proc.poll() is not None:
                oc.failure += f"\nserver exited with code {server.proc.returncode}; log tail:\n{tail(server.log, 30)}"
            res.outcomes[name] = oc
            mark = "PASS" if oc.ok else "FAIL"
            print(f"{mark}  {backend:8s} {name}  ({oc.seconds:.1f}s)", flush=True)
            if not oc.ok:
                print("      " + oc.failure.replace("\n", "\n      "), flush=True)
        return res
    finally:
        if keep:
            print(f"   --keep: server left running (pid {server.proc.pid if server.proc else '-'}): "
                  f"kubectl --kubeconfig {server.kubeconfig} get ns ; log {server.log}"
                  + (f" ; etcd {etcd.endpoint} (pid {etcd.proc.pid if etcd.proc else '-'})" if etcd else ""),
                  flush=True)
        else:
            server.stop()
            if etcd is not None:
                etcd.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def write_results(runs: list[BackendRun], selected: list[Callable[[T], None]], path: Path) -> None:
    by = {r.name: r for r in runs}
    lines = [
        "# rkube conformance results",
        "",
        "Generated by `python3 conformance/run.py` "
        f"on {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} with `{KUBECTL}` "
        f"({_kubectl_version()}) against `{_rel(RKUBE_BIN)}`.",
        "Each scenario runs with stock kubectl against a real `rkube server`, once on the embedded store "
        "and once on etcd, and checks the text and JSON that come back.",
        "",
        "| scenario | embedded | etcd | notes |",
        "| --- | --- | --- | --- |",
    ]
    for fn in selected:
        cells = []
        notes = [doc(fn)]
        for b in ("embedded", "etcd"):
            r = by.get(b)
            oc = r.outcomes.get(fn.__name__) if r else None
            if oc is None:
                cells.append("not run")
            elif oc.ok:
                cells.append("pass")
            else:
                cells.append("**FAIL**")
                notes.append(f"{b}: {oc.short}")
        lines.append(f"| `{fn.__name__}` | {cells[0]} | {cells[1]} | {md_escape(' — '.join(notes))} |")
    passed = sum(o.ok for r in runs for o in r.outcomes.values())
    failed = sum(not o.ok for r in runs for o in r.outcomes.values())
    lines += ["", f"{passed} passed, {failed} failed", ""]
    details = [(r.name, n, o) for r in runs for n, o in r.outcomes.items() if not o.ok]
    if details:
        lines += ["## Failures", ""]
        for b, n, o in details:
            lines += [f"### {n} ({b})", "", "```", o.failure.rstrip(), "```", ""]
    path.write_text("\n".join(lines))


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _kubectl_version() -> str:
    try:
        out = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=10).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    except Exception:
        return "unknown version"


def main() -> int:
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["embedded", "etcd", "both"], default="both")
    ap.add_argument("-k", dest="select", default="", help="run only scenarios whose name contains SUBSTRING")
    ap.add_argument("--keep", action="store_true", help="leave the server (and etcd) running at the end")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every kubectl command and its output")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown results file (default: conformance/RESULTS.md for a full run on both backends, "
                         "none for a partial run)")
    a = ap.parse_args()
    VERBOSE = a.verbose
    if a.list:
        for fn in SCENARIOS:
            print(f"{fn.__name__:32s} {doc(fn)}")
        return 0
    selected = [fn for fn in SCENARIOS if a.select in fn.__name__]
    if not selected:
        print(f"no scenario matches {a.select!r}")
        print("0 passed, 1 failed")
        return 1
    backends = ["embedded", "etcd"] if a.backend == "both" else [a.backend]
    print(f"rkube conformance: {len(selected)} scenarios x {len(backends)} backends; rkube={RKUBE_BIN} "
          f"kubectl={KUBECTL} ({_kubectl_version()})", flush=True)
    if not RKUBE_BIN.exists():
        print(f"rkube binary not found at {RKUBE_BIN} (build it with `cargo build --release` or set RKUBE_BIN)")
    runs = [run_backend(b, selected, a.keep) for b in backends]
    results = a.results
    if results is None and not a.select and a.backend == "both":
        results = RESULTS_MD
    if results is not None:
        write_results(runs, selected, results)
    passed = sum(o.ok for r in runs for o in r.outcomes.values())
    failed = sum(not o.ok for r in runs for o in r.outcomes.values())
    if failed:
        print("\nfailed:", flush=True)
        for r in runs:
            for n, o in r.outcomes.items():
                if not o.ok:
                    print(f"  {r.name:8s} {n}: {o.short}")
    print(f"results: {_rel(results)}" if results is not None else
          "results: not written for a partial run (use --results FILE)")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
