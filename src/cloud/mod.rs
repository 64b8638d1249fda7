//! The Xiaomi Cloud client: session (passToken → serviceToken), listings and the
//! three-step download, behind the `GalleryApi` trait.
//!
//! `catalog` and `content` see only `GalleryApi`, so each is unit-tested with an in-memory
//! fake; `HttpGalleryClient` is the real implementation and is tested against `micloud-sim`.
//! Wire types stay in `wire` and never leave this module.

mod client;
mod error;
mod session;
mod wire;

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
    pub body: BoxStream<'static, Result<Bytes, CloudError>>,
}

/// What the rest of the client needs from the gallery service.
#[async_trait]
pub trait GalleryApi: Send + Sync + 'static {
    /// Every album of the account (all pages).
    async fn list_albums(&self) -> Result<Vec<Album>, CloudError>;
    /// Every item of one album (all pages), newest first as the service sorts them.
    async fn list_album_items(&self, album: AlbumId) -> Result<Vec<Item>, CloudError>;
    /// Starts the download of an item's original bytes.
    async fn open_download(&self, item: ItemId) -> Result<Download, CloudError>;

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
