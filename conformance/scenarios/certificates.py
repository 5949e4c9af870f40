"""CertificateSigningRequests (certificates.k8s.io/v1): the requester's identity stamped on create, approval and
denial with `kubectl certificate`, the kubernetes.io/kube-apiserver-client signer issuing a certificate from the
cluster CA that then logs in, the signer's refusal of a usage it does not allow, and the approval admission
check on the `signers` resource."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import tempfile
from pathlib import Path

from harness import T, jget, poll, scenario

SIGNER = "kubernetes.io/kube-apiserver-client"


def _openssl(t: T, *args: str, stdin: bytes | None = None) -> str:
    t.last_cmd = "openssl " + " ".join(args)
    p = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=30)
    t.eq(p.returncode, 0, f"openssl exit code ({p.stderr.decode(errors='replace')[-300:]})")
    return p.stdout.decode(errors="replace")


def _key_and_csr(t: T, d: Path, name: str, subj: str) -> tuple[Path, bytes]:
    key, csr = d / f"{name}.key", d / f"{name}.csr"
    _openssl(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", subj)
    return key, csr.read_bytes()


def _csr(name: str, request: bytes, usages: list[str], **extra) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": SIGNER, "usages": usages,
                     "expirationSeconds": 3600, **extra}}


def _cond(csr: dict, typ: str) -> dict | None:
    return next((c for c in jget(csr, "status.conditions", []) or [] if c.get("type") == typ), None)


@scenario
def csr_approve_and_login(t: T) -> None:
    """A CSR records its requester (not what the body claims); `kubectl certificate approve` adds the Approved
    condition and the kube-apiserver-client signer issues a certificate for the CSR's subject from the cluster CA,
    honouring expirationSeconds, which then authenticates (whoami: alice, [devs system:authenticated]); a denied
    CSR gets no certificate; a `server auth` usage is approved but Failed by the signer with upstream's reason;
    approving needs `approve` on the signer (upstream's approval admission text)."""
    d = Path(tempfile.mkdtemp(prefix="csr-", dir=str(t.server.workdir)))
    ns = t.namespace()  # only for a unique prefix of the cluster-scoped names below
    alice_name, denied_name, server_name, bob_name = f"{ns}-alice", f"{ns}-denied", f"{ns}-server", f"{ns}-bob"
    role, binding = f"{ns}-csr-no-signer", f"{ns}-csr-no-signer"
    role2 = f"{ns}-csr-signer"
    names = [alice_name, denied_name, server_name, bob_name]
    try:
        me = t.json("auth", "whoami")["status"]["userInfo"]
        key, req = _key_and_csr(t, d, "alice", "/CN=alice/O=devs")
        # The body's username/groups are overwritten with the requester's.
        out = t.create(_csr(alice_name, req, ["client auth"], username="mallory", groups=["system:masters"]))
        t.eq(out, f"certificatesigningrequest.certificates.k8s.io/{alice_name} created", "create output")
        csr = t.json("get", "csr", alice_name)
        t.eq((jget(csr, "spec.username"), jget(csr, "spec.groups")), (me.get("username"), me.get("groups")),
             "spec.username/groups are the requester's")
        t.eq((jget(csr, "spec.signerName"), jget(csr, "spec.usages"), jget(csr, "spec.expirationSeconds")),
             (SIGNER, ["client auth"], 3600), "spec as sent")
        t.eq(jget(csr, "status.certificate"), None, "no certificate before approval")
        row = t.row(t.table(t.ok("get", "csr", alice_name)), alice_name, "get csr")
        t.eq((row.get("SIGNERNAME"), row.get("REQUESTOR"), row.get("REQUESTEDDURATION"), row.get("CONDITION")),
             (SIGNER, me.get("username"), "60m", "Pending"), "get csr columns before approval")

        # Denied before alice is approved: once alice's certificate is out, the denied one still has none.
        _, req_d = _key_and_csr(t, d, "denied", "/CN=denied")
        t.create(_csr(denied_name, req_d, ["client auth"]))
        t.eq(t.ok("certificate", "deny", denied_name).strip(),
             f"certificatesigningrequest.certificates.k8s.io/{denied_name} denied", "certificate deny output")

        t.eq(t.ok("certificate", "approve", alice_name).strip(),
             f"certificatesigningrequest.certificates.k8s.io/{alice_name} approved", "certificate approve output")
        got: list = [None]

        def issued() -> bool:
            got[0] = t.json("get", "csr", alice_name)
            return bool(jget(got[0], "status.certificate"))
        t.true(poll(issued, 60), "the signer issues the approved CSR's certificate", got[0])
        csr = got[0]
        c = _cond(csr, "Approved") or {}
        t.eq((c.get("status"), c.get("reason"), c.get("message")),
             ("True", "KubectlApprove", "This CSR was approved by kubectl certificate approve."), "Approved condition")
        t.true(_cond(csr, "Failed") is None and _cond(csr, "Denied") is None, "no Failed/Denied condition",
               jget(csr, "status.conditions"))
        row = t.row(t.table(t.ok("get", "csr", alice_name)), alice_name, "get csr")
        t.eq(row.get("CONDITION"), "Approved,Issued", "get csr CONDITION once issued")

        cert_pem = base64.b64decode(csr["status"]["certificate"])
        t.true(cert_pem.startswith(b"-----BEGIN CERTIFICATE-----"), "status.certificate is a PEM certificate",
               cert_pem[:80])
        cert = d / "alice.crt"
        cert.write_bytes(cert_pem)
        subject = _openssl(t, "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253").strip()
        t.eq(set(subject.removeprefix("subject=").split(",")), {"CN=alice", "O=devs"},
             f"certificate subject ({subject})")
        verify = _openssl(t, "verify", "-CAfile", str(t.server.creds["ca"]), "-purpose", "sslclient", str(cert))
        t.eq(verify.strip(), f"{cert}: OK", "the certificate chains to the cluster CA, for client auth")
        end = _openssl(t, "x509", "-in", str(cert), "-noout", "-enddate").strip().split("=", 1)[1]
        not_after = dt.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.timezone.utc)
        left = (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds()
        t.true(30 * 60 < left <= 3600 + 60, "expirationSeconds=3600 bounds the certificate's lifetime",
               f"notAfter {end} ({left:.0f}s from now)")

        # Log in with it.
        kc = d / "alice.kubeconfig"
        kc.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "alice",
            "clusters": [{"name": "c", "cluster": {
                "server": t.server.creds["server"],
                "certificate-authority-data": base64.b64encode(Path(t.server.creds["ca"]).read_bytes()).decode()}}],
            "users": [{"name": "alice", "user": {
                "client-certificate-data": base64.b64encode(cert_pem).decode(),
                "client-key-data": base64.b64encode(key.read_bytes()).decode()}}],
            "contexts": [{"name": "alice", "context": {"cluster": "c", "user": "alice"}}]}))
        admin, t.kubeconfig = t.kubeconfig, kc
        try:
            out = t.ok("auth", "whoami")
            t.match(out, r"^Username\s+alice$", "whoami with the issued certificate")
            t.match(out, r"^Groups\s+\[devs system:authenticated\]$", "her groups")
        finally:
            t.kubeconfig = admin

        csr = t.json("get", "csr", denied_name)
        c = _cond(csr, "Denied") or {}
        t.eq((c.get("status"), c.get("reason"), c.get("message")),
             ("True", "KubectlDeny", "This CSR was denied by kubectl certificate deny."), "Denied condition")
        t.eq(jget(csr, "status.certificate"), None, "a denied CSR gets no certificate")
        t.eq(t.row(t.table(t.ok("get", "csr", denied_name)), denied_name, "get csr").get("CONDITION"), "Denied",
             "get csr CONDITION of a denied CSR")
        t.eq(t.fails("certificate", "approve", denied_name),
             f'error: certificate signing request "{denied_name}" is already Denied', "kubectl refuses to approve a denied CSR")

        # A usage the kube-apiserver-client signer does not allow: approved, then Failed by the signer.
        _, req_s = _key_and_csr(t, d, "server", "/CN=server")
        t.create(_csr(server_name, req_s, ["server auth"]))
        t.ok("certificate", "approve", server_name)

        def failed() -> bool:
            got[0] = t.json("get", "csr", server_name)
            return _cond(got[0], "Failed") is not None
        t.true(poll(failed, 60), "the signer marks the CSR Failed", got[0])
        c = _cond(got[0], "Failed") or {}
        t.eq((c.get("status"), c.get("reason"), c.get("message")),
             ("True", "SignerValidationFailure", "invalid usage for client certificate: server auth"),
             "Failed condition")
        t.eq(jget(got[0], "status.certificate"), None, "no certificate for a failed CSR")
        t.eq(t.row(t.table(t.ok("get", "csr", server_name)), server_name, "get csr").get("CONDITION"),
             "Approved,Failed", "get csr CONDITION of a failed CSR")

        # Approval needs `approve` on signers/<signerName>, beyond update on certificatesigningrequests/approval.
        t.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
                  "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
                             "verbs": ["create", "get", "list", "watch"]},
                            {"apiGroups": ["certificates.k8s.io"],
                             "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]}]})
        t.ok("create", "clusterrolebinding", binding, f"--clusterrole={role}", "--user=bob")
        _, req_b = _key_and_csr(t, d, "bob", "/CN=bob")
        t.true(poll(lambda: t.run("auth", "can-i", "create", "certificatesigningrequests.certificates.k8s.io",
                                  "--as", "bob").out.strip() == "yes", 10), "bob may create CSRs", t.last_cmd)
        t.ok("create", "-f", "-", "--as", "bob",
             stdin=json.dumps(_csr(bob_name, req_b, ["client auth"], username="kubernetes-admin")))
        csr = t.json("get", "csr", bob_name)
        t.eq((jget(csr, "spec.username"), jget(csr, "spec.groups")), ("bob", ["system:authenticated"]),
             "a CSR created as bob names bob")
        err = t.fails("certificate", "approve", bob_name, "--as", "bob")
        t.eq(err, f'Error from server (Forbidden): certificatesigningrequests.certificates.k8s.io "{bob_name}" is '
                  f'forbidden: user not permitted to approve requests with signerName "{SIGNER}"',
             "approving without `approve` on the signer")
        t.eq(_cond(t.json("get", "csr", bob_name), "Approved"), None, "the refused approval is not stored")
        t.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role2},
                  "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                             "resourceNames": [SIGNER], "verbs": ["approve"]}]})
        t.ok("create", "clusterrolebinding", role2, f"--clusterrole={role2}", "--user=bob")
        t.true(poll(lambda: t.run("certificate", "approve", bob_name, "--as", "bob").rc == 0, 10),
               "with `approve` on signers/<signerName> bob may approve", t.last_cmd)
        t.eq((_cond(t.json("get", "csr", bob_name), "Approved") or {}).get("status"), "True", "approved by bob")
    finally:
        t.run("delete", "csr", *names, "--ignore-not-found")
        t.run("delete", "clusterrolebinding", binding, role2, "--ignore-not-found")
        t.run("delete", "clusterrole", role, role2, "--ignore-not-found")
    t.ok("delete", "namespace", ns, "--wait=false")


NODE_TOKEN_GROUP = "system:bootstrappers:rkube:default-node-token"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"


def _rkube_token(t: T, *args: str) -> str:
    """`rkube token ARGS` as the admin; requires exit 0, returns stdout."""
    from harness import RKUBE_BIN
    t.last_cmd = "rkube token " + " ".join(args)
    p = subprocess.run([str(RKUBE_BIN), "token", *args, "--kubeconfig", str(t.kubeconfig)], capture_output=True,
                       text=True, timeout=60)
    t.eq(p.returncode, 0, f"rkube token {' '.join(args)} exit code ({p.stderr[-400:]})")
    return p.stdout


def _bearer(t: T, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, str]:
    from harness import https
    t.last_cmd = f"HTTPS {method} {path} with bearer token {token[:6]}.…"
    data = json.dumps(body).encode() if body is not None else None
    return https(t.server.creds, method, path, body=data, client_cert=False,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                          "Accept": "application/json"})


def _who(t: T, token: str) -> tuple[int, dict]:
    status, body = _bearer(t, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token,
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, {"raw": body}


@scenario
def bootstrap_tokens_and_node_csr_approval(t: T) -> None:
    """Joining nodes' bootstrap tokens (kubeadm's TLS bootstrap): `rkube token create` stores a
    bootstrap.kubernetes.io/token Secret in kube-system (24 h expiration, the node-join group) and the token
    authenticates as system:bootstrap:<id> in system:bootstrappers and that group (also in a TokenReview), may
    read no Secrets, and with a wrong secret part is a 401. A kubelet client CSR it posts for
    system:node:<name> in system:nodes is approved by the csrapproving controller (AutoApproved, upstream's
    message, after a SubjectAccessReview) and issued, and the certificate logs in as that node; requests with
    another subject are left pending. `rkube token list` shows the token, `rkube token delete` revokes it, and an
    expired token is refused and deleted by the token cleaner."""
    d = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=str(t.server.workdir)))
    ns = t.namespace()  # a unique prefix for cluster-scoped names
    node = f"{ns}-n1"
    good, bad_subject, extra_org = f"{ns}-node", f"{ns}-not-a-node", f"{ns}-masters"
    try:
        token = _rkube_token(t, "create", "--description", "conformance").strip()
        t.match(token, r"^[a-z0-9]{6}\.[a-z0-9]{16}$", "rkube token create prints a bootstrap token")
        tid = token[:6]
        secret = t.json("get", "secret", f"bootstrap-token-{tid}", "-n", "kube-system")
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        t.eq((secret.get("type"), data.get("token-id"), data.get("token-secret"), data.get("auth-extra-groups"),
              data.get("usage-bootstrap-authentication"), data.get("description")),
             ("bootstrap.kubernetes.io/token", tid, token[7:], NODE_TOKEN_GROUP, "true", "conformance"),
             "the token's Secret")
        expires = dt.datetime.fromisoformat(data.get("expiration", "").replace("Z", "+00:00"))
        left = (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
        t.true(23 * 3600 < left <= 24 * 3600 + 60, "the token expires in 24 h", data.get("expiration"))
        listed = _rkube_token(t, "list")
        t.true(any(line.startswith(token) and "conformance" in line for line in listed.splitlines()),
               "rkube token list shows the token", listed)

        status, review = _who(t, token)
        t.eq((status, jget(review, "status.userInfo.username"), jget(review, "status.userInfo.groups")),
             (201, f"system:bootstrap:{tid}", ["system:bootstrappers", NODE_TOKEN_GROUP, "system:authenticated"]),
             "the token's user")
        wrong = token[:-1] + ("a" if token[-1] != "a" else "b")
        t.eq(_bearer(t, "GET", "/api/v1/namespaces", wrong)[0], 401, "a token with a wrong secret is a 401")
        status, body = _bearer(t, "GET", "/api/v1/secrets", token)
        t.eq(status, 403, "the token may not list secrets")
        t.contains(body, f'User \\"system:bootstrap:{tid}\\" cannot list resource \\"secrets\\"', "forbidden message")
        tr = json.loads(t.ok("create", "-o", "json", "-f", "-", stdin=json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})))
        t.eq((jget(tr, "status.authenticated"), jget(tr, "status.user.username")),
             (True, f"system:bootstrap:{tid}"), "a TokenReview of the token")

        # Requests with the wrong subject first: by the time the node's is approved, these were seen too.
        _, req_bad = _key_and_csr(t, d, "bad", f"/CN={ns}-mallory/O=system:nodes")
        _, req_org = _key_and_csr(t, d, "org", f"/O=system:nodes/O=system:masters/CN=system:node:{node}")
        usages = ["digital signature", "client auth"]
        for name, req in ((bad_subject, req_bad), (extra_org, req_org)):
            status, body = _bearer(t, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", token,
                                   _csr(name, req, usages, signerName=KUBELET_CLIENT_SIGNER))
            t.eq(status, 201, f"the token may create CSR {name} ({body[:200]})")
        key, req = _key_and_csr(t, d, "node", f"/O=system:nodes/CN=system:node:{node}")
        status, body = _bearer(t, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", token,
                               _csr(good, req, usages, signerName=KUBELET_CLIENT_SIGNER))
        t.eq(status, 201, f"the token may create a kubelet client CSR ({body[:200]})")
        got: list = [None]

        def issued() -> bool:
            got[0] = t.json("get", "csr", good)
            return bool(jget(got[0], "status.certificate"))
        t.true(poll(issued, 60), "the node's CSR is approved and issued without an administrator", got[0])
        c = _cond(got[0], "Approved") or {}
        t.eq((jget(got[0], "spec.username"), c.get("status"), c.get("reason"), c.get("message")),
             (f"system:bootstrap:{tid}", "True", "AutoApproved",
              "Auto approving kubelet client certificate after SubjectAccessReview."), "the approval")
        cert = d / "node.crt"
        cert.write_bytes(base64.b64decode(got[0]["status"]["certificate"]))
        subject = _openssl(t, "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253").strip()
        t.eq(subject, f"subject=CN=system:node:{node},O=system:nodes", "the certificate's subject")
        from harness import https
        creds = dict(t.server.creds, cert=cert, key=key)
        status, body = https(creds, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             body=b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
                             headers={"Content-Type": "application/json"})
        t.eq((status, jget(json.loads(body), "status.userInfo.username")), (201, f"system:node:{node}"),
             "the issued certificate logs in as the node")
        for name in (bad_subject, extra_org):
            csr = t.json("get", "csr", name)
            t.eq((_cond(csr, "Approved"), jget(csr, "status.certificate")), (None, None),
                 f"CSR {name} (not a node client request) is left for an administrator")

        t.eq(_rkube_token(t, "delete", token).strip(), f'bootstrap token "{tid}" deleted', "rkube token delete")
        t.true(poll(lambda: _who(t, token)[0] == 401, 15), "a deleted token no longer authenticates",
               _who(t, token))

        short = _rkube_token(t, "create", "--ttl", "2s").strip()
        t.eq(_who(t, short)[0], 201, "a fresh short-lived token authenticates")
        t.true(poll(lambda: _who(t, short)[0] == 401, 15), "an expired token is refused", _who(t, short))
        gone = lambda: t.run("get", "secret", f"bootstrap-token-{short[:6]}", "-n", "kube-system").rc != 0
        t.true(poll(gone, 30), "the token cleaner deletes the expired token's Secret",
               t.run("get", "secret", "-n", "kube-system", "--field-selector", "type=bootstrap.kubernetes.io/token").out)
    finally:
        t.run("delete", "csr", good, bad_subject, extra_org, "--ignore-not-found")
