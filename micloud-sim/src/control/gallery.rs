//! The gallery side of the `/_sim/` API: its ground truth and its changes.
//!
//! Reading:
//! - `GET /_sim/items`: the ground truth, every live item of every album (the private one
//!   included; not the recycle bin), each `{id, albumId, fileName, size, sha1, dateTaken,
//!   createTime, mimeType, exifDateTime, tag}`;
//! - `GET /_sim/albums`: albums with counts; `GET /_sim/stats`: the counters;
//! - `GET /_sim/recordings`: every recording `{id, name, fileName, type, size, sha1,
//!   deleted}` (`name` as the list endpoint encodes it, deleted ones flagged).
//!
//! Changing (JSON bodies; the answer is the affected item, album or recording as JSON; a bad
//! body is 400, an unknown id 404, a refused change 409, each with a message saying what to
//! send instead):
//! - `POST /_sim/upload` `{"albumId":"1", "fileName":"x.jpg", "dateTaken":<ms>,
//!   "kind":"image"|"video", "size":<bytes>, "bytes":"<base64>", "mimeType":".."}`: only
//!   `fileName` is required. With `bytes` those bytes are the file; otherwise a 640x480 JPEG
//!   with an EXIF date of `dateTaken` (UTC+8), or with `kind:"video"` an MP4 of `size` bytes
//!   (default 200 000; `size` is ignored for generated photos). `kind` defaults to video for
//!   `.mp4`/`.mov` names. `albumId` defaults to Camera (`1`), `dateTaken` to now. Answers the
//!   new item (with its id and tag).
//! - `POST /_sim/recycle {"id"}`: to the recycle bin (like `POST /gallery/info/delete`);
//! - `POST /_sim/restore {"id"}`: back from the bin under a new tag;
//! - `POST /_sim/delete {"id"}`: permanently, a live or recycled item, or a recording;
//! - `POST /_sim/rename-album {"albumId", "name"}` (user albums only);
//! - `POST /_sim/create-album {"name"}`: a new empty user album.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bytes;
use crate::http::reply::{json, plain};
use crate::http::state::Shared;
use crate::model::item::{Album, Item, CAMERA};
use crate::model::live::{self, Deleted, LiveError};
use crate::model::recording::Recording;
use crate::model::rng::hash_bytes;
use crate::model::source::{ExifSpec, PhotoSpec, Source, VideoSpec};
use crate::model::time::{exif_time, SERVER_TZ_SECS};
use crate::protocol::wire::{self, now_ms};

pub async fn items(State(app): State<Shared>) -> Response {
    let all: Vec<Value> = app.gallery().items.iter().map(wire::truth_item).collect();
    json(StatusCode::OK, &Value::Array(all))
}

pub async fn albums(State(app): State<Shared>) -> Response {
    let g = app.gallery();
    let all: Vec<Value> = g
        .albums
        .iter()
        .map(|a| wire::truth_album(a, g.stats(&a.id)))
        .collect();
    json(StatusCode::OK, &Value::Array(all))
}

pub async fn stats(State(app): State<Shared>) -> Response {
    let snap = serde_json::to_value(app.stats.snapshot()).unwrap_or(Value::Null);
    json(StatusCode::OK, &snap)
}

fn truth_recording(r: &Recording) -> Value {
    json!({
        "id": r.file.id,
        "name": r.wire_name(),
        "fileName": r.file.file_name,
        "type": r.kind,
        "size": r.file.size,
        "sha1": r.file.sha1,
        "deleted": r.deleted,
    })
}

pub async fn recordings(State(app): State<Shared>) -> Response {
    let all: Vec<Value> = app
        .gallery()
        .recordings
        .iter()
        .map(truth_recording)
        .collect();
    json(StatusCode::OK, &Value::Array(all))
}

/// A 400 answer naming what to send.
fn bad(msg: String) -> Response {
    json(StatusCode::BAD_REQUEST, &json!({"error": msg}))
}

fn refused(e: LiveError) -> Response {
    let status = match e {
        LiveError::SystemAlbum(_) => StatusCode::CONFLICT,
        LiveError::EmptyName => StatusCode::BAD_REQUEST,
        _ => StatusCode::NOT_FOUND,
    };
    json(status, &json!({"error": e.to_string()}))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes, example: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("body is not the expected JSON ({e}); send e.g. {example}"))
}

fn item_json(it: &Item) -> Value {
    wire::truth_item(it)
}

fn album_json(app: &Shared, a: &Album) -> Value {
    wire::truth_album(a, app.gallery().stats(&a.id))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadReq {
    album_id: Option<String>,
    file_name: String,
    date_taken: Option<i64>,
    kind: Option<String>,
    size: Option<u64>,
    bytes: Option<String>,
    mime_type: Option<String>,
}

/// Largest generated video an upload may ask for (64 MiB).
const MAX_UPLOAD: u64 = 64 << 20;

pub async fn upload(State(app): State<Shared>, body: Bytes) -> Response {
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let req: UploadReq = match parse(&body, r#"{"albumId":"1","fileName":"IMG_1.jpg"}"#) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    let now = now_ms();
    let taken = req.date_taken.unwrap_or(now);
    let lower = req.file_name.to_lowercase();
    let is_video = match req.kind.as_deref() {
        Some("video") => true,
        Some("image") => false,
        Some(other) => {
            return bad(format!(
                "kind {other:?} is unknown; send \"image\" or \"video\""
            ))
        }
        None => lower.ends_with(".mp4") || lower.ends_with(".mov"),
    };
    let seed = hash_bytes(
        format!(
            "{}\0{taken}\0{now}\0{}",
            req.file_name,
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        )
        .as_bytes(),
    );
    let mut exif_date = None;
    let (source, dims) = match (&req.bytes, is_video) {
        (Some(b64), _) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(raw) => (Source::Bytes(raw.into()), (0, 0)),
            Err(e) => {
                return bad(format!(
                    "bytes is not standard base64 ({e}); encode the file"
                ))
            }
        },
        (None, true) => {
            let size = req.size.unwrap_or(200_000);
            if !(256..=MAX_UPLOAD).contains(&size) {
                return bad(format!(
                    "size {size} is out of range; send 256 ..= {MAX_UPLOAD}"
                ));
            }
            let spec = VideoSpec {
                seed,
                size,
                created_unix: taken / 1000,
            };
            (Source::Video(spec), (1920, 1080))
        }
        (None, false) => {
            let date_time = exif_time(taken, SERVER_TZ_SECS);
            exif_date = Some(date_time.clone());
            let spec = PhotoSpec {
                seed,
                width: 640,
                height: 480,
                exif: Some(ExifSpec {
                    date_time,
                    offset: "+08:00".to_string(),
                    make: "Xiaomi".to_string(),
                    model: "Xiaomi 13".to_string(),
                }),
            };
            (Source::Photo(spec), (640, 480))
        }
    };
    let fp_source = source.clone();
    let fingerprint =
        match tokio::task::spawn_blocking(move || bytes::fingerprint(&fp_source)).await {
            Ok(Ok(fp)) => fp,
            Ok(Err(e)) => return bad(format!("cannot build the file ({e}); try other parameters")),
            Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "upload worker failed"),
        };
    let mime = req
        .mime_type
        .clone()
        .unwrap_or_else(|| if is_video { "video/mp4" } else { "image/jpeg" }.to_string());
    let album = req.album_id.unwrap_or_else(|| CAMERA.to_string());
    let mut item = live::new_item(
        &album,
        &req.file_name,
        &mime,
        is_video,
        taken,
        dims,
        source,
        fingerprint,
    );
    item.exif_date_time = exif_date;
    let ttl = app.config.live.tombstone_ttl_ms();
    match app.mutate(|g| g.upload(item, now, ttl)) {
        Ok(it) => json(StatusCode::OK, &item_json(&it)),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct IdReq {
    id: String,
}

const ID_EXAMPLE: &str = r#"{"id":"<17-digit id from /_sim/items>"}"#;

pub async fn recycle(State(app): State<Shared>, body: Bytes) -> Response {
    let req: IdReq = match parse(&body, ID_EXAMPLE) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    let ttl = app.config.live.tombstone_ttl_ms();
    match app.mutate(|g| g.recycle(&req.id, now_ms(), ttl)) {
        Ok(it) => json(StatusCode::OK, &item_json(&it)),
        Err(e) => refused(e),
    }
}

pub async fn restore(State(app): State<Shared>, body: Bytes) -> Response {
    let req: IdReq = match parse(&body, ID_EXAMPLE) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    let ttl = app.config.live.tombstone_ttl_ms();
    match app.mutate(|g| g.restore(&req.id, now_ms(), ttl)) {
        Ok(it) => json(StatusCode::OK, &item_json(&it)),
        Err(e) => refused(e),
    }
}

pub async fn delete(State(app): State<Shared>, body: Bytes) -> Response {
    let req: IdReq = match parse(&body, ID_EXAMPLE) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    let ttl = app.config.live.tombstone_ttl_ms();
    match app.mutate(|g| g.delete(&req.id, now_ms(), ttl)) {
        Ok(Deleted::Item(it)) => json(StatusCode::OK, &item_json(&it)),
        Ok(Deleted::Recording(r)) => json(StatusCode::OK, &truth_recording(&r)),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenameReq {
    album_id: String,
    name: String,
}

pub async fn rename_album(State(app): State<Shared>, body: Bytes) -> Response {
    let req: RenameReq = match parse(&body, r#"{"albumId":"<user album id>","name":"New"}"#) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    match app.mutate(|g| g.rename_album(&req.album_id, &req.name, now_ms())) {
        Ok(a) => json(StatusCode::OK, &album_json(&app, &a)),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct NameReq {
    name: String,
}

pub async fn create_album(State(app): State<Shared>, body: Bytes) -> Response {
    let req: NameReq = match parse(&body, r#"{"name":"New album"}"#) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    match app.mutate(|g| g.create_album(&req.name, now_ms())) {
        Ok(a) => json(StatusCode::OK, &album_json(&app, &a)),
        Err(e) => refused(e),
    }
}
