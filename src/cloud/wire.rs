//! Wire types of the Xiaomi Cloud gallery JSON (spec §3) and their conversion into the
//! domain types of `model`. Nothing outside `cloud` sees these structs.
//!
//! Robustness rules, from the spec's evidence:
//! - ids (`albumId`, `id`, `groupId`, `tag`) arrive as strings of up to 19 digits (beyond
//!   2^53) or, for system albums, as numbers: both are accepted and parsed as `u64`, never
//!   through a float;
//! - system albums 1, 2 and 1000 carry no `name`;
//! - list pages are parsed item by item: one malformed item is skipped with a warning, it
//!   never loses the rest of the page;
//! - sizes and times default to 0 when missing, a missing or malformed `sha1` makes the item
//!   unverifiable, so it is skipped (and logged) rather than served unchecked; so is a
//!   `size` over 1 TiB, which no phone produces.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Album, AlbumId, Item, ItemId, MediaKind, Sha1Digest};

/// No phone photo or video comes near this; a larger `size` is a malformed listing.
const MAX_ITEM_SIZE: u64 = 1 << 40;

/// The common envelope of every successful (HTTP 200) answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub retriable: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
}

/// The body of an HTTP 401 (spec §5.2).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Unauthorized {
    #[serde(rename = "isSecondValidation", default)]
    pub is_second_validation: bool,
}

/// `data` of `/api/user/login`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginData {
    #[serde(rename = "loginUrl")]
    pub login_url: String,
}

/// `data` of a paged list (`album/list`, `galleries`): the entries stay raw so that each is
/// parsed on its own.
#[derive(Debug, Deserialize)]
pub(crate) struct AlbumPage {
    #[serde(default)]
    pub albums: Vec<Value>,
    #[serde(rename = "isLastPage", default)]
    pub is_last_page: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ItemPage {
    #[serde(default)]
    pub galleries: Vec<Value>,
    #[serde(rename = "isLastPage", default)]
    pub is_last_page: Option<bool>,
}

/// `data` of `/gallery/storage` (step 1 of a download).
#[derive(Debug, Deserialize)]
pub(crate) struct StorageData {
    pub url: String,
}

/// The JSON inside the JSONP of step 2.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonpPayload {
    pub url: String,
    pub meta: String,
}

/// Extracts the JSON argument of a JSONP call such as `dl_img_cb({...})`, whatever the
/// callback's name: from the first `(` to the last `)`.
pub(crate) fn unwrap_jsonp(body: &str) -> Option<&str> {
    let start = body.find('(')?;
    let end = body.rfind(')')?;
    (end > start).then(|| body[start + 1..end].trim())
}

/// An id that may be a JSON string or number.
fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<&str> {
    v?.as_str()
}

/// An id (string or number) as `u64`.
pub(crate) fn id_value(v: Option<&Value>) -> Option<u64> {
    id_of(v)
}

/// A non-negative count or tag given as a number or a decimal string.
pub(crate) fn count_of(v: &Value) -> Option<u64> {
    id_of(Some(v))
}

/// Parses one album of `album/full` (spec §3.8) into its cursor.
pub(crate) fn parse_album_cursor(v: &Value) -> Result<crate::cloud::AlbumCursor, String> {
    let id = id_of(v.get("albumId")).ok_or("albumId missing or not an integer")?;
    Ok(crate::cloud::AlbumCursor {
        id: AlbumId(id),
        incremental_tag: id_of(v.get("incrementalTag")).unwrap_or(0),
        total: id_of(v.get("totalImageCount")).unwrap_or(0),
    })
}

/// Parses one recording of `/sfs/ns/recorder/dir/0/list` (spec §3.12). The wire `name` is the
/// real name followed by four `_<digits>` groups, the second of which is the type.
pub(crate) fn parse_recording(v: &Value) -> Result<crate::cloud::RecordingEntry, String> {
    let id = id_of(v.get("id")).ok_or("id missing or not an integer")?;
    let sha1 = str_of(v.get("sha1"))
        .and_then(Sha1Digest::from_hex)
        .ok_or("sha1 missing or not 40 hex digits")?;
    let size = id_of(v.get("size")).ok_or("size missing or not an integer")?;
    if size > MAX_ITEM_SIZE {
        return Err(format!("size {size} is implausible (over 1 TiB)"));
    }
    let wire_name = str_of(v.get("name")).unwrap_or("");
    let (file_name, kind) = split_recording_name(wire_name);
    Ok(crate::cloud::RecordingEntry {
        id,
        file_name: file_name.to_string(),
        kind,
        size,
        sha1,
        create_time_ms: int_of(v.get("create_time")).unwrap_or(0),
        modify_time_ms: int_of(v.get("modify_time"))
            .or_else(|| int_of(v.get("create_time")))
            .unwrap_or(0),
    })
}

/// `meeting.m4a_686_0_1641032438000_1666737108163` → (`meeting.m4a`, 0). A name without the
/// four groups is kept whole, as type 0.
pub(crate) fn split_recording_name(name: &str) -> (&str, u8) {
    let mut rest = name;
    let mut groups = Vec::with_capacity(4);
    for _ in 0..4 {
        match rest.rfind('_') {
            Some(i)
                if !rest[i + 1..].is_empty()
                    && rest[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                groups.push(&rest[i + 1..]);
                rest = &rest[..i];
            }
            _ => return (name, 0),
        }
    }
    // groups are in reverse: [modify, create, type, first]
    let kind = groups[2].parse::<u8>().unwrap_or(0);
    (rest, kind)
}

/// Parses one album object of `album/list`.
pub(crate) fn parse_album(v: &Value) -> Result<Album, String> {
    let id = id_of(v.get("albumId")).ok_or("albumId missing or not an integer")?;
    Ok(Album {
        id: AlbumId(id),
        name: str_of(v.get("name"))
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        media_count: int_of(v.get("mediaCount")).unwrap_or(0).max(0) as u64,
        last_update_ms: int_of(v.get("lastUpdateTime")).unwrap_or(0),
    })
}

/// Parses one item object of `galleries`. `album` is the album that was listed; it wins
/// over a missing or unparsable `groupId`.
pub(crate) fn parse_item(v: &Value, album: AlbumId) -> Result<Item, String> {
    let id = id_of(v.get("id")).ok_or("id missing or not an integer")?;
    let sha1 = str_of(v.get("sha1"))
        .and_then(Sha1Digest::from_hex)
        .ok_or("sha1 missing or not 40 hex digits")?;
    let size = match v.get("size") {
        Some(Value::Number(n)) => n.as_u64().ok_or("size is not a non-negative integer")?,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| "size is not an integer")?,
        _ => return Err("size missing".into()),
    };
    if size > MAX_ITEM_SIZE {
        return Err(format!("size {size} is implausible (over 1 TiB)"));
    }
    let file_name = str_of(v.get("fileName"))
        .or_else(|| str_of(v.get("title")))
        .unwrap_or("")
        .to_string();
    let kind = match str_of(v.get("type"))
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        _ => MediaKind::Other,
    };
    let date_taken_ms = int_of(v.get("dateTaken"))
        .or_else(|| int_of(v.get("sortTime")))
        .or_else(|| int_of(v.get("createTime")))
        .unwrap_or(0);
    let exif_date_time = v
        .get("exifInfo")
        .and_then(|e| str_of(e.get("dateTime")))
        .map(str::to_string);
    Ok(Item {
        id: ItemId(id),
        album_id: id_of(v.get("groupId")).map(AlbumId).unwrap_or(album),
        file_name,
        kind,
        mime_type: str_of(v.get("mimeType")).unwrap_or("").into(),
        size,
        sha1,
        date_taken_ms,
        create_time_ms: int_of(v.get("createTime")).unwrap_or(date_taken_ms),
        exif_date_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_beyond_2_pow_53_survive_as_strings_and_numbers() {
        let a = parse_album(&json!({"albumId": "24053454468749665", "name": "Trip"})).unwrap();
        assert_eq!(a.id, AlbumId(24053454468749665));
        let sys = parse_album(&json!({"albumId": "1", "mediaCount": 3})).unwrap();
        assert_eq!(sys.name, None);
        assert_eq!(sys.media_count, 3);
        let num = parse_album(&json!({"albumId": 2})).unwrap();
        assert_eq!(num.id, AlbumId::SCREENSHOTS);
    }

    fn item_json() -> Value {
        json!({
            "id": "24053454468749667", "fileName": "IMG_1.jpg", "type": "image",
            "mimeType": "image/jpeg", "size": 1234,
            "sha1": "0123456789abcdef0123456789abcdef01234567",
            "dateTaken": 1718000000000i64, "createTime": 1718000001000i64,
            "groupId": "24053454468749665",
            "exifInfo": {"dateTime": "2024:06:10 10:15:00"}
        })
    }

    #[test]
    fn item_fields_are_parsed() {
        let it = parse_item(&item_json(), AlbumId(5)).unwrap();
        assert_eq!(it.id, ItemId(24053454468749667));
        assert_eq!(it.album_id, AlbumId(24053454468749665));
        assert_eq!(it.size, 1234);
        assert_eq!(it.kind, MediaKind::Image);
        assert_eq!(it.exif_date_time.as_deref(), Some("2024:06:10 10:15:00"));
        assert_eq!(it.create_time_ms, 1718000001000);
    }

    #[test]
    fn group_id_as_number_and_missing() {
        let mut v = item_json();
        v["groupId"] = json!(1);
        assert_eq!(
            parse_item(&v, AlbumId(9)).unwrap().album_id,
            AlbumId::CAMERA
        );
        v.as_object_mut().unwrap().remove("groupId");
        assert_eq!(parse_item(&v, AlbumId(9)).unwrap().album_id, AlbumId(9));
    }

    #[test]
    fn malformed_items_are_rejected_not_panicking() {
        for (key, bad) in [
            ("id", json!(null)),
            ("id", json!("12ab")),
            ("sha1", json!("xyz")),
            ("size", json!(-5)),
            ("size", json!("big")),
            ("size", json!(u64::MAX)),
        ] {
            let mut v = item_json();
            v[key] = bad;
            assert!(parse_item(&v, AlbumId(1)).is_err(), "{key}");
        }
        assert!(parse_item(&json!("not an object"), AlbumId(1)).is_err());
    }

    #[test]
    fn jsonp_is_unwrapped_whatever_the_callback() {
        assert_eq!(unwrap_jsonp("dl_img_cb({\"a\":1})"), Some("{\"a\":1}"));
        assert_eq!(
            unwrap_jsonp("  cb_1_0( {\"a\":\"(x)\"} ) \n"),
            Some("{\"a\":\"(x)\"}")
        );
        assert_eq!(unwrap_jsonp("no call"), None);
    }
}
