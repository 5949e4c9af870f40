"""Security scenarios (issue #14): each authorization hole tried as a user would, refused with upstream's
message; the modes of the files holding secrets; and the security walk (every served resource x verb,
without credentials and as a user without grants)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from run import RKUBE_BIN, POD, T, https, https_raw, jget, load_creds, poll, scenario

ISSUER = "https://kubernetes.default.svc.cluster.local"
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


def user_creds(t: T, user: str, groups: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """A kubeconfig (and raw HTTPS credentials) for a new user, from `rkube kubeconfig --user`."""
    args = [str(RKUBE_BIN), "kubeconfig", "--data-dir", str(t.server.data_dir), "--server",
            t.server.creds["server"], "--user", user]
    for g in groups:
        args += ["--group", g]
    t.last_cmd = " ".join(args[:1] + ["kubeconfig", "--user", user])
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    t.eq(p.returncode, 0, f"rkube kubeconfig --user {user} exit code ({p.stderr[-300:]})")
    path = t.server.workdir / f"{user}.kubeconfig"
    path.write_text(p.stdout)
    return path, load_creds(path, t.server.cache_dir)


class As:
    """Runs kubectl as another user inside a `with` block."""

    def __init__(self, t: T, kubeconfig: Path):
        self.t, self.kubeconfig, self.saved = t, kubeconfig, t.kubeconfig

    def __enter__(self):
        self.t.kubeconfig = self.kubeconfig
        return self.t

    def __exit__(self, *exc):
        self.t.kubeconfig = self.saved


def bearer(t: T, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, str]:
    """A request carrying only a bearer token (no client certificate)."""
    t.last_cmd = f"HTTPS {method} {path} with a bearer token"
    return https(t.server.creds, method, path, body=body, client_cert=False,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def escalation_prefix(user: str) -> str:
    return (f'user "{user}" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
            f'currently held:')


@scenario
def sec_escalation_binding_update(t: T) -> None:
    """A user who may update rolebindings cannot add herself to an existing `admin` binding (patch or
    replace: 403 with upstream's escalation message, the subjects unchanged); a change of only the GC
    fields (ownerReferences) is still allowed, as upstream's IsOnlyMutatingGCFields."""
    ns = t.namespace()
    kc, _ = user_creds(t, "mallory")
    t.ok("create", "rolebinding", "admins", "--clusterrole=admin", "--user=bob", "-n", ns)
    t.ok("create", "role", "rb-writer", "--verb=get,list,update,patch",
         "--resource=rolebindings.rbac.authorization.k8s.io", "-n", ns)
    t.ok("create", "rolebinding", "mallory-rb-writer", "--role=rb-writer", "--user=mallory", "-n", ns)
    forbidden = (f'Error from server (Forbidden): rolebindings.rbac.authorization.k8s.io "admins" is forbidden: '
                 f'{escalation_prefix("mallory")}')
    with As(t, kc):
        t.true(poll(lambda: t.run("get", "rolebinding", "admins", "-n", ns, "-o", "name").rc == 0, 10),
               "mallory may read the bindings", t.last_cmd)
        patch = json.dumps([{"op": "add", "path": "/subjects/-",
                             "value": {"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}}])
        err = t.fails("patch", "rolebinding", "admins", "-n", ns, "--type=json", "-p", patch)
        t.true(err.startswith(forbidden), "json patch adding herself is refused with the escalation message", err)
        obj = t.json("get", "rolebinding", "admins", "-n", ns)
        obj["subjects"].append({"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"})
        err = t.fails("replace", "-f", "-", stdin=json.dumps(obj))
        t.true(err.startswith(forbidden.replace("(Forbidden): ", '(Forbidden): error when replacing "STDIN": ')),
               "replace adding herself is refused too", err)
        err = t.fails("label", "rolebinding", "admins", "-n", ns, "x=y")
        t.true(err.startswith(forbidden), "any non-GC change to the binding needs the role's rights", err)
    subjects = t.json("get", "rolebinding", "admins", "-n", ns)["subjects"]
    t.eq([s["name"] for s in subjects], ["bob"], "the admin binding's subjects are unchanged")
    cm_uid = t.json("create", "configmap", "owner", "-n", ns)["metadata"]["uid"]
    owner = json.dumps({"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": cm_uid}]}})
    with As(t, kc):
        out = t.ok("patch", "rolebinding", "admins", "-n", ns, "--type=merge", "-p", owner)
        t.eq(out.strip(), "rolebinding.rbac.authorization.k8s.io/admins patched", "a GC-fields-only change is allowed")
    with As(t, kc):
        err = t.fails("get", "configmaps", "-n", ns)
        t.contains(err, 'User "mallory" cannot list resource "configmaps"', "mallory did not become admin")


@scenario
def sec_escalation_aggregation_labels(t: T) -> None:
    """A user who may update clusterroles cannot label `cluster-admin` into `edit`'s aggregation (403, `*` never
    copied into edit), nor create a ClusterRole with an aggregationRule (upstream's cluster-admin message)."""
    kc, _ = user_creds(t, "eve")
    t.ok("create", "clusterrole", "sec-cr-writer", "--verb=get,list,update,patch,create",
         "--resource=clusterroles.rbac.authorization.k8s.io")
    t.ok("create", "clusterrolebinding", "sec-eve-cr-writer", "--clusterrole=sec-cr-writer", "--user=eve")
    try:
        with As(t, kc):
            t.true(poll(lambda: t.run("get", "clusterrole", "edit", "-o", "name").rc == 0, 10),
                   "eve may read clusterroles", t.last_cmd)
            err = t.fails("label", "clusterrole", "cluster-admin", "rbac.authorization.k8s.io/aggregate-to-edit=true")
            t.true(err.startswith('Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io '
                                  f'"cluster-admin" is forbidden: {escalation_prefix("eve")}'),
                   "labelling cluster-admin into edit's selector is refused", err)
            agg = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "sec-agg"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"sec": "x"}}]}, "rules": []}
            err = t.fails("create", "-f", "-", stdin=json.dumps(agg))
            t.eq(err, 'Error from server (Forbidden): error when creating "STDIN": clusterroles.rbac.authorization.k8s.io '
                      '"sec-agg" is forbidden: must have cluster-admin privileges to use the aggregationRule',
                 "an aggregationRule needs cluster-admin")
        labels = t.json("get", "clusterrole", "cluster-admin")["metadata"].get("labels", {})
        t.true("rbac.authorization.k8s.io/aggregate-to-edit" not in labels, "cluster-admin keeps its labels", labels)
        time.sleep(1)  # give the aggregation controller a moment: it must still copy no `*`
        rules = t.json("get", "clusterrole", "edit").get("rules", [])
        t.true(not any("*" in r.get("verbs", []) for r in rules), "edit holds no `*` rule", rules)
    finally:
        t.run("delete", "clusterrolebinding", "sec-eve-cr-writer", "--ignore-not-found")
        t.run("delete", "clusterrole", "sec-cr-writer", "sec-agg", "--ignore-not-found")


@scenario
def sec_token_audiences(t: T) -> None:
    """A token minted for another audience (`--audience vault`) does not authenticate (401); TokenReview reports
    the audiences that matched, upstream's error otherwise; TokenRequest's expirationSeconds is validated as
    upstream (422 below 10 minutes or above 2^32 s, 400 for a non-integer, never a 5xx)."""
    ns = t.namespace()
    t.ok("create", "serviceaccount", "aud", "-n", ns)
    t.ok("create", "rolebinding", "aud-view", "--clusterrole=view", f"--serviceaccount={ns}:aud", "-n", ns)
    api = t.ok("create", "token", "aud", "-n", ns).strip()
    vault = t.ok("create", "token", "aud", "-n", ns, "--audience=vault").strip()
    t.eq(claims(api)["aud"], [ISSUER], "a token without --audience is for the apiserver")
    t.eq(claims(vault)["aud"], ["vault"], "--audience=vault")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    t.true(poll(lambda: bearer(t, "GET", path, api)[0] == 200, 10), "the apiserver token lists configmaps",
           t.last_cmd)
    st, body = bearer(t, "GET", path, vault)
    t.eq(st, 401, "the vault token does not authenticate to the apiserver")
    t.status_error(body, 401, "Unauthorized", "vault token")

    def review(token: str, audiences: list[str] | None) -> dict:
        spec: dict = {"token": token}
        if audiences is not None:
            spec["audiences"] = audiences
        out = t.ok("create", "-o", "json", "-f", "-", stdin=json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}))
        return json.loads(out)["status"]
    s = review(vault, ["vault"])
    t.eq((s.get("authenticated"), s.get("audiences")), (True, ["vault"]), "TokenReview for audience vault")
    s = review(vault, None)
    t.eq(s.get("authenticated"), False, "TokenReview of the vault token for the apiserver's audiences")
    t.eq(s.get("error"), f'[invalid bearer token, token audiences ["vault"] is invalid for the target audiences '
                         f'["{ISSUER}"]]', "upstream's audience error")
    s = review(api, ["vault", ISSUER])
    t.eq((s.get("authenticated"), s.get("audiences")), (True, [ISSUER]), "only the audiences that matched")

    err = t.fails("create", "token", "aud", "-n", ns, "--duration=1m")
    t.eq(err, 'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: '
              'spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes',
         "expirationSeconds below 10 minutes")
    tr = f"/api/v1/namespaces/{ns}/serviceaccounts/aud/token"
    answers = []
    for value, code, needle in ((4294967297, 422, "may not specify a duration larger than 2^32 seconds"),
                                (9223372036854775807, 422, "may not specify a duration larger than 2^32 seconds"),
                                (-9223372036854775808, 422, "may not specify a duration less than 10 minutes"),
                                (1e30, 400, "cannot unmarshal number"),
                                ("soon", 400, "cannot unmarshal string")):
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": {"expirationSeconds": value}}).encode()
        st, text = t.https("POST", tr, body, headers=JSON)
        answers.append((value, st))
        t.eq(st, code, f"TokenRequest with expirationSeconds {value}")
        t.contains(json.loads(text).get("message", ""), needle, f"message for expirationSeconds {value}")
    body = json.dumps({"spec": {"expirationSeconds": 4294967296}}).encode()
    st, text = t.https("POST", tr, body, headers=JSON)
    t.eq(st, 201, "expirationSeconds of exactly 2^32 s is allowed")
    exp = claims(json.loads(text)["status"]["token"])
    t.eq(exp["exp"] - exp["iat"], 4294967296, "the token lives 2^32 s")
    print(f"      TokenRequest expirationSeconds answers: {answers}")


@scenario
def sec_bound_tokens(t: T) -> None:
    """Tokens bound to a Pod or Secret (`kubectl create token --bound-object-kind`) name the object's uid and stop
    authenticating once it is deleted or recreated; boundObjectRef is validated with upstream's messages."""
    ns = t.namespace()
    t.ok("create", "serviceaccount", "b", "-n", ns)
    t.ok("create", "rolebinding", "b-view", "--clusterrole=view", f"--serviceaccount={ns}:b", "-n", ns)
    pod = POD.format(name="p", labels="").replace("spec:\n", "spec:\n  serviceAccountName: b\n", 1)
    t.create(pod, ns)
    pod_uid = t.json("get", "pod", "p", "-n", ns)["metadata"]["uid"]
    tok = t.ok("create", "token", "b", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=p").strip()
    k8s = claims(tok)["kubernetes.io"]
    t.eq(k8s.get("pod"), {"name": "p", "uid": pod_uid}, "the token names the pod and its uid")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    t.true(poll(lambda: bearer(t, "GET", path, tok)[0] == 200, 10), "the pod-bound token works", t.last_cmd)
    t.ok("delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
    t.true(poll(lambda: t.run("get", "pod", "p", "-n", ns).rc != 0, 30), "pod gone", t.last_cmd)
    t.eq(bearer(t, "GET", path, tok)[0], 401, "the pod's deletion ends the token")
    t.create(pod, ns)
    t.eq(bearer(t, "GET", path, tok)[0], 401, "a new pod of the same name does not revive it (uid checked)")

    t.ok("create", "secret", "generic", "s", "-n", ns, "--from-literal=a=b")
    stok = t.ok("create", "token", "b", "-n", ns, "--bound-object-kind=Secret", "--bound-object-name=s").strip()
    t.eq(bearer(t, "GET", path, stok)[0], 200, "the secret-bound token works")
    t.ok("delete", "secret", "s", "-n", ns)
    t.eq(bearer(t, "GET", path, stok)[0], 401, "the secret's deletion ends the token")

    t.create(POD.format(name="other", labels=""), ns)
    err = t.fails("create", "token", "b", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=other")
    t.eq(err, 'error: failed to create token: cannot bind token for serviceaccount "b" to pod running with '
              'different serviceaccount name.', "a pod of another service account")
    err = t.fails("create", "token", "b", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=nope")
    t.eq(err, 'error: failed to create token: pods "nope" not found', "a missing pod")
    tr = f"/api/v1/namespaces/{ns}/serviceaccounts/b/token"
    body = json.dumps({"spec": {"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}}).encode()
    st, text = t.https("POST", tr, body, headers=JSON)
    t.eq((st, json.loads(text).get("message")), (400, "cannot bind token to object of type /v1, Kind=ConfigMap"),
         "a ConfigMap cannot be bound")
    body = json.dumps({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                                   "uid": "00000000-0000-0000-0000-000000000000"}}}).encode()
    st, text = t.https("POST", tr, body, headers=JSON)
    t.eq(st, 409, "a boundObjectRef uid that is not the pod's")
    t.contains(json.loads(text).get("message", ""), "the UID in the bound object reference "
               "(00000000-0000-0000-0000-000000000000) does not match the UID in record. The object might have "
               "been deleted and then recreated", "upstream's conflict message")


SHADOW_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
{annotations}spec:
  group: {group}
  scope: Cluster
  names: {{plural: {plural}, singular: {singular}, kind: {kind}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


@scenario
def sec_crd_shadowing(t: T) -> None:
    """A CRD for a built-in's group/plural is refused without `api-approved.kubernetes.io` (422, upstream's
    message), and with it is left NamesAccepted=False and not served: the built-in route keeps answering, and
    deleting that CRD deletes none of the built-in's objects (nor, for `customresourcedefinitions`, any CRD)."""
    crb = dict(plural="clusterrolebindings", singular="clusterrolebinding", kind="ClusterRoleBinding",
               group="rbac.authorization.k8s.io")
    err = t.fails("create", "-f", "-", stdin=SHADOW_CRD.format(annotations="", **crb))
    t.eq(err, 'The CustomResourceDefinition "clusterrolebindings.rbac.authorization.k8s.io" is invalid: '
              'metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval '
              'annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111',
         "a protected group without approval")
    err = t.fails("create", "-f", "-", stdin=SHADOW_CRD.format(annotations="  annotations:\n    "
                                                                    "api-approved.kubernetes.io: maybe\n", **crb))
    t.contains(err, 'metadata.annotations[api-approved.kubernetes.io]: Invalid value: "maybe": protected groups must '
                    'have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with '
                    '"unapproved"', "an approval that is neither a URL nor unapproved")
    before = sorted(t.names(t.ok("get", "clusterrolebindings", "-o", "name")))
    approved = "  annotations:\n    api-approved.kubernetes.io: https://example.com/pr/1\n"
    t.create(SHADOW_CRD.format(annotations=approved, **crb))
    try:
        crd = t.json("get", "crd", "clusterrolebindings.rbac.authorization.k8s.io")
        conds = {c["type"]: c for c in crd["status"]["conditions"]}
        t.eq((conds["NamesAccepted"]["status"], conds["NamesAccepted"]["reason"], conds["NamesAccepted"]["message"]),
             ("False", "PluralConflict", '"clusterrolebindings" is already in use'), "NamesAccepted")
        t.eq((conds["Established"]["status"], conds["Established"]["reason"]), ("False", "NotAccepted"), "Established")
        obj = t.json("get", "clusterrolebinding", "cluster-admin")
        t.eq((obj["kind"], obj["roleRef"]["name"]), ("ClusterRoleBinding", "cluster-admin"),
             "the built-in clusterrolebindings are still served")
        t.ok("create", "clusterrolebinding", "sec-shadow-probe", "--clusterrole=view", "--user=nobody-else")
        t.ok("delete", "clusterrolebinding", "sec-shadow-probe")
    finally:
        t.ok("delete", "crd", "clusterrolebindings.rbac.authorization.k8s.io")
    after = sorted(t.names(t.ok("get", "clusterrolebindings", "-o", "name")))
    t.eq(after, before, "deleting the shadowing CRD deleted no ClusterRoleBinding")

    # The CRD resource itself: a CRD named like it must not take over (or, deleted, wipe) every CRD.
    own = dict(plural="secprobes", singular="secprobe", kind="SecProbe", group="sec.example.com")
    t.create(SHADOW_CRD.format(annotations="", **own))
    crds = dict(plural="customresourcedefinitions", singular="customresourcedefinition",
                kind="CustomResourceDefinition", group="apiextensions.k8s.io")
    t.create(SHADOW_CRD.format(annotations=approved, **crds))
    try:
        c = t.json("get", "crd", "customresourcedefinitions.apiextensions.k8s.io")
        t.eq(jget(c, "status.conditions")[0]["status"], "False", "the CRD-shadowing CRD is not accepted")
    finally:
        t.ok("delete", "crd", "customresourcedefinitions.apiextensions.k8s.io")
    t.eq(t.ok("get", "crd", "secprobes.sec.example.com", "-o", "name").strip(),
         "customresourcedefinition.apiextensions.k8s.io/secprobes.sec.example.com", "other CRDs survive")
    t.ok("delete", "crd", "secprobes.sec.example.com")


def foreign_cert(workdir: Path) -> tuple[Path, Path]:
    """A client certificate our CA never signed."""
    d = Path(tempfile.mkdtemp(prefix="foreign-", dir=str(workdir)))
    cert, key = d / "c.crt", d / "c.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=kubernetes-admin/O=system:masters"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@scenario
def sec_failed_credentials(t: T) -> None:
    """Credentials that fail are a 401 on every path, /version and the health endpoints included (a bad bearer
    token, a certificate our CA did not sign); only a request without credentials is anonymous."""
    paths = ("/version", "/healthz", "/livez", "/readyz", "/readyz?verbose", "/api", "/api/v1/namespaces",
             "/openapi/v2", "/nope")
    for p in paths:
        # "Bearer  x" (two spaces) presents an empty token, which upstream's authenticator refuses.
        for auth in ("Bearer abc123", "bearer a.b.c", "Bearer  x"):
            st, _, body = https_raw(t.server.creds, "GET", p, client_cert=False,
                                    headers={"Authorization": auth, "Accept": "application/json"})
            t.last_cmd = f"HTTPS GET {p} with Authorization: {auth}"
            t.eq(st, 401, f"GET {p} with Authorization: {auth!r}")
            t.status_error(body.decode(), 401, "Unauthorized", f"GET {p} with a bad token")
    for p in ("/version", "/healthz", "/livez", "/readyz"):
        st, _ = t.https("GET", p, client_cert=False)
        t.eq(st, 200, f"anonymous GET {p} stays open")
        st, _, _ = https_raw(t.server.creds, "GET", p, client_cert=False, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        t.eq(st, 200, f"GET {p} with a Basic header (not a credential rkube knows: anonymous, as upstream)")
    st, _ = t.https("GET", "/api", client_cert=False)
    t.eq(st, 401, "anonymous /api")
    # A client certificate not signed by the cluster CA: refused in the TLS handshake or with a 401, never
    # served as anonymous (nor as the admin its subject claims to be).
    cert, key = foreign_cert(t.server.workdir)
    outcomes = []
    for p in ("/version", "/healthz", "/api/v1/namespaces"):
        ctx = ssl.create_default_context(cafile=str(t.server.creds["ca"]))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(cert), str(key))
        import http.client
        import urllib.parse
        u = urllib.parse.urlparse(t.server.creds["server"])
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        try:
            conn.request("GET", p)
            outcome = str(conn.getresponse().status)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            outcome = f"refused in TLS ({type(e).__name__})"
        finally:
            conn.close()
        outcomes.append((p, outcome))
        t.last_cmd = f"HTTPS GET {p} with a certificate the cluster CA did not sign"
        t.true(outcome == "401" or outcome.startswith("refused"), f"foreign certificate on {p}", outcome)
    print(f"      foreign client certificate: {outcomes}")


def mode_of(p: Path) -> str:
    return oct(stat.S_IMODE(os.stat(p).st_mode))


@scenario
def sec_file_modes(t: T) -> None:
    """The data dir is 0700, the PKI dir 0700, every key, the embedded store and the admin kubeconfig 0600 (created
    so, under a 0077 umask); a data dir left world-readable is tightened to 0700 at the next start."""
    data = t.server.data_dir
    files = {data: "0o700", data / "pki": "0o700", t.server.kubeconfig: "0o600"}
    for k in sorted((data / "pki").glob("*.key")):
        files[k] = "0o600"
    if t.server.backend == "embedded":
        files[data / "db"] = "0o700"
        files[data / "db" / "rkube.redb"] = "0o600"
    for p, want in files.items():
        t.last_cmd = f"stat {p}"
        t.eq(mode_of(p), want, f"mode of {p.relative_to(t.server.workdir)}")
    t.true(len(files) >= 5, "keys were found", sorted(str(p) for p in files))
    # Certificates are public (0644, as kubeadm writes them); everything else is the user's alone.
    leaks = [str(p) for p in data.rglob("*")
             if stat.S_IMODE(os.stat(p).st_mode) & 0o077 and p.suffix != ".crt"]
    t.eq(leaks, [], "nothing but certificates under the data dir is readable by group or others")
    print(f"      modes checked: {len(files)} paths, {sum(1 for _ in data.rglob('*'))} entries under the data dir")
    os.chmod(data, 0o755)
    t.server.stop()
    t.server.start()
    t.eq(mode_of(data), "0o700", "a world-readable data dir is tightened at start")


# --------------------------------------------------------------------------------------------
# The security walk

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# Upstream's system:basic-user lets every authenticated user ask about himself.
SELF_REVIEWS = {("authentication.k8s.io", "selfsubjectreviews"), ("authorization.k8s.io", "selfsubjectaccessreviews"),
                ("authorization.k8s.io", "selfsubjectrulesreviews")}


def served_resources(t: T) -> list[tuple[str, str, str, bool]]:
    """(group, version, plural, namespaced) of every resource discovery lists (preferred and other versions)."""
    out = []
    core = t.raw("/api/v1")
    for r in core["resources"]:
        if "/" not in r["name"]:
            out.append(("", "v1", r["name"], r["namespaced"]))
    for g in t.raw("/apis")["groups"]:
        for v in g["versions"]:
            rl = t.raw(f"/apis/{v['groupVersion']}")
            for r in rl["resources"]:
                if "/" not in r["name"]:
                    out.append((g["name"], v["version"], r["name"], r["namespaced"]))
    return out


def walk_request(group: str, version: str, plural: str, namespaced: bool, verb: str) -> tuple[str, str, bytes | None, dict]:
    base = "/api/v1" if not group else f"/apis/{group}/{version}"
    coll = f"{base}/namespaces/default/{plural}" if namespaced else f"{base}/{plural}"
    item = f"{coll}/sec-walk"
    body = json.dumps({"metadata": {"name": "sec-walk"}}).encode()
    return {
        "get": ("GET", item, None, {}),
        "list": ("GET", coll, None, {}),
        "watch": ("GET", coll + "?watch=1&timeoutSeconds=1", None, {}),
        "create": ("POST", coll, body, {"Content-Type": "application/json"}),
        "update": ("PUT", item, body, {"Content-Type": "application/json"}),
        "patch": ("PATCH", item, b"{}", {"Content-Type": "application/merge-patch+json"}),
        "delete": ("DELETE", item, None, {}),
        "deletecollection": ("DELETE", coll, None, {}),
    }[verb]


def snapshot(t: T, resources) -> set[tuple]:
    """What the walk's requests could write or delete, as the admin lists it: every object named
    `sec-walk` (the only name its creates, updates and patches use) and every object in the scopes its
    deletecollections address (the `default` namespace and cluster-scoped resources), as
    (group, plural, namespace, name, resourceVersion). Left out is what the cluster changes on its
    own while the walk runs (controllers and hollow kubelets keep working): Leases, Events, objects
    already being deleted, and the resourceVersion of objects the walk cannot name."""
    seen = set()
    for group, version, plural, namespaced in resources:
        base = "/api/v1" if not group else f"/apis/{group}/{version}"
        st, body = t.https("GET", f"{base}/{plural}")
        if st != 200 or plural in ("leases", "events"):
            continue  # create-only kinds (reviews, bindings) have no list
        for o in json.loads(body).get("items", []):
            m = o.get("metadata", {})
            ns, name = m.get("namespace"), m.get("name")
            if name == "sec-walk":
                seen.add((group, plural, ns, name, m.get("resourceVersion")))
            elif (not namespaced or ns == "default") and not m.get("deletionTimestamp"):
                seen.add((group, plural, ns, name, None))
    return seen


@scenario
def sec_walk(t: T) -> None:
    """The security walk: every served resource x verb (get, list, watch, create, update, patch, delete,
    deletecollection) without credentials answers 401 and as a user without grants 403 (bar upstream's
    self-reviews every user may create); nothing a refused request sent was written."""
    resources = served_resources(t)
    t.true(len(resources) > 50, "discovery lists the built-in resources", len(resources))
    _, nobody = user_creds(t, "nobody")
    before = snapshot(t, resources)
    counts = {"tried": 0, "401": 0, "403": 0, "self-review allowed": 0}
    wrong = []
    for who, creds in (("anonymous", None), ("nobody", nobody)):
        for group, version, plural, namespaced in resources:
            for verb in VERBS:
                method, path, body, headers = walk_request(group, version, plural, namespaced, verb)
                h = {"Accept": "application/json", **headers}
                if creds is None:
                    st, _ = https(t.server.creds, method, path, body=body, client_cert=False, headers=h)
                else:
                    st, _ = https(creds, method, path, body=body, headers=h)
                counts["tried"] += 1
                if who == "anonymous":
                    expected = 401
                elif verb == "create" and (group, plural) in SELF_REVIEWS:
                    # Authorized; the walk's body may then be invalid for the review (422).
                    expected = 201 if st == 201 else 422
                else:
                    expected = 403
                if st == expected:
                    counts["self-review allowed" if expected in (201, 422) else str(expected)] += 1
                else:
                    wrong.append((who, verb, path, st))
    after = snapshot(t, resources)
    print(f"      walk: {len(resources)} resources x {len(VERBS)} verbs x 2 identities: {counts}; "
          f"{len(before)} objects before and after")
    t.last_cmd = "the security walk"
    t.eq(wrong, [], "every refused request got 401 (no credentials) or 403 (no grants)")
    t.eq(counts["tried"], 2 * len(resources) * len(VERBS), "every combination was tried")
    t.eq(sorted(o for o in after if o[3] == "sec-walk"), [], "no object was created or changed by a refused request")
    t.eq(sorted(before - after), [], "no object was deleted by a refused request")


@scenario
def sec_api_audiences_flag(t: T) -> None:
    """`rkube server --api-audiences A,B --service-account-max-token-expiration 1h`: tokens authenticate only for
    A or B (a token for the default issuer audience no longer does), TokenRequests default to A,B, and longer
    requests are shortened to an hour with upstream's warning."""
    ns = t.namespace()
    t.ok("create", "serviceaccount", "flags", "-n", ns)
    server = t.server
    plain_args = server.args
    extra = ["--api-audiences", "https://rkube.test,vault", "--service-account-max-token-expiration", "1h"]
    server.stop()
    server.args = lambda kubeconfig: plain_args(kubeconfig) + extra  # type: ignore[method-assign]
    try:
        server.start()
        path = f"/api/v1/namespaces/{ns}/configmaps"
        tok = t.ok("create", "token", "flags", "-n", ns).strip()
        t.eq(claims(tok)["aud"], ["https://rkube.test", "vault"], "a TokenRequest without audiences gets --api-audiences")
        # 403, not 401: authenticated (the account has no grants).
        t.eq(bearer(t, "GET", path, tok)[0], 403, "a token for the api audiences authenticates")
        tok = t.ok("create", "token", "flags", "-n", ns, "--audience=vault").strip()
        t.eq(bearer(t, "GET", path, tok)[0], 403, "one matching audience is enough")
        tok = t.ok("create", "token", "flags", "-n", ns, f"--audience={ISSUER}").strip()
        t.eq(bearer(t, "GET", path, tok)[0], 401, "the issuer is no longer an accepted audience")
        r = t.run("create", "token", "flags", "-n", ns, "--duration=48h")
        t.eq(r.rc, 0, "a 48h token request succeeds")
        c = claims(r.out.strip())
        t.eq(c["exp"] - c["iat"], 3600, "shortened to --service-account-max-token-expiration")
        t.contains(r.err, "requested expiration of 172800 seconds shortened to 3600 seconds", "upstream's warning")
    finally:
        server.stop()
        server.args = plain_args  # type: ignore[method-assign]
        server.start()


def node_fixture(t: T) -> tuple[str, str, str, Path, dict]:
    """Two Nodes (unschedulable: nothing else lands there; no kubelet runs them), a pod bound to each
    (p1 on n1 uses Secret s1 and ConfigMap c1; p2 on n2 uses s2), an unused Secret and ConfigMap, and a
    client certificate for n1's kubelet (`system:node:n1` in `system:nodes`)."""
    ns = t.namespace()
    n1, n2 = f"{ns}-n1", f"{ns}-n2"
    for n in (n1, n2):
        t.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                  "spec": {"unschedulable": True}})
    for s in ("s1", "s2", "unused"):
        t.ok("create", "secret", "generic", s, "--from-literal=a=b", "-n", ns)
    for c in ("c1", "unused"):
        t.ok("create", "configmap", c, "-n", ns)

    def pod(name: str, node: str, secret: str, **container) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": node, "volumes": [{"name": "s", "secret": {"secretName": secret}}],
                         "containers": [{"name": "c", "image": "busybox", **container}]}}
    t.create(pod("p1", n1, "s1", envFrom=[{"configMapRef": {"name": "c1"}}]), ns)
    t.create(pod("p2", n2, "s2"), ns)
    kc, creds = user_creds(t, f"system:node:{n1}", ("system:nodes",))
    return ns, n1, n2, kc, creds


def forbidden_as_node(node: str, verb: str, resource: str, ns: str | None, reason: str, name: str = "",
                      group: str = "") -> str:
    """kubectl's line for a request the authorizers refused (the Node authorizer's reason last)."""
    subject = (f"{resource}.{group}" if group else resource) + (f' "{name}"' if name else "")
    where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    line = (f'Error from server (Forbidden): {subject} is forbidden: User "system:node:{node}" cannot {verb} '
            f'resource "{resource}" in API group "{group}" {where}')
    return f"{line}: {reason}" if reason else line


@scenario
def sec_node_authorizer(t: T) -> None:
    """A kubelet (`system:node:<name>`, x509) reads only what its own pods use, as upstream's Node
    authorizer allows: the Secret and ConfigMap of a pod bound to it, never another node's or an unused
    one, and no lists of them; its own pods only through the `spec.nodeName` field selector; its own
    Node, not others; tokens only for a service account its pods run as. Each refusal carries the Node
    authorizer's reason. The one RBAC binding of `system:nodes` is kubeadm's for certificate rotation: it grants
    `create` on `certificatesigningrequests/selfnodeclient` and nothing else."""
    ns, n1, n2, kc, _ = node_fixture(t)
    none = f"no relationship found between node '{n1}' and this object"
    try:
        bindings = t.json("get", "clusterrolebindings")["items"]
        t.eq([(b["metadata"]["name"], b["roleRef"]["name"]) for b in bindings
              if any(s.get("name") == "system:nodes" for s in b.get("subjects") or [])],
             [("rkube:node-autoapprove-certificate-rotation",
               "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient")],
             "the only ClusterRoleBinding of the system:nodes group is the one for certificate rotation")
        rules = t.json("get", "clusterrole", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient")
        t.eq(rules.get("rules"), [{"apiGroups": ["certificates.k8s.io"],
                                   "resources": ["certificatesigningrequests/selfnodeclient"], "verbs": ["create"]}],
             "which grants the renewal of a node's own client certificate only")
        with As(t, kc):
            t.eq(t.ok("get", "secret", "s1", "-n", ns, "-o", "name").strip(), "secret/s1",
                 "the Secret of a pod bound to the node is readable")
            t.eq(t.ok("get", "configmap", "c1", "-n", ns, "-o", "name").strip(), "configmap/c1",
                 "the ConfigMap of a pod bound to the node is readable")
            for kind, name in (("secrets", "s2"), ("secrets", "unused"), ("configmaps", "unused")):
                t.eq(t.fails("get", kind, name, "-n", ns), forbidden_as_node(n1, "get", kind, ns, none, name),
                     f"{kind} {name} (another node's pod, or no pod's) is refused")
            t.eq(t.fails("get", "secrets", "-n", ns),
                 forbidden_as_node(n1, "list", "secrets", ns, "No Object name found"), "listing Secrets is refused")
            t.eq(t.ok("get", "secret", "-n", ns, "--field-selector", "metadata.name=s1", "-o", "name").strip(),
                 "secret/s1", "a list of one related Secret by name is allowed (as the kubelet's watches)")
            t.eq(t.ok("get", "pod", "p1", "-n", ns, "-o", "name").strip(), "pod/p1", "its own pod is readable")
            t.eq(t.fails("get", "pod", "p2", "-n", ns), forbidden_as_node(n1, "get", "pods", ns, none, "p2"),
                 "another node's pod is refused")
            t.eq(t.fails("get", "pods", "-n", ns),
                 forbidden_as_node(n1, "list", "pods", ns, "can only list/watch pods with spec.nodeName field selector"),
                 "listing pods without the node's field selector is refused")
            out = t.ok("get", "pods", "-A", "--field-selector", f"spec.nodeName={n1}", "-o", "name")
            t.eq(out.split(), ["pod/p1"], "its pods, listed with spec.nodeName=<node>")
            t.eq(t.ok("get", "node", n1, "-o", "name").strip(), f"node/{n1}", "its own Node is readable")
            t.eq(t.fails("get", "node", n2),
                 forbidden_as_node(n1, "get", "nodes", None, f"node '{n1}' cannot read '{n2}', only its own Node object", n2),
                 "another Node is refused")
            t.eq(t.fails("get", "nodes"),
                 forbidden_as_node(n1, "list", "nodes", None, f"node '{n1}' cannot read all nodes, only its own Node object"),
                 "listing Nodes is refused")
            err = t.fails("get", "deployments", "-n", ns)
            t.eq(err, forbidden_as_node(n1, "list", "deployments", ns, "", group="apps"),
                 "what the system:node role does not name is refused without a reason")
            t.eq(t.ok("auth", "can-i", "create", "events", "-n", ns).strip(), "yes",
                 "what the system:node role grants every node (events) is allowed")
    finally:
        t.run("delete", "node", n1, n2, "--ignore-not-found", "--wait=false")


@scenario
def sec_node_restriction(t: T) -> None:
    """NodeRestriction admission holds a kubelet to its own objects, with upstream's messages: its Node's
    labels (not `node-role.kubernetes.io/*` or `node-restriction.kubernetes.io/*`), never its taints or
    another Node; only mirror pods bound to itself (referencing no secrets); deletes, evictions and
    status updates only of pods bound to it; its own Lease; tokens only bound to a pod on it (by UID)."""
    ns, n1, n2, kc, creds = node_fixture(t)
    uid = {p: t.json("get", "pod", p, "-n", ns)["metadata"]["uid"] for p in ("p1", "p2")}
    node_uid = t.json("get", "node", n1)["metadata"]["uid"]

    def node_https(method: str, path: str, body: dict, ctype: str = "application/merge-patch+json") -> tuple[int, dict]:
        t.last_cmd = f"HTTPS {method} {path} as system:node:{n1}"
        code, text = https(creds, method, path, body=json.dumps(body).encode(), headers={"Content-Type": ctype})
        return code, json.loads(text)

    def mirror(name: str, **container) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "annotations": {"kubernetes.io/config.mirror": "hash"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n1, "uid": node_uid, "controller": True}]},
            "spec": {"nodeName": n1, "containers": [{"name": "c", "image": "busybox", **container}]}})
    try:
        with As(t, kc):
            t.eq(t.ok("label", "node", n1, "team=a").strip(), f"node/{n1} labeled", "a node may label itself")
            t.eq(t.fails("label", "node", n1, "node-role.kubernetes.io/control-plane="),
                 f'Error from server (Forbidden): nodes "{n1}" is forbidden: is not allowed to modify labels: '
                 f'node-role.kubernetes.io/control-plane', "but not with a node-role label")
            t.eq(t.fails("taint", "node", n1, "k=v:NoSchedule"),
                 f'Error from server (Forbidden): nodes "{n1}" is forbidden: node "{n1}" is not allowed to modify taints',
                 "nor change its taints")
            code, status = node_https("PATCH", f"/api/v1/nodes/{n2}", {"metadata": {"labels": {"team": "a"}}})
            t.eq((code, status.get("message")), (403, f'nodes "{n2}" is forbidden: node "{n1}" is not allowed to modify node "{n2}"'),
                 "nor patch another Node")
            code, status = node_https("PATCH", f"/api/v1/namespaces/{ns}/pods/p2/status", {"status": {"message": "x"}})
            t.eq((code, status.get("message")), (403, f'pods "p2" is forbidden: node "{n1}" can only update pod status '
                                                      f'for pods with spec.nodeName set to itself'),
                 "a status update of another node's pod is refused")
            code, status = node_https("PATCH", f"/api/v1/namespaces/{ns}/pods/p1/status",
                                      {"metadata": {"labels": {"x": "y"}}, "status": {"message": "x"}})
            t.eq((code, status.get("message")), (403, f'pods "p1" is forbidden: node "{n1}" cannot update labels through pod status'),
                 "a status update may not relabel the pod")
            code, status = node_https("PATCH", f"/api/v1/namespaces/{ns}/pods/p1/status", {"status": {"message": "x"}})
            t.eq((code, status.get("status", {}).get("message")), (200, "x"), "its own pod's status is updated")
            code, status = node_https("POST", f"/api/v1/namespaces/{ns}/pods/p2/eviction",
                                      {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p2"}},
                                      "application/json")
            t.eq((code, status.get("message")), (403, f'pods "p2" is forbidden: node {n1} can only evict pods with spec.nodeName set to itself'),
                 "evicting another node's pod is refused")
            t.eq(t.fails("delete", "pod", "p2", "-n", ns),
                 f'Error from server (Forbidden): pods "p2" is forbidden: node "{n1}" can only delete pods with '
                 f'spec.nodeName set to itself', "deleting another node's pod is refused")
            t.eq(t.fails("run", "x", "--image=busybox", "-n", ns),
                 f'Error from server (Forbidden): pods "x" is forbidden: pod does not have "kubernetes.io/config.mirror" '
                 f'annotation, node "{n1}" can only create mirror pods', "a node creates no ordinary pods")
            t.eq(t.fails("create", "-n", ns, "-f", "-", stdin=mirror("m2", env=[{"name": "A", "valueFrom": {
                "secretKeyRef": {"name": "s2", "key": "a"}}}])),
                 f'Error from server (Forbidden): error when creating "STDIN": pods "m2" is forbidden: node "{n1}" '
                 f'can not create pods that reference secrets', "a mirror pod may not reference a Secret")
            t.eq(t.ok("create", "-n", ns, "-f", "-", stdin=mirror("m1")).strip(), "pod/m1 created",
                 "a mirror pod bound to itself and owned by its Node is created")
            t.eq(t.ok("delete", "pod", "m1", "-n", ns, "--wait=false").strip(), 'pod "m1" deleted',
                 "and deleted by the node")
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": n2, "namespace": "kube-node-lease"}}
            t.eq(t.fails("create", "-f", "-", stdin=json.dumps(lease)),
                 f'Error from server (Forbidden): error when creating "STDIN": leases.coordination.k8s.io "{n2}" is '
                 f'forbidden: can only access node lease with the same name as the requesting node',
                 "another node's Lease is refused")
            token = ("create", "token", "default", "-n", ns, "--bound-object-kind", "Pod", "--bound-object-name")
            refused = 'error: failed to create token: serviceaccounts "default" is forbidden: '
            t.eq(t.fails("create", "token", "default", "-n", ns), refused + "node requested token not bound to a pod",
                 "a token not bound to a pod is refused")
            t.eq(t.fails(*token, "p2", "--bound-object-uid", uid["p2"]),
                 refused + "node requested token bound to a pod scheduled on a different node",
                 "a token bound to another node's pod is refused")
            t.true(t.ok(*token, "p1", "--bound-object-uid", uid["p1"]).startswith("ey"),
                   "a token bound to its own pod is issued", t.last_cmd)
            t.eq(t.ok("delete", "pod", "p1", "-n", ns, "--wait=false").strip(), 'pod "p1" deleted',
                 "its own pod may be deleted")
        t.eq(t.json("get", "node", n1)["metadata"]["labels"].get("node-role.kubernetes.io/control-plane"), None,
             "the refused label was not stored")
    finally:
        t.run("delete", "node", n1, n2, "--ignore-not-found", "--wait=false")
