//! The passport's image captcha (spec §2.5).
//!
//! `GET /pass/getCode?icodeType=login&_dc=<ms>` mints a 5-digit code, answers a 175×50 PNG
//! that shows it ([`crate::passport::images`]) and `Set-Cookie: ick=<random>`. The answer is checked by `serviceLoginAuth2` (`captCode` +
//! cookie `ick`); each `ick` is good for one answer and 5 minutes, right or wrong. Tests learn
//! the code from `GET /_sim/passport` (`captchas`: `ick` → code), never from the pixels.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::reply::plain;
use crate::http::state::Shared;
use crate::passport::images::{gray_png, render_digits};

/// `GET /pass/getCode`: a fresh captcha image and its `ick` cookie.
pub async fn get_code(State(app): State<Shared>) -> Response {
    let (ick, code) = app.passport.captchas.issue();
    app.stats.count("login_captcha_served", 1);
    tracing::info!("captcha served");
    let png = match gray_png(&render_digits(&code)) {
        Ok(p) => p,
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the captcha image; fetch it again",
            )
        }
    };
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "image/png")], png).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("ick={ick}; Path=/; HttpOnly")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
