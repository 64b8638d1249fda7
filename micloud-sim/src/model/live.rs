//! A gallery that changes: the mutations behind the `/_sim/` control API and the write
//! endpoints. The tombstone lifetime they are given comes from [`crate::config::live`].
//!
//! Every change takes the next number of the account's one tag sequence (spec §3.8): an upload
//! gives the new item that tag; recycling or deleting gives the tombstone (and the recycle-bin
//! entry) that tag; restoring gives the item a new tag; renaming or creating an album, and
//! purging from the bin, record the tag on the album. The album's `incrementalTag`,
//! `lastUpdateTime`, counts and the account-wide `indexHash` follow from
//! [`Gallery::rebuild`]. A change costs O(n log n) (one copy of the gallery and one rebuild);
//! requests never do.
//!
//! Tombstones (`status:"deleted"` records in `allitems`) live for `--tombstone-ttl` seconds
//! (default 300) and are compacted at the next change after that; readers hide expired ones
//! at once. The recycle bin keeps items until restored or purged.

use crate::model::gallery::{Gallery, Recycled, Tombstone};
use crate::model::item::{Album, Item, CAMERA};
use crate::model::recording::Recording;
use crate::model::rng::{derive, hash_bytes, Rng};
use crate::model::source::Source;

/// Why a change was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LiveError {
    #[error("no live item {0}; GET /_sim/items lists the live items")]
    NoItem(String),
    #[error("item {0} is not in the recycle bin; only recycled items can be restored")]
    NotRecycled(String),
    #[error("no item or recording {0}; GET /_sim/items and /_sim/recordings list them")]
    Unknown(String),
    #[error("no album {0}; GET /_sim/albums lists the albums")]
    NoAlbum(String),
    #[error("album {0} is a system album whose name the server fixes; rename a user album")]
    SystemAlbum(String),
    #[error("an album name must not be empty; send a non-empty \"name\"")]
    EmptyName,
    #[error("no live recording {0}; GET /_sim/recordings lists them")]
    NoRecording(String),
}

/// What `POST /_sim/delete` removed.
#[derive(Debug)]
pub enum Deleted {
    Item(Box<Item>),
    Recording(Box<Recording>),
}

impl Gallery {
    fn next_tag(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn touch(&mut self, album: &str, tag: u64, now: i64) {
        self.touched.insert(album.to_string(), (tag, now));
    }

    /// Drop tombstones older than `ttl_ms`.
    fn compact(&mut self, now: i64, ttl_ms: i64) {
        self.tombs.retain(|t| now.saturating_sub(t.at) < ttl_ms);
    }

    fn id_taken(&self, id: &str) -> bool {
        self.index_of(id).is_some()
            || self.bin.iter().any(|r| r.item.id == id)
            || self.tombs.iter().any(|t| t.item.id == id)
            || self.recordings.iter().any(|r| r.file.id == id)
            || self.albums.iter().any(|a| a.id == id)
    }

    /// A fresh odd 17-digit id, deterministic from the gallery's history.
    fn fresh_id(&self) -> String {
        let mut r = Rng::new(derive(self.index_hash as u64, self.seq));
        loop {
            let v = (r.range(20_000_000_000_000_000, 99_999_999_999_999_999) | 1).to_string();
            if !self.id_taken(&v) {
                return v;
            }
        }
    }

    /// Add `item` (its `album_id`, name, dates, source, size and sha1 set by the caller) with a
    /// fresh id, the next tag and `createTime = now`; returns the stored item.
    pub fn upload(&mut self, mut item: Item, now: i64, ttl_ms: i64) -> Result<Item, LiveError> {
        if self.album(&item.album_id).is_none() {
            return Err(LiveError::NoAlbum(item.album_id));
        }
        self.compact(now, ttl_ms);
        item.id = self.fresh_id();
        item.tag = self.next_tag().to_string();
        item.create_time = now;
        self.items.push(item.clone());
        self.rebuild();
        Ok(item)
    }

    /// Take a live item out, leaving a tombstone with the next tag.
    fn take_live(&mut self, id: &str, now: i64) -> Result<Item, LiveError> {
        let i = self
            .index_of(id)
            .ok_or_else(|| LiveError::NoItem(id.to_string()))?;
        let mut item = self.items.remove(i);
        let tag = self.next_tag();
        item.tag = tag.to_string();
        self.touch(&item.album_id, tag, now);
        self.tombs.push(Tombstone {
            item: item.clone(),
            at: now,
        });
        Ok(item)
    }

    /// Move a live item to the recycle bin (what `POST /gallery/info/delete` does).
    pub fn recycle(&mut self, id: &str, now: i64, ttl_ms: i64) -> Result<Item, LiveError> {
        self.compact(now, ttl_ms);
        let item = self.take_live(id, now)?;
        self.bin.push(Recycled {
            item: item.clone(),
            delete_time: now,
        });
        self.rebuild();
        Ok(item)
    }

    /// Bring a recycled item back into its album under a new tag.
    pub fn restore(&mut self, id: &str, now: i64, ttl_ms: i64) -> Result<Item, LiveError> {
        self.compact(now, ttl_ms);
        let i = self
            .bin
            .iter()
            .position(|r| r.item.id == id)
            .ok_or_else(|| LiveError::NotRecycled(id.to_string()))?;
        let mut item = self.bin.remove(i).item;
        if self.album(&item.album_id).is_none() {
            item.album_id = CAMERA.to_string();
        }
        self.tombs.retain(|t| t.item.id != id);
        item.tag = self.next_tag().to_string();
        self.items.push(item.clone());
        self.rebuild();
        Ok(item)
    }

    /// Delete permanently: a live item (tombstone, no bin entry), a recycled item (purged from
    /// the bin), or a recording.
    pub fn delete(&mut self, id: &str, now: i64, ttl_ms: i64) -> Result<Deleted, LiveError> {
        self.compact(now, ttl_ms);
        if self.index_of(id).is_some() {
            let item = self.take_live(id, now)?;
            self.rebuild();
            return Ok(Deleted::Item(Box::new(item)));
        }
        if let Some(i) = self.bin.iter().position(|r| r.item.id == id) {
            let item = self.bin.remove(i).item;
            let tag = self.next_tag();
            self.touch(&item.album_id, tag, now);
            self.rebuild();
            return Ok(Deleted::Item(Box::new(item)));
        }
        match self.delete_recording(id, now) {
            Ok(r) => Ok(Deleted::Recording(Box::new(r))),
            Err(_) => Err(LiveError::Unknown(id.to_string())),
        }
    }

    /// Mark a recording deleted (its downloads answer 50202 from now on).
    pub fn delete_recording(&mut self, id: &str, now: i64) -> Result<Recording, LiveError> {
        let r = self
            .recordings
            .iter_mut()
            .find(|r| !r.deleted && r.file.id == id)
            .ok_or_else(|| LiveError::NoRecording(id.to_string()))?;
        r.deleted = true;
        r.modify_time = now;
        Ok(r.clone())
    }

    /// Rename a user album.
    pub fn rename_album(&mut self, id: &str, name: &str, now: i64) -> Result<Album, LiveError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(LiveError::EmptyName);
        }
        let a = self
            .albums
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| LiveError::NoAlbum(id.to_string()))?;
        if a.is_system() {
            return Err(LiveError::SystemAlbum(id.to_string()));
        }
        a.name = Some(name.to_string());
        a.pinyin = Some(pinyin_of(name));
        let album = a.clone();
        let tag = self.next_tag();
        self.touch(id, tag, now);
        self.rebuild();
        Ok(album)
    }

    /// Create an empty user album.
    pub fn create_album(&mut self, name: &str, now: i64) -> Result<Album, LiveError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(LiveError::EmptyName);
        }
        let mut r = Rng::new(derive(hash_bytes(name.as_bytes()), self.seq));
        let id = loop {
            let v = (r.range(20_000_000_000_000_000, 99_999_999_999_999_999) | 1).to_string();
            if !self.id_taken(&v) {
                break v;
            }
        };
        let album = Album {
            id: id.clone(),
            name: Some(name.to_string()),
            pinyin: Some(pinyin_of(name)),
            created: now,
        };
        self.albums.push(album.clone());
        let tag = self.next_tag();
        self.touch(&id, tag, now);
        self.built_tag.insert(id, tag);
        self.rebuild();
        Ok(album)
    }
}

/// `(sortkey, pinyin, spinyin)` for a new name: the lower-cased name (no transliteration).
fn pinyin_of(name: &str) -> (String, String, String) {
    let l = name.to_lowercase();
    (l.clone(), l.clone(), l)
}

/// A new item as the control API describes it, before id, tag and `createTime` are set.
#[allow(clippy::too_many_arguments)]
pub fn new_item(
    album_id: &str,
    file_name: &str,
    mime: &str,
    is_video: bool,
    date_taken: i64,
    (width, height): (u32, u32),
    source: Source,
    (size, sha1): (u64, String),
) -> Item {
    Item {
        id: String::new(),
        tag: String::new(),
        album_id: album_id.to_string(),
        file_name: file_name.to_string(),
        mime: mime.to_string(),
        is_video,
        date_taken,
        create_time: date_taken,
        date_modified: date_taken,
        exif_date_time: None,
        camera: None,
        width,
        height,
        is_favorite: false,
        source,
        size,
        sha1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scale::SizeMode;
    use crate::model::gallery::{Entry, TAG_BASE};

    fn small() -> Gallery {
        let (albums, items) = crate::build::generate::generate(7, 2, 12, SizeMode::Small);
        Gallery::new(albums, items)
    }

    fn blank(album: &str) -> Item {
        new_item(
            album,
            "new.jpg",
            "image/jpeg",
            false,
            1_700_000_000_000,
            (10, 10),
            Source::Bytes(bytes::Bytes::from_static(b"abc")),
            (3, "a9993e364706816aba3e25717850c26c9cd0d89d".into()),
        )
    }

    #[test]
    fn generated_tags_follow_create_time_and_differ_from_ids() {
        let g = small();
        let mut by_time = g.items.clone();
        by_time.sort_by_key(|it| it.create_time);
        let tags: Vec<u64> = by_time.iter().map(Item::tag_num).collect();
        assert!(tags.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tags[0], TAG_BASE + 1);
        assert!(g
            .items
            .iter()
            .all(|it| it.tag.len() == 17 && it.tag != it.id));
        assert_eq!(g.current_tag(), TAG_BASE + g.items.len() as u64);
    }

    #[test]
    fn every_change_advances_the_tag_and_the_index_hash() {
        let mut g = small();
        let (t0, h0) = (g.current_tag(), g.index_hash);
        let up = g.upload(blank(CAMERA), 5, 1000).unwrap();
        assert_eq!(up.tag_num(), t0 + 1);
        assert_ne!(g.index_hash, h0);
        assert_eq!(g.stats(CAMERA).incremental_tag, t0 + 1);
        let h1 = g.index_hash;
        let gone = g.recycle(&up.id, 6, 1000).unwrap();
        assert_eq!(gone.tag_num(), t0 + 2);
        assert_ne!(g.index_hash, h1);
        assert!(g.item(&up.id).is_none());
        assert_eq!(g.bin.len(), 1);
        let feed = g.feed_after(Some(CAMERA), t0 + 1);
        assert_eq!(feed.len(), 1);
        assert!(matches!(feed[0].1, Entry::Tomb(_)));
        let back = g.restore(&up.id, 7, 1000).unwrap();
        assert_eq!(back.tag_num(), t0 + 3);
        assert!(g.item(&up.id).is_some() && g.bin.is_empty() && g.tombs.is_empty());
        // Tombstones older than the TTL go at the next change.
        g.delete(&up.id, 8, 1000).unwrap();
        assert_eq!(g.tombs.len(), 1);
        g.upload(blank(CAMERA), 2_000, 1000).unwrap();
        assert!(g.tombs.is_empty());
    }

    #[test]
    fn rename_refuses_system_albums_and_empty_names() {
        let mut g = small();
        assert_eq!(
            g.rename_album(CAMERA, "x", 1).unwrap_err(),
            LiveError::SystemAlbum(CAMERA.into())
        );
        let user = g.albums.iter().find(|a| !a.is_system()).unwrap().id.clone();
        assert_eq!(
            g.rename_album(&user, "  ", 1).unwrap_err(),
            LiveError::EmptyName
        );
        let a = g.rename_album(&user, "Renamed", 1).unwrap();
        assert_eq!(g.album(&a.id).unwrap().name.as_deref(), Some("Renamed"));
        let created = g.create_album("Fresh", 2).unwrap();
        assert_eq!(g.stats(&created.id).media_count, 0);
        assert_eq!(g.full_build_tag(&created.id), g.current_tag());
    }
}
