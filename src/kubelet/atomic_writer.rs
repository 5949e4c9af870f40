//! A volume's files replaced all at once, as upstream's `AtomicWriter` does for configMap, secret,
//! downwardAPI and projected volumes, so a container reading them while the kubelet updates them
//! sees the old set or the new one, never a mix.
//!
//! The layout (the same as upstream's, which applications that watch for updates rely on):
//!
//! ```text
//! <volume>/..2026_12_07_08_01_02.123456789/key   the payload, one directory per version
//! <volume>/..data -> ..2026_12_07_08_01_02.123456789
//! <volume>/key -> ..data/key                      one link per top-level name
//! ```
//!
//! An update writes the new version's directory, then renames a new `..data` link over the old one
//! (the one atomic step), then fixes the top-level links and removes the old version. Links are
//! relative, so they resolve inside a container that mounts the volume anywhere. A file mounted
//! with `subPath` is bound to one version's file and keeps its content, as upstream's does.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file of a volume's payload: its path inside the volume, its bytes and its mode.
pub type File = (String, Vec<u8>, i32);

/// Whether `rel` may be written under a volume: relative, no `..` element, nothing that would
/// collide with the writer's own names. The apiserver validates these paths; the node checks them
/// again because it must never write outside the volume.
fn valid(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.starts_with("..")
        && rel.split('/').all(|p| !p.is_empty() && p != "..")
}

/// Makes `dir` hold exactly `files`; returns whether anything changed (an identical payload writes
/// nothing).
pub fn write(dir: &Path, files: &[File]) -> io::Result<bool> {
    let payload: BTreeMap<&str, (&[u8], u32)> = files
        .iter()
        .filter(|(rel, ..)| valid(rel))
        .map(|(rel, data, mode)| (rel.as_str(), (data.as_slice(), (*mode as u32) & 0o777)))
        .collect();
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let old = std::fs::read_link(dir.join(DATA))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    if let Some(old) = &old {
        if same(&dir.join(old), &payload) {
            return Ok(false);
        }
    }

    // The new version, complete before anything points at it.
    let version = new_version_dir(dir)?;
    let version_dir = dir.join(&version);
    for (rel, (data, mode)) in &payload {
        let path = version_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
    }

    // The atomic step: `..data` names the new version.
    let tmp = dir.join(DATA_TMP);
    remove_any(&tmp)?;
    std::os::unix::fs::symlink(&version, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;

    // Top-level links: one per first path element of the payload; names no longer in it go.
    let top: BTreeSet<&str> = payload
        .keys()
        .filter_map(|rel| rel.split('/').next())
        .collect();
    for name in &top {
        let link = dir.join(name);
        let target = Path::new(DATA).join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        // A regular file or directory here is a volume written before this layout (a kubelet
        // restarted over an older one).
        remove_any(&link)?;
        std::os::unix::fs::symlink(&target, &link)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") && name != version && name != DATA {
            // Older versions (and a stray `..data_tmp`).
            remove_any(&entry.path())?;
        } else if !name.starts_with("..") && !top.contains(name.as_str()) {
            remove_any(&entry.path())?;
        }
    }
    Ok(true)
}

/// `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN`, upstream's version directory name (made unique if a second
/// write lands in the same nanosecond).
fn new_version_dir(dir: &Path) -> io::Result<String> {
    let base = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    for n in 0..100 {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        match std::fs::create_dir(dir.join(&name)) {
            Ok(()) => {
                std::fs::set_permissions(dir.join(&name), std::fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free version directory name"))
}

/// Whether version directory `dir` holds exactly `payload` (same paths, bytes and modes).
fn same(dir: &Path, payload: &BTreeMap<&str, (&[u8], u32)>) -> bool {
    let mut found = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                return false;
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(rel) = path
                .strip_prefix(dir)
                .ok()
                .and_then(|r| r.to_str())
                .map(str::to_string)
            else {
                return false;
            };
            let Some((data, mode)) = payload.get(rel.as_str()) else {
                return false;
            };
            if meta.permissions().mode() & 0o777 != *mode || meta.len() != data.len() as u64 {
                return false;
            }
            match std::fs::read(&path) {
                Ok(bytes) if bytes == *data => found += 1,
                _ => return false,
            }
        }
    }
    found == payload.len()
}

/// Removes whatever is at `path` (link, file or directory); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, data: &str) -> File {
        (rel.to_string(), data.as_bytes().to_vec(), 0o644)
    }

    fn read(dir: &Path, rel: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(rel)).ok()
    }

    #[test]
    fn updates_replace_the_whole_payload_through_data_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        assert!(write(&dir, &[file("a", "1"), file("sub/b", "2")]).unwrap());
        assert_eq!(read(&dir, "a").as_deref(), Some("1"));
        assert_eq!(read(&dir, "sub/b").as_deref(), Some("2"));
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(dir.join(DATA)).unwrap();

        // The same payload writes nothing.
        assert!(!write(&dir, &[file("a", "1"), file("sub/b", "2")]).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), first);

        // A changed value, a removed key and a new one.
        assert!(write(&dir, &[file("a", "changed"), file("c", "3")]).unwrap());
        assert_eq!(read(&dir, "a").as_deref(), Some("changed"));
        assert_eq!(read(&dir, "c").as_deref(), Some("3"));
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let second = std::fs::read_link(dir.join(DATA)).unwrap();
        assert_ne!(first, second);
        // Only one version is kept.
        let versions: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        assert_eq!(versions, vec![second.to_string_lossy().into_owned()]);

        // A mode change is a change.
        assert!(write(
            &dir,
            &[("a".into(), b"changed".to_vec(), 0o600), file("c", "3")]
        )
        .unwrap());
        let mode = std::fs::metadata(dir.join("a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_volume_written_before_this_layout_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("a"), "old").unwrap();
        std::fs::write(dir.join("nested/x"), "old").unwrap();
        std::fs::write(dir.join("gone"), "old").unwrap();
        assert!(write(&dir, &[file("a", "new"), file("nested/y", "new")]).unwrap());
        assert_eq!(read(&dir, "a").as_deref(), Some("new"));
        assert_eq!(read(&dir, "nested/y").as_deref(), Some("new"));
        assert_eq!(read(&dir, "nested/x"), None);
        assert_eq!(read(&dir, "gone"), None);
    }

    #[test]
    fn paths_outside_the_volume_are_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        write(
            &dir,
            &[
                file("../escape", "x"),
                file("/abs", "x"),
                file("..data", "x"),
                file("ok", "y"),
            ],
        )
        .unwrap();
        assert!(!tmp.path().join("escape").exists());
        assert_eq!(read(&dir, "ok").as_deref(), Some("y"));
        let names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".."))
            .collect();
        assert_eq!(names, BTreeSet::from(["ok".to_string()]));
    }
}
