//! What the passport's flows share: the `&&&START&&&` JSON answer, `Set-Cookie` helpers, the
//! STS ticket a finished login points at ([`ticket_location`]) and the credentials it hands
//! out ([`Completed`]: a freshly minted passToken, `ssecurity`, `psecurity`, `cUserId` and a
//! single-use `nonce`), used alike by the password, 2FA and QR flows.
//!
//! Whatever host a posted `callback` names, the STS URL points at this emulator's `/sts`
//! (keeping the callback's `followup`, else `/`), so a client never leaves the emulator.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::http::state::{App, Shared};
use crate::passport::session::random_b64url;
use crate::protocol::urls::enc;
use crate::protocol::wire::{now_ms, user_id_num};

/// The STS URL a passport answer points at: `callback` plus the ticket parameters; with
/// `ticket_for`, a fresh single-use `nonce` for that account (returned too) and `_ssign`.
pub fn ticket_location(
    app: &App,
    callback: &str,
    device: &str,
    ticket_for: Option<&str>,
    pwd: u8,
) -> (String, Option<String>) {
    let sep = if callback.contains('?') { '&' } else { '?' };
    let mut location = format!(
        "{callback}{sep}d={}&ticket=0&pwd={pwd}&p_ts={}&fid=0&p_lm=1&auth={}&m=1&_group=DEFAULT&tsl=0&p_ca=0&p_ur=CN&p_idc=China",
        enc(device),
        now_ms(),
        random_b64url(24),
    );
    let nonce = ticket_for.map(|user| {
        let nonce = app.sessions.issue_ticket(user);
        location.push_str(&format!("&nonce={nonce}&_ssign={}", random_b64url(21)));
        nonce
    });
    (location, nonce)
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
        let (location, nonce) = ticket_location(app, &callback, device, Some(user), 1);
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
