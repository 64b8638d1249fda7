//! Listing endpoints: `album/list` (§3.3), `album/video` (§3.4), `galleries` (§3.6),
//! `timeline` (§3.5). All follow the live gallery (renames, uploads, deletions).
//!
//! All need a live session. Paging is `pageNum` (0-based) × `pageSize` with `isLastPage`;
//! defaults are the web app's (20 albums, 30 items per page); a `pageSize` below 1 counts as 1.
//! No server maximum is enforced ([U] in the spec). Day filters compare the UTC+8 day of
//! `dateTaken` against inclusive `startDate`/`endDate` (`yyyyMMdd`, string or number); an
//! unparsable bound is ignored. Without `albumId`, `galleries` and `timeline` cover every
//! album except the private album 1000 (which the web app shows only after a second
//! verification); with `albumId=1000` they list it. `galleries` and `timeline` read indices
//! prepared by [`crate::model::gallery::Gallery::rebuild`] (binary search on the newest-first
//! order,
//! per-day counts), so a page costs its size, not the album's.
//!
//! `album/video` is the virtual Videos album: the count, cover and `lastUpdateTime` of every
//! video outside the private album; `thumbnails` follows the album rule (absent when empty).
//! An account whose gallery was lost to its region (`gallery=empty`, §10.1) sees no album.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use crate::config::accounts::GalleryState;
use crate::http::reply::ok;
use crate::http::request::{num, Query};
use crate::http::state::{Session, Shared};
use crate::protocol::urls::THUMB_TTL_MS;
use crate::protocol::wire;

fn page_bounds(total: usize, page: usize, size: usize) -> (usize, usize, bool) {
    let start = page.saturating_mul(size).min(total);
    let end = start.saturating_add(size).min(total);
    (start, end, end >= total)
}

pub async fn album_list(
    State(app): State<Shared>,
    Session(user): Session,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let g = app.gallery();
    let page: usize = num(&q, "pageNum", 0);
    let size: usize = num(&q, "pageSize", 20).max(1);
    let shared = q.get("isShared").map(String::as_str) == Some("true");
    let host = app.host(&headers);
    let lost = app.passport.accounts.gallery_state(&user) == GalleryState::Empty;
    let mut order: Vec<usize> = if shared || lost {
        vec![]
    } else {
        (0..g.albums.len()).collect()
    };
    // System albums first (1, 2, 1000), then user albums, most recently updated first.
    order.sort_by_key(|&i| {
        let a = &g.albums[i];
        (!a.is_system(), -g.stats(&a.id).last_update, i)
    });
    let (start, end, last) = page_bounds(order.len(), page, size);
    let albums: Vec<Value> = order[start..end]
        .iter()
        .map(|&i| {
            let a = &g.albums[i];
            wire::album(a, g.stats(&a.id), &g, &user, &host, &app.signer)
        })
        .collect();
    ok(json!({"albums": albums, "isLastPage": last, "indexHash": g.index_hash}))
}

/// `yyyyMMdd` bound as a number, if well-formed.
fn day_bound(q: &std::collections::HashMap<String, String>, key: &str) -> Option<u32> {
    let v = q.get(key)?.trim();
    (v.len() == 8).then(|| v.parse().ok()).flatten()
}

pub async fn galleries(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let g = app.gallery();
    let album = q
        .get("albumId")
        .map(String::as_str)
        .filter(|a| !a.is_empty());
    let from = day_bound(&q, "startDate").unwrap_or(0);
    let to = day_bound(&q, "endDate").unwrap_or(u32::MAX);
    let page: usize = num(&q, "pageNum", 0);
    let size: usize = num(&q, "pageSize", 30).max(1);
    let host = app.host(&headers);
    let matching = g.newest(album, from, to);
    let (start, end, last) = page_bounds(matching.len(), page, size);
    let items: Vec<Value> = matching[start..end]
        .iter()
        .map(|&i| wire::item(&g.items[i], &host, &app.signer))
        .collect();
    ok(json!({"galleries": items, "isLastPage": last, "indexHash": g.index_hash}))
}

pub async fn timeline(State(app): State<Shared>, _: Session, Query(q): Query) -> Response {
    let g = app.gallery();
    let album = q
        .get("albumId")
        .map(String::as_str)
        .filter(|a| !a.is_empty());
    let days: serde_json::Map<String, Value> = g
        .day_counts(album)
        .into_iter()
        .flatten()
        .map(|(day, n)| (day.to_string(), json!(n)))
        .collect();
    ok(json!({"dayCount": days, "indexHash": g.index_hash}))
}

pub async fn album_video(
    State(app): State<Shared>,
    Session(user): Session,
    headers: HeaderMap,
) -> Response {
    let g = app.gallery();
    let s = g.video_stats();
    let mut album = json!({
        "mediaCount": s.media_count,
        "userId": wire::user_id_num(&user),
        "lastUpdateTime": s.last_update,
    });
    if let Some(cover) = s.cover.and_then(|i| g.items.get(i)) {
        let url = app.signer.thumb_url(
            &app.host(&headers),
            &cover.id,
            270,
            wire::now_ms() + THUMB_TTL_MS,
        );
        album["thumbnails"] = json!([{"orientation": 0, "url": url}]);
    }
    ok(json!({"album": album, "indexHash": g.index_hash}))
}
