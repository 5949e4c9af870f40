"""Validation: invalid names and specs (upstream's `The X "n" is invalid: field: ...`), workload and pod rules,
what an update may change, immutable fields.
"""

from __future__ import annotations

import json

from harness import DEPLOYMENT, NOT_FOUND, T, jget, scenario


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
    # The controllers would run them (a Job every 5 minutes): later scenarios snapshot the cluster.
    t.ok("delete", "cronjob/c1", "job/j", "-n", ns)


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


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.formats.example.com"},
    "spec": {"group": "formats.example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "email": {"type": "string", "format": "email"},
                     "since": {"type": "string", "format": "date"},
                     "addr": {"type": "string", "format": "ipv4"},
                     "free": {"type": "string", "format": "not-a-known-format"},
                     "step": {"type": "number", "multipleOf": 0.5},
                     "target": {"type": "object",
                                "properties": {"host": {"type": "string"}, "ip": {"type": "string"}},
                                "oneOf": [{"required": ["host"]}, {"required": ["ip"]}]},
                     "port": {"type": "integer", "anyOf": [{"maximum": 1024}, {"minimum": 30000}],
                              "not": {"enum": [22]}}}}}}}}]}}


@scenario
def crd_schema_formats_and_combinators(t: T) -> None:
    """A CRD schema's string formats, multipleOf and anyOf/oneOf/not refuse values with kube-openapi's messages;
    an unknown format is ignored, as upstream."""
    ns = t.namespace()
    t.ok("apply", "-f", "-", stdin=json.dumps(WIDGET_CRD))
    t.ok("wait", "--for", "condition=established", "--timeout=20s", "crd/widgets.formats.example.com")

    def widget(name: str, spec: dict) -> str:
        return json.dumps({"apiVersion": "formats.example.com/v1", "kind": "Widget",
                           "metadata": {"name": name, "namespace": ns}, "spec": spec})

    good = {"email": "ops@example.com", "since": "2024-02-29", "addr": "10.0.0.1", "free": "anything",
            "step": 2.5, "target": {"host": "db"}, "port": 443}
    t.eq(t.ok("create", "-f", "-", stdin=widget("good", good)).strip(), "widget.formats.example.com/good created",
         "a valid widget")
    err = t.fails("create", "-f", "-", stdin=widget("bad-formats", {
        "email": "not-an-address", "since": "2023-02-29", "addr": "10.0.0", "step": 0.7}))
    t.contains(err, 'The Widget "bad-formats" is invalid: ', "422 Invalid")
    for line in ['spec.email: Invalid value: "not-an-address": spec.email in body must be of type email: '
                 '"not-an-address"',
                 'spec.since: Invalid value: "2023-02-29": spec.since in body must be of type date: "2023-02-29"',
                 'spec.addr: Invalid value: "10.0.0": spec.addr in body must be of type ipv4: "10.0.0"',
                 "spec.step: Invalid value: 0.7: spec.step in body should be a multiple of 0.5"]:
        t.contains(err, line, "format / multipleOf cause")
    err = t.fails("create", "-f", "-", stdin=widget("neither", {"target": {}}))
    t.contains(err, '<nil>: Invalid value: "": "spec.target" must validate one and only one schema (oneOf). '
                    'Found none valid', "oneOf with no alternative matching")
    t.contains(err, "spec.target.host: Required value", "the closest alternative's error")
    err = t.fails("create", "-f", "-", stdin=widget("both", {"target": {"host": "db", "ip": "10.0.0.2"}}))
    t.contains(err, '"spec.target" must validate one and only one schema (oneOf). Found 2 valid alternatives',
               "oneOf with two alternatives matching")
    err = t.fails("create", "-f", "-", stdin=widget("ssh", {"port": 22}))
    t.contains(err, '<nil>: Invalid value: "": "spec.port" must not validate the schema (not)', "not")
    err = t.fails("create", "-f", "-", stdin=widget("mid", {"port": 8080}))
    t.contains(err, '"spec.port" must validate at least one schema (anyOf)', "anyOf")
    t.eq(t.ok("get", "widgets", "-n", ns, "-o", "name").strip(), "widget.formats.example.com/good",
         "only the valid widget was stored")
    t.ok("delete", "crd", "widgets.formats.example.com")
