"""The containerd `rkube server` runs itself for a node (README's one command), seen from the tests.

The kubelet scenarios start a server that is a node: with no containerd on the default socket it starts
its own under `DATA_DIR/containerd` (own socket, root, state, runc root and pod network namespaces; the
`rkube-<hash>` bridge and host-local's allocations; local busybox and sandbox images: src/kubelet/containerd.rs). `ManagedContainerd` lists
what that containerd runs (`ctr`) and, since it deliberately outlives the server (containers survive a
restart, as upstream's survive a kubelet restart), stops it and removes what it ran once the tests are
done: tasks, containers, shims, mounts, the bridge.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path


class ManagedContainerd:
    def __init__(self, data_dir: Path):
        self.workdir = data_dir / "containerd"
        self.socket = self.workdir / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", "k8s.io", *args], capture_output=True,
                              text=True, timeout=timeout)

    def containers(self) -> list[str]:
        """IDs of the containers (sandboxes included) in the k8s.io namespace."""
        r = self.ctr("containers", "ls", "-q")
        return r.stdout.split() if r.returncode == 0 else []

    def stop(self) -> None:
        if self.socket.exists():
            for task in self.ctr("tasks", "ls", "-q").stdout.split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, timeout=15)
            time.sleep(0.5)
            for task in self.ctr("tasks", "ls", "-q").stdout.split():
                self.ctr("tasks", "rm", "-f", task, timeout=15)
            for c in self.containers():
                self.ctr("containers", "rm", c, timeout=15)
        config = f"containerd --config {self.workdir}/config.toml"
        subprocess.run(["pkill", f"-{int(signal.SIGTERM)}", "-f", config], capture_output=True)
        for _ in range(50):
            if subprocess.run(["pgrep", "-f", config], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(["pkill", "-9", "-f", config], capture_output=True)
        # Shims outlive containerd; those of this instance name its socket.
        subprocess.run(["pkill", "-9", "-f", f"containerd-shim.*{self.socket}"], capture_output=True)
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(self.workdir)):
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        for bridge in self.bridges():
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True)

    def bridges(self) -> list[str]:
        """The bridges the CNI config containerd rendered names (one: rkube-<hash of its directory>)."""
        found = []
        for conf in sorted((self.workdir / "cni" / "net.d").glob("*.conflist")):
            try:
                plugins = json.loads(conf.read_text()).get("plugins", [])
            except (OSError, ValueError):
                continue
            found += [p["bridge"] for p in plugins if p.get("type") == "bridge" and p.get("bridge")]
        return found
