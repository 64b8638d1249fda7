//! The fingerprint cache file: sizes and SHA-1s of a gallery, so a restart skips hashing.
//!
//! One file per gallery identity, `fingerprints-<16 hex>.bin` in the data dir, where the hex
//! is the start of the SHA-1 of a *key* string (generator version, seed, album and item
//! counts, size mode; or the canonical `--from-dir` path). Layout, little-endian:
//!
//! ```text
//! "MICSIMFP"  u32 version  [20] key  u64 count
//! count × ( u32 path_len, path bytes, i64 mtime_ns, u64 size, [20] sha1 )
//! [20] SHA-1 of every byte before it
//! ```
//!
//! Generated items have an empty path and mtime 0 and are matched by position; `--from-dir`
//! entries are matched by relative path, size and mtime, so an edited file is hashed again.
//! A file that is truncated, from another version, for another key, or whose checksum fails
//! is ignored with a warning and rewritten. Writes go to a temporary file in the same folder
//! that is then renamed over the old one, so a crash never leaves a half-written cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

const MAGIC: &[u8; 8] = b"MICSIMFP";
const VERSION: u32 = 1;

/// One item's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path for `--from-dir` files, empty for generated items.
    pub path: String,
    /// Modification time in ns since the epoch (0 for generated items).
    pub mtime_ns: i64,
    pub size: u64,
    pub sha1: [u8; 20],
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a micloud-sim fingerprint cache (bad magic or truncated)")]
    Foreign(PathBuf),
    #[error("{path} has format version {found}, this build writes {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{0} belongs to another gallery (key mismatch)")]
    OtherKey(PathBuf),
    #[error("{0} is corrupt (checksum mismatch)")]
    Corrupt(PathBuf),
}

/// SHA-1 of the key string.
pub fn key(description: &str) -> [u8; 20] {
    Sha1::digest(description.as_bytes()).into()
}

/// The cache file for `key` in `dir`.
pub fn file_in(dir: &Path, key: &[u8; 20]) -> PathBuf {
    dir.join(format!("fingerprints-{}.bin", hex::encode(&key[..8])))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn sha(&mut self) -> Option<[u8; 20]> {
        self.take(20)?.try_into().ok()
    }
}

/// The entries of the cache file at `path` if it is present, intact and for `key`;
/// `Ok(None)` when there is no file.
pub fn load(path: &Path, key: &[u8; 20]) -> Result<Option<Vec<Entry>>, CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let foreign = || CacheError::Foreign(path.to_path_buf());
    if bytes.len() < MAGIC.len() + 4 + 20 + 8 + 20 || &bytes[..8] != MAGIC {
        return Err(foreign());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 20);
    let mut r = Reader { buf: &body[8..] };
    let version = r.u32().ok_or_else(foreign)?;
    if version != VERSION {
        return Err(CacheError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if Sha1::digest(body).as_slice() != sum {
        return Err(CacheError::Corrupt(path.to_path_buf()));
    }
    if &r.sha().ok_or_else(foreign)? != key {
        return Err(CacheError::OtherKey(path.to_path_buf()));
    }
    let count = r.u64().ok_or_else(foreign)?;
    // Each entry takes at least 40 bytes: a count beyond that is a lie.
    if count > (r.buf.len() / 40) as u64 {
        return Err(CacheError::Corrupt(path.to_path_buf()));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let corrupt = || CacheError::Corrupt(path.to_path_buf());
        let n = r.u32().ok_or_else(corrupt)? as usize;
        let p = r.take(n).ok_or_else(corrupt)?;
        let path_s = String::from_utf8(p.to_vec()).map_err(|_| corrupt())?;
        let mtime_ns = r.u64().ok_or_else(corrupt)? as i64;
        let size = r.u64().ok_or_else(corrupt)?;
        let sha1 = r.sha().ok_or_else(corrupt)?;
        entries.push(Entry {
            path: path_s,
            mtime_ns,
            size,
            sha1,
        });
    }
    if !r.buf.is_empty() {
        return Err(CacheError::Corrupt(path.to_path_buf()));
    }
    Ok(Some(entries))
}

/// Write `entries` for `key` to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, key: &[u8; 20], entries: &[Entry]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 + entries.len() * 44);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        buf.extend_from_slice(&(e.path.len() as u32).to_le_bytes());
        buf.extend_from_slice(e.path.as_bytes());
        buf.extend_from_slice(&(e.mtime_ns as u64).to_le_bytes());
        buf.extend_from_slice(&e.size.to_le_bytes());
        buf.extend_from_slice(&e.sha1);
    }
    let sum = Sha1::digest(&buf);
    buf.extend_from_slice(&sum);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // A temporary file in the same folder (removed if anything fails), renamed over the old.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&buf)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                path: String::new(),
                mtime_ns: 0,
                size: 5,
                sha1: [1; 20],
            },
            Entry {
                path: "album/é.jpg".into(),
                mtime_ns: -3,
                size: 1 << 40,
                sha1: [2; 20],
            },
        ]
    }

    #[test]
    fn round_trip_and_every_kind_of_bad_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("a");
        let p = file_in(dir.path(), &k);
        assert!(load(&p, &k).unwrap().is_none());
        save(&p, &k, &entries()).unwrap();
        assert_eq!(load(&p, &k).unwrap().unwrap(), entries());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(matches!(load(&p, &key("b")), Err(CacheError::OtherKey(_))));
        let good = std::fs::read(&p).unwrap();
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        std::fs::write(&p, &flipped).unwrap();
        assert!(matches!(load(&p, &k), Err(CacheError::Corrupt(_))));
        std::fs::write(&p, &good[..good.len() - 3]).unwrap();
        assert!(load(&p, &k).is_err());
        std::fs::write(&p, b"hello, this is not a cache file at all, no").unwrap();
        assert!(matches!(load(&p, &k), Err(CacheError::Foreign(_))));
        let mut other = good.clone();
        other[8] = 9;
        std::fs::write(&p, &other).unwrap();
        assert!(matches!(load(&p, &k), Err(CacheError::Version { .. })));
    }
}
