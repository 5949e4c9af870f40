"""CustomResourceDefinitions: a CRD is served at once (discovery, tables, schema defaults and pruning,
validation, status, deletion). (CRDs shadowing built-ins are in security.py.)
"""

from __future__ import annotations

from harness import T, jget, scenario


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
