//! The catalog: the persistent mirror of the gallery's metadata (albums, items, recordings,
//! sync cursors, and the names and inodes the tree handed out).
//!
//! - [`store`]: the SQLite database, one per account, crash-safe (see its doc for the schema
//!   and why SQLite).
//! - [`sync`]: filling it from the service: the first sync (resumable, with progress, albums
//!   in parallel, big albums by date ranges so that no deep page is ever asked for) and the
//!   refresh (incremental through `album/full` + `allitems` cursors where the service has
//!   them, a full listing of an album otherwise, checked against `timeline` day counts).
//!
//! A mount reads a [`Catalog`] snapshot from the store and builds the tree (`view`) from it;
//! the names and inodes that build hands out are written back, so the next build (a refresh,
//! a remount) keeps them.

pub mod store;
pub mod sync;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Album, AlbumId, Item};

pub use store::{
    catalog_path, snapshot_path, AlbumState, HandedDir, HandedFile, HandedName, Recording, Stamp,
    Store, StoreError,
};
pub use sync::{Progress, SyncError, SyncOptions, SyncReport, Syncer};

#[derive(Clone, Debug, Default)]
pub struct CatalogOptions {
    /// List album 1000 (the private album) too.
    pub include_private: bool,
}

/// A consistent snapshot of the catalog: what one build of the tree shows.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub albums: Vec<Album>,
    pub items: Arc<[Item]>,
    /// What was handed out for each item (same order as `items`).
    pub handed: Arc<[HandedFile]>,
    /// The directory handed out for each album.
    pub dirs: HashMap<AlbumId, HandedDir>,
    /// Albums whose listing did not complete (failed, or a first sync that was cut short).
    pub incomplete: Vec<(AlbumId, String)>,
    pub recordings: Arc<[Recording]>,
}

/// What a mount says of its catalog ("N items in M albums, X GiB"), kept with the tree's
/// snapshot so that a warm start need not load the catalog to say it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Gallery items (recordings not counted).
    pub items: u64,
    pub albums: u64,
    /// Albums whose listing did not complete.
    pub incomplete: u64,
    /// Bytes of all items, recordings included.
    pub total_size: u64,
}

impl Catalog {
    /// The counts a mount reports.
    pub fn summary(&self) -> Summary {
        Summary {
            items: (self.items.len() - self.recordings.len()) as u64,
            albums: self.albums.len() as u64,
            incomplete: self.incomplete.len() as u64,
            total_size: self.total_size(),
        }
    }

    /// Reads the whole catalog.
    pub fn load(store: &Store) -> Result<Catalog, StoreError> {
        let rows = store.albums()?;
        let (mut items, mut handed) = store.items()?;
        let recordings = store.recordings()?;
        // Recordings are items of their own kind, after the gallery's (the tree puts them
        // under `recordings/`; their album id is their type).
        for r in &recordings {
            items.push(r.as_item());
            handed.push(HandedFile {
                album: r.handed.clone(),
                date: None,
            });
        }
        let mut dirs = HashMap::new();
        let mut incomplete = Vec::new();
        let mut albums = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(d) = r.dir {
                dirs.insert(r.album.id, d);
            }
            match r.state {
                AlbumState::Complete => {}
                AlbumState::Pending => incomplete.push((r.album.id, "not listed yet".into())),
                AlbumState::Failed => incomplete.push((
                    r.album.id,
                    r.error.unwrap_or_else(|| "listing failed".into()),
                )),
            }
            albums.push(r.album);
        }
        Ok(Catalog {
            albums,
            items: items.into(),
            handed: handed.into(),
            dirs,
            incomplete,
            recordings: recordings.into(),
        })
    }

    /// Total bytes of all items.
    pub fn total_size(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |t, i| t.saturating_add(i.size))
    }
}
