//! The three-step original download (spec §4) and thumbnails (§3.11, §4.6).
//!
//! 1. `GET /gallery/storage?id=[&callBack=]` (session needed) → `data.url` = URL-A, valid for
//!    `url_ttl`; unknown id → HTTP 200 `code:50050` (media deleted).
//! 2. `GET URL-A` (no cookies) → `<cb>({"url":"<URL-B>","meta":"<META>"})` as
//!    `application/javascript`, `cb` = `dl_img_cb` or step 1's `callBack`; URL-B and META are
//!    valid for another `url_ttl`.
//! 3. `POST URL-B` (no cookies), body `meta=<META>` URL-form-encoded *or* raw without a
//!    Content-Type → 200 with the bytes, `Content-Length`, `application/octet-stream`.
//!
//! Expired or tampered URLs and a wrong META answer 403. Range (spec §4.4, [U]) follows
//! `--range`: off (default) sends the whole file with 200 whatever the request says; on
//! honours one `bytes=a-b`, `bytes=a-` or `bytes=-n` range with 206, `Content-Range` and the
//! slice's `Content-Length`, answers 416 with `Content-Range: bytes */LEN` when it cannot be
//! satisfied, and ignores (200, whole file) multi-range or malformed headers, as RFC 9110
//! allows. Bodies stream from memory or disk; a range on a disk file seeks, it does not read
//! the prefix.
//!
//! The `deleted` fault moves a listed item to the recycle bin at step 1 and answers `50050`,
//! as if its owner deleted it between the client's listing and its download (see
//! [`crate::link::faults`]).

use axum::body::Body as HttpBody;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::bytes::{self, file_stream, Body};
use crate::config::faults::Kind;
use crate::config::link::RangeMode;
use crate::control::stats::Stats;
use crate::http::reply::{json, ok, plain};
use crate::http::request::Query;
use crate::http::state::{Session, Shared};
use crate::protocol::range;
use crate::protocol::wire::{business_error, now_ms};

/// A JSONP callback name we are willing to echo (JS identifier characters only).
pub fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= 128
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
}

fn ttl_ms(app: &Shared) -> i64 {
    app.config.url_ttl.as_millis().min(i64::MAX as u128) as i64
}

pub async fn storage(
    State(app): State<Shared>,
    _: Session,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let cb = q
        .get("callBack")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| "dl_img_cb".to_string());
    if !valid_callback(&cb) {
        return plain(StatusCode::BAD_REQUEST, "invalid callBack");
    }
    let id = q.get("id").cloned().unwrap_or_default();
    let listed = app.gallery().item(&id).is_some();
    if listed && app.faults.fire(Kind::Deleted, &app.stats).is_some() {
        // As if the owner deleted it on the phone after the client listed it: the item really
        // goes to the recycle bin, so later listings agree with this answer.
        let ttl = app.config.live.tombstone_ttl_ms();
        if let Err(e) = app.mutate(|g| g.recycle(&id, now_ms(), ttl)) {
            tracing::warn!(id = %id, error = %e, "deleted fault: cannot recycle the item");
        }
    }
    if !listed || app.gallery().item(&id).is_none() {
        let body = business_error(50050, "文件已经被删除", false);
        return json(StatusCode::OK, &body);
    }
    let url = app
        .signer
        .url_a(&app.host(&headers), &id, &cb, now_ms() + ttl_ms(&app));
    ok(json!({"url": url}))
}

pub async fn jsonp(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (id, cb, e, sig) = (get("id"), get("cb"), get("e"), get("sig"));
    if !app.signer.check(&["A", &id, &cb, &e], &sig) || !valid_callback(&cb) {
        return plain(StatusCode::FORBIDDEN, "bad signature");
    }
    let Ok(exp) = e.parse::<i64>() else {
        return plain(StatusCode::FORBIDDEN, "bad expiry");
    };
    if exp < now_ms() {
        return plain(StatusCode::FORBIDDEN, "url expired");
    }
    let Some(item) = app.gallery().fetchable(&id).cloned() else {
        return plain(StatusCode::NOT_FOUND, "no such media");
    };
    let exp_b = now_ms() + ttl_ms(&app);
    let host = app.host(&headers);
    let payload = json!({
        "url": app.signer.url_b(&host, &id, &item.file_name, &item.mime, exp_b),
        "meta": app.signer.meta(&id, exp_b),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/javascript;charset=UTF-8")],
        format!("{cb}({payload})"),
    )
        .into_response()
}

pub async fn file(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query,
    body: Bytes,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (id, e, sig) = (get("id"), get("e"), get("sig"));
    if !app.signer.check(&["B", &id, &e], &sig) {
        return plain(StatusCode::FORBIDDEN, "bad signature");
    }
    let Ok(exp) = e.parse::<i64>() else {
        return plain(StatusCode::FORBIDDEN, "bad expiry");
    };
    if exp < now_ms() {
        return plain(StatusCode::FORBIDDEN, "url expired");
    }
    // Both body forms parse the same way: META is URL-safe base64, so encoding changes nothing.
    let meta = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "meta")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !app.signer.check_meta(&id, exp, &meta) {
        return plain(StatusCode::FORBIDDEN, "bad meta");
    }
    let Some(item) = app.gallery().fetchable(&id).cloned() else {
        return plain(StatusCode::NOT_FOUND, "no such media");
    };
    let content = match app.content.body(&item).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(id = %id, error = %err, "cannot produce body");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "storage failure");
        }
    };
    let total = content.len();
    let wanted = match app.config.link.range {
        RangeMode::On => headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|r| range::parse(r, total)),
        RangeMode::Off => None,
    };
    let (start, len, status) = match wanted {
        None | Some(range::Wanted::Whole) => (0, total, StatusCode::OK),
        Some(range::Wanted::Slice(a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        Some(range::Wanted::Unsatisfiable) => {
            let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{total}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let http_body = match content {
        Body::Memory(b) => HttpBody::from(b.slice(start as usize..(start + len) as usize)),
        Body::File(mut f, _) => {
            use tokio::io::AsyncSeekExt;
            if let Err(err) = f.seek(std::io::SeekFrom::Start(start)).await {
                tracing::error!(id = %id, error = %err, "cannot seek in body file");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "storage failure");
            }
            HttpBody::from_stream(file_stream(f, len))
        }
        Body::Synth(spec, _) => match Body::synth_range(spec, start, start + len) {
            Ok(s) => HttpBody::from_stream(s),
            Err(err) => {
                tracing::error!(id = %id, error = %err, "cannot produce body");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "storage failure");
            }
        },
    };
    Stats::bump(&app.stats.downloads, 1);
    Stats::bump(&app.stats.bytes_served, len);
    let mut resp = Response::new(http_body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    if app.config.link.range == RangeMode::On {
        h.insert(
            header::ACCEPT_RANGES,
            header::HeaderValue::from_static("bytes"),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len - 1;
        if let Ok(v) = header::HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

pub async fn thumbnail(State(app): State<Shared>, Query(q): Query) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (id, ts, sig) = (get("id"), get("ts"), get("sig"));
    let live = ts.parse::<i64>().is_ok_and(|t| t >= now_ms());
    if !app.signer.check(&["T", &id, &ts], &sig) || !live {
        return plain(StatusCode::FORBIDDEN, "bad or expired signature");
    }
    let Some(item) = app.gallery().item(&id).cloned() else {
        return plain(StatusCode::NOT_FOUND, "no such media");
    };
    let px: u16 = q
        .get("w")
        .and_then(|w| w.parse().ok())
        .unwrap_or(270)
        .clamp(16, 1080);
    match tokio::task::spawn_blocking(move || bytes::thumbnail(&item, px)).await {
        Ok(Ok(jpeg)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
        }
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "thumbnail failure"),
    }
}
