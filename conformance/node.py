"""A private containerd for the kubelet scenarios, with images built here (no registry is reachable).

`build_images(dir)` makes two docker-archive images with Python alone from Debian's busybox-static:
busybox (tagged `docker.io/library/busybox:latest` and `:1.36`, so manifests saying `busybox` find it)
and the sandbox ("pause") image `registry.k8s.io/pause:3.10`, whose PID 1 blocks until SIGTERM.

`Containerd(workdir)` runs containerd with its own root, state and socket, the two pitfalls of this
machine handled (`restrict_oom_score_adj`, a sandbox image that blocks: see
../shared/notes/containerd-on-this-machine.md), and CNI from a template: containerd writes the bridge
network for the node's pod CIDR when the kubelet calls CRI UpdateRuntimeConfig, as upstream's kubelet
does. `stop()` removes what it ran (tasks, containers, shims, mounts, the bridge).

By hand: `python3 conformance/node.py up DIR` starts one and prints its endpoint until Ctrl-C.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
BUSYBOX_TAGS = ["docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"]
PAUSE_TAG = "registry.k8s.io/pause:3.10"
# Not rkube0 (what `rkube server` names the bridge of the containerd it runs itself).
BRIDGE = "rkubet0"
APPLETS = ("sh sleep echo cat ls env true false nc wget httpd hostname ip ps kill date id mkdir touch test "
           "head tail grep sed awk seq printf uname nslookup").split()


def _layer() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        def add(name: str, kind: str, data: bytes | str | None = None, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                t.addfile(info)
            else:
                body = data if isinstance(data, bytes) else str(data).encode()
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
        for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/run"):
            add(d, "dir", mode=0o1777 if d == "tmp" else 0o755)
        add("bin/busybox", "file", BUSYBOX.read_bytes())
        for a in APPLETS:
            add(f"bin/{a}", "link", "busybox")
        add("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
        add("etc/group", "file", "root:x:0:\nnobody:x:65534:\n", 0o644)
    return out.getvalue()


def _archive(path: Path, layer: bytes, tags: list[str], cmd: list[str]) -> None:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": ["layer.tar"]}]).encode()
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as t:
        for name, data in (("layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    tmp.rename(path)


def build_images(cache: Path | None = None) -> dict[str, Path]:
    """The busybox and pause docker archives, built once per busybox binary."""
    digest = hashlib.sha256(BUSYBOX.read_bytes()).hexdigest()[:16]
    cache = cache or Path(f"/tmp/rkube-images-{digest}")
    cache.mkdir(parents=True, exist_ok=True)
    out = {"busybox": cache / "busybox.tar", "pause": cache / "pause.tar"}
    if not all(p.exists() for p in out.values()):
        layer = _layer()
        _archive(out["busybox"], layer, BUSYBOX_TAGS, ["sh"])
        _archive(out["pause"], layer, [PAUSE_TAG],
                 ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"])
    return out


CNI_TEMPLATE = {
    "cniVersion": "0.4.0",
    "name": "rkube",
    "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "loopback"},
    ],
}


class Containerd:
    def __init__(self, workdir: Path, bridge: str = BRIDGE):
        self.workdir = workdir
        self.bridge = bridge
        self.root = workdir / "root"
        self.state = workdir / "state"
        self.socket = workdir / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self.log = workdir / "containerd.log"
        self.proc: subprocess.Popen | None = None

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", "k8s.io", *args], capture_output=True,
                              text=True, timeout=timeout)

    def start(self, timeout: float = 30) -> None:
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        template = json.loads(json.dumps(CNI_TEMPLATE))
        template["plugins"][0]["bridge"] = self.bridge
        (cni / "template.json").write_text(json.dumps(template, indent=1))
        config = self.workdir / "containerd.toml"
        config.write_text(f"""version = 2
root = "{self.root}"
state = "{self.state}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  sandbox_image = "{PAUSE_TAG}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{self.state}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni / 'net.d'}"
    conf_template = "{cni / 'template.json'}"
""")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            if self.socket.exists() and subprocess.run(["ctr", "-a", str(self.socket), "version"],
                                                       capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"containerd did not answer in {timeout}s: {self.log.read_text()[-2000:]}")
        for image in build_images().values():
            r = self.ctr("images", "import", str(image))
            if r.returncode != 0:
                raise RuntimeError(f"importing {image}: {r.stderr}")

    def containers(self) -> list[str]:
        """IDs of the containers (sandboxes included) in the k8s.io namespace."""
        r = self.ctr("containers", "ls", "-q")
        return r.stdout.split() if r.returncode == 0 else []

    def stop(self) -> None:
        """Stops containerd (this one's, or the one `rkube server` started in `workdir`) and removes
        what it ran."""
        running = self.proc.poll() is None if self.proc is not None else self.socket.exists()
        if running:
            for line in self.ctr("tasks", "ls", "-q").stdout.split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", line, timeout=15)
            time.sleep(0.5)
            for line in self.ctr("tasks", "ls", "-q").stdout.split():
                self.ctr("tasks", "rm", "-f", line, timeout=15)
            for c in self.containers():
                self.ctr("containers", "rm", c, timeout=15)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        else:
            subprocess.run(["pkill", "-f", f"containerd --config {self.workdir}/"], capture_output=True)
            time.sleep(0.5)
        # Shims outlive containerd; those of this instance name its socket.
        subprocess.run(["pkill", "-9", "-f", f"containerd-shim.*{self.socket}"], capture_output=True)
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(self.workdir)):
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        self.proc = None

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "up":
        sys.exit("usage: node.py up DIR")
    c = Containerd(Path(sys.argv[2]).resolve())
    c.workdir.mkdir(parents=True, exist_ok=True)
    c.start()
    print(c.endpoint, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
