//! The data path of the file system, apart from the FUSE glue: `open`, `read` and `release`
//! as async operations returning `Result`s, so that they are unit-tested against a fake
//! `GalleryApi` without a kernel (see `tests` below; the real mounts are for the end-to-end
//! tests). The fuser adapter (`fs::GalleryFs`) only turns kernel requests into these calls
//! and their results into replies, adding what needs the kernel: passthrough and page
//! invalidation.
//!
//! - `open` of a media file asks `content` for the item: a verified object (read with
//!   `pread`, or handed to the kernel as a passthrough backing file by the adapter) or a
//!   streaming reader. Nothing is downloaded at open: the first read (or the prefetcher)
//!   asks for bytes, so a thumbnailer that reads 64 KiB and closes costs 64 KiB and a
//!   round-up, not the file.
//! - `read` of a verified object is a `pread` checked for length (a cached object cut
//!   behind our back fails with EIO rather than handing out a short file); of a streaming
//!   reader, whatever `content::Reader::read` gives, errors mapped to errno in one place
//!   (`errno`), each logged with its cause.
//! - The prefetcher hears of opens and of handles that read their file to the end.
//! - When `content` finds that a download it streamed did not match, the kernel's pages of
//!   every inode that streamed that item are dropped through the `Kernel` hook.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use fuser::Errno;

use super::errno;
use super::prefetch::{Prefetcher, Siblings};
use crate::content::{ContentCache, Opened, Reader};
use crate::model::{Item, Sha1Digest};
use crate::view::Ino;

/// A reader that goes on from the start past this offset is taken as reading the whole
/// file (see `Prefetcher::reading_on`): past the kernel's first request.
const READ_ON: u64 = 128 << 10;

/// What the data path needs of the tree.
pub trait Tree: Siblings {
    /// The item shown at `ino`, if it is a media file.
    fn item(&self, ino: Ino) -> Option<Item>;
    /// The bytes of a generated file (`SHA1SUMS`), if `ino` is one.
    fn generated(&self, ino: Ino) -> Option<Arc<[u8]>>;
    /// Whether `ino` exists.
    fn exists(&self, ino: Ino) -> bool;
    fn is_dir(&self, ino: Ino) -> bool;
}

/// Drops the kernel's cached pages of an inode (a fuser `Notifier` in the daemon).
pub type Kernel = Box<dyn Fn(Ino) + Send + Sync>;

enum Source {
    File(Arc<std::fs::File>),
    Stream(Reader),
    Generated(Arc<[u8]>),
}

struct Handle {
    ino: Ino,
    size: u64,
    source: Source,
    id: Option<crate::model::ItemId>,
    reached_end: AtomicBool,
    /// Its reads went from the start past the first MiB (told the prefetcher once).
    read_on: AtomicBool,
    /// The furthest end of its reads so far.
    reached: AtomicU64,
    /// Set at release: reads still waiting (the kernel's readahead) give up, so that a
    /// closed handle keeps no download going.
    released: tokio::sync::watch::Sender<bool>,
}

/// What an open gives the adapter.
pub struct Opening {
    pub fh: u64,
    /// A verified cache file the kernel may read directly (passthrough).
    pub backing: Option<Arc<std::fs::File>>,
}

pub struct DataCore {
    tree: Arc<dyn Tree>,
    content: Arc<ContentCache>,
    prefetcher: Arc<Prefetcher>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    shared: Arc<Shared>,
}

/// What the content layer's invalidator reaches.
struct Shared {
    /// Inodes that were given unverified bytes, by item content.
    streamed: Mutex<HashMap<Sha1Digest, HashSet<Ino>>>,
    kernel: OnceLock<Kernel>,
}

impl Shared {
    fn invalidate(&self, item: &Item) {
        let inos: Vec<Ino> = self
            .streamed
            .lock()
            .map(|m| {
                m.get(&item.sha1)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        if let Some(k) = self.kernel.get() {
            for ino in inos {
                k(ino);
            }
        }
    }
}

impl DataCore {
    /// `rt` runs the background work (prefetch) that FUSE threads start.
    pub fn new(
        tree: Arc<dyn Tree>,
        content: Arc<ContentCache>,
        cache_cap: u64,
        rt: tokio::runtime::Handle,
    ) -> DataCore {
        let shared = Arc::new(Shared {
            streamed: Mutex::new(HashMap::new()),
            kernel: OnceLock::new(),
        });
        let s = shared.clone();
        content.set_invalidator(Box::new(move |item| s.invalidate(item)));
        let siblings: Arc<dyn Siblings> = Arc::new(TreeSiblings(tree.clone()));
        DataCore {
            prefetcher: Arc::new(Prefetcher::new(content.clone(), siblings, cache_cap, rt)),
            tree,
            content,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            shared,
        }
    }

    /// Installs the kernel hook (once the FUSE session exists).
    pub fn set_kernel(&self, kernel: Kernel) {
        let _ = self.shared.kernel.set(kernel);
    }

    pub fn content(&self) -> &Arc<ContentCache> {
        &self.content
    }

    pub fn prefetcher(&self) -> &Arc<Prefetcher> {
        &self.prefetcher
    }

    /// Opens `ino` for reading (write flags are refused by the caller).
    pub async fn open(&self, ino: Ino) -> Result<Opening, Errno> {
        if !self.tree.exists(ino) {
            return Err(Errno::ENOENT);
        }
        if self.tree.is_dir(ino) {
            return Err(Errno::EISDIR);
        }
        let (source, size, id, backing) = if let Some(bytes) = self.tree.generated(ino) {
            let n = bytes.len() as u64;
            (Source::Generated(bytes), n, None, None)
        } else {
            let item = self.tree.item(ino).ok_or(Errno::ENOENT)?;
            let opened = self.content.open_item(&item).await.map_err(|e| {
                tracing::error!(id = %item.id, name = %item.file_name.escape_debug(), error = %e, "cannot open");
                errno::for_content(&e)
            })?;
            let copying = self.prefetcher.opened(ino);
            let opened = match opened {
                // A copy reads only verified bytes, so its first read would wait for the
                // whole file: wait here instead, and hand it the verified object, which
                // the kernel reads itself (passthrough) at no cost to the daemon.
                Opened::Streaming(r) if copying && r.wait_verified().await => {
                    match self.content.open_verified_now(&item) {
                        Some(f) => Opened::Verified(f),
                        None => Opened::Streaming(r),
                    }
                }
                o => o,
            };
            let (source, backing) = match opened {
                Opened::Verified(f) => (Source::File(f.clone()), Some(f)),
                Opened::Streaming(r) => {
                    if let Ok(mut m) = self.shared.streamed.lock() {
                        m.entry(item.sha1).or_default().insert(ino);
                    }
                    r.set_whole_file(copying);
                    (Source::Stream(r), None)
                }
            };
            (source, item.size, Some(item.id), backing)
        };
        Ok(self.register(ino, size, id, source, backing))
    }

    /// Opens `ino` at once if it is a media file whose object this daemon verified (the
    /// warm path, answered on the FUSE thread without a task); `None`: use [`Self::open`].
    pub fn open_now(&self, ino: Ino) -> Option<Opening> {
        let item = self.tree.item(ino)?;
        let file = self.content.open_verified_now(&item)?;
        self.prefetcher.opened(ino);
        Some(self.register(
            ino,
            item.size,
            Some(item.id),
            Source::File(file.clone()),
            Some(file),
        ))
    }

    fn register(
        &self,
        ino: Ino,
        size: u64,
        id: Option<crate::model::ItemId>,
        source: Source,
        backing: Option<Arc<std::fs::File>>,
    ) -> Opening {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            ino,
            size,
            source,
            id,
            reached_end: AtomicBool::new(false),
            read_on: AtomicBool::new(false),
            reached: AtomicU64::new(0),
            released: tokio::sync::watch::Sender::new(false),
        });
        if let Ok(mut m) = self.handles.lock() {
            m.insert(fh, handle);
        }
        Opening { fh, backing }
    }

    /// Reads at most `size` bytes at `offset` of an open handle; fewer only at the end.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let handle = self
            .handles
            .lock()
            .map_err(|_| Errno::EIO)?
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)?;
        if offset.saturating_add(u64::from(size)) >= handle.size {
            handle.reached_end.store(true, Ordering::Relaxed);
        }
        // Where the reads so far reached: a read that starts there goes on (the kernel may
        // read 1 MiB at a time, so the second read of a small file starts past
        // READ_ON + its size).
        let reached = handle
            .reached
            .fetch_max(offset.saturating_add(u64::from(size)), Ordering::Relaxed);
        if handle.id.is_some()
            && offset >= READ_ON
            && (offset <= READ_ON + u64::from(size) || offset <= reached)
            && !handle.read_on.swap(true, Ordering::Relaxed)
        {
            self.prefetcher.reading_on(handle.ino);
        }
        match &handle.source {
            Source::Generated(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec())
            }
            Source::Stream(r) => {
                let mut released = handle.released.subscribe();
                tokio::select! {
                    got = r.read(offset, size) => got.map_err(|e| {
                        tracing::error!(id = %r.item().id, name = %r.item().file_name.escape_debug(), offset, error = %e, "read failed");
                        errno::for_content(&e)
                    }),
                    _ = released.wait_for(|r| *r) => Err(Errno::EINTR),
                }
            }
            Source::File(file) => {
                let file = file.clone();
                let expected = u64::from(size).min(handle.size.saturating_sub(offset)) as usize;
                let read = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; expected];
                    let mut filled = 0;
                    while filled < expected {
                        match file.read_at(&mut buf[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    buf.truncate(filled);
                    Ok(buf)
                })
                .await
                .map_err(|_| Errno::EIO)?;
                match read {
                    // Only the end of the file may answer short: anything else would hand
                    // the reader a truncated copy (a cached object cut behind our back).
                    Ok(buf) if buf.len() < expected => {
                        tracing::error!(
                            id = ?handle.id,
                            offset,
                            got = buf.len(),
                            expected,
                            "a cached object is shorter than its listing; failing the read \
                             (run `micloudfs cache check --repair`)"
                        );
                        Err(Errno::EIO)
                    }
                    Ok(buf) => Ok(buf),
                    Err(e) => {
                        tracing::error!(id = ?handle.id, error = %e, "cannot read a cached object");
                        Err(Errno::EIO)
                    }
                }
            }
        }
    }

    /// Marks a handle the kernel reads directly (passthrough) as read to its end: its
    /// reads never reach us, and its bytes are all there.
    pub fn note_passthrough(&self, fh: u64) {
        if let Some(h) = self.handles.lock().ok().and_then(|m| m.get(&fh).cloned()) {
            h.reached_end.store(true, Ordering::Relaxed);
        }
    }

    /// Closes a handle. A download nobody reads any more is cancelled by `content`.
    pub fn release(&self, fh: u64) {
        let handle = self.handles.lock().ok().and_then(|mut m| m.remove(&fh));
        if let Some(h) = handle {
            h.released.send_replace(true);
            if h.id.is_some() && h.reached_end.load(Ordering::Relaxed) {
                self.prefetcher.finished(h.ino);
            }
        }
    }

    /// Handles open now.
    pub fn open_handles(&self) -> usize {
        self.handles.lock().map(|m| m.len()).unwrap_or(0)
    }
}

struct TreeSiblings(Arc<dyn Tree>);

impl Siblings for TreeSiblings {
    fn folder_of(&self, ino: Ino) -> Option<Ino> {
        self.0.folder_of(ino)
    }
    fn files_of(&self, folder: Ino) -> Vec<(Ino, Item)> {
        self.0.files_of(folder)
    }
}

#[cfg(test)]
mod tests;
