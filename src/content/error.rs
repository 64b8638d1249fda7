//! Errors of the content layer. Cloneable (they are shared by every reader waiting on
//! one download); `fs::errno` turns them into an errno.

use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::cloud::CloudError;
use crate::model::{Item, ItemId};

#[derive(Clone, Debug, Error)]
pub enum ContentError {
    #[error("item {0} was deleted in the cloud; it stays listed until the next mount")]
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

    #[error("the mount is shutting down")]
    ShuttingDown,
}

impl ContentError {
    pub fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
        ContentError::Io {
            op,
            path: path.display().to_string(),
            source: Arc::new(source),
        }
    }

    pub fn from_cloud(item: &Item, e: CloudError) -> Self {
        match e {
            CloudError::ItemDeleted(_) => ContentError::Deleted(item.id),
            other => ContentError::Cloud(Arc::new(other)),
        }
    }
}
