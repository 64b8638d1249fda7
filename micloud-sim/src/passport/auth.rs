//! Login chain and session keep-alive (spec §2.2, §2.6, §5.2).
//!
//! `GET /api/user/login` (public) → `data.loginUrl`, the passport URL.
//! `GET /pass/serviceLogin` with cookies `userId` + `passToken`: when they match the account,
//! 302 to the STS callback plus ticket parameters (`d`, `ticket`, `pwd`, `p_ts`, …, `nonce`,
//! `_ssign`); otherwise 302 to the callback *without* a nonce, so `/sts` sets no cookie at all
//! (the "cookiesSize: 0" signal of an invalid passToken, spec §2.1). `_json=true` answers
//! `&&&START&&&{...}` instead (code 0 + `location`, or 70016).
//! `GET /sts` redeems the single-use nonce (and checks `sign` against `followup`): 302 to
//! `followup` with five cookies, `serviceToken`, `userId`, `i.mi.com_slh`, `i.mi.com_ph`,
//! `i.mi.com_isvalid_servicetoken`. No `Domain` attribute, since the emulator is reached by IP.
//! `GET /status/lite/setting?type=AutoRenewal` with a live session: `result:"ok"` and a fresh
//! `serviceToken` + `userId` in `Set-Cookie`; an expired or expired-by-control
//! (`/_sim/expire-sessions`) token gets the gateway 401 like any other endpoint.
//! On today's passport (§10.5, accounts without `legacy-passport` and with `rotate` on) a
//! ticketed `serviceLogin` also hands back a new passToken (`Set-Cookie: passToken`, and the
//! `passToken` field of the JSON answer); the old one, if minted by a login, dies
//! [`crate::passport::accounts::ROTATED_GRACE`] later (a configured one lives on).
//! passTokens are checked against the account registry ([`crate::passport::accounts`]): any account,
//! any live passToken (configured or minted by a login), none when revoked.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::control::stats::Stats;
use crate::http::reply::{json, ok, plain, redirect};
use crate::http::request::{cookies, Query};
use crate::http::state::{Session, Shared};
use crate::passport::common::{passport_json, ticket_location, with_cookies};
use crate::passport::session::random_b64url;
use crate::protocol::wire::{self, now_ms, user_id_num};

pub async fn login(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    let host = app.host(&headers);
    let followup = q
        .get("followUp")
        .cloned()
        .unwrap_or_else(|| format!("{host}/"));
    ok(json!({"loginUrl": app.signer.login_url(&host, &followup)}))
}

pub async fn service_login(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let host = app.host(&headers);
    let c = cookies(&headers);
    let user = c.get("userId").cloned().unwrap_or_default();
    let pass_token = c.get("passToken").cloned().unwrap_or_default();
    let valid = app.passport.accounts.pass_token_valid(&user, &pass_token);
    let callback = q
        .get("callback")
        .cloned()
        .unwrap_or_else(|| app.signer.sts_callback(&host, "/"));
    let device = c
        .get("deviceId")
        .cloned()
        .unwrap_or_else(|| format!("wb_{}", random_b64url(12)));
    let (location, nonce) =
        ticket_location(&app, &callback, &device, valid.then_some(user.as_str()), 0);
    // §10.5: today's passport may hand back a new passToken with the ticket.
    let rotated = valid
        .then(|| app.passport.accounts.rotate(&user, &pass_token))
        .flatten();
    let set = rotated
        .iter()
        .map(|t| format!("passToken={t}; Path=/; HttpOnly"))
        .collect::<Vec<_>>();
    if rotated.is_some() {
        app.stats.count("pass_token_rotated", 1);
    }
    if valid {
        tracing::info!(account = %user, rotated = rotated.is_some(), "serviceLogin: ticket issued");
    } else {
        tracing::info!("serviceLogin: no valid passToken, no ticket");
    }
    if q.get("_json").map(String::as_str) == Some("true") {
        let sid = q
            .get("sid")
            .cloned()
            .unwrap_or_else(|| "i.mi.com".to_string());
        let nonce = nonce
            .and_then(|n| n.parse::<u64>().ok())
            .map(serde_json::Value::from)
            .unwrap_or_else(|| now_ms().into());
        let body = if valid {
            json!({"code": 0, "result": "ok", "description": "成功", "location": location,
                   "userId": user_id_num(&user),
                   "passToken": rotated.as_deref().unwrap_or(&pass_token),
                   "ssecurity": random_b64url(16), "nonce": nonce, "cUserId": random_b64url(20),
                   "sid": sid, "callback": callback})
        } else {
            json!({"code": 70016, "result": "error", "description": "登录验证失败", "desc": "登录验证失败",
                   "location": "", "_sign": app.signer.sts_sign(&sid), "qs": format!("%3Fsid%3D{sid}%26_json%3Dtrue"),
                   "sid": sid, "callback": callback, "captchaUrl": null, "securityStatus": 0, "pwd": 0, "child": 0,
                   "serviceParam": "{\"checkSafePhone\":false}"})
        };
        return with_cookies(passport_json(&body), &set);
    }
    redirect(&location, &set)
}

pub async fn sts(State(app): State<Shared>, Query(q): Query) -> Response {
    let followup = q
        .get("followup")
        .cloned()
        .unwrap_or_else(|| "/".to_string());
    let sign_ok = q
        .get("sign")
        .is_some_and(|s| *s == app.signer.sts_sign(&followup));
    let user = q
        .get("nonce")
        .filter(|_| sign_ok)
        .and_then(|n| app.sessions.redeem_ticket(n));
    let Some(user) = user else {
        tracing::info!(sign_ok, "sts: no valid ticket, no cookies");
        return redirect(&followup, &[]);
    };
    let token = app.sessions.issue_token(&user, app.config.token_ttl);
    Stats::bump(&app.stats.token_exchanges, 1);
    let cookies = [
        format!("serviceToken={token}; Path=/; HttpOnly"),
        format!("userId={user}; Path=/"),
        format!("i.mi.com_slh={}; Path=/", random_b64url(24)),
        format!("i.mi.com_ph={}; Path=/", random_b64url(18)),
        "i.mi.com_isvalid_servicetoken=true; Path=/".to_string(),
    ];
    redirect(&followup, &cookies)
}

pub async fn auto_renewal(
    State(app): State<Shared>,
    Session(user): Session,
    Query(q): Query,
) -> Response {
    if q.get("type").map(String::as_str) != Some("AutoRenewal") {
        return plain(StatusCode::BAD_REQUEST, "unsupported setting type");
    }
    let token = app.sessions.issue_token(&user, app.config.token_ttl);
    Stats::bump(&app.stats.auto_renewals, 1);
    let mut resp = ok(json!({}));
    for c in [
        format!("serviceToken={token}; Path=/; HttpOnly"),
        format!("userId={user}; Path=/"),
        "i.mi.com_isvalid_servicetoken=true; Path=/".to_string(),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `GET /common/check`: a cheap session probe (envelope without `data`, or 401).
pub async fn check(_: Session) -> Response {
    let mut body = wire::envelope(json!(null));
    if let Some(m) = body.as_object_mut() {
        m.remove("data");
        m.insert("reason".into(), json!(""));
    }
    json(StatusCode::OK, &body)
}

/// `GET /mic/keybag/v1/getEncInfo?hsid=2&appId=micloud`: whether Advanced Data Protection
/// (E2EE) is on for the caller (`e2eeStatus` `open` / `close`, spec §3.7).
pub async fn enc_info(State(app): State<Shared>, Session(user): Session) -> Response {
    let status = if app.passport.accounts.e2ee(&user) {
        "open"
    } else {
        "close"
    };
    ok(json!({
        "zone": 301,
        "serverSignZone": 401,
        "e2eeStatus": status,
        "nonce": format!("{}~{}", now_ms(), random_b64url(16)),
        "maxAppkey": {"appKeyVersion": 0, "setEncryptAppKeys": false,
                      "encryptAppKeysSize": 0, "setAppKeyVersion": false},
    }))
}
