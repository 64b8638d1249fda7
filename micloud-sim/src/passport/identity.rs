//! The 2FA "identity" flow (spec §2.5), entered from a `notificationUrl` of
//! `serviceLoginAuth2`. Every answer is `&&&START&&&` + JSON.
//!
//! 1. `GET /fe/service/identity/authStart?sid=&context=` → 302 to `/identity/list?sid=&context=`
//!    (clients usually rewrite the path themselves).
//! 2. `GET /identity/list?sid=&context=` → `code:2`, `flag` (4 phone, 8 e-mail; phone first when
//!    both), `options` (every flag offered), `Set-Cookie: identity_session`.
//! 3. `GET /identity/auth/verifyPhone|verifyEmail?_flag=&_json=true` (cookie `identity_session`)
//!    → `code:0`, `maskedPhone` / `maskedEmail`.
//! 4. `POST /identity/auth/sendPhoneTicket|sendEmailTicket` (`retry=0&icode=&_json=true`) →
//!    `code:0`, and a 6-digit code lands in the outbox (`GET /_sim/passport`); past the
//!    account's `quota` for that channel → `70022`.
//! 5. `POST /identity/auth/verifyPhone|verifyEmail` (`_flag`, `ticket`, `trust`, `_json`; form or
//!    query) → `code:0` + `location` (`/identity/result/check?sid=&ticket=`); a wrong code →
//!    `70014` (emulator's choice: the spec knows no code for it), the code stays valid.
//!    `trust=true` trusts the `deviceId` that posted the password: its next password login
//!    skips 2FA.
//! 6. `GET <location>` → 302 to the STS URL (single-use `nonce`), `Set-Cookie: passToken`,
//!    `userId`, `cUserId`, and `extension-pragma: {"nonce":..,"ssecurity":..,"psecurity":..}`.
//!
//! A missing or unknown context, `identity_session` or finish ticket → `70016` with a
//! description that says to start the login again. Contexts live 10 minutes.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use rand::Rng;
use serde_json::json;

use crate::config::accounts::Channel;
use crate::http::reply::redirect;
use crate::http::request::{Params, Query};
use crate::http::state::Shared;
use crate::passport::accounts::{Account, SendRefused};
use crate::passport::common::{passport_json, with_cookies, Completed};
use crate::passport::session::random_b64url;
use crate::protocol::urls::enc;
use crate::protocol::wire::now_ms;

fn error(code: i64, description: &str, hint: &str) -> Response {
    passport_json(&json!({
        "code": code, "result": "error", "description": description, "desc": hint,
    }))
}

fn lost() -> Response {
    error(
        70016,
        "登录验证失败",
        "identity check unknown or expired: log in with the password again",
    )
}

/// `GET /fe/service/identity/authStart`
pub async fn auth_start(RawQuery(q): RawQuery) -> Response {
    redirect(&format!("/identity/list?{}", q.unwrap_or_default()), &[])
}

/// `GET /identity/list`
pub async fn list(State(app): State<Shared>, Query(q): Query) -> Response {
    let ctx = q.get("context").cloned().unwrap_or_default();
    let Some(user) = app.passport.identity.with(|s| {
        s.contexts
            .get(&ctx)
            .filter(|p| p.expires > Instant::now())
            .map(|p| p.user.clone())
    }) else {
        return lost();
    };
    let Some(account) = app.passport.accounts.get(&user) else {
        return lost();
    };
    let options: Vec<u32> = account
        .two_factor
        .channels()
        .iter()
        .map(|c| c.flag())
        .collect();
    let session = random_b64url(24);
    app.passport.identity.with(|s| {
        s.sessions.insert(session.clone(), ctx.clone());
    });
    let body = json!({
        "code": 2, "result": "ok", "description": "需要验证身份", "flag": options.first(),
        "options": options, "sid": q.get("sid"), "context": ctx,
    });
    with_cookies(
        passport_json(&body),
        &[format!("identity_session={session}; Path=/; HttpOnly")],
    )
}

fn offered(app: &Shared, ctx: &str, channel: Channel) -> Option<Account> {
    let user = app
        .passport
        .identity
        .with(|s| s.contexts.get(ctx).map(|p| p.user.clone()))?;
    app.passport
        .accounts
        .get(&user)
        .filter(|a| a.two_factor.channels().contains(&channel))
}

fn not_offered(channel: Channel) -> Response {
    error(
        70016,
        "登录验证失败",
        &format!(
            "this account offers no {} check: use a flag listed in options of /identity/list",
            channel.name()
        ),
    )
}

/// `GET /identity/auth/verifyPhone|verifyEmail`: the masked destination.
async fn describe(app: Shared, headers: HeaderMap, channel: Channel) -> Response {
    let Some(ctx) = app.passport.identity.context_of(&headers) else {
        return lost();
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return not_offered(channel);
    };
    let mut body = json!({"code": 0, "result": "ok", "description": "成功"});
    match channel {
        Channel::Phone => body["maskedPhone"] = json!(account.masked_phone()),
        Channel::Email => body["maskedEmail"] = json!(account.masked_email()),
    }
    passport_json(&body)
}

/// `POST /identity/auth/sendPhoneTicket|sendEmailTicket`
async fn send(app: Shared, headers: HeaderMap, channel: Channel) -> Response {
    let Some(ctx) = app.passport.identity.context_of(&headers) else {
        return lost();
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return not_offered(channel);
    };
    match app.passport.accounts.take_quota(&account.id, channel) {
        Ok(()) => {}
        Err(SendRefused::Quota) => {
            app.stats.count("login_code_quota", 1);
            tracing::info!(account = %account.id, channel = channel.name(), "code quota exceeded");
            return error(
                70022,
                &format!("今日验证码次数超出限制({}次)", account.quota),
                "daily verification code limit reached: try again tomorrow or use another check",
            );
        }
        Err(SendRefused::NoAccount) => return lost(),
    }
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let to = match channel {
        Channel::Phone => account.phone.clone(),
        Channel::Email => account.email.clone(),
    };
    app.passport.identity.with(|s| {
        if let Some(p) = s.contexts.get_mut(&ctx) {
            p.codes.insert(channel, code.clone());
        }
        s.outbox.push(json!({
            "account": account.id, "channel": channel.name(), "to": to, "code": code,
            "ts": now_ms(),
        }));
    });
    app.stats.count("login_code_sent", 1);
    tracing::info!(account = %account.id, channel = channel.name(), "verification code sent");
    passport_json(&json!({"code": 0, "result": "ok", "description": "成功"}))
}

/// `POST /identity/auth/verifyPhone|verifyEmail`
async fn verify(
    app: Shared,
    headers: HeaderMap,
    p: HashMap<String, String>,
    channel: Channel,
) -> Response {
    let Some(ctx) = app.passport.identity.context_of(&headers) else {
        return lost();
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return not_offered(channel);
    };
    let ticket = p.get("ticket").map(|t| t.trim().to_string());
    let trust = p.get("trust").is_some_and(|t| t == "true");
    let finish = random_b64url(24);
    let outcome = app.passport.identity.with(|s| {
        let pending = s.contexts.get_mut(&ctx)?;
        let right = pending
            .codes
            .get(&channel)
            .is_some_and(|c| Some(c) == ticket.as_ref());
        if !right {
            return Some(None);
        }
        pending.codes.clear();
        pending.finish = Some(finish.clone());
        Some(Some((pending.device.clone(), pending.sid.clone())))
    });
    let Some(outcome) = outcome else {
        return lost();
    };
    let Some((device, sid)) = outcome else {
        app.stats.count("login_code_wrong", 1);
        tracing::info!(account = %account.id, "identity: wrong code");
        return error(
            70014,
            "验证码错误",
            "wrong verification code: check it, or ask for a new one",
        );
    };
    if trust {
        if let Some(d) = &device {
            app.passport.accounts.trust_device(&account.id, d);
        }
    }
    app.stats.count("login_2fa_verified", 1);
    tracing::info!(account = %account.id, trust, "identity: code verified");
    let host = app.host(&headers);
    passport_json(&json!({
        "code": 0, "result": "ok", "description": "成功",
        "location": format!("{host}/identity/result/check?sid={}&ticket={finish}", enc(&sid)),
    }))
}

/// `GET /identity/result/check?ticket=`: the end of the chain (passToken cookies, then STS).
pub async fn finish(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let done = app.passport.identity.with(|s| {
        let ctx = s
            .contexts
            .iter()
            .find(|(_, p)| p.finish.as_deref() == Some(ticket.as_str()) && !ticket.is_empty())
            .map(|(k, _)| k.clone())?;
        s.contexts.remove(&ctx)
    });
    let Some(p) = done else { return lost() };
    let host = app.host(&headers);
    let device = p
        .device
        .clone()
        .unwrap_or_else(|| format!("wb_{}", random_b64url(12)));
    let login = Completed::new(&app, &host, &p.user, &p.followup, &device);
    app.stats.count("login_2fa_ok", 1);
    tracing::info!(account = %p.user, "identity: login complete");
    let mut resp = with_cookies(redirect(&login.location, &[]), &login.cookies());
    let pragma = json!({"nonce": login.nonce.parse::<u64>().ok(), "ssecurity": login.ssecurity,
                        "psecurity": login.psecurity});
    if let Ok(v) = HeaderValue::from_str(&pragma.to_string()) {
        resp.headers_mut().insert("extension-pragma", v);
    }
    resp
}

macro_rules! per_channel {
    ($describe:ident, $send:ident, $verify:ident, $ch:expr) => {
        pub async fn $describe(State(app): State<Shared>, headers: HeaderMap) -> Response {
            describe(app, headers, $ch).await
        }
        pub async fn $send(State(app): State<Shared>, headers: HeaderMap) -> Response {
            send(app, headers, $ch).await
        }
        pub async fn $verify(
            State(app): State<Shared>,
            headers: HeaderMap,
            Params(p): Params,
        ) -> Response {
            verify(app, headers, p, $ch).await
        }
    };
}

per_channel!(describe_phone, send_phone, verify_phone, Channel::Phone);
per_channel!(describe_email, send_email, verify_email, Channel::Email);
