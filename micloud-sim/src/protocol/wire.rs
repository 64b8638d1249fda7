//! The emulator's own JSON (shares no types with the client, see DESIGN §3).
//!
//! Shapes follow the spec: the success envelope (§3.1), the business error (§4.1, §5.1),
//! the gateway 401 body (§5.2), album objects (§3.3) and item objects (§3.6). Ids, tags and
//! user-album `groupId`s are strings; `groupId` is a number for albums 1 and 2; `indexHash`
//! and `userId` are numbers.

use serde_json::{json, Map, Value};

use crate::model::gallery::{AlbumStats, Gallery};
use crate::model::item::{Album, Item, CAMERA, PRIVATE, SCREENSHOTS};
use crate::protocol::urls::{Signer, THUMB_TTL_MS};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `{"result":"ok","retriable":false,"code":0,"data":..,"description":"成功","ts":..}`
pub fn envelope(data: Value) -> Value {
    json!({
        "result": "ok",
        "retriable": false,
        "code": 0,
        "data": data,
        "description": "成功",
        "ts": now_ms(),
    })
}

/// A business error, sent with HTTP 200.
pub fn business_error(code: i64, description: &str, retriable: bool) -> Value {
    json!({
        "result": "error",
        "retriable": retriable,
        "code": code,
        "description": description,
        "reason": description,
        "ts": now_ms(),
    })
}

/// The gateway's 401 body.
pub fn unauthorized(login_url: &str) -> Value {
    json!({"R": 401, "S": "Err", "D": login_url, "E": false, "isSecondValidation": false})
}

/// Numeric form of the account id for `userId` fields (0 if the id is not numeric).
pub fn user_id_num(user_id: &str) -> Value {
    user_id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(user_id))
}

pub fn album(
    a: &Album,
    s: AlbumStats,
    g: &Gallery,
    user_id: &str,
    host: &str,
    signer: &Signer,
) -> Value {
    let mut m = Map::new();
    m.insert("albumId".into(), json!(a.id));
    if let Some(name) = &a.name {
        m.insert("name".into(), json!(name));
    }
    if let Some((sortkey, pinyin, spinyin)) = &a.pinyin {
        m.insert(
            "namePinyin".into(),
            json!({"sortkey": sortkey, "pinyin": pinyin, "spinyin": spinyin}),
        );
        m.insert("albumType".into(), json!("unknown"));
    }
    m.insert("mediaCount".into(), json!(s.media_count));
    m.insert("lastUpdateTime".into(), json!(s.last_update));
    m.insert("userId".into(), user_id_num(user_id));
    if s.media_count > 0 {
        let thumbs = match s.cover.and_then(|i| g.items.get(i)) {
            Some(cover) if a.id != PRIVATE => {
                let url = signer.thumb_url(host, &cover.id, 270, now_ms() + THUMB_TTL_MS);
                vec![json!({"url": url, "orientation": 0})]
            }
            _ => vec![],
        };
        m.insert("thumbnails".into(), Value::Array(thumbs));
    }
    Value::Object(m)
}

fn group_id(album_id: &str) -> Value {
    match album_id {
        CAMERA => json!(1),
        SCREENSHOTS => json!(2),
        other => json!(other),
    }
}

pub fn item(it: &Item, host: &str, signer: &Signer) -> Value {
    let exp = now_ms() + THUMB_TTL_MS;
    let mut exif = Map::new();
    exif.insert("imageWidth".into(), json!(it.width));
    exif.insert("imageLength".into(), json!(it.height));
    exif.insert("orientation".into(), json!(if it.is_video { 0 } else { 1 }));
    exif.insert("whiteBalance".into(), json!(0));
    exif.insert("GPSAltitudeRef".into(), json!(0));
    if let Some(dt) = &it.exif_date_time {
        exif.insert("dateTime".into(), json!(dt));
    }
    if let Some((make, model)) = &it.camera {
        exif.insert("make".into(), json!(make));
        exif.insert("model".into(), json!(model));
        exif.insert("FNumber".into(), json!("1.9"));
        exif.insert("exposureTime".into(), json!("0.01"));
        exif.insert("ISOSpeedRatings".into(), json!("100"));
        exif.insert("focalLength".into(), json!("5.6"));
        exif.insert("flash".into(), json!(16));
    }
    let description = json!({"isFavorite": it.is_favorite}).to_string();
    let (sw, sh) = scaled(it.width, it.height, 270);
    let (lw, lh) = scaled(it.width, it.height, 1080);
    json!({
        "id": it.id,
        "fileName": it.file_name,
        "title": it.title(),
        "type": if it.is_video { "video" } else { "image" },
        "mimeType": it.mime,
        "size": it.size,
        "sha1": it.sha1,
        "dateTaken": it.date_taken,
        "sortTime": it.date_taken,
        "createTime": it.create_time,
        "dateModified": it.date_modified,
        "groupId": group_id(&it.album_id),
        "tag": it.tag,
        "status": "custom",
        "description": description,
        "isFavorite": it.is_favorite,
        "isFrontCamera": false,
        "isUbiImage": false,
        "isLivePhoto": false,
        "exifInfo": exif,
        "thumbStatus": {
            "smallStatus": "custom",
            "largeStatus": "custom",
            "isClientUploadThumb": true,
            "smallSizeInfo": {"compressInt": 70, "width": sw, "height": sh},
            "largeSizeInfo": {"compressInt": 70, "width": lw, "height": lh},
        },
        "thumbnailInfo": {"data": signer.thumb_url(host, &it.id, 270, exp), "isUrl": true},
        "bigThumbnailInfo": {"data": signer.thumb_url(host, &it.id, 1080, exp), "isUrl": true},
    })
}

fn scaled(w: u32, h: u32, max: u32) -> (u32, u32) {
    let m = w.max(h).max(1);
    if m <= max {
        return (w, h);
    }
    (w * max / m, h * max / m)
}

/// `/_sim/items` entry: the ground truth a test compares the mount against.
pub fn truth_item(it: &Item) -> Value {
    json!({
        "id": it.id,
        "albumId": it.album_id,
        "fileName": it.file_name,
        "size": it.size,
        "sha1": it.sha1,
        "dateTaken": it.date_taken,
        "createTime": it.create_time,
        "mimeType": it.mime,
        "exifDateTime": it.exif_date_time,
        "tag": it.tag,
    })
}

/// `/_sim/albums` entry.
pub fn truth_album(a: &Album, s: AlbumStats) -> Value {
    json!({
        "albumId": a.id,
        "name": a.name,
        "system": a.is_system(),
        "mediaCount": s.media_count,
        "lastUpdateTime": s.last_update,
    })
}

/// The English identifier `album/full` gives a system album as `name` (exact strings [U]).
pub fn system_album_name(id: &str) -> Option<&'static str> {
    match id {
        CAMERA => Some("Camera"),
        SCREENSHOTS => Some("Screenshots"),
        PRIVATE => Some("Private"),
        _ => None,
    }
}

/// One `album/full` entry (spec §3.8). System album ids are numbers there, user album ids
/// strings (the spec says "number or string"; which albums get which is [U]).
pub fn album_full(
    a: &Album,
    s: AlbumStats,
    full_build_tag: u64,
    g: &Gallery,
    user_id: &str,
    host: &str,
    signer: &Signer,
) -> Value {
    let id = match a.id.parse::<u64>() {
        Ok(n) if a.is_system() => json!(n),
        _ => json!(a.id),
    };
    let name = a
        .name
        .clone()
        .or_else(|| system_album_name(&a.id).map(str::to_string))
        .unwrap_or_else(|| a.id.clone());
    let thumbs: Vec<Value> = match s.cover.and_then(|i| g.items.get(i)) {
        Some(cover) if a.id != PRIVATE => {
            vec![json!(signer.thumb_url(
                host,
                &cover.id,
                270,
                now_ms() + THUMB_TTL_MS
            ))]
        }
        _ => vec![],
    };
    json!({
        "albumId": id,
        "name": name,
        "incrementalTag": s.incremental_tag.max(full_build_tag).to_string(),
        "fullBuildTag": full_build_tag.to_string(),
        "totalImageCount": s.media_count,
        "totalSize": s.total_size,
        "status": 1,
        "lastUpdateTime": s.last_update,
        "createTime": a.created,
        "userId": user_id_num(user_id),
        "description": "",
        "thumbnailUrls": thumbs,
    })
}

/// An item as the deleted streams show it: `status:"deleted"`, plus `deleteTime` when given.
pub fn deleted_item(it: &Item, delete_time: Option<i64>, host: &str, signer: &Signer) -> Value {
    let mut v = item(it, host, signer);
    v["status"] = json!("deleted");
    if let Some(t) = delete_time {
        v["deleteTime"] = json!(t);
    }
    v
}

/// `allitems` with `simpleResult=true`: `fileName`, `id`, `tag` (and `status` on tombstones,
/// [U]: the spec lists only the first three).
pub fn simple_item(it: &Item, deleted: bool) -> Value {
    let mut v = json!({"fileName": it.file_name, "id": it.id, "tag": it.tag});
    if deleted {
        v["status"] = json!("deleted");
    }
    v
}
