"""Authentication and authorization: anonymous requests, client certificates for new users, can-i and
whoami, service-account tokens, and RBAC as upstream enforces it.
"""

from __future__ import annotations

import json
import subprocess

from harness import RKUBE_BIN, T, https_raw, poll, scenario


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
def auth_can_i(t: T) -> None:
    """kubectl auth can-i / auth whoami answer for the admin client certificate."""
    t.eq(t.ok("auth", "can-i", "create", "pods").strip(), "yes", "auth can-i create pods")
    t.eq(t.ok("auth", "can-i", "delete", "nodes").strip(), "yes", "auth can-i delete nodes")
    out = t.ok("auth", "whoami")
    t.headers(out, ["ATTRIBUTE", "VALUE"], "auth whoami")
    t.match(out, r"^Username\s+\S+", "auth whoami Username row")


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
