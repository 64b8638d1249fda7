//! `Room`: the free-space floor of the cache's file system (`--min-free-space`).
//!
//! The cap (`--max-cache-size`) bounds what the cache *may* use; the disk may have less. So
//! before a download is written to disk, the cache asks its file system (`statvfs`) how
//! much is available and keeps a floor free:
//!
//! - **The floor.** Default: 5 % of the file system or 1 GiB, whichever is smaller (a 24 MB
//!   tmpfs keeps 1.2 MB, a 2 TB disk 1 GiB). `--min-free-space` takes a size (`2GiB`) or a
//!   percentage (`10%`); `0` turns the floor off (the disk may then fill, and a failed write
//!   is still caught by the writer).
//! - **Reservations.** Downloads in flight have not written all their bytes yet; each holds a
//!   [`Reservation`] of what it has still to write, so eight parallel downloads do not all
//!   count the same free bytes. The reservation shrinks as bytes reach the disk. A download
//!   whose blocks were allocated up front (`fallocate`, every file below the resumable size)
//!   lets its reservation go at once: `statvfs` already counts those blocks as used.
//! - **Shortfall.** `floor + reserved + size − available`: what must be evicted before a
//!   file of `size` bytes may be written. The caller evicts least recently read objects and
//!   asks again; when nothing is left to evict, the read is served without caching.
//! - **Said once.** The first file that cannot be cached logs one warning with the free
//!   space and the floor; more are counted, and mentioned again at most every 10 minutes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a file system reports about its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub total: u64,
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub available: u64,
}

/// How free space is measured; a fake in unit tests.
pub trait SpaceProbe: Send + Sync {
    fn space(&self, dir: &Path) -> std::io::Result<DiskSpace>;
}

/// `statvfs(2)` of the cache dir.
pub struct Statvfs;

impl SpaceProbe for Statvfs {
    fn space(&self, dir: &Path) -> std::io::Result<DiskSpace> {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: c is a valid NUL-terminated path and buf a properly sized out-parameter.
        let (rc, buf) = unsafe {
            let mut buf: libc::statvfs = std::mem::zeroed();
            (libc::statvfs(c.as_ptr(), &mut buf), buf)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The field types differ between targets (32 or 64 bits); widening is lossless.
        #[allow(clippy::useless_conversion)]
        let (unit, blocks, bavail) = (
            u64::from(buf.f_frsize),
            u64::from(buf.f_blocks),
            u64::from(buf.f_bavail),
        );
        Ok(DiskSpace {
            total: blocks.saturating_mul(unit),
            available: bavail.saturating_mul(unit),
        })
    }
}

/// The free-space floor, as given by `--min-free-space`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MinFree {
    /// 5 % of the file system or 1 GiB, whichever is smaller.
    Default,
    Bytes(u64),
    /// A share of the file system, 0..=100.
    Percent(f64),
}

impl MinFree {
    /// The floor in bytes on a file system of `total` bytes.
    pub fn floor(&self, total: u64) -> u64 {
        match *self {
            MinFree::Default => (total / 20).min(1 << 30),
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

impl std::str::FromStr for MinFree {
    type Err = String;

    fn from_str(s: &str) -> Result<MinFree, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinFree::Percent(v)),
                _ => Err(format!(
                    "{s:?} is not a percentage from 0% to 100%; write for example 5% or 2GiB"
                )),
            };
        }
        s.parse::<bytesize::ByteSize>()
            .map(|b| MinFree::Bytes(b.as_u64()))
            .map_err(|_| {
                format!("{s:?} is not a size or a percentage; write for example 2GiB or 5%")
            })
    }
}

/// The floor, the reservations and the "disk full" state of one cache dir.
pub struct Room {
    dir: PathBuf,
    min_free: MinFree,
    probe: Arc<dyn SpaceProbe>,
    reserved: Arc<AtomicU64>,
    uncached: AtomicU64,
    /// Seconds since `started` of the last warning; `u64::MAX`: never.
    last_warned: AtomicU64,
    started: std::time::Instant,
}

/// Bytes a download still has to write; released as they are written or when dropped.
#[derive(Debug)]
pub struct Reservation {
    left: u64,
    reserved: Arc<AtomicU64>,
}

impl Reservation {
    /// `n` more bytes reached the disk.
    pub fn consume(&mut self, n: u64) {
        let n = n.min(self.left);
        self.left -= n;
        self.reserved.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.left, Ordering::Relaxed);
    }
}

impl Room {
    pub fn new(dir: &Path, min_free: MinFree, probe: Arc<dyn SpaceProbe>) -> Room {
        Room {
            dir: dir.to_path_buf(),
            min_free,
            probe,
            reserved: Arc::new(AtomicU64::new(0)),
            uncached: AtomicU64::new(0),
            last_warned: AtomicU64::new(u64::MAX),
            started: std::time::Instant::now(),
        }
    }

    /// Bytes to evict before `size` more may be written (0: go ahead), with what the file
    /// system reported.
    pub fn shortfall(&self, size: u64) -> std::io::Result<(u64, DiskSpace)> {
        let space = self.probe.space(&self.dir)?;
        let want = self
            .min_free
            .floor(space.total)
            .saturating_add(self.reserved.load(Ordering::Relaxed))
            .saturating_add(size);
        Ok((want.saturating_sub(space.available), space))
    }

    /// Whether a prefetch of `size` more bytes may take room on the disk now. The room the
    /// cache could use is the free space above the floor plus `evictable` (objects it may
    /// delete); downloads in progress (what they still have to write) and this one together
    /// may take at most half of it, so that the reads programs wait on always find room and
    /// are never pushed into memory by files fetched ahead of them.
    pub fn fits_prefetch(&self, size: u64, evictable: u64) -> std::io::Result<bool> {
        let space = self.probe.space(&self.dir)?;
        let usable = space
            .available
            .saturating_sub(self.min_free.floor(space.total))
            .saturating_add(evictable);
        let committed = self.reserved.load(Ordering::Relaxed).saturating_add(size);
        Ok(committed.saturating_mul(2) <= usable)
    }

    /// Reserves `size` bytes for a download (call after [`Room::shortfall`] said 0).
    pub fn reserve(&self, size: u64) -> Reservation {
        self.reserved.fetch_add(size, Ordering::Relaxed);
        Reservation {
            left: size,
            reserved: self.reserved.clone(),
        }
    }

    /// Notes that a file could not be cached. Logged the first time, then at most once per
    /// [`REMIND_EVERY`] with the count since: a copy running into a full disk gives a few
    /// lines, not one per file.
    pub fn report_full(&self, why: &str) {
        let n = self.uncached.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_secs();
        let last = self.last_warned.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= REMIND_EVERY.as_secs();
        if due
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let space = self.probe.space(&self.dir).ok();
            tracing::warn!(
                cache_dir = %self.dir.display(),
                available = space.map(|s| s.available),
                floor = space.map(|s| self.min_free.floor(s.total)),
                uncached_so_far = n,
                "the cache disk is full or failing: {why}; until there is room, files are \
                 served without caching (verified in memory; too big for memory: EIO)"
            );
        } else {
            tracing::debug!(why, "not cached");
        }
    }

    /// Files that could not be cached so far.
    pub fn uncached(&self) -> u64 {
        self.uncached.load(Ordering::Relaxed)
    }
}

/// How often a disk that stays full is mentioned again in the log.
pub const REMIND_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(DiskSpace);
    impl SpaceProbe for Fixed {
        fn space(&self, _: &Path) -> std::io::Result<DiskSpace> {
            Ok(self.0)
        }
    }

    #[test]
    fn floor_defaults_to_the_smaller_of_5_percent_and_1_gib() {
        assert_eq!(MinFree::Default.floor(24 << 20), (24 << 20) / 20);
        assert_eq!(MinFree::Default.floor(2 << 40), 1 << 30);
        assert_eq!(MinFree::Percent(10.0).floor(1000), 100);
        assert_eq!(MinFree::Bytes(7).floor(1000), 7);
    }

    #[test]
    fn parses_sizes_and_percentages() {
        assert_eq!("5%".parse::<MinFree>(), Ok(MinFree::Percent(5.0)));
        assert_eq!("2GiB".parse::<MinFree>(), Ok(MinFree::Bytes(2 << 30)));
        assert_eq!("0".parse::<MinFree>(), Ok(MinFree::Bytes(0)));
        assert!("150%".parse::<MinFree>().is_err());
        assert!("lots".parse::<MinFree>().is_err());
    }

    #[test]
    fn reservations_count_until_written() {
        let probe = Arc::new(Fixed(DiskSpace {
            total: 1000,
            available: 500,
        }));
        let room = Room::new(Path::new("/"), MinFree::Bytes(100), probe);
        assert_eq!(room.shortfall(400).unwrap().0, 0);
        let mut r = room.reserve(400);
        // The same 400 free bytes are not offered twice.
        assert_eq!(room.shortfall(300).unwrap().0, 300);
        r.consume(100);
        assert_eq!(room.shortfall(300).unwrap().0, 200);
        drop(r);
        assert_eq!(room.shortfall(300).unwrap().0, 0);
    }
}
