//! The cache dir on disk, and keeping it private.
//!
//! ```text
//! <cache dir>/objects/<first 2 hex>/<sha1>     verified originals, named by their SHA-1
//! <cache dir>/tmp/<sha1>.<random>.part          downloads in progress (flock'ed by their writer)
//! <cache dir>/partial/<sha1>.part               resumable downloads of large files (flock'ed
//! <cache dir>/partial/<sha1>.map                by their writer) and their range maps
//! ```
//!
//! Folders are 0700 and files 0600 whatever the umask: the cache holds the private album
//! too. Folders made by earlier versions (0755) are tightened when the cache opens, and
//! objects when they are indexed.
//!
//! `.part` files of a daemon that is gone are deleted at the next start: a writer holds an
//! exclusive `flock` on its file, so a `.part` that can be locked is nobody's (this works
//! across mounts sharing one cache, and needs no guess about ages or process ids).
//!
//! Resumable downloads (`partial/`, see `resume`) are named by the object's SHA-1 alone, so
//! the next daemon finds them, and are kept across restarts. [`sweep_partials`] keeps a pair
//! (`.part` and `.map`) that no live writer holds, and deletes what cannot be resumed: half a
//! pair, a file whose object is already in `objects/`, a pair untouched for
//! [`PARTIAL_MAX_AGE`], and anything else found there.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::Sha1Digest;

/// Mode of every folder of the cache.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file of the cache.
pub const FILE_MODE: u32 = 0o600;

#[derive(Clone, Debug)]
pub struct Layout {
    pub objects: PathBuf,
    pub tmp: PathBuf,
    pub partial: PathBuf,
}

/// A resumable download untouched for this long is deleted (the video was probably not
/// wanted any more, and its bytes hold room in the cache).
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

impl Layout {
    pub fn new(cache_dir: &Path) -> Layout {
        Layout {
            objects: cache_dir.join("objects"),
            tmp: cache_dir.join("tmp"),
            partial: cache_dir.join("partial"),
        }
    }

    /// The data of a resumable download of `sha1`.
    pub fn partial_data(&self, sha1: &Sha1Digest) -> PathBuf {
        self.partial.join(format!("{}.part", sha1.to_hex()))
    }

    /// The range map of a resumable download of `sha1`.
    pub fn partial_map(&self, sha1: &Sha1Digest) -> PathBuf {
        self.partial.join(format!("{}.map", sha1.to_hex()))
    }

    /// Where a map is rewritten before it replaces the old one.
    pub fn partial_map_tmp(&self, sha1: &Sha1Digest) -> PathBuf {
        self.partial.join(format!("{}.map.tmp", sha1.to_hex()))
    }

    /// Where a verified object lives (whether or not it is there yet).
    pub fn object_path(&self, sha1: &Sha1Digest) -> PathBuf {
        let hex = sha1.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    /// Makes the 256 folders objects are kept in (`objects/00` … `objects/ff`, 0700), those
    /// missing. Done when the cache opens, not when the first object of each arrives: on a
    /// busy ext4 a folder's creation can take a millisecond (its inode allocator skips the
    /// inodes freed in the last minutes), which perf showed as 2-4% of the daemon's CPU
    /// during the first copy into a new cache, on the download path. A later start lists
    /// `objects/` once and finds them all.
    pub fn create_object_dirs(&self) -> std::io::Result<()> {
        // One listing, so that a cache that has them all (every start but the first) makes
        // no system call per folder.
        let present: std::collections::HashSet<std::ffi::OsString> =
            std::fs::read_dir(&self.objects)?
                .flatten()
                .map(|e| e.file_name())
                .collect();
        for b in 0..=255u8 {
            let name = format!("{b:02x}");
            if present.contains(std::ffi::OsStr::new(&name)) {
                continue;
            }
            let dir = self.objects.join(name);
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => make_private(&dir, DIR_MODE)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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

/// A resumable download found on disk and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    pub sha1: Sha1Digest,
    /// Disk space its two files take (allocated blocks).
    pub bytes: u64,
    pub modified: SystemTime,
}

/// What [`sweep_partials`] found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Resumable downloads no live writer holds (kept).
    pub kept: Vec<Partial>,
    /// Files that cannot be resumed: deleted, or (`dry_run`) to be deleted.
    pub removed: Vec<PathBuf>,
}

/// The disk space a file takes (allocated blocks; 0 if it is gone).
pub fn disk_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// Keeps the resumable downloads under `partial` and deletes (unless `dry_run`) what cannot
/// be resumed (see the module doc). Pairs held by a live writer are left alone and not
/// listed: their writer accounts for them.
pub fn sweep_partials(layout: &Layout, max_age: Duration, dry_run: bool) -> Sweep {
    let mut sweep = Sweep::default();
    let Ok(entries) = std::fs::read_dir(&layout.partial) else {
        return sweep;
    };
    // Per object: its data file, its map, other files named after it.
    let mut found: BTreeMap<Sha1Digest, (bool, bool, Vec<PathBuf>)> = BTreeMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_str().unwrap_or("");
        let (stem, kind) = name.split_once('.').unwrap_or((name, ""));
        match Sha1Digest::from_hex(stem).filter(|_| stem.len() == 40) {
            Some(sha1) => {
                let f = found.entry(sha1).or_default();
                match kind {
                    "part" => f.0 = true,
                    "map" => f.1 = true,
                    _ => f.2.push(path),
                }
            }
            None => sweep.removed.push(path),
        }
    }
    let now = SystemTime::now();
    for (sha1, (data, map, others)) in found {
        let data_path = layout.partial_data(&sha1);
        let map_path = layout.partial_map(&sha1);
        if data {
            let Ok(file) = std::fs::File::open(&data_path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // a live writer's (another mount sharing this cache)
            }
            let modified = file.metadata().and_then(|m| m.modified()).unwrap_or(now);
            let old = now.duration_since(modified).unwrap_or_default() >= max_age;
            let done = layout.object_path(&sha1).is_file();
            if map && !old && !done {
                sweep.kept.push(Partial {
                    sha1,
                    bytes: disk_bytes(&data_path) + disk_bytes(&map_path),
                    modified,
                });
                sweep.removed.extend(others);
                continue;
            }
            sweep.removed.push(data_path);
        }
        if map {
            sweep.removed.push(map_path);
        }
        sweep.removed.extend(others);
    }
    if !dry_run {
        for path in &sweep.removed {
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            if let Err(err) = gone {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %err, "cannot delete a download that cannot be resumed");
                }
            }
        }
    }
    sweep
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
    fn the_256_object_folders_are_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        create_private_dir(&layout.objects).unwrap();
        // One made before (by an object's publication) stays as it is, with what it holds.
        let sha1 = Sha1Digest([0xab; 20]);
        let obj = layout.object_path(&sha1);
        create_private_dir(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, b"x").unwrap();
        layout.create_object_dirs().unwrap();
        // One deleted behind the cache's back is made again at the next start.
        std::fs::remove_dir(layout.objects.join("00")).unwrap();
        layout.create_object_dirs().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&layout.objects)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let want: Vec<String> = (0..=255u8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(names, want);
        for n in &names {
            let mode = std::fs::metadata(layout.objects.join(n))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, DIR_MODE, "{n}");
        }
        assert_eq!(std::fs::read(&obj).unwrap(), b"x");
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

    #[test]
    fn partial_sweep_keeps_pairs_and_deletes_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        create_private_dir(&layout.partial).unwrap();
        let d = |n: u8| Sha1Digest([n; 20]);
        let write = |p: PathBuf| std::fs::write(p, vec![1u8; 5000]).unwrap();
        // A pair: kept.
        write(layout.partial_data(&d(1)));
        write(layout.partial_map(&d(1)));
        write(layout.partial_map_tmp(&d(1)));
        // Data without a map, a map without data: deleted.
        write(layout.partial_data(&d(2)));
        write(layout.partial_map(&d(3)));
        // A pair whose object is complete: deleted.
        write(layout.partial_data(&d(4)));
        write(layout.partial_map(&d(4)));
        let obj = layout.object_path(&d(4));
        create_private_dir(obj.parent().unwrap()).unwrap();
        write(obj);
        // A pair untouched for longer than the age limit: deleted.
        write(layout.partial_data(&d(5)));
        write(layout.partial_map(&d(5)));
        let old = SystemTime::now() - PARTIAL_MAX_AGE - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(layout.partial_data(&d(5)))
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A pair held by a live writer: left alone, not listed.
        write(layout.partial_data(&d(6)));
        let held = std::fs::File::open(layout.partial_data(&d(6))).unwrap();
        held.lock().unwrap();
        // A stranger.
        write(layout.partial.join("notes.txt"));

        let dry = sweep_partials(&layout, PARTIAL_MAX_AGE, true);
        assert_eq!(dry.kept.len(), 1);
        assert_eq!(dry.removed.len(), 8, "{:?}", dry.removed);
        assert!(
            layout.partial_data(&d(2)).exists(),
            "a dry run deletes nothing"
        );

        let s = sweep_partials(&layout, PARTIAL_MAX_AGE, false);
        assert_eq!(s.kept.len(), 1);
        assert_eq!(s.kept[0].sha1, d(1));
        assert!(s.kept[0].bytes >= 8192, "{}", s.kept[0].bytes);
        let mut left: Vec<String> = std::fs::read_dir(&layout.partial)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let hex = |n: u8| d(n).to_hex();
        assert_eq!(
            left,
            vec![
                format!("{}.map", hex(1)),
                format!("{}.part", hex(1)),
                format!("{}.part", hex(6)),
            ]
        );
    }
}
