"""The conformance harness: what every scenario module imports.

The processes (`Etcd`, `Server`: a real `rkube server` on a fresh data dir, on the embedded store or on an etcd
this harness starts), the client side (`T`, which a scenario gets: kubectl and HTTPS against that server plus
assertions that raise `Failure` with the command, expected and actual output; `https`/`https_raw`, `load_creds`),
the parsers (`parse_tables`, `parse_json_stream`, `jget`), `poll`, the scenario registry (`@scenario`,
`SCENARIOS`), the CRUD walk every built-in kind goes through (`crud`, `check_meta`), and the manifests several
areas share (`POD`, `SERVICE`, `DEPLOYMENT`, `JOB`, `NODE`).

Scenario modules live in conformance/scenarios/, one per area, and start with `from harness import ...`;
conformance/run.py is the entry point (command line, running order, RESULTS.md) and re-exports these names,
so `from run import ...` works too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

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
    """A throwaway etcd. With `pki` (a dir holding ca.crt, server.crt/key, client.crt/key) it serves clients
    over TLS only and demands a client certificate signed by the CA."""

    def __init__(self, workdir: Path, pki: Path | None = None):
        self.dir = workdir / "etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.pki = pki
        self.endpoint = f"{'https' if pki else 'http'}://127.0.0.1:{self.client_port}"
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
        ctx = None
        if self.pki:
            cmd += ["--cert-file", str(self.pki / "server.crt"), "--key-file", str(self.pki / "server.key"),
                    "--trusted-ca-file", str(self.pki / "ca.crt"), "--client-cert-auth"]
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            ctx.load_cert_chain(str(self.pki / "client.crt"), str(self.pki / "client.key"))
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
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2, context=ctx) as r:
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
        # False: never a node (even on a machine with containerd); True: `rkube server` decides, as
        # README's one command does.
        self.node = False

    def args(self, kubeconfig: Path) -> list[str]:
        a = [str(RKUBE_BIN), "server", "--data-dir", str(self.data_dir), "--secure-port", str(self.port),
             "--bind-address", "127.0.0.1", "--write-kubeconfig", str(kubeconfig)]
        if self.etcd is not None:
            a += ["--storage", "etcd", "--etcd-endpoints", self.etcd.endpoint]
        if not self.node and not any(x.startswith("--container-runtime-endpoint") for x in self.extra_args):
            # Never a node on a system containerd that may run here: scenarios that want one
            # (kubelet.py) start their own.
            a.append("--container-runtime-endpoint=")
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
# The scenario registry, and the CRUD walk every built-in kind goes through

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


# --------------------------------------------------------------------------------------------
# Manifests and raw HTTP shared by several areas


LABELS = "  labels:\n    app: conformance\n"


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


# A CronJob no controller acts on (suspended, a yearly schedule): its status is the test's to write.
SUSPENDED_CRONJOB = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
                     "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": {
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}

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
