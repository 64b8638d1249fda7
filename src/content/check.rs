//! Checking objects as they lie on disk: the first-serve check of a daemon, and
//! `micloudfs cache check [--repair]`.
//!
//! An object's name is its SHA-1, so checking needs no catalog: read the file, hash it,
//! compare. The whole file is read, in 1 MiB blocks, on a blocking thread. Cost: one SHA-1
//! pass over the file (hundreds of MB/s to over 1 GB/s on one core with the `sha1` crate's
//! SIMD code, plus the disk's read time); it is paid once per object per daemon life, on the
//! first open, and never again while the daemon runs.
//!
//! `cache check` goes through every object with one thread per core and reports, per object,
//! `ok`, `damaged` (content does not match its name), or `stray` (a file that is not named
//! by a SHA-1), plus stale `.part` files; `--repair` deletes the damaged, stray and stale
//! ones (the next read fetches them again). Resumable downloads (`partial/`) are counted
//! and kept, whatever `--repair`: their parts are re-verified by the download that resumes
//! them; what cannot be resumed there (half a pair, a file already complete, a pair
//! untouched for 30 days) counts as stale.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha1::{Digest, Sha1};

use super::layout::{self, Layout};
use crate::model::Sha1Digest;

/// The SHA-1 and length of a file as it is on disk.
pub fn hash_file(path: &Path) -> std::io::Result<(Sha1Digest, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Sha1Digest(hasher.finalize().into()), len))
}

/// What `cache check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub ok: usize,
    pub ok_bytes: u64,
    /// Objects whose bytes do not match their name (or cannot be read), with why.
    pub damaged: Vec<(PathBuf, String)>,
    /// Files under `objects/` that are not named by a SHA-1.
    pub stray: Vec<PathBuf>,
    /// `.part` files no live download holds, and files of `partial/` that cannot be resumed.
    pub stale_parts: usize,
    /// Resumable downloads kept (no live writer holds them), and the disk space they take.
    pub resumable: usize,
    pub resumable_bytes: u64,
    /// Bytes read in all.
    pub bytes_read: u64,
    pub seconds: f64,
    /// Whether damaged, stray and stale files were deleted.
    pub repaired: bool,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.stray.is_empty() && self.stale_parts == 0
    }
}

/// Checks every object under `cache_dir` (and deletes what is bad when `repair`).
pub fn check_cache(cache_dir: &Path, repair: bool) -> std::io::Result<CheckReport> {
    let layout = Layout::new(cache_dir);
    if !layout.objects.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} holds no cache (no objects/ folder)",
                cache_dir.display()
            ),
        ));
    }
    let started = std::time::Instant::now();
    let mut files = Vec::new();
    let mut stray = Vec::new();
    for prefix in std::fs::read_dir(&layout.objects)?.flatten() {
        let ppath = prefix.path();
        if !ppath.is_dir() {
            stray.push(ppath);
            continue;
        }
        for entry in std::fs::read_dir(&ppath)?.flatten() {
            let path = entry.path();
            let named = entry.file_name().to_str().and_then(Sha1Digest::from_hex);
            match named {
                Some(sha1)
                    if path.is_file() && ppath.file_name() == Some(sha1.to_hex()[..2].as_ref()) =>
                {
                    files.push((path, sha1))
                }
                _ => stray.push(path),
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(CheckReport::default());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, want)) = files.get(i) else {
                    break;
                };
                let verdict = match hash_file(path) {
                    Ok((got, len)) if got == *want => Ok(len),
                    Ok((got, len)) => Err((len, format!("its SHA-1 is {got}"))),
                    Err(e) => Err((0, format!("cannot read it: {e}"))),
                };
                if let Ok(mut r) = results.lock() {
                    match verdict {
                        Ok(len) => {
                            r.ok += 1;
                            r.ok_bytes += len;
                            r.bytes_read += len;
                        }
                        Err((len, why)) => {
                            r.bytes_read += len;
                            r.damaged.push((path.clone(), why));
                        }
                    }
                }
            });
        }
    });
    let mut report = results.into_inner().unwrap_or_default();
    report.damaged.sort();
    stray.sort();
    report.stray = stray;
    if repair {
        for (path, _) in &report.damaged {
            remove(path);
        }
        for path in &report.stray {
            if path.is_dir() {
                if let Err(e) = std::fs::remove_dir_all(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete");
                }
            } else {
                remove(path);
            }
        }
        report.stale_parts = layout::remove_stale_parts(&layout.tmp);
        report.repaired = true;
    } else {
        report.stale_parts = count_stale_parts(&layout.tmp);
    }
    let partials = layout::sweep_partials(&layout, layout::PARTIAL_MAX_AGE, !repair);
    report.stale_parts += partials.removed.len();
    report.resumable = partials.kept.len();
    report.resumable_bytes = partials.kept.iter().map(|p| p.bytes).sum();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete");
    }
}

fn count_stale_parts(tmp: &Path) -> usize {
    std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::File::open(e.path())
                .ok()
                .is_some_and(|f| f.try_lock().is_ok())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(objects: &Path, body: &[u8]) -> PathBuf {
        let sha1 = Sha1Digest(Sha1::digest(body).into());
        let hex = sha1.to_hex();
        let dir = objects.join(&hex[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(hex);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn finds_damage_and_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let good = put(&objects, b"good bytes");
        let bad = put(&objects, b"bad bytes");
        let mut bytes = std::fs::read(&bad).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&bad, bytes).unwrap();
        std::fs::write(objects.join("notes.txt"), b"?").unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp/x.part"), b"half").unwrap();
        // A resumable download (kept) and half of one (stale).
        let partial = dir.path().join("partial");
        std::fs::create_dir_all(&partial).unwrap();
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        std::fs::write(partial.join(format!("{a}.part")), vec![1u8; 10_000]).unwrap();
        std::fs::write(partial.join(format!("{a}.map")), b"map").unwrap();
        std::fs::write(partial.join(format!("{b}.map")), b"map").unwrap();

        let r = check_cache(dir.path(), false).unwrap();
        assert_eq!(r.ok, 1);
        assert_eq!(r.damaged.len(), 1);
        assert_eq!(r.damaged[0].0, bad);
        assert_eq!(r.stray, vec![objects.join("notes.txt")]);
        assert_eq!(r.stale_parts, 2);
        assert_eq!(r.resumable, 1);
        assert!(r.resumable_bytes >= 10_000, "{}", r.resumable_bytes);
        assert!(!r.is_clean());
        assert!(bad.exists(), "nothing deleted without --repair");

        let r = check_cache(dir.path(), true).unwrap();
        assert!(r.repaired);
        assert!(!bad.exists() && good.exists());
        assert!(!objects.join("notes.txt").exists());
        let r = check_cache(dir.path(), false).unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.ok, 1);
        assert_eq!(r.resumable, 1, "a resumable download is kept");
        assert!(partial.join(format!("{a}.part")).exists());
        assert!(!partial.join(format!("{b}.map")).exists());
    }
}
