//! The catalog: the local mirror of the gallery's metadata (albums and items).
//!
//! Today it is built in memory by one full listing at mount time: every album page, then
//! every album's item pages, four albums at a time (the service is slow on deep pages,
//! spec §5.3, so albums are listed in parallel rather than with bigger pages). Items are
//! de-duplicated by id (a listing that shifts while it is paged can repeat an item at a
//! page boundary) and placed in the album whose listing returned them. Memory is about
//! 200 bytes per item: 20 MB for a 100 000-item gallery.
//!
//! Persistence and incremental refresh slot in here later without changing `view`.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{stream, StreamExt, TryStreamExt};

use crate::cloud::{CloudError, GalleryApi};
use crate::model::{Album, AlbumId, Item};

/// How many albums are listed at once.
const PARALLEL_ALBUMS: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct CatalogOptions {
    /// List album 1000 (the private album) too.
    pub include_private: bool,
}

/// A consistent snapshot of the gallery's metadata.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub albums: Vec<Album>,
    pub items: Arc<[Item]>,
}

impl Catalog {
    /// Lists the whole gallery.
    pub async fn fetch(api: &dyn GalleryApi, opts: &CatalogOptions) -> Result<Catalog, CloudError> {
        let mut albums = api.list_albums().await?;
        let mut seen_albums = HashSet::new();
        albums.retain(|a| seen_albums.insert(a.id));
        albums.retain(|a| opts.include_private || a.id != AlbumId::PRIVATE);
        albums.sort_by_key(|a| a.id);

        let per_album: Vec<(AlbumId, Vec<Item>)> = stream::iter(albums.iter().map(|a| a.id))
            .map(|id| async move { api.list_album_items(id).await.map(|items| (id, items)) })
            .buffered(PARALLEL_ALBUMS)
            .try_collect()
            .await?;

        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (album, listed) in per_album {
            for mut item in listed {
                if !seen.insert(item.id) {
                    continue;
                }
                if item.album_id != album {
                    tracing::debug!(id = %item.id, %album, group = %item.album_id,
                        "item's groupId differs from the album that lists it; using the album");
                    item.album_id = album;
                }
                items.push(item);
            }
        }
        tracing::info!(albums = albums.len(), items = items.len(), "catalog listed");
        Ok(Catalog {
            albums,
            items: items.into(),
        })
    }

    /// Total bytes of all items.
    pub fn total_size(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |t, i| t.saturating_add(i.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Download;
    use crate::model::{ItemId, MediaKind, Sha1Digest};
    use async_trait::async_trait;

    struct Fake;

    fn item(id: u64, group: u64) -> Item {
        Item {
            id: ItemId(id),
            album_id: AlbumId(group),
            file_name: format!("{id}.jpg"),
            kind: MediaKind::Image,
            mime_type: "image/jpeg".into(),
            size: id,
            sha1: Sha1Digest([id as u8; 20]),
            date_taken_ms: 0,
            create_time_ms: 0,
            exif_date_time: None,
        }
    }

    fn album(id: u64) -> Album {
        Album {
            id: AlbumId(id),
            name: None,
            media_count: 0,
            last_update_ms: 0,
        }
    }

    #[async_trait]
    impl GalleryApi for Fake {
        async fn list_albums(&self) -> Result<Vec<Album>, CloudError> {
            Ok(vec![album(1000), album(2), album(1), album(2), album(77)])
        }
        async fn list_album_items(&self, a: AlbumId) -> Result<Vec<Item>, CloudError> {
            Ok(match a.0 {
                1 => vec![item(10, 1), item(11, 1), item(11, 1)],
                2 => vec![item(20, 2)],
                77 => vec![item(70, 5)],
                1000 => vec![item(99, 1000)],
                _ => vec![],
            })
        }
        async fn open_download(&self, _: ItemId) -> Result<Download, CloudError> {
            Err(CloudError::Config("not used".into()))
        }
    }

    #[tokio::test]
    async fn lists_every_album_once_and_dedups_items() {
        let c = Catalog::fetch(&Fake, &CatalogOptions::default())
            .await
            .unwrap();
        let ids: Vec<u64> = c.albums.iter().map(|a| a.id.0).collect();
        assert_eq!(ids, vec![1, 2, 77]);
        let mut items: Vec<(u64, u64)> = c.items.iter().map(|i| (i.id.0, i.album_id.0)).collect();
        items.sort();
        assert_eq!(items, vec![(10, 1), (11, 1), (20, 2), (70, 77)]);
        assert_eq!(c.total_size(), 10 + 11 + 20 + 70);
    }

    #[tokio::test]
    async fn private_album_only_on_request() {
        let opts = CatalogOptions {
            include_private: true,
        };
        let c = Catalog::fetch(&Fake, &opts).await.unwrap();
        assert!(c.albums.iter().any(|a| a.id == AlbumId::PRIVATE));
        assert!(c.items.iter().any(|i| i.id == ItemId(99)));
    }
}
