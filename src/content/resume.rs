//! Resumable downloads: a large file fetched in parts keeps its parts on disk, with a range
//! map, so that a download cut by an unmount, a killed daemon, a crash or a power loss goes
//! on at the next mount from the parts already there, moving only the missing ones.
//!
//! **When.** A file larger than [`RESUME_ABOVE`] (16 MiB: four parts; a photo below that
//! downloads in a couple of seconds and is simply fetched again) whose download starts on
//! disk while the mount does not know the service to ignore `Range`. Without Range a resume
//! would get the whole file sent again anyway, so then nothing is kept: the files of a
//! download that ends without its object are deleted as before (and a new one is not made
//! resumable).
//!
//! **Where.** `partial/<sha1>.part` (the bytes, at their offsets, `flock`ed by the live
//! writer as any `.part`) and `partial/<sha1>.map` (the range map, [`super::partmap`]), both
//! named by the object's SHA-1 so that the next daemon finds them.
//!
//! **Never a wrong byte.**
//! - A part counts as on disk only once its bytes are durable: when the last byte of a part
//!   is written, the part's digest (XXH3-128, [`super::partmap::PartDigest`]) is taken
//!   (computed as its bytes were written when they came in order, as a part's own request
//!   sends them; read back from the file otherwise), the data file is `fdatasync`ed, and
//!   only then is the part's record appended to the map.
//!   A crash between the two loses the record, never the order.
//! - On resume every recorded part is read back and hashed; a part that does not match its
//!   record (or cannot be read) is dropped, logged with why, and fetched again. A torn or
//!   damaged map loses the damaged records only ([`super::partmap`]); a map whose header is
//!   damaged, of another format version (an older build's) or describes another download is
//!   not used at all. The map is then rewritten
//!   with the parts that passed (written aside, synced, renamed over the old one).
//! - The whole file's SHA-1 is still the verdict: the streaming hasher is sequential, so a
//!   resume feeds it the parts before the first hole as it re-reads them, and the bytes
//!   after that are hashed as they arrive (`transfer`). A file that does not match is
//!   fetched again from nothing (a new generation discards the pair), then fails as ever.
//!
//! **What becomes of the pair.** Published: the data is renamed into `objects/` and the map
//! deleted. A download abandoned (nobody reads it any more) or cut by the end of the daemon
//! keeps both (the index then counts their disk space under `--max-cache-size` and may evict
//! them like objects); one that failed (a mismatch, a deleted item, a failing disk) or
//! recorded no part deletes both. At start `layout::sweep_partials` keeps the pairs no live
//! writer holds and deletes orphans and pairs untouched for 30 days.
//!
//! **Numbers.** Per 4 MiB part: one 32-byte record, one `fdatasync` of the data file (about
//! 11 ms on this project's virtual disk, measured once with 4 MiB writes: 2 % of the half
//! second a part takes at 8 MB/s, spent on the blocking thread that wrote the part's last
//! piece, not holding a connection slot), and one XXH3-128 pass over the part, beside the
//! whole-file SHA-1 that every byte goes through anyway. Measured here (release build, 4 MiB
//! parts in 256 KiB pieces): XXH3-128 7.8-11.6 GB/s, 0.09-0.13 core-s per GB, where the
//! SHA-1 per part of format version 1 ran at 1.66 GB/s with the CPU's SHA extensions,
//! 0.60 core-s per GB: a large download's hashing went from two SHA-1 passes (1.2 core-s
//! per GB) to one plus XXH3's 0.1 (about 0.7 core-s per GB; [`super::partmap`] has the
//! figures). A resume reads and hashes what is on disk once (2 GB of a half-fetched 4 GB
//! video: a few seconds, mostly the SHA-1 and the disk, before the first read of that file
//! returns), which also brings the whole-file SHA-1 up to the first hole.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};

use super::index::CacheIndex;
use super::layout::{self, Layout};
use super::partmap::{self, Header, PartDigest, PartHasher};
use super::rangeset::RangeSet;
use super::writer::{PartFile, PartFs, PartWriter};
use crate::model::{Item, ItemId, Sha1Digest};

/// Files larger than this are downloaded resumably (when Range is not known to be ignored).
pub const RESUME_ABOVE: u64 = 16 << 20;

/// The range mode value (as `ContentCache` keeps it) meaning "the service ignores Range".
pub(crate) const RANGE_IGNORED: u8 = 2;

const LIVE: u8 = 0;
const PUBLISHED: u8 = 1;
const DISCARDED: u8 = 2;

/// Where one part stands.
enum PartState {
    /// No byte written by this daemon yet.
    Empty,
    /// Bytes written in order from the part's start up to `next`, hashed as they came
    /// (boxed: the hasher's state is ~400 bytes, and a 4 GB video has 1024 parts).
    Hashing { next: u64, hasher: Box<PartHasher> },
    /// Bytes came out of order: the part is hashed from the file once complete.
    Unordered,
    /// Being recorded by some thread.
    Recording,
    /// In the map.
    Recorded,
}

/// What a resume found on disk: the transfer starts with these bytes present and its
/// whole-file SHA-1 already over `0..hashed_to`.
pub(crate) struct OnDisk {
    pub present: RangeSet,
    pub hasher: Sha1,
    pub hashed_to: u64,
}

/// The range map of a live resumable download.
pub(crate) struct Journal {
    id: ItemId,
    header: Header,
    file: Arc<dyn PartFile>,
    data_path: PathBuf,
    map_path: PathBuf,
    /// Open for appending; `None` once an append failed (no more records: the download goes
    /// on, it is only not resumable past that point).
    map: Mutex<Option<std::fs::File>>,
    parts: Mutex<Vec<PartState>>,
    recorded: AtomicU64,
    state: AtomicU8,
    index: Arc<CacheIndex>,
    range_mode: Arc<AtomicU8>,
}

/// A resumable download, opened: its writer, its map, and what was already on disk.
pub(crate) struct Resumable {
    pub writer: PartWriter,
    pub journal: Journal,
    pub on_disk: OnDisk,
}

/// Opens (or starts) the resumable download of `item` (blocking). `Ok(None)` when a live
/// writer holds it (another download of the same file, about to end or in another mount).
pub(crate) fn open(
    fs: &dyn PartFs,
    layout: &Layout,
    item: &Item,
    index: Arc<CacheIndex>,
    range_mode: Arc<AtomicU8>,
) -> std::io::Result<Option<Resumable>> {
    let header = Header {
        object: item.sha1,
        size: item.size,
        part_size: super::CHUNK,
    };
    let data_path = layout.partial_data(&item.sha1);
    let map_path = layout.partial_map(&item.sha1);
    let (file, existed) = match fs.open(&data_path) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs.create(&data_path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: Arc<dyn PartFile> = Arc::from(file);
    let mut on_disk = OnDisk {
        present: RangeSet::new(),
        hasher: Sha1::new(),
        hashed_to: 0,
    };
    let good = if existed {
        verify_parts(&*file, &map_path, &header, item.id, &mut on_disk)
    } else {
        Vec::new()
    };
    let map = write_map(layout, &header, &good)?;
    let mut parts: Vec<PartState> = (0..header.parts()).map(|_| PartState::Empty).collect();
    for (k, _) in &good {
        if let Some(p) = parts.get_mut(*k as usize) {
            *p = PartState::Recorded;
        }
    }
    let writer = PartWriter::keeping(data_path.clone(), file.clone());
    let journal = Journal {
        id: item.id,
        header,
        file,
        data_path,
        map_path,
        map: Mutex::new(Some(map)),
        parts: Mutex::new(parts),
        recorded: AtomicU64::new(good.len() as u64),
        state: AtomicU8::new(LIVE),
        index,
        range_mode,
    };
    Ok(Some(Resumable {
        writer,
        journal,
        on_disk,
    }))
}

/// Reads the map at `map_path` and re-verifies each recorded part against the data; returns
/// the parts that passed and fills `on_disk` (present bytes, and the whole-file SHA-1 over
/// the parts before the first hole).
fn verify_parts(
    file: &dyn PartFile,
    map_path: &std::path::Path,
    header: &Header,
    id: ItemId,
    on_disk: &mut OnDisk,
) -> Vec<(u64, PartDigest)> {
    let bytes = match std::fs::read(map_path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(id = %id, path = %map_path.display(), error = %e, "cannot read the range map of a resumable download; fetching the file from its start");
            return Vec::new();
        }
    };
    let parsed = match partmap::parse(&bytes, header) {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!(id = %id, path = %map_path.display(), "the range map of a resumable download is not usable ({why}); fetching the file from its start");
            return Vec::new();
        }
    };
    if parsed.damaged > 0 || parsed.torn_tail > 0 {
        tracing::warn!(id = %id, damaged = parsed.damaged, torn_tail_bytes = parsed.torn_tail, "the range map of a resumable download has damaged records (a crash while it was written?); their parts are fetched again");
    }
    // A later record of a part wins; parts in file order.
    let records: std::collections::BTreeMap<u64, PartDigest> = parsed.records.into_iter().collect();
    let mut good = Vec::new();
    let mut buf = Vec::new();
    let mut bad = 0usize;
    for (k, want) in records {
        let r = header.part_range(k);
        buf.resize((r.end - r.start) as usize, 0);
        let verdict = match file.read_exact_at(&mut buf, r.start) {
            Ok(()) => {
                let got = PartDigest::of(&buf);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("its XXH3-128 is {got}, its record says {want}"))
                }
            }
            Err(e) => Err(format!("it cannot be read: {e}")),
        };
        match verdict {
            Ok(()) => {
                if r.start == on_disk.hashed_to {
                    on_disk.hasher.update(&buf);
                    on_disk.hashed_to = r.end;
                }
                on_disk.present.insert(r);
                good.push((k, want));
            }
            Err(why) => {
                bad += 1;
                tracing::warn!(id = %id, part = k, bytes = ?r, "a part of a resumable download is damaged on disk ({why}); fetching it again");
            }
        }
    }
    tracing::info!(
        id = %id,
        parts_ok = good.len(),
        parts_damaged = bad,
        parts = header.parts(),
        bytes_on_disk = on_disk.present.len(),
        hashed_to = on_disk.hashed_to,
        "resuming a download from the parts on disk"
    );
    good
}

/// Writes a map holding `good` beside the old one, syncs it, renames it over the old one,
/// and returns it open for appending.
fn write_map(
    layout: &Layout,
    header: &Header,
    good: &[(u64, PartDigest)],
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = layout.partial_map_tmp(&header.object);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(layout::FILE_MODE)
        .open(&tmp)?;
    let mut bytes = partmap::encode_header(header).to_vec();
    for (k, d) in good {
        let k = u32::try_from(*k).map_err(std::io::Error::other)?;
        bytes.extend_from_slice(&partmap::encode_record(&header.object, k, d));
    }
    f.write_all(&bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, layout.partial_map(&header.object))?;
    Ok(f)
}

impl Journal {
    /// The part that a write at `offset` begins, when nothing of it was written yet: the
    /// writer allocates its blocks first, so that the part lies contiguous on the disk
    /// however its pieces interleave with other parts'. Only parts that are started take
    /// room: a video of which a viewer read one megabyte keeps one part, not the whole file.
    pub fn starts_part(&self, offset: u64) -> Option<Range<u64>> {
        let parts = self.parts.lock().ok()?;
        let k = offset / self.header.part_size;
        let r = self.header.part_range(k);
        matches!(parts.get(k as usize), Some(PartState::Empty) if offset == r.start).then_some(r)
    }

    /// Notes `bytes` just written at `offset` (hashes them into their parts when in order).
    pub fn wrote(&self, offset: u64, bytes: &[u8]) {
        let Ok(mut parts) = self.parts.lock() else {
            return;
        };
        let end = offset + bytes.len() as u64;
        let mut at = offset;
        while at < end {
            let k = at / self.header.part_size;
            let r = self.header.part_range(k);
            let stop = r.end.min(end);
            if stop <= at {
                break;
            }
            let slice = &bytes[(at - offset) as usize..(stop - offset) as usize];
            if let Some(p) = parts.get_mut(k as usize) {
                match p {
                    PartState::Empty if at == r.start => {
                        let mut hasher = Box::new(PartHasher::new());
                        hasher.update(slice);
                        *p = PartState::Hashing { next: stop, hasher };
                    }
                    PartState::Hashing { next, hasher } if *next == at => {
                        hasher.update(slice);
                        *next = stop;
                    }
                    PartState::Empty | PartState::Hashing { .. } => *p = PartState::Unordered,
                    PartState::Unordered | PartState::Recording | PartState::Recorded => {}
                }
            }
            at = stop;
        }
    }

    /// The parts touched by `written` that `present` now holds whole.
    pub fn completed(&self, present: &RangeSet, written: &[Range<u64>]) -> Vec<u64> {
        let ps = self.header.part_size;
        let mut out: Vec<u64> = Vec::new();
        for w in written.iter().filter(|w| w.start < w.end) {
            for k in w.start / ps..=(w.end - 1) / ps {
                if !out.contains(&k) && present.contains(&self.header.part_range(k)) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Records the parts `ks`, all present (blocking): their digests, one `fdatasync` of the
    /// data, then their records. A failed sync is the caller's error (the disk is failing);
    /// a failed append only ends the recording.
    pub fn record(&self, ks: &[u64]) -> std::io::Result<()> {
        if ks.is_empty() || self.state.load(Ordering::SeqCst) != LIVE {
            return Ok(());
        }
        let mut todo = Vec::new();
        {
            let Ok(mut parts) = self.parts.lock() else {
                return Ok(());
            };
            for &k in ks {
                let Some(p) = parts.get_mut(k as usize) else {
                    continue;
                };
                let end = self.header.part_range(k).end;
                match std::mem::replace(p, PartState::Recording) {
                    s @ (PartState::Recording | PartState::Recorded) => *p = s,
                    PartState::Hashing { next, hasher } if next == end => {
                        todo.push((k, Some(hasher.finish())))
                    }
                    _ => todo.push((k, None)),
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let result = self.digest_sync_append(&todo);
        if let Ok(mut parts) = self.parts.lock() {
            for (k, _) in &todo {
                if let Some(p) = parts.get_mut(*k as usize) {
                    *p = if result.is_ok() {
                        PartState::Recorded
                    } else {
                        PartState::Unordered
                    };
                }
            }
        }
        result
    }

    fn digest_sync_append(&self, todo: &[(u64, Option<PartDigest>)]) -> std::io::Result<()> {
        let mut records = Vec::with_capacity(todo.len() * partmap::RECORD_LEN);
        for (k, d) in todo {
            let d = match d {
                Some(d) => *d,
                None => self.read_back(*k)?,
            };
            let k32 = u32::try_from(*k).map_err(std::io::Error::other)?;
            records.extend_from_slice(&partmap::encode_record(&self.header.object, k32, &d));
        }
        // The bytes are durable before a record says so.
        self.file.sync()?;
        if let Ok(mut map) = self.map.lock() {
            if let Some(f) = map.as_mut() {
                if let Err(e) = f.write_all(&records) {
                    tracing::warn!(id = %self.id, path = %self.map_path.display(), error = %e, "cannot append to the range map of a resumable download; the parts that follow are not kept for a resume");
                    *map = None;
                    return Ok(());
                }
            } else {
                return Ok(());
            }
        }
        self.recorded.fetch_add(todo.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// The digest of part `k` as it is in the file.
    fn read_back(&self, k: u64) -> std::io::Result<PartDigest> {
        let r = self.header.part_range(k);
        let mut h = PartHasher::new();
        let mut buf = vec![0u8; (1 << 20).min((r.end - r.start) as usize)];
        let mut at = r.start;
        while at < r.end {
            let n = ((r.end - at) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], at)?;
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(h.finish())
    }

    /// The data became the object (renamed into `objects/`): the map goes.
    pub fn published(&self) {
        if self
            .state
            .compare_exchange(LIVE, PUBLISHED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            remove(&self.map_path);
        }
    }

    /// The parts must not be resumed (the download failed or starts again): both files go
    /// now, while this download still holds the lock.
    pub fn discard(&self, why: &str) {
        if self
            .state
            .compare_exchange(LIVE, DISCARDED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::debug!(id = %self.id, why, "deleting a resumable download");
            remove(&self.data_path);
            remove(&self.map_path);
        }
    }

    /// Parts recorded in the map.
    #[cfg(test)]
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::SeqCst)
    }
}

impl Drop for Journal {
    /// The download ends without its object: keep the parts for a resume, unless there is
    /// none or the service ignores Range.
    fn drop(&mut self) {
        if self.state.load(Ordering::SeqCst) != LIVE {
            return;
        }
        let recorded = self.recorded.load(Ordering::SeqCst);
        if recorded == 0 || self.range_mode.load(Ordering::SeqCst) == RANGE_IGNORED {
            self.discard("nothing to resume from");
            return;
        }
        let bytes = layout::disk_bytes(&self.data_path) + layout::disk_bytes(&self.map_path);
        self.index.admit_partial(self.header.object, bytes);
        tracing::info!(
            id = %self.id,
            parts = recorded,
            of = self.header.parts(),
            "download stopped; its parts stay on disk and a later read resumes from them"
        );
    }
}

fn remove(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a resumable download's file");
        }
    }
}

/// Deletes the resumable pair of `sha1` unless a live writer holds it (an object of the same
/// bytes is complete, or eviction chose it). Returns whether it went.
pub(crate) fn remove_if_unlocked(layout: &Layout, sha1: &Sha1Digest) -> bool {
    let data = layout.partial_data(sha1);
    if let Ok(f) = std::fs::File::open(&data) {
        if f.try_lock().is_err() {
            return false;
        }
        remove(&data);
    }
    remove(&layout.partial_map(sha1));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake;
    use crate::content::writer::DiskFs;
    use crate::content::CHUNK;

    struct Setup {
        _dir: tempfile::TempDir,
        layout: Layout,
        item: Item,
        body: Vec<u8>,
        index: Arc<CacheIndex>,
        mode: Arc<AtomicU8>,
    }

    fn setup(len: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout::create_private_dir(&layout.partial).unwrap();
        let body = fake::body(5, len);
        let item = fake::item(1, &body);
        Setup {
            index: Arc::new(CacheIndex::scan(&layout.objects, &[], u64::MAX)),
            layout,
            item,
            body,
            mode: Arc::new(AtomicU8::new(1)),
            _dir: dir,
        }
    }

    fn open_it(s: &Setup) -> Resumable {
        open(&DiskFs, &s.layout, &s.item, s.index.clone(), s.mode.clone())
            .unwrap()
            .expect("nobody holds it")
    }

    /// Writes `range` of the body in pieces of `piece` bytes (in order, or last piece
    /// first), as a transfer does, and records what became whole.
    fn write(s: &Setup, r: &Resumable, present: &mut RangeSet, range: Range<u64>, rev: bool) {
        let mut pieces: Vec<Range<u64>> = (range.start..range.end)
            .step_by(256 << 10)
            .map(|a| a..(a + (256 << 10)).min(range.end))
            .collect();
        if rev {
            pieces.reverse();
        }
        for p in pieces {
            let bytes = &s.body[p.start as usize..p.end as usize];
            r.writer.write_at(bytes, p.start).unwrap();
            r.journal.wrote(p.start, bytes);
            present.insert(p.clone());
            let done = r.journal.completed(present, std::slice::from_ref(&p));
            r.journal.record(&done).unwrap();
        }
    }

    fn part(k: u64) -> Range<u64> {
        k * CHUNK..(k + 1) * CHUNK
    }

    #[test]
    fn parts_are_recorded_then_resumed_with_the_hash_caught_up() {
        let s = setup(5 * CHUNK as usize - 1000);
        let r = open_it(&s);
        assert!(r.on_disk.present.is_empty());
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        write(&s, &r, &mut present, part(1), false);
        // Out of order: hashed from the file once whole.
        write(&s, &r, &mut present, part(3), true);
        // Half a part: not recorded.
        write(&s, &r, &mut present, 4 * CHUNK..4 * CHUNK + 100_000, false);
        assert_eq!(r.journal.recorded(), 3);
        drop(r);
        // Kept, and counted under the cap.
        assert!(s.layout.partial_data(&s.item.sha1).exists());
        assert!(
            s.index.partial_bytes() >= 3 * CHUNK,
            "{}",
            s.index.partial_bytes()
        );

        let again = open_it(&s);
        let mut want = RangeSet::new();
        for k in [0, 1, 3] {
            want.insert(part(k));
        }
        assert_eq!(again.on_disk.present, want);
        // The whole-file SHA-1 is over the parts before the first hole.
        assert_eq!(again.on_disk.hashed_to, 2 * CHUNK);
        let got: [u8; 20] = again.on_disk.hasher.clone().finalize().into();
        let mut h = Sha1::new();
        h.update(&s.body[..2 * CHUNK as usize]);
        let want_digest: [u8; 20] = h.finalize().into();
        assert_eq!(got, want_digest);
        assert_eq!(again.journal.recorded(), 3);
    }

    #[test]
    fn only_started_parts_take_room_on_the_disk() {
        use std::os::unix::fs::MetadataExt;
        let s = setup(4 * CHUNK as usize - 1000);
        let r = open_it(&s);
        // A write that begins an untouched part names that part (the last one is short).
        assert_eq!(r.journal.starts_part(CHUNK), Some(part(1)));
        assert_eq!(
            r.journal.starts_part(3 * CHUNK),
            Some(3 * CHUNK..4 * CHUNK - 1000)
        );
        // Not a write in the middle of a part, nor one past the end.
        assert_eq!(r.journal.starts_part(CHUNK + 4096), None);
        assert_eq!(r.journal.starts_part(8 * CHUNK), None);
        // Nor a part already begun.
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, CHUNK..CHUNK + (256 << 10), false);
        assert_eq!(r.journal.starts_part(CHUNK), None);
        // Allocating the one part started leaves the others without blocks.
        assert!(r.writer.preallocate(part(2)));
        let data = s.layout.partial_data(&s.item.sha1);
        let blocks = std::fs::metadata(&data).unwrap().blocks() * 512;
        assert!(
            (CHUNK..2 * CHUNK).contains(&blocks),
            "{blocks} bytes allocated for one part and a piece"
        );
    }

    #[test]
    fn a_damaged_part_or_record_is_dropped_and_the_map_rewritten() {
        let s = setup(4 * CHUNK as usize);
        let r = open_it(&s);
        let mut present = RangeSet::new();
        for k in 0..3 {
            write(&s, &r, &mut present, part(k), false);
        }
        drop(r);
        // A byte of part 1 flipped on disk; the record of part 2 torn.
        let data = s.layout.partial_data(&s.item.sha1);
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[CHUNK as usize + 12345] ^= 0x20;
        std::fs::write(&data, bytes).unwrap();
        let map = s.layout.partial_map(&s.item.sha1);
        let m = std::fs::read(&map).unwrap();
        assert_eq!(m.len(), partmap::HEADER_LEN + 3 * partmap::RECORD_LEN);
        std::fs::write(&map, &m[..m.len() - 5]).unwrap();

        let again = open_it(&s);
        assert_eq!(again.on_disk.present.spans(), &[part(0)]);
        assert_eq!(again.on_disk.hashed_to, CHUNK);
        assert_eq!(again.journal.recorded(), 1);
        // The map now holds the part that passed only.
        let header = Header {
            object: s.item.sha1,
            size: s.item.size,
            part_size: CHUNK,
        };
        let parsed = partmap::parse(&std::fs::read(&map).unwrap(), &header).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!((parsed.damaged, parsed.torn_tail), (0, 0));
    }

    #[test]
    fn a_missing_or_foreign_map_resumes_nothing() {
        let s = setup(2 * CHUNK as usize);
        let r = open_it(&s);
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        drop(r);
        std::fs::write(s.layout.partial_map(&s.item.sha1), b"garbage").unwrap();
        let again = open_it(&s);
        assert!(again.on_disk.present.is_empty());
        drop(again);
        // Nothing recorded: nothing kept.
        assert!(!s.layout.partial_data(&s.item.sha1).exists());
        assert!(!s.layout.partial_map(&s.item.sha1).exists());
    }

    /// Log lines written while `f` runs, as text.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let make = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || make.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
        (out, text)
    }

    #[test]
    fn a_map_of_an_older_format_is_refused_and_the_file_fetched_again() {
        let s = setup(2 * CHUNK as usize);
        let r = open_it(&s);
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        assert_eq!(r.journal.recorded(), 1);
        drop(r);
        // The pair as a build of format version 1 would have left it.
        let map = s.layout.partial_map(&s.item.sha1);
        let mut m = std::fs::read(&map).unwrap();
        m[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&map, &m).unwrap();

        let (again, log) = logged(|| open_it(&s));
        assert!(again.on_disk.present.is_empty());
        assert_eq!(again.journal.recorded(), 0);
        assert!(
            log.contains("not usable (it is of format version 1, and this build reads version 2"),
            "{log}"
        );
        // The map was rewritten in this build's format, with no part in it.
        let header = Header {
            object: s.item.sha1,
            size: s.item.size,
            part_size: CHUNK,
        };
        let parsed = partmap::parse(&std::fs::read(&map).unwrap(), &header).unwrap();
        assert!(parsed.records.is_empty());
        // Its parts are fetched (written) again and recorded anew.
        let mut present = RangeSet::new();
        write(&s, &again, &mut present, part(0), false);
        assert_eq!(again.journal.recorded(), 1);
        drop(again);
        let resumed = open_it(&s);
        assert_eq!(resumed.on_disk.present.spans(), &[part(0)]);
        drop(resumed);
        // Nothing recorded after a refused map: nothing kept.
        std::fs::write(&map, &m).unwrap();
        drop(open_it(&s));
        assert!(!s.layout.partial_data(&s.item.sha1).exists());
        assert!(!map.exists());
    }

    #[test]
    fn a_held_download_is_not_opened_twice() {
        let s = setup(2 * CHUNK as usize);
        let r = open_it(&s);
        let second = open(&DiskFs, &s.layout, &s.item, s.index.clone(), s.mode.clone()).unwrap();
        assert!(second.is_none());
        assert!(!remove_if_unlocked(&s.layout, &s.item.sha1));
        drop(r);
    }

    #[test]
    fn what_goes_and_what_stays() {
        // Without Range, nothing stays.
        let s = setup(2 * CHUNK as usize);
        let r = open_it(&s);
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        s.mode.store(RANGE_IGNORED, Ordering::SeqCst);
        drop(r);
        assert!(!s.layout.partial_data(&s.item.sha1).exists());
        assert_eq!(s.index.partial_bytes(), 0);
        // Discarded: both files go at once.
        s.mode.store(1, Ordering::SeqCst);
        let r = open_it(&s);
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        r.journal.discard("test");
        assert!(!s.layout.partial_data(&s.item.sha1).exists());
        assert!(!s.layout.partial_map(&s.item.sha1).exists());
        drop(r);
        // Published: the map goes (the data was renamed by the writer).
        let r = open_it(&s);
        let mut present = RangeSet::new();
        write(&s, &r, &mut present, part(0), false);
        write(&s, &r, &mut present, part(1), false);
        let dest = s.layout.object_path(&s.item.sha1);
        r.writer.publish(&dest).unwrap();
        r.journal.published();
        drop(r);
        assert_eq!(std::fs::read(&dest).unwrap(), s.body);
        assert!(std::fs::read_dir(&s.layout.partial)
            .unwrap()
            .next()
            .is_none());
        assert_eq!(s.index.partial_bytes(), 0);
    }
}
