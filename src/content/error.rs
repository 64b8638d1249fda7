//! Errors of the content layer. Cloneable (they are shared by every reader waiting on
//! one download); `fs::errno` turns them into an errno.

use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::cloud::CloudError;
use crate::model::{Item, ItemId};

#[derive(Clone, Debug, Error)]
pub enum ContentError {
    #[error("item {0} was deleted in the cloud (recycle bin or for good); it stays listed until the next mount")]
    Deleted(ItemId),

    #[error("item {id} does not match its listing: {detail}")]
    Mismatch { id: ItemId, detail: String },

    #[error(transparent)]
    Cloud(Arc<CloudError>),

    #[error("cannot {op} {path}: {source} (check free space and permissions of the cache dir)")]
    Io {
        op: &'static str,
        path: String,
        source: Arc<std::io::Error>,
    },

    #[error(
        "no room to cache item {id} ({size} bytes): {available} bytes free on the cache disk, \
         which keeps a floor free (--min-free-space), and nothing left to evict; free space \
         there, or choose another --cache-dir"
    )]
    NoRoom {
        id: ItemId,
        size: u64,
        available: u64,
    },

    #[error(
        "item {id} ({size} bytes) can be served neither from the cache (the cache disk is full \
         or failing, see above) nor from memory (at most {budget} bytes are held for uncached \
         files); free space on the cache disk, or choose another --cache-dir"
    )]
    TooBigForMemory { id: ItemId, size: u64, budget: u64 },

    #[error("the mount is shutting down")]
    ShuttingDown,

    #[error(
        "no byte of item {id} arrived for {secs} s (past --io-timeout){}; check the \
         network, or raise --io-timeout for a slow link",
        last.as_deref().map(|l| format!("; last error: {l}")).unwrap_or_default()
    )]
    TimedOut {
        id: ItemId,
        secs: u64,
        last: Option<String>,
    },

    #[error(
        "item {id}: this handle was given bytes of a download that did not match the \
         listed SHA-1, and the download that matched differs there; close the file and \
         open it again to read it right"
    )]
    Poisoned { id: ItemId },

    #[error("the download of item {0} was abandoned (nobody reads it any more)")]
    Cancelled(ItemId),

    #[error("internal error: {0} (please report this with the log)")]
    Internal(String),
}

impl ContentError {
    pub fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
        ContentError::Io {
            op,
            path: path.display().to_string(),
            source: Arc::new(source),
        }
    }

    /// Whether the failure is the cache's (its disk), not the item's or the service's: the
    /// bytes can still be served without caching.
    pub fn is_cache_side(&self) -> bool {
        matches!(self, ContentError::Io { .. } | ContentError::NoRoom { .. })
    }

    pub fn from_cloud(item: &Item, e: CloudError) -> Self {
        match e {
            CloudError::ItemDeleted(_) => ContentError::Deleted(item.id),
            other => ContentError::Cloud(Arc::new(other)),
        }
    }
}
