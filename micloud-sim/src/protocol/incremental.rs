//! The cursor endpoints (spec §3.8) and the gallery's write endpoint (§3.9).
//!
//! - `GET /gallery/album/full`: every album at once (no paging), with `incrementalTag` (the
//!   newest tag of any change in the album), `fullBuildTag` (its tag when the gallery was built
//!   or the album created), `totalImageCount`, `totalSize`, `status` 1, and for system albums
//!   an English `name` ("Camera", "Screenshots", "Private": the exact strings are [U]).
//! - `GET /gallery/allitems?groupId=&tag=&limit=&simpleResult=`: records with tag > `tag` in
//!   ascending tag order, of album `groupId` (of the whole account when absent, [U]); `limit`
//!   defaults to and is capped at 60 (at least 1). `syncTag` is the tag of the last record
//!   looked at (pass it back), `lastPage` is true once caught up, `syncIgnoreTag` is `"0"`
//!   ([U] meaning), `group` is `[]`. Deleted and recycled items appear as `status:"deleted"`
//!   tombstones for `--tombstone-ttl` seconds, then vanish. `syncInfo` / `syncExtraInfo`
//!   are rejected with HTTP 200 `code:` [`PARAM_REJECTED`] (the real code is [U]).
//! - `GET /gallery/deleted_v2?maxTag=&limit=`: the recycle bin, newest first; `maxTag=0`
//!   starts at the newest, later pages pass the previous `syncTag`; `limit` defaults to 50,
//!   capped at 200. Items carry `status:"deleted"`, `deleteTime` and the source `groupId`.
//! - `POST /gallery/info/delete` (form `id`, `serviceToken`; MiCloud's GET with a query also
//!   works): moves the item to the recycle bin. Every call is counted in `write_calls` (and
//!   `write_calls:gallery_info_delete`) before anything else, so tests can prove a read-only
//!   client never calls it.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::http::reply::{json, ok};
use crate::http::request::{num, query, Query};
use crate::http::state::{Session, Shared};
use crate::model::gallery::Entry;
use crate::protocol::wire::{self, business_error, now_ms};

/// Business code for a rejected `syncInfo` / `syncExtraInfo` parameter ([U]).
pub const PARAM_REJECTED: i64 = 10008;
/// Server cap of `allitems`' `limit`.
pub const ALLITEMS_MAX: usize = 60;
const DELETED_DEFAULT: usize = 50;
const DELETED_MAX: usize = 200;

pub async fn album_full(
    State(app): State<Shared>,
    Session(user): Session,
    headers: HeaderMap,
) -> Response {
    let g = app.gallery();
    let host = app.host(&headers);
    let albums: Vec<Value> = g
        .albums
        .iter()
        .map(|a| {
            let s = g.stats(&a.id);
            let built = g.full_build_tag(&a.id);
            wire::album_full(a, s, built, &g, &user, &host, &app.signer)
        })
        .collect();
    ok(json!({"albums": albums}))
}

pub async fn allitems(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    if let Some(p) = ["syncInfo", "syncExtraInfo"]
        .into_iter()
        .find(|p| q.contains_key(*p))
    {
        let msg = format!("参数错误: {p} is not accepted by allitems");
        return json(StatusCode::OK, &business_error(PARAM_REJECTED, &msg, false));
    }
    let g = app.gallery();
    let group = q
        .get("groupId")
        .map(String::as_str)
        .filter(|a| !a.is_empty());
    let cursor: u64 = num(&q, "tag", 0);
    let limit: usize = num(&q, "limit", ALLITEMS_MAX).clamp(1, ALLITEMS_MAX);
    let simple = q.get("simpleResult").map(String::as_str) == Some("true");
    let host = app.host(&headers);
    let (now, ttl) = (now_ms(), app.config.live.tombstone_ttl_ms());
    let feed = g.feed_after(group, cursor);
    let mut content = Vec::with_capacity(limit);
    let (mut sync, mut looked) = (cursor, 0);
    for &(tag, entry) in feed {
        if content.len() == limit {
            break;
        }
        looked += 1;
        sync = tag;
        match entry {
            Entry::Live(i) if simple => content.push(wire::simple_item(&g.items[i], false)),
            Entry::Live(i) => content.push(wire::item(&g.items[i], &host, &app.signer)),
            Entry::Tomb(i) => {
                let t = &g.tombs[i];
                if now.saturating_sub(t.at) >= ttl {
                    continue;
                }
                content.push(if simple {
                    wire::simple_item(&t.item, true)
                } else {
                    wire::deleted_item(&t.item, None, &host, &app.signer)
                });
            }
        }
    }
    ok(json!({
        "content": content,
        "syncTag": sync.to_string(),
        "lastPage": looked == feed.len(),
        "syncIgnoreTag": "0",
        "group": [],
    }))
}

pub async fn deleted_v2(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let g = app.gallery();
    let max_tag: u64 = num(&q, "maxTag", 0);
    let limit: usize = num(&q, "limit", DELETED_DEFAULT).clamp(1, DELETED_MAX);
    let host = app.host(&headers);
    let end = if max_tag == 0 {
        g.bin.len()
    } else {
        g.bin.partition_point(|r| r.item.tag_num() < max_tag)
    };
    let start = end.saturating_sub(limit);
    let page = &g.bin[start..end];
    let content: Vec<Value> = page
        .iter()
        .rev()
        .map(|r| wire::deleted_item(&r.item, Some(r.delete_time), &host, &app.signer))
        .collect();
    let sync = page.first().map_or(max_tag, |r| r.item.tag_num());
    ok(json!({"content": content, "lastPage": start == 0, "syncTag": sync.to_string()}))
}

/// `POST /gallery/info/delete`: recycle one item (counted as a write call).
pub async fn info_delete(
    State(app): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    app.stats.count("write_calls", 1);
    app.stats.count("write_calls:gallery_info_delete", 1);
    if let Err(e) = app.authorize(&headers) {
        return e.into_response();
    }
    let mut fields = query(q.as_deref());
    fields.extend(url::form_urlencoded::parse(&body).into_owned());
    let id = fields.get("id").cloned().unwrap_or_default();
    let ttl = app.config.live.tombstone_ttl_ms();
    match app.mutate(|g| g.recycle(&id, now_ms(), ttl)) {
        Ok(_) => ok(json!({})),
        Err(_) => json(
            StatusCode::OK,
            &business_error(50050, "文件已经被删除", false),
        ),
    }
}
