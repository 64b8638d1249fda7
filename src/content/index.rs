//! `CacheIndex`: which verified objects are on disk, how many bytes they take, and which
//! was used least recently, so that the cache stays under `--max-cache-size`.
//!
//! - Built at start by listing `objects/` (one `readdir` per 256 prefixes; 100 000 objects
//!   list in well under a second), oldest modification first, so that across restarts the
//!   objects downloaded longest ago go first.
//! - Every read of an object promotes it (`touch`); every new object is `admit`ted and may
//!   push out the least recently used ones until the total fits again. The object just
//!   admitted is never evicted by its own admission: a single file larger than the cap is
//!   still served, and goes at the next admission.
//! - Downloads in progress count too: a transfer `reserve`s its size before its first byte
//!   is written (evicting as needed), and the reservation becomes the object at `admit`, or
//!   is released if the download is abandoned. So objects plus `.part` files stay under the
//!   cap while a copy larger than the cap runs, prefetch included.
//! - Resumable downloads left on disk (`partial/`, see `resume`) count too, by the disk space
//!   they take, and are evicted like objects (least recently left first). A download that
//!   resumes one takes it out ([`CacheIndex::take_partial`]) and reserves the file's size
//!   as any download does; one that stops keeping its parts puts it back
//!   ([`CacheIndex::admit_partial`]).
//! - Eviction only decides; the caller deletes the files (a reader that has an object open
//!   keeps reading it: on Linux an unlinked file lives on until its last descriptor closes).
//!
//! Memory: one `LruCache` entry per object (~80 bytes): 8 MB for 100 000 objects.

use std::path::Path;
use std::sync::Mutex;

use lru::LruCache;

use crate::model::Sha1Digest;

pub(crate) struct CacheIndex {
    max_bytes: u64,
    inner: Mutex<Inner>,
}

/// What eviction chose: an object, or a resumable download (`partial`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Victim {
    pub sha1: Sha1Digest,
    pub partial: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    size: u64,
    partial: bool,
}

struct Inner {
    lru: LruCache<Sha1Digest, Entry>,
    total: u64,
    /// Bytes reserved by downloads in progress.
    pending: u64,
}

impl Inner {
    /// Takes least recently used objects out until objects and reservations fit under
    /// `max_bytes`, keeping at least `keep` objects; returns them, to be deleted.
    fn evict_over(&mut self, max_bytes: u64, keep: usize) -> Vec<Victim> {
        let mut evicted = Vec::new();
        while self.total + self.pending > max_bytes && self.lru.len() > keep {
            match self.lru.pop_lru() {
                Some((sha1, e)) => {
                    self.total -= e.size;
                    evicted.push(Victim {
                        sha1,
                        partial: e.partial,
                    });
                }
                None => break,
            }
        }
        evicted
    }
}

impl CacheIndex {
    /// Indexes the objects already under `objects` (files named by their SHA-1 in
    /// two-hex-digit folders; anything else there is ignored) and the resumable downloads
    /// `partials` kept on disk.
    pub fn scan(objects: &Path, partials: &[super::layout::Partial], max_bytes: u64) -> CacheIndex {
        let mut found: Vec<(std::time::SystemTime, Sha1Digest, u64, bool)> = partials
            .iter()
            .map(|p| (p.modified, p.sha1, p.bytes, true))
            .collect();
        for prefix in std::fs::read_dir(objects).into_iter().flatten().flatten() {
            if prefix.path().is_dir() {
                if let Err(e) = super::layout::make_private(&prefix.path(), super::layout::DIR_MODE)
                {
                    tracing::warn!(path = %prefix.path().display(), error = %e, "cannot make a cache folder private");
                }
            }
            for entry in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let Some(sha1) = entry.file_name().to_str().and_then(Sha1Digest::from_hex) else {
                    continue;
                };
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    // Objects of earlier versions were 0644: the cache holds private photos.
                    if let Err(e) =
                        super::layout::make_private(&entry.path(), super::layout::FILE_MODE)
                    {
                        tracing::warn!(path = %entry.path().display(), error = %e, "cannot make a cached object private");
                    }
                    let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((mtime, sha1, meta.len(), false));
                }
            }
        }
        found.sort();
        let index = CacheIndex {
            max_bytes,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                total: 0,
                pending: 0,
            }),
        };
        if let Ok(mut inner) = index.inner.lock() {
            for (_, sha1, size, partial) in found {
                if let Some(old) = inner.lru.put(sha1, Entry { size, partial }) {
                    inner.total -= old.size;
                }
                inner.total += size;
            }
        }
        index
    }

    /// Bytes of all indexed objects.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().map(|i| i.total).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.lru.len()).unwrap_or(0)
    }

    /// Marks `sha1` as just used (no effect if it is not indexed).
    pub fn touch(&self, sha1: &Sha1Digest) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.lru.promote(sha1);
        }
    }

    /// Reserves `size` bytes for a download about to be written; returns the objects to
    /// delete so that objects and reservations fit under the cap (least recently used first).
    pub fn reserve(&self, size: u64) -> Vec<Victim> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner.pending += size;
        inner.evict_over(self.max_bytes, 0)
    }

    /// Releases a reservation (the download was abandoned, or became an object).
    pub fn unreserve(&self, size: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.pending = inner.pending.saturating_sub(size);
        }
    }

    /// Bytes reserved by downloads in progress.
    #[cfg(test)]
    pub fn pending_bytes(&self) -> u64 {
        self.inner.lock().map(|i| i.pending).unwrap_or(0)
    }

    /// Records a new object (or re-promotes a known one) and returns the objects to delete
    /// to get back under the cap, least recently used first.
    pub fn admit(&self, sha1: Sha1Digest, size: u64) -> Vec<Victim> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let entry = Entry {
            size,
            partial: false,
        };
        if let Some(old) = inner.lru.put(sha1, entry) {
            inner.total -= old.size;
        }
        inner.total += size;
        // The object just admitted stays, even when it alone is over the cap.
        inner.evict_over(self.max_bytes, 1)
    }

    /// Picks least recently used objects (never `keep`) until their bytes reach `bytes`,
    /// and forgets them; the caller deletes their files. Empty when nothing can go.
    pub fn evict_bytes(&self, bytes: u64, keep: &Sha1Digest) -> Vec<Victim> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut freed = 0;
        let mut evicted = Vec::new();
        let mut kept = None;
        while freed < bytes {
            match inner.lru.pop_lru() {
                Some((victim, e)) if victim == *keep => kept = Some((victim, e)),
                Some((victim, e)) => {
                    inner.total -= e.size;
                    freed += e.size;
                    evicted.push(Victim {
                        sha1: victim,
                        partial: e.partial,
                    });
                }
                None => break,
            }
        }
        if let Some((sha1, e)) = kept {
            // Back in, as the most recent: it is about to be used.
            inner.lru.put(sha1, e);
        }
        evicted
    }

    /// Forgets an object whose file disappeared.
    pub fn forget(&self, sha1: &Sha1Digest) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(e) = inner.lru.pop(sha1) {
                inner.total -= e.size;
            }
        }
    }

    /// Counts a resumable download left on disk (`bytes` of disk space), as the most
    /// recently used entry; nothing is evicted now (the next admission or reservation does).
    /// Ignored if the object itself is indexed.
    pub fn admit_partial(&self, sha1: Sha1Digest, bytes: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.lru.peek(&sha1).is_some_and(|e| !e.partial) {
                return;
            }
            let entry = Entry {
                size: bytes,
                partial: true,
            };
            if let Some(old) = inner.lru.put(sha1, entry) {
                inner.total -= old.size;
            }
            inner.total += bytes;
        }
    }

    /// Takes the resumable download of `sha1` out of the index (a download resumes it, or
    /// it is gone); returns its bytes.
    pub fn take_partial(&self, sha1: &Sha1Digest) -> Option<u64> {
        let mut inner = self.inner.lock().ok()?;
        if !inner.lru.peek(sha1)?.partial {
            return None;
        }
        let e = inner.lru.pop(sha1)?;
        inner.total -= e.size;
        Some(e.size)
    }

    /// Bytes of the resumable downloads indexed.
    pub fn partial_bytes(&self) -> u64 {
        self.inner
            .lock()
            .map(|i| {
                i.lru
                    .iter()
                    .filter(|(_, e)| e.partial)
                    .map(|(_, e)| e.size)
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Sha1Digest {
        Sha1Digest([n; 20])
    }

    fn obj(n: u8) -> Victim {
        Victim {
            sha1: d(n),
            partial: false,
        }
    }

    #[test]
    fn evicts_least_recently_used_down_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let idx = CacheIndex::scan(dir.path(), &[], 100);
        assert!(idx.admit(d(1), 40).is_empty());
        assert!(idx.admit(d(2), 40).is_empty());
        idx.touch(&d(1));
        // 1 was used after 2: 2 goes.
        assert_eq!(idx.admit(d(3), 40), vec![obj(2)]);
        assert_eq!(idx.total_bytes(), 80);
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn an_object_larger_than_the_cap_is_kept_until_the_next_admission() {
        let dir = tempfile::tempdir().unwrap();
        let idx = CacheIndex::scan(dir.path(), &[], 100);
        idx.admit(d(1), 10);
        assert_eq!(idx.admit(d(2), 500), vec![obj(1)]);
        assert_eq!(idx.total_bytes(), 500);
        assert_eq!(idx.admit(d(3), 10), vec![obj(2)]);
        assert_eq!(idx.total_bytes(), 10);
    }

    #[test]
    fn scan_finds_objects_oldest_first_and_ignores_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (n, size) in [(0xaa_u8, 30usize), (0xbb, 50)] {
            let hex = d(n).to_hex();
            let sub = dir.path().join(&hex[..2]);
            std::fs::create_dir_all(&sub).unwrap();
            let f = sub.join(&hex);
            std::fs::write(&f, vec![0u8; size]).unwrap();
            if n == 0xbb {
                std::fs::File::options()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
        std::fs::write(dir.path().join("aa").join("notes.txt"), b"x").unwrap();
        let idx = CacheIndex::scan(dir.path(), &[], 60);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.total_bytes(), 80);
        // bb is older, so it goes first.
        assert_eq!(idx.admit(d(1), 1), vec![obj(0xbb)]);
        idx.forget(&d(0xaa));
        assert_eq!(idx.total_bytes(), 1);
    }

    #[test]
    fn reservations_count_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let idx = CacheIndex::scan(dir.path(), &[], 100);
        idx.admit(d(1), 40);
        idx.admit(d(2), 40);
        // A 50-byte download needs room for its bytes before they are written.
        assert_eq!(idx.reserve(50), vec![obj(1)]);
        assert_eq!(idx.pending_bytes(), 50);
        // Becoming an object: the reservation goes, the object counts.
        idx.unreserve(50);
        assert!(idx.admit(d(3), 50).is_empty());
        assert_eq!(idx.total_bytes(), 90);
        idx.reserve(30);
        idx.unreserve(30);
        assert_eq!(idx.pending_bytes(), 0);
    }

    #[test]
    fn evict_bytes_frees_enough_and_spares_the_kept_one() {
        let dir = tempfile::tempdir().unwrap();
        let idx = CacheIndex::scan(dir.path(), &[], 1000);
        for n in 1..=4 {
            idx.admit(d(n), 10);
        }
        // 1 is the oldest but kept; 2 and 3 go for 15 bytes.
        assert_eq!(idx.evict_bytes(15, &d(1)), vec![obj(2), obj(3)]);
        assert_eq!(idx.total_bytes(), 20);
        assert_eq!(idx.evict_bytes(100, &d(1)), vec![obj(4)]);
        assert!(idx.evict_bytes(1, &d(1)).is_empty());
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn resumable_downloads_count_and_are_evicted_like_objects() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let kept = [super::super::layout::Partial {
            sha1: d(9),
            bytes: 30,
            modified: old,
        }];
        let idx = CacheIndex::scan(dir.path(), &kept, 100);
        assert_eq!(idx.total_bytes(), 30);
        assert_eq!(idx.partial_bytes(), 30);
        idx.admit(d(1), 40);
        // The partial was left longest ago: it goes first.
        assert_eq!(
            idx.admit(d(2), 40),
            vec![Victim {
                sha1: d(9),
                partial: true
            }]
        );
        assert_eq!(idx.partial_bytes(), 0);
        // Left again, and taken by a download that resumes it.
        idx.admit_partial(d(9), 10);
        assert_eq!(idx.total_bytes(), 90);
        assert_eq!(idx.take_partial(&d(9)), Some(10));
        assert_eq!(idx.take_partial(&d(9)), None);
        assert_eq!(idx.total_bytes(), 80);
        // An object is never taken for a partial, nor replaced by one.
        assert_eq!(idx.take_partial(&d(1)), None);
        idx.admit_partial(d(1), 5);
        assert_eq!(idx.total_bytes(), 80);
        assert_eq!(idx.partial_bytes(), 0);
    }
}
