//! `Transfer`: one item's download in progress, shared by every handle reading it and by
//! the prefetcher, with its bookkeeping:
//!
//! - **store**: where the bytes go: a `.part` file ([`super::writer::PartWriter`]), with a
//!   range map when the download is resumable ([`super::resume`]: each part, once whole, is
//!   synced and recorded), or, when the cache disk has no room or fails, memory (bounded by
//!   the memory budget);
//! - **present**: the bytes written (a [`RangeSet`]); a read waits until its bytes are in;
//! - **requested**: the bytes some job is fetching; a read asks for what is missing;
//! - **hashing**: the SHA-1 runs over the present bytes from offset 0 as the contiguous run
//!   from 0 grows, reading back from the store what arrived out of order, so the digest is
//!   over what was written; a resumed download starts with the bytes found on disk present
//!   and the SHA-1 already over those before the first hole;
//! - **served**: the bytes handed to the kernel (for any inode showing this item). The read
//!   that would complete the set — every byte of the file handed out — waits until the file
//!   matched its SHA-1 (the integrity promise, DESIGN.md §1);
//! - **generation**: a mismatch (or a store that fails) starts the download again as a new
//!   generation with a fresh store. What was served from earlier generations is remembered
//!   as (range, SHA-1) pairs and compared with the generation that matches: if it differs,
//!   every handle opened before is *poisoned* (its reads fail with EIO), since its process
//!   may hold a wrong byte; if it is the same, nobody is hurt.
//!
//! The state is behind one mutex, never held across an await or a blocking call; the
//! hasher is behind its own (hashing runs on blocking threads). Readers wait on a
//! `watch` channel bumped at every change.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use sha1::{Digest, Sha1};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::AbortHandle;

use super::pool::PiecePool;
use super::rangeset::RangeSet;
use super::resume::{Journal, OnDisk};
use super::sched::Urgency;
use super::space::Reservation;
use super::writer::{PartWriter, PieceBuf};
use super::ContentError;
use crate::cloud::Resolved;
use crate::model::{Item, Sha1Digest};

/// Bytes read back at a time when hashing or comparing.
const READ_BACK: usize = 1 << 20;

/// Where a transfer's bytes are kept.
pub(crate) enum Store {
    Disk {
        writer: PartWriter,
        /// Free space held on the disk for the bytes still to come.
        room: Mutex<Option<Reservation>>,
        /// The share of `--max-cache-size` held until the object is admitted.
        cap: CapHold,
        /// The range map of a resumable download (boxed: most downloads have none).
        journal: Option<Box<Journal>>,
    },
    Memory {
        buf: RwLock<Box<[u8]>>,
        _budget: OwnedSemaphorePermit,
    },
}

/// A reservation under the cache's cap, released when dropped unless it became an object.
pub(crate) struct CapHold {
    pub index: Arc<super::index::CacheIndex>,
    pub size: u64,
    pub released: AtomicBool,
}

impl CapHold {
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            self.index.unreserve(self.size);
        }
    }
}

impl Drop for CapHold {
    fn drop(&mut self) {
        self.release();
    }
}

impl Store {
    /// Writes `buf` at `offset` (blocking).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        match self {
            Store::Disk {
                writer,
                room,
                journal,
                ..
            } => {
                if let Some(part) = journal.as_ref().and_then(|j| j.starts_part(offset)) {
                    writer.preallocate(part);
                }
                writer.write_at(buf, offset)?;
                if let Some(j) = journal {
                    j.wrote(offset, buf);
                }
                if let Ok(mut r) = room.lock() {
                    if let Some(r) = r.as_mut() {
                        r.consume(buf.len() as u64);
                    }
                }
                Ok(())
            }
            Store::Memory { buf: mem, .. } => {
                let mut mem = mem
                    .write()
                    .map_err(|_| std::io::Error::other("a memory buffer lock was poisoned"))?;
                let start = usize::try_from(offset).map_err(std::io::Error::other)?;
                let end = start
                    .checked_add(buf.len())
                    .filter(|e| *e <= mem.len())
                    .ok_or_else(|| std::io::Error::other("a write past the end of the file"))?;
                mem[start..end].copy_from_slice(buf);
                Ok(())
            }
        }
    }

    /// The `len` bytes at `offset`, for the hasher (blocking): from the disk itself when it
    /// can ([`PartWriter::read_back`]), in `scratch`.
    pub fn read_back<'a>(
        &self,
        offset: u64,
        len: usize,
        scratch: &'a mut PieceBuf,
    ) -> std::io::Result<&'a [u8]> {
        match self {
            Store::Disk { writer, .. } => writer.read_back(offset, len, scratch),
            Store::Memory { .. } => scratch.fill(len, |region| self.read_at(region, offset)),
        }
    }

    /// Reads `buf.len()` bytes at `offset` (blocking).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Store::Disk { writer, .. } => writer.read_at(buf, offset),
            Store::Memory { buf: mem, .. } => {
                let mem = mem
                    .read()
                    .map_err(|_| std::io::Error::other("a memory buffer lock was poisoned"))?;
                let start = usize::try_from(offset).map_err(std::io::Error::other)?;
                let end = start
                    .checked_add(buf.len())
                    .filter(|e| *e <= mem.len())
                    .ok_or_else(|| std::io::Error::other("a read past the end of the file"))?;
                buf.copy_from_slice(&mem[start..end]);
                Ok(())
            }
        }
    }

    pub fn is_disk(&self) -> bool {
        matches!(self, Store::Disk { .. })
    }

    /// The range map, for a resumable download.
    pub fn journal(&self) -> Option<&Journal> {
        match self {
            Store::Disk { journal, .. } => journal.as_deref(),
            Store::Memory { .. } => None,
        }
    }

    /// Deletes a resumable download's files: they must not be resumed (`why`).
    pub fn discard(&self, why: &str) {
        if let Some(j) = self.journal() {
            j.discard(why);
        }
    }

    /// SHA-1 of the bytes `r` (blocking).
    pub fn digest(&self, r: &Range<u64>) -> std::io::Result<Sha1Digest> {
        let mut h = Sha1::new();
        let mut buf = vec![0u8; READ_BACK];
        let mut at = r.start;
        while at < r.end {
            let n = ((r.end - at) as usize).min(READ_BACK);
            self.read_at(&mut buf[..n], at)?;
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(Sha1Digest(h.finalize().into()))
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Phase {
    Fetching,
    /// Verified (and published, for a disk store).
    Done,
    Failed(ContentError),
}

/// A job fetching some bytes of the transfer.
pub(crate) struct JobInfo {
    pub id: u64,
    pub range: Range<u64>,
    pub urgency: Arc<Urgency>,
    pub abort: AbortHandle,
}

pub(crate) struct State {
    pub gen: u64,
    pub store: Arc<Store>,
    pub present: RangeSet,
    pub requested: RangeSet,
    pub served: RangeSet,
    /// What this generation served (a subset of `served`, which spans generations).
    pub served_now: RangeSet,
    /// Bytes a second body agreed with (served before the whole file is verified), asked
    /// to be confirmed, and found to differ.
    pub confirmed: RangeSet,
    pub confirm_requested: RangeSet,
    pub confirm_failed: RangeSet,
    /// A new generation is being prepared from this one.
    pub switching: Option<u64>,
    /// Digests of what earlier generations served, to compare with the one that matches.
    pub carried: Vec<(Range<u64>, Option<Sha1Digest>)>,
    /// Handles opened in a generation up to this one fail (they may hold a wrong byte).
    pub poisoned_upto: Option<u64>,
    pub phase: Phase,
    pub mismatches: u32,
    pub last_error: Option<ContentError>,
    /// When a byte last arrived (or the transfer started).
    pub last_progress: Instant,
    /// When a read last gave up for want of bytes (cleared by progress): the kernel retries
    /// a failed readahead page at once, and that read fails at once too.
    pub timed_out: Option<Instant>,
    pub jobs: Vec<JobInfo>,
    pub next_job: u64,
    /// A job streams the whole file (the server ignores Range).
    pub whole_job: bool,
    /// The prefetcher wants every byte, at this rank.
    pub wanted_whole: Option<u64>,
    /// Some handle was opened and streamed bytes: the kernel may cache pages of this item.
    pub streamed: bool,
}

pub(crate) struct HashState {
    pub gen: u64,
    pub hasher: Sha1,
    pub hashed_to: u64,
    pub finished: bool,
}

pub(crate) struct Transfer {
    pub item: Item,
    pub state: Mutex<State>,
    pub hash: Mutex<HashState>,
    /// Set when present bytes wait to be hashed.
    pub hash_dirty: AtomicBool,
    pub progress: watch::Sender<u64>,
    pub interest: AtomicUsize,
    /// The download URL, reused by every job until it is refused or old.
    pub resolved: tokio::sync::Mutex<Option<Resolved>>,
    /// Where the hasher's read-back buffer comes from (the jobs' piece buffers).
    pieces: Arc<PiecePool>,
}

impl Transfer {
    /// A transfer writing to `store`, which may already hold bytes (`on_disk`, a resume).
    pub fn new(
        item: Item,
        store: Store,
        on_disk: Option<OnDisk>,
        pieces: Arc<PiecePool>,
    ) -> Transfer {
        let on_disk = on_disk.unwrap_or_else(|| OnDisk {
            present: RangeSet::new(),
            hasher: Sha1::new(),
            hashed_to: 0,
        });
        Transfer {
            state: Mutex::new(State {
                gen: 1,
                store: Arc::new(store),
                present: on_disk.present,
                requested: RangeSet::new(),
                served: RangeSet::new(),
                served_now: RangeSet::new(),
                confirmed: RangeSet::new(),
                confirm_requested: RangeSet::new(),
                confirm_failed: RangeSet::new(),
                switching: None,
                carried: Vec::new(),
                poisoned_upto: None,
                phase: Phase::Fetching,
                mismatches: 0,
                last_error: None,
                last_progress: Instant::now(),
                timed_out: None,
                jobs: Vec::new(),
                next_job: 0,
                whole_job: false,
                wanted_whole: None,
                streamed: false,
            }),
            hash: Mutex::new(HashState {
                gen: 1,
                hasher: on_disk.hasher,
                hashed_to: on_disk.hashed_to,
                finished: on_disk.hashed_to >= item.size,
            }),
            hash_dirty: AtomicBool::new(false),
            progress: watch::Sender::new(0),
            interest: AtomicUsize::new(0),
            resolved: tokio::sync::Mutex::new(None),
            pieces,
            item,
        }
    }

    pub fn size(&self) -> u64 {
        self.item.size
    }

    /// Wakes every reader waiting on this transfer.
    pub fn bump(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, ContentError> {
        self.state
            .lock()
            .map_err(|_| ContentError::Internal("a transfer's lock was poisoned".into()))
    }

    /// Writes one piece that arrived at `offset` (blocking; call from a blocking thread).
    /// Bytes already present are not written again. Returns whether this write let the
    /// SHA-1 reach the end of the file (the caller then verifies), or `None` when the
    /// piece belongs to a generation that is gone.
    pub fn put(&self, gen: u64, offset: u64, bytes: &[u8]) -> Result<Option<bool>, std::io::Error> {
        let end = offset + bytes.len() as u64;
        let (store, gaps) = {
            let st = self
                .state
                .lock()
                .map_err(|_| std::io::Error::other("a transfer's lock was poisoned"))?;
            if st.gen != gen || !matches!(st.phase, Phase::Fetching) {
                return Ok(None);
            }
            (st.store.clone(), st.present.gaps(offset..end))
        };
        for g in &gaps {
            let a = (g.start - offset) as usize;
            let b = (g.end - offset) as usize;
            // Bytes past the run from 0 are hashed later, read back from the disk.
            store.write_at(&bytes[a..b], g.start)?;
        }
        let whole_parts = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| std::io::Error::other("a transfer's lock was poisoned"))?;
            if st.gen != gen {
                return Ok(None);
            }
            for g in &gaps {
                st.present.insert(g.clone());
            }
            st.last_progress = Instant::now();
            st.timed_out = None;
            store
                .journal()
                .map(|j| j.completed(&st.present, &gaps))
                .unwrap_or_default()
        };
        self.bump();
        if let Some(j) = store.journal() {
            // Parts made whole by this write: synced, then recorded for a resume.
            j.record(&whole_parts)?;
        }
        self.advance_hash(
            gen,
            Some(Written {
                offset,
                bytes,
                gaps: &gaps,
            }),
        )
    }

    /// Hashes the present bytes from the hashing frontier on: the bytes the caller just
    /// wrote (`own`) from its buffer, others read back from the store. Only one thread
    /// hashes at a time; the others leave a mark that the one hashing picks up.
    pub fn advance_hash(
        &self,
        gen: u64,
        own: Option<Written<'_>>,
    ) -> Result<Option<bool>, std::io::Error> {
        self.hash_dirty.store(true, Ordering::SeqCst);
        let mut finished_now = false;
        loop {
            let Ok(mut h) = self.hash.try_lock() else {
                return Ok(Some(finished_now));
            };
            while self.hash_dirty.swap(false, Ordering::SeqCst) {
                if h.gen != gen || h.finished {
                    return Ok(Some(finished_now));
                }
                let (store, frontier) = {
                    let st = self
                        .state
                        .lock()
                        .map_err(|_| std::io::Error::other("a transfer's lock was poisoned"))?;
                    if st.gen != gen {
                        return Ok(None);
                    }
                    (st.store.clone(), st.present.run_end(h.hashed_to))
                };
                let mut scratch = None;
                while h.hashed_to < frontier {
                    let at = h.hashed_to;
                    if let Some(w) = &own {
                        if let Some(g) = w.gaps.iter().find(|g| g.start <= at && at < g.end) {
                            // Written by the caller just now: hashed from its buffer.
                            let end = g.end.min(frontier);
                            let from = (at - w.offset) as usize;
                            let to = (end - w.offset) as usize;
                            h.hasher.update(&w.bytes[from..to]);
                            h.hashed_to = end;
                            continue;
                        }
                    }
                    let next_own = own
                        .as_ref()
                        .and_then(|w| w.gaps.iter().map(|g| g.start).filter(|&s| s > at).min())
                        .unwrap_or(frontier)
                        .min(frontier);
                    let n = ((next_own - at) as usize).min(READ_BACK);
                    let buf = scratch.get_or_insert_with(|| self.pieces.lease());
                    h.hasher.update(store.read_back(at, n, buf)?);
                    h.hashed_to += n as u64;
                }
                if h.hashed_to >= self.item.size {
                    h.finished = true;
                    finished_now = true;
                }
            }
            drop(h);
            if !self.hash_dirty.load(Ordering::SeqCst) {
                return Ok(Some(finished_now));
            }
        }
    }

    /// The SHA-1 of the whole file, once hashing reached the end of `gen`.
    pub fn digest(&self, gen: u64) -> Option<Sha1Digest> {
        let h = self.hash.lock().ok()?;
        (h.gen == gen && h.finished).then(|| Sha1Digest(h.hasher.clone().finalize().into()))
    }

    /// Hashing starts from zero for generation `gen`. Call without the state lock held
    /// (the hasher takes its lock first, then the state's).
    pub fn reset_hash(&self, gen: u64) {
        if let Ok(mut h) = self.hash.lock() {
            *h = HashState {
                gen,
                hasher: Sha1::new(),
                hashed_to: 0,
                finished: false,
            };
        }
    }
}

/// Bytes a writer just put in the store: hashed from its buffer, not read back.
pub(crate) struct Written<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
    /// The parts of `offset..offset + bytes.len()` it wrote (others were there already).
    pub gaps: &'a [Range<u64>],
}

/// A handle's view of its reads: the sequential run it is in (if any) and how far ahead
/// of its reads the transfer fetches.
///
/// The read-ahead is twice what the run has read so far, from [`WINDOW_START`] up to
/// [`WINDOW_MAX`]: it grows with the bytes a reader really consumes, not with the number of
/// kernel requests (a single 1 MiB `pread` may arrive as several requests), so one random
/// read costs its own bytes plus about twice that, and a thumbnailer's 64 KiB read costs
/// [`WINDOW_START`] ahead.
#[derive(Debug, Default)]
pub(crate) struct Window {
    pub run_start: u64,
    pub next: u64,
    pub ahead: u64,
    pub reads: u64,
}

/// First read-ahead on a sequential pattern, and its ceiling.
pub const WINDOW_START: u64 = 1 << 20;
pub const WINDOW_MAX: u64 = 64 << 20;
/// How far a read may land from where the run has got to and still count as sequential:
/// the kernel's readahead sends several requests at once and they may arrive reordered.
pub const SEQUENTIAL_SLACK: u64 = 8 << 20;

impl Window {
    /// Notes a read of `range` and returns the bytes to fetch ahead of it (maybe empty).
    pub fn note(&mut self, range: &Range<u64>, size: u64) -> Range<u64> {
        // A first read is not a pattern yet (a thumbnailer reads 64 KiB and closes); the
        // second one, where the first ended, is.
        let sequential = self.reads > 0
            && range.start + SEQUENTIAL_SLACK >= self.next
            && range.start <= self.next + SEQUENTIAL_SLACK;
        self.reads += 1;
        if sequential {
            self.next = self.next.max(range.end);
            let run = self.next - self.run_start;
            self.ahead = (2 * run).clamp(WINDOW_START, WINDOW_MAX);
        } else {
            self.run_start = range.start;
            self.next = range.end;
            self.ahead = 0;
        }
        range.end.min(size)..(range.end + self.ahead).min(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_with_the_run_and_closes_on_a_jump() {
        let mut w = Window::default();
        let size = 1 << 30;
        let mb = 1 << 20;
        // A first read is no pattern; the next one where it ended is.
        assert!(w.note(&(0..mb), size).is_empty());
        assert_eq!(w.note(&(mb..4 * mb), size), 4 * mb..4 * mb + 8 * mb);
        // Readahead reordering: a read a little behind still counts, and changes nothing.
        let r = w.note(&(mb..2 * mb), size);
        assert_eq!(r, 2 * mb..2 * mb + 8 * mb);
        for _ in 0..40 {
            let at = w.next;
            w.note(&(at..at + mb), size);
        }
        assert_eq!(w.ahead, WINDOW_MAX);
        // A jump far away: no read-ahead; then the new run grows from the start.
        let r = w.note(&(500 * mb..501 * mb), size);
        assert!(r.is_empty(), "{r:?}");
        let r = w.note(&(501 * mb..502 * mb), 503 * mb);
        assert_eq!(r, 502 * mb..503 * mb, "stops at the end of the file");
    }

    #[test]
    fn one_random_read_in_many_requests_fetches_little_ahead() {
        let mut w = Window::default();
        let base = 100u64 << 20;
        let mut ahead_end = 0;
        for i in 0..8 {
            let r = w.note(
                &(base + i * (128 << 10)..base + (i + 1) * (128 << 10)),
                1 << 30,
            );
            ahead_end = ahead_end.max(r.end);
        }
        assert!(ahead_end <= base + (3 << 20), "{}", ahead_end - base);
    }

    #[test]
    fn a_first_read_fetches_nothing_ahead() {
        let mut w = Window::default();
        assert!(w.note(&(100 << 20..101 << 20), 1 << 30).is_empty());
        let mut w = Window::default();
        assert!(w.note(&(0..65536), 1 << 30).is_empty());
    }
}
