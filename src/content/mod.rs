//! Content: the bytes of items, fetched from the cloud, verified against the listed SHA-1,
//! streamed to readers as they arrive and kept in an on-disk cache.
//!
//! Design (DESIGN.md §4):
//! - **Content-addressed.** A verified file lives at `<cache>/objects/<first 2 hex>/<sha1>`
//!   ([`layout`]): the same photo in two albums is stored and downloaded once, and an
//!   object's name is its proof of integrity.
//! - **Streaming.** An item being fetched is a [`transfer::Transfer`] shared by every handle
//!   reading it: a read returns as soon as its bytes are in, not when the whole file is.
//!   A large file is fetched in parts of up to [`CHUNK`] bytes in parallel when the server
//!   honours HTTP `Range` (learned once per mount from the first answer: 206 or 200); a
//!   random read fetches only the [`MIN_REQUEST`]-rounded bytes it needs, a sequential
//!   reader a window ahead that grows with what it has read ([`transfer::Window`]).
//!   Without Range: one stream per file, each read served as its bytes arrive.
//! - **The integrity promise.** The SHA-1 runs as bytes arrive. The read that would hand out
//!   the last bytes not yet handed out — what a copy tool's last read does — waits until the
//!   whole file matched. A mismatch fetches the file again (a new generation; the kernel's
//!   cached pages are dropped through the invalidator the `fs` layer installs); bytes served
//!   from the bad download are compared with the good one, and if they differ, every handle
//!   opened before fails with EIO (it may hold a wrong byte). After [`MISMATCH_ATTEMPTS`]
//!   downloads the file fails with EIO. So no copy can complete with a wrong byte, and
//!   players and viewers start at once.
//! - **One scheduler** ([`sched`]): `--max-connections` slots (default 16) for the whole
//!   mount, demand before prefetch; **one retry layer** ([`retry`], [`fetcher`]): back-off
//!   with jitter, no slot held while sleeping; a reader waits at most `--io-timeout` without
//!   a byte of its file arriving, then gets EIO; a download nobody wants any more (handles
//!   closed, no prefetch) is cancelled.
//! - **Verified as it lies on disk.** Bytes go to a `.part` file ([`writer`]): every write
//!   and the final flush are checked, the SHA-1 is computed over the written bytes (read
//!   back from the file when they arrived out of order), and the file's length is read back.
//!   Only a file whose length and SHA-1 match is renamed into `objects/`. A crash leaves at
//!   worst a `.part`, deleted at the next start once no live writer holds its lock.
//! - **Cut downloads resume** ([`resume`]). A file over [`resume::RESUME_ABOVE`] (16 MiB)
//!   fetched while Range is not known to be ignored goes to `partial/<sha1>.part` with a
//!   range map ([`partmap`]): each part, once whole, is hashed, `fdatasync`ed, then recorded.
//!   A download that stops without its object (nobody reads it any more, an unmount, a
//!   SIGKILL, a crash) keeps both; the next download of the file — in this daemon or a later
//!   one — re-reads and re-hashes every recorded part, refetches those that fail, starts its
//!   whole-file SHA-1 over the parts before the first hole, and fetches only what is missing.
//!   The whole-file SHA-1 stays the verdict. Kept parts count under the cap and are evicted
//!   like objects; orphans and parts untouched for 30 days go at start.
//! - **Checked before it is first served.** An object found on disk (put there by an earlier
//!   daemon) is hashed again before this daemon serves it the first time ([`check`]); a
//!   mismatch deletes it and fetches it again. Objects this daemon verified are remembered
//!   (`ready`) and not hashed again.
//! - **Room on the disk** ([`space`]): a free-space floor is kept on the cache's file system
//!   (`--min-free-space`), evicting least recently read objects as needed.
//! - **A full or failing disk makes reads slower, never wrong.** When a download cannot be
//!   written (no room even after eviction, or a write, flush or rename fails), it goes on in
//!   memory (a new generation, compared like a mismatch) and is served from there for as
//!   long as its handles are open. Memory for such files is bounded
//!   ([`DEFAULT_MEMORY_BUDGET`]); a file bigger than the budget fails with EIO and the log
//!   says why. The first such event is logged, with the free space; later ones are counted
//!   and mentioned again at most every 10 minutes.
//! - **Capped.** Objects, downloads in progress and the parts kept for a resume are kept
//!   under `max_bytes` (`--max-cache-size`, default 10 GiB) by evicting the least recently
//!   read objects and kept parts (see [`index`]).
//! - **Verification policy.** A size or SHA-1 mismatch gets a fresh download, up to
//!   [`MISMATCH_ATTEMPTS`] downloads in all; then it is an error (EIO for the reader). Three,
//!   not two: on a flaky link a damaged transfer is a transient event, and at a 2 % damage
//!   rate two in a row would still fail 4 files in 10 000, three in a row 8 in a million,
//!   while a file the service really stores damaged costs just one download more.

pub mod check;
mod error;
mod fetcher;
mod index;
pub mod layout;
mod partmap;
mod pool;
pub mod rangeset;
mod resume;
pub mod retry;
pub mod sched;
pub mod space;
mod transfer;
pub mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub use error::ContentError;
pub use sched::DEFAULT_MAX_CONNECTIONS;
pub use space::MinFree;

use crate::cloud::GalleryApi;
use crate::model::{Item, Sha1Digest};
use fetcher::JobEnd;
use layout::Layout;
use rangeset::RangeSet;
use sched::{Scheduler, Urgency};
use space::{Reservation, Room, SpaceProbe, Statvfs};
use transfer::{CapHold, JobInfo, Phase, Store, Transfer, Window};
use writer::{DiskFs, PartFs, PartWriter};

#[derive(Clone, Debug)]
pub struct ContentConfig {
    pub cache_dir: PathBuf,
    /// Connections to the service for file bytes, prefetch included (`--max-connections`).
    pub max_connections: usize,
    /// The cap on the bytes of verified objects, downloads in progress and parts kept for a
    /// resume on disk.
    pub max_bytes: u64,
    /// The free space kept on the cache's file system.
    pub min_free: MinFree,
    /// The most bytes held in memory for files that could not be cached.
    pub memory_budget: u64,
    /// How long a read waits without a byte of its file arriving (`--io-timeout`).
    pub io_timeout: Duration,
    /// Files larger than this stream unverified bytes to readers that are not copying a
    /// folder ([`STREAM_ABOVE`]); smaller ones are read verified.
    pub stream_above: u64,
}

/// Downloads of one object whose bytes do not match the listing before the read fails.
pub const MISMATCH_ATTEMPTS: u32 = 3;

/// The default of `--max-cache-size`.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 10 << 30;

/// Memory for files served without caching: 256 MiB holds 30 or more photos of a copy in
/// progress, or a short video; a longer video with no room on disk fails with EIO.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// The largest request for one part: at 8 MB/s per connection, half a second of transfer
/// for one round trip of set-up, and fine enough that a 241 MiB video spreads over every
/// connection.
pub const CHUNK: u64 = 4 << 20;

/// A read that needs bytes asks for at least this much (rounded up to a multiple), so
/// the kernel's next requests find their bytes already on the way.
pub const MIN_REQUEST: u64 = 1 << 20;

/// Files up to this size are handed out only verified (whole-file SHA-1), but for a first
/// read confirmed by a second download of its bytes: they download in a second or two, so
/// a copy tool loses nothing by waiting, and a transient damaged byte then costs no
/// error. Larger files (videos) stream, so that players start at once.
pub const STREAM_ABOVE: u64 = 64 << 20;

/// A read of a file whose last read gave up waiting less than this ago, with no byte
/// arrived since, fails at once (the kernel re-reads a failed readahead page right away;
/// `--io-timeout` is the whole wait, not once per kernel request).
const FAIL_FAST: Duration = Duration::from_secs(2);

/// How long a download waits for memory held by other uncached downloads.
const MEMORY_WAIT: Duration = Duration::from_secs(60);

/// How long a new download of a file waits for the resumable download of it to be let go
/// by a download just cancelled (`RESUME_LOCK_TRIES` × `RESUME_LOCK_WAIT`: 2 s).
const RESUME_LOCK_TRIES: u32 = 40;
const RESUME_LOCK_WAIT: Duration = Duration::from_millis(50);

/// Counters of the content layer (read by tests, the benchmark and the log).
#[derive(Debug, Default)]
pub struct ContentStats {
    /// Requests for file bytes (step 3 of the download).
    pub downloads: AtomicU64,
    /// Download URLs resolved (steps 1 and 2).
    pub resolves: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub mismatches: AtomicU64,
    pub cache_hits: AtomicU64,
    pub evictions: AtomicU64,
    /// Objects found damaged on disk (and deleted).
    pub damaged: AtomicU64,
    /// Objects hashed on disk before their first serve, and their bytes.
    pub verified_on_open: AtomicU64,
    pub bytes_verified_on_open: AtomicU64,
    /// Downloads kept in memory because the file could not be cached.
    pub uncached_reads: AtomicU64,
    /// Downloads whose writing to the cache failed (write, flush, rename, or no room).
    pub cache_failures: AtomicU64,
    /// Downloads abandoned because nobody wanted them any more.
    pub cancelled: AtomicU64,
    /// Reads that waited `--io-timeout` without a byte.
    pub timeouts: AtomicU64,
    /// Handles failed because they may hold bytes of a download that did not match.
    pub poisoned: AtomicU64,
    /// Files the prefetcher started.
    pub prefetched: AtomicU64,
    /// First reads confirmed by a second download of their bytes.
    pub confirmations: AtomicU64,
    /// Downloads resumed from parts on disk, and the bytes they did not fetch again.
    pub resumed: AtomicU64,
    pub bytes_resumed: AtomicU64,
}

/// Drops the kernel's cached pages of every inode showing an item.
pub type Invalidator = Box<dyn Fn(&Item) + Send + Sync>;

/// What an opened item is read from.
pub enum Opened {
    /// A verified object of the cache: read it directly (or let the kernel do so).
    Verified(Arc<std::fs::File>),
    /// Bytes still arriving (or kept in memory): read through [`Reader::read`].
    Streaming(Reader),
}

/// How a job is wanted.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// A process waits on these bytes.
    Demand,
    /// Ahead of a reader or of a copy; lower rank first.
    Prefetch(u64),
}

pub struct ContentCache {
    layout: Layout,
    api: Arc<dyn GalleryApi>,
    fs: Arc<dyn PartFs>,
    room: Room,
    sched: Arc<Scheduler>,
    /// Piece buffers of download jobs, reused (see `pool`).
    pieces: Arc<pool::PiecePool>,
    /// Objects verified on disk in this daemon's life; also the single-flight point of the
    /// first-serve check.
    ready: moka::future::Cache<Sha1Digest, ()>,
    index: Arc<index::CacheIndex>,
    /// Budget for uncached downloads, in KiB permits.
    memory: Arc<Semaphore>,
    memory_budget: u64,
    transfers: Mutex<HashMap<Sha1Digest, Arc<Transfer>>>,
    /// One creation of a transfer per file at a time (a resume re-reads its parts first,
    /// which may take seconds: a second opener waits and joins it).
    starting: Mutex<HashMap<Sha1Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// 0 unknown, 1 the service honours Range, 2 it does not (shared with the range maps
    /// of resumable downloads, which keep nothing when Range is ignored).
    range_mode: Arc<AtomicU8>,
    io_timeout: Duration,
    /// When the service last answered anything (ms since `epoch`): tells a dead network
    /// from a busy service (see `retry`).
    alive_ms: AtomicU64,
    epoch: Instant,
    stream_above: u64,
    max_bytes: u64,
    /// Drops the kernel's cached pages of every inode showing an item (set by `fs`).
    invalidator: OnceLock<Invalidator>,
    evicted: OnceLock<Box<dyn Fn() + Send + Sync>>,
    pub stats: ContentStats,
}

impl ContentCache {
    /// Prepares the cache directory (creating it private, deleting `.part` files of
    /// downloads no live daemon is doing, and keeping the resumable ones that can be).
    pub fn open(
        config: &ContentConfig,
        api: Arc<dyn GalleryApi>,
    ) -> Result<Arc<Self>, ContentError> {
        Self::open_with(config, api, Arc::new(DiskFs), Arc::new(Statvfs))
    }

    /// [`ContentCache::open`] with the file system and the free-space probe given (tests).
    pub fn open_with(
        config: &ContentConfig,
        api: Arc<dyn GalleryApi>,
        fs: Arc<dyn PartFs>,
        probe: Arc<dyn SpaceProbe>,
    ) -> Result<Arc<Self>, ContentError> {
        let layout = Layout::new(&config.cache_dir);
        for dir in [
            &config.cache_dir,
            &layout.objects,
            &layout.tmp,
            &layout.partial,
        ] {
            layout::create_private_dir(dir).map_err(|e| ContentError::io(dir, "create", e))?;
        }
        layout
            .create_object_dirs()
            .map_err(|e| ContentError::io(&layout.objects, "create the folders of", e))?;
        let stale = layout::remove_stale_parts(&layout.tmp);
        if stale > 0 {
            tracing::info!(
                count = stale,
                "deleted downloads left by a daemon that is gone"
            );
        }
        let partials = layout::sweep_partials(&layout, layout::PARTIAL_MAX_AGE, false);
        if !partials.removed.is_empty() {
            tracing::info!(
                count = partials.removed.len(),
                "deleted parts of downloads that cannot be resumed (orphaned, or untouched for 30 days)"
            );
        }
        let index = index::CacheIndex::scan(&layout.objects, &partials.kept, config.max_bytes);
        tracing::info!(
            entries = index.len(),
            bytes = index.total_bytes(),
            resumable = partials.kept.len(),
            resumable_bytes = index.partial_bytes(),
            cap = config.max_bytes,
            min_free = ?config.min_free,
            max_connections = config.max_connections,
            "content cache opened"
        );
        let kib = usize::try_from(config.memory_budget.div_ceil(1024))
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Ok(Arc::new(ContentCache {
            room: Room::new(&config.cache_dir, config.min_free, probe),
            index: Arc::new(index),
            layout,
            api,
            fs,
            sched: Scheduler::new(config.max_connections),
            pieces: Arc::new(pool::PiecePool::new(
                fetcher::PIECE_BUF,
                pool::PER_CONNECTION * config.max_connections,
            )),
            ready: moka::future::Cache::new(1_000_000),
            memory: Arc::new(Semaphore::new(kib)),
            memory_budget: config.memory_budget,
            transfers: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            range_mode: Arc::new(AtomicU8::new(0)),
            io_timeout: config.io_timeout,
            alive_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stream_above: config.stream_above,
            max_bytes: config.max_bytes,
            invalidator: OnceLock::new(),
            evicted: OnceLock::new(),
            stats: ContentStats::default(),
        }))
    }

    /// Installs what drops the kernel's pages of an item (once; later calls are ignored).
    pub fn set_invalidator(&self, f: Invalidator) {
        let _ = self.invalidator.set(f);
    }

    /// Installs what is called after an object was evicted (once; later calls are
    /// ignored): the `fs` layer lets go of the cache files it holds open for later opens.
    pub fn set_evicted(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.evicted.set(f);
    }

    /// Where a verified object lives (whether or not it is there yet).
    pub fn object_path(&self, sha1: &Sha1Digest) -> PathBuf {
        self.layout.object_path(sha1)
    }

    /// The service answered something (a header, a byte).
    fn note_alive(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.alive_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long the service has said nothing to this mount.
    fn quiet_for(&self) -> Duration {
        let ms = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(ms.saturating_sub(self.alive_ms.load(Ordering::Relaxed)))
    }

    /// The cap on the cache (`--max-cache-size`).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether the service honours Range, once learned.
    pub fn range_support(&self) -> Option<bool> {
        match self.range_mode.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    fn learn_range_support(&self, honoured: bool) {
        let new = if honoured { 1 } else { 2 };
        let old = self.range_mode.swap(new, Ordering::Relaxed);
        if old != new {
            if honoured {
                tracing::info!("the service honours HTTP Range: large files are fetched in parallel parts, random reads fetch only their parts");
            } else {
                tracing::info!("the service ignores HTTP Range: each file is fetched as one stream, reads are served as its bytes arrive");
            }
        }
    }

    /// Connection slots in use and jobs waiting for one.
    pub fn load(&self) -> (usize, usize) {
        self.sched.load()
    }

    /// Whether the object of `sha1` was verified by this daemon.
    pub fn is_verified(&self, sha1: &Sha1Digest) -> bool {
        self.ready.contains_key(sha1)
    }

    /// Opens `item` for reading: its verified object, or a reader of its transfer (started
    /// or joined). No byte is fetched until a read (or the prefetcher) asks.
    pub async fn open_item(self: &Arc<Self>, item: &Item) -> Result<Opened, ContentError> {
        for _ in 0..3 {
            if let Some(file) = self.open_verified(item).await {
                return Ok(Opened::Verified(file));
            }
            if let Some(t) = self.find_transfer(item) {
                if let Some(r) = self.reader(&t) {
                    return Ok(Opened::Streaming(r));
                }
            }
            if self.found_on_disk(item).await {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                self.index.touch(&item.sha1);
                continue;
            }
            let Some(t) = self.start_transfer(item, false).await? else {
                continue;
            };
            if let Some(r) = self.reader(&t) {
                return Ok(Opened::Streaming(r));
            }
        }
        Err(ContentError::Internal(format!(
            "item {} could be neither opened nor fetched (it kept changing state)",
            item.id
        )))
    }

    /// The verified object of `item`, opened, if this daemon verified it: a synchronous
    /// fast path for the FUSE thread (no task, no wait); `None` sends the caller to
    /// [`ContentCache::open_item`].
    pub fn open_verified_now(&self, item: &Item) -> Option<Arc<std::fs::File>> {
        if !self.ready.contains_key(&item.sha1) {
            return None;
        }
        let file = std::fs::File::open(self.object_path(&item.sha1)).ok()?;
        self.index.touch(&item.sha1);
        Some(Arc::new(file))
    }

    /// The verified object, opened, if this daemon verified it (and it is still there).
    async fn open_verified(&self, item: &Item) -> Option<Arc<std::fs::File>> {
        if !self.ready.contains_key(&item.sha1) {
            return None;
        }
        let path = self.object_path(&item.sha1);
        match std::fs::File::open(&path) {
            Ok(f) => {
                self.index.touch(&item.sha1);
                Some(Arc::new(f))
            }
            Err(e) => {
                tracing::info!(id = %item.id, error = %e, "cannot open a cached object; fetching it again");
                self.ready.invalidate(&item.sha1).await;
                self.index.forget(&item.sha1);
                None
            }
        }
    }

    fn find_transfer(&self, item: &Item) -> Option<Arc<Transfer>> {
        self.transfers.lock().ok()?.get(&item.sha1).cloned()
    }

    /// A reader of `t`, unless `t` ended or was dropped from the registry meanwhile.
    fn reader(self: &Arc<Self>, t: &Arc<Transfer>) -> Option<Reader> {
        let map = self.transfers.lock().ok()?;
        let registered = map.get(&t.item.sha1).is_some_and(|x| Arc::ptr_eq(x, t));
        let mut st = t.lock().ok()?;
        let usable = match &st.phase {
            Phase::Fetching => registered,
            Phase::Done => true,
            Phase::Failed(_) => false,
        };
        if !usable {
            return None;
        }
        t.interest.fetch_add(1, Ordering::SeqCst);
        st.streamed = true;
        let opened_gen = st.gen;
        drop(st);
        drop(map);
        Some(Reader {
            cache: self.clone(),
            t: t.clone(),
            opened_gen,
            window: Mutex::new(Window::default()),
            whole_file: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Creates the transfer of `item` (or returns the one another task just created);
    /// `None` if another download of it finished meanwhile (the object is verified now).
    /// A prefetch (`ahead`) goes only to the disk, and only while it leaves room for the
    /// reads programs wait on ([`space::Room::fits_prefetch`]); it is never kept in memory,
    /// and finding no room is not reported as a full disk (it is only not fetched ahead).
    async fn start_transfer(
        self: &Arc<Self>,
        item: &Item,
        ahead: bool,
    ) -> Result<Option<Arc<Transfer>>, ContentError> {
        // One creation at a time per file; the one behind the gate finds the transfer made.
        let gate = self
            .starting
            .lock()
            .map_err(|_| ContentError::Internal("the start gate's lock was poisoned".into()))?
            .entry(item.sha1)
            .or_default()
            .clone();
        let started = {
            let _one = gate.lock().await;
            self.start_transfer_now(item, ahead).await
        };
        if let Ok(mut g) = self.starting.lock() {
            // Ours and the map's: nobody else waits at this gate.
            if Arc::strong_count(&gate) <= 2 {
                g.remove(&item.sha1);
            }
        }
        started
    }

    /// [`Self::start_transfer`] once this task is the only one creating `item`'s.
    async fn start_transfer_now(
        self: &Arc<Self>,
        item: &Item,
        ahead: bool,
    ) -> Result<Option<Arc<Transfer>>, ContentError> {
        if let Some(t) = self.find_transfer(item) {
            return Ok(Some(t));
        }
        if self.ready.contains_key(&item.sha1) {
            return Ok(None);
        }
        let (store, on_disk) = if ahead {
            let fits = self
                .room
                .fits_prefetch(item.size, self.index.total_bytes())
                .unwrap_or(false);
            if !fits {
                return Ok(None);
            }
            self.disk_store(item).await?
        } else {
            self.new_store(item, true).await?
        };
        let t = Arc::new(Transfer::new(
            item.clone(),
            store,
            on_disk,
            self.pieces.clone(),
        ));
        {
            let mut map = self.transfers.lock().map_err(|_| {
                ContentError::Internal("the transfer registry's lock was poisoned".into())
            })?;
            if let Some(other) = map.get(&item.sha1) {
                return Ok(Some(other.clone()));
            }
            // Creating the store took a while: another download may have finished meanwhile
            // (it is marked ready before it leaves the registry).
            if self.ready.contains_key(&item.sha1) {
                return Ok(None);
            }
            map.insert(item.sha1, t.clone());
        }
        if t.digest(t.lock()?.gen).is_some() {
            // Resumed with every part on disk: no job will run, verify now.
            let (cache, t2) = (self.clone(), t.clone());
            tokio::spawn(async move { cache.finalize(&t2, 1).await });
        }
        Ok(Some(t))
    }

    /// Where a download of `item` goes: a `.part` file if the disk has room (and `disk`),
    /// else memory within the budget; with what a resumable download found on disk.
    async fn new_store(
        &self,
        item: &Item,
        disk: bool,
    ) -> Result<(Store, Option<resume::OnDisk>), ContentError> {
        if disk {
            match self.disk_store(item).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    self.stats.cache_failures.fetch_add(1, Ordering::Relaxed);
                    self.room.report_full(&e.to_string());
                }
            }
        }
        Ok((self.memory_store(item).await?, None))
    }

    /// A `.part` file for `item`: a resumable one ([`resume`]) for a large file unless the
    /// service is known to ignore Range, else a plain one.
    async fn disk_store(
        &self,
        item: &Item,
    ) -> Result<(Store, Option<resume::OnDisk>), ContentError> {
        let resumable = item.size > resume::RESUME_ABOVE && self.range_support() != Some(false);
        if resumable {
            // Its parts are counted by the download's reservation from now on.
            self.index.take_partial(&item.sha1);
        }
        // Under the cap first (objects and downloads in progress), then above the floor.
        for victim in self.index.reserve(item.size) {
            self.delete_victim(&victim).await;
        }
        let cap = CapHold {
            index: self.index.clone(),
            size: item.size,
            released: false.into(),
        };
        let resumed = if resumable {
            self.open_resumable(item).await
        } else {
            None
        };
        let on_hand = resumed.as_ref().map_or(0, |r| r.on_disk.present.len());
        let reservation = self.make_room(item, item.size - on_hand).await?;
        if let Some(r) = resumed {
            if on_hand > 0 {
                self.stats.resumed.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_resumed
                    .fetch_add(on_hand, Ordering::Relaxed);
            }
            let on_disk = (on_hand > 0).then_some(r.on_disk);
            return Ok((
                Store::Disk {
                    writer: r.writer,
                    room: Mutex::new(Some(reservation)),
                    cap,
                    journal: Some(Box::new(r.journal)),
                },
                on_disk,
            ));
        }
        // Creating a file can take a millisecond on a busy ext4 (its inode allocator): off
        // the async threads, which carry every download's bytes.
        let part = self.layout.part_path(&item.sha1);
        let (fs, path) = (self.fs.clone(), part.clone());
        let size = item.size;
        let (writer, allocated) = tokio::task::spawn_blocking(move || {
            let writer = PartWriter::create(&*fs, path)?;
            let allocated = writer.preallocate(0..size);
            Ok::<_, std::io::Error>((writer, allocated))
        })
        .await
        .map_err(|e| ContentError::Internal(format!("a cache writer thread failed: {e}")))?
        .map_err(|e| ContentError::io(&part, "create", e))?;
        Ok((
            Store::Disk {
                writer,
                room: Mutex::new((!allocated).then_some(reservation)),
                cap,
                journal: None,
            },
            None,
        ))
    }

    /// Opens the resumable download of `item` (re-verifying the parts on disk). `None` when
    /// it cannot be had: held by another download of the same file (waited for a little,
    /// as one that was just cancelled lets go of it at once), or the disk failed.
    async fn open_resumable(&self, item: &Item) -> Option<resume::Resumable> {
        for _ in 0..RESUME_LOCK_TRIES {
            let (fs, layout, it) = (self.fs.clone(), self.layout.clone(), item.clone());
            let (index, mode) = (self.index.clone(), self.range_mode.clone());
            let opened =
                tokio::task::spawn_blocking(move || resume::open(&*fs, &layout, &it, index, mode))
                    .await;
            match opened {
                Ok(Ok(Some(r))) => {
                    // A download that let go of it meanwhile may have counted it again.
                    self.index.take_partial(&item.sha1);
                    return Some(r);
                }
                Ok(Ok(None)) => {
                    if self.find_transfer(item).is_some() {
                        // A live download of the same file: the caller joins it.
                        return None;
                    }
                    tokio::time::sleep(RESUME_LOCK_WAIT).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(id = %item.id, error = %e, "cannot keep a resumable download; this one is not kept if cut");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(id = %item.id, error = %e, "a resume check failed");
                    return None;
                }
            }
        }
        tracing::debug!(id = %item.id, "a resumable download stays held by another writer; downloading without it");
        None
    }

    async fn memory_store(&self, item: &Item) -> Result<Store, ContentError> {
        let too_big = || ContentError::TooBigForMemory {
            id: item.id,
            size: item.size,
            budget: self.memory_budget,
        };
        if item.size > self.memory_budget {
            return Err(too_big());
        }
        let kib = u32::try_from(item.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let permit =
            match tokio::time::timeout(MEMORY_WAIT, self.memory.clone().acquire_many_owned(kib))
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(ContentError::ShuttingDown),
                Err(_) => return Err(too_big()),
            };
        let len = usize::try_from(item.size).map_err(|_| too_big())?;
        self.stats.uncached_reads.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id = %item.id, size = item.size, "kept in memory (not cached)");
        Ok(Store::Memory {
            buf: std::sync::RwLock::new(vec![0u8; len].into_boxed_slice()),
            _budget: permit,
        })
    }

    /// Deletes what eviction chose: an object, or a resumable download nobody holds.
    async fn delete_victim(&self, victim: &index::Victim) {
        if victim.partial {
            let layout = self.layout.clone();
            let sha1 = victim.sha1;
            let gone =
                tokio::task::spawn_blocking(move || resume::remove_if_unlocked(&layout, &sha1))
                    .await
                    .unwrap_or(false);
            if gone {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.delete_object(&victim.sha1).await;
        }
    }

    async fn delete_object(&self, victim: &Sha1Digest) {
        self.ready.invalidate(victim).await;
        let path = self.object_path(victim);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot evict");
            }
        }
        self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.evicted.get() {
            f();
        }
    }

    /// Evicts until the disk has room for `need` more bytes of `item` above the floor;
    /// reserves that room.
    async fn make_room(&self, item: &Item, need: u64) -> Result<Reservation, ContentError> {
        let mut available = 0;
        for _ in 0..4 {
            let (short, space) = self.room.shortfall(need).map_err(|e| {
                ContentError::io(&self.layout.objects, "measure the free space of", e)
            })?;
            available = space.available;
            if short == 0 {
                return Ok(self.room.reserve(need));
            }
            let victims = self.index.evict_bytes(short, &item.sha1);
            if victims.is_empty() {
                break;
            }
            tracing::debug!(
                count = victims.len(),
                short,
                "evicting to keep the free-space floor"
            );
            for v in &victims {
                self.delete_victim(v).await;
            }
        }
        Err(ContentError::NoRoom {
            id: item.id,
            size: item.size,
            available,
        })
    }

    /// Whether `item`'s object is on disk and right: hashed once per daemon (concurrent
    /// callers share the check), a damaged one deleted ([`Self::verify_existing`]).
    async fn found_on_disk(&self, item: &Item) -> bool {
        let path = self.object_path(&item.sha1);
        tokio::fs::metadata(&path).await.is_ok()
            && self
                .ready
                .try_get_with(item.sha1, self.verify_existing(item, &path))
                .await
                .is_ok()
    }

    /// An object on disk from an earlier daemon: hashed before it is served. `Ok` when it
    /// is there and right; a damaged one is deleted.
    async fn verify_existing(&self, item: &Item, path: &Path) -> Result<(), ContentError> {
        let damaged = |why: String| ContentError::Mismatch {
            id: item.id,
            detail: why,
        };
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| ContentError::io(path, "read", e))?
            .len();
        let verdict = if len != item.size {
            Err(format!(
                "it holds {len} bytes, the listing says {}",
                item.size
            ))
        } else {
            let p = path.to_path_buf();
            match tokio::task::spawn_blocking(move || check::hash_file(&p)).await {
                Ok(Ok((got, n))) => {
                    self.stats.verified_on_open.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_verified_on_open
                        .fetch_add(n, Ordering::Relaxed);
                    if got == item.sha1 && n == item.size {
                        Ok(())
                    } else {
                        Err(format!(
                            "its SHA-1 is {got}, the listing says {}",
                            item.sha1
                        ))
                    }
                }
                Ok(Err(e)) => Err(format!("it cannot be read: {e}")),
                Err(e) => Err(format!("the check failed: {e}")),
            }
        };
        match verdict {
            Ok(()) => {
                for v in self.index.admit(item.sha1, item.size) {
                    self.delete_victim(&v).await;
                }
                Ok(())
            }
            Err(why) => {
                self.stats.damaged.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %item.id, path = %path.display(), "cached object damaged on disk ({why}); deleting it and fetching it again");
                if let Err(e) = tokio::fs::remove_file(path).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "cannot delete a damaged object");
                    }
                }
                self.index.forget(&item.sha1);
                Err(damaged(why))
            }
        }
    }

    /// Asks for the bytes `range` of `t`: jobs for what is neither present nor asked for.
    fn want(self: &Arc<Self>, t: &Arc<Transfer>, range: Range<u64>, how: Want) {
        let size = t.size();
        let range = range.start.min(size)..range.end.min(size);
        if range.is_empty() {
            return;
        }
        let Ok(mut st) = t.lock() else { return };
        if !matches!(st.phase, Phase::Fetching) {
            return;
        }
        if matches!(how, Want::Demand) {
            for j in &st.jobs {
                if j.range.start < range.end && range.start < j.range.end {
                    j.urgency.set_demand();
                }
            }
        }
        let urgency = |offset: u64| match how {
            Want::Demand => Urgency::demand(),
            Want::Prefetch(rank) => Urgency::prefetch(rank.saturating_add(offset)),
        };
        match self.range_support() {
            Some(false) => {
                if !st.whole_job {
                    st.whole_job = true;
                    st.requested.insert(0..size);
                    self.spawn_job(t, &mut st, 0..size, urgency(0), true);
                }
            }
            mode => {
                // A demand read asks for whole MiBs, so the kernel's next requests find
                // their bytes on the way.
                let range = match how {
                    Want::Demand => range.start..range.end.next_multiple_of(MIN_REQUEST).min(size),
                    Want::Prefetch(_) => range,
                };
                let mut have = st.requested.clone();
                for s in st.present.spans() {
                    have.insert(s.clone());
                }
                for gap in have.gaps(range.clone()) {
                    let mut at = gap.start;
                    while at < gap.end {
                        let end = (at / CHUNK + 1).saturating_mul(CHUNK).min(gap.end);
                        if mode.is_none() && !st.jobs.is_empty() {
                            // Until the first answer says whether Range is honoured, one
                            // request per file: a server that ignores it would send the
                            // whole file to each.
                            return;
                        }
                        st.requested.insert(at..end);
                        self.spawn_job(t, &mut st, at..end, urgency(at - range.start), false);
                        at = end;
                    }
                }
            }
        }
    }

    fn spawn_job(
        self: &Arc<Self>,
        t: &Arc<Transfer>,
        st: &mut transfer::State,
        range: Range<u64>,
        urgency: Arc<Urgency>,
        whole: bool,
    ) {
        st.next_job += 1;
        let id = st.next_job;
        let handle = tokio::spawn(fetcher::run(
            self.clone(),
            t.clone(),
            st.gen,
            id,
            range.clone(),
            urgency.clone(),
            whole,
        ));
        st.jobs.push(JobInfo {
            id,
            range,
            urgency,
            abort: handle.abort_handle(),
        });
    }

    /// Fetches `range` a second time to confirm the bytes a first read is given.
    fn spawn_confirm(
        self: &Arc<Self>,
        t: &Arc<Transfer>,
        st: &mut transfer::State,
        range: Range<u64>,
    ) {
        st.next_job += 1;
        let id = st.next_job;
        st.confirm_requested.insert(range.clone());
        let handle = tokio::spawn(fetcher::confirm(
            self.clone(),
            t.clone(),
            st.gen,
            id,
            range.clone(),
        ));
        st.jobs.push(JobInfo {
            id,
            range,
            urgency: Urgency::demand(),
            abort: handle.abort_handle(),
        });
    }

    /// What happens when a job ends.
    async fn job_ended(
        self: &Arc<Self>,
        t: &Arc<Transfer>,
        gen: u64,
        id: u64,
        range: &Range<u64>,
        end: JobEnd,
    ) {
        if let Ok(mut st) = t.lock() {
            if st.gen == gen {
                let whole = st
                    .jobs
                    .iter()
                    .any(|j| j.id == id && j.range.start == 0 && j.range.end == t.size());
                st.jobs.retain(|j| j.id != id);
                if !matches!(end, JobEnd::Done | JobEnd::Verify) {
                    st.requested.remove(range.clone());
                    if whole || st.whole_job && st.jobs.is_empty() {
                        st.whole_job = false;
                        st.requested = RangeSet::new();
                    }
                }
            }
        }
        match end {
            JobEnd::Done | JobEnd::Stale => {
                // The first answer may just have told whether Range is honoured: the rest
                // of a prefetched file can now be asked for.
                let rewant = t.lock().ok().and_then(|s| s.wanted_whole);
                if let Some(rank) = rewant {
                    self.want(t, 0..t.size(), Want::Prefetch(rank));
                }
            }
            JobEnd::Verify => self.finalize(t, gen).await,
            JobEnd::GaveUp(e) => {
                tracing::warn!(id = %t.item.id, error = %e, "giving up on a part of the download for now");
                if let Ok(mut st) = t.lock() {
                    st.last_error = Some(e);
                }
            }
            JobEnd::Fatal(e) => self.fail(t, e),
            JobEnd::Mismatch(detail) => self.mismatch(t, gen, detail).await,
            JobEnd::StoreFailed(e) => {
                let what = ContentError::io(Path::new("the cache file"), "write", e);
                self.store_failed(t, gen, what).await;
            }
        }
        t.bump();
    }

    /// All bytes of generation `gen` are in and hashed: verify, publish, and finish.
    async fn finalize(self: &Arc<Self>, t: &Arc<Transfer>, gen: u64) {
        let Some(digest) = t.digest(gen) else { return };
        if digest != t.item.sha1 {
            let detail = format!("SHA-1 is {digest}, the listing says {}", t.item.sha1);
            self.mismatch(t, gen, detail).await;
            return;
        }
        let (store, carried) = match t.lock() {
            Ok(st) if st.gen == gen => (st.store.clone(), st.carried.clone()),
            _ => return,
        };
        let dest = self.object_path(&t.item.sha1);
        let size = t.size();
        let checked = tokio::task::spawn_blocking(move || {
            // Bytes served by earlier generations: the same as the good ones?
            let differs = carried
                .iter()
                .any(|(r, d)| d.is_none() || store.digest(r).ok() != *d);
            if let Store::Disk {
                writer, journal, ..
            } = &*store
            {
                let len = writer.finish()?;
                if len != size {
                    return Err(std::io::Error::other(format!(
                        "the file system holds {len} bytes of the {size} written"
                    )));
                }
                writer.publish(&dest)?;
                if let Some(j) = journal {
                    j.published();
                }
            }
            Ok(differs)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let differs = match checked {
            Ok(d) => d,
            Err(e) => {
                let what = ContentError::io(Path::new("a finished cache file"), "flush", e);
                self.store_failed(t, gen, what).await;
                return;
            }
        };
        let on_disk = match t.lock() {
            Ok(st) => st.store.is_disk(),
            Err(_) => false,
        };
        if on_disk {
            if let Ok(st) = t.lock() {
                if let Store::Disk { cap, .. } = &*st.store {
                    cap.release();
                }
            }
            for v in self.index.admit(t.item.sha1, size) {
                if v.sha1 != t.item.sha1 {
                    self.delete_victim(&v).await;
                }
            }
            self.ready.insert(t.item.sha1, ()).await;
        }
        if t.size() > resume::RESUME_ABOVE {
            // Parts of an earlier download of the same bytes, left by a transfer that could
            // not take them over (they are of no use now).
            let layout = self.layout.clone();
            let sha1 = t.item.sha1;
            let _ = tokio::task::spawn_blocking(move || {
                if layout.partial_data(&sha1).exists() {
                    resume::remove_if_unlocked(&layout, &sha1);
                }
            })
            .await;
            self.index.take_partial(&t.item.sha1);
        }
        if let Ok(mut st) = t.lock() {
            st.phase = Phase::Done;
            if differs {
                st.poisoned_upto = Some(gen - 1);
            }
            st.carried.clear();
        }
        self.unregister(t);
        if differs {
            self.stats.poisoned.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                id = %t.item.id,
                "bytes already read from a download that did not match differ from the right \
                 ones: every handle opened before fails with EIO (open the file again)"
            );
            self.invalidate(&t.item);
        }
        tracing::debug!(id = %t.item.id, size, cached = on_disk, "verified");
        t.bump();
    }

    /// Generation `gen` does not match its listing: fetch again, or give up.
    async fn mismatch(self: &Arc<Self>, t: &Arc<Transfer>, gen: u64, detail: String) {
        let (tries, streamed) = match t.lock() {
            Ok(mut st) if st.gen == gen => {
                st.mismatches += 1;
                (st.mismatches, st.streamed)
            }
            _ => return,
        };
        self.stats.mismatches.fetch_add(1, Ordering::Relaxed);
        if streamed {
            // Pages of the bad download may be in the kernel's cache: drop them now.
            self.invalidate(&t.item);
        }
        let e = ContentError::Mismatch {
            id: t.item.id,
            detail,
        };
        if tries >= MISMATCH_ATTEMPTS {
            tracing::error!(id = %t.item.id, error = %e, attempts = tries, "checksum mismatch again; giving up");
            self.fail(t, e);
        } else {
            tracing::warn!(id = %t.item.id, error = %e, "checksum mismatch; downloading again");
            self.new_generation(t, gen, None).await;
        }
    }

    /// The cache disk could not take generation `gen`: go on in memory (once per
    /// generation, however many parts failed).
    async fn store_failed(self: &Arc<Self>, t: &Arc<Transfer>, gen: u64, why: ContentError) {
        self.new_generation(t, gen, Some(why)).await;
    }

    /// Starts generation `gen + 1` (after a mismatch, or in memory after the disk failed:
    /// `disk_failed`), remembering what generation `gen` served.
    async fn new_generation(
        self: &Arc<Self>,
        t: &Arc<Transfer>,
        gen: u64,
        disk_failed: Option<ContentError>,
    ) {
        let (old, served, on_disk) = match t.lock() {
            Ok(mut st)
                if st.gen == gen
                    && matches!(st.phase, Phase::Fetching)
                    && st.switching != Some(gen) =>
            {
                st.switching = Some(gen);
                (
                    st.store.clone(),
                    st.served_now.spans().to_vec(),
                    st.store.is_disk(),
                )
            }
            _ => return,
        };
        if let Some(why) = &disk_failed {
            self.stats.cache_failures.fetch_add(1, Ordering::Relaxed);
            self.room.report_full(&why.to_string());
        }
        // Its parts must not be resumed (one is wrong, or the disk failed): the next
        // generation starts from nothing.
        old.discard("the download starts again");
        let digests = tokio::task::spawn_blocking(move || {
            served
                .into_iter()
                .map(|r| {
                    let d = old.digest(&r).ok();
                    (r, d)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let store = match self
            .new_store(&t.item, disk_failed.is_none() && on_disk)
            .await
        {
            Ok((s, _)) => s,
            Err(e) => {
                if let Ok(mut st) = t.lock() {
                    st.switching = None;
                }
                return self.fail(t, e);
            }
        };
        // Hashing restarts before the generation changes: a piece of the old generation
        // still in flight is then ignored by both.
        t.reset_hash(gen + 1);
        let rewant = {
            let Ok(mut st) = t.lock() else { return };
            st.carried.extend(digests);
            st.gen = gen + 1;
            st.switching = None;
            st.store = Arc::new(store);
            st.present = RangeSet::new();
            st.requested = RangeSet::new();
            st.served_now = RangeSet::new();
            st.confirmed = RangeSet::new();
            st.confirm_requested = RangeSet::new();
            st.confirm_failed = RangeSet::new();
            for j in st.jobs.drain(..) {
                j.abort.abort();
            }
            st.whole_job = false;
            st.last_progress = Instant::now();
            st.wanted_whole
        };
        if let Some(rank) = rewant {
            self.want(t, 0..t.size(), Want::Prefetch(rank));
        }
        t.bump();
    }

    /// The transfer fails for good: every reader gets `e`, a new open starts afresh.
    fn fail(self: &Arc<Self>, t: &Arc<Transfer>, e: ContentError) {
        if let Ok(mut st) = t.lock() {
            if !matches!(st.phase, Phase::Fetching) {
                return;
            }
            tracing::error!(id = %t.item.id, name = %t.item.file_name.escape_debug(), error = %e, "cannot fetch");
            st.store.discard("the download failed");
            st.phase = Phase::Failed(e);
            for j in st.jobs.drain(..) {
                j.abort.abort();
            }
        }
        self.unregister(t);
        t.bump();
    }

    fn unregister(&self, t: &Arc<Transfer>) {
        if let Ok(mut map) = self.transfers.lock() {
            if map.get(&t.item.sha1).is_some_and(|x| Arc::ptr_eq(x, t)) {
                map.remove(&t.item.sha1);
            }
        }
    }

    fn invalidate(&self, item: &Item) {
        if let Some(f) = self.invalidator.get() {
            f(item);
        }
    }

    /// Nobody wants `t` any more (its last reader or lease is gone): cancel its jobs.
    fn lose_interest(&self, t: &Arc<Transfer>) {
        let Ok(mut map) = self.transfers.lock() else {
            return;
        };
        if t.interest.load(Ordering::SeqCst) > 0 {
            return;
        }
        let Ok(mut st) = t.lock() else { return };
        if !matches!(st.phase, Phase::Fetching) {
            return;
        }
        st.phase = Phase::Failed(ContentError::Cancelled(t.item.id));
        for j in st.jobs.drain(..) {
            j.abort.abort();
        }
        drop(st);
        if map.get(&t.item.sha1).is_some_and(|x| Arc::ptr_eq(x, t)) {
            map.remove(&t.item.sha1);
        }
        self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id = %t.item.id, "download cancelled: nobody reads it any more");
    }

    /// Starts fetching all of `item` ahead of a reader (the prefetcher's call), unless it is
    /// cached. `rank`: lower is sooner. The returned lease keeps the download wanted; drop
    /// it when the reader has opened the file or the pattern broke.
    pub async fn prefetch(self: &Arc<Self>, item: &Item, rank: u64) -> Option<Lease> {
        if self.ready.contains_key(&item.sha1) {
            return None;
        }
        if self.find_transfer(item).is_none() && self.found_on_disk(item).await {
            // Checked ahead of the reader: its open will be instant.
            return None;
        }
        let t = self.start_transfer(item, true).await.ok()??;
        {
            let map = self.transfers.lock().ok()?;
            if !map.get(&item.sha1).is_some_and(|x| Arc::ptr_eq(x, &t)) {
                return None;
            }
            let mut st = t.lock().ok()?;
            if !matches!(st.phase, Phase::Fetching) {
                return None;
            }
            t.interest.fetch_add(1, Ordering::SeqCst);
            st.wanted_whole = Some(rank);
        }
        self.stats.prefetched.fetch_add(1, Ordering::Relaxed);
        self.want(&t, 0..item.size, Want::Prefetch(rank));
        Some(Lease {
            cache: self.clone(),
            t,
        })
    }

    /// Reads all of `item` into the cache (or memory), verified: for tests and warm-ups.
    pub async fn fetch(self: &Arc<Self>, item: &Item) -> Result<(), ContentError> {
        match self.open_item(item).await? {
            Opened::Verified(_) => Ok(()),
            Opened::Streaming(r) => {
                let mut at = 0;
                while at < item.size {
                    let n = r.read(at, 1 << 20).await?.len() as u64;
                    if n == 0 {
                        break;
                    }
                    at += n;
                }
                Ok(())
            }
        }
    }

    /// The bytes `offset..offset+len` of `t` for a reader (see [`Reader::read`]).
    async fn read(
        self: &Arc<Self>,
        r: &Reader,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, ContentError> {
        let t = &r.t;
        let size = t.size();
        let end = offset.saturating_add(u64::from(len)).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let want = offset..end;
        let (first, ahead) = r
            .window
            .lock()
            .map(|mut w| (w.reads == 0, w.note(&want, size)))
            .unwrap_or((false, 0..0));
        // The read-ahead is asked for after the read's own bytes (so that they go first).
        let mut ahead = Some(ahead).filter(|a| !a.is_empty());
        // Verified bytes only (but for a confirmed first read): small files, and any file
        // a copy tool reads in a folder it copies. A copy reads the whole file, so its
        // first read waits for the whole file too: confirming it would download its first
        // MiB twice (a quarter more bytes on a camera roll of 4 MB photos) for nothing.
        let copying = r.whole_file.load(Ordering::Relaxed);
        let verified_only = size <= self.stream_above || copying;
        let confirm_range = want.start..want.end.next_multiple_of(MIN_REQUEST).min(size);
        let mut rx = t.progress.subscribe();
        let started = Instant::now();
        loop {
            enum Next {
                Read(Arc<Store>),
                /// Bytes of the read, then (for a verified-only read) the whole file.
                Wait {
                    whole: bool,
                },
            }
            let (next, last_progress) = {
                let mut st = t.lock()?;
                if st.poisoned_upto.is_some_and(|p| r.opened_gen <= p) {
                    return Err(ContentError::Poisoned { id: t.item.id });
                }
                if matches!(st.phase, Phase::Fetching)
                    && st.timed_out.is_some_and(|at| at.elapsed() < FAIL_FAST)
                    && !st.present.contains(&want)
                {
                    return Err(self.timed_out(t, &st, self.io_timeout));
                }
                let next = match &st.phase {
                    Phase::Failed(e) => return Err(e.clone()),
                    Phase::Done => Next::Read(st.store.clone()),
                    Phase::Fetching => {
                        let completes = st.served.covers_with(&want, size);
                        if verified_only {
                            let confirmed = st.confirmed.contains(&want);
                            // Confirming a whole file would cost what waiting for it does.
                            let may_confirm = !copying
                                && (first || st.confirm_requested.contains(&want))
                                && confirm_range != (0..size)
                                && self.range_support() != Some(false)
                                && !st.confirm_failed.overlaps(&want);
                            if confirmed && st.present.contains(&want) && !completes {
                                st.served.insert(want.clone());
                                st.served_now.insert(want.clone());
                                Next::Read(st.store.clone())
                            } else if may_confirm && !completes {
                                let ask = self.range_support() == Some(true)
                                    && !st.confirm_requested.contains(&want);
                                if ask {
                                    self.spawn_confirm(t, &mut st, confirm_range.clone());
                                }
                                Next::Wait { whole: false }
                            } else {
                                Next::Wait { whole: true }
                            }
                        } else if !st.present.contains(&want) {
                            Next::Wait { whole: false }
                        } else if completes {
                            // This read would hand out the last bytes not handed out yet:
                            // only once the whole file matched.
                            Next::Wait { whole: true }
                        } else {
                            st.served.insert(want.clone());
                            st.served_now.insert(want.clone());
                            Next::Read(st.store.clone())
                        }
                    }
                };
                rx.borrow_and_update();
                (next, st.last_progress)
            };
            match next {
                Next::Read(store) => {
                    if let Some(a) = ahead.take() {
                        self.want(t, a, Want::Prefetch(0));
                    }
                    let n = (end - offset) as usize;
                    return tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; n];
                        store.read_at(&mut buf, offset).map(|_| buf)
                    })
                    .await
                    .map_err(|e| ContentError::Internal(format!("a reader thread failed: {e}")))?
                    .map_err(|e| ContentError::io(Path::new("a cache file"), "read", e));
                }
                Next::Wait { whole } => {
                    // Asked again at every wake: after a new generation or a job that gave
                    // up, the bytes need a new job.
                    self.want(t, want.clone(), Want::Demand);
                    if whole {
                        self.want(t, 0..size, Want::Demand);
                    } else if let Some(a) = ahead.take() {
                        self.want(t, a, Want::Prefetch(0));
                    }
                }
            }
            // No byte of the file for --io-timeout: fail if the service is silent too (a
            // dead network), or after PATIENCE times that anyway (see `retry`).
            let quiet_file = started.max(last_progress).elapsed();
            let dead = quiet_file >= self.io_timeout && self.quiet_for() >= self.io_timeout;
            if dead || quiet_file >= self.io_timeout * retry::PATIENCE {
                let mut st = t.lock()?;
                st.timed_out = Some(Instant::now());
                let e = self.timed_out(t, &st, quiet_file);
                tracing::error!(id = %t.item.id, error = %e, "read failed");
                return Err(e);
            }
            let check = (self.io_timeout / 4).max(Duration::from_millis(100));
            let _ = tokio::time::timeout(check, rx.changed()).await;
        }
    }
}

impl ContentCache {
    /// Waits until the file of `r` is verified, asking for all of it: `true` once it is
    /// (open the object), `false` if it failed, was poisoned for this reader, or no byte
    /// came for `--io-timeout` (the reader's own reads then say why, and time out as
    /// usual). See [`Reader::wait_verified`].
    async fn wait_verified(self: &Arc<Self>, r: &Reader) -> bool {
        let t = &r.t;
        let mut rx = t.progress.subscribe();
        let started = Instant::now();
        loop {
            let last_progress = {
                let Ok(st) = t.lock() else { return false };
                if st.poisoned_upto.is_some_and(|p| r.opened_gen <= p) {
                    return false;
                }
                match &st.phase {
                    Phase::Done => return true,
                    Phase::Failed(_) => return false,
                    Phase::Fetching => {}
                }
                rx.borrow_and_update();
                st.last_progress
            };
            // Asked again at every wake, as a read does (a new generation needs new jobs).
            self.want(t, 0..t.size(), Want::Demand);
            if started.max(last_progress).elapsed() >= self.io_timeout {
                return false;
            }
            let check = (self.io_timeout / 4).max(Duration::from_millis(100));
            let _ = tokio::time::timeout(check, rx.changed()).await;
        }
    }

    fn timed_out(&self, t: &Transfer, st: &transfer::State, waited: Duration) -> ContentError {
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        ContentError::TimedOut {
            id: t.item.id,
            secs: waited.as_secs(),
            last: st.last_error.as_ref().map(|e| e.to_string()),
        }
    }
}

/// A handle's reader of a transfer; keeps the download wanted while it lives.
pub struct Reader {
    cache: Arc<ContentCache>,
    t: Arc<Transfer>,
    opened_gen: u64,
    window: Mutex<Window>,
    whole_file: std::sync::atomic::AtomicBool,
}

impl Reader {
    /// The handle belongs to a copy of a folder (the prefetcher saw the pattern): hand it
    /// only verified bytes (its reads wait for the whole file, fetched ahead anyway).
    pub fn set_whole_file(&self, on: bool) {
        self.whole_file.store(on, Ordering::Relaxed);
    }

    /// Reads at most `len` bytes at `offset`; fewer only at the end of the file. Returns as
    /// soon as the bytes are in, except the read that would hand out the file's last bytes
    /// not yet handed out, which returns once the whole file matched its SHA-1.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, ContentError> {
        self.cache.read(self, offset, len).await
    }

    /// Waits until the whole file is verified (asking for every byte now): `true` when it
    /// is, and [`ContentCache::open_item`] then gives the verified object. For a copy's
    /// open: its reads wait for the whole file anyway, and a verified object is read by
    /// the kernel (passthrough), not by the daemon. `false`: read through this reader,
    /// whose reads report the failure or the timeout.
    pub async fn wait_verified(&self) -> bool {
        self.cache.wait_verified(self).await
    }

    pub fn item(&self) -> &Item {
        &self.t.item
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.t.interest.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.cache.lose_interest(&self.t);
        }
    }
}

/// The prefetcher's hold on a download (see [`ContentCache::prefetch`]).
pub struct Lease {
    cache: Arc<ContentCache>,
    t: Arc<Transfer>,
}

impl Lease {
    pub fn item(&self) -> &Item {
        &self.t.item
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut st) = self.t.lock() {
            st.wanted_whole = None;
        }
        if self.t.interest.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.cache.lose_interest(&self.t);
        }
    }
}
