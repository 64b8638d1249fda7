//! QR login (spec §2.4). Every JSON answer is `&&&START&&&` + JSON.
//!
//! - `GET /longPolling/loginUrl?...&callback=&sid=` → `code:0`, `qr` (`/pass/qr/login?ticket=lp_..`,
//!   a PNG QR code of `loginUrl`), `loginUrl` (`/pass/qr/scan?ticket=lp_..`, a small page for
//!   people driving the demo by hand), `lp` (`/lp/s?k=lp_..`), `timeout` (seconds, rounded up;
//!   `--qr-timeout`, default 300 s), `qrTips`.
//! - `GET <lp>` hangs until the scan is confirmed (`POST /_sim/qr/confirm?ticket=&account=`; no
//!   ticket = the latest, no account = the default one), then answers `code:0` with `userId`,
//!   `passToken` (freshly minted), `ssecurity`, `psecurity`, `cUserId`, `location` (STS URL with
//!   a single-use nonce), `nonce`, plus `Set-Cookie: passToken`, `userId`, `cUserId`. Any number
//!   of GETs of the same `lp` (a client cutting its poll at 75 s and retrying) wait on the same
//!   ticket and all see the same answer until it expires.
//! - Not confirmed before the timeout, or an unknown/expired ticket: HTTP 200 with
//!   `{"code":408,"result":"error","description":"二维码已过期",...}`. The code is the
//!   emulator's choice: no public source shows the real expiry answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::http::reply::{json, plain};
use crate::http::request::{cookies, Query};
use crate::http::state::Shared;
use crate::passport::common::{followup_of, passport_json, with_cookies, Completed};
use crate::passport::images::{gray_png, Bitmap};
use crate::passport::pending::{Done, Ticket};
use crate::passport::session::random_b64url;

/// Pixels per QR module, and modules of quiet zone around the code.
const MODULE_PX: usize = 6;
const QUIET: usize = 4;

fn expired() -> Response {
    passport_json(&json!({
        "code": 408, "result": "error", "description": "二维码已过期",
        "desc": "QR code expired: ask /longPolling/loginUrl for a new one",
    }))
}

/// `GET /longPolling/loginUrl`
pub async fn login_url(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    let host = app.host(&headers);
    let followup = q
        .get("callback")
        .map(|c| followup_of(c))
        .unwrap_or_else(|| "/".to_string());
    let id = format!("lp_{}", random_b64url(18));
    let timeout = app.passport.qr_timeout;
    let login_url = format!("{host}/pass/qr/scan?ticket={id}");
    let (state, _) = watch::channel(None);
    app.passport.qr.insert(
        &id,
        Ticket {
            host: host.clone(),
            device: cookies(&headers).get("deviceId").cloned(),
            followup,
            login_url: login_url.clone(),
            expires: Instant::now() + timeout,
            state,
        },
    );
    app.stats.count("login_qr_issued", 1);
    tracing::info!("QR login ticket issued");
    passport_json(&json!({
        "code": 0, "result": "ok", "description": "成功",
        "qr": format!("{host}/pass/qr/login?ticket={id}"),
        "loginUrl": login_url,
        "lp": format!("{host}/lp/s?k={id}"),
        "timeout": timeout.as_millis().div_ceil(1000) as u64,
        "qrTips": "请使用小米手机扫码登录",
    }))
}

/// `GET /pass/qr/login?ticket=`: the QR code of `loginUrl` as a PNG.
pub async fn image(State(app): State<Shared>, Query(q): Query) -> Response {
    let Some(t) = q.get("ticket").and_then(|id| app.passport.qr.get(id)) else {
        return plain(
            StatusCode::NOT_FOUND,
            "unknown or expired QR ticket: ask /longPolling/loginUrl for a new one",
        );
    };
    let Ok(code) = qrcode::QrCode::new(t.login_url.as_bytes()) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot draw this QR code; ask for a new one",
        );
    };
    let n = code.width();
    let colors = code.to_colors();
    let side = (n + 2 * QUIET) * MODULE_PX;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % n + QUIET, i / n + QUIET);
        for y in my * MODULE_PX..(my + 1) * MODULE_PX {
            for x in mx * MODULE_PX..(mx + 1) * MODULE_PX {
                pixels[y * side + x] = 0;
            }
        }
    }
    match gray_png(&Bitmap {
        width: side,
        height: side,
        pixels,
    }) {
        Ok(png) => (StatusCode::OK, [(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the QR image; fetch it again",
        ),
    }
}

/// `GET /pass/qr/scan?ticket=`: what a phone would open; here a page with a confirm button.
pub async fn scan_page(Query(q): Query) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let safe: String = ticket
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    Html(format!(
        "<!doctype html><title>micloud-sim QR login</title>\
         <p>Emulated phone scan of QR ticket {safe}.</p>\
         <form method=post action=\"/_sim/qr/confirm?ticket={safe}\">\
         <button>Confirm login (default account)</button></form>"
    ))
    .into_response()
}

/// `GET /lp/s?k=`: the long poll.
pub async fn long_poll(State(app): State<Shared>, Query(q): Query) -> Response {
    let Some(t) = q.get("k").and_then(|id| app.passport.qr.get(id)) else {
        return expired();
    };
    let mut rx = t.state.subscribe();
    let deadline = tokio::time::Instant::from_std(t.expires);
    loop {
        if let Some(done) = rx.borrow_and_update().clone() {
            return with_cookies(passport_json(&done.body), &done.cookies);
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return expired() },
            _ = tokio::time::sleep_until(deadline) => {
                app.stats.count("login_qr_expired", 1);
                tracing::info!("QR login ticket expired unconfirmed");
                return expired();
            }
        }
    }
}

/// `POST /_sim/qr/confirm?ticket=&account=`: the user scans and confirms on the phone.
pub async fn confirm(State(app): State<Shared>, Query(q): Query) -> Response {
    let fail = |status: StatusCode, msg: String| json(status, &json!({"error": msg}));
    let id = match q.get("ticket").filter(|t| !t.is_empty()) {
        Some(t) => Some(t.clone()),
        None => app.passport.qr.latest(),
    };
    let Some((id, t)) = id.and_then(|id| app.passport.qr.get(&id).map(|t| (id, t))) else {
        return fail(
            StatusCode::NOT_FOUND,
            "no live QR ticket: GET /longPolling/loginUrl first (or name a live ticket)".into(),
        );
    };
    let user = q
        .get("account")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| app.config.user_id.clone());
    let Some(account) = app.passport.accounts.get(&user) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no account {user}: add it with POST /_sim/accounts 'id={user}'"),
        );
    };
    if !account.qr {
        return fail(
            StatusCode::CONFLICT,
            format!("QR login is off for account {user}: POST /_sim/accounts 'id={user},qr=on'"),
        );
    }
    if t.state.borrow().is_some() {
        return fail(
            StatusCode::CONFLICT,
            format!("QR ticket {id} is already confirmed: ask for a new one"),
        );
    }
    let known_device = t.device.clone();
    let device = known_device
        .clone()
        .unwrap_or_else(|| format!("wb_{}", random_b64url(12)));
    let login = Completed::new(&app, &t.host, &user, &t.followup, &device);
    if app.passport.accounts.qr_login(&user, Some(&device)) {
        app.stats.count("login_qr_new_device", 1);
        tracing::info!(account = %user, "QR login from a new device: gallery closed until the identity check");
    }
    let done = Done {
        body: Value::Object(login.fields()),
        cookies: login.cookies(),
    };
    t.state.send_replace(Some(Arc::new(done)));
    app.stats.count("login_qr_confirmed", 1);
    tracing::info!(account = %user, "QR login confirmed");
    json(StatusCode::OK, &json!({"ticket": id, "account": user}))
}
