//! Answers: JSON with the real server's content type, the success envelope, plain text, and
//! redirects carrying cookies. The envelope's shape is [`crate::protocol::wire`]'s.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::protocol::wire;

/// A JSON response with the real server's content type.
pub fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// HTTP 200 with `data` in the success envelope.
pub fn ok(data: Value) -> Response {
    json(StatusCode::OK, &wire::envelope(data))
}

/// A short text answer (errors of the test API and of signed URLs).
pub fn plain(status: StatusCode, msg: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], msg).into_response()
}

/// A redirect with extra `Set-Cookie` headers.
pub fn redirect(location: &str, set_cookies: &[String]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "bad redirect target"),
    }
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
