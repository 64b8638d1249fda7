//! The emulated account's gallery: albums and items, immutable once built.
//!
//! Built either by [`super::generate`] (from a seed) or [`super::from_dir`] (from a folder);
//! both hand over albums and items, and [`Gallery::new`] derives what the listings need:
//! an id index, per-album counts and `lastUpdateTime`, and the account-wide `indexHash` (a
//! 31-bit number hashed from every item's id and tag, so it changes whenever the content does,
//! like the captured `1054389279`). Times are Unix milliseconds; day keys use UTC+8 (China
//! Standard Time), the server-local zone of `i.mi.com` (spec §3.5).

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};

use super::content::Source;
use super::rng::hash_bytes;

/// System album ids (spec §3.3).
pub const CAMERA: &str = "1";
pub const SCREENSHOTS: &str = "2";
pub const PRIVATE: &str = "1000";

/// Seconds east of UTC of the server-local day (China Standard Time).
pub const SERVER_TZ_SECS: i32 = 8 * 3600;

#[derive(Clone, Debug)]
pub struct Album {
    /// `"1"`, `"2"`, `"1000"` or a 17-digit id.
    pub id: String,
    /// `None` for system albums: the wire omits `name` for them.
    pub name: Option<String>,
    /// `(sortkey, pinyin, spinyin)` for user albums.
    pub pinyin: Option<(String, String, String)>,
    /// Used as `lastUpdateTime` when the album is empty.
    pub created: i64,
}

impl Album {
    pub fn is_system(&self) -> bool {
        self.name.is_none()
    }
}

#[derive(Clone, Debug)]
pub struct Item {
    /// 17-digit id, odd, beyond 2^53.
    pub id: String,
    /// 17-digit record version, distinct from `id`.
    pub tag: String,
    pub album_id: String,
    pub file_name: String,
    pub mime: String,
    pub is_video: bool,
    pub date_taken: i64,
    pub create_time: i64,
    pub date_modified: i64,
    /// `exifInfo.dateTime` (`YYYY:MM:DD HH:MM:SS`, camera-local), also written into the JPEG.
    pub exif_date_time: Option<String>,
    /// `(make, model)` of the camera, when the photo came from one.
    pub camera: Option<(String, String)>,
    pub width: u32,
    pub height: u32,
    pub is_favorite: bool,
    pub source: Source,
    /// Filled in by [`super::content::fingerprint_all`].
    pub size: u64,
    pub sha1: String,
}

impl Item {
    pub fn title(&self) -> &str {
        match self.file_name.rfind('.') {
            Some(i) if i > 0 => &self.file_name[..i],
            _ => &self.file_name,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct AlbumStats {
    pub media_count: usize,
    pub last_update: i64,
    /// Index of the newest item (cover), if any.
    pub cover: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Gallery {
    pub albums: Vec<Album>,
    pub items: Vec<Item>,
    pub index_hash: i64,
    /// Server-local day (`yyyyMMdd` as a number) of each item's `dateTaken`.
    pub days: Vec<u32>,
    /// Item indices by `sortTime` descending (ties: id descending).
    pub newest_first: Vec<usize>,
    by_id: HashMap<String, usize>,
    stats: HashMap<String, AlbumStats>,
}

impl Gallery {
    pub fn new(albums: Vec<Album>, items: Vec<Item>) -> Self {
        let by_id = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.id.clone(), i))
            .collect();
        let mut stats: HashMap<String, AlbumStats> = albums
            .iter()
            .map(|a| {
                let s = AlbumStats {
                    last_update: a.created,
                    ..AlbumStats::default()
                };
                (a.id.clone(), s)
            })
            .collect();
        for (i, it) in items.iter().enumerate() {
            let s = stats.entry(it.album_id.clone()).or_default();
            s.media_count += 1;
            s.last_update = s.last_update.max(it.create_time);
            let newer = s.cover.is_none_or(|c| items[c].date_taken < it.date_taken);
            if newer {
                s.cover = Some(i);
            }
        }
        let mut fold = Vec::with_capacity(items.len() * 40);
        for it in &items {
            fold.extend_from_slice(it.id.as_bytes());
            fold.extend_from_slice(it.tag.as_bytes());
            fold.extend_from_slice(it.sha1.as_bytes());
        }
        let index_hash = (hash_bytes(&fold) & 0x7FFF_FFFF) as i64;
        let days = items
            .iter()
            .map(|it| day_key(it.date_taken).parse().unwrap_or(0))
            .collect();
        let mut newest_first: Vec<usize> = (0..items.len()).collect();
        newest_first.sort_by(|&a, &b| {
            let (x, y) = (&items[a], &items[b]);
            (y.date_taken, y.id.len(), &y.id).cmp(&(x.date_taken, x.id.len(), &x.id))
        });
        Gallery {
            albums,
            items,
            index_hash,
            days,
            newest_first,
            by_id,
            stats,
        }
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.by_id.get(id).map(|&i| &self.items[i])
    }

    pub fn stats(&self, album_id: &str) -> AlbumStats {
        self.stats.get(album_id).copied().unwrap_or_default()
    }
}

/// UTC+8 wall-clock time of `ms`.
pub fn server_local(ms: i64) -> Option<DateTime<FixedOffset>> {
    let tz = FixedOffset::east_opt(SERVER_TZ_SECS)?;
    Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&tz))
}

/// `yyyyMMdd` server-local day of `ms` (the `dayCount` key and the `startDate` unit).
pub fn day_key(ms: i64) -> String {
    server_local(ms)
        .map(|t| t.format("%Y%m%d").to_string())
        .unwrap_or_else(|| "19700101".to_string())
}

/// Unix ms of `y-m-d h:mi:s` in a zone `offset_secs` east of UTC.
pub fn local_ms(offset_secs: i32, y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    use chrono::TimeZone;
    FixedOffset::east_opt(offset_secs)
        .and_then(|tz| tz.with_ymd_and_hms(y, m, d, h, mi, s).single())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// `YYYY:MM:DD HH:MM:SS` of `ms` in a zone `offset_secs` east of UTC.
pub fn exif_time(ms: i64, offset_secs: i32) -> String {
    FixedOffset::east_opt(offset_secs)
        .and_then(|tz| Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&tz)))
        .map(|t| t.format("%Y:%m:%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "1970:01:01 00:00:00".to_string())
}
