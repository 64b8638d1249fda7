//! An in-memory `GalleryApi` for unit tests of the layers above `cloud` (content, the fs
//! core), which can add latency, pace bodies, honour or ignore `Range`, cut bodies, corrupt
//! bytes, fail, or hang like a black-holed network, and records what was asked.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use sha1::{Digest, Sha1};

use super::{CloudError, ContentRange, Download, GalleryApi, Resolved};
use crate::model::{Album, AlbumId, Item, ItemId, MediaKind, Sha1Digest};

#[derive(Default)]
pub struct FakeGallery {
    pub bodies: Mutex<HashMap<ItemId, Arc<Vec<u8>>>>,
    pub deleted: Mutex<Vec<ItemId>>,
    /// Honour `Range` (206) or answer the whole file (200).
    pub range: AtomicBool,
    /// Waited before each answer (resolve and fetch).
    pub latency_ms: AtomicU64,
    /// Waited before each chunk of [`FakeGallery::CHUNK`] bytes of a body (pacing).
    pub chunk_delay_us: AtomicU64,
    /// The size of a body's chunks, when not [`FakeGallery::CHUNK`] (0): a real server's
    /// come in any size.
    pub chunk_len: std::sync::atomic::AtomicUsize,
    /// The next N bodies have a byte flipped at `corrupt_at` (or in their middle).
    pub corrupt: AtomicU32,
    pub corrupt_always: AtomicBool,
    pub corrupt_at: Mutex<Option<u64>>,
    /// The next N bodies stop after a third, with an error.
    pub cut: AtomicU32,
    /// The next N calls (resolve or fetch) fail with a transient error.
    pub fail: AtomicU32,
    /// Calls never answer (a black-holed network).
    pub hang: AtomicBool,
    pub resolves: AtomicU32,
    pub fetches: AtomicU32,
    /// Bytes the bodies really yielded (a cancelled body stops counting).
    pub bytes_sent: Arc<AtomicU64>,
    /// Every fetch: the item and the range asked.
    pub log: Mutex<Vec<(ItemId, Option<Range<u64>>)>>,
}

impl FakeGallery {
    /// Steps 1 and 2 of a download of `id`: counted, delayed, refused for a deleted item.
    async fn resolve_id(&self, id: ItemId) -> Result<Resolved, CloudError> {
        self.delay().await?;
        self.resolves.fetch_add(1, Ordering::SeqCst);
        if self.deleted.lock().unwrap().contains(&id) {
            return Err(CloudError::ItemDeleted(id.to_string()));
        }
        Ok(Resolved::bare(id))
    }

    pub const CHUNK: usize = 64 << 10;

    pub fn new() -> FakeGallery {
        FakeGallery::default()
    }

    /// Adds an item with `body` and returns its listing entry.
    pub fn add(&self, id: u64, body: Vec<u8>) -> Item {
        let it = item(id, &body);
        self.bodies.lock().unwrap().insert(it.id, Arc::new(body));
        it
    }

    pub fn fetches(&self) -> u32 {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::SeqCst)
    }

    fn take(n: &AtomicU32) -> bool {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .is_ok()
    }

    async fn delay(&self) -> Result<(), CloudError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let ms = self.latency_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if Self::take(&self.fail) {
            return Err(CloudError::Transient {
                what: "fake".into(),
                detail: "HTTP 503".into(),
                attempts: 1,
            });
        }
        Ok(())
    }
}

/// A listing entry for `body`.
pub fn item(id: u64, body: &[u8]) -> Item {
    Item {
        id: ItemId(id),
        album_id: AlbumId::CAMERA,
        file_name: format!("{id}.jpg"),
        kind: MediaKind::Image,
        mime_type: "image/jpeg".into(),
        size: body.len() as u64,
        sha1: Sha1Digest(Sha1::digest(body).into()),
        date_taken_ms: 0,
        create_time_ms: 0,
        exif_date_time: None,
    }
}

/// Bytes that differ from position to position and from seed to seed.
pub fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[async_trait]
impl GalleryApi for FakeGallery {
    async fn list_albums(&self) -> Result<Vec<Album>, CloudError> {
        Ok(vec![])
    }

    async fn list_album_items(&self, _: AlbumId) -> Result<Vec<Item>, CloudError> {
        Ok(vec![])
    }

    async fn open_download(&self, id: ItemId) -> Result<Download, CloudError> {
        let r = self.resolve_id(id).await?;
        self.fetch(&r, None).await
    }

    async fn resolve(&self, item: &Item) -> Result<Resolved, CloudError> {
        self.resolve_id(item.id).await
    }

    async fn fetch(
        &self,
        resolved: &Resolved,
        range: Option<Range<u64>>,
    ) -> Result<Download, CloudError> {
        self.delay().await?;
        let id = resolved.item;
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push((id, range.clone()));
        let full = self
            .bodies
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default();
        let len = full.len() as u64;
        let honour = self.range.load(Ordering::SeqCst);
        let span = match (&range, honour) {
            (Some(r), true) => r.start..r.end.min(len),
            _ => 0..len,
        };
        let mut bytes = full[span.start as usize..span.end as usize].to_vec();
        // With `corrupt_at`, only a body holding that byte is damaged (and counts).
        let at = self
            .corrupt_at
            .lock()
            .unwrap()
            .unwrap_or(span.start + bytes.len() as u64 / 2);
        if span.contains(&at)
            && (self.corrupt_always.load(Ordering::SeqCst) || Self::take(&self.corrupt))
        {
            bytes[(at - span.start) as usize] ^= 0x55;
        }
        let cut = Self::take(&self.cut);
        let keep = if cut { bytes.len() / 3 } else { bytes.len() };
        let delay = Duration::from_micros(self.chunk_delay_us.load(Ordering::SeqCst));
        let sent = self.bytes_sent.clone();
        let chunk = match self.chunk_len.load(Ordering::SeqCst) {
            0 => Self::CHUNK,
            n => n,
        };
        let chunks: Vec<Bytes> = bytes[..keep]
            .chunks(chunk)
            .map(Bytes::copy_from_slice)
            .collect();
        let stream = futures_util::stream::iter(chunks)
            .then(move |c| {
                let sent = sent.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    sent.fetch_add(c.len() as u64, Ordering::SeqCst);
                    Ok::<Bytes, CloudError>(c)
                }
            })
            .chain(futures_util::stream::iter(cut.then(|| {
                Err(CloudError::Transient {
                    what: "fake".into(),
                    detail: "connection reset".into(),
                    attempts: 1,
                })
            })));
        let partial = (range.is_some() && honour).then(|| ContentRange {
            start: span.start,
            end_inclusive: span.end.saturating_sub(1),
            total: len,
        });
        Ok(Download {
            content_length: Some(span.end - span.start),
            partial,
            body: stream.boxed(),
        })
    }
}
