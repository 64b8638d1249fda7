//! Password login (spec §2.3).
//!
//! `POST /pass/serviceLoginAuth2` takes its fields from the form body and the query alike (the
//! body wins): `user` (account id, phone or e-mail), `hash` (upper-case hex MD5 of the
//! password), `_sign` (from `serviceLogin?_json=true`), `sid`, `callback`, `qs`, optional
//! `captCode` + cookie `ick`. It is judged in this order, every answer `&&&START&&&` + JSON:
//! 1. missing or wrong `_sign`, unknown user → `70016` (the exact 13-field body of §2.3);
//! 2. captcha required and no `captCode` → `70016` with `captchaUrl`; a wrong or stale code →
//!    `87001` with a new `captchaUrl` (emulator's choice: no public capture of that answer).
//!    Today's passport (§10.2, the default) wants a captcha at *every* password attempt, and
//!    the first one (no `captCode`) answers `87001` with `captchaUrl` and an empty
//!    `location`, before the password is looked at; `legacy-passport` accounts follow
//!    their `captcha` setting and answer `70016` as above;
//! 3. wrong password → `70016` (`captchaUrl` set once `captcha=N` is reached);
//! 4. 2FA account from an untrusted `deviceId` → `code:0`, `location:""`, `notificationUrl`,
//!    `securityStatus:16` (see [`crate::passport::identity`]);
//! 5. success → `code:0`, `location` (the STS URL with a fresh single-use `nonce`), `ssecurity`,
//!    `psecurity`, `nonce`, `userId`, `cUserId`, a freshly minted `passToken`, and
//!    `Set-Cookie: passToken`, `userId`, `cUserId`.
//!
//! Whatever host the posted `callback` names, `location` points at this emulator's `/sts`
//! (see [`crate::passport::common`]).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use crate::http::request::{cookies, Params};
use crate::http::state::Shared;
use crate::passport::common::{captcha_url, followup_of, passport_json, with_cookies, Completed};
use crate::passport::session::random_b64url;
use crate::protocol::urls::enc;

/// `POST /pass/serviceLoginAuth2`
pub async fn service_login_auth2(
    State(app): State<Shared>,
    headers: HeaderMap,
    Params(p): Params,
) -> Response {
    let c = cookies(&headers);
    let host = app.host(&headers);
    let sid = p
        .get("sid")
        .cloned()
        .unwrap_or_else(|| "i.mi.com".to_string());
    let sign = app.signer.sts_sign(&sid);
    let callback = p
        .get("callback")
        .cloned()
        .unwrap_or_else(|| app.signer.sts_callback(&host, "/"));
    let qs = p
        .get("qs")
        .cloned()
        .unwrap_or_else(|| format!("%3Fsid%3D{sid}%26_json%3Dtrue"));
    // The §2.3 failure body, field for field.
    let refuse = |code: i64, description: &str, captcha: Option<String>| {
        passport_json(&json!({
            "qs": qs, "code": code, "description": description, "securityStatus": 0,
            "_sign": sign, "sid": sid, "result": "error", "captchaUrl": captcha,
            "callback": callback, "location": "", "pwd": 0, "child": 0, "desc": description,
        }))
    };
    if p.get("_sign") != Some(&sign) {
        app.stats.count("login_password_failed", 1);
        tracing::info!("serviceLoginAuth2: missing or wrong _sign");
        return refuse(70016, "登录验证失败", None);
    }
    let user = p.get("user").map(String::as_str).unwrap_or("");
    let Some(account) = app.passport.accounts.find_login(user) else {
        app.stats.count("login_password_failed", 1);
        tracing::info!("serviceLoginAuth2: unknown user");
        return refuse(70016, "登录验证失败", None);
    };
    let id = account.id.clone();
    if account.captcha_required() {
        let answer = p.get("captCode").filter(|a| !a.trim().is_empty());
        match (answer, c.get("ick")) {
            (None, _) => {
                app.stats.count("login_captcha_required", 1);
                tracing::info!(account = %id, "serviceLoginAuth2: captcha required");
                // §10.2: today the first attempt answers 87001, before any password check.
                if !account.legacy {
                    return refuse(87001, "请输入验证码", Some(captcha_url()));
                }
                return refuse(70016, "登录验证失败", Some(captcha_url()));
            }
            (Some(a), Some(ick)) if app.passport.captchas.check(ick, a) => {}
            (Some(_), ick) => {
                if let Some(ick) = ick {
                    app.passport.captchas.check(ick, "");
                }
                app.stats.count("login_captcha_wrong", 1);
                tracing::info!(account = %id, "serviceLoginAuth2: wrong captcha");
                return refuse(87001, "验证码错误", Some(captcha_url()));
            }
        }
    }
    if !account.password_matches(p.get("hash").map(String::as_str).unwrap_or("")) {
        app.passport.accounts.password_failed(&id);
        app.stats.count("login_password_failed", 1);
        tracing::info!(account = %id, "serviceLoginAuth2: wrong password");
        let captcha = app
            .passport
            .accounts
            .get(&id)
            .filter(|a| a.captcha_required())
            .map(|_| captcha_url());
        return refuse(70016, "登录验证失败", captcha);
    }
    app.passport.accounts.password_ok(&id);
    let device = c.get("deviceId").cloned();
    let followup = followup_of(&callback);
    if !account.two_factor.channels().is_empty()
        && !app.passport.accounts.is_trusted(&id, device.as_deref())
    {
        let context = app.passport.identity.start(
            &id,
            device.clone(),
            &followup,
            &sid,
            (!account.legacy).then_some(account.tips),
        );
        app.stats.count("login_2fa_required", 1);
        tracing::info!(account = %id, "serviceLoginAuth2: identity check required");
        let mask = if account.legacy { "" } else { "&mask=0" };
        let notification = format!(
            "{host}/fe/service/identity/authStart?sid={}&context={context}{mask}&_locale=zh_CN",
            enc(&sid)
        );
        return passport_json(&json!({
            "qs": qs, "code": 0, "description": "成功", "securityStatus": 16, "_sign": sign,
            "sid": sid, "result": "ok", "captchaUrl": null, "callback": callback, "location": "",
            "pwd": 1, "child": 0, "desc": "成功", "notificationUrl": notification,
        }));
    }
    let device = device.unwrap_or_else(|| format!("wb_{}", random_b64url(12)));
    let done = Completed::new(&app, &host, &id, &followup, &device);
    app.stats.count("login_password_ok", 1);
    tracing::info!(account = %id, "serviceLoginAuth2: password login ok");
    let mut body = done.fields();
    for (k, v) in [
        ("qs", json!(qs)),
        ("_sign", json!(sign)),
        ("sid", json!(sid)),
        ("callback", json!(callback)),
        ("securityStatus", json!(0)),
        ("pwd", json!(1)),
        ("child", json!(0)),
        ("captchaUrl", Value::Null),
        ("notificationUrl", json!("")),
    ] {
        body.insert(k.into(), v);
    }
    with_cookies(passport_json(&Value::Object(body)), &done.cookies())
}
