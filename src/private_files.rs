//! Files only the cluster's own user may read: the data dir (0700), the embedded store and every file
//! holding a secret (keys, kubeconfigs: 0600). Modes are given when a file or directory is created, so
//! nothing is ever readable by others even for a moment; the process umask (set at start) makes the
//! same true of files created by libraries (redb) and anything else.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Clears group and other bits from every file and directory this process creates from now on.
pub fn restrict_umask() {
    // SAFETY: umask only changes the calling process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing `dir` that group or others may
/// enter or read is tightened to 0700 (an older rkube created it world-readable).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mode = fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 unless it exists (so a library that opens it finds a private
/// file, whatever the umask).
pub fn ensure_private_file(path: &Path) -> anyhow::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("restricting permissions of {}", path.display()))?;
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Writes `contents` to `path` with mode 0600 from the first byte: into a new temporary file next to it,
/// then renamed over `path` (so an existing, looser file is replaced, never written into, and a crash
/// never leaves half a file). Missing parent directories are created 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            private_dir(parent)?;
        }
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = f.write_all(contents).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // An existing world-readable dir is tightened.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // A kubeconfig replacing a world-readable file ends 0600 with the new contents.
        let kc = base.path().join("kube/config");
        fs::create_dir_all(kc.parent().unwrap()).unwrap();
        fs::write(&kc, "old").unwrap();
        fs::set_permissions(&kc, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&kc, b"new").unwrap();
        assert_eq!(mode(&kc), 0o600);
        assert_eq!(fs::read_to_string(&kc).unwrap(), "new");
        let db = dir.join("db");
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }
}
