//! The cache dir and the daemon's log file: created private, whatever the umask.
//!
//! The cache holds the user's photos (the private album too, with `--include-private`) and a
//! log that names them, so the dir is 0700 and the log 0600, set explicitly rather than left to
//! the umask: created with those modes, and tightened when an earlier version left them
//! wider. Only what this user owns is changed, and a dir shared by all users (sticky, like
//! /tmp) is refused as a cache dir rather than closed to everyone else. The folders inside
//! (objects/...) are `content`'s to create.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the cache dir.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of the log file.
pub(crate) const LOG_MODE: u32 = 0o600;

/// Creates the cache dir (0700), makes sure it is private and writable; its canonical path.
pub(crate) fn prepare(dir: &Path) -> Result<PathBuf, String> {
    let d = dir.display();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| {
            format!("cannot create the cache dir {d}: {e}; choose another with --cache-dir")
        })?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read the cache dir {d}: {e}"))?;
    if meta.mode() & 0o1000 != 0 {
        return Err(format!(
            "the cache dir {d} is shared by all users (like /tmp); choose a folder of its own, \
             e.g. --cache-dir {}",
            dir.join("micloudfs").display()
        ));
    }
    if is_mine(&meta) && meta.mode() & 0o777 != DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| format!("cannot make the cache dir {d} private (chmod 700): {e}"))?;
    }
    check_writable(dir)?;
    Ok(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()))
}

/// Opens the log for appending, created 0600 (an existing one of this user is made 0600).
pub(crate) fn open_log(path: &Path) -> std::io::Result<File> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_MODE)
        .open(path)?;
    let meta = log.metadata()?;
    if meta.is_file() && is_mine(&meta) && meta.mode() & 0o777 != LOG_MODE {
        log.set_permissions(std::fs::Permissions::from_mode(LOG_MODE))?;
    }
    Ok(log)
}

fn is_mine(meta: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions.
    meta.uid() == unsafe { libc::geteuid() }
}

fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "the cache dir {} is not writable ({e}); choose another with --cache-dir",
                dir.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn a_wide_cache_dir_and_log_are_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let log = dir.join("micloudfs.log");
        std::fs::write(&log, b"old\n").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_log(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
    }

    #[test]
    fn a_shared_sticky_dir_is_refused() {
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = prepare(base.path()).unwrap_err();
        assert!(e.contains("shared by all users"), "{e}");
        assert_eq!(mode(base.path()), 0o777, "left as it was");
    }
}
