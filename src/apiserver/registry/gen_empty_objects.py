#!/usr/bin/env python3
"""Writes empty_objects.rs: each built-in kind's empty object as upstream's apiserver encodes it to JSON.

Upstream's watch cache sends a BOOKMARK as `newFunc()` (the kind's zero-value Go struct) with only
`metadata.resourceVersion` set, and Go's encoder writes every field that `omitempty` cannot drop: a
struct value (`spec`, `status`, a Deployment's `template`), a field without `omitempty` (`null` for a
nil slice, map or pointer; `""`, `0`, `false`), `metav1.Time` as `null`. A Pod's bookmark is
`{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12","creationTimestamp":null},
"spec":{"containers":null},"status":{}}`. Which fields those are is in the Go types only (k8s-openapi
and the OpenAPI documents say nothing of `omitempty` or of value versus pointer), so this reads them
from upstream's sources, at the release rkube's API is (v1.33):

    python3 gen_empty_objects.py \
        API=<kubernetes/api git dir> APIMACHINERY=<kubernetes/apimachinery git dir> \
        APIEXTENSIONS=<kubernetes/apiextensions-apiserver git dir> AGGREGATOR=<kubernetes/kube-aggregator git dir> \
        [TAG=v0.33.9] > empty_objects.rs

(`fetch` in the tool library brings each repository as a git dir.) Every struct in the API packages
that embeds TypeMeta and has ObjectMeta is a kind; the table keys them by apiVersion and kind.
"""

import re
import subprocess
import sys

args = dict(a.split("=", 1) for a in sys.argv[1:])
TAG = args.get("TAG", "v0.33.9")
# Go import path prefix -> (git dir, path inside it).
ROOTS = {
    "k8s.io/api/": (args["API"], ""),
    "k8s.io/apimachinery/": (args["APIMACHINERY"], ""),
    "k8s.io/apiextensions-apiserver/": (args["APIEXTENSIONS"], ""),
    "k8s.io/kube-aggregator/": (args["AGGREGATOR"], ""),
}
# The API packages whose kinds go in the table (besides every k8s.io/api group/version).
EXTRA_PACKAGES = [
    "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
    "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1",
]

# Types whose JSON is their own MarshalJSON's, not their fields': zero value as written.
SPECIAL = {
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time"): None,
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime"): None,
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Duration"): "0s",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1"): None,
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): "0",
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): 0,
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): None,
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSON"): None,
}
BASIC_ZERO = {"string": "", "bool": False}
NUMERIC = {"int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
           "float32", "float64", "byte", "rune"}
OMIT = object()


def git(root, *a):
    return subprocess.run(["git", "-C", root, *a], capture_output=True, text=True, check=True).stdout


def locate(pkg):
    for prefix, (root, sub) in ROOTS.items():
        if pkg.startswith(prefix):
            return root, sub + pkg[len(prefix):]
    return None


class Package:
    def __init__(self, pkg):
        self.pkg = pkg
        self.structs = {}  # name -> [(go name, type, json name, omitempty, inline)]
        self.named = {}  # name -> underlying type text
        self.imports = {}  # file -> {alias: path}
        self.struct_file = {}
        self.group = None
        loc = locate(pkg)
        if loc is None:
            return
        root, path = loc
        files = [f for f in git(root, "ls-tree", "--name-only", f"{TAG}:{path}").split()
                 if f.endswith(".go") and not f.endswith("_test.go") and not f.startswith("zz_generated")
                 and not f.endswith(".pb.go") and "swagger_doc" not in f]
        for f in files:
            self.parse(f, git(root, "show", f"{TAG}:{path}/{f}"))

    def parse(self, fname, text):
        m = re.search(r"\+groupName=([\w.]*)", text) or re.search(r'const GroupName = "([\w.]*)"', text)
        if m and self.group is None:
            self.group = m.group(1)
        imports = {}
        for block in re.findall(r"^import \((.*?)^\)", text, re.S | re.M) + re.findall(r"^import (.*)$", text, re.M):
            for line in block.splitlines():
                m = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
                if m:
                    path = m.group(2)
                    imports[m.group(1) or path.rsplit("/", 1)[-1]] = path
        self.imports[fname] = imports
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            m = re.match(r"^type (\w+) struct ?\{\}", lines[i])
            if m:
                self.structs[m.group(1)] = []
                self.struct_file[m.group(1)] = fname
                i += 1
                continue
            m = re.match(r"^type (\w+) struct \{\s*$", lines[i])
            if m:
                name, fields = m.group(1), []
                i += 1
                while not lines[i].startswith("}"):
                    f = parse_field(lines[i])
                    if f:
                        fields.append(f)
                    i += 1
                self.structs[name] = fields
                self.struct_file[name] = fname
            else:
                # `type X string`, `type X []Y`, and aliases (`type X = v1.X`).
                m = re.match(r"^type (\w+) (?:= )?([\w.\[\]*]+(?:\[[\w.]+\][\w.*\[\]]+)?)\s*(//.*)?$", lines[i])
                if m and m.group(2) != "struct":
                    self.named[m.group(1)] = (m.group(2), fname)
            i += 1


def parse_field(line):
    line = line.strip()
    if not line or line.startswith("//") or "`" not in line:
        return None
    decl, tag = line.split("`", 1)
    m = re.search(r'json:"([^"]*)"', tag)
    if not m:
        return None
    opts = m.group(1).split(",")
    parts = decl.split()
    if len(parts) == 1:
        go_name, typ = parts[0].split(".")[-1].lstrip("*"), parts[0]
    else:
        go_name, typ = parts[0], parts[1]
    inline = "inline" in opts[1:] or (len(parts) == 1 and opts[0] == "")
    return (go_name, typ, opts[0] or go_name, "omitempty" in opts[1:], inline)


PACKAGES = {}


def package(pkg):
    if pkg not in PACKAGES:
        PACKAGES[pkg] = Package(pkg)
    return PACKAGES[pkg]


def resolve(pkg, fname, typ):
    """(package, name) of a named type written `typ` in `fname` of `pkg`."""
    if "." in typ:
        alias, name = typ.split(".", 1)
        return package(pkg).imports[fname][alias], name
    return pkg, typ


def zero(pkg, fname, typ, omitempty, depth=0):
    if depth > 40:
        raise SystemExit(f"recursion at {pkg} {typ}")
    if typ.startswith("*") or typ.startswith("[]") or typ.startswith("map["):
        return OMIT if omitempty else None
    if typ in BASIC_ZERO:
        return OMIT if omitempty else BASIC_ZERO[typ]
    if typ in NUMERIC:
        return OMIT if omitempty else 0
    p, name = resolve(pkg, fname, typ)
    if (p, name) in SPECIAL:
        return SPECIAL[(p, name)]
    defining = package(p)
    if name in defining.structs:
        # omitempty never drops a struct value.
        return zero_struct(p, name, depth + 1)
    if name in defining.named:
        under, ufile = defining.named[name]
        return zero(p, ufile, under, omitempty, depth + 1)
    raise SystemExit(f"unknown type {p}.{name}")


def zero_struct(pkg, name, depth=0):
    out = {}
    p = package(pkg)
    fname = p.struct_file[name]
    for go_name, typ, json_name, omitempty, inline in p.structs[name]:
        if json_name == "-":
            continue
        if inline:
            ip, iname = resolve(pkg, fname, typ.lstrip("*"))
            out.update(zero_struct(ip, iname, depth + 1))
            continue
        v = zero(pkg, fname, typ, omitempty, depth)
        if v is not OMIT:
            out[json_name] = v
    return out


def is_kind(p, name):
    fields = p.structs[name]
    types = [t for (_, t, _, _, inline) in fields if inline]
    has_meta = any(j == "metadata" and t.endswith("ObjectMeta") for (_, t, j, _, _) in fields)
    return any(t.endswith("TypeMeta") for t in types) and has_meta


def json_text(v):
    import json
    return json.dumps(v, separators=(",", ":"))


def main():
    api_root = args["API"]
    dirs = sorted({d.rsplit("/", 1)[0] for d in git(api_root, "ls-tree", "-r", "--name-only", TAG).split()
                   if re.match(r"^[a-z0-9]+/v[0-9a-z]+/types\.go$", d)})
    pkgs = [f"k8s.io/api/{d}" for d in dirs] + EXTRA_PACKAGES
    rows = []
    for pkg in pkgs:
        p = package(pkg)
        if p.group is None:
            raise SystemExit(f"no +groupName in {pkg}")
        version = pkg.rsplit("/", 1)[-1]
        api_version = f"{p.group}/{version}" if p.group else version
        for name in sorted(p.structs):
            if not is_kind(p, name):
                continue
            obj = zero_struct(pkg, name)
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
            rows.append((api_version, name, json_text(obj)))
    rows.sort()
    print(f"// @generated by gen_empty_objects.py from the Go types of kubernetes/api,")
    print(f"// apimachinery, apiextensions-apiserver and kube-aggregator at {TAG}. Do not edit.")
    print()
    print("/// (apiVersion, kind, the kind's zero-value object as upstream's JSON encoder writes it, without")
    print("/// `kind` and `apiVersion`), sorted.")
    print("#[rustfmt::skip]")
    print("pub(super) static EMPTY_OBJECTS: &[(&str, &str, &str)] = &[")
    for api_version, kind, text in rows:
        print(f'    ("{api_version}", "{kind}", r#"{text}"#),')
    print("];")


main()
