//! Local images for a node without a registry: a busybox image and the sandbox ("pause") image, made
//! from this machine's static busybox (Debian's busybox-static) as docker archives that
//! `ctr images import` takes.
//!
//! containerd needs a sandbox image whose PID 1 blocks until SIGTERM before any pod can run; the
//! usual one (registry.k8s.io/pause) has to be pulled, which an offline machine cannot. This one is
//! busybox's `sh` waiting on a trap.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub const BUSYBOX_TAGS: &[&str] = &[
    "docker.io/library/busybox:latest",
    "docker.io/library/busybox:1.36",
];
pub const PAUSE_TAG: &str = "rkube.local/pause:3.10";
/// The applets linked when busybox cannot list its own (the real image links all of them).
const APPLETS: &[&str] = &[
    "tar", "cp", "mv", "rm", "tty", "stty", "wc", "sh", "sleep", "echo", "cat", "ls", "env",
    "true", "false", "nc", "wget", "httpd", "hostname", "ip", "ps", "kill", "date", "id", "mkdir",
    "touch", "test", "head", "tail", "grep", "sed", "awk", "seq", "printf", "uname", "nslookup",
];

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(path: &str, size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let _ = h.set_path(path);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h
}

/// The applets `busybox --list` names (all of them, as in the real busybox image: `kubectl cp`
/// needs `tar`), else [`APPLETS`].
fn applets(busybox: &Path) -> Vec<String> {
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|a| {
                    !a.is_empty()
                        && *a != "busybox"
                        && !a.contains('/')
                        && a.chars().all(|c| c.is_ascii_graphic())
                })
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if listed.contains(&"sh".to_string()) {
        listed
    } else {
        APPLETS.iter().map(|a| a.to_string()).collect()
    }
}

/// The root filesystem layer: busybox, its applet links, /etc/passwd and /etc/group.
fn layer(busybox: &[u8], applets: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    for d in [
        "bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/run",
    ] {
        let mut h = header(
            d,
            0,
            if d == "tmp" { 0o1777 } else { 0o755 },
            tar::EntryType::Directory,
        );
        h.set_cksum();
        t.append(&h, std::io::empty())?;
    }
    let mut h = header(
        "bin/busybox",
        busybox.len() as u64,
        0o755,
        tar::EntryType::Regular,
    );
    h.set_cksum();
    t.append(&h, busybox)?;
    for a in applets {
        let mut h = header(&format!("bin/{a}"), 0, 0o777, tar::EntryType::Symlink);
        h.set_link_name("busybox")?;
        h.set_cksum();
        t.append(&h, std::io::empty())?;
    }
    for (name, body) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
    ] {
        let mut h = header(name, body.len() as u64, 0o644, tar::EntryType::Regular);
        h.set_cksum();
        t.append(&h, body.as_bytes())?;
    }
    Ok(t.into_inner()?)
}

fn archive(path: &Path, layer: &[u8], tags: &[&str], cmd: &[&str]) -> anyhow::Result<()> {
    let diff_id = format!("sha256:{}", sha256_hex(layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": super::arch(),
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": tags, "Layers": ["layer.tar"]}
    ]))?;
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("layer.tar", layer),
        (config_name.as_str(), config.as_slice()),
        ("manifest.json", manifest.as_slice()),
    ] {
        let mut h = header(name, data.len() as u64, 0o644, tar::EntryType::Regular);
        h.set_cksum();
        t.append(&h, data)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)?.write_all(&t.into_inner()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Builds the busybox and pause archives into `dir` from the static busybox at `busybox`.
pub fn build(busybox: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let bin = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let layer = layer(&bin, &applets(busybox))?;
    std::fs::create_dir_all(dir)?;
    let busybox_tar = dir.join("busybox.tar");
    let pause_tar = dir.join("pause.tar");
    archive(&busybox_tar, &layer, BUSYBOX_TAGS, &["sh"])?;
    archive(
        &pause_tar,
        &layer,
        &[PAUSE_TAG],
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done",
        ],
    )?;
    Ok(vec![busybox_tar, pause_tar])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_carry_a_manifest_config_and_layer() {
        let dir = std::env::temp_dir().join(format!("rkube-images-test-{}", std::process::id()));
        let fake = dir.join("busybox");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&fake, b"not really busybox").unwrap();
        let out = build(&fake, &dir).unwrap();
        let mut names = Vec::new();
        let mut manifest = serde_json::Value::Null;
        let mut a = tar::Archive::new(std::fs::File::open(&out[1]).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                manifest = serde_json::from_reader(&mut e).unwrap();
            }
            names.push(name);
        }
        assert!(names.contains(&"layer.tar".to_string()));
        assert_eq!(manifest[0]["RepoTags"][0], PAUSE_TAG);
        assert!(names.contains(&manifest[0]["Config"].as_str().unwrap().to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
