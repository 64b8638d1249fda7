//! `PartWriter`: one download's `.part` file, written in pieces at their offsets (parts of a
//! file may arrive out of order), and published as a verified object only when what reached
//! the disk is the listed file.
//!
//! The rule (DESIGN.md §4, "Disk"): every write and every flush is checked, and the SHA-1
//! that decides is computed over **what was written**, not over what the network sent:
//!
//! - each piece is written with `pwrite` (`write_all_at`) on a blocking thread; only after
//!   that write succeeded are its bytes counted as present, and only present bytes are fed
//!   to the SHA-1: the piece at the hashing frontier right after its write, pieces that
//!   arrived ahead of the frontier read back from the file when the frontier reaches them
//!   (see `transfer`);
//! - [`PartWriter::finish`] then `fsync`s the data and reads the file's length back from the
//!   file system (`fstat`): a file system that accepted fewer bytes than it was given, or
//!   lost them on the way to the disk, shows up there;
//! - only then may [`PartWriter::publish`] rename the file into `objects/`; any error on the
//!   way leaves the `.part`, deleted when the writer is dropped.
//!
//! A write, flush or rename that fails is an [`std::io::Error`] for the caller, which then
//! serves the file from memory (never a short file, never an unverified object).
//!
//! Files are created 0600, whatever the umask, and hold an exclusive `flock` for as long as
//! the writer lives: at start, a `.part` that can be locked belongs to no live writer (its
//! daemon is gone) and is deleted, while one being written by another mount sharing the
//! cache is left alone. The file system is behind [`PartFs`] so that unit tests can make it
//! fail (ENOSPC, EIO) on write or on flush.
//!
//! A resumable download (see `resume`) uses a writer made with [`PartWriter::keeping`]: its
//! file is named by the object's SHA-1 alone, may already hold parts (opened with
//! [`PartFs::open`], which takes the lock or fails with `WouldBlock`), and is *not* deleted
//! when the writer goes: its range map decides.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One `.part` file being written. Methods take `&self`: pieces are written concurrently
/// at distinct offsets (`pwrite` needs no shared cursor).
pub trait PartFile: Send + Sync {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// Flushes everything to the disk and returns the file's length as the file system
    /// reports it.
    fn sync_and_len(&self) -> std::io::Result<u64>;
    /// Flushes the data written so far to the disk (`fdatasync`).
    fn sync(&self) -> std::io::Result<()> {
        self.sync_and_len().map(|_| ())
    }
}

/// Where `.part` files are created; the real disk, or a failing fake in tests.
pub trait PartFs: Send + Sync {
    /// Creates `path` (which must not exist), 0600, locked.
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>>;
    /// Opens the existing `path` for reading and writing and takes its lock; fails with
    /// `WouldBlock` when a live writer holds it.
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>>;
}

/// The real file system.
pub struct DiskFs;

struct LockedPart(std::fs::File);

impl PartFs for DiskFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // A fresh file nobody else has: the lock is ours.
        file.try_lock().map_err(std::io::Error::other)?;
        Ok(Box::new(LockedPart(file)))
    }

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        lock_or_would_block(&file)?;
        Ok(Box::new(LockedPart(file)))
    }
}

/// Takes `file`'s exclusive lock, or fails with `WouldBlock` if someone holds it.
fn lock_or_would_block(file: &std::fs::File) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
        std::fs::TryLockError::Error(e) => e,
    })
}

impl PartFile for LockedPart {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn sync_and_len(&self) -> std::io::Result<u64> {
        self.0.sync_data()?;
        Ok(self.0.metadata()?.len())
    }

    fn sync(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
}

pub struct PartWriter {
    part: PathBuf,
    file: Arc<dyn PartFile>,
    published: std::sync::atomic::AtomicBool,
    /// The file stays when the writer goes (a resumable download's).
    keep: bool,
}

impl PartWriter {
    /// Creates `part` (which must not exist) on `fs`.
    pub fn create(fs: &dyn PartFs, part: PathBuf) -> std::io::Result<PartWriter> {
        let file: Arc<dyn PartFile> = Arc::from(fs.create(&part)?);
        Ok(PartWriter {
            part,
            file,
            published: false.into(),
            keep: false,
        })
    }

    /// A writer of the open (and locked) `file` at `part` that leaves the file in place
    /// when it goes (a resumable download: its range map decides what becomes of it).
    pub fn keeping(part: PathBuf, file: Arc<dyn PartFile>) -> PartWriter {
        PartWriter {
            part,
            file,
            published: false.into(),
            keep: true,
        }
    }

    /// The open file (shared with a resumable download's range map).
    pub fn file(&self) -> Arc<dyn PartFile> {
        self.file.clone()
    }

    pub fn part(&self) -> &Path {
        &self.part
    }

    /// Writes `buf` at `offset` (blocking: call from a blocking thread).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// Reads `buf.len()` bytes at `offset` (blocking).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Flushes the file to the disk and returns its length there (blocking).
    pub fn finish(&self) -> std::io::Result<u64> {
        self.file.sync_and_len()
    }

    /// Renames the finished file to `dest` (creating its folder, 0700). The file stays open
    /// (and readable by those reading it) and locked until the writer is dropped: a start-up
    /// sweep must never see an unlocked `.part` that is about to become an object.
    pub fn publish(&self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            super::layout::create_private_dir(parent)?;
        }
        std::fs::rename(&self.part, dest)?;
        self.published
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if !self.keep && !self.published.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
pub(crate) mod failing {
    //! A `PartFs` that fails like a full or broken disk, for unit tests.
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A file system that fails with `errno` after `budget` bytes, or on flush.
    pub struct FailingFs {
        pub budget: u64,
        pub errno: i32,
        pub on_flush: bool,
        pub used: Arc<AtomicU64>,
    }

    struct FailingPart {
        inner: LockedPart,
        budget: u64,
        errno: i32,
        on_flush: bool,
        used: Arc<AtomicU64>,
    }

    impl PartFs for FailingFs {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok(self.wrap(file))
        }

        fn open(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?;
            Ok(self.wrap(file))
        }
    }

    impl FailingFs {
        fn wrap(&self, file: std::fs::File) -> Box<dyn PartFile> {
            Box::new(FailingPart {
                inner: LockedPart(file),
                budget: self.budget,
                errno: self.errno,
                on_flush: self.on_flush,
                used: self.used.clone(),
            })
        }
    }

    impl PartFile for FailingPart {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            let used = self.used.fetch_add(buf.len() as u64, Ordering::SeqCst);
            let room = self.budget.saturating_sub(used) as usize;
            if buf.len() > room {
                // A short write, as a full disk does, then the error.
                self.inner.write_all_at(&buf[..room], offset)?;
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            self.inner.write_all_at(buf, offset)
        }

        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            self.inner.read_exact_at(buf, offset)
        }

        fn sync_and_len(&self) -> std::io::Result<u64> {
            if self.on_flush {
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            self.inner.sync_and_len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::failing::FailingFs;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pieces_in_any_order_publish_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let w = PartWriter::create(&DiskFs, part.clone()).unwrap();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut pieces: Vec<(usize, &[u8])> = body
            .chunks(70_000)
            .enumerate()
            .map(|(i, c)| (i * 70_000, c))
            .collect();
        pieces.reverse();
        for (off, piece) in pieces {
            w.write_at(piece, off as u64).unwrap();
        }
        assert_eq!(w.finish().unwrap(), body.len() as u64);
        let mut back = vec![0u8; 10];
        w.read_at(&mut back, 1000).unwrap();
        assert_eq!(back, body[1000..1010]);
        let dest = dir.path().join("ab/object");
        w.publish(&dest).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert!(!part.exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_failed_write_is_reported_and_the_part_removed() {
        for errno in [libc::ENOSPC, libc::EIO] {
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("x.part");
            let fs = FailingFs {
                budget: 1_500_000,
                errno,
                on_flush: false,
                used: Arc::default(),
            };
            let w = PartWriter::create(&fs, part.clone()).unwrap();
            let mut failed = None;
            for (i, chunk) in vec![7u8; 3_000_000].chunks(64 << 10).enumerate() {
                if let Err(e) = w.write_at(chunk, (i * (64 << 10)) as u64) {
                    failed = Some(e);
                    break;
                }
            }
            let e = failed.expect("the disk fills");
            assert_eq!(e.raw_os_error(), Some(errno));
            drop(w);
            assert!(!part.exists(), "the .part is deleted");
        }
    }

    #[test]
    fn a_part_being_written_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let w = PartWriter::create(&DiskFs, part.clone()).unwrap();
        let other = std::fs::File::open(&part).unwrap();
        assert!(other.try_lock().is_err(), "the writer holds the lock");
        drop(w);
        assert!(!part.exists());
    }
}
