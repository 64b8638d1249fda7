//! Content: the bytes of items, fetched from the cloud, verified against the listed SHA-1
//! and kept in an on-disk cache.
//!
//! Design (DESIGN.md §4):
//! - **Content-addressed.** A verified file lives at `<cache>/objects/<first 2 hex>/<sha1>`
//!   ([`layout`]): the same photo in two albums is stored and downloaded once, and an
//!   object's name is its proof of integrity.
//! - **Verified as it lies on disk.** Bytes go to a `.part` file through an
//!   [`writer::ObjectWriter`]: every write and the final flush are checked, the SHA-1 is
//!   computed over the bytes that were written, and the file's length is read back from the
//!   file system. Only a file whose length and SHA-1 match the listing is renamed into
//!   `objects/`. A crash or a kill leaves at worst a `.part`, deleted at the next start once
//!   no live writer holds its lock.
//! - **Checked before it is first served.** An object found on disk (put there by an earlier
//!   daemon) is hashed again before this daemon serves it the first time ([`check`]); a
//!   mismatch (a flipped bit, a truncated file) deletes it and fetches it again. Objects
//!   this daemon verified are remembered (`ready`) and not hashed again.
//! - **Room on the disk** ([`space`]): a free-space floor is kept on the cache's file system
//!   (`--min-free-space`), evicting least recently read objects as needed.
//! - **A full or failing disk makes reads slower, never wrong.** When the object cannot be
//!   written (no room even after eviction, or a write, flush or rename fails), the read is
//!   a cache miss: the file is fetched again into memory, verified there, and served from
//!   memory for as long as its handle is open. Memory for such files is bounded
//!   ([`DEFAULT_MEMORY_BUDGET`]); a file bigger than the budget fails with EIO and the log
//!   says why. The first such event is logged, with the free space; later ones are
//!   counted and mentioned again at most every 10 minutes.
//! - **Single-flight.** Concurrent readers of one object share one download
//!   (`moka`'s `try_get_with` coalesces them); failures are not cached, the next read retries.
//! - **Bounded.** At most `max_downloads` downloads run at once (default 8, the parallelism
//!   the spec's reference tool uses against the real service).
//! - **Capped.** The objects on disk are kept under `max_bytes` (`--max-cache-size`, default
//!   10 GiB) by evicting the least recently read ones (see [`index`]).
//! - **Verification policy.** A size or SHA-1 mismatch gets a fresh download, up to
//!   [`MISMATCH_ATTEMPTS`] downloads in all; then it is an error (EIO for the reader). Three,
//!   not two: on a flaky link a damaged transfer is a transient event, and at a 2 % damage
//!   rate two in a row would still fail 4 files in 10 000, three in a row 8 in a million,
//!   while a file the service really stores damaged costs just one download more. A body cut
//!   mid-way (reset, timeout) is a transient failure and is retried up to
//!   `cloud::MAX_ATTEMPTS` times in all.

pub mod check;
mod error;
mod index;
pub mod layout;
pub mod space;
pub mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha1::{Digest, Sha1};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use error::ContentError;
pub use space::MinFree;

use crate::cloud::{CloudError, GalleryApi, MAX_ATTEMPTS};
use crate::model::{Item, Sha1Digest};
use layout::Layout;
use space::{Reservation, Room, SpaceProbe, Statvfs};
use writer::{DiskFs, ObjectWriter, PartFs};

#[derive(Clone, Debug)]
pub struct ContentConfig {
    pub cache_dir: PathBuf,
    pub max_downloads: usize,
    /// The cap on the bytes of verified objects kept on disk.
    pub max_bytes: u64,
    /// The free space kept on the cache's file system.
    pub min_free: MinFree,
    /// The most bytes held in memory for files that could not be cached.
    pub memory_budget: u64,
}

/// Downloads of one object whose bytes do not match the listing before the read fails.
pub const MISMATCH_ATTEMPTS: u32 = 3;

/// The default of `--max-cache-size`.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 10 << 30;

/// Memory for files served without caching: 256 MiB holds 30 or more photos of a copy in
/// progress, or a short video; a longer video with no room on disk fails with EIO.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// How long a read waits for memory held by other uncached reads before it gives up.
const MEMORY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Counters of the content layer (read by tests and, later, `status.json`).
#[derive(Debug, Default)]
pub struct ContentStats {
    pub downloads: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub mismatches: AtomicU64,
    pub cache_hits: AtomicU64,
    pub evictions: AtomicU64,
    /// Objects found damaged on disk (and deleted).
    pub damaged: AtomicU64,
    /// Objects hashed on disk before their first serve, and their bytes.
    pub verified_on_open: AtomicU64,
    pub bytes_verified_on_open: AtomicU64,
    /// Reads served from memory because the file could not be cached.
    pub uncached_reads: AtomicU64,
    /// Downloads whose writing to the cache failed (write, flush, rename, or no room).
    pub cache_failures: AtomicU64,
}

/// The verified bytes of one item, for as long as a handle needs them.
pub enum ItemBytes {
    /// A verified object of the cache, open for reading.
    Cached(std::fs::File),
    /// Verified bytes that could not be cached; the permit is their share of the budget.
    Memory {
        bytes: Bytes,
        _budget: OwnedSemaphorePermit,
    },
}

impl ItemBytes {
    /// Reads at most `buf.len()` bytes at `offset`; fewer only at the end of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        match self {
            ItemBytes::Cached(file) => {
                use std::os::unix::fs::FileExt;
                let mut filled = 0;
                while filled < buf.len() {
                    match file.read_at(&mut buf[filled..], offset + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(filled)
            }
            ItemBytes::Memory { bytes, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
        }
    }

    pub fn is_cached(&self) -> bool {
        matches!(self, ItemBytes::Cached(_))
    }
}

pub struct ContentCache {
    layout: Layout,
    api: Arc<dyn GalleryApi>,
    fs: Arc<dyn PartFs>,
    room: Room,
    slots: Semaphore,
    /// Objects verified on disk in this daemon's life; also the single-flight point.
    ready: moka::future::Cache<Sha1Digest, Arc<PathBuf>>,
    index: index::CacheIndex,
    /// Budget for uncached reads, in KiB permits.
    memory: Arc<Semaphore>,
    memory_budget: u64,
    pub stats: ContentStats,
}

/// Where a download goes.
enum Sink<'a> {
    Disk(&'a mut ObjectWriter),
    Memory(&'a mut BytesMut),
}

impl Sink<'_> {
    async fn put(&mut self, chunk: &[u8]) -> Result<(), ContentError> {
        match self {
            Sink::Disk(w) => w
                .write(chunk)
                .await
                .map_err(|e| ContentError::io(w.part(), "write", e)),
            Sink::Memory(buf) => {
                buf.extend_from_slice(chunk);
                Ok(())
            }
        }
    }
}

impl ContentCache {
    /// Prepares the cache directory (creating it private, and deleting `.part` files of
    /// downloads no live daemon is doing).
    pub fn open(config: &ContentConfig, api: Arc<dyn GalleryApi>) -> Result<Self, ContentError> {
        Self::open_with(config, api, Arc::new(DiskFs), Arc::new(Statvfs))
    }

    /// [`ContentCache::open`] with the file system and the free-space probe given (tests).
    pub fn open_with(
        config: &ContentConfig,
        api: Arc<dyn GalleryApi>,
        fs: Arc<dyn PartFs>,
        probe: Arc<dyn SpaceProbe>,
    ) -> Result<Self, ContentError> {
        let layout = Layout::new(&config.cache_dir);
        for dir in [&config.cache_dir, &layout.objects, &layout.tmp] {
            layout::create_private_dir(dir).map_err(|e| ContentError::io(dir, "create", e))?;
        }
        let stale = layout::remove_stale_parts(&layout.tmp);
        if stale > 0 {
            tracing::info!(
                count = stale,
                "deleted downloads left by a daemon that is gone"
            );
        }
        let index = index::CacheIndex::scan(&layout.objects, config.max_bytes);
        tracing::info!(
            objects = index.len(),
            bytes = index.total_bytes(),
            cap = config.max_bytes,
            min_free = ?config.min_free,
            "content cache opened"
        );
        let kib = usize::try_from(config.memory_budget.div_ceil(1024))
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Ok(ContentCache {
            room: Room::new(&config.cache_dir, config.min_free, probe),
            index,
            layout,
            api,
            fs,
            slots: Semaphore::new(config.max_downloads.max(1)),
            ready: moka::future::Cache::new(1_000_000),
            memory: Arc::new(Semaphore::new(kib)),
            memory_budget: config.memory_budget,
            stats: ContentStats::default(),
        })
    }

    /// Where a verified object lives (whether or not it is there yet).
    pub fn object_path(&self, sha1: &Sha1Digest) -> PathBuf {
        self.layout.object_path(sha1)
    }

    /// The path of the item's object, verified on disk, downloading it first if needed.
    /// Fails with a cache-side error ([`ContentError::is_cache_side`]) when it cannot be
    /// cached; [`ContentCache::open_item`] then serves it from memory.
    pub async fn fetch(&self, item: &Item) -> Result<Arc<PathBuf>, ContentError> {
        let path = self
            .ready
            .try_get_with(item.sha1, self.obtain(item))
            .await
            .map_err(|e| (*e).clone())?;
        self.index.touch(&item.sha1);
        Ok(path)
    }

    /// The item's verified bytes: its cached object opened for reading, or, when the
    /// cache cannot hold it, the bytes fetched into memory. An object that vanished
    /// between the lookup and the open (evicted, or deleted by hand) is fetched again.
    pub async fn open_item(&self, item: &Item) -> Result<ItemBytes, ContentError> {
        let mut why = None;
        for _ in 0..2 {
            match self.fetch(item).await {
                Ok(path) => match std::fs::File::open(&*path) {
                    Ok(file) => return Ok(ItemBytes::Cached(file)),
                    Err(e) => {
                        tracing::info!(id = %item.id, error = %e, "cannot open a cached object; fetching it again");
                        self.ready.invalidate(&item.sha1).await;
                        self.index.forget(&item.sha1);
                        why = Some(ContentError::io(&path, "open", e));
                    }
                },
                Err(e) if e.is_cache_side() => {
                    why = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = &why {
            self.stats.cache_failures.fetch_add(1, Ordering::Relaxed);
            self.room.report_full(&e.to_string());
        }
        self.fetch_to_memory(item).await
    }

    /// Records a verified object and deletes what no longer fits under the cap.
    async fn admit(&self, sha1: Sha1Digest, size: u64) {
        for victim in self.index.admit(sha1, size) {
            self.delete_object(&victim).await;
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
    }

    /// Evicts until the disk has room for `item` above the floor; reserves that room.
    async fn make_room(&self, item: &Item) -> Result<Reservation, ContentError> {
        let mut available = 0;
        for _ in 0..4 {
            let (short, space) = self.room.shortfall(item.size).map_err(|e| {
                ContentError::io(&self.layout.objects, "measure the free space of", e)
            })?;
            available = space.available;
            if short == 0 {
                return Ok(self.room.reserve(item.size));
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
                self.delete_object(v).await;
            }
        }
        Err(ContentError::NoRoom {
            id: item.id,
            size: item.size,
            available,
        })
    }

    /// An object on disk from an earlier daemon: hashed before it is served. `true` when
    /// it is there and right; a damaged one is deleted.
    async fn verify_existing(&self, item: &Item, path: &Path) -> bool {
        let len = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(_) => return false,
        };
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
            Ok(()) => true,
            Err(why) => {
                self.stats.damaged.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %item.id, path = %path.display(), "cached object damaged on disk ({why}); deleting it and fetching it again");
                if let Err(e) = tokio::fs::remove_file(path).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "cannot delete a damaged object");
                    }
                }
                self.index.forget(&item.sha1);
                false
            }
        }
    }

    async fn obtain(&self, item: &Item) -> Result<Arc<PathBuf>, ContentError> {
        let path = self.object_path(&item.sha1);
        if self.verify_existing(item, &path).await {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            self.admit(item.sha1, item.size).await;
            return Ok(Arc::new(path));
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ContentError::ShuttingDown)?;
        self.with_retries(item, || self.download_to_disk(item, &path))
            .await?;
        self.admit(item.sha1, item.size).await;
        Ok(Arc::new(path))
    }

    /// Fetches the item into memory (verified) because it cannot be cached.
    async fn fetch_to_memory(&self, item: &Item) -> Result<ItemBytes, ContentError> {
        if item.size > self.memory_budget {
            return Err(ContentError::TooBigForMemory {
                id: item.id,
                size: item.size,
                budget: self.memory_budget,
            });
        }
        let kib = u32::try_from(item.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let permit =
            match tokio::time::timeout(MEMORY_WAIT, self.memory.clone().acquire_many_owned(kib))
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(ContentError::ShuttingDown),
                Err(_) => {
                    return Err(ContentError::TooBigForMemory {
                        id: item.id,
                        size: item.size,
                        budget: self.memory_budget,
                    })
                }
            };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ContentError::ShuttingDown)?;
        let bytes = self
            .with_retries(item, || self.download_to_memory(item))
            .await?;
        self.stats.uncached_reads.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id = %item.id, size = item.size, "served from memory (not cached)");
        Ok(ItemBytes::Memory {
            bytes,
            _budget: permit,
        })
    }

    /// The one retry policy of a download: mismatches up to [`MISMATCH_ATTEMPTS`],
    /// transient failures up to `MAX_ATTEMPTS`, anything else at once.
    async fn with_retries<T, F, Fut>(&self, item: &Item, mut attempt: F) -> Result<T, ContentError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ContentError>>,
    {
        let mut mismatches = 0;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e @ ContentError::Mismatch { .. }) => {
                    self.stats.mismatches.fetch_add(1, Ordering::Relaxed);
                    mismatches += 1;
                    if mismatches >= MISMATCH_ATTEMPTS {
                        tracing::error!(id = %item.id, error = %e, attempts = mismatches, "checksum mismatch again; giving up");
                        return Err(e);
                    }
                    tracing::warn!(id = %item.id, error = %e, "checksum mismatch; downloading again");
                }
                Err(ContentError::Cloud(e)) if e.is_transient() && tries < MAX_ATTEMPTS => {
                    tracing::info!(id = %item.id, error = %e, "download interrupted; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries as u64)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens the download and checks its announced length.
    async fn start_download(&self, item: &Item) -> Result<crate::cloud::Download, ContentError> {
        let download = self
            .api
            .open_item_download(item)
            .await
            .map_err(|e| ContentError::from_cloud(item, e))?;
        if let Some(len) = download.content_length {
            if len != item.size {
                return Err(ContentError::Mismatch {
                    id: item.id,
                    detail: format!(
                        "the service sends {len} bytes, the listing says {}",
                        item.size
                    ),
                });
            }
        }
        self.stats.downloads.fetch_add(1, Ordering::Relaxed);
        Ok(download)
    }

    /// One download into a `.part` file, verified as written, then renamed to `dest`.
    async fn download_to_disk(&self, item: &Item, dest: &Path) -> Result<(), ContentError> {
        // Room first: with none, not even the request is made.
        let reservation = self.make_room(item).await?;
        let download = self.start_download(item).await?;
        let part = self.layout.part_path(&item.sha1);
        let mut writer = ObjectWriter::create(&*self.fs, part.clone(), Some(reservation))
            .map_err(|e| ContentError::io(&part, "create", e))?;
        self.receive(item, download, Sink::Disk(&mut writer))
            .await?;
        let written = writer
            .finish()
            .await
            .map_err(|e| ContentError::io(&part, "flush", e))?;
        if written.len_on_disk != item.size || written.written != item.size {
            return Err(ContentError::io(
                &part,
                "verify",
                std::io::Error::other(format!(
                    "the file system holds {} bytes of the {} written",
                    written.len_on_disk, item.size
                )),
            ));
        }
        if written.sha1 != item.sha1 {
            return Err(ContentError::Mismatch {
                id: item.id,
                detail: format!("SHA-1 is {}, the listing says {}", written.sha1, item.sha1),
            });
        }
        writer
            .publish(dest)
            .await
            .map_err(|e| ContentError::io(dest, "rename into", e))
    }

    /// One download into memory, verified.
    async fn download_to_memory(&self, item: &Item) -> Result<Bytes, ContentError> {
        let download = self.start_download(item).await?;
        let mut buf = BytesMut::with_capacity(usize::try_from(item.size).unwrap_or(0));
        self.receive(item, download, Sink::Memory(&mut buf)).await?;
        let got = Sha1Digest(Sha1::digest(&buf).into());
        if got != item.sha1 {
            return Err(ContentError::Mismatch {
                id: item.id,
                detail: format!("SHA-1 is {got}, the listing says {}", item.sha1),
            });
        }
        Ok(buf.freeze())
    }

    /// Moves the body into `sink`, checking that it has exactly the listed size.
    async fn receive(
        &self,
        item: &Item,
        download: crate::cloud::Download,
        mut sink: Sink<'_>,
    ) -> Result<(), ContentError> {
        let mut total: u64 = 0;
        let mut body = download.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ContentError::from_cloud(item, e))?;
            total += chunk.len() as u64;
            if total > item.size {
                return Err(ContentError::Mismatch {
                    id: item.id,
                    detail: format!("the service sent more than the listed {} bytes", item.size),
                });
            }
            sink.put(&chunk).await?;
            self.stats
                .bytes_downloaded
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if total != item.size {
            // A short body is a cut connection, not corrupt content.
            return Err(ContentError::Cloud(Arc::new(CloudError::Transient {
                what: format!("the download of item {}", item.id),
                detail: format!("body ended after {total} of {} bytes", item.size),
                attempts: 1,
            })));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
