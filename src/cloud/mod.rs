//! The Xiaomi Cloud client: session (passToken → serviceToken), listings and the
//! three-step download, behind the `GalleryApi` trait.
//!
//! `catalog` and `content` see only `GalleryApi`, so each is unit-tested with an in-memory
//! fake; `HttpGalleryClient` is the real implementation and is tested against `micloud-sim`.
//! Wire types stay in `wire` and never leave this module.

mod client;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use client::{AccountInfo, ClientConfig, HttpGalleryClient, MAX_ATTEMPTS};
pub use error::CloudError;
pub use session::{CredentialSource, Credentials, Secret};

use crate::model::{Album, AlbumId, Item, ItemId, Sha1Digest};

/// An album as `album/full` lists it (spec §3.8): with the cursor of its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlbumCursor {
    pub id: AlbumId,
    /// The newest `allitems` tag of any add, change or delete in the album.
    pub incremental_tag: u64,
    /// `totalImageCount`: how many items the album has.
    pub total: u64,
}

/// One page of an album's changes after a cursor (`allitems`, spec §3.8).
#[derive(Clone, Debug, Default)]
pub struct ChangePage {
    /// Items added or changed (live records).
    pub items: Vec<Item>,
    /// Items deleted (`status:"deleted"` tombstones).
    pub deleted: Vec<ItemId>,
    /// The cursor to pass for the next page.
    pub sync_tag: u64,
    /// True once caught up.
    pub last_page: bool,
}

/// One page of `galleries` (spec §3.6).
#[derive(Clone, Debug, Default)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub last_page: bool,
}

/// A recording as `/sfs/ns/recorder/dir/0/list` lists it (spec §3.12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingEntry {
    pub id: u64,
    /// The real name (the wire name without its four `_<digits>` groups).
    pub file_name: String,
    /// `0` recorder, `1` phone call, `2` FM, `3` app.
    pub kind: u8,
    pub size: u64,
    pub sha1: Sha1Digest,
    pub create_time_ms: i64,
    pub modify_time_ms: i64,
}

/// The body of a download: the original file's bytes, as they arrive.
pub struct Download {
    /// `Content-Length` when the service sent one.
    pub content_length: Option<u64>,
    /// What a 206 answer's `Content-Range` says the body holds; `None` for a 200, whose body
    /// is the whole file from byte 0 (a server that ignores `Range` answers so).
    pub partial: Option<ContentRange>,
    pub body: BoxStream<'static, Result<Bytes, CloudError>>,
}

/// `Content-Range: bytes START-END/TOTAL` of a 206 answer (END inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end_inclusive: u64,
    pub total: u64,
}

impl ContentRange {
    /// Parses `bytes a-b/n`; `None` for anything else (`*/n`, several ranges, garbage).
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (span, total) = rest.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        let r = ContentRange {
            start: a.trim().parse().ok()?,
            end_inclusive: b.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
        };
        (r.start <= r.end_inclusive && r.end_inclusive < r.total).then_some(r)
    }
}

/// Where the bytes of one item can be fetched from: steps 1 and 2 of the download (spec
/// §4), done once and reused for every part until the URL expires or is refused.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub item: ItemId,
    /// URL-B and META; `None` for services whose `fetch` needs only the item id (fakes).
    pub(crate) target: Option<Arc<ResolvedTarget>>,
    pub resolved_at: Instant,
}

#[derive(Debug)]
pub(crate) struct ResolvedTarget {
    pub url: url::Url,
    pub meta: String,
}

impl Resolved {
    /// A resolution that carries only the item id (the default `resolve`).
    pub fn bare(item: ItemId) -> Resolved {
        Resolved {
            item,
            target: None,
            resolved_at: Instant::now(),
        }
    }
}

/// What the rest of the client needs from the gallery service.
#[async_trait]
pub trait GalleryApi: Send + Sync + 'static {
    /// Every album of the account (all pages).
    async fn list_albums(&self) -> Result<Vec<Album>, CloudError>;
    /// Every item of one album (all pages), newest first as the service sorts them.
    async fn list_album_items(&self, album: AlbumId) -> Result<Vec<Item>, CloudError>;
    /// Starts the download of an item's original bytes (all three steps, with retries).
    async fn open_download(&self, item: ItemId) -> Result<Download, CloudError>;

    /// Steps 1 and 2 of a download, tried once: the data path retries (`content::retry`).
    /// A recording's step 1 is the recorder's own endpoint (spec §3.12). The default
    /// carries the id only, for services whose `fetch` needs nothing more.
    async fn resolve(&self, item: &Item) -> Result<Resolved, CloudError> {
        Ok(Resolved::bare(item.id))
    }

    /// Step 3, tried once: the bytes `range` (start..end) of the file, or all of it. The
    /// service may ignore the range and answer the whole file (`Download::partial` is then
    /// `None`). The default ignores ranges and calls `open_download`.
    async fn fetch(
        &self,
        resolved: &Resolved,
        _range: Option<std::ops::Range<u64>>,
    ) -> Result<Download, CloudError> {
        self.open_download(resolved.item).await
    }

    /// Starts the download of `item`: a gallery item through [`GalleryApi::open_download`], a
    /// recording ([`crate::model::MediaKind::Recording`]) through the recorder's endpoint.
    async fn open_item_download(&self, item: &Item) -> Result<Download, CloudError> {
        self.open_download(item.id).await
    }

    /// One page of an album's items, newest first, optionally only the (UTC+8) days
    /// `from..=to` (`yyyyMMdd`). `NotSupported` where only whole listings exist (fakes).
    async fn list_items_page(
        &self,
        _album: AlbumId,
        _days: Option<(u32, u32)>,
        _page: u32,
    ) -> Result<ItemPage, CloudError> {
        Err(CloudError::NotSupported("galleries pages"))
    }
    /// Items per day (`timeline`, keys `yyyyMMdd`) of one album.
    async fn day_counts(&self, _album: AlbumId) -> Result<Vec<(u32, u64)>, CloudError> {
        Err(CloudError::NotSupported("timeline"))
    }
    /// Every album with its change cursor (`album/full`).
    async fn album_cursors(&self) -> Result<Vec<AlbumCursor>, CloudError> {
        Err(CloudError::NotSupported("album/full"))
    }
    /// One page of an album's changes after `tag` (`allitems`; `tag` 0 replays the album).
    async fn list_changes(&self, _album: AlbumId, _tag: u64) -> Result<ChangePage, CloudError> {
        Err(CloudError::NotSupported("allitems"))
    }
    /// Every recording (voice recorder, calls, FM, apps).
    async fn list_recordings(&self) -> Result<Vec<RecordingEntry>, CloudError> {
        Err(CloudError::NotSupported("recordings"))
    }
}
