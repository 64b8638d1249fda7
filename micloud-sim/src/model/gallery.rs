//! The emulated account's gallery: albums, items, the recycle bin, tombstones and recordings,
//! with the indexes every request reads.
//!
//! Built either by [`crate::build::generate`] (from a seed) or [`crate::build::from_dir`] (from
//! a folder);
//! both hand over albums and items, and [`Gallery::new`] numbers every item with the account's
//! one global record-version sequence (`tag`, spec §3.8): 17-digit numbers from
//! [`TAG_BASE`] + 1 in `createTime` order, below every id (ids are ≥ 2·10^16), so tags and ids
//! never collide. Every later change ([`crate::model::live`]) takes the next number.
//!
//! [`Gallery::rebuild`] derives, in O(n log n) once per change, everything a request needs so
//! that no listing walks the whole gallery: an id index, per-album counts, sizes,
//! `lastUpdateTime` and `incrementalTag`, newest-first orders (all public albums, and per
//! album; day filters are binary searches because the order is by `dateTaken`), per-day counts,
//! the ascending-tag feeds of `allitems` (live items and tombstones, per album and account-wide),
//! and the account-wide `indexHash`: a 31-bit number hashed from every item's id, tag and sha1
//! and the current sequence number, so it changes with every change, like the captured
//! `1054389279`. Times are Unix milliseconds; day keys use the server-local zone
//! ([`crate::model::time`]).

use std::collections::{BTreeMap, HashMap};

use crate::model::item::{Album, Item, PRIVATE};
use crate::model::recording::Recording;
use crate::model::rng::hash_bytes;
use crate::model::time::day_num;

/// The tag sequence starts after this number (10^16: 17 digits, below every id).
pub const TAG_BASE: u64 = 10_000_000_000_000_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct AlbumStats {
    pub media_count: usize,
    pub last_update: i64,
    /// Index of the newest item (cover), if any.
    pub cover: Option<usize>,
    /// Sum of the live items' sizes (`totalSize` of `album/full`).
    pub total_size: u64,
    /// Newest tag of any change in the album (`incrementalTag`).
    pub incremental_tag: u64,
}

/// An item in the recycle bin (`deleted_v2`); `item.tag` is the tag of the recycling.
#[derive(Clone, Debug)]
pub struct Recycled {
    pub item: Item,
    pub delete_time: i64,
}

/// A recently deleted or recycled item as `allitems` shows it (`status:"deleted"`) until the
/// tombstone is compacted; `item.tag` is the tag of the deletion.
#[derive(Clone, Debug)]
pub struct Tombstone {
    pub item: Item,
    pub at: i64,
}

/// One record of an `allitems` feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Index into [`Gallery::items`].
    Live(usize),
    /// Index into [`Gallery::tombs`].
    Tomb(usize),
}

#[derive(Clone, Debug)]
pub struct Gallery {
    pub albums: Vec<Album>,
    /// Live items (not deleted, not in the recycle bin).
    pub items: Vec<Item>,
    pub index_hash: i64,
    /// Server-local day (`yyyyMMdd` as a number) of each item's `dateTaken`.
    pub days: Vec<u32>,
    /// Item indices by `sortTime` descending (ties: id descending).
    pub newest_first: Vec<usize>,
    /// The recycle bin, in ascending tag order (the order items were recycled).
    pub bin: Vec<Recycled>,
    /// Recent deletions, shown by `allitems` until they are older than the tombstone TTL.
    pub tombs: Vec<Tombstone>,
    /// Voice and call recordings (spec §3.12), deleted ones included (flagged).
    pub recordings: Vec<Recording>,
    /// The last tag handed out.
    pub(super) seq: u64,
    /// `fullBuildTag` of each album: its `incrementalTag` when the gallery was built or the
    /// album created.
    pub(super) built_tag: HashMap<String, u64>,
    /// The newest album-level change (rename, deletion, creation): tag and time.
    pub(super) touched: HashMap<String, (u64, i64)>,
    by_id: HashMap<String, usize>,
    stats: HashMap<String, AlbumStats>,
    /// `newest_first` without the private album.
    public_newest: Vec<usize>,
    album_newest: HashMap<String, Vec<usize>>,
    public_days: BTreeMap<u32, u64>,
    album_days: HashMap<String, BTreeMap<u32, u64>>,
    /// `(tag, record)` in ascending tag order: account-wide and per album.
    feed: Vec<(u64, Entry)>,
    album_feed: HashMap<String, Vec<(u64, Entry)>>,
    /// The virtual Videos album (spec §3.4): public videos only.
    videos: AlbumStats,
}

impl Gallery {
    pub fn new(albums: Vec<Album>, mut items: Vec<Item>) -> Self {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&items[a], &items[b]);
            (x.create_time, x.id.len(), &x.id).cmp(&(y.create_time, y.id.len(), &y.id))
        });
        for (k, &i) in order.iter().enumerate() {
            items[i].tag = (TAG_BASE + 1 + k as u64).to_string();
        }
        let mut g = Gallery {
            albums,
            items,
            index_hash: 0,
            days: Vec::new(),
            newest_first: Vec::new(),
            bin: Vec::new(),
            tombs: Vec::new(),
            recordings: Vec::new(),
            seq: TAG_BASE + order.len() as u64,
            built_tag: HashMap::new(),
            touched: HashMap::new(),
            by_id: HashMap::new(),
            stats: HashMap::new(),
            public_newest: Vec::new(),
            album_newest: HashMap::new(),
            public_days: BTreeMap::new(),
            album_days: HashMap::new(),
            feed: Vec::new(),
            album_feed: HashMap::new(),
            videos: AlbumStats::default(),
        };
        g.rebuild();
        g.built_tag = g
            .stats
            .iter()
            .map(|(id, s)| (id.clone(), s.incremental_tag.max(TAG_BASE)))
            .collect();
        g
    }

    /// Recompute every derived index from `albums`, `items`, `tombs` and `touched`.
    pub(super) fn rebuild(&mut self) {
        let items = &self.items;
        self.by_id = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.id.clone(), i))
            .collect();
        let mut stats: HashMap<String, AlbumStats> = self
            .albums
            .iter()
            .map(|a| {
                let (tag, at) = self.touched.get(&a.id).copied().unwrap_or((0, 0));
                let s = AlbumStats {
                    last_update: a.created.max(at),
                    incremental_tag: tag,
                    ..AlbumStats::default()
                };
                (a.id.clone(), s)
            })
            .collect();
        let mut videos = AlbumStats::default();
        for (i, it) in items.iter().enumerate() {
            let add = |s: &mut AlbumStats| {
                s.media_count += 1;
                s.total_size += it.size;
                s.last_update = s.last_update.max(it.create_time);
                s.incremental_tag = s.incremental_tag.max(it.tag_num());
                if s.cover.is_none_or(|c| items[c].date_taken < it.date_taken) {
                    s.cover = Some(i);
                }
            };
            add(slot(&mut stats, &it.album_id));
            if it.is_video && it.album_id != PRIVATE {
                add(&mut videos);
            }
        }
        let mut fold = Vec::with_capacity(items.len() * 60 + 8);
        for it in items {
            fold.extend_from_slice(it.id.as_bytes());
            fold.extend_from_slice(it.tag.as_bytes());
            fold.extend_from_slice(it.sha1.as_bytes());
        }
        fold.extend_from_slice(&self.seq.to_be_bytes());
        self.index_hash = (hash_bytes(&fold) & 0x7FFF_FFFF) as i64;
        self.days = items.iter().map(|it| day_num(it.date_taken)).collect();
        let mut newest_first: Vec<usize> = (0..items.len()).collect();
        newest_first.sort_by(|&a, &b| {
            let (x, y) = (&items[a], &items[b]);
            (y.date_taken, y.id.len(), &y.id).cmp(&(x.date_taken, x.id.len(), &x.id))
        });
        let mut public_newest = Vec::with_capacity(items.len());
        let mut album_newest: HashMap<String, Vec<usize>> = HashMap::new();
        let mut public_days = BTreeMap::new();
        let mut album_days: HashMap<String, BTreeMap<u32, u64>> = HashMap::new();
        for &i in &newest_first {
            let album = &items[i].album_id;
            slot(&mut album_newest, album).push(i);
            *slot(&mut album_days, album)
                .entry(self.days[i])
                .or_insert(0) += 1;
            if album != PRIVATE {
                public_newest.push(i);
                *public_days.entry(self.days[i]).or_insert(0) += 1;
            }
        }
        let mut feed: Vec<(u64, Entry)> = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.tag_num(), Entry::Live(i)))
            .chain(
                self.tombs
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.item.tag_num(), Entry::Tomb(i))),
            )
            .collect();
        feed.sort_unstable_by_key(|&(tag, _)| tag);
        let mut album_feed: HashMap<String, Vec<(u64, Entry)>> = HashMap::new();
        for &(tag, e) in &feed {
            let album = match e {
                Entry::Live(i) => &items[i].album_id,
                Entry::Tomb(i) => &self.tombs[i].item.album_id,
            };
            slot(&mut album_feed, album).push((tag, e));
        }
        self.stats = stats;
        self.videos = videos;
        self.newest_first = newest_first;
        self.public_newest = public_newest;
        self.album_newest = album_newest;
        self.public_days = public_days;
        self.album_days = album_days;
        self.feed = feed;
        self.album_feed = album_feed;
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.by_id.get(id).map(|&i| &self.items[i])
    }

    /// Index of a live item.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// What the download URLs (URL-A, URL-B) may serve: a live item or a live recording.
    pub fn fetchable(&self, id: &str) -> Option<&Item> {
        self.item(id).or_else(|| {
            self.recordings
                .iter()
                .find(|r| !r.deleted && r.file.id == id)
                .map(|r| &r.file)
        })
    }

    pub fn album(&self, id: &str) -> Option<&Album> {
        self.albums.iter().find(|a| a.id == id)
    }

    pub fn stats(&self, album_id: &str) -> AlbumStats {
        self.stats.get(album_id).copied().unwrap_or_default()
    }

    /// The virtual Videos album: every video outside the private album.
    pub fn video_stats(&self) -> AlbumStats {
        self.videos
    }

    /// `fullBuildTag` of an album.
    pub fn full_build_tag(&self, album_id: &str) -> u64 {
        self.built_tag.get(album_id).copied().unwrap_or(TAG_BASE)
    }

    /// The newest tag handed out.
    #[cfg(test)]
    pub fn current_tag(&self) -> u64 {
        self.seq
    }

    /// Items newest first, of one album or (None) of every album but the private one,
    /// restricted to server-local days `from..=to`: a binary search, no scan.
    pub fn newest(&self, album: Option<&str>, from: u32, to: u32) -> &[usize] {
        let list: &[usize] = match album {
            Some(a) => self.album_newest.get(a).map_or(&[], Vec::as_slice),
            None => &self.public_newest,
        };
        let start = list.partition_point(|&i| self.days[i] > to);
        let end = list.partition_point(|&i| self.days[i] >= from).max(start);
        &list[start..end]
    }

    /// Items per server-local day, of one album or of every album but the private one.
    pub fn day_counts(&self, album: Option<&str>) -> Option<&BTreeMap<u32, u64>> {
        match album {
            Some(a) => self.album_days.get(a),
            None => Some(&self.public_days),
        }
    }

    /// The ascending-tag feed of one album (or of the account), from the first tag > `after`.
    pub fn feed_after(&self, album: Option<&str>, after: u64) -> &[(u64, Entry)] {
        let list: &[(u64, Entry)] = match album {
            Some(a) => self.album_feed.get(a).map_or(&[], Vec::as_slice),
            None => &self.feed,
        };
        &list[list.partition_point(|&(t, _)| t <= after)..]
    }
}

/// The value of `key`, inserted empty if missing (no key clone on the hit path).
fn slot<'a, V: Default>(map: &'a mut HashMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("the key was inserted above"))
}
