//! Reading requests: cookies, query strings, and the extractors built on them.
//!
//! Query strings are parsed leniently: unknown keys (`ts`, `_dc`, `numOfThumbnails`, …) are
//! ignored, values are percent-decoded with `+` as a space, a later duplicate wins, and a bad
//! number falls back to the default ([`num`]), because real clients send every variant.
//! Handlers take [`Query`] (the query string as a map) or [`Params`] (query string and form
//! body together, for the passport's POSTs, which clients send either way) instead of
//! parsing by hand. A leaf: nothing else of the emulator is used here.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

/// All cookies of the request (later duplicates win; surrounding quotes removed).
pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim().trim_matches('"');
                out.insert(k.trim().to_string(), v.to_string());
            }
        }
    }
    out
}

/// Query parameters (percent-decoded, `+` as space).
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The number under `key`, or `default` when it is missing or not a number.
pub fn num<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str, default: T) -> T {
    q.get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The query string as a map (never rejects: a missing query is an empty map).
pub struct Query(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query(query(parts.uri.query())))
    }
}

/// The query string and the form body as one map, the body winning. A body that is not
/// UTF-8 is refused as axum refuses a `String` body (400).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut fields = query(req.uri().query());
        let body = String::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        fields.extend(query(Some(&body)));
        Ok(Params(fields))
    }
}
