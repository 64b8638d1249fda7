//! What makes a folder a usable mount point, checked twice: by `mount` in the foreground,
//! and again by the daemon right before the kernel mount.
//!
//! The foreground checks ([`check`], [`check_apart`], [`check_empty`]) refuse with one line
//! that says what to do: a path that is missing, not a directory, already a mount (or a
//! dead one), inside the cache or config dir, holding either of them, or not empty (the mount
//! would hide its files; `--allow-non-empty` accepts that, as FUSE 3 itself always does).
//!
//! The first listing of a large gallery can take minutes, so those checks are old news by the
//! time the daemon mounts: two `mount`s started together on one folder both passed them.
//! [`claim`] therefore runs the mount-point checks again just before the kernel mount, under
//! an exclusive `flock` on the folder itself (on the directory under the mount, which both
//! racers opened before either mounted). The lock is held until the kernel mount is done, so
//! the second racer finds the first one's mount in the table and says so; nothing else
//! takes this lock, and it is held for the few milliseconds of one mount.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::mounttable;

/// Checks that `path` is a directory and not a mount point; its canonical path.
pub(crate) fn check(path: &Path) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let path = path
                .canonicalize()
                .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
            not_mounted(&path)?;
            Ok(path)
        }
        Ok(_) => Err(format!(
            "{} is not a directory; mount on an empty directory",
            path.display()
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(dead_mount(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist; create it first (mkdir -p {})",
            path.display(),
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot use {} as a mount point: {e}",
            path.display()
        )),
    }
}

/// Refuses a mount point inside `dir` or `dir` inside the mount point (`what` names the
/// dir and its flag: "cache dir", "--cache-dir"). Both paths are absolute and resolved.
pub(crate) fn check_apart(
    mountpoint: &Path,
    dir: &Path,
    what: &str,
    flag: &str,
) -> Result<(), String> {
    let (m, d) = (mountpoint.display(), dir.display());
    if mountpoint == dir {
        Err(format!(
            "the mount point {m} is the {what} itself; mount somewhere else, or choose another {flag}"
        ))
    } else if mountpoint.starts_with(dir) {
        Err(format!(
            "the mount point {m} is inside the {what} {d}; mount on a folder outside it, or \
             choose another {flag}"
        ))
    } else if dir.starts_with(mountpoint) {
        Err(format!(
            "the {what} {d} is inside the mount point {m}, which the mount would hide; choose \
             a {flag} outside {m}"
        ))
    } else {
        Ok(())
    }
}

/// Refuses a mount point with files in it, unless `allow`.
pub(crate) fn check_empty(path: &Path, allow: bool) -> Result<(), String> {
    if allow {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read the mount point {}: {e}", path.display()))?;
    match entries.next() {
        None => Ok(()),
        Some(first) => {
            let name = first
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default();
            Err(format!(
                "{} is not empty (it holds {name:?}{}); the mount would hide its files: mount \
                 on an empty folder, or pass --allow-non-empty",
                path.display(),
                if entries.next().is_some() {
                    " and more"
                } else {
                    ""
                }
            ))
        }
    }
}

/// `path` made absolute with symlinks resolved as far as it exists (a cache or config dir
/// may not exist yet): the canonical form of its longest existing ancestor, then the rest.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut head = abs.as_path();
    loop {
        if let Ok(real) = head.canonicalize() {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    c => out.push(c),
                }
            }
            return out;
        }
        match (head.parent(), head.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                head = parent;
            }
            _ => return abs,
        }
    }
}

/// The mount point, claimed for the kernel mount: hold it until the mount is done.
pub(crate) struct Claim {
    _dir: OwnedFd,
}

/// Locks the mount point against another micloudfs mount and checks it again; see the
/// module doc.
pub(crate) fn claim(path: &Path, allow_non_empty: bool) -> Result<Claim, String> {
    let dir = std::fs::File::open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTCONN) => dead_mount(path),
        _ => format!("cannot open the mount point {}: {e}", path.display()),
    })?;
    // SAFETY: a plain syscall on a descriptor this function owns.
    while unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!(
                "cannot lock the mount point {}: {e}",
                path.display()
            ));
        }
    }
    let meanwhile = "while the gallery was being listed";
    if let Some(m) = mounttable::mount_at(path) {
        return Err(if m.is_micloudfs() {
            format!(
                "{} was mounted by another micloudfs {meanwhile}; this one stops (unmount it \
                 first to mount again: micloudfs unmount {})",
                path.display(),
                path.display()
            )
        } else {
            format!(
                "{} became a mount point ({}) {meanwhile}; nothing was mounted",
                path.display(),
                m.describe()
            )
        });
    }
    let (held, now) = (dir.metadata(), std::fs::metadata(path));
    match (held, now) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => {}
        _ => {
            return Err(format!(
                "{} was replaced or mounted over {meanwhile}; nothing was mounted",
                path.display()
            ))
        }
    }
    check_empty(path, allow_non_empty).map_err(|e| format!("{e} (files appeared {meanwhile})"))?;
    Ok(Claim {
        _dir: OwnedFd::from(dir),
    })
}

/// For `unmount`: the canonical path of the micloudfs mount at `path` (alive or dead), or
/// why it is refused.
pub(crate) fn ours(path: &Path) -> Result<PathBuf, String> {
    // A dead mount fails stat with ENOTCONN: `resolve` then keeps its last component as is.
    let path = resolve(path);
    match mounttable::mount_at(&path) {
        None => Err(format!("{} is not mounted; nothing to do", path.display())),
        Some(m) if !m.is_micloudfs() => Err(format!(
            "{} is not a micloudfs mount but {}; micloudfs unmounts only its own mounts \
             (use umount for others)",
            path.display(),
            m.describe()
        )),
        Some(_) => Ok(path),
    }
}

fn not_mounted(path: &Path) -> Result<(), String> {
    if mounttable::mount_at(path).is_none() {
        return Ok(());
    }
    // The kernel may answer stat from its attribute cache for a dead mount; statfs always
    // asks the daemon.
    if statfs_errno(path) == Some(libc::ENOTCONN) {
        return Err(dead_mount(path));
    }
    Err(format!(
        "{} is already a mount point; unmount it first (micloudfs unmount {})",
        path.display(),
        path.display()
    ))
}

fn dead_mount(path: &Path) -> String {
    format!(
        "{} is a mount whose daemon is gone; run `micloudfs unmount {}` first",
        path.display(),
        path.display()
    )
}

/// The errno of `statfs(path)`, if it fails.
pub(crate) fn statfs_errno(path: &Path) -> Option<i32> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: c is a valid NUL-terminated path and buf a properly sized out-parameter.
    let rc = unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut buf)
    };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_paths_are_refused_both_ways() {
        let m = Path::new("/home/u/photos");
        let ok = check_apart(
            m,
            Path::new("/home/u/.cache/micloudfs"),
            "cache dir",
            "--cache-dir",
        );
        assert!(ok.is_ok());
        let inside = check_apart(m, Path::new("/home/u"), "cache dir", "--cache-dir").unwrap_err();
        assert!(
            inside.contains("is inside the cache dir /home/u"),
            "{inside}"
        );
        let holds = check_apart(
            m,
            Path::new("/home/u/photos/c"),
            "config dir",
            "--config-dir",
        )
        .unwrap_err();
        assert!(
            holds.contains("config dir /home/u/photos/c is inside the mount point"),
            "{holds}"
        );
        let same = check_apart(m, m, "cache dir", "--cache-dir").unwrap_err();
        assert!(same.contains("is the cache dir itself"), "{same}");
        // A common prefix is not containment.
        assert!(check_apart(m, Path::new("/home/u/photos2"), "cache dir", "--cache-dir").is_ok());
    }

    #[test]
    fn resolve_follows_symlinks_of_the_part_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("target")).unwrap();
        std::os::unix::fs::symlink(real.join("target"), real.join("link")).unwrap();
        assert_eq!(
            resolve(&real.join("link/not/yet/../there")),
            real.join("target/not/there")
        );
        assert_eq!(resolve(&real.join("link")), real.join("target"));
    }

    #[test]
    fn an_empty_folder_passes_and_a_full_one_needs_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_empty(dir.path(), false).is_ok());
        std::fs::write(dir.path().join("photo.jpg"), b"x").unwrap();
        let e = check_empty(dir.path(), false).unwrap_err();
        assert!(
            e.contains("\"photo.jpg\"") && e.contains("--allow-non-empty"),
            "{e}"
        );
        assert!(check_empty(dir.path(), true).is_ok());
    }

    #[test]
    fn a_claim_excludes_a_second_claim_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), false).unwrap();
        let path = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let second = claim(&path, false).map(|_| ());
            tx.send(second).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "the second claim must wait");
        drop(first);
        assert!(rx.recv().unwrap().is_ok());
        t.join().unwrap();
    }
}
