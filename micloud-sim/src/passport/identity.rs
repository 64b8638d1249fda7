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
//!
//! **Today's passport (§10.3, the default; the above is `legacy-passport`).** Differences:
//! - `authStart` answers the web page (HTML, 200), not a redirect: clients rewrite the path
//!   to `/identity/list` themselves;
//! - the context may come in the query (`?sid=&context=&mask=0&_locale=`) instead of, or with,
//!   the `identity_session` cookie; `send*Ticket`, `verify*` and `userQuota` take
//!   **form-encoded** bodies only (any other body → `70016`, "form-encoded");
//! - a channel not in `options` → `code:2`, `version:"v2"`;
//! - a second code sooner than the account's `send-gap` (60 s) after the last → `20024` with
//!   `data.wt` (seconds left);
//! - `POST /identity/pass/sms/userQuota` (`addressType=PH|EM`, `contentType=160040`) →
//!   `code:0`, `info` = codes left today on that channel (the answer's shape is the
//!   emulator's choice: no public capture shows it);
//! - the verified `location` is `/identity/result/check?sid=&context=`, which redirects to
//!   `/pass/serviceLoginAuth2/end?sid=&context=`; that answers the HTML "Xiaomi Account -
//!   Tips" page (200) `tips` times (default once), then 302 to the STS with the passToken
//!   cookies and `extension-pragma`. An unknown or finished context there is an HTML error
//!   page (200), as a browser would see.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rand::Rng;
use serde_json::json;

use crate::config::accounts::Channel;
use crate::http::reply::redirect;
use crate::http::request::{query, Params, Query};
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

/// An HTML page of the passport's web front end (200): what a browser gets.
pub fn html_page(title: &str, text: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        Html(format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><div class=\"tips\"><p>{text}</p></div></body></html>"
        )),
    )
        .into_response()
}

/// `GET /fe/service/identity/authStart`: today, the web page; before, a redirect to the list.
pub async fn auth_start(State(app): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let raw = q.unwrap_or_default();
    let ctx = query(Some(&raw))
        .get("context")
        .cloned()
        .unwrap_or_default();
    let modern = app
        .passport
        .identity
        .with(|s| s.contexts.get(&ctx).map(|p| p.modern))
        .unwrap_or(!app.config.accounts.legacy_passport);
    if modern {
        return html_page(
            "Xiaomi Account - Security verification",
            "To keep your account safe, verify your identity.",
        );
    }
    redirect(&format!("/identity/list?{raw}"), &[])
}

/// Whether the context `ctx` runs today's passport.
fn modern(app: &Shared, ctx: &str) -> bool {
    app.passport
        .identity
        .with(|s| s.contexts.get(ctx).is_some_and(|p| p.modern))
}

/// §10.3: today's ticket endpoints take form-encoded bodies only.
fn form_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The two-step context of a ticket request (its `identity_session` cookie or its
/// `context` parameter) and whether it plays today's passport, which takes form-encoded
/// bodies only; else the answer to send instead (no context, or the body is not a form;
/// boxed, as a `Response` is large).
fn form_context(
    app: &Shared,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Result<(String, bool), Box<Response>> {
    let ctx = app
        .passport
        .identity
        .context_of(headers, p.get("context").map(String::as_str))
        .ok_or_else(|| Box::new(lost()))?;
    let today = modern(app, &ctx);
    if today && !form_encoded(headers) {
        return Err(Box::new(not_form()));
    }
    Ok((ctx, today))
}

fn not_form() -> Response {
    error(
        70016,
        "参数错误",
        "send the fields form-encoded (application/x-www-form-urlencoded)",
    )
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

/// A channel the context's account does not offer: today `code:2, version:"v2"`.
fn refuse_channel(app: &Shared, ctx: &str, channel: Channel) -> Response {
    if modern(app, ctx) {
        return passport_json(&json!({
            "code": 2, "version": "v2", "result": "error",
            "description": format!("no {} check for this account: use one of options", channel.name()),
        }));
    }
    not_offered(channel)
}

/// `GET /identity/auth/verifyPhone|verifyEmail`: the masked destination.
async fn describe(app: Shared, headers: HeaderMap, q: Query, channel: Channel) -> Response {
    let Some(ctx) = app
        .passport
        .identity
        .context_of(&headers, q.0.get("context").map(String::as_str))
    else {
        return lost();
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return refuse_channel(&app, &ctx, channel);
    };
    let mut body = json!({"code": 0, "result": "ok", "description": "成功"});
    match channel {
        Channel::Phone => body["maskedPhone"] = json!(account.masked_phone()),
        Channel::Email => body["maskedEmail"] = json!(account.masked_email()),
    }
    passport_json(&body)
}

/// `POST /identity/auth/sendPhoneTicket|sendEmailTicket`
async fn send(
    app: Shared,
    headers: HeaderMap,
    p: HashMap<String, String>,
    channel: Channel,
) -> Response {
    let (ctx, _) = match form_context(&app, &headers, &p) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return refuse_channel(&app, &ctx, channel);
    };
    match app.passport.accounts.take_quota(&account.id, channel) {
        Ok(()) => {}
        Err(SendRefused::TooFast(wt)) => {
            app.stats.count("login_code_too_fast", 1);
            tracing::info!(account = %account.id, wt, "code asked too soon after the last");
            return passport_json(&json!({
                "code": 20024, "result": "error", "description": "发送太频繁，请稍后再试",
                "data": {"wt": wt},
            }));
        }
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
    let (ctx, today) = match form_context(&app, &headers, &p) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let Some(account) = offered(&app, &ctx, channel) else {
        return refuse_channel(&app, &ctx, channel);
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
    let location = if today {
        format!(
            "{host}/identity/result/check?sid={}&context={ctx}&_locale=zh_CN",
            enc(&sid)
        )
    } else {
        format!(
            "{host}/identity/result/check?sid={}&ticket={finish}",
            enc(&sid)
        )
    };
    passport_json(&json!({
        "code": 0, "result": "ok", "description": "成功", "location": location,
    }))
}

/// `POST /identity/pass/sms/userQuota` (§10.3): codes left today on a channel.
pub async fn user_quota(
    State(app): State<Shared>,
    headers: HeaderMap,
    Params(p): Params,
) -> Response {
    let (ctx, _) = match form_context(&app, &headers, &p) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let channel = match p.get("addressType").map(String::as_str) {
        Some("PH") => Channel::Phone,
        Some("EM") => Channel::Email,
        _ => return error(70016, "参数错误", "addressType must be PH or EM"),
    };
    let Some(user) = app
        .passport
        .identity
        .with(|s| s.contexts.get(&ctx).map(|p| p.user.clone()))
    else {
        return lost();
    };
    let left = app
        .passport
        .accounts
        .quota_left(&user, channel)
        .unwrap_or(0);
    passport_json(&json!({
        "code": 0, "result": "ok", "description": "成功", "info": left.to_string(),
    }))
}

fn html_lost() -> Response {
    html_page(
        "Xiaomi Account - Error",
        "This verification has expired or was already used. Sign in again.",
    )
}

/// `GET /identity/result/check`: before, `?ticket=` ends the chain (passToken cookies, then
/// STS); today `?context=` redirects to `/pass/serviceLoginAuth2/end`.
pub async fn finish(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    if let Some(ctx) = q.get("context").filter(|c| !c.is_empty()) {
        let verified = app.passport.identity.with(|s| {
            s.contexts
                .get(ctx)
                .is_some_and(|p| p.finish.is_some() && p.expires > Instant::now())
        });
        if !verified {
            return html_lost();
        }
        let sid = q.get("sid").cloned().unwrap_or_else(|| "i.mi.com".into());
        let host = app.host(&headers);
        return redirect(
            &format!(
                "{host}/pass/serviceLoginAuth2/end?sid={}&context={ctx}&_ssign={}",
                enc(&sid),
                random_b64url(21)
            ),
            &[],
        );
    }
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
    complete(&app, &headers, p)
}

/// `GET /pass/serviceLoginAuth2/end?context=` (§10.3): the "Tips" page while the login has
/// some left, then the end of the chain.
pub async fn auth2_end(State(app): State<Shared>, headers: HeaderMap, Query(q): Query) -> Response {
    let ctx = q.get("context").cloned().unwrap_or_default();
    enum Step {
        Lost,
        Tips,
        Done(Box<crate::passport::pending::Pending>),
    }
    let step = app.passport.identity.with(|s| {
        let Some(p) = s
            .contexts
            .get_mut(&ctx)
            .filter(|p| p.finish.is_some() && p.expires > Instant::now())
        else {
            return Step::Lost;
        };
        if p.tips_left > 0 {
            p.tips_left -= 1;
            return Step::Tips;
        }
        s.contexts
            .remove(&ctx)
            .map_or(Step::Lost, |p| Step::Done(Box::new(p)))
    });
    match step {
        Step::Lost => html_lost(),
        Step::Tips => {
            app.stats.count("login_tips_page", 1);
            tracing::info!("serviceLoginAuth2/end: Tips page");
            html_page(
                "Xiaomi Account - Tips",
                "The system is busy. Please refresh the page and try again.",
            )
        }
        Step::Done(p) => complete(&app, &headers, *p),
    }
}

/// A verified identity check ends: passToken cookies, `extension-pragma`, 302 to the STS.
fn complete(app: &Shared, headers: &HeaderMap, p: crate::passport::pending::Pending) -> Response {
    let host = app.host(headers);
    let device = p
        .device
        .clone()
        .unwrap_or_else(|| format!("wb_{}", random_b64url(12)));
    let login = Completed::new(app, &host, &p.user, &p.followup, &device);
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
        pub async fn $describe(
            State(app): State<Shared>,
            headers: HeaderMap,
            q: Query,
        ) -> Response {
            describe(app, headers, q, $ch).await
        }
        pub async fn $send(
            State(app): State<Shared>,
            headers: HeaderMap,
            Params(p): Params,
        ) -> Response {
            send(app, headers, p, $ch).await
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
