//! `ObjectWriter`: writes one download into a `.part` file and publishes it as a verified
//! object only when what reached the disk is the listed file.
//!
//! The rule (DESIGN.md §4, "Disk"): every write and every flush is checked, and the SHA-1
//! that decides is computed over **what was written**, not over what the network sent:
//!
//! - bytes are gathered into 1 MiB buffers; each buffer is written with `write_all` on a
//!   blocking thread and only *after* that write succeeded is it fed to the SHA-1;
//! - [`ObjectWriter::finish`] then writes the last buffer, `fsync`s the data, and reads the
//!   file's length back from the file system (`fstat`): a file system that accepted fewer
//!   bytes than it was given, or lost them on the way to the disk, shows up there;
//! - only then may [`ObjectWriter::publish`] rename the file into `objects/`; any error on
//!   the way leaves the `.part` to be deleted when the writer is dropped.
//!
//! A write, flush or rename that fails is an [`std::io::Error`] for the caller, which treats
//! it as a cache miss (the read is served without caching), never as a short file.
//!
//! Files are created 0600, whatever the umask, and hold an exclusive `flock` for as long as
//! the writer lives: at start, a `.part` that can be locked belongs to no live writer (its
//! daemon is gone) and is deleted, while one being written by another mount sharing the
//! cache is left alone. The file system is behind [`PartFs`] so that unit tests can make it
//! fail (ENOSPC, EIO) on write or on flush.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use super::space::Reservation;
use crate::model::Sha1Digest;

/// Bytes gathered before one blocking write (and one hand-off to a blocking thread).
const BUFFER: usize = 1 << 20;

/// One `.part` file being written.
pub trait PartFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Flushes everything to the disk and returns the file's length as the file system
    /// reports it.
    fn sync_and_len(&mut self) -> std::io::Result<u64>;
}

/// Where `.part` files are created; the real disk, or a failing fake in tests.
pub trait PartFs: Send + Sync {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>>;
}

/// The real file system.
pub struct DiskFs;

struct LockedPart(std::fs::File);

impl PartFs for DiskFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // A fresh file nobody else has: the lock is ours.
        file.try_lock().map_err(std::io::Error::other)?;
        Ok(Box::new(LockedPart(file)))
    }
}

impl PartFile for LockedPart {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_and_len(&mut self) -> std::io::Result<u64> {
        self.0.flush()?;
        self.0.sync_data()?;
        Ok(self.0.metadata()?.len())
    }
}

/// What was written, once flushed: its SHA-1 and the length on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub sha1: Sha1Digest,
    pub len_on_disk: u64,
    /// Bytes handed to successful writes.
    pub written: u64,
}

pub struct ObjectWriter {
    part: PathBuf,
    /// `None` only while a blocking write has it.
    file: Option<Box<dyn PartFile>>,
    hasher: Sha1,
    buf: Vec<u8>,
    written: u64,
    reservation: Option<Reservation>,
    published: bool,
}

impl ObjectWriter {
    /// Creates `part` (which must not exist) on `fs`.
    pub fn create(
        fs: &dyn PartFs,
        part: PathBuf,
        reservation: Option<Reservation>,
    ) -> std::io::Result<ObjectWriter> {
        let file = fs.create(&part)?;
        Ok(ObjectWriter {
            part,
            file: Some(file),
            hasher: Sha1::new(),
            buf: Vec::with_capacity(BUFFER),
            written: 0,
            reservation,
            published: false,
        })
    }

    pub fn part(&self) -> &Path {
        &self.part
    }

    /// Queues `bytes`; writes a buffer to the file when it is full.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUFFER {
            self.drain().await?;
        }
        Ok(())
    }

    /// Writes the buffer on a blocking thread; hashes it only once it was written.
    async fn drain(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the cache file was lost by an earlier error"))?;
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BUFFER));
        let hasher = std::mem::replace(&mut self.hasher, Sha1::new());
        let (file, hasher, result, buf) = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let result = file.write_all(&buf);
            if result.is_ok() {
                hasher.update(&buf);
            }
            (file, hasher, result, buf)
        })
        .await
        .map_err(|e| std::io::Error::other(format!("the cache writer thread failed: {e}")))?;
        self.file = Some(file);
        self.hasher = hasher;
        result?;
        self.written += buf.len() as u64;
        if let Some(r) = &mut self.reservation {
            r.consume(buf.len() as u64);
        }
        // Reuse the allocation for the next buffer.
        self.buf = buf;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is left, flushes it to the disk, and reports what the disk holds.
    pub async fn finish(&mut self) -> std::io::Result<Written> {
        self.drain().await?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the cache file was lost by an earlier error"))?;
        let (file, len) = tokio::task::spawn_blocking(move || {
            let len = file.sync_and_len();
            (file, len)
        })
        .await
        .map_err(|e| std::io::Error::other(format!("the cache writer thread failed: {e}")))?;
        self.file = Some(file);
        let len_on_disk = len?;
        Ok(Written {
            sha1: Sha1Digest(self.hasher.clone().finalize().into()),
            len_on_disk,
            written: self.written,
        })
    }

    /// Renames the finished file to `dest` (creating its folder, 0700).
    pub async fn publish(mut self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            super::layout::create_private_dir(parent)?;
        }
        // Close the file (and its lock) only after the rename: a start-up sweep must never
        // see an unlocked `.part` that is about to become an object.
        tokio::fs::rename(&self.part, dest).await?;
        self.published = true;
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if !self.published {
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
            let file = std::fs::File::create(path)?;
            Ok(Box::new(FailingPart {
                inner: LockedPart(file),
                budget: self.budget,
                errno: self.errno,
                on_flush: self.on_flush,
                used: self.used.clone(),
            }))
        }
    }

    impl PartFile for FailingPart {
        fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            let used = self.used.load(Ordering::SeqCst);
            let room = self.budget.saturating_sub(used) as usize;
            if buf.len() > room {
                // A short write, as a full disk does, then the error.
                self.inner.write_all(&buf[..room])?;
                self.used.fetch_add(room as u64, Ordering::SeqCst);
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            self.used.fetch_add(buf.len() as u64, Ordering::SeqCst);
            self.inner.write_all(buf)
        }

        fn sync_and_len(&mut self) -> std::io::Result<u64> {
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

    #[tokio::test]
    async fn what_is_hashed_is_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let mut w = ObjectWriter::create(&DiskFs, part.clone(), None).unwrap();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in body.chunks(70_000) {
            w.write(chunk).await.unwrap();
        }
        let got = w.finish().await.unwrap();
        assert_eq!(got.len_on_disk, body.len() as u64);
        assert_eq!(got.written, body.len() as u64);
        assert_eq!(got.sha1, Sha1Digest(Sha1::digest(&body).into()));
        let dest = dir.path().join("ab/object");
        w.publish(&dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert!(!part.exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_and_the_part_removed() {
        for errno in [libc::ENOSPC, libc::EIO] {
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("x.part");
            let fs = FailingFs {
                budget: 1_500_000,
                errno,
                on_flush: false,
                used: Arc::default(),
            };
            let mut w = ObjectWriter::create(&fs, part.clone(), None).unwrap();
            let mut failed = None;
            for chunk in vec![7u8; 3_000_000].chunks(64 << 10) {
                if let Err(e) = w.write(chunk).await {
                    failed = Some(e);
                    break;
                }
            }
            let e = match failed {
                Some(e) => e,
                None => w.finish().await.unwrap_err(),
            };
            assert_eq!(e.raw_os_error(), Some(errno));
            drop(w);
            assert!(!part.exists(), "the .part is deleted");
        }
    }

    #[test]
    fn a_part_being_written_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let w = ObjectWriter::create(&DiskFs, part.clone(), None).unwrap();
        let other = std::fs::File::open(&part).unwrap();
        assert!(other.try_lock().is_err(), "the writer holds the lock");
        drop(w);
        assert!(!part.exists());
    }
}
