"""Secrets at rest and etcd over TLS: `--encryption-provider-config` with upstream's EncryptionConfiguration
(the raw stored bytes are checked: etcd's own copy through its HTTP gateway, the embedded store's file),
key rotation and decryption through `kubectl replace` as upstream documents them, a bad config refused at
start; `--etcd-cafile/--etcd-certfile/--etcd-keyfile` against an etcd that demands client certificates."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from harness import Etcd, Server, T, https, scenario, stop_process

CONFIG = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
{providers}
"""
# Last, as upstream documents for turning encryption on: Secrets written before (other scenarios' on this
# shared server) stay readable, and are encrypted when next written.
IDENTITY = "  - identity: {}"


def aescbc(name: str, secret: str) -> str:
    return f"  - aescbc: {{keys: [{{name: {name}, secret: {secret}}}]}}"


def restart_with(t: T, config: Path | None) -> None:
    t.server.stop()
    t.server.extra_args = ["--encryption-provider-config", str(config)] if config else []
    t.server.start()


def stored(t: T, key: str) -> bytes:
    """The bytes the store holds for `key`: etcd's value through its v3 HTTP gateway; for the embedded store,
    every file of the database (the check is then whether a string occurs in it)."""
    if t.server.etcd is not None:
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        req = urllib.request.Request(t.server.etcd.endpoint + "/v3/kv/range", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            kvs = json.loads(r.read()).get("kvs") or []
        return base64.b64decode(kvs[0]["value"]) if kvs else b""
    db = t.server.data_dir / "db"
    return b"".join(p.read_bytes() for p in sorted(db.rglob("*")) if p.is_file())


def openssl_aescbc_decrypt(key: bytes, value: bytes, prefix: bytes) -> bytes:
    """Decrypts an aescbc value with openssl, not with rkube: the layout is upstream's (IV, then AES-CBC)."""
    body = value[len(prefix):]
    iv, cipher = body[:16], body[16:]
    r = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv", iv.hex()],
                       input=cipher, capture_output=True, timeout=10)
    return r.stdout


@scenario
def secrets_encrypted_at_rest(t: T) -> None:
    """aescbc for Secrets (identity last, so Secrets written before stay readable): stored as `k8s:enc:aescbc:v1:key1:` + upstream's bytes (decrypted with openssl on
    etcd), no plaintext in the store, ConfigMaps untouched, kubectl reads them back; rotation to key2 and
    `kubectl replace` re-encrypts an unchanged Secret (new resourceVersion); a config with a short key stops
    the start with upstream's message; identity first and a replace store them in the clear again."""
    ns = t.namespace()
    workdir = t.server.workdir
    key1, key2 = os.urandom(32), os.urandom(32)
    b64 = lambda b: base64.b64encode(b).decode()
    marker = f"rkube-at-rest-{os.urandom(6).hex()}"
    marker_b64 = b64(marker.encode()).encode()
    path = workdir / "encryption.yaml"
    path.write_text(CONFIG.format(providers=aescbc("key1", b64(key1)) + "\n" + IDENTITY))
    skey = f"/registry/secrets/{ns}/s1"
    p1, p2 = b"k8s:enc:aescbc:v1:key1:", b"k8s:enc:aescbc:v1:key2:"
    # A Secret written before encryption is turned on: identity, last in the config, still reads it.
    t.ok("create", "secret", "generic", "before", "-n", ns, "--from-literal=k=plain")
    try:
        restart_with(t, path)
        t.eq(t.ok("get", "secret", "before", "-n", ns, "-o", "jsonpath={.data.k}"), b64(b"plain"),
             "a Secret stored before encryption was turned on still reads (identity last)")
        t.ok("create", "secret", "generic", "s1", "-n", ns, f"--from-literal=password={marker}")
        t.ok("create", "configmap", "c1", "-n", ns, f"--from-literal=k={marker}-cm")
        t.eq(t.ok("get", "secret", "s1", "-n", ns, "-o", "jsonpath={.data.password}"), marker_b64.decode(),
             "kubectl reads the encrypted Secret back")
        raw = stored(t, skey)
        if t.server.etcd is not None:
            t.true(raw.startswith(p1), "etcd holds the Secret under upstream's aescbc prefix", raw[:40])
            plain = openssl_aescbc_decrypt(key1, raw, p1)
            t.true(b'"kind":"Secret"' in plain and marker_b64 in plain,
                   "openssl decrypts etcd's value to the Secret (upstream's layout)", plain[:80])
            t.true(f"{marker}-cm".encode() in stored(t, f"/registry/configmaps/{ns}/c1"),
                   "ConfigMaps are not covered: stored as is", "")
        else:
            t.true(p1 in raw, "the embedded store's file holds aescbc values", "")
            t.true(f"{marker}-cm".encode() in raw, "ConfigMaps are not covered: stored as is", "")
        t.true(marker_b64 not in raw, "the Secret's value is nowhere in the store in the clear", "")

        # Rotation: key2 writes, key1 still reads; replacing the unchanged Secret writes it with key2.
        path.write_text(CONFIG.format(providers="\n".join([aescbc("key2", b64(key2)), aescbc("key1", b64(key1)),
                                                             IDENTITY])))
        restart_with(t, path)
        rv = t.ok("get", "secret", "s1", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
        t.ok("replace", "-f", "-", stdin=t.ok("get", "secrets", "-n", ns, "-o", "json"))
        rv2 = t.ok("get", "secret", "s1", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
        t.true(rv2 != rv, "replace of an unchanged Secret read with an old key writes it again", (rv, rv2))
        raw = stored(t, skey)
        if t.server.etcd is not None:
            t.true(raw.startswith(p2), "after the replace etcd holds it under key2", raw[:40])
        else:
            t.true(p2 in raw, "after the replace the embedded store holds key2 values", "")
        # Another replace, now fresh: no write, as for any unchanged object.
        t.ok("replace", "-f", "-", stdin=t.ok("get", "secrets", "-n", ns, "-o", "json"))
        t.eq(t.ok("get", "secret", "s1", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"), rv2,
             "an unchanged Secret read with the current key is not written again")

        # A bad file stops the start, with upstream's validation message.
        bad = workdir / "encryption-bad.yaml"
        bad.write_text(CONFIG.format(providers=aescbc("k", b64(b"short"))))
        t.server.stop()
        t.server.extra_args = ["--encryption-provider-config", str(bad)]
        try:
            t.server.start(timeout=20)
            t.true(False, "a config with a 5-byte aescbc key is refused at start", "the server started")
        except RuntimeError as e:
            t.contains(str(e), "resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": "
                       "secret is not of the expected length, got 5, expected one of [16 24 32]",
                       "the start-up error")
    finally:
        # Decrypt everything again (identity first, the keys still read), as upstream documents, so the
        # server can run on without the config.
        path.write_text(CONFIG.format(providers="\n".join([IDENTITY, aescbc("key2", b64(key2)),
                                                             aescbc("key1", b64(key1))])))
        restart_with(t, path)
        t.run("replace", "-f", "-", stdin=t.ok("get", "secrets", "-A", "-o", "json"))
    if t.server.etcd is not None:
        raw = stored(t, skey)
        t.true(raw.startswith(b"{") and marker_b64 in raw, "identity first: the replace stored it in the clear",
               raw[:40])
    restart_with(t, None)
    t.eq(t.ok("get", "secret", "s1", "-n", ns, "-o", "jsonpath={.data.password}"), marker_b64.decode(),
         "without the config the decrypted Secret reads back")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> None:
    """A CA, etcd's serving certificate for 127.0.0.1 and a client certificate, with openssl."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "1", "-subj", "/CN=etcd-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=rkube-{name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext", cwd=d)


@scenario
def etcd_over_tls(t: T) -> None:
    """(etcd) A server on an etcd that serves TLS only and demands client certificates: with --etcd-cafile,
    --etcd-certfile and --etcd-keyfile it starts and stores objects; without a client certificate it does not
    start."""
    if t.server.etcd is None:
        return
    workdir = Path(tempfile.mkdtemp(prefix="rkube-etcd-tls-"))
    pki = workdir / "etcd-pki"
    pki.mkdir()
    make_pki(pki)
    etcd = Etcd(workdir, pki)
    server = Server("etcd", workdir / "server", etcd)
    server.workdir.mkdir()
    try:
        etcd.start()
        server.extra_args = ["--etcd-cafile", str(pki / "ca.crt"), "--etcd-certfile", str(pki / "client.crt"),
                             "--etcd-keyfile", str(pki / "client.key"), "--controller-manager=false",
                             "--scheduler=false"]
        server.start()
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over-tls"}, "data": {"a": "b"}}
        status, body = https(server.creds, "POST", "/api/v1/namespaces/default/configmaps",
                             json.dumps(cm).encode(), headers={"Content-Type": "application/json"})
        t.eq(status, 201, f"a create through the TLS etcd: {body[:200]}")
        status, body = https(server.creds, "GET", "/api/v1/namespaces/default/configmaps/over-tls")
        t.eq((status, json.loads(body).get("data") if status == 200 else body[:200]), (200, {"a": "b"}),
             "read back")
        server.stop()
        # The CA alone is not enough for an etcd that demands client certificates.
        server.extra_args = ["--etcd-cafile", str(pki / "ca.crt"), "--controller-manager=false",
                             "--scheduler=false"]
        try:
            server.start(timeout=40)
            t.true(False, "without a client certificate the server does not start", "it started")
        except RuntimeError as e:
            t.contains(str(e), "exited with code", "the start without a client certificate")
    finally:
        server.stop()
        stop_process(etcd.proc)
        shutil.rmtree(workdir, ignore_errors=True)

