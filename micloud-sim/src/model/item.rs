//! Albums and items, as the gallery holds them (one item per album entry: the same photo in
//! two albums is two items with the same bytes).
//!
//! Ids are 17-digit numbers beyond 2^53 (odd for items, even for recordings); system albums
//! have fixed small ids and no name on the wire.

use crate::model::source::Source;

/// System album ids (spec §3.3).
pub const CAMERA: &str = "1";
pub const SCREENSHOTS: &str = "2";
pub const PRIVATE: &str = "1000";

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
    /// Filled in by [`crate::build::fingerprint`].
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

    /// The numeric record version.
    pub fn tag_num(&self) -> u64 {
        self.tag.parse().unwrap_or(0)
    }
}
