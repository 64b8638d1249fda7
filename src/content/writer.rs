//! `PartWriter`: one download's `.part` file, written in pieces at their offsets (parts of a
//! file may arrive out of order), and published as a verified object only when what reached
//! the disk is the listed file.
//!
//! The rule (DESIGN.md §4, "Disk"): every write and every flush is checked, and the SHA-1
//! that decides is computed over **what was written**, not over what the network sent:
//!
//! - each piece is written with `pwrite` (`write_all_at`) on a blocking thread: its
//!   page-aligned middle with `O_DIRECT` (a second file description of the `.part`),
//!   straight to the disk, and its unaligned ends through the page cache. Writing 1 GiB
//!   into the page cache costs 0.7 s of system time on the 2-core test machine when it is
//!   quiet and over 2 s under load (page allocation, buffer heads, the copy, then the
//!   flush: `dd`, 1 MiB writes), with `O_DIRECT` 0.3 s. A file system that refuses direct
//!   I/O gets every byte through the page cache. Only after that write succeeded are its
//!   bytes counted as present, and only present bytes are fed to the SHA-1: the piece at
//!   the hashing frontier right after its write, from its buffer; pieces that arrived
//!   ahead of the frontier (the later parts of a file fetched in parallel) read back from
//!   the file when the frontier reaches them ([`PartWriter::read_back`], see `transfer`),
//!   with `O_DIRECT` too, into a pooled buffer: the disk's bytes, and no copy through the
//!   page cache. Before, such pieces were written and read back through the page cache.
//!   Perf of a cold `cp` of a 241 MiB video (4 MiB parts over 16 connections, so most of
//!   it lands ahead of the frontier): `pwrite` fell from 12% of the daemon's CPU to 5%,
//!   the reads back from about 10% to under 1%, and the zeroing of fresh read buffers
//!   (3-4%) is gone. What a copy tool reads once the file is verified comes from the
//!   cache file (passthrough), so that is the whole gain there; a program that streams the
//!   file *through* the daemon while it downloads (a player) is now served from the disk
//!   rather than from pages the writes left behind, which costs the daemon about what the
//!   read-backs saved (measured on that lone video: the same CPU per GB before and after);
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

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One `.part` file being written. Methods take `&self`: pieces are written concurrently
/// at distinct offsets (`pwrite` needs no shared cursor).
pub trait PartFile: Send + Sync {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// Reads into `buf` at `offset` with `O_DIRECT`, straight from the disk: `buf`, its
    /// length and `offset` are aligned to [`DIRECT_ALIGN`]. The bytes read (fewer at the end
    /// of the file), or `None` where the file takes no direct read (then read buffered).
    fn read_direct_at(&self, _buf: &mut [u8], _offset: u64) -> std::io::Result<Option<usize>> {
        Ok(None)
    }
    /// Flushes everything to the disk and returns the file's length as the file system
    /// reports it.
    fn sync_and_len(&self) -> std::io::Result<u64>;
    /// Flushes the data written so far to the disk (`fdatasync`).
    fn sync(&self) -> std::io::Result<()> {
        self.sync_and_len().map(|_| ())
    }
    /// Allocates the disk blocks of the file's `len` bytes at `offset` now, without changing
    /// its length: `true` when they are allocated, `false` where the file system cannot.
    fn preallocate(&self, _offset: u64, _len: u64) -> std::io::Result<bool> {
        Ok(false)
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

/// The alignment (of file offsets, lengths and memory) that `O_DIRECT` writes keep: the
/// page size, a multiple of every common disk's logical block.
pub const DIRECT_ALIGN: usize = 4096;

/// A `.part` file: `file` (read-write, buffered) holds the lock and takes the reads of
/// programs and the unaligned ends of writes; `direct`, the same file opened again with
/// `O_DIRECT`, takes the aligned middle of each write and the hasher's read-backs when the
/// file system allows it.
struct LockedPart {
    file: std::fs::File,
    direct: Option<std::fs::File>,
    /// Cleared when the file system refuses a direct write (EINVAL): buffered from then on.
    direct_ok: AtomicBool,
    /// The same for direct reads.
    direct_read_ok: AtomicBool,
}

impl LockedPart {
    fn new(file: std::fs::File, direct: bool) -> LockedPart {
        let direct = direct.then(|| reopen_direct(&file)).flatten();
        LockedPart {
            file,
            direct_ok: AtomicBool::new(direct.is_some()),
            direct_read_ok: AtomicBool::new(direct.is_some()),
            direct,
        }
    }

    /// The `O_DIRECT` descriptor, unless the file system refused this use of it (`ok`
    /// cleared).
    fn direct_while(&self, ok: &AtomicBool) -> Option<&std::fs::File> {
        self.direct.as_ref().filter(|_| ok.load(Ordering::Relaxed))
    }

    /// Writes the aligned middle of `buf` with `O_DIRECT` and the rest buffered; `false`
    /// (nothing written) when there is no aligned middle worth it or the memory is not
    /// aligned like the file.
    fn write_direct(&self, buf: &[u8], offset: u64) -> std::io::Result<bool> {
        let Some(direct) = self.direct_while(&self.direct_ok) else {
            return Ok(false);
        };
        let align = DIRECT_ALIGN as u64;
        let end = offset + buf.len() as u64;
        let (s, e) = (offset.next_multiple_of(align), end / align * align);
        if e <= s || e - s < MIN_DIRECT {
            return Ok(false);
        }
        let (a, b) = ((s - offset) as usize, (e - offset) as usize);
        if buf[a..].as_ptr().align_offset(DIRECT_ALIGN) != 0 {
            return Ok(false);
        }
        self.file.write_all_at(&buf[..a], offset)?;
        // What a direct write leaves (a short write off the alignment, a refusal) goes
        // buffered.
        let (done, refused) =
            direct_loop(a, b, |at| direct.write_at(&buf[at..b], offset + at as u64))?;
        if let Some(e) = refused {
            self.direct_ok.store(false, Ordering::Relaxed);
            tracing::debug!(error = %e, "O_DIRECT writes refused; writing through the page cache");
        }
        self.file.write_all_at(&buf[done..], offset + done as u64)?;
        Ok(true)
    }
}

/// Runs the direct read or write `op` (given the position in the buffer) from `from` until
/// `to`, a count of 0, or a count that leaves the position off the alignment (a short read
/// at the end of the file, a short write): the position reached, and the error if the file
/// system refused the request (EINVAL: no direct I/O like this one here).
fn direct_loop(
    from: usize,
    to: usize,
    mut op: impl FnMut(usize) -> std::io::Result<usize>,
) -> std::io::Result<(usize, Option<std::io::Error>)> {
    let mut done = from;
    while done < to {
        match op(done) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if !done.is_multiple_of(DIRECT_ALIGN) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok((done, Some(e))),
            Err(e) => return Err(e),
        }
    }
    Ok((done, None))
}

/// Direct writes shorter than this go buffered (a write of the end of a body).
const MIN_DIRECT: u64 = 64 << 10;

/// The file behind `file` opened again, read-write, with `O_DIRECT` (its own file
/// description, so the buffered one keeps its flags); `None` where that fails (a file
/// system without direct I/O, no /proc).
fn reopen_direct(file: &std::fs::File) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

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
        Ok(Box::new(LockedPart::new(file, true)))
    }

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        lock_or_would_block(&file)?;
        Ok(Box::new(LockedPart::new(file, true)))
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
        if !self.write_direct(buf, offset)? {
            self.file.write_all_at(buf, offset)?;
        }
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn read_direct_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<Option<usize>> {
        let Some(direct) = self.direct_while(&self.direct_read_ok) else {
            return Ok(None);
        };
        let align = DIRECT_ALIGN as u64;
        if !offset.is_multiple_of(align)
            || !buf.len().is_multiple_of(DIRECT_ALIGN)
            || buf.as_ptr().align_offset(DIRECT_ALIGN) != 0
        {
            return Ok(None);
        }
        // Only the end of the file stops a direct read short.
        let len = buf.len();
        let (done, refused) = direct_loop(0, len, |at| {
            direct.read_at(&mut buf[at..], offset + at as u64)
        })?;
        if let Some(e) = refused {
            self.direct_read_ok.store(false, Ordering::Relaxed);
            tracing::debug!(error = %e, "O_DIRECT reads refused; reading through the page cache");
            return Ok(None);
        }
        Ok(Some(done))
    }

    fn sync_and_len(&self) -> std::io::Result<u64> {
        self.file.sync_data()?;
        Ok(self.file.metadata()?.len())
    }

    fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn preallocate(&self, offset: u64, len: u64) -> std::io::Result<bool> {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Ok(false);
        };
        if len == 0 {
            return Ok(false);
        }
        // SAFETY: fallocate on an open descriptor we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(false),
            _ => Err(e),
        }
    }
}

/// A piece of a body being gathered for one write, kept in memory at the same alignment
/// as its place in the file (byte `offset` at an address ≡ `offset` mod
/// [`DIRECT_ALIGN`]), so that the writer can hand its aligned middle to `O_DIRECT` without
/// another copy. Reused from piece to piece (no allocation per piece).
pub struct PieceBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Default for PieceBuf {
    /// An empty buffer holding no memory (it allocates when given bytes).
    fn default() -> PieceBuf {
        PieceBuf {
            raw: Vec::new(),
            start: 0,
            len: 0,
        }
    }
}

impl PieceBuf {
    /// A buffer for pieces of about `cap` bytes (it grows if given more).
    pub fn new(cap: usize) -> PieceBuf {
        PieceBuf {
            raw: vec![0; Self::new_capacity(cap)],
            start: 0,
            len: 0,
        }
    }

    /// The memory [`PieceBuf::new`] allocates for pieces of `cap` bytes (room to align).
    pub fn new_capacity(cap: usize) -> usize {
        cap + 2 * DIRECT_ALIGN
    }

    /// Where the first [`DIRECT_ALIGN`]-aligned byte of `raw` is.
    fn aligned_base(raw: &[u8]) -> usize {
        let base = raw.as_ptr().align_offset(DIRECT_ALIGN);
        if base < DIRECT_ALIGN {
            base
        } else {
            0
        }
    }

    /// Empties the buffer for bytes that go at `offset` of the file.
    pub fn reset(&mut self, offset: u64) {
        self.start = Self::aligned_base(&self.raw) + (offset % DIRECT_ALIGN as u64) as usize;
        self.len = 0;
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let need = self.start + self.len + bytes.len();
        if need > self.raw.len() {
            // A new allocation has its own alignment: move the bytes to match it.
            let mut raw = vec![0; need + need / 2 + 2 * DIRECT_ALIGN];
            let base = Self::aligned_base(&raw);
            let phase = (self.raw.as_ptr() as usize).wrapping_add(self.start) % DIRECT_ALIGN;
            let start = base + phase;
            raw[start..start + self.len].copy_from_slice(self.as_slice());
            self.raw = raw;
            self.start = start;
        }
        let at = self.start + self.len;
        self.raw[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Keeps only the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn as_slice(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes of its memory starting on a [`DIRECT_ALIGN`] boundary, for a direct
    /// read (the buffer is emptied; it grows if it must).
    pub fn aligned_mut(&mut self, len: usize) -> &mut [u8] {
        if self.raw.len() < len + DIRECT_ALIGN {
            self.raw = vec![0; Self::new_capacity(len)];
        }
        self.len = 0;
        let base = Self::aligned_base(&self.raw);
        &mut self.raw[base..base + len]
    }

    /// The first `len` bytes of the memory [`PieceBuf::aligned_mut`] handed out.
    fn aligned(&self, len: usize) -> &[u8] {
        let base = Self::aligned_base(&self.raw);
        self.raw.get(base..base + len).unwrap_or_default()
    }

    /// `len` bytes of its memory filled by `read`.
    pub fn fill(
        &mut self,
        len: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<&[u8]> {
        let region = self.aligned_mut(len);
        read(region)?;
        Ok(region)
    }

    /// The memory it holds (0 for a default one).
    pub fn capacity(&self) -> usize {
        self.raw.len()
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

    /// The `len` bytes at `offset` as they are on the disk, for the hasher (blocking): read
    /// with `O_DIRECT` into `scratch` (the aligned pages around them), so they are neither
    /// copied through the page cache nor left in it; buffered where direct reads are not
    /// possible. `scratch` grows to `len` + 8 KiB if it must.
    pub fn read_back<'a>(
        &self,
        offset: u64,
        len: usize,
        scratch: &'a mut PieceBuf,
    ) -> std::io::Result<&'a [u8]> {
        let align = DIRECT_ALIGN as u64;
        let from = offset - offset % align;
        let end = offset + len as u64;
        let span = (end.next_multiple_of(align) - from) as usize;
        let skip = (offset - from) as usize;
        let direct = self.file.read_direct_at(scratch.aligned_mut(span), from)?;
        match direct {
            Some(got) if got >= skip + len => Ok(&scratch.aligned(span)[skip..skip + len]),
            // No direct read here, or the file is shorter than asked: the buffered read says
            // what is wrong.
            _ => scratch.fill(len, |region| self.file.read_exact_at(region, offset)),
        }
    }

    /// Allocates the blocks of `range` of the file on the disk at once (blocking), so that
    /// pieces written in any order by parallel jobs land in one contiguous run of blocks
    /// instead of in the order they arrived (a fragmented file reads back slower), and the
    /// free space they need is taken now. `true` when done; `false` where the file system
    /// cannot, or the disk has no room for it yet (the writes then find out, as before).
    pub fn preallocate(&self, range: std::ops::Range<u64>) -> bool {
        let len = range.end.saturating_sub(range.start);
        match self.file.preallocate(range.start, len) {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(part = %self.part.display(), error = %e, "cannot allocate a download's blocks up front");
                false
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` (blocking).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Flushes the file to the disk and returns its length there (blocking).
    pub fn finish(&self) -> std::io::Result<u64> {
        self.file.sync_and_len()
    }

    /// Renames the finished file to `dest` (creating its folder, 0700, if it is missing:
    /// the cache makes them all when it opens). The file stays open (and readable by those
    /// reading it) and locked until the writer is dropped: a start-up sweep must never see
    /// an unlocked `.part` that is about to become an object.
    pub fn publish(&self, dest: &Path) -> std::io::Result<()> {
        match std::fs::rename(&self.part, dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.part.exists() => {
                if let Some(parent) = dest.parent() {
                    super::layout::create_private_dir(parent)?;
                }
                std::fs::rename(&self.part, dest)?;
            }
            other => other?,
        }
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

    /// A new file at `path`, read-write (as `DiskFs` makes it, without the mode).
    fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    impl PartFs for FailingFs {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
            Ok(self.wrap(create_new(path)?))
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
                inner: LockedPart::new(file, false),
                budget: self.budget,
                errno: self.errno,
                on_flush: self.on_flush,
                used: self.used.clone(),
            })
        }
    }

    /// A file system that notes every piece written (offset, length), on the real disk.
    #[derive(Default)]
    pub struct RecordingFs {
        pub writes: Arc<std::sync::Mutex<Vec<(u64, usize)>>>,
    }

    struct RecordingPart {
        inner: LockedPart,
        writes: Arc<std::sync::Mutex<Vec<(u64, usize)>>>,
    }

    impl PartFs for RecordingFs {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
            let file = create_new(path)?;
            file.try_lock().map_err(std::io::Error::other)?;
            Ok(Box::new(RecordingPart {
                inner: LockedPart::new(file, true),
                writes: self.writes.clone(),
            }))
        }

        fn open(&self, path: &Path) -> std::io::Result<Box<dyn PartFile>> {
            DiskFs.open(path)
        }
    }

    impl PartFile for RecordingPart {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            if let Ok(mut w) = self.writes.lock() {
                w.push((offset, buf.len()));
            }
            self.inner.write_all_at(buf, offset)
        }

        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            self.inner.read_exact_at(buf, offset)
        }

        fn sync_and_len(&self) -> std::io::Result<u64> {
            self.inner.sync_and_len()
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
    fn a_piece_lies_in_memory_aligned_like_its_place_in_the_file() {
        let body: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let mut buf = PieceBuf::new(100_000);
        for offset in [0u64, 4096, 1000, 8191, 12_345_678] {
            buf.reset(offset);
            // Grows past its first size: the bytes move, the alignment holds.
            for c in body.chunks(30_000) {
                buf.extend_from_slice(c);
                let addr = buf.as_slice().as_ptr() as usize;
                assert_eq!(addr % DIRECT_ALIGN, (offset % DIRECT_ALIGN as u64) as usize);
            }
            assert!(buf.as_slice() == &body[..]);
            assert_eq!(buf.len(), body.len());
        }
        let mut empty = PieceBuf::default();
        assert_eq!(empty.capacity(), 0);
        empty.reset(5);
        empty.extend_from_slice(&body[..10]);
        assert_eq!(empty.as_slice(), &body[..10]);
    }

    /// Pieces at aligned and unaligned offsets, some read back soon: the aligned middles go
    /// with O_DIRECT (where the file system takes it), the rest through the page cache, and
    /// every byte lands where it belongs.
    #[test]
    fn direct_and_cached_writes_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let w = PartWriter::create(&DiskFs, part.clone()).unwrap();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        // Out of order, of odd sizes, one short of a page.
        let pieces = [
            (1_000_000, 1_500_000),
            (0, 262_144),
            (262_144, 300_001),
            (300_001, 1_000_000),
            (2_500_000, 3_000_000),
            (1_500_000, 1_504_095),
            (1_504_095, 2_500_000),
        ];
        let mut buf = PieceBuf::new(1 << 20);
        for (a, b) in pieces {
            buf.reset(a as u64);
            buf.extend_from_slice(&body[a..b]);
            w.write_at(buf.as_slice(), a as u64).unwrap();
        }
        // From memory not aligned like the file: written all the same.
        let unaligned = body[10..70_000].to_vec();
        w.write_at(&unaligned, 10).unwrap();
        assert_eq!(w.finish().unwrap(), body.len() as u64);
        let mut back = vec![0u8; body.len()];
        w.read_at(&mut back, 0).unwrap();
        assert!(back == body);
        w.publish(&dir.path().join("obj")).unwrap();
        drop(w);
        assert!(std::fs::read(dir.path().join("obj")).unwrap() == body);
    }

    #[test]
    fn read_back_gives_the_bytes_on_disk_at_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let w = PartWriter::create(&DiskFs, dir.path().join("x.part")).unwrap();
        let body: Vec<u8> = (0..2_000_003u32).map(|i| (i % 253) as u8).collect();
        // Half direct (aligned middles), half buffered (unaligned ends, dirty in the page
        // cache): a direct read-back must see both.
        let mut buf = PieceBuf::new(1 << 20);
        for (a, b) in [(0usize, 1_000_001usize), (1_000_001, 2_000_003)] {
            buf.reset(a as u64);
            buf.extend_from_slice(&body[a..b]);
            w.write_at(buf.as_slice(), a as u64).unwrap();
        }
        let mut scratch = PieceBuf::default();
        for (at, len) in [
            (0u64, 4096usize),
            (1, 1 << 20),
            (4095, 3),
            (999_999, 70_000),
            (1_995_000, 5_003),
            (2_000_002, 1),
        ] {
            let got = w.read_back(at, len, &mut scratch).unwrap();
            assert!(got == &body[at as usize..at as usize + len], "{at}+{len}");
        }
        // Past the end: an error, not short bytes.
        assert!(w.read_back(2_000_000, 4096, &mut scratch).is_err());
    }

    #[test]
    fn preallocated_blocks_leave_the_length_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let w = PartWriter::create(&DiskFs, part.clone()).unwrap();
        let len = 3 << 20;
        assert!(
            w.preallocate(0..len),
            "ext4, xfs, btrfs and tmpfs all allocate up front"
        );
        let meta = std::fs::metadata(&part).unwrap();
        assert_eq!(meta.len(), 0, "the length still says what was written");
        assert!(meta.blocks() * 512 >= len, "{} blocks", meta.blocks());
        // Pieces written out of order land inside the allocation and read back right.
        let body: Vec<u8> = (0..len as usize).map(|i| (i * 7 % 251) as u8).collect();
        let half = body.len() / 2;
        w.write_at(&body[half..], half as u64).unwrap();
        w.write_at(&body[..half], 0).unwrap();
        assert_eq!(w.finish().unwrap(), len);
        assert_eq!(std::fs::read(&part).unwrap(), body);
        assert!(!w.preallocate(len..len), "nothing to allocate");
        // A range further on (a part of a resumable download) is allocated the same way.
        assert!(w.preallocate(len + (1 << 20)..len + (2 << 20)));
        assert_eq!(std::fs::metadata(&part).unwrap().len(), len);
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
