//! Recordings (spec §3.12): the recorder's own file space, outside the album system.
//!
//! The generated set is deterministic from the seed: by default 8 recordings covering the
//! four types (`0` recorder, `1` phone call, `2` FM, `3` app) and duplicate base names
//! (`Meeting.m4a` twice, `录音 001.m4a` twice). Bodies are MP4-shaped ([`super::mp4`], 20 KB ..
//! 400 KB) served as `audio/mp4`. Recording ids are even 17-digit numbers, gallery ids odd,
//! so the two id spaces never collide and the shared download URLs can serve both.
//!
//! Endpoints (session needed except the signed URLs):
//! - `GET /sfs/ns/recorder/dir/0/list?limit=&offset=` → `data.list[]`, newest first, with no
//!   `isLastPage`: a client stops on a page shorter than `limit` (default 50, at least 1).
//!   `name` is the real name followed by four `_<digits>` groups:
//!   `<name>_<duration s>_<type>_<create ms>_<modify ms>` (the first group's meaning is [U];
//!   we put the duration there).
//! - `GET /sfs/ns/recorder/file/{id}/cb/{callback}/storage` → `data.url` = URL-A whose JSONP
//!   wrapper is the `{callback}` path segment (e.g. `dl_sfs_cb_<ts>_0(`); then the photo flow.
//! - `GET /sfs/ns/recorder/file/{id}/storage/geturl` → `data.url` = URL-A with the wrapper
//!   `dl_sfs_cb` ([U] whether the real URL is the JSONP or the file itself).
//! - A deleted or unknown recording answers HTTP 200 `code:50202` on both.
//! - `POST /sfs/ns/recorder/file/{id}/delete` (write endpoint, counted in `write_calls`):
//!   deletes the recording.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::content::{self, ContentError, Source};
use super::download::valid_callback;
use super::gallery::Item;
use super::mp4::VideoSpec;
use super::rng::{derive, Rng};
use super::server::{json, num, ok, plain, query, Session, Shared};
use super::wire::{business_error, now_ms};

/// A recording and its recorder metadata.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The body and base fields (id, base name, size, sha1, times) as an item.
    pub file: Item,
    /// `0` recorder, `1` phone call, `2` FM, `3` app.
    pub kind: u8,
    pub duration_s: u64,
    pub ver: u64,
    pub modify_time: i64,
    pub deleted: bool,
}

impl Recording {
    /// The encoded `name`: `<name>_<duration>_<type>_<create ms>_<modify ms>`.
    pub fn wire_name(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}",
            self.file.file_name,
            self.duration_s,
            self.kind,
            self.file.create_time,
            self.modify_time
        )
    }
}

/// `(base name, type)` of the generated recordings, in order.
const TEMPLATES: &[(&str, u8)] = &[
    ("Meeting.m4a", 0),
    ("张三(13800138000).m4a", 1),
    ("录音 001.m4a", 0),
    ("FM 97.4.m4a", 2),
    ("WeChat voice.m4a", 3),
    ("Meeting.m4a", 0),
    ("13912345678.m4a", 1),
    ("录音 001.m4a", 0),
];

const START_MS: u64 = 1_546_272_000_000; // 2019-01-01 UTC+8
const END_MS: u64 = 1_751_299_200_000; // 2025-07-01 UTC+8

/// `count` recordings for `seed`, fingerprinted.
pub fn generate(seed: u64, count: usize) -> Result<Vec<Recording>, ContentError> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let mut r = Rng::new(derive(seed, 0x5_0000 + k as u64));
        let (name, kind) = match TEMPLATES.get(k) {
            Some(&(n, t)) => (n.to_string(), t),
            None => (format!("录音 {:03}.m4a", k + 1), (k % 4) as u8),
        };
        let id = loop {
            let v = r.range(20_000_000_000_000_000, 99_999_999_999_999_999) & !1;
            if used.insert(v) {
                break v.to_string();
            }
        };
        let created = (r.range(START_MS, END_MS) / 1000 * 1000) as i64;
        let modified = created + r.range(1_000, 86_400_000) as i64;
        let size = r.range(20_000, 400_000);
        let source = Source::Video(VideoSpec {
            seed: derive(seed, 0x6_0000 + k as u64),
            size,
            created_unix: created / 1000,
        });
        let (size, sha1) = content::fingerprint(&source)?;
        let file = Item {
            id,
            tag: String::new(),
            album_id: String::new(),
            file_name: name,
            mime: "audio/mp4".to_string(),
            is_video: false,
            date_taken: created,
            create_time: created,
            date_modified: modified,
            exif_date_time: None,
            camera: None,
            width: 0,
            height: 0,
            is_favorite: false,
            source,
            size,
            sha1,
        };
        out.push(Recording {
            file,
            kind,
            duration_s: size / 16_000 + 1,
            ver: r.range(1, 20),
            modify_time: modified,
            deleted: false,
        });
    }
    Ok(out)
}

/// One `data.list[]` entry.
pub fn wire(r: &Recording) -> Value {
    json!({
        "id": r.file.id,
        "name": r.wire_name(),
        "type": "file",
        "parent_id": "0",
        "size": r.file.size,
        "sha1": r.file.sha1,
        "ver": r.ver,
        "create_time": r.file.create_time,
        "modify_time": r.modify_time,
    })
}

pub async fn list(State(app): State<Shared>, _: Session, RawQuery(q): RawQuery) -> Response {
    let q = query(q.as_deref());
    let limit: usize = num(&q, "limit", 50).max(1);
    let offset: usize = num(&q, "offset", 0);
    let g = app.gallery();
    let mut live: Vec<&Recording> = g.recordings.iter().filter(|r| !r.deleted).collect();
    live.sort_by(|a, b| (b.file.create_time, &b.file.id).cmp(&(a.file.create_time, &a.file.id)));
    let page: Vec<Value> = live
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| wire(r))
        .collect();
    ok(json!({"list": page}))
}

fn deleted() -> Response {
    json(
        StatusCode::OK,
        &business_error(50202, "录音文件已经被删除", false),
    )
}

fn url_a(app: &Shared, headers: &HeaderMap, id: &str, cb: &str) -> Response {
    let live = app
        .gallery()
        .recordings
        .iter()
        .any(|r| !r.deleted && r.file.id == id);
    if !live {
        return deleted();
    }
    let ttl = app.config.url_ttl.as_millis().min(i64::MAX as u128) as i64;
    let url = app
        .signer
        .url_a(&app.host(headers), id, cb, now_ms().saturating_add(ttl));
    ok(json!({"url": url}))
}

pub async fn storage(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Path((id, cb)): Path<(String, String)>,
) -> Response {
    if !valid_callback(&cb) {
        return plain(StatusCode::BAD_REQUEST, "invalid callback segment");
    }
    url_a(&app, &headers, &id, &cb)
}

pub async fn geturl(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    url_a(&app, &headers, &id, "dl_sfs_cb")
}

/// `POST /sfs/ns/recorder/file/{id}/delete`: a write endpoint, counted before anything else.
pub async fn delete(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    _body: Bytes,
) -> Response {
    app.stats.count("write_calls", 1);
    app.stats.count("write_calls:recorder_delete", 1);
    if let Err(e) = app.authorize(&headers) {
        return e.into_response();
    }
    match app.mutate(|g| g.delete_recording(&id, now_ms())) {
        Ok(_) => ok(json!({})),
        Err(_) => deleted(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_set_has_every_type_and_duplicate_names() {
        let recs = generate(42, 8).unwrap();
        assert_eq!(recs.len(), 8);
        for t in 0..4 {
            assert!(recs.iter().any(|r| r.kind == t));
        }
        let names: std::collections::HashSet<_> = recs.iter().map(|r| &r.file.file_name).collect();
        assert!(names.len() < recs.len());
        for r in &recs {
            let name = r.wire_name();
            let groups: Vec<&str> = name.rsplitn(5, '_').collect();
            assert_eq!(groups.len(), 5);
            assert_eq!(groups[2], r.kind.to_string());
            assert!(groups[..4].iter().all(|g| g.parse::<u64>().is_ok()));
            assert!((20_000..=400_000).contains(&r.file.size));
            assert!(r.file.id.parse::<u64>().unwrap() % 2 == 0);
        }
        let again = generate(42, 8).unwrap();
        assert_eq!(recs[3].file.sha1, again[3].file.sha1);
    }
}
