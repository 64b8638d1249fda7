//! Content: the bytes of items, fetched from the cloud, verified against the listed SHA-1
//! and kept in an on-disk cache.
//!
//! Design (DESIGN.md §4):
//! - **Content-addressed.** A verified file lives at `<cache>/objects/<first 2 hex>/<sha1>`:
//!   the same photo in two albums is stored and downloaded once, and an object's name is
//!   its proof of integrity.
//! - **Atomic.** Bytes go to `<cache>/tmp/<sha1>.<random>.part` while being hashed; only a
//!   file whose size and SHA-1 match the listing is `fsync`ed and renamed into `objects/`.
//!   A crash or a kill leaves at worst a `.part` file, which a later start deletes
//!   once it is 10 minutes old (younger ones may belong to another mount sharing the cache).
//! - **Single-flight.** Concurrent readers of one object share one download
//!   (`moka`'s `try_get_with` coalesces them); failures are not cached, the next read retries.
//! - **Bounded.** At most `max_downloads` downloads run at once (default 8, the parallelism
//!   the spec's reference tool uses against the real service).
//! - **Capped.** The objects on disk are kept under `max_bytes` (`--max-cache-size`, default
//!   10 GiB) by evicting the least recently read ones (see [`index`]); copying a gallery
//!   bigger than the disk through the mount therefore works.
//! - **Verification policy.** A size or SHA-1 mismatch gets a fresh download, up to
//!   [`MISMATCH_ATTEMPTS`] downloads in all; then it is an error (EIO for the reader). Three,
//!   not two: on a flaky link a damaged transfer is a transient event, and at a 2 % damage
//!   rate two in a row would still fail 4 files in 10 000, three in a row 8 in a million,
//!   while a file the service really stores damaged costs just one download more. A body cut
//!   mid-way (reset, timeout) is a transient failure and is retried up to
//!   `cloud::MAX_ATTEMPTS` times in all.

mod error;
mod index;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

pub use error::ContentError;

use crate::cloud::{CloudError, GalleryApi, MAX_ATTEMPTS};
use crate::model::{Item, Sha1Digest};

#[derive(Clone, Debug)]
pub struct ContentConfig {
    pub cache_dir: PathBuf,
    pub max_downloads: usize,
    /// The cap on the bytes of verified objects kept on disk.
    pub max_bytes: u64,
}

/// Downloads of one object whose bytes do not match the listing before the read fails.
pub const MISMATCH_ATTEMPTS: u32 = 3;

/// The default of `--max-cache-size`.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 10 << 30;

/// Counters of the content layer (read by tests and, later, `status.json`).
#[derive(Debug, Default)]
pub struct ContentStats {
    pub downloads: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub mismatches: AtomicU64,
    pub cache_hits: AtomicU64,
    pub evictions: AtomicU64,
}

pub struct ContentCache {
    objects: PathBuf,
    tmp: PathBuf,
    api: Arc<dyn GalleryApi>,
    slots: Semaphore,
    /// Objects known to be verified and on disk; also the single-flight point.
    ready: moka::future::Cache<Sha1Digest, Arc<PathBuf>>,
    index: index::CacheIndex,
    pub stats: ContentStats,
}

impl ContentCache {
    /// Prepares the cache directory (creating it, and deleting stale leftovers of an
    /// interrupted run in `tmp/`).
    pub fn open(config: &ContentConfig, api: Arc<dyn GalleryApi>) -> Result<Self, ContentError> {
        let objects = config.cache_dir.join("objects");
        let tmp = config.cache_dir.join("tmp");
        for dir in [&objects, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| ContentError::io(dir, "create", e))?;
        }
        remove_stale_parts(&tmp);
        let index = index::CacheIndex::scan(&objects, config.max_bytes);
        tracing::info!(
            objects = index.len(),
            bytes = index.total_bytes(),
            cap = config.max_bytes,
            "content cache opened"
        );
        Ok(ContentCache {
            index,
            objects,
            tmp,
            api,
            slots: Semaphore::new(config.max_downloads.max(1)),
            ready: moka::future::Cache::new(1_000_000),
            stats: ContentStats::default(),
        })
    }

    /// Where a verified object lives (whether or not it is there yet).
    pub fn object_path(&self, sha1: &Sha1Digest) -> PathBuf {
        let hex = sha1.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    /// The path of the item's verified bytes, downloading them first if needed.
    pub async fn fetch(&self, item: &Item) -> Result<Arc<PathBuf>, ContentError> {
        let path = self
            .ready
            .try_get_with(item.sha1, self.fetch_uncached(item))
            .await
            .map_err(|e| (*e).clone())?;
        self.index.touch(&item.sha1);
        Ok(path)
    }

    /// The item's verified bytes, opened for reading. An object that vanished between the
    /// lookup and the open (evicted, or deleted by hand) is fetched again once.
    pub async fn open_item(&self, item: &Item) -> Result<std::fs::File, ContentError> {
        let path = self.fetch(item).await?;
        match std::fs::File::open(&*path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(id = %item.id, "cached object vanished; fetching it again");
                self.ready.invalidate(&item.sha1).await;
                self.index.forget(&item.sha1);
                let path = self.fetch(item).await?;
                std::fs::File::open(&*path).map_err(|e| ContentError::io(&path, "open", e))
            }
            other => other.map_err(|e| ContentError::io(&path, "open", e)),
        }
    }

    /// Records a verified object and deletes what no longer fits under the cap.
    async fn admit(&self, sha1: Sha1Digest, size: u64) {
        for victim in self.index.admit(sha1, size) {
            self.ready.invalidate(&victim).await;
            let path = self.object_path(&victim);
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot evict");
                }
            }
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn fetch_uncached(&self, item: &Item) -> Result<Arc<PathBuf>, ContentError> {
        let path = self.object_path(&item.sha1);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.len() == item.size => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                self.admit(item.sha1, item.size).await;
                return Ok(Arc::new(path));
            }
            Ok(_) => {
                tracing::warn!(id = %item.id, "cached object has the wrong size; fetching again");
                let _ = tokio::fs::remove_file(&path).await;
                self.index.forget(&item.sha1);
            }
            Err(_) => {}
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ContentError::ShuttingDown)?;
        let mut mismatches = 0;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.download_once(item, &path).await {
                Ok(()) => {
                    self.admit(item.sha1, item.size).await;
                    return Ok(Arc::new(path));
                }
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

    /// One download into a temporary file, verified, then renamed to `dest`.
    async fn download_once(&self, item: &Item, dest: &Path) -> Result<(), ContentError> {
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
        let part = self.tmp.join(format!(
            "{}.{}.part",
            item.sha1.to_hex(),
            hex::encode(rand::random::<[u8; 6]>())
        ));
        let result = self.receive(item, download, &part, dest).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    async fn receive(
        &self,
        item: &Item,
        download: crate::cloud::Download,
        part: &Path,
        dest: &Path,
    ) -> Result<(), ContentError> {
        let mut file = tokio::fs::File::create(part)
            .await
            .map_err(|e| ContentError::io(part, "create", e))?;
        let mut hasher = Sha1::new();
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
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| ContentError::io(part, "write", e))?;
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
        let got = Sha1Digest(hasher.finalize().into());
        if got != item.sha1 {
            return Err(ContentError::Mismatch {
                id: item.id,
                detail: format!("SHA-1 is {got}, the listing says {}", item.sha1),
            });
        }
        file.sync_data()
            .await
            .map_err(|e| ContentError::io(part, "sync", e))?;
        drop(file);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ContentError::io(parent, "create", e))?;
        }
        tokio::fs::rename(part, dest)
            .await
            .map_err(|e| ContentError::io(dest, "rename into", e))?;
        Ok(())
    }
}

/// Deletes `.part` files left by an interrupted run. A download in progress (another mount
/// sharing this cache) writes all the time, so only files untouched for `STALE_PART` go.
fn remove_stale_parts(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age > STALE_PART);
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A `.part` file not written for this long belongs to no running download.
const STALE_PART: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests;
