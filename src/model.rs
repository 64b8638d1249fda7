//! The gallery's domain types, shared by every layer of the client.
//!
//! These are *not* wire types: `cloud` parses the Xiaomi JSON into them (and alone knows the
//! wire format), `catalog` keeps them, `view` names them and `content` fetches their bytes.
//! Ids are kept as `u64`: every id the service hands out is a decimal string of at most
//! 19 digits (17 in practice), beyond 2^53 but well inside 2^64, so they are parsed from
//! strings and never through a float.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// An album id: `1` Camera, `2` Screenshots, `1000` the private album, or a user album's
/// 17-digit id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlbumId(pub u64);

impl AlbumId {
    pub const CAMERA: AlbumId = AlbumId(1);
    pub const SCREENSHOTS: AlbumId = AlbumId(2);
    pub const PRIVATE: AlbumId = AlbumId(1000);

    /// The name a system album is shown under (the wire gives system albums no name).
    pub fn system_name(self) -> Option<&'static str> {
        match self {
            AlbumId::CAMERA => Some("Camera"),
            AlbumId::SCREENSHOTS => Some("Screenshots"),
            AlbumId::PRIVATE => Some("Private"),
            _ => None,
        }
    }
}

impl fmt::Display for AlbumId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A media item id (the `id` the `storage` endpoint takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId(pub u64);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A SHA-1 digest as listed by the service (lower-case hex on the wire).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha1Digest(pub [u8; 20]);

impl Sha1Digest {
    /// Parses 40 hex digits (either case). `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Sha1Digest> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(Sha1Digest(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1Digest({})", self.to_hex())
    }
}

/// What kind of media an item is (`type` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Other,
    /// A voice, call, FM or app recording (spec §3.12): outside the album system, shown under
    /// `recordings/` and downloaded through the recorder's own storage endpoint.
    Recording,
}

impl MediaKind {
    /// The kind as one number, for the catalog and the tree snapshot.
    pub fn code(self) -> u8 {
        match self {
            MediaKind::Image => 0,
            MediaKind::Video => 1,
            MediaKind::Other => 2,
            MediaKind::Recording => 3,
        }
    }

    /// The kind of a [`MediaKind::code`]; an unknown number is `Other`.
    pub fn from_code(code: u8) -> MediaKind {
        match code {
            0 => MediaKind::Image,
            1 => MediaKind::Video,
            3 => MediaKind::Recording,
            _ => MediaKind::Other,
        }
    }
}

/// An album as listed by `album/list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Album {
    pub id: AlbumId,
    /// `None` for system albums (the wire omits it) and for albums the service sent without one.
    pub name: Option<String>,
    pub media_count: u64,
    /// Milliseconds since the epoch; 0 when the service did not say.
    pub last_update_ms: i64,
}

/// A media item as listed by `galleries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: ItemId,
    /// The album the item belongs to (`groupId` on the wire).
    pub album_id: AlbumId,
    /// The file name exactly as the service gave it: not unique, possibly hostile.
    pub file_name: String,
    pub kind: MediaKind,
    /// Shared: a gallery has a handful of MIME types, so the catalog hands every item of one
    /// type the same `Arc` ([`MimeTable`]): 16 bytes an item and no heap block of its own.
    pub mime_type: Arc<str>,
    /// Exact size in bytes.
    pub size: u64,
    pub sha1: Sha1Digest,
    /// Capture time, milliseconds since the epoch (`dateTaken`).
    pub date_taken_ms: i64,
    /// Upload time, milliseconds since the epoch (`createTime`): orders name collisions.
    pub create_time_ms: i64,
    /// `exifInfo.dateTime`, camera-local `"YYYY:MM:DD HH:MM:SS"`, when the service had one.
    pub exif_date_time: Option<String>,
}

/// Interns MIME types while a catalog is loaded: one `Arc<str>` per distinct type.
#[derive(Debug, Default)]
pub struct MimeTable(HashSet<Arc<str>>);

impl MimeTable {
    /// The shared copy of `mime` (made on its first call).
    pub fn intern(&mut self, mime: &str) -> Arc<str> {
        if let Some(m) = self.0.get(mime) {
            return Arc::clone(m);
        }
        let m: Arc<str> = mime.into();
        self.0.insert(Arc::clone(&m));
        m
    }
}
