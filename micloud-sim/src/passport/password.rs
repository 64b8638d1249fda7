//! Password login (spec §2.3) and the passport state every login flow shares.
//!
//! `POST /pass/serviceLoginAuth2` takes its fields from the form body and the query alike (the
//! body wins): `user` (account id, phone or e-mail), `hash` (upper-case hex MD5 of the
//! password), `_sign` (from `serviceLogin?_json=true`), `sid`, `callback`, `qs`, optional
//! `captCode` + cookie `ick`. It is judged in this order, every answer `&&&START&&&` + JSON:
//! 1. missing or wrong `_sign`, unknown user → `70016` (the exact 13-field body of §2.3);
//! 2. captcha required and no `captCode` → `70016` with `captchaUrl`; a wrong or stale code →
//!    `87001` with a new `captchaUrl` (emulator's choice: no public capture of that answer);
//! 3. wrong password → `70016` (`captchaUrl` set once `captcha=N` is reached);
//! 4. 2FA account from an untrusted `deviceId` → `code:0`, `location:""`, `notificationUrl`,
//!    `securityStatus:16` (see [`super::identity`]);
//! 5. success → `code:0`, `location` (the STS URL with a fresh single-use `nonce`), `ssecurity`,
//!    `psecurity`, `nonce`, `userId`, `cUserId`, a freshly minted `passToken`, and
//!    `Set-Cookie: passToken`, `userId`, `cUserId`.
//!
//! Whatever host the posted `callback` names, `location` points at this emulator's `/sts`
//! (keeping the callback's `followup`, else `/`), so a client never leaves the emulator.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::accounts::{Accounts, AccountsConfig};
use super::captcha::Captchas;
use super::identity::Identity;
use super::qr::QrTickets;
use super::server::{cookies, query, Shared};
use super::session::random_b64url;
use super::wire::{now_ms, user_id_num};

/// Everything the emulated passport remembers between requests.
pub struct Passport {
    pub accounts: Accounts,
    pub captchas: Captchas,
    pub identity: Identity,
    pub qr: QrTickets,
    pub qr_timeout: Duration,
}

impl Passport {
    pub fn new(user_id: &str, pass_token: &str, config: &AccountsConfig) -> Self {
        Passport {
            accounts: Accounts::new(user_id, pass_token, config),
            captchas: Captchas::default(),
            identity: Identity::default(),
            qr: QrTickets::default(),
            qr_timeout: config.qr_timeout,
        }
    }
}

/// A passport JSON answer: `&&&START&&&` + JSON, HTTP 200.
pub fn passport_json(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        format!("&&&START&&&{body}"),
    )
        .into_response()
}

/// Append `Set-Cookie` headers.
pub fn with_cookies(mut resp: Response, set: &[String]) -> Response {
    for c in set {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The `followup` of a posted STS callback (`/` when it has none).
pub fn followup_of(callback: &str) -> String {
    url::Url::parse(callback)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "followup")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/".to_string())
}

/// A login that has passed every check: the credentials it hands out.
pub struct Completed {
    pub user: String,
    pub pass_token: String,
    pub ssecurity: String,
    pub psecurity: String,
    pub c_user_id: String,
    pub nonce: String,
    pub location: String,
}

impl Completed {
    /// Mint a passToken for `user` and an STS ticket on `host` that returns to `followup`.
    pub fn new(app: &Shared, host: &str, user: &str, followup: &str, device: &str) -> Self {
        let pass_token = app.passport.accounts.mint_pass_token(user);
        let callback = app.signer.sts_callback(host, followup);
        let (location, nonce) = super::auth::ticket_location(app, &callback, device, Some(user), 1);
        Completed {
            user: user.to_string(),
            pass_token,
            ssecurity: random_b64url(16),
            psecurity: random_b64url(16),
            c_user_id: random_b64url(20),
            nonce: nonce.unwrap_or_default(),
            location,
        }
    }

    /// The success fields shared by password, 2FA and QR answers.
    pub fn fields(&self) -> serde_json::Map<String, Value> {
        let nonce = self
            .nonce
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(self.nonce));
        let v = json!({
            "code": 0, "result": "ok", "description": "成功", "desc": "成功",
            "location": self.location, "ssecurity": self.ssecurity, "psecurity": self.psecurity,
            "nonce": nonce, "userId": user_id_num(&self.user), "cUserId": self.c_user_id,
            "passToken": self.pass_token,
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// `Set-Cookie` values: `passToken`, `userId`, `cUserId`.
    pub fn cookies(&self) -> Vec<String> {
        vec![
            format!("passToken={}; Path=/; HttpOnly", self.pass_token),
            format!("userId={}; Path=/", self.user),
            format!("cUserId={}; Path=/", self.c_user_id),
        ]
    }
}

/// `/pass/getCode?icodeType=login&_dc=<ms>`
pub fn captcha_url() -> String {
    format!("/pass/getCode?icodeType=login&_dc={}", now_ms())
}

/// `POST /pass/serviceLoginAuth2`
pub async fn service_login_auth2(
    State(app): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: String,
) -> Response {
    let mut p = query(q.as_deref());
    p.extend(query(Some(&body)));
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
        let context = app
            .passport
            .identity
            .start(&id, device.clone(), &followup, &sid);
        app.stats.count("login_2fa_required", 1);
        tracing::info!(account = %id, "serviceLoginAuth2: identity check required");
        let notification = format!(
            "{host}/fe/service/identity/authStart?sid={}&context={context}&_locale=zh_CN",
            super::urls::enc(&sid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followup_comes_from_the_callback() {
        assert_eq!(
            followup_of("http://h/sts?sign=x&followup=http%3A%2F%2Fa%2Fb"),
            "http://a/b"
        );
        assert_eq!(followup_of("https://i.mi.com/sts"), "/");
        assert_eq!(followup_of("not a url"), "/");
    }
}
