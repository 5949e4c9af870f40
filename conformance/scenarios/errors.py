"""Errors as upstream prints them: NotFound, AlreadyExists, BadRequest, Conflict (also under concurrent
writes), missing namespaces, unknown and duplicate fields under each --validate mode.
"""

from __future__ import annotations

import json
import subprocess

from harness import DEPLOYMENT, NOT_FOUND, ROOT_CA, T, jget, kubectl_env, scenario


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
def typed_field_errors(t: T) -> None:
    """A value of the wrong JSON type is a 400 in Go's decoder's words: the innermost struct, the field's path
    from the root (list indexes and map keys left out), the Go type; the first in document order; nothing
    stored."""
    ns = t.namespace()
    cases = [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
          "spec": {"containers": {"name": "c", "image": "busybox"}}},
         'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal object into Go struct field '
         'PodSpec.spec.containers of type []v1.Container'),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2"},
          "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "A", "value": 1}],
                                   "ports": [{"containerPort": "80"}]}]}},
         'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field '
         'EnvVar.spec.containers.env.value of type string'),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": 1}},
         'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct '
         'field ConfigMap.data of type string'),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"}, "spec": {"replicas": "3"}},
         'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go '
         'struct field DeploymentSpec.spec.replicas of type int32'),
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"},
          "spec": {"ports": [{"port": 80.5}]}},
         'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal number 80.5 into Go '
         'struct field ServicePort.spec.ports.port of type int32'),
    ]
    for obj, message in cases:
        err = t.fails("create", "-n", ns, "-f", "-", stdin=json.dumps(obj))
        t.eq(err, f'Error from server (BadRequest): error when creating "STDIN": {message}',
             f"{obj['kind']} {obj['metadata']['name']}")
    t.eq(t.ok("get", "pods,configmaps,deployments,services", "-n", ns, "-o", "name").split(),
         ["configmap/kube-root-ca.crt"], "nothing stored")


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
def undecodable_bodies(t: T) -> None:
    """A body that cannot be read as the URL's kind answers 400 with upstream's words: Go's JSON syntax
    error, wrapped as `the object provided is unrecognized (must be of type K): ... (<first 30 bytes>)`;
    another built-in kind `Pod in version "v1" cannot be handled as a Namespace: converting (v1.Pod) to
    (core.Namespace): unknown conversion`; an unknown kind `no kind "Foo" is registered ...`. Upstream's
    kubectl test posts a Pod manifest to /api/v1/namespaces with `kubectl create --raw`."""
    ns = t.namespace()
    js = {"Content-Type": "application/json"}
    pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: raw-pod\n"
    err = t.fails("create", "--raw", "/api/v1/namespaces", "-f", "-", stdin=pod_yaml)
    t.eq(err, "Error from server (BadRequest): the object provided is unrecognized (must be of type Namespace): "
         "couldn't get version/kind; json parse error: invalid character 'a' looking for beginning of value "
         f"({pod_yaml.encode()[:30].hex()} ...)", "kubectl create --raw of a YAML Pod to namespaces")
    cases = [
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}',
         "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse "
         'error: unexpected end of JSON input ({"apiVersion":"v1","kind":"Con ...)'),
        (b'{"apiVersion":"v1" "kind":"ConfigMap"}',
         "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse "
         """error: invalid character '"' after object key:value pair ({"apiVersion":"v1" "kind":"Con ...)"""),
        (b'[1,2]',
         "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse "
         'error: json: cannot unmarshal array into Go value of type struct { APIVersion string '
         '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" } (5b312c325d)'),
        (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}',
         'Pod in version "v1" cannot be handled as a ConfigMap: converting (v1.Pod) to (core.ConfigMap): '
         "unknown conversion"),
        (b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}',
         'Deployment in version "v1" cannot be handled as a ConfigMap: converting (v1.Deployment) to '
         "(core.ConfigMap): unknown conversion"),
        (b'{"apiVersion":"v1","kind":"Foo","metadata":{"name":"x"}}',
         'Foo in version "v1" cannot be handled as a ConfigMap: no kind "Foo" is registered for version "v1" in '
         'scheme "pkg/api/legacyscheme/scheme.go:30"'),
    ]
    for body, message in cases:
        status, text = t.https("POST", f"/api/v1/namespaces/{ns}/configmaps", body=body, headers=js)
        st = t.status_error(text, 400, "BadRequest", f"POST {body!r}")
        t.eq(st.get("message"), message, f"POST {body!r}: message")
    status, text = t.https("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                           body=b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}', headers=js)
    st = t.status_error(text, 400, "BadRequest", "POST a Service to deployments")
    t.eq(st.get("message"), 'Service in version "v1" cannot be handled as a Deployment: converting (v1.Service) '
         "to (apps.Deployment): unknown conversion", "another group's internal package")
    t.eq(t.ok("get", "cm", "-n", ns, "-o", "name").split(), [f"configmap/{ROOT_CA}"], "nothing was created")
