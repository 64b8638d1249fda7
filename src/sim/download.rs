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
//! Expired or tampered URLs and a wrong META answer 403. Range is not honoured yet (the whole
//! file is sent with 200, one of the behaviours the spec allows).

use axum::body::Body as HttpBody;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::content::{self, Body};
use super::server::{json, ok, plain, query, Session, Shared};
use super::stats::Stats;
use super::wire::{business_error, now_ms};

/// A JSONP callback name we are willing to echo (JS identifier characters only).
fn valid_callback(cb: &str) -> bool {
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
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q.as_deref());
    let cb = q
        .get("callBack")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| "dl_img_cb".to_string());
    if !valid_callback(&cb) {
        return plain(StatusCode::BAD_REQUEST, "invalid callBack");
    }
    let id = q.get("id").cloned().unwrap_or_default();
    if app.gallery().item(&id).is_none() {
        let body = business_error(50050, "文件已经被删除", false);
        return json(StatusCode::OK, &body);
    }
    let url = app
        .signer
        .url_a(&app.host(&headers), &id, &cb, now_ms() + ttl_ms(&app));
    ok(json!({"url": url}))
}

pub async fn jsonp(
    State(app): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q.as_deref());
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
    let Some(item) = app.gallery().item(&id).cloned() else {
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

pub async fn file(State(app): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = query(q.as_deref());
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
    let Some(item) = app.gallery().item(&id).cloned() else {
        return plain(StatusCode::NOT_FOUND, "no such media");
    };
    let (http_body, len) = match app.content.body(&item).await {
        Ok(Body::Memory(b)) => {
            let len = b.len() as u64;
            (HttpBody::from(b), len)
        }
        Ok(Body::File(f, len)) => (HttpBody::from_stream(file_stream(f)), len),
        Ok(Body::Stream(s, len)) => (HttpBody::from_stream(s), len),
        Err(err) => {
            tracing::error!(id = %id, error = %err, "cannot produce body");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "storage failure");
        }
    };
    Stats::bump(&app.stats.downloads, 1);
    Stats::bump(&app.stats.bytes_served, len);
    let mut resp = Response::new(http_body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    resp
}

/// 64 KiB chunks of a disk file; stops after the first error.
fn file_stream(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(f), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

pub async fn thumbnail(State(app): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let q = query(q.as_deref());
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
    match tokio::task::spawn_blocking(move || content::thumbnail(&item, px)).await {
        Ok(Ok(jpeg)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
        }
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "thumbnail failure"),
    }
}
