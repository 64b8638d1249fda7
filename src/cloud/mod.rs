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

use crate::model::{Album, AlbumId, Item, ItemId};

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
}
