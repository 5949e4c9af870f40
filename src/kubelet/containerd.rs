//! A containerd that `rkube server` runs itself when the machine has containerd installed but none
//! answers on its default socket (as k3s runs its own), so README's one command gives a node that
//! runs pods.
//!
//! Everything lives under `<data-dir>/containerd` (root, state, socket, CNI config): it never touches
//! a system containerd's. The config handles this machine kind's pitfalls
//! (../shared/notes/containerd-on-this-machine.md): `restrict_oom_score_adj`, cgroupfs, and a local
//! sandbox image built from busybox-static ([`super::images`]) since no registry may be reachable.
//! CNI is a bridge (`rkube-<hash of the dir>`, [`bridge`]) with host-local IPAM over the node's pod
//! CIDR, rendered by containerd from a template when the kubelet reports the CIDR (CRI
//! UpdateRuntimeConfig).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::cri::Cri;
use super::images;

/// The bridge the pods of the containerd under `dir` (absolute) attach to: `rkube-` and six hex
/// digits of a hash of `dir`. One per data dir, so that two nodes on one machine, each with its own
/// pod CIDR, do not share a bridge whose gateway address only one of them can hold (interface names
/// are at most 15 bytes).
pub fn bridge(dir: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.as_ref()[..3]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("rkube-{hex}")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn cni_bin_dir() -> Option<&'static str> {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .into_iter()
        .find(|d| Path::new(d).join("bridge").is_file())
}

fn config(dir: &Path, cni_bin: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  # Pod network namespaces under this containerd's state dir, not the shared /var/run/netns.
  netns_mounts_under_state_dir = true
  sandbox_image = "{pause}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  # Registries are configured as containerd documents it: <dir>/certs.d/<host[:port]>/hosts.toml
  # (a plain-HTTP or private registry, mirrors, CAs).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/cni/net.d"
    conf_template = "{d}/cni/template.json"
"#,
        pause = images::PAUSE_TAG,
    )
}

/// The CNI config containerd renders with the node's pod CIDR: the bridge, and host-local's
/// allocations under `dir` (not the machine-wide /var/lib/cni/networks, which every node on this
/// machine would share under the one network name).
fn cni_template(dir: &Path, bridge: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "rkube",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
                      "dataDir": dir.join("cni/networks"),
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    })
}

/// Removes the node's bridge when no pod is attached to it. One left by an earlier server may carry the
/// gateway of another pod CIDR (a node IPAM range since changed), and the bridge plugin then refuses
/// every sandbox (`"rkube-..." already has an IP address different from ...`); the plugin makes the
/// bridge anew with the right address. A bridge with pods attached (containers outlive a restart of
/// the server) is left alone.
async fn remove_idle_bridge(bridge: &str) {
    let ports = Path::new("/sys/class/net").join(bridge).join("brif");
    let idle = std::fs::read_dir(&ports).is_ok_and(|mut d| d.next().is_none());
    if !idle {
        return;
    }
    let del = tokio::process::Command::new("ip")
        .args(["link", "del", bridge])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), del).await {
        Ok(Ok(out)) if out.status.success() => {
            tracing::info!("removed the idle {bridge} bridge an earlier server left")
        }
        Ok(Ok(out)) => tracing::warn!(
            "removing the idle {bridge} bridge: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(Err(e)) => tracing::warn!("removing the idle {bridge} bridge: {e}"),
        Err(_) => tracing::warn!("removing the idle {bridge} bridge: `ip link del` took over 10 s"),
    }
}

/// Starts a containerd under `data_dir` if this machine can run one; returns its endpoint, or why not.
pub async fn start(data_dir: &Path) -> anyhow::Result<String> {
    let containerd = which("containerd").context("no containerd binary on PATH")?;
    let ctr = which("ctr").context("no ctr binary on PATH")?;
    let cni_bin = cni_bin_dir().context("no CNI plugins in /usr/lib/cni or /opt/cni/bin")?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .context("no /bin/busybox to build the sandbox image from (Debian: busybox-static)")?;
    let dir = data_dir.join("containerd");
    let socket = dir.join("containerd.sock");
    let endpoint = format!("unix://{}", socket.display());
    if socket.exists() && Cri::connect(&endpoint).await.is_ok() {
        // Still running from an earlier start of the server.
        return Ok(endpoint);
    }
    std::fs::create_dir_all(dir.join("cni/net.d"))?;
    let absolute = std::fs::canonicalize(&dir)?;
    let bridge = bridge(&absolute);
    remove_idle_bridge(&bridge).await;
    std::fs::write(dir.join("config.toml"), config(&dir, cni_bin))?;
    std::fs::write(
        dir.join("cni/template.json"),
        serde_json::to_vec_pretty(&cni_template(&absolute, &bridge))?,
    )?;
    let log = std::fs::File::create(dir.join("containerd.log"))?;
    let mut child = tokio::process::Command::new(&containerd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("starting {}", containerd.display()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "containerd exited ({status}); see {}",
                dir.join("containerd.log").display()
            );
        }
        if socket.exists() && Cri::connect(&endpoint).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("containerd did not answer on {endpoint} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep it running for the life of the server (and past it: containers survive a restart of
    // rkube, as they survive a kubelet restart upstream).
    tokio::spawn(async move {
        let _ = child.wait().await;
        tracing::warn!("the managed containerd exited");
    });
    let images_dir = dir.join("images");
    let archives = images::build(busybox, &images_dir)?;
    for archive in archives {
        let out = tokio::process::Command::new(&ctr)
            .arg("-a")
            .arg(&socket)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&archive)
            .output()
            .await?;
        if !out.status.success() {
            anyhow::bail!(
                "importing {}: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(endpoint)
}
