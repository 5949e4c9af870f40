"""Dynamic admission webhooks (MutatingAdmissionWebhook, ValidatingAdmissionWebhook): a small HTTPS webhook server
in this process, registered by URL with its CA bundle, mutates and refuses ConfigMaps as upstream's plugins let it,
with upstream's messages as kubectl prints them."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from harness import NOT_FOUND, T, jget, scenario

MUTATE_NAME = "label.webhooks.rkube.test"
DENY_NAME = "deny.webhooks.rkube.test"
MUTATING_CONFIG = "rkube-conformance-mutate"
VALIDATING_CONFIG = "rkube-conformance-validate"
LABEL = "webhooks.rkube.test/mutated"


def certs(d: Path) -> None:
    """A CA and a serving certificate for 127.0.0.1 signed by it (EC keys: quick to make)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=webhook-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "1", "-extfile", "ext.cnf")


class JsonServer:
    """An HTTPS server on 127.0.0.1 (a free port; the certificate `certs` made in `d`) whose POSTs are JSON:
    `respond(path, request)` gives the answer. Every (path with query, request) is kept in `seen`."""

    def __init__(self, d: Path, respond: Callable[[str, dict], dict]):
        self.seen: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                server.seen.append((self.path, body))
                out = json.dumps(respond(self.path.split("?")[0], body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(d / "srv.crt"), str(d / "srv.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Webhook(JsonServer):
    """The webhook server: /mutate adds a label, /validate refuses a `forbidden` key and warns about `warnme`."""

    def __init__(self, d: Path):
        super().__init__(d, self._review)

    @staticmethod
    def _review(path: str, review: dict) -> dict:
        req = review.get("request") or {}
        resp: dict = {"uid": req.get("uid"), "allowed": True}
        obj = req.get("object") or {}
        data = obj.get("data") or {}
        if path == "/mutate":
            if (obj.get("metadata") or {}).get("labels"):
                op = {"op": "add", "path": "/metadata/labels/" + LABEL.replace("/", "~1"), "value": "yes"}
            else:
                op = {"op": "add", "path": "/metadata/labels", "value": {LABEL: "yes"}}
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps([op]).encode()).decode()
        elif path == "/validate":
            if "forbidden" in data:
                resp["allowed"] = False
                resp["status"] = {"code": 403, "reason": "Forbidden", "message": 'the key "forbidden" is not allowed'}
            if "warnme" in data:
                resp["warnings"] = [f"configmap {obj['metadata']['name']} carries warnme"]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}

    def calls(self, path: str, name: str) -> list[dict]:
        return [r.get("request") or {} for p, r in self.seen
                if p.split("?")[0] == path and (r.get("request") or {}).get("name") == name]


def _cm(name: str, data: dict | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"a": "b"}})


def _configs(port: int, ca: str) -> list[dict]:
    def hook(name: str, path: str, ops: list[str]) -> dict:
        return {"name": name, "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
                "rules": [{"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
                "namespaceSelector": {"matchLabels": {"webhooks.rkube.test": "on"}},
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"}
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": MUTATING_CONFIG}, "webhooks": [hook(MUTATE_NAME, "/mutate", ["CREATE"])]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": VALIDATING_CONFIG}, "webhooks": [hook(DENY_NAME, "/validate", ["CREATE", "UPDATE"])]},
    ]


@scenario
def admission_webhooks_mutate_validate_fail(t: T) -> None:
    """Admission webhooks called by URL over HTTPS (caBundle-verified): a mutating webhook labels ConfigMaps created
    in a namespace its namespaceSelector selects (and not elsewhere) and gets the requester's userInfo; a validating
    webhook's refusal is upstream's `admission webhook "NAME" denied the request: MESSAGE` and its warning a `Warning:`
    line; `--dry-run=server` calls a sideEffects=None webhook with dryRun set; CEL matchConditions skip it (false) or
    refuse the request (an evaluation error under failurePolicy Fail); with the server stopped,
    failurePolicy Fail refuses with upstream's `failed calling webhook` message and Ignore lets the create through."""
    d = Path(tempfile.mkdtemp(prefix="webhooks-", dir=str(t.server.workdir)))
    certs(d)
    hook = _Webhook(d)
    ca = base64.b64encode((d / "ca.crt").read_bytes()).decode()
    on = t.namespace("on")
    off = t.namespace("off")
    t.ok("label", "namespace", on, "webhooks.rkube.test=on")
    try:
        for c in _configs(hook.port, ca):
            t.create(c)

        # The mutating webhook labels what is created in the selected namespace, and sees who asked.
        t.create(_cm("plain"), on)
        t.eq(jget(t.json("get", "configmap", "plain", "-n", on), "metadata.labels", {}).get(LABEL), "yes",
             "the mutating webhook's patch is stored")
        calls = hook.calls("/mutate", "plain")
        t.eq(len(calls), 1, "the mutating webhook was called once for the create")
        me = jget(t.json("auth", "whoami"), "status.userInfo.username")
        t.eq(jget(calls[0], "userInfo.username"), me, "the review carries the requesting user")
        t.eq((calls[0].get("operation"), calls[0].get("namespace"), jget(calls[0], "kind.kind"),
              jget(calls[0], "resource.resource"), calls[0].get("dryRun")),
             ("CREATE", on, "ConfigMap", "configmaps", False), "the review's request fields")
        # Its namespaceSelector keeps it away from other namespaces.
        t.create(_cm("elsewhere"), off)
        t.eq(jget(t.json("get", "configmap", "elsewhere", "-n", off), "metadata.labels"), None,
             "no label outside the selected namespace")
        t.eq(hook.calls("/mutate", "elsewhere"), [], "the webhook is not called outside its namespaceSelector")

        # The validating webhook's refusal, as kubectl prints it; nothing is stored.
        err = t.fails("create", "-f", "-", "-n", on, stdin=_cm("bad", {"forbidden": "x"}))
        t.eq(err, f'Error from server (Forbidden): error when creating "STDIN": admission webhook "{DENY_NAME}" '
                  'denied the request: the key "forbidden" is not allowed', "the validating webhook's denial")
        t.eq(t.fails("get", "configmap", "bad", "-n", on), NOT_FOUND.format(res="configmaps", name="bad"),
             "a refused ConfigMap is not stored")
        # Its warning comes back as a Warning: line.
        r = t.run("create", "-f", "-", "-n", on, stdin=_cm("warned", {"warnme": "x"}))
        t.eq(r.rc, 0, "a warned create succeeds")
        t.contains(r.err, "Warning: configmap warned carries warnme", "the webhook's warning reaches kubectl")

        # --dry-run=server still calls a sideEffects=None webhook, which sees dryRun; nothing is stored.
        out = json.loads(t.ok("create", "-f", "-", "-n", on, "--dry-run=server", "-o", "json", stdin=_cm("dry")))
        t.eq(jget(out, "metadata.labels", {}).get(LABEL), "yes", "the dry-run answer carries the webhook's patch")
        t.eq([c.get("dryRun") for c in hook.calls("/mutate", "dry")], [True], "the webhook saw dryRun: true")
        t.eq([c.get("dryRun") for c in hook.calls("/validate", "dry")], [True],
             "the validating webhook was called on the dry run too")
        t.eq(t.fails("get", "configmap", "dry", "-n", on), NOT_FOUND.format(res="configmaps", name="dry"),
             "a dry run stores nothing")

        # matchConditions (CEL): a false condition skips the webhook; one that fails to evaluate refuses under
        # failurePolicy Fail with upstream's NewForbidden text.
        cond = ('[{"op": "add", "path": "/webhooks/0/matchConditions", "value": '
                '[{"name": "not-skipped", "expression": "!(\'skip\' in object.metadata.labels)"}]}]')
        t.ok("patch", "validatingwebhookconfiguration", VALIDATING_CONFIG, "--type=json", "-p", cond)
        skipped = json.loads(_cm("skipped", {"forbidden": "x"}))
        skipped["metadata"]["labels"] = {"skip": "yes"}
        t.create(skipped, on)
        t.eq(hook.calls("/validate", "skipped"), [], "a false matchCondition skips the webhook")
        err = t.fails("create", "-f", "-", "-n", on, stdin=_cm("bad", {"forbidden": "x"}))
        t.contains(err, 'denied the request: the key "forbidden" is not allowed',
                   "a true matchCondition calls the webhook")
        broken = ('[{"op": "replace", "path": "/webhooks/0/matchConditions/0/expression", '
                  '"value": "object.nope == 1"}]')
        t.ok("patch", "validatingwebhookconfiguration", VALIDATING_CONFIG, "--type=json", "-p", broken)
        err = t.fails("create", "-f", "-", "-n", on, stdin=_cm("cel"))
        t.eq(err, 'Error from server (Forbidden): error when creating "STDIN": configmaps "cel" is forbidden: '
                  "expression 'object.nope == 1' resulted in error: no such key: nope",
             "a matchCondition that fails to evaluate under failurePolicy Fail")
        t.ok("patch", "validatingwebhookconfiguration", VALIDATING_CONFIG, "--type=json", "-p",
             '[{"op": "remove", "path": "/webhooks/0/matchConditions"}]')

        # The server goes away: failurePolicy Fail refuses (mutating webhooks run first), Ignore lets it through.
        hook.stop()
        refused = ('Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
                   'failed calling webhook "{name}": failed to call webhook: Post '
                   '"https://127.0.0.1:{port}{path}?timeout=10s": dial tcp 127.0.0.1:{port}: connect: connection refused')
        err = t.fails("create", "-f", "-", "-n", on, stdin=_cm("down"))
        t.eq(err, refused.format(name=MUTATE_NAME, port=hook.port, path="/mutate"),
             "failurePolicy Fail on the unreachable mutating webhook")
        ignore = '[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]'
        t.ok("patch", "mutatingwebhookconfiguration", MUTATING_CONFIG, "--type=json", "-p", ignore)
        err = t.fails("create", "-f", "-", "-n", on, stdin=_cm("down"))
        t.eq(err, refused.format(name=DENY_NAME, port=hook.port, path="/validate"),
             "failurePolicy Fail on the unreachable validating webhook")
        t.ok("patch", "validatingwebhookconfiguration", VALIDATING_CONFIG, "--type=json", "-p", ignore)
        t.create(_cm("down"), on)
        t.eq(jget(t.json("get", "configmap", "down", "-n", on), "metadata.labels"), None,
             "with failurePolicy Ignore the create goes through unmutated")
    finally:
        # Cluster-scoped: they would reach into later scenarios.
        t.run("delete", "mutatingwebhookconfiguration", MUTATING_CONFIG, "--ignore-not-found")
        t.run("delete", "validatingwebhookconfiguration", VALIDATING_CONFIG, "--ignore-not-found")
        hook.stop()
    t.ok("delete", "namespace", on, off, "--wait=false")
