//! The cache dir on disk, and keeping it private.
//!
//! ```text
//! <cache dir>/objects/<first 2 hex>/<sha1>     verified originals, named by their SHA-1
//! <cache dir>/tmp/<sha1>.<random>.part          downloads in progress (flock'ed by their writer)
//! ```
//!
//! Folders are 0700 and files 0600 whatever the umask: the cache holds the private album
//! too. Folders made by earlier versions (0755) are tightened when the cache opens, and
//! objects when they are indexed.
//!
//! `.part` files of a daemon that is gone are deleted at the next start: a writer holds an
//! exclusive `flock` on its file, so a `.part` that can be locked is nobody's (this works
//! across mounts sharing one cache, and needs no guess about ages or process ids).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::model::Sha1Digest;

/// Mode of every folder of the cache.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file of the cache.
pub const FILE_MODE: u32 = 0o600;

#[derive(Clone, Debug)]
pub struct Layout {
    pub objects: PathBuf,
    pub tmp: PathBuf,
}

impl Layout {
    pub fn new(cache_dir: &Path) -> Layout {
        Layout {
            objects: cache_dir.join("objects"),
            tmp: cache_dir.join("tmp"),
        }
    }

    /// Where a verified object lives (whether or not it is there yet).
    pub fn object_path(&self, sha1: &Sha1Digest) -> PathBuf {
        let hex = sha1.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    /// A fresh `.part` name for a download of `sha1`.
    pub fn part_path(&self, sha1: &Sha1Digest) -> PathBuf {
        self.tmp.join(format!(
            "{}.{}.part",
            sha1.to_hex(),
            hex::encode(rand::random::<[u8; 6]>())
        ))
    }
}

/// Creates `dir` (and missing parents) 0700, and tightens it if it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    make_private(dir, DIR_MODE)
}

/// Sets `mode` on `path` unless it already has it (the umask may have narrowed or a
/// former version widened it).
pub fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Deletes the `.part` files no live writer holds; returns how many went.
pub fn remove_stale_parts(tmp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot delete a stale download")
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_parts_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("a.1.part");
        std::fs::write(&stale, b"half").unwrap();
        let live = dir.path().join("b.2.part");
        let held = std::fs::File::create(&live).unwrap();
        held.lock().unwrap();
        assert_eq!(remove_stale_parts(dir.path()), 1);
        assert!(!stale.exists());
        assert!(live.exists());
        drop(held);
        assert_eq!(remove_stale_parts(dir.path()), 1);
        assert!(!live.exists());
    }

    #[test]
    fn private_dirs_are_0700_whatever_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("x/y");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, DIR_MODE);
    }
}
